"""Graceful shutdown (issue 9): SIGTERM under load answers every accepted request, then exits 0.

Requests race the signal: each one either gets its complete, valid answer, a 503 while draining,
or is refused at connect time; none sees a 500 or a truncated answer. The restart then reuses the
same data (``kill -9`` safety is the log engine's own test suite).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import signal
from pathlib import Path

import httpx
import pytest
from stackutil import start_stack

pytestmark = pytest.mark.integration


async def _timestamp(client: httpx.AsyncClient, url: str, n: int) -> object:
    body = {"artifactHash": base64.b64encode(
        hashlib.sha256(str(n).encode()).digest()).decode(), "hashAlgorithm": "sha256"}
    try:
        response = await client.post(url, json=body)
    except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
        return type(exc).__name__
    return response


def test_sigterm_under_load_drains_and_exits_zero(tmp_path: Path) -> None:
    stack = start_stack(tmp_path / "data")
    url = f"{stack.url}/api/v1/timestamp"

    async def load() -> list[object]:
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(timeout=20, limits=limits) as client:
            tasks = [asyncio.create_task(_timestamp(client, url, n)) for n in range(300)]
            # signal once the first answers arrive, while most requests are still in flight
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            stack.process.send_signal(signal.SIGTERM)
            return list(await asyncio.gather(*tasks))

    try:
        results = asyncio.run(load())
        code = stack.process.wait(30)  # the one SIGTERM above is all it gets
    finally:
        stack.stop()
    assert code == 0, stack.output()
    answered = [r for r in results if isinstance(r, httpx.Response)]
    assert answered, "no request was answered before the shutdown"
    for response in answered:
        assert response.status_code in (200, 503), response.text
        if response.status_code == 200:
            assert response.headers["content-type"] == "application/timestamp-reply"
            assert response.content[:1] == b"\x30"  # a complete DER TimeStampResp
    refused = [r for r in results if isinstance(r, str)]
    assert len(answered) + len(refused) == 300
    assert "stack stopped" in stack.output()
