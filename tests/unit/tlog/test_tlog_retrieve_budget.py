"""Issue #13 defect 7: looking entries up costs no signature verification, and the expensive
unauthenticated endpoints spend a per-client budget (429 + Retry-After when spent)."""

from __future__ import annotations

import copy
import ipaddress
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount
from tlog_support import (
    CA,
    LogStack,
    Signer,
    b64,
    build_stack,
    dsse_v1,
    hashedrekord_v1,
    hostile_retrieve_body,
    intoto_v1,
    pem,
    statement,
)

from keyless.http.budget import ClientBudget, client_address
from keyless.http.errors import EXCEPTION_HANDLERS
from keyless.services.tlog.kinds import common
from keyless.services.tlog.routes import routes as tlog_routes

RETRIEVE = "/api/v1/log/entries/retrieve"


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA.create()


@pytest.fixture
async def stack(ca: CA) -> AsyncIterator[LogStack]:
    s = await build_stack(trusted_cas=[ca.cert])
    yield s
    await s.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _client(stack: LogStack, budget: ClientBudget | None, host: str) -> httpx.AsyncClient:
    app = Starlette(
        routes=[Mount("/rekor", routes=tlog_routes(stack.v2, budget)),
                *tlog_routes(stack.v1, budget)],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(host, 4711)),
                             base_url="http://localhost:3000")


async def test_retrieve_by_entry_verifies_no_signature(
    stack: LogStack, ca: CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = Signer.create(ca), Signer.create(ca)
    dsse = dsse_v1(alice, statement())
    dsse["spec"]["proposedContent"]["verifiers"].insert(0, b64(pem(bob.cert)))  # 2 candidates
    proposals = [hashedrekord_v1(alice, b"artifact"), dsse, intoto_v1(alice, statement("cd" * 32))]
    async with _client(stack, None, "192.0.2.1") as client:
        ids = []
        for proposal in proposals:
            r = await client.post("/api/v1/log/entries", json=proposal)
            assert r.status_code == 201, r.text
            ids.append(next(iter(r.json())))

        def no_verification(*_args: Any) -> None:
            raise AssertionError("a lookup verified a signature")

        monkeypatch.setattr(common, "verify_digest", no_verification)
        monkeypatch.setattr(common, "verify_message", no_verification)
        r = await client.post(RETRIEVE, json={"entries": proposals})
        assert r.status_code == 200, r.text
        assert [next(iter(e)) for e in r.json()] == ids
        # a bad signature is simply not in the log: nothing found, no 400
        forged = copy.deepcopy(proposals[0])
        forged["spec"]["signature"]["content"] = b64(b"\x30\x06\x02\x01\x01\x02\x01\x01")
        r = await client.post(RETRIEVE, json={"entries": [forged]})
        assert r.status_code == 200 and r.json() == []


async def test_the_hostile_retrieve_is_refused_without_verifying(
    stack: LogStack, ca: CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    """16 signatures x 16 verifiers: 16**16 possible bodies, refused by counting, not trying."""
    body = hostile_retrieve_body(ca, entries=2, payload_size=1000)
    monkeypatch.setattr(common, "verify_message", lambda *_: pytest.fail("verified"))
    async with _client(stack, None, "192.0.2.1") as client:
        r = await client.post(RETRIEVE, content=body,
                              headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert "possible forms" in r.json()["message"]


async def test_spent_budget_is_429_with_retry_after_per_client(stack: LogStack, ca: CA) -> None:
    clock = FakeClock()
    budget = ClientBudget(burst=5, rate=1, clock=clock)
    query = {"logIndexes": [0]}
    async with _client(stack, budget, "192.0.2.1") as alice, \
            _client(stack, budget, "192.0.2.2") as bob:
        for _ in range(5):
            assert (await alice.post(RETRIEVE, json=query)).status_code == 200
        refused = await alice.post(RETRIEVE, json=query)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "1"
        assert refused.json()["code"] == 429 and "budget" in refused.json()["message"]
        for path in ("/api/v1/log/entries", "/api/v1/index/retrieve", "/rekor/api/v2/log/entries"):
            assert (await alice.post(path, json={})).status_code == 429, path
        for path in ("/api/v1/search?digest=" + "ab" * 32, "/rekor/api/v2/search?email=a@b.c"):
            assert (await alice.get(path)).status_code == 429, path
        assert (await alice.get("/api/v1/log")).status_code == 200  # cheap reads are not limited
        assert (await bob.post(RETRIEVE, json=query)).status_code == 200  # another client
        clock.now += 1.5
        assert (await alice.post(RETRIEVE, json=query)).status_code == 200


async def test_large_bodies_and_search_results_cost_more(stack: LogStack, ca: CA) -> None:
    clock = FakeClock()
    budget = ClientBudget(burst=50, rate=10, clock=clock)
    async with _client(stack, budget, "192.0.2.1") as client:
        big = json.dumps({"logIndexes": [0], "pad": "x" * 40 * 32 * 1024}).encode()
        r = await client.post(RETRIEVE, content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 400  # unknown field: refused, but the bytes were paid for
        assert budget.balance("192.0.2.1") == pytest.approx(50 - 1 - len(big) / 32768)
    signer = Signer.create(ca)
    async with _client(stack, None, "192.0.2.9") as writer:
        for i in range(5):
            r = await writer.post("/api/v1/log/entries", json=hashedrekord_v1(signer, b"%d" % i))
            assert r.status_code == 201
    await stack.v1.indexer.flush()
    async with _client(stack, budget, "192.0.2.3") as client:
        found = await client.get("/api/v1/search", params={"email": "alice@example.com"})
        assert len(found.json()["entries"]) == 5
        assert budget.balance("192.0.2.3") == pytest.approx(50 - 1 - 5 * 2)


def test_budget_keys_ipv6_clients_by_their_64_and_forgets_old_clients() -> None:
    def request(host: str) -> Request:
        return Request({"type": "http", "client": (host, 1), "headers": []})

    assert client_address(request("2001:db8:1:2:aaaa::1")) == "2001:db8:1:2::/64"
    assert client_address(request("2001:db8:1:2:bbbb::7")) == "2001:db8:1:2::/64"
    assert client_address(request("::ffff:192.0.2.4")) == "192.0.2.4"
    assert client_address(request("198.51.100.3")) == "198.51.100.3"
    clock = FakeClock()
    budget = ClientBudget(burst=2, rate=1, clock=clock, max_clients=64)
    start = time.perf_counter()
    for n in range(10_000):
        budget.admit(request(str(ipaddress.IPv4Address(0x0A000000 + n))))
    assert len(budget._balances) <= 64
    assert time.perf_counter() - start < 5  # amortised O(1), not a scan per request
