"""Rekor v1 + v2 APIs end to end in-process (ASGI), checked by the independent verifier in
tlog_support: inclusion proofs, checkpoint signatures, SETs, tiles, search, limits, errors."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from tlog_support import (
    CA,
    EMAIL,
    HOST,
    ISSUER,
    ORIGIN_V2,
    TREE_ID,
    LogStack,
    Signer,
    build_stack,
    dsse_over_hashedrekord_v2,
    dsse_v1,
    dsse_v2,
    hashedrekord_v1,
    hashedrekord_v2,
    intoto_v1,
    leaf_hash,
    parse_note,
    pem,
    spki,
    statement,
    verify_note_ecdsa,
    verify_tiles,
    verify_v1_entry,
    verify_v2_entry,
)

from keyless import merkle
from keyless.services.tlog.limits import TlogLimits


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA.create()


@pytest.fixture
async def stack(ca: CA) -> AsyncIterator[LogStack]:
    s = await build_stack(trusted_cas=[ca.cert])
    yield s
    await s.close()


@pytest.fixture
async def client(stack: LogStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=stack.app), base_url="http://localhost:3000"
    ) as c:
        yield c


def _v2_check(stack: LogStack, tle: dict[str, Any]) -> None:
    verify_v2_entry(tle, origin=ORIGIN_V2, public_key=stack.v2_key.public_key())


def _v1_check(stack: LogStack, answer: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return verify_v1_entry(answer, name=HOST, tree_id=TREE_ID, public_key=stack.v1_key.public_key())


# ---- Rekor v2 -------------------------------------------------------------------------------


async def test_v2_entries_verified_tiles_and_idempotent_resubmission(
    stack: LogStack, client: httpx.AsyncClient, ca: CA
) -> None:
    signer = Signer.create(ca)
    requests = [hashedrekord_v2(signer, b"artifact %d" % i) for i in range(5)]
    requests += [dsse_v2(signer, statement()), dsse_over_hashedrekord_v2(signer, statement())]
    indexes = []
    for request in requests:
        r = await client.post("/rekor/api/v2/log/entries", json=request)
        assert r.status_code == 201, r.text
        tle = r.json()
        _v2_check(stack, tle)
        assert r.headers["x-log-index"] == tle["logIndex"]
        indexes.append(int(tle["logIndex"]))
    assert indexes == list(range(1, len(requests) + 1))  # index 0 is the seed (gotcha 1)

    again = await client.post("/rekor/api/v2/log/entries", json=requests[0])
    assert again.status_code == 200
    assert again.json()["logIndex"] == "1"
    _v2_check(stack, again.json())

    read = await client.get("/rekor/api/v2/log/entries/3")
    assert read.status_code == 200
    _v2_check(stack, read.json())
    assert read.json()["inclusionProof"]["treeSize"] == str(len(requests) + 1)
    assert (await client.get("/rekor/api/v2/log/entries/0")).status_code == 404  # the seed
    assert (await client.get("/rekor/api/v2/log/entries/99")).status_code == 404
    assert (await client.get("/rekor/api/v2/log/entries/-1")).status_code == 400

    for prefix in ("/rekor", "/rekor/api/v2"):
        cp = await client.get(f"{prefix}/checkpoint")
        assert cp.status_code == 200 and cp.headers["cache-control"] == "no-cache"
        note = parse_note(cp.content)
        assert note.size == len(requests) + 1

        async def fetch(path: str, prefix: str = prefix) -> bytes:
            r = await client.get(f"{prefix}/{path}")
            assert r.status_code == 200, (path, r.text)
            assert "max-age" in r.headers["cache-control"]
            return r.content

        fetched: dict[str, bytes] = {}
        for n in range(1):
            for kind in ("0", "entries"):
                path = f"tile/{kind}/{n:03d}.p/{note.size}"
                fetched[path] = await fetch(path)
        entries = verify_tiles(lambda p, f=fetched: f[p], note.size, note.root)
        assert entries[1] == base64.b64decode(again.json()["canonicalizedBody"])


async def test_tile_requests_are_validated(client: httpx.AsyncClient) -> None:
    for path in (
        "tile/0/1",
        "tile/64/000",
        "tile/0/x000/001",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/00/000",
        "tile/entries/abc",
    ):
        r = await client.get(f"/rekor/{path}")
        assert r.status_code == 400, path
        assert "tile" in r.json()["message"]
    r = await client.get("/rekor/tile/0/001")
    assert r.status_code == 404
    full = await client.get("/rekor/tile/0/000")  # only a partial tile exists yet
    assert full.status_code == 404


async def test_v2_bad_input_is_4xx_json(client: httpx.AsyncClient, ca: CA) -> None:
    signer = Signer.create(ca)
    good = hashedrekord_v2(signer, b"x")
    cases: list[tuple[bytes, int, str]] = [
        (b"", 400, "empty"),
        (b"{not json", 400, "not valid JSON"),
        (b"[1,2]", 400, "JSON object"),
        (b"[" * 200_000 + b"]" * 200_000, 400, "JSON"),
        (json.dumps({"rekordRequestV002": {}}).encode(), 400, "unknown request field"),
    ]
    tampered = json.loads(json.dumps(good))
    tampered["hashedRekordRequestV002"]["digest"] = base64.b64encode(b"\x01" * 32).decode()
    cases.append((json.dumps(tampered).encode(), 400, "does not verify"))
    for body, status, words in cases:
        r = await client.post("/rekor/api/v2/log/entries", content=body)
        assert r.status_code == status, (body[:40], r.text)
        assert r.json()["code"] == status and words in r.json()["message"], r.text
    r = await client.get("/rekor/api/v2/log/entries")
    assert r.status_code == 405


# ---- Rekor v1 -------------------------------------------------------------------------------


async def test_v1_every_kind_set_proof_and_conflict(
    stack: LogStack, client: httpx.AsyncClient, ca: CA
) -> None:
    signer = Signer.create(ca)
    payload = statement()
    ids = []
    first = hashedrekord_v1(signer, b"one")  # ECDSA is randomised: resubmit the same bytes
    for request in (first, dsse_v1(signer, payload), intoto_v1(signer, payload)):
        r = await client.post("/api/v1/log/entries", json=request)
        assert r.status_code == 201, r.text
        entry_id, entry = _v1_check(stack, r.json())
        assert r.headers["etag"] == entry_id
        assert r.headers["location"] == f"/api/v1/log/entries/{entry_id}"
        assert entry["logIndex"] == len(ids) + 1
        ids.append(entry_id)
    bodies = [
        json.loads(base64.b64decode(v["body"]))
        for i in ids
        for v in (await client.get(f"/api/v1/log/entries/{i}")).json().values()
    ]
    assert bodies[1]["spec"].keys() == {"envelopeHash", "payloadHash", "signatures"}
    assert bodies[2]["kind"] == "intoto"

    dup = await client.post("/api/v1/log/entries", json=first)
    assert dup.status_code == 409
    assert dup.headers["location"] == f"/api/v1/log/entries/{ids[0]}"
    assert dup.json() == {
        "code": 409,
        "message": f"an equivalent entry already exists in the transparency log with UUID {ids[0]}",
    }

    by_index = await client.get("/api/v1/log/entries", params={"logIndex": 2})
    assert list(by_index.json()) == [ids[1]]
    _v1_check(stack, by_index.json())
    for uuid in (ids[2], ids[2][16:], ids[2].upper()):
        r = await client.get(f"/api/v1/log/entries/{uuid}")
        assert r.status_code == 200 and list(r.json()) == [ids[2]]
    assert (await client.get(f"/api/v1/log/entries/{'0' * 16}{ids[0][16:]}")).status_code == 404
    assert (await client.get(f"/api/v1/log/entries/{'ab' * 32}")).status_code == 404
    assert (await client.get("/api/v1/log/entries/nothex")).status_code == 400
    assert (await client.get("/api/v1/log/entries", params={"logIndex": 99})).status_code == 404
    assert (await client.get("/api/v1/log/entries", params={"logIndex": "x"})).status_code == 400

    r = await client.post("/api/v1/log/entries/retrieve", json={"entryUUIDs": ids[:2]})
    assert [next(iter(e)) for e in r.json()] == ids[:2]
    r = await client.post("/api/v1/log/entries/retrieve", json={"logIndexes": [3, 50]})
    assert [next(iter(e)) for e in r.json()] == [ids[2]]
    r = await client.post("/api/v1/log/entries/retrieve", json={"entries": [first]})
    assert [next(iter(e)) for e in r.json()] == [ids[0]]
    r = await client.post("/api/v1/log/entries/retrieve", json={"logIndexes": list(range(11))})
    assert r.status_code == 400 and "1 to 10" in r.json()["message"]


async def test_v1_log_info_consistency_and_public_key(
    stack: LogStack, client: httpx.AsyncClient, ca: CA
) -> None:
    signer = Signer.create(ca)
    for i in range(6):
        assert (
            await client.post("/api/v1/log/entries", json=hashedrekord_v1(signer, b"%d" % i))
        ).status_code == 201
    info = (await client.get("/api/v1/log")).json()
    assert info["treeSize"] == 7 and info["treeID"] == str(TREE_ID)
    assert info["inactiveShards"] == []
    note = parse_note(info["signedTreeHead"].encode())
    assert note.root.hex() == info["rootHash"] and note.size == 7
    verify_note_ecdsa(note, HOST, stack.v1_key.public_key())

    roots = {}
    for size in (3, 7):
        r = await client.get("/api/v1/log/proof", params={"firstSize": 1, "lastSize": size})
        roots[size] = bytes.fromhex(r.json()["rootHash"])
    proof = (await client.get("/api/v1/log/proof", params={"firstSize": 3, "lastSize": 7})).json()
    merkle.verify_consistency(3, 7, roots[3], roots[7], [bytes.fromhex(h) for h in proof["hashes"]])
    assert roots[7] == note.root
    same = (await client.get("/api/v1/log/proof", params={"firstSize": 7})).json()
    assert same == {"rootHash": note.root.hex(), "hashes": []}
    for params in (
        {"firstSize": 0},
        {"firstSize": 5, "lastSize": 3},
        {"lastSize": 99},
        {"firstSize": 1, "treeID": "1"},
    ):
        assert (await client.get("/api/v1/log/proof", params=params)).status_code == 400

    key = await client.get("/api/v1/log/publicKey")
    assert key.headers["content-type"] == "application/x-pem-file"
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    assert spki(load_pem_public_key(key.content)) == spki(stack.v1_key.public_key())


# ---- search ---------------------------------------------------------------------------------


async def test_search_by_digest_identity_and_key_v1_and_v2(
    stack: LogStack, client: httpx.AsyncClient, ca: CA
) -> None:
    alice = Signer.create(ca)
    bob = Signer.create(ca, email=None, uri="https://github.com/o/r/.github/workflows/x.yml@main")
    art = b"searchable artifact"
    digest = hashlib.sha256(art).hexdigest()
    r1 = await client.post("/api/v1/log/entries", json=hashedrekord_v1(alice, art))
    r2 = await client.post("/api/v1/log/entries", json=hashedrekord_v1(bob, art))
    r3 = await client.post("/api/v1/log/entries", json=hashedrekord_v1(alice, b"other"))
    ids = [next(iter(r.json())) for r in (r1, r2, r3)]
    v2 = await client.post("/rekor/api/v2/log/entries", json=hashedrekord_v2(bob, art))
    subject = "cd" * 32
    await client.post("/api/v1/log/entries", json=intoto_v1(alice, statement(subject)))
    await stack.v1.indexer.flush()
    await stack.v2.indexer.flush()

    async def index_retrieve(query: dict[str, Any]) -> list[str]:
        r = await client.post("/api/v1/index/retrieve", json=query)
        assert r.status_code == 200, r.text
        return list(r.json())

    assert await index_retrieve({"hash": f"sha256:{digest}"}) == ids[:2]
    intoto_ids = await index_retrieve({"hash": f"sha256:{subject}"})  # in-toto subject digest
    assert len(intoto_ids) == 1
    assert await index_retrieve({"email": EMAIL.upper()}) == [ids[0], ids[2], *intoto_ids]
    assert await index_retrieve({"hash": f"sha256:{digest}", "email": EMAIL}) == [ids[0]]
    assert await index_retrieve({"hash": f"sha256:{digest}", "email": EMAIL, "operator": "or"}) == [
        *ids,
        *intoto_ids,
    ]
    pk = {"format": "x509", "content": base64.b64encode(pem(bob.cert)).decode()}
    assert await index_retrieve({"publicKey": pk}) == [ids[1]]
    assert (await client.post("/api/v1/index/retrieve", json={})).status_code == 400
    assert (
        await client.post("/api/v1/index/retrieve", json={"hash": "sha256:zz"})
    ).status_code == 400

    found = (
        await client.get("/api/v1/search", params={"identity": EMAIL, "issuer": ISSUER})
    ).json()
    assert [next(iter(e)) for e in found["entries"]][:2] == [ids[0], ids[2]]
    assert found["more"] is False
    page = (await client.get("/api/v1/search", params={"identity": EMAIL, "limit": 1})).json()
    assert page["more"] is True and len(page["entries"]) == 1
    wrong_issuer = (
        await client.get(
            "/api/v1/search", params={"identity": EMAIL, "issuer": "https://elsewhere"}
        )
    ).json()
    assert wrong_issuer["entries"] == []

    v2_found = (
        await client.get(
            "/rekor/api/v2/search",
            params={"uri": "https://github.com/o/r/.github/workflows/x.yml@main", "digest": digest},
        )
    ).json()
    assert [e["logIndex"] for e in v2_found["entries"]] == [v2.json()["logIndex"]]
    _v2_check(stack, v2_found["entries"][0])
    fp = hashlib.sha256(spki(bob.key.public_key())).hexdigest()
    by_key = await client.get("/rekor/api/v2/search", params={"keyFingerprint": f"sha256:{fp}"})
    assert [e["logIndex"] for e in by_key.json()["entries"]] == [v2.json()["logIndex"]]
    assert (await client.get("/rekor/api/v2/search")).status_code == 400
    assert (await client.get("/rekor/api/v2/search", params={"issuer": ISSUER})).status_code == 400


async def test_search_does_not_believe_identities_of_untrusted_certificates(
    stack: LogStack, client: httpx.AsyncClient, ca: CA
) -> None:
    """Issue #13 defect 6: a self-signed certificate carrying alice's SAN and our issuer
    extension is logged (Rekor logs any verifying signature) but must not be found by alice's
    identity; it stays findable by digest and key fingerprint."""
    alice = Signer.create(ca)
    mallory_ca = CA.create()  # same name, same profile: only the key differs
    mallory = Signer.create(mallory_ca)
    self_signed = Signer.create(mallory_ca)
    self_signed.cert = mallory_ca.issue(self_signed.key.public_key())
    art = b"poisoned artifact"
    genuine = await client.post("/api/v1/log/entries", json=hashedrekord_v1(alice, art))
    forged_v1 = await client.post("/api/v1/log/entries", json=hashedrekord_v1(mallory, art))
    forged_v2 = await client.post("/rekor/api/v2/log/entries", json=hashedrekord_v2(mallory, art))
    dsse = await client.post("/api/v1/log/entries", json=intoto_v1(self_signed, statement()))
    assert {r.status_code for r in (genuine, forged_v1, forged_v2, dsse)} == {201}
    await stack.v1.indexer.flush()
    await stack.v2.indexer.flush()
    for params in ({"email": EMAIL}, {"identity": EMAIL, "issuer": ISSUER}):
        found = (await client.get("/api/v1/search", params=params)).json()["entries"]
        assert [next(iter(e)) for e in found] == [next(iter(genuine.json()))], params
        v2 = (await client.get("/rekor/api/v2/search", params=params)).json()["entries"]
        assert v2 == [], params
    by_email = await client.post("/api/v1/index/retrieve", json={"email": EMAIL})
    assert by_email.json() == [next(iter(genuine.json()))]
    fp = hashlib.sha256(spki(mallory.key.public_key())).hexdigest()
    by_key = await client.get("/rekor/api/v2/search", params={"keyFingerprint": f"sha256:{fp}"})
    assert [e["logIndex"] for e in by_key.json()["entries"]] == [forged_v2.json()["logIndex"]]
    digest = hashlib.sha256(art).hexdigest()
    by_digest = await client.get("/api/v1/search", params={"digest": digest})
    assert len(by_digest.json()["entries"]) == 2


async def test_search_index_is_rebuilt_from_the_log(
    stack: LogStack, client: httpx.AsyncClient, ca: CA
) -> None:
    from keyless.services.tlog.identities import TrustedIssuers
    from keyless.services.tlog.indexer import SearchIndexer
    from keyless.storage.memory import MemoryBackend

    signer = Signer.create(ca)
    for i in range(3):
        await client.post("/rekor/api/v2/log/entries", json=hashedrekord_v2(signer, b"%d" % i))
    await stack.v2.indexer.flush()
    from keyless.storage import open_storage

    empty = await open_storage("memory://", backend=MemoryBackend())
    fresh = SearchIndexer(stack.v2_log, empty.search_index, "rekor-v2",
                          trusted=TrustedIssuers([ca.cert]))
    assert await fresh.rebuild() == 4  # seed + 3
    key = f"email:{EMAIL}"
    assert await fresh.lookup([key]) == await stack.v2.indexer.lookup([key]) == [1, 2, 3]
    await empty.close()


# ---- limits and overload ----------------------------------------------------------------------


async def test_limits_name_their_value(ca: CA) -> None:
    stack = await build_stack(limits=TlogLimits(max_body=2048, max_entry=600))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=stack.app), base_url="http://t"
        ) as client:
            signer = Signer.create(ca)
            big = hashedrekord_v2(signer, b"x")
            big["padding"] = "x" * 4096
            r = await client.post("/rekor/api/v2/log/entries", json=big)
            assert r.status_code == 413 and "2048" in r.json()["message"]
            r = await client.post("/api/v1/log/entries", json=big)
            assert r.status_code == 413 and "2048" in r.json()["message"]
            # A valid request whose canonical entry (it embeds the certificate) exceeds 600 bytes.
            r = await client.post("/rekor/api/v2/log/entries", json=hashedrekord_v2(signer, b"x"))
            assert r.status_code == 413
            assert "maximum entry size of 600 bytes" in r.json()["message"]
    finally:
        await stack.close()


async def test_pushback_is_503_with_retry_after(ca: CA) -> None:
    stack = await build_stack(max_pending=0)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=stack.app), base_url="http://t"
        ) as client:
            signer = Signer.create(ca)
            r = await client.post("/rekor/api/v2/log/entries", json=hashedrekord_v2(signer, b"x"))
            assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
            r = await client.post("/api/v1/log/entries", json=hashedrekord_v1(signer, b"x"))
            assert r.status_code == 503 and "retry-after" in r.headers
    finally:
        await stack.close()


def test_leaf_hash_matches_engine() -> None:
    assert leaf_hash(b"abc") == merkle.leaf_hash(b"abc")


async def test_full_tiles_are_immutable_and_level_one_matches(
    stack: LogStack, client: httpx.AsyncClient
) -> None:
    """Past 256 entries: the full level-0 tile is cacheable forever, and level 1 holds its hash."""
    from tlog_support import mth

    await asyncio.gather(*(stack.v2_log.add(b"entry %d" % i) for i in range(299)))
    note = parse_note((await client.get("/rekor/checkpoint")).content)
    assert note.size == 300
    full = await client.get("/rekor/tile/0/000")
    assert full.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert len(full.content) == 8192
    partial = await client.get("/rekor/api/v2/tile/0/001.p/44")
    assert partial.headers["cache-control"] == "public, max-age=3600"
    level1 = await client.get("/rekor/tile/1/000.p/1")
    assert level1.status_code == 200
    assert level1.content == mth([full.content[i:i + 32] for i in range(0, 8192, 32)])
    cache: dict[str, bytes] = {}
    for path in ("tile/0/000", "tile/0/001.p/44", "tile/entries/000", "tile/entries/001.p/44"):
        r = await client.get(f"/rekor/{path}")
        assert r.status_code == 200, path
        cache[path] = r.content
    entries = verify_tiles(cache.__getitem__, 300, note.root)
    assert entries[299] == b"entry 298"
