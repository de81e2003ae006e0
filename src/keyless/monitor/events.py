"""Monitor events: one JSON object per line on stdout, each also POSTed to ``--webhook``.

Event kinds: ``match`` (a watched signer's entry), ``inconsistency`` (the log or the state cannot
be trusted; its evidence is kept in a file) and ``checkpoint`` (a new checkpoint verified and
recorded). The webhook gets the same JSON; a failed delivery is retried a bounded number of
times with back-off and then given up with one warning on stderr (the event is on stdout and, for
checkpoints, in the state).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import httpx

from keyless.errors import ConfigError

__all__ = ["EventSink", "save_evidence"]

#: delivery attempts per event, and the pause before the 2nd, 3rd… attempt (seconds)
WEBHOOK_ATTEMPTS = 4
WEBHOOK_BACKOFF = 0.5


class EventSink:
    """Writes events to ``out`` and delivers them to an optional webhook."""

    def __init__(
        self,
        out: TextIO | None = None,
        webhook: str | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._out = out or sys.stdout
        self._webhook = webhook
        self._sleep = sleep
        self._http = httpx.Client(timeout=10.0, follow_redirects=False) if webhook else None

    def emit(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, sort_keys=False, separators=(", ", ": "))
        self._out.write(line + "\n")
        self._out.flush()
        if self._http is not None and self._webhook is not None:
            self._deliver(self._http, self._webhook, line.encode())

    def _deliver(self, http: httpx.Client, url: str, body: bytes) -> None:
        problem = ""
        for attempt in range(WEBHOOK_ATTEMPTS):
            if attempt:
                self._sleep(WEBHOOK_BACKOFF * 2 ** (attempt - 1))
            try:
                response = http.post(url, content=body,
                                     headers={"Content-Type": "application/json"})
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
                continue
            if 200 <= response.status_code < 300:
                return
            problem = f"HTTP {response.status_code}"
        where = urlsplit(url).netloc.rpartition("@")[2]  # never print credentials in the URL
        print(f"warning: webhook at {where} not reached after {WEBHOOK_ATTEMPTS} attempts "
              f"({problem})", file=sys.stderr)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()


def save_evidence(directory: Path, log: str, reason: str, items: dict[str, Any]) -> Path:
    """Keep an inconsistency's evidence as a JSON file (dir 0700, file 0600); its path."""
    now = datetime.now(UTC)
    tag = sha256(log.encode()).hexdigest()[:12]
    record = {"log": log, "reason": reason, "observed_at": now.isoformat(), **items}
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
        for attempt in range(100):
            path = directory / f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{tag}-{attempt}.json"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(record, f, indent=2)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            return path
        raise FileExistsError(f"{directory} has too many evidence files for this instant")
    except OSError as exc:
        raise ConfigError(f"cannot keep the evidence of {reason!r} in {str(directory)!r}: "
                          f"{exc}") from exc
