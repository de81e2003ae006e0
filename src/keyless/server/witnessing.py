"""Witnessing in ``keyless serve``: the ``[[witnesses]]`` / ``[witnessing]`` config, the HTTP
transport to witnesses, where the last published checkpoint is kept, the ``/metrics`` gauges and
the witness policy the instance publishes (docs/witnessing.md).

Which logs are witnessed: **Rekor v2** (Ed25519 checkpoints, C2SP type 0x01, whose vkey any
tlog-witness understands). Rekor v1 signs its checkpoints with ECDSA under a key ID that is not
the C2SP one (SHA-256 of the SPKI, type 0x02 of transparency-dev only) and the CT log with RFC
6962 note signatures (type 0x05), for which no tlog-witness defines a log vkey: neither is sent
to witnesses.

Config (keyless.toml)::

    [[witnesses]]
    url = "http://witness-1.example:7380"   # submission prefix; the log POSTs <url>/add-checkpoint
    vkey = "w1.example+1234abcd+BK…"         # the witness's cosignature key (type 0x04 or 0x06)

    [witnessing]
    quorum = 2          # valid cosignatures needed to publish (default: every witness)
    timeout = 5.0       # seconds per witness request
    interval = 0.25     # at least this many seconds between two checkpoints sent to witnesses
    fail_open = false   # true: publish without the quorum (explicit, not recommended)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from keyless.errors import ConfigError, StorageError
from keyless.formats.checkpoint import Checkpoint
from keyless.formats.vkey import (
    SIG_COSIGNATURE_V1,
    SIG_MLDSA44_COSIGNATURE,
    VerifierKey,
    VkeyError,
)
from keyless.http.readings import Counted, Latest
from keyless.log.witnessing import WitnessEndpoint, Witnessing
from keyless.storage import AsyncKeyValueStore

POLICY_TARGET = "witness_policy.txt"
POLICY_PATH = "/witness-policy"
_KV_NAMESPACE = "witnessed-checkpoint"
_FOREVER = 253402300799.0  # 9999-12-31: the published checkpoint never expires
_SAVE_ATTEMPTS = 8  # compare-and-set rounds lost to other processes before giving up


@dataclass(frozen=True)
class WitnessingSettings:
    """The parsed ``[[witnesses]]`` and ``[witnessing]`` tables."""

    witnesses: tuple[WitnessEndpoint, ...] = ()
    quorum: int = 0
    timeout: float = 5.0
    fail_open: bool = False
    interval: float = 0.25

    @property
    def enabled(self) -> bool:
        return bool(self.witnesses)


def read_witnessing(witnesses: Any, witnessing: Any, where: str) -> WitnessingSettings:
    """Check the two config tables; errors name the entry and the rule."""
    if not isinstance(witnesses, list) or not all(isinstance(w, dict) for w in witnesses):
        raise ConfigError(f"{where}: witnesses must be an array of tables ([[witnesses]])")
    if not isinstance(witnessing, dict):
        raise ConfigError(f"{where}: [witnessing] must be a table")
    endpoints: list[WitnessEndpoint] = []
    for number, entry in enumerate(witnesses, start=1):
        label = f"{where}: [[witnesses]] #{number}"
        if set(entry) != {"url", "vkey"} or not all(isinstance(v, str) for v in entry.values()):
            raise ConfigError(f"{label} needs exactly url = \"…\" and vkey = \"…\"")
        parts = urlsplit(entry["url"])
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise ConfigError(f"{label}: url must be an http(s) URL without a query")
        try:
            vkey = VerifierKey.parse(entry["vkey"].strip())
        except VkeyError as exc:
            raise ConfigError(f"{label}: {exc}") from exc
        if vkey.sig_type not in (SIG_COSIGNATURE_V1, SIG_MLDSA44_COSIGNATURE):
            raise ConfigError(f"{label}: a witness vkey must be a cosignature key (0x04/0x06)")
        if any(e.name == vkey.name for e in endpoints):
            raise ConfigError(f"{label}: witness name {vkey.name!r} is listed twice")
        endpoints.append(WitnessEndpoint(entry["url"], vkey))
    unknown = set(witnessing) - {"quorum", "timeout", "fail_open", "interval"}
    if unknown:
        raise ConfigError(f"{where}: unknown key in [witnessing]: {sorted(unknown)}")
    quorum = witnessing.get("quorum", len(endpoints))
    if not isinstance(quorum, int) or isinstance(quorum, bool) or not 0 <= quorum <= len(
        endpoints
    ):
        raise ConfigError(
            f"{where}: [witnessing].quorum must be 0..{len(endpoints)} (the witnesses listed)"
        )
    if endpoints and quorum == 0:
        raise ConfigError(f"{where}: [witnessing].quorum = 0 would publish unwitnessed "
                          "checkpoints; use fail_open = true to say so")
    timeout = witnessing.get("timeout", 5.0)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not (
        0 < timeout <= 300 and math.isfinite(timeout)
    ):
        raise ConfigError(f"{where}: [witnessing].timeout must be in (0, 300] seconds")
    interval = witnessing.get("interval", 0.25)
    if not isinstance(interval, int | float) or isinstance(interval, bool) or not (
        0 <= interval <= 60
    ):
        raise ConfigError(f"{where}: [witnessing].interval must be in [0, 60] seconds")
    fail_open = witnessing.get("fail_open", False)
    if not isinstance(fail_open, bool):
        raise ConfigError(f"{where}: [witnessing].fail_open must be true or false")
    if witnessing and not endpoints:
        raise ConfigError(f"{where}: [witnessing] is set but no [[witnesses]] are listed")
    return WitnessingSettings(tuple(endpoints), quorum, float(timeout), fail_open, float(interval))


async def http_post(url: str, body: bytes, timeout: float) -> tuple[int, str, bytes]:
    """POST ``body``; (status, content type, first 64 KiB of the answer). No redirects."""
    import httpx

    headers = {"Content-Type": "text/plain; charset=utf-8"}
    async with (
        httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client,
        client.stream("POST", url, content=body, headers=headers) as response,
    ):
        data = b""
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) > 64 * 1024:
                break
        return response.status_code, response.headers.get("content-type", ""), data


class KvPublishedStore:
    """The last published checkpoint per log, in the stack's key-value store (shared by every
    worker process): it only ever grows, whichever process publishes first."""

    def __init__(self, kv: AsyncKeyValueStore) -> None:
        self._kv = kv

    async def load(self, log: str) -> bytes | None:
        return await self._kv.get(_KV_NAMESPACE, log)

    async def save(self, log: str, note: bytes) -> None:
        size = _note_size(note)
        for _attempt in range(_SAVE_ATTEMPTS):
            stored = await self._kv.get(_KV_NAMESPACE, log)
            if stored is None:
                if await self._kv.put_if_absent(_KV_NAMESPACE, log, note, _FOREVER) is None:
                    return
            elif _note_size(stored) >= size:
                return  # another process stored a checkpoint at least as new
            elif await self._kv.replace(_KV_NAMESPACE, log, stored, note, _FOREVER):
                return
        raise StorageError(f"the published checkpoint of {log} kept changing; not stored")


def _note_size(note: bytes) -> int:
    return Checkpoint.from_note(note).size


def build_witnessing(settings: WitnessingSettings, kv: AsyncKeyValueStore) -> Witnessing:
    return Witnessing(
        settings.witnesses, quorum=settings.quorum, timeout=settings.timeout,
        fail_open=settings.fail_open, post=http_post, published=KvPublishedStore(kv),
        interval=settings.interval,
    )


def gauges(witnessing: Witnessing) -> dict[str, tuple[str, Callable[[], dict[str, float]]]]:
    """``/metrics`` gauges: per witness up/successes/failures/refusals, and withheld checkpoints."""

    def counted(attribute: str) -> Callable[[], dict[str, float]]:
        def read() -> dict[str, float]:
            return Counted("name", {name: float(getattr(s, attribute))
                                    for name, s in witnessing.state.items()})

        return read

    def up() -> dict[str, float]:  # only the witnesses this process has asked
        return Latest("name", {name: float(s.up) for name, s in witnessing.state.items()
                               if s.successes or s.failures})

    return {
        "keyless_witness_up": ("1 if the witness cosigned the last checkpoint asked.", up),
        "keyless_witness_cosignatures_total": ("Cosignatures obtained, per witness.",
                                               counted("successes")),
        "keyless_witness_failures_total": ("Failed add-checkpoint requests, per witness.",
                                           counted("failures")),
        "keyless_witness_refusals_total": (
            "Refusals that mean the witness saw another tree (409 root / 422 / ahead).",
            counted("refusals")),
        "keyless_witness_checkpoints_withheld_total": (
            "Checkpoints not published for lack of the witness quorum, per log.",
            lambda: Counted("name", {"all": float(witnessing.withheld)})),
        "keyless_witness_published_size": (
            "Size of the last witnessed checkpoint, per log.",
            lambda: Latest("name", {k: float(v) for k, v in witnessing.witnessed_sizes.items()})),
    }


def policy_text(
    settings: WitnessingSettings, logs: Sequence[tuple[VerifierKey, str]]
) -> str:
    """The C2SP tlog-policy a verifier of this instance uses: its Rekor v2 logs, its witnesses
    and its quorum (all of them, or ``quorum`` of them as a group)."""
    lines = ["# witness policy of this keyless instance (C2SP tlog-policy)"]
    lines += [f"log {vkey.encode()} {url}" for vkey, url in logs]
    names = []
    for number, witness in enumerate(settings.witnesses, start=1):
        name = f"w{number}"
        names.append(name)
        lines.append(f"witness {name} {witness.vkey.encode()} {witness.url}")
    quorum = max(settings.quorum, 1) if names else 0
    if not names:
        lines.append("quorum none")
    elif len(names) == 1:
        lines.append(f"quorum {names[0]}")
    else:
        lines.append(f"group witnesses {quorum} {' '.join(names)}")
        lines.append("quorum witnesses")
    return "\n".join(lines) + "\n"


def instance_policy(settings: WitnessingSettings, tlogs: Sequence[Any]) -> str:
    """:func:`policy_text` over the instance's Ed25519 (Rekor v2) logs (``LogKey`` objects)."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from keyless.formats.note_keys import name_from_base_url

    logs = [
        (VerifierKey.for_ed25519(name_from_base_url(t.base_url), t.public_key), t.base_url)
        for t in tlogs
        if isinstance(t.public_key, ed25519.Ed25519PublicKey)
    ]
    return policy_text(settings, logs)


def policy_routes(text: str) -> list[Any]:
    """``GET P/witness-policy``: a plain copy of the TUF target ``witness_policy.txt``."""
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    body = text.encode()

    async def get_policy(_request: Request) -> Response:
        return Response(body, media_type="text/plain; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})

    return [Route(POLICY_PATH, get_policy, methods=["GET", "HEAD"])]
