"""[server] trusted_proxies: X-Forwarded-For is believed from the listed proxies only, so that
per-client limits behind a load balancer see real clients and nobody else can pose as one."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from stackutil import start_stack

pytestmark = pytest.mark.integration

CLIENT = "203.0.113.7"


def _logged_client(output: str, marker: str) -> str | None:
    for line in output.splitlines():
        if marker in line and line.startswith("{"):
            record = json.loads(line)
            client = record.get("client")
            return str(client).rsplit(":", 1)[0] if client else None
    return None


@pytest.mark.parametrize(
    ("trusted", "expected"), [("127.0.0.1", CLIENT), ("192.0.2.1", "127.0.0.1")]
)
def test_forwarded_for_only_from_trusted_proxies(
    tmp_path: Path, trusted: str, expected: str
) -> None:
    config = tmp_path / "keyless.toml"
    config.write_text(f'[server]\ntrusted_proxies = "{trusted}"\n')
    stack = start_stack(tmp_path / "data", "--config", str(config))
    try:
        marker = f"/healthz-{trusted}"
        httpx.get(f"{stack.url}{marker}", headers={"X-Forwarded-For": CLIENT}, timeout=10)
        deadline = time.monotonic() + 60
        while (found := _logged_client(stack.output(), marker)) is None:
            assert time.monotonic() < deadline, stack.output()[-2000:]
            time.sleep(0.1)
        assert found == expected
    finally:
        stack.stop()
