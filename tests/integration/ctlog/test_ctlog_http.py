"""The CT log over real HTTP on SQLite: the CA issues through it, a monitor audits it, a restart
keeps it.

uvicorn on a free port serves the CA at the root and the CT log at /ctlog; the log engine is
keyless.log.TransparencyLog on a SQLite database in a per-test directory. The audit uses only
the public RFC 6962 API and keyless.merkle's verifiers.
"""

from __future__ import annotations

import base64
import contextlib
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
from starlette.routing import Mount

from keyless.formats.note_keys import NoteSigner
from keyless.formats.sct import leaf_index_of
from keyless.http.errors import EXCEPTION_HANDLERS
from keyless.identity import IdentityVerifier, IssuerConfig
from keyless.log import TransparencyLog
from keyless.merkle import leaf_hash, verify_consistency, verify_inclusion
from keyless.services.ca import CAService, TokenReplayGuard, load_or_create
from keyless.services.ca.routes import routes as ca_routes
from keyless.services.ctlog import CTLogService
from keyless.services.ctlog.entries import TimestampedEntry
from keyless.services.ctlog.routes import routes as ctlog_routes
from keyless.storage import open_storage
from keyless.storage.keyfiles import load_or_create_key

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "ca"))
from ca_testkit import ISSUER, TestIssuer, UvicornThread, make_csr, pop_request

pytestmark = pytest.mark.integration
ORIGIN = "localhost/ctlog"


def make_app(data: Path, issuer: TestIssuer) -> tuple[Starlette, dict[str, Any]]:
    """The CA + CT log app over SQLite in ``data`` (keys reused across restarts)."""
    state: dict[str, Any] = {}
    ct_key = load_or_create_key(data / "ct.key")
    material = load_or_create(data / "ca")
    state.update(ct_key=ct_key, material=material)
    app = Starlette(exception_handlers=EXCEPTION_HANDLERS)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        storage = await open_storage(f"sqlite:///{data}/keyless.db", data_dir=data)
        engine = TransparencyLog(storage, name="ctlog", origin=ORIGIN,
                                 signer=NoteSigner.for_key(ORIGIN, ct_key))
        await engine.start()
        ctlog = CTLogService(engine=engine, kv=storage.kv, signer=ct_key,
                             roots=[material.root], origin=ORIGIN)
        verifier = IdentityVerifier([IssuerConfig(ISSUER, "email")], httpx.AsyncClient(),
                                    local_jwks={ISSUER: issuer.jwks})
        ca = CAService(material=material, identity=verifier, ctlog=ctlog,
                       replay_guard=TokenReplayGuard())
        app.router.routes.extend(ca_routes(ca))
        app.router.routes.append(Mount("/ctlog", routes=ctlog_routes(ctlog)))
        yield
        await engine.close()
        await storage.close()

    app.router.lifespan_context = lifespan
    return app, state


def _sth(c: httpx.Client, ct_key: Any) -> tuple[int, bytes]:
    sth = c.get("/ctlog/ct/v1/get-sth").json()
    ds = base64.b64decode(sth["tree_head_signature"])
    root = base64.b64decode(sth["sha256_root_hash"])
    signed = struct.pack(">BBQQ", 0, 1, sth["timestamp"], sth["tree_size"]) + root
    ct_key.public_key().verify(ds[4:], signed, ec.ECDSA(hashes.SHA256()))
    return sth["tree_size"], root


def _audit(c: httpx.Client, ct_key: Any, leaves: list[x509.Certificate]) -> tuple[int, bytes]:
    size, root = _sth(c, ct_key)
    entries = c.get("/ctlog/ct/v1/get-entries", params={"start": 0, "end": size - 1}).json()
    assert len(entries["entries"]) == size
    by_tbs = {}
    for e in entries["entries"]:
        leaf_input = base64.b64decode(e["leaf_input"])
        by_tbs[TimestampedEntry.from_merkle_tree_leaf(leaf_input).certificate] = leaf_input
    for leaf in leaves:
        leaf_input = by_tbs[leaf.tbs_precertificate_bytes]
        h = leaf_hash(leaf_input)
        proof = c.get("/ctlog/ct/v1/get-proof-by-hash", params={
            "hash": base64.b64encode(h).decode(), "tree_size": size}).json()
        verify_inclusion(h, proof["leaf_index"], size,
                         [base64.b64decode(p) for p in proof["audit_path"]], root)
        # static-ct-api: the embedded SCT names the index the RFC 6962 API finds the entry at
        (sct,) = leaf.extensions.get_extension_for_class(
            x509.PrecertificateSignedCertificateTimestamps).value
        assert leaf_index_of(sct.extension_bytes) == proof["leaf_index"]
    return size, root


def test_issue_audit_restart(tmp_path: Path) -> None:
    issuer = TestIssuer()
    app, state = make_app(tmp_path, issuer)
    leaves: list[x509.Certificate] = []
    with UvicornThread(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        for i in range(4):
            key = ec.generate_private_key(ec.SECP256R1())
            resp = c.post("/api/v2/signingCert",
                          json=pop_request(issuer.token(sub=f"s{i}"), key, "alice@example.com"))
            assert resp.status_code == 200, resp.text
            pem = resp.json()["signedCertificateEmbeddedSct"]["chain"]["certificates"][0]
            leaves.append(x509.load_pem_x509_certificate(pem.encode()))
        size1, root1 = _audit(c, state["ct_key"], leaves)
        assert size1 == 4
        # an outside submitter logs one of the final certificates (x509 entry)
        der = [base64.b64encode(x.public_bytes(serialization.Encoding.DER)).decode()
               for x in (leaves[0], state["material"].chain[0])]
        assert c.post("/ctlog/ct/v1/add-chain", json={"chain": der}).status_code == 200
        fp = hashlib.sha256(state["material"].chain[0].public_bytes(
            serialization.Encoding.DER)).hexdigest()
        assert c.get(f"/ctlog/issuer/{fp}").status_code == 200
    app2, state2 = make_app(tmp_path, issuer)
    with UvicornThread(app2) as url, httpx.Client(base_url=url, timeout=30) as c:
        size2, root2 = _sth(c, state2["ct_key"])
        assert size2 == size1 + 1
        proof = c.get("/ctlog/ct/v1/get-sth-consistency",
                      params={"first": size1, "second": size2}).json()["consistency"]
        verify_consistency(size1, size2, root1, root2, [base64.b64decode(p) for p in proof])
        _, csr = make_csr()
        resp = c.post("/api/v2/signingCert",
                      json={"certificateSigningRequest": base64.b64encode(csr).decode()},
                      headers={"Authorization": f"Bearer {issuer.token(sub='after')}"})
        assert resp.status_code == 200
        pem = resp.json()["signedCertificateEmbeddedSct"]["chain"]["certificates"][0]
        leaves.append(x509.load_pem_x509_certificate(pem.encode()))
        _audit(c, state2["ct_key"], leaves)
        assert c.get("/ctlog/checkpoint").text.startswith(f"{ORIGIN}\n{size2 + 1}\n")
