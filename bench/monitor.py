"""Benchmark of ``keyless monitor`` catching up on a Rekor v2 log from its tiles (issue #16).

Run: ``.venv/bin/python bench/monitor.py [--entries N]``. Builds a log of N realistic hashedrekord
0.0.2 entries (each with its own ~700-byte certificate body, none of the watched identity's but
one in 1,000), writes its tiles and entry bundles with the log's own integrator code
(:class:`keyless.log.edge.RightEdge`), serves them over loopback HTTP, and times
:class:`keyless.monitor.follow.Follower` reading every entry from index 0: fetching bundles,
hashing every leaf into the tree, checking the root against the signed checkpoint, and matching
every entry against a watched identity. Target: ≥ 20,000 entries/s.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from keyless.formats.checkpoint import Checkpoint, sign_checkpoint
from keyless.formats.jsonreader import ValidityPeriod
from keyless.formats.note_keys import NoteSigner, ed25519_key_id
from keyless.formats.trustroot import TransparencyLogInstance, TrustedRoot
from keyless.keys import InMemorySigner
from keyless.log.edge import RightEdge
from keyless.merkle import CompactRange, leaf_hash
from keyless.monitor.events import EventSink
from keyless.monitor.follow import Follower, LogTarget
from keyless.monitor.state import MonitorState
from keyless.monitor.watch import Watch
from keyless.trust.material import LogKey, TrustMaterial

WATCHED = "watched@example.com"


def _certificate(ca: ec.EllipticCurvePrivateKey, email: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench-ca")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(minutes=10))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=True)
        .sign(ca, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def _entry(cert: bytes, i: int) -> bytes:
    body = {"apiVersion": "0.0.2", "kind": "hashedrekord", "spec": {"hashedRekordV002": {
        "data": {"algorithm": "SHA2_256",
                 "digest": base64.b64encode(i.to_bytes(32, "big")).decode()},
        "signature": {"content": base64.b64encode(os.urandom(71)).decode(), "verifier": {
            "keyDetails": "PKIX_ECDSA_P256_SHA_256",
            "x509Certificate": {"rawBytes": base64.b64encode(cert).decode()}}}}}}
    return json.dumps(body, separators=(",", ":")).encode()


def build(n: int, origin: str) -> tuple[dict[str, bytes], ed25519.Ed25519PrivateKey]:
    ca = ec.generate_private_key(ec.SECP256R1())
    others = [_certificate(ca, f"user{k}@example.com") for k in range(64)]
    watched = _certificate(ca, WATCHED)
    store: dict[str, bytes] = {}
    edge = RightEdge(CompactRange(), [], [])
    for start in range(0, n, 256):
        entries = [_entry(watched if i % 1000 == 999 else others[i % 64], i)
                   for i in range(start, min(n, start + 256))]
        tiles, _obsolete = edge.extend([leaf_hash(e) for e in entries], entries)
        store.update(tiles)
    key = ed25519.Ed25519PrivateKey.generate()
    signer = NoteSigner.ed25519(origin, InMemorySigner(key))
    store["checkpoint"] = sign_checkpoint(Checkpoint(origin, n, edge.root()), signer)
    return store, key


def serve(store: dict[str, bytes]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = store.get(self.path.removeprefix("/log/"))
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Handler.protocol_version = "HTTP/1.1"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=200_000)
    args = parser.parse_args()
    n = args.entries
    t0 = time.perf_counter()
    store: dict[str, bytes] = {}
    server = serve(store)  # first, to know the port, which is part of the log's origin
    url = f"http://127.0.0.1:{server.server_address[1]}/log"
    origin = url.removeprefix("http://")
    built, key = build(n, origin)
    store.update(built)
    print(f"built {n} entries in {time.perf_counter() - t0:.1f} s; cores={os.cpu_count()} "
          f"load={os.getloadavg()[0]:.2f}")
    public = key.public_key()
    der = public.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    instance = TransparencyLogInstance(url, "SHA2_256", der, "PKIX_ED25519",
                                       ValidityPeriod(datetime.now(UTC) - timedelta(days=1)),
                                       ed25519_key_id(origin, public))
    # no CA: the watched entries (1 in 1,000) are parsed and chain-checked, and fail the chain
    root = TrustedRoot((instance,), (), ())
    watch = Watch(TrustMaterial(root), identities=[WATCHED])
    with tempfile.TemporaryDirectory() as tmp:
        state = MonitorState(Path(tmp) / "state.db")
        out = io.StringIO()
        follower = Follower(state, watch, EventSink(out))
        cpu, wall = time.process_time(), time.perf_counter()
        ok = follower.run(LogTarget(url, LogKey(instance, public)))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert ok, out.getvalue()
    print(f"monitor catch-up from tiles: {n} entries in {wall:.2f} s = {n / wall:,.0f} entries/s "
          f"(wall), {n / cpu:,.0f} entries/s (CPU of this process, incl. the tile server)")
    server.shutdown()


if __name__ == "__main__":
    main()
