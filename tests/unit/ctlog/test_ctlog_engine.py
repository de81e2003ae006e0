"""The CT personality over the real log engine (keyless.log.TransparencyLog) on memory and SQLite.

Same checks as over the stand-in engine where they matter: CA issuance through the engine, SCTs
verify, proofs verify against signed tree heads, get-entries and the static-ct data tiles carry
the precertificates, and a restart keeps everything.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from starlette.applications import Starlette

from keyless.formats.note_keys import NoteSigner
from keyless.http.errors import EXCEPTION_HANDLERS
from keyless.identity import IdentityVerifier, IssuerConfig
from keyless.keys import InMemorySigner
from keyless.log import TransparencyLog
from keyless.merkle import leaf_hash, verify_inclusion
from keyless.services.ca import CAService, TokenReplayGuard, load_or_create
from keyless.services.ctlog import CTLogService
from keyless.services.ctlog.entries import TimestampedEntry
from keyless.services.ctlog.routes import routes as ctlog_routes
from keyless.storage import open_storage

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ca"))
from ca_testkit import ISSUER, TestIssuer, independent_sct_check, make_csr

ORIGIN = "localhost/ctlog"


async def _open(url: str, tmp: Path, ct_key: InMemorySigner) -> tuple[Any, TransparencyLog]:
    storage = await open_storage(url, data_dir=tmp)
    engine = TransparencyLog(storage, name="ctlog", origin=ORIGIN,
                             signer=NoteSigner.for_key(ORIGIN, ct_key))
    await engine.start()
    return storage, engine


async def _build(url: str, tmp_path: Path) -> dict[str, Any]:
    ct_key = InMemorySigner(ec.generate_private_key(ec.SECP256R1()))
    storage, engine = await _open(url, tmp_path, ct_key)
    material = load_or_create(tmp_path / "ca")
    issuer = TestIssuer()
    ctlog = CTLogService(engine=engine, kv=storage.kv, signer=ct_key, roots=[material.root],
                         origin=ORIGIN)
    verifier = IdentityVerifier([IssuerConfig(ISSUER, "email")], httpx.AsyncClient(),
                                local_jwks={ISSUER: issuer.jwks})
    ca = CAService(material=material, identity=verifier, ctlog=ctlog,
                   replay_guard=TokenReplayGuard())
    return {"url": url, "ct_key": ct_key, "storage": storage, "engine": engine, "ctlog": ctlog,
            "ca": ca, "issuer": issuer, "material": material, "tmp": tmp_path}


@pytest.fixture(params=["memory", "sqlite"])
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/k.db"
    built = await _build(url, tmp_path)
    yield built
    await env_close(built["engine"], built["storage"])


async def env_close(engine: TransparencyLog, storage: Any) -> None:
    await engine.close()
    close = getattr(storage, "close", None)
    if close is not None:
        result = close()
        if hasattr(result, "__await__"):
            await result


async def test_issue_through_the_engine(env: dict[str, Any]) -> None:
    ca: CAService = env["ca"]
    leaves = []
    for _ in range(4):
        _, csr = make_csr()
        issued = await ca.issue_for_csr(env["issuer"].token(), x509.load_pem_x509_csr(csr))
        independent_sct_check(issued.leaf, env["material"].issuer, env["ct_key"].public_key())
        leaves.append(issued.leaf)
    app = Starlette(routes=ctlog_routes(env["ctlog"]),
                    exception_handlers=EXCEPTION_HANDLERS)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://ct.test") as c:
        sth = (await c.get("/ct/v1/get-sth")).json()
        assert sth["tree_size"] == 4  # four precerts, no seed
        root = base64.b64decode(sth["sha256_root_hash"])
        entries = (await c.get("/ct/v1/get-entries?start=0&end=4")).json()["entries"]
        assert len(entries) == 4
        for leaf, e in zip(leaves, entries, strict=True):
            leaf_input = base64.b64decode(e["leaf_input"])
            assert TimestampedEntry.from_merkle_tree_leaf(leaf_input).certificate == (
                leaf.tbs_precertificate_bytes)
            h = leaf_hash(leaf_input)
            proof = (await c.get("/ct/v1/get-proof-by-hash", params={
                "hash": base64.b64encode(h).decode(), "tree_size": 4})).json()
            verify_inclusion(h, proof["leaf_index"], 4,
                             [base64.b64decode(p) for p in proof["audit_path"]], root)
        tile = (await c.get("/tile/0/000.p/4")).content
        assert len(tile) == 128
        data = (await c.get("/tile/data/000.p/4")).content
        # the data tile is exactly four TileLeafs whose Merkle leaves hash to the level-0 tile
        pos = 0
        for i, leaf in enumerate(leaves):
            entry, used = TimestampedEntry.decode(data[pos:])
            assert entry.certificate == leaf.tbs_precertificate_bytes
            pos += used
            n = int.from_bytes(data[pos:pos + 3], "big")
            pos += 3 + n  # the precertificate
            m = int.from_bytes(data[pos:pos + 2], "big")
            pos += 2 + m  # issuer fingerprints
            assert leaf_hash(entry.merkle_tree_leaf()) == tile[32 * i:32 * i + 32]
        assert pos == len(data)


async def test_sqlite_restart_keeps_the_log(tmp_path: Path) -> None:
    env = await _build(f"sqlite:///{tmp_path}/k.db", tmp_path)
    ca: CAService = env["ca"]
    _, csr = make_csr()
    issued = await ca.issue_for_csr(env["issuer"].token(), x509.load_pem_x509_csr(csr))
    size, root = await env["engine"].tree()
    await env_close(env["engine"], env["storage"])
    storage, engine = await _open(env["url"], env["tmp"], env["ct_key"])
    env["engine"], env["storage"] = engine, storage
    assert await engine.tree() == (size, root)
    ctlog = CTLogService(engine=engine, kv=storage.kv, signer=env["ct_key"],
                         roots=[env["material"].root], origin=ORIGIN)
    entries = await ctlog.entries(size - 1, size - 1)
    assert TimestampedEntry.from_merkle_tree_leaf(entries[0][0]).certificate == (
        issued.leaf.tbs_precertificate_bytes)
    assert entries[0][1]  # extra_data rebuilt from the stored issuer certificates
    await env_close(engine, storage)


async def test_static_ct_reader_and_rfc6962_clients_agree_on_leaf_index(
    env: dict[str, Any],
) -> None:
    """c2sp.org/static-ct-api "SCT Extension": every SCT and every logged entry names its index.

    Checked with an independent reader (static_ct_check): the embedded SCTs of CA-issued
    certificates and the SCT of an ``add-chain`` carry ``leaf_index``; the data tile entry at that
    index is that certificate and carries the same extensions; its MerkleTreeLeaf hashes to the
    level-0 tile and the tiles to the checkpoint root; an RFC 6962 client rebuilding the leaf from
    certificate + SCT finds it with get-proof-by-hash at that index and in get-entries.
    """
    import static_ct_check as sc

    ca: CAService = env["ca"]
    key = env["ct_key"].public_key()
    ctlog: CTLogService = env["ctlog"]
    inter, root_cert = env["material"].chain
    issued = []
    for _ in range(5):
        _, csr = make_csr()
        issued.append((await ca.issue_for_csr(env["issuer"].token(),
                                              x509.load_pem_x509_csr(csr))).leaf)
    app = Starlette(routes=ctlog_routes(ctlog), exception_handlers=EXCEPTION_HANDLERS)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://ct.test") as c:
        # an ordinary certificate through add-chain: an x509_entry, and a resubmission
        ders = [base64.b64encode(x.public_bytes(Encoding.DER)).decode()
                for x in (issued[0], inter, root_cert)]
        body = (await c.post("/ct/v1/add-chain", json={"chain": ders})).json()
        again = (await c.post("/ct/v1/add-chain", json={"chain": ders})).json()
        assert again["extensions"] == body["extensions"]
        chain_sct = sc.RawSCT(base64.b64decode(body["id"]), body["timestamp"],
                              base64.b64decode(body["extensions"]),
                              base64.b64decode(body["signature"]))

        size, root = sc.verify_checkpoint((await c.get("/checkpoint")).content, ORIGIN,
                                          ctlog.log_id, key)
        assert size == 6
        hashes_ = (await c.get(f"/tile/0/000.p/{size}")).content
        tile_hashes = [hashes_[i:i + 32] for i in range(0, len(hashes_), 32)]
        entries = sc.parse_data_tile((await c.get(f"/tile/data/000.p/{size}")).content)
        assert len(entries) == size and sc.mth(tile_hashes) == root
        for i, entry in enumerate(entries):
            assert sc.leaf_index(entry.extensions) == i
            assert sc.sha256(b"\x00" + entry.merkle_tree_leaf) == tile_hashes[i]
            assert entry.fingerprints[0] == sc.sha256(inter.public_bytes(Encoding.DER))

        async def rfc6962_client(leaf: bytes, sct: sc.RawSCT) -> int:
            sc.verify_sct_signature(sct, leaf, key)
            h = sc.sha256(b"\x00" + leaf)
            proof = (await c.get("/ct/v1/get-proof-by-hash", params={
                "hash": base64.b64encode(h).decode(), "tree_size": size})).json()
            verify_inclusion(h, proof["leaf_index"], size,
                             [base64.b64decode(p) for p in proof["audit_path"]], root)
            index: int = proof["leaf_index"]
            got = (await c.get(f"/ct/v1/get-entries?start={index}&end={index}")).json()
            assert base64.b64decode(got["entries"][0]["leaf_input"]) == leaf
            return index

        for cert in issued:
            (sct,) = sc.embedded_scts(cert)
            index = sc.leaf_index(sct.extensions)
            assert entries[index].certificate == cert.tbs_precertificate_bytes
            assert entries[index].extensions == sct.extensions
            assert entries[index].timestamp_ms == sct.timestamp_ms
            lib_sct = next(iter(cert.extensions.get_extension_for_class(
                x509.PrecertificateSignedCertificateTimestamps).value))
            assert lib_sct.extension_bytes == sct.extensions  # cryptography reads it alike
            assert await rfc6962_client(sc.precert_leaf(cert, inter, sct), sct) == index
        index = sc.leaf_index(chain_sct.extensions)
        assert index == 5 and entries[index].entry_type == 0
        assert entries[index].certificate == issued[0].public_bytes(Encoding.DER)
        leaf = sc.x509_leaf(issued[0].public_bytes(Encoding.DER), chain_sct)
        assert await rfc6962_client(leaf, chain_sct) == index


async def test_entries_logged_before_leaf_index_are_answered_as_logged(
    env: dict[str, Any],
) -> None:
    """A log written before the leaf_index extension (empty extensions) keeps working.

    A resubmission of such an entry is answered from the stored leaf, so its SCT has empty
    extensions and still matches the MerkleTreeLeaf; new entries after it name their index.
    """
    from keyless.formats import sct as sctmod
    from keyless.services.ctlog.entries import tile_leaf
    from keyless.services.ctlog.service import digest

    ca: CAService = env["ca"]
    ctlog: CTLogService = env["ctlog"]
    engine: TransparencyLog = env["engine"]
    key = env["ct_key"].public_key()
    inter, root_cert = (c.public_bytes(Encoding.DER) for c in env["material"].chain)
    _, csr = make_csr()
    final = (await ca.issue_for_csr(env["issuer"].token(), x509.load_pem_x509_csr(csr))).leaf
    final_der = final.public_bytes(Encoding.DER)
    legacy = TimestampedEntry(1234, sctmod.ENTRY_TYPE_X509, final_der)
    added = await engine.add(legacy.merkle_tree_leaf(),
                             bundle_entry=tile_leaf(legacy, None, [inter, root_cert]),
                             dedup_key=digest(b"keyless-ct-entry\0" b"0" + final_der))
    assert added.index == 1
    sct = await ctlog.add_chain([final_der, inter, root_cert], precert=False)
    assert (sct.timestamp_ms, sct.extensions) == (1234, b"")
    sctmod.verify_sct(sct, sctmod.x509_signed_data(sct, final_der), key)
    ((leaf_input, _extra),) = await ctlog.entries(1, 1)
    assert leaf_input == legacy.merkle_tree_leaf()
    _, csr = make_csr()
    await ca.issue_for_csr(env["issuer"].token(), x509.load_pem_x509_csr(csr))
    ((leaf_input, _extra),) = await ctlog.entries(2, 2)
    assert sctmod.leaf_index_of(TimestampedEntry.from_merkle_tree_leaf(leaf_input).extensions) == 2


async def test_the_ct_log_asks_the_engine_for_no_inclusion_proof(env: dict[str, Any]) -> None:
    """An SCT needs no inclusion proof: the CT log does not make the engine compute one."""
    engine: TransparencyLog = env["engine"]
    asked: list[bool] = []
    add_at_index = engine.add_at_index

    async def spy(entry_at: Any, *, dedup_key: bytes, proof: bool = True) -> Any:
        asked.append(proof)
        result = await add_at_index(entry_at, dedup_key=dedup_key, proof=proof)
        assert result.inclusion_proof == []
        return result

    engine.add_at_index = spy  # type: ignore[method-assign]
    _, csr = make_csr()
    issued = await env["ca"].issue_for_csr(env["issuer"].token(), x509.load_pem_x509_csr(csr))
    independent_sct_check(issued.leaf, env["material"].issuer, env["ct_key"].public_key())
    assert asked == [False]
