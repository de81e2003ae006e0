"""The CT log's RFC 6962 API and static-ct-api read path, in-process over the real log engine.

The CA test kit's stack runs :class:`memory_log.MemoryLogEngine` (tests/memory_log.py), i.e. the
real ``TransparencyLog`` over the in-memory storage backend.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette

from keyless.formats import sct as sctmod
from keyless.formats.checkpoint import Checkpoint
from keyless.http.errors import EXCEPTION_HANDLERS
from keyless.merkle import leaf_hash, verify_consistency, verify_inclusion
from keyless.services.ctlog.entries import TimestampedEntry
from keyless.services.ctlog.routes import routes as ctlog_routes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ca"))
from ca_testkit import CAStack, build_stack, make_csr


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[CAStack]:
    built = build_stack(tmp_path / "ca")
    yield built
    await built.engine.close()


@pytest.fixture
async def client(stack: CAStack) -> Any:
    app = Starlette(routes=ctlog_routes(stack.ctlog), exception_handlers=EXCEPTION_HANDLERS)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ct.test") as c:
        yield c


async def _issue(stack: CAStack) -> x509.Certificate:
    _, csr_pem = make_csr()
    issued = await stack.ca.issue_for_csr(stack.issuers["email"].token(),
                                          x509.load_pem_x509_csr(csr_pem))
    return issued.leaf


def _der(c: x509.Certificate) -> str:
    return base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()


def _sth_ok(stack: CAStack, sth: dict[str, Any]) -> None:
    ds = base64.b64decode(sth["tree_head_signature"])
    assert ds[:2] == bytes([4, 3])
    sig = ds[4:]
    assert len(sig) == int.from_bytes(ds[2:4], "big")
    signed = struct.pack(">BBQQ", 0, 1, sth["timestamp"], sth["tree_size"]) + base64.b64decode(
        sth["sha256_root_hash"])
    stack.ct_signer.public_key().verify(sig, signed, ec.ECDSA(hashes.SHA256()))


async def test_add_chain_gives_a_verifiable_x509_sct_and_is_idempotent(
    client: Any, stack: CAStack
) -> None:
    leaf = await _issue(stack)
    inter, root = stack.ca.material.chain
    body = {"chain": [_der(leaf), _der(inter), _der(root)]}
    resp = await client.post("/ct/v1/add-chain", json=body)
    assert resp.status_code == 200, resp.text
    sct = sctmod.SignedCertificateTimestamp.from_add_chain_response(resp.json())
    data = sctmod.x509_signed_data(sct, leaf.public_bytes(serialization.Encoding.DER))
    sctmod.verify_sct(sct, data, stack.ct_signer.public_key())
    size_before = (await stack.engine.tree())[0]
    again = await client.post("/ct/v1/add-chain", json={"chain": [_der(leaf), _der(inter)]})
    # the same entry (same timestamp and log ID); ECDSA re-signing gives a new signature value
    same = sctmod.SignedCertificateTimestamp.from_add_chain_response(again.json())
    assert (same.timestamp_ms, same.log_id) == (sct.timestamp_ms, sct.log_id)
    sctmod.verify_sct(same, data, stack.ct_signer.public_key())
    assert (await stack.engine.tree())[0] == size_before


async def test_add_pre_chain_from_outside(client: Any, stack: CAStack) -> None:
    import datetime as dt

    from keyless.formats.x509profile import LeafProfile, build_precertificate, sigstore_extensions

    inter, _root = stack.ca.material.chain
    key = ec.generate_private_key(ec.SECP256R1())
    profile = LeafProfile(key.public_key(), "x@y.z", "email",
                          dt.datetime.now(dt.UTC).replace(microsecond=0),
                          sigstore_extensions("email", "https://i", {"sub": "s"}))
    pre = build_precertificate(profile, inter, stack.ca.material.signer)
    resp = await client.post("/ct/v1/add-pre-chain", json={"chain": [_der(pre), _der(inter)]})
    assert resp.status_code == 200, resp.text
    sct = sctmod.SignedCertificateTimestamp.from_add_chain_response(resp.json())
    from keyless.formats.x509profile import strip_extension

    tbs = strip_extension(pre.tbs_certificate_bytes, sctmod.POISON_OID)
    ikh = hashlib.sha256(inter.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).digest()
    sctmod.verify_sct(sct, sctmod.precert_signed_data(sct, ikh, tbs), stack.ct_signer.public_key())
    # a precert is refused by add-chain, a final cert by add-pre-chain
    wrong = await client.post("/ct/v1/add-chain", json={"chain": [_der(pre), _der(inter)]})
    assert wrong.status_code == 400 and "add-pre-chain" in wrong.json()["message"]
    leaf = await _issue(stack)
    wrong = await client.post("/ct/v1/add-pre-chain", json={"chain": [_der(leaf), _der(inter)]})
    assert wrong.status_code == 400 and "poison" in wrong.json()["message"]


async def test_a_leaf_key_cannot_get_a_precertificate_logged(client: Any, stack: CAStack) -> None:
    """Issue #13 defect 5: bob's precertificate signed with alice's 10-minute leaf key, chained
    [forged, alice_leaf, intermediate], must not get an SCT."""
    import datetime as dt

    from keyless.formats.x509profile import LeafProfile, build_precertificate, sigstore_extensions
    from keyless.keys import InMemorySigner

    alice_key, csr_pem = make_csr()
    alice = (await stack.ca.issue_for_csr(stack.issuers["email"].token(),
                                          x509.load_pem_x509_csr(csr_pem))).leaf
    inter, _root = stack.ca.material.chain
    profile = LeafProfile(ec.generate_private_key(ec.SECP256R1()).public_key(), "bob@y.z",
                          "email", dt.datetime.now(dt.UTC).replace(microsecond=0),
                          sigstore_extensions("email", "https://i", {"sub": "bob"}))
    forged = build_precertificate(profile, alice, InMemorySigner(alice_key))
    size_before = (await stack.engine.tree())[0]
    resp = await client.post("/ct/v1/add-pre-chain",
                             json={"chain": [_der(forged), _der(alice), _der(inter)]})
    assert resp.status_code == 400, resp.text
    assert "chain[1] is not a CA certificate" in resp.json()["message"]
    assert (await stack.engine.tree())[0] == size_before


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"chain": []}, "empty"),
        ({"chain": "x"}, "list"),
        ({"chain": ["%%"]}, "base64"),
        ({"chain": ["AAAA"]}, "not a DER"),
        ({}, "list"),
    ],
)
async def test_bad_submissions(client: Any, body: dict[str, Any], needle: str) -> None:
    resp = await client.post("/ct/v1/add-chain", json=body)
    assert resp.status_code == 400
    assert needle in resp.json()["message"]


async def test_foreign_chain_is_refused(client: Any, stack: CAStack, tmp_path: Path) -> None:
    other = build_stack(tmp_path / "other")
    leaf = await _issue(other)
    resp = await client.post("/ct/v1/add-chain",
                             json={"chain": [_der(leaf), _der(other.ca.material.chain[0])]})
    assert resp.status_code == 400
    assert "root" in resp.json()["message"]
    # a broken link: our intermediate did not sign the other CA's leaf
    resp = await client.post("/ct/v1/add-chain",
                             json={"chain": [_der(leaf), _der(stack.ca.material.chain[0])]})
    assert resp.status_code == 400 and "not signed" in resp.json()["message"]


async def test_read_api_proofs_verify(client: Any, stack: CAStack) -> None:
    first = (await client.get("/ct/v1/get-sth")).json()
    _sth_ok(stack, first)
    leaves = [await _issue(stack) for _ in range(5)]
    sth = (await client.get("/ct/v1/get-sth")).json()
    _sth_ok(stack, sth)
    size, root = sth["tree_size"], base64.b64decode(sth["sha256_root_hash"])
    assert size == first["tree_size"] + 5
    cons = (await client.get("/ct/v1/get-sth-consistency",
                             params={"first": first["tree_size"], "second": size})).json()
    verify_consistency(first["tree_size"], size, base64.b64decode(first["sha256_root_hash"]), root,
                       [base64.b64decode(h) for h in cons["consistency"]])
    entries = (await client.get(f"/ct/v1/get-entries?start={size - 5}&end={size + 10}")).json()
    assert len(entries["entries"]) == 5
    for leaf, e in zip(leaves, entries["entries"], strict=True):
        leaf_input = base64.b64decode(e["leaf_input"])
        entry = TimestampedEntry.from_merkle_tree_leaf(leaf_input)
        assert entry.certificate == leaf.tbs_precertificate_bytes
        extra = base64.b64decode(e["extra_data"])
        n = int.from_bytes(extra[:3], "big")
        pre = x509.load_der_x509_certificate(extra[3:3 + n])
        assert pre.serial_number == leaf.serial_number
        h = base64.b64encode(leaf_hash(leaf_input)).decode()
        proof = (await client.get("/ct/v1/get-proof-by-hash",
                                  params={"hash": h, "tree_size": size})).json()
        verify_inclusion(leaf_hash(leaf_input), proof["leaf_index"], size,
                         [base64.b64decode(p) for p in proof["audit_path"]], root)
    roots = (await client.get("/ct/v1/get-roots")).json()["certificates"]
    assert roots == [_der(stack.ca.material.root)]


@pytest.mark.parametrize(
    "url",
    [
        "/ct/v1/get-sth-consistency?first=5&second=1",
        "/ct/v1/get-sth-consistency?first=1&second=999",
        "/ct/v1/get-sth-consistency?first=a&second=2",
        "/ct/v1/get-entries?start=5&end=1",
        "/ct/v1/get-entries?start=999&end=1000",
        "/ct/v1/get-entries",
        "/ct/v1/get-proof-by-hash?hash=AAAA&tree_size=1",
        "/ct/v1/get-proof-by-hash?hash=%25%25&tree_size=1",
    ],
)
async def test_bad_read_queries_are_400(client: Any, url: str) -> None:
    resp = await client.get(url)
    assert resp.status_code == 400, resp.text
    assert resp.json()["message"]


async def test_unknown_hash_is_404(client: Any) -> None:
    h = base64.b64encode(b"\x01" * 32).decode()
    resp = await client.get("/ct/v1/get-proof-by-hash", params={"hash": h, "tree_size": 1})
    assert resp.status_code == 404


async def test_static_ct_read_path(client: Any, stack: CAStack) -> None:
    leaves = [await _issue(stack) for _ in range(3)]
    text = (await client.get("/checkpoint")).content
    body, _, sigline = text.partition(b"\n\n")
    cp = Checkpoint.from_text(body + b"\n")
    assert cp.origin == "localhost/ctlog" and cp.size == 5
    assert sigline.startswith("\u2014 localhost/ctlog ".encode())
    raw = base64.b64decode(sigline.split(b" ")[-1])
    key_id = hashlib.sha256(b"localhost/ctlog\n\x05" + stack.ctlog.log_id).digest()[:4]
    assert raw[:4] == key_id
    ts = int.from_bytes(raw[4:12], "big")
    sig = raw[16:]
    stack.ct_signer.public_key().verify(
        sig, struct.pack(">BBQQ", 0, 1, ts, cp.size) + cp.root_hash, ec.ECDSA(hashes.SHA256()))
    tile = (await client.get("/tile/0/000.p/5")).content
    assert len(tile) == 5 * 32
    data = (await client.get("/tile/data/000.p/5")).content
    assert leaves[0].tbs_precertificate_bytes in data
    # issuers by fingerprint
    inter = stack.ca.material.chain[0].public_bytes(serialization.Encoding.DER)
    fp = hashlib.sha256(inter).hexdigest()
    resp = await client.get(f"/issuer/{fp}")
    assert resp.content == inter and resp.headers["content-type"] == "application/pkix-cert"
    assert (await client.get("/issuer/" + "0" * 64)).status_code == 404
    assert (await client.get("/tile/0/000")).status_code == 404  # no full tile yet


async def test_memory_engine_is_the_real_engine_started_on_first_use() -> None:
    from keyless.log import TransparencyLog
    from memory_log import MemoryKeyValue, MemoryLogEngine

    engine = MemoryLogEngine(seed=2)
    assert isinstance(engine, TransparencyLog)
    size, _ = await engine.tree()  # a read starts it: the seed leaves are there
    assert size == 2 and (await engine.entry(0)).leaf == b"keyless-seed-0"
    added = await engine.add(b"leaf")
    assert (added.index, added.tree_size) == (2, 3)
    assert (await engine.add(b"leaf")).duplicate
    await engine.close()
    now = [1000.0]
    kv = MemoryKeyValue(lambda: now[0])
    assert await kv.put_if_absent("ns", "k", b"v", 1010.0) is None
    assert await kv.put_if_absent("ns", "k", b"w", 1010.0) == b"v"
    now[0] = 1011.0
    assert await kv.get("ns", "k") is None


async def test_add_chain_spends_a_per_client_budget(stack: CAStack) -> None:
    from keyless.http.budget import ClientBudget

    budget = ClientBudget(burst=2, rate=0.001)
    app = Starlette(routes=ctlog_routes(stack.ctlog, budget),
                    exception_handlers=EXCEPTION_HANDLERS)
    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://ct.test") as c:
        for _ in range(2):
            assert (await c.post("/ct/v1/add-chain", json={"chain": []})).status_code == 400
        for path in ("/ct/v1/add-chain", "/ct/v1/add-pre-chain"):
            spent = await c.post(path, json={"chain": []})
            assert spent.status_code == 429 and int(spent.headers["Retry-After"]) >= 1
        assert (await c.get("/ct/v1/get-sth")).status_code == 200
