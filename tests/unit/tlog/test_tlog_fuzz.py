"""No input gets a 500: every field of every request shape replaced by hostile values
(contracts.md §5). Deterministic (seeded) mutation of valid requests, through the HTTP layer."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from tlog_support import (
    CA,
    LogStack,
    Signer,
    build_stack,
    dsse_v1,
    dsse_v2,
    hashedrekord_v1,
    hashedrekord_v2,
    intoto_v1,
    statement,
)

HOSTILE: list[Any] = [None, "", "%%%", "AA==", 0, -1, 2**70, 1.5, True, [], {}, [1, "x"],
                      {"a": None}, "A" * 70_000, "\ud800", "0" * 64, "sha256", "\x00"]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*prefix, i))


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    out = copy.deepcopy(value)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = new
    return out


@pytest.fixture
async def stack() -> AsyncIterator[LogStack]:
    s = await build_stack()
    yield s
    await s.close()


async def test_mutated_requests_never_500(stack: LogStack) -> None:
    ca = CA.create()
    signer = Signer.create(ca)
    payload = statement()
    targets = [
        ("/api/v1/log/entries", hashedrekord_v1(signer, b"a")),
        ("/api/v1/log/entries", dsse_v1(signer, payload)),
        ("/api/v1/log/entries", intoto_v1(signer, payload)),
        ("/rekor/api/v2/log/entries", hashedrekord_v2(signer, b"a")),
        ("/rekor/api/v2/log/entries", dsse_v2(signer, payload)),
        ("/api/v1/log/entries/retrieve", {"logIndexes": [0], "entryUUIDs": ["ab" * 32]}),
        ("/api/v1/index/retrieve", {"hash": "sha256:" + "ab" * 32, "email": "a@b",
                                    "publicKey": {"format": "x509", "content": "AA=="}}),
    ]
    rng = random.Random(4)
    transport = httpx.ASGITransport(app=stack.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        checked = 0
        for url, valid in targets:
            paths = list(_paths(valid))
            for path in paths:
                for new in rng.sample(HOSTILE, 4):
                    body = json.dumps(_replace(valid, path, new)).encode()
                    r = await client.post(url, content=body)
                    assert r.status_code < 500, (url, path, new, r.text)
                    assert set(r.json()) >= ({"code", "message"} if r.status_code >= 400
                                             else set())
                    checked += 1
        for url in ("/api/v1/log/entries?logIndex=99999999999999999",
                    "/api/v1/log/entries?logIndex=-1", "/api/v1/log/proof?lastSize=x",
                    "/api/v1/log/proof?firstSize=1&lastSize=99999999999999",
                    "/rekor/tile/63/x999/x999/x999/x999/x999/x999/999",
                    "/rekor/tile/entries/x999/x999/x999/x999/x999/x999/x999/x999/999",
                    "/rekor/api/v2/search?digest=sha256:&limit=-4",
                    "/api/v1/search?keyFingerprint=zz", "/api/v1/search?identity=a&after=x",
                    "/api/v1/log/entries/" + "f" * 80):
            r = await client.get(url)
            assert 400 <= r.status_code < 500, (url, r.text)
            assert r.json()["code"] == r.status_code
    assert checked > 250
