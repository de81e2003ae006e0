"""Throttling of passwords and client secrets over real HTTP (issue #13 defects 3 and 4).

Client addresses are distinct ``X-Forwarded-For`` values: uvicorn believes them from 127.0.0.1,
as ``[server] trusted_proxies`` makes the served stack do behind a proxy. scrypt checks are
counted by wrapping the provider's ``verify_secret``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest
from oidc_server import RunningProvider, provider_factory_fixture  # noqa: F401

from keyless.services.oidc import OidcUser, grants, machine_client
from keyless.services.oidc.accounts import verify_secret

pytestmark = pytest.mark.integration

BOB = OidcUser.parse("bob@example.org:hunter22")
CAROL = OidcUser.parse("carol@example.org:correct-horse")
MACHINE = machine_client("release-bot", "bot-secret", "https://ci.example.com/pipelines/release")
ATTACKER, OWNER = "198.51.100.66", "203.0.113.7"


class Counter:
    """Counts scrypt verifications (thread-safe: they run in worker threads)."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, secret: str, hashed: str) -> bool:
        with self._lock:
            self.calls += 1
        return verify_secret(secret, hashed)


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter]:
    counter = Counter()
    monkeypatch.setattr(grants, "verify_secret", counter)
    yield counter


@pytest.fixture
def idp(provider_factory: Callable[..., RunningProvider]) -> RunningProvider:
    return provider_factory(
        users=[BOB, CAROL], clients=[MACHINE], machine_subject_domain="https://ci.example.com"
    )


async def password(
    client: httpx.AsyncClient, idp: RunningProvider, user: str, secret: str, address: str
) -> httpx.Response:
    return await client.post(
        idp.issuer + "/token",
        data={"grant_type": "password", "client_id": "sigstore", "username": user,
              "password": secret},
        headers={"X-Forwarded-For": address},
    )  # fmt: skip


async def client_secret(
    client: httpx.AsyncClient, idp: RunningProvider, secret: str, address: str
) -> httpx.Response:
    return await client.post(
        idp.issuer + "/token",
        data={"grant_type": "client_credentials"},
        auth=("release-bot", secret),
        headers={"X-Forwarded-For": address},
    )


async def test_concurrent_wrong_passwords_are_checked_at_most_max_failures_times(
    idp: RunningProvider, checks: Counter
) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        answers = await asyncio.gather(
            *(password(client, idp, "bob@example.org", f"guess-{i}", ATTACKER) for i in range(40))
        )
    statuses = sorted(a.status_code for a in answers)
    assert checks.calls <= 5, f"{checks.calls} scrypt checks for 40 concurrent guesses"
    assert statuses == [400] * checks.calls + [429] * (40 - checks.calls)
    assert all(int(a.headers["retry-after"]) >= 1 for a in answers if a.status_code == 429)


async def test_concurrent_wrong_client_secrets_are_checked_at_most_max_failures_times(
    idp: RunningProvider, checks: Counter
) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        answers = await asyncio.gather(
            *(client_secret(client, idp, f"guess-{i}", ATTACKER) for i in range(40))
        )
    assert checks.calls <= 5, f"{checks.calls} scrypt checks for 40 concurrent guesses"
    assert sorted(a.status_code for a in answers) == [401] * checks.calls + [429] * (
        40 - checks.calls
    )


async def test_wrong_passwords_from_elsewhere_do_not_lock_the_user_out(
    idp: RunningProvider, checks: Counter
) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        for i in range(50):
            await password(client, idp, "bob@example.org", f"guess-{i}", ATTACKER)
        assert checks.calls == 5  # the attacker's address got its five tries, no more
        blocked = await password(client, idp, "bob@example.org", "hunter22", ATTACKER)
        assert blocked.status_code == 429  # that address is throttled, even with the password
        owner = await password(client, idp, "bob@example.org", "hunter22", OWNER)
        assert owner.status_code == 200, owner.text
        typo = await password(client, idp, "bob@example.org", "hunter2", OWNER)
        assert typo.status_code == 400  # the owner's own budget, not the attacker's


async def test_wrong_client_secrets_from_elsewhere_do_not_lock_the_client_out(
    idp: RunningProvider,
) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        for i in range(50):
            await client_secret(client, idp, f"guess-{i}", ATTACKER)
        assert (await client_secret(client, idp, "bot-secret", ATTACKER)).status_code == 429
        ci = await client_secret(client, idp, "bot-secret", OWNER)
        assert ci.status_code == 200, ci.text


async def test_one_address_is_limited_across_accounts(idp: RunningProvider) -> None:
    """Credential stuffing: 20 failures from one address, whatever the accounts, and it stops."""
    async with httpx.AsyncClient(timeout=60) as client:
        for i in range(20):
            wrong = await password(client, idp, f"user{i % 4}@example.org", "guess", ATTACKER)
            assert wrong.status_code == 400
        stuffed = await password(client, idp, "carol@example.org", "correct-horse", ATTACKER)
        assert stuffed.status_code == 429
        assert "address" in stuffed.json()["error_description"]
        elsewhere = await password(client, idp, "carol@example.org", "correct-horse", OWNER)
        assert elsewhere.status_code == 200
