"""The sign-in throttle's hard limits hold across processes sharing one store (issue #20).

Two provider processes (tests/integration/oidc/oidc_process.py: real processes, each with its own
``open_storage`` of one SQLite file or PostgreSQL database, as two workers of ``keyless serve
--workers 2`` are) take wrong passwords for one account from one address, alternately or all at
once: the (account, address) limit trips at the same total as with one process, and so does the
per-address limit across accounts. Client addresses are ``X-Forwarded-For`` values, which
uvicorn believes from 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import keyless

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
USERS = ["bob@example.org:hunter22", "carol@example.org:correct-horse"]
ATTACKER, OWNER = "198.51.100.66", "203.0.113.7"


@contextlib.contextmanager
def provider_process(url: str) -> Iterator[str]:
    """Start a provider process over ``url``; its base URL. The socket listens before the
    process starts, so requests wait in its backlog until the process accepts them."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    env = {**os.environ, "PYTHONPATH": str(Path(keyless.__file__).parents[1])}
    process = subprocess.Popen(
        [sys.executable, str(HERE / "oidc_process.py"), url, str(sock.fileno()), *USERS],
        pass_fds=[sock.fileno()], env=env,
    )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/oidc"
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        sock.close()


@pytest.fixture(params=["sqlite", "postgres"])
def workers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The base URLs of two provider processes sharing one database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        url = request.getfixturevalue("postgres_cluster").create_database()
    with provider_process(url) as a, provider_process(url) as b:
        yield a, b


async def password(
    client: httpx.AsyncClient, base: str, user: str, secret: str, address: str
) -> httpx.Response:
    return await client.post(
        base + "/token",
        data={"grant_type": "password", "client_id": "sigstore", "username": user,
              "password": secret},
        headers={"X-Forwarded-For": address},
    )  # fmt: skip


async def test_alternating_processes_share_the_account_and_address_limit(
    workers: tuple[str, str],
) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        statuses = [
            (await password(client, workers[i % 2], "bob@example.org", f"guess-{i}", ATTACKER))
            .status_code
            for i in range(12)
        ]
        assert statuses == [400] * 5 + [429] * 7  # as with one process: five guesses in all
        for base in workers:  # the right password from that address waits, at either process
            blocked = await password(client, base, "bob@example.org", "hunter22", ATTACKER)
            assert blocked.status_code == 429
            assert int(blocked.headers["retry-after"]) > 200
        owner = await password(client, workers[1], "bob@example.org", "hunter22", OWNER)
        assert owner.status_code == 200, owner.text


async def test_concurrent_guesses_at_both_processes_share_the_limit(
    workers: tuple[str, str],
) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        answers = await asyncio.gather(*(
            password(client, workers[i % 2], "carol@example.org", f"guess-{i}", ATTACKER)
            for i in range(30)
        ))  # fmt: skip
    assert sorted(a.status_code for a in answers) == [400] * 5 + [429] * 25


async def test_the_address_limit_across_accounts_is_shared(workers: tuple[str, str]) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        for i in range(20):
            wrong = await password(client, workers[i % 2], f"user{i % 4}@example.org", "guess",
                                   ATTACKER)
            assert wrong.status_code == 400, i
        for base in workers:
            stuffed = await password(client, base, "carol@example.org", "correct-horse", ATTACKER)
            assert stuffed.status_code == 429
            assert "address" in stuffed.json()["error_description"]
