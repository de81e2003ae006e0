"""The monitor against a Rekor v1 API served over loopback HTTP (no tiles: the right edge of the
tree is kept in the state), honest and then dishonest."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.formats.checkpoint import Checkpoint, sign_checkpoint
from keyless.formats.jsonreader import ValidityPeriod
from keyless.formats.note_keys import NoteSigner, ecdsa_key_id
from keyless.formats.trustroot import TransparencyLogInstance, TrustedRoot
from keyless.keys import InMemorySigner
from keyless.merkle import MemoryTree, leaf_hash
from keyless.monitor.events import EventSink
from keyless.monitor.follow import Follower, LogTarget
from keyless.monitor.state import MonitorState
from keyless.monitor.watch import Watch
from keyless.trust.material import LogKey, TrustMaterial

WATCHED = ec.generate_private_key(ec.SECP256R1()).public_key()
OTHER = ec.generate_private_key(ec.SECP256R1()).public_key()


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


FINGERPRINT = "sha256:" + hashlib.sha256(_spki(WATCHED)).hexdigest()


def body(key: ec.EllipticCurvePublicKey, n: int) -> bytes:
    pem = key.public_bytes(serialization.Encoding.PEM,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return json.dumps({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": "sha256", "value": f"{n:064x}"}},
        "signature": {"content": "AAAA",
                      "publicKey": {"content": base64.b64encode(pem).decode()}}}}).encode()


class RekorV1:
    """A Rekor v1 read API over a list of entry bodies."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.key = ec.generate_private_key(ec.SECP256R1())
        log = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: int(v[0]) for k, v in parse_qs(url.query).items()}
                answer = log.answer(url.path, query)
                data = json.dumps(answer).encode() if answer is not None else b""
                self.send_response(200 if answer is not None else 404)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.url = f"http://{self.host}"

    def answer(self, path: str, query: dict[str, int]) -> object:
        tree = MemoryTree(leaf_hash(b) for b in self.bodies)
        size = len(self.bodies)
        if path == "/api/v1/log":
            signer = NoteSigner.ecdsa(self.host, InMemorySigner(self.key))
            cp = Checkpoint(f"{self.host} - 42", size, tree.root(size))
            return {"signedTreeHead": sign_checkpoint(cp, signer).decode(), "treeSize": size}
        if path == "/api/v1/log/proof":
            proof = tree.consistency_proof(query["firstSize"], query["lastSize"])
            return {"hashes": [h.hex() for h in proof]}
        if path == "/api/v1/log/entries" and query["logIndex"] < size:
            i = query["logIndex"]
            return {f"{i:064x}": {"body": base64.b64encode(self.bodies[i]).decode(),
                                  "logIndex": i}}
        return None

    def target(self) -> LogTarget:
        public = self.key.public_key()
        instance = TransparencyLogInstance(
            self.url, "SHA2_256", _spki(public), "PKIX_ECDSA_P256_SHA_256",
            ValidityPeriod(datetime.now(UTC) - timedelta(days=1)), ecdsa_key_id(public),
        )
        return LogTarget(self.url, LogKey(instance, public), "rekor-v1")


@pytest.fixture
def log() -> Iterator[RekorV1]:
    served = RekorV1()
    try:
        yield served
    finally:
        served.server.shutdown()
        served.server.server_close()


def run(log: RekorV1, state: MonitorState, *, from_now: bool = False) -> list[dict[str, object]]:
    out = io.StringIO()
    watch = Watch(TrustMaterial(TrustedRoot((), (), ())), fingerprints=[FINGERPRINT])
    Follower(state, watch, EventSink(out), from_now=from_now).run(log.target())
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_rekor_v1_catch_up_fork_and_tampered_edge(log: RekorV1, tmp_path: Path) -> None:
    state = MonitorState(tmp_path / "state.db")
    log.bodies = [body(WATCHED if i in {2, 9} else OTHER, i) for i in range(10)]
    events = run(log, state, from_now=True)
    assert [e["event"] for e in events] == ["checkpoint"]
    log.bodies += [body(WATCHED, 10), body(OTHER, 11)]
    events = run(log, state)  # rebuilds the tree from 0, reports only what is new
    assert [e["index"] for e in events if e["event"] == "match"] == [10]
    assert events[0]["digest"] == f"sha256:{10:064x}"
    log.bodies += [body(WATCHED, 12)]
    assert [e.get("index") for e in run(log, state)] == [12, None]
    honest = list(log.bodies)
    log.bodies[5] = body(WATCHED, 99)
    log.bodies.append(body(OTHER, 13))
    (event,) = run(log, state)
    assert event["event"] == "inconsistency" and str(event["reason"]).startswith("fork")
    log.bodies = [*honest, body(OTHER, 13)]
    db = sqlite3.connect(state.path)
    db.execute("DROP TRIGGER checkpoints_no_update")
    db.execute("UPDATE checkpoints SET edge = zeroblob(length(edge))")
    db.commit()
    db.close()
    (event,) = run(log, state)
    assert event["event"] == "inconsistency" and "right edge" in str(event["reason"])
    state.close()
