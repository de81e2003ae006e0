"""The monitor against a tiled log served over loopback HTTP, honest and then dishonest.

The log's tiles and entry bundles are written by the log's own integrator code
(:class:`keyless.log.edge.RightEdge`); each test then makes the server lie in one way (a bad
signature, a rollback, a fork, entries that do not hash to the tiles, a broken bundle) and the
monitor must answer with an ``inconsistency`` event, keep its evidence and not advance its state.
"""

from __future__ import annotations

import base64
import io
import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

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


class TileLog:
    """A tiled log in memory, served at ``url``; ``publish(n)`` serves its first ``n`` entries."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                body = files.get(self.path.removeprefix("/log/"))
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/log"
        self.origin = self.url.removeprefix("http://")
        self.key = ed25519.Ed25519PrivateKey.generate()
        self.signer = NoteSigner.ed25519(self.origin, InMemorySigner(self.key))
        self.entries: list[bytes] = []

    def publish(self, entries: list[bytes]) -> None:
        """Serve exactly these entries (tiles, bundles and a signed checkpoint), from scratch."""
        self.files.clear()
        edge = RightEdge(CompactRange(), [], [])
        for start in range(0, len(entries), 256):
            batch = entries[start : start + 256]
            tiles, _obsolete = edge.extend([leaf_hash(e) for e in batch], batch)
            self.files.update(tiles)
        self.files["checkpoint"] = sign_checkpoint(
            Checkpoint(self.origin, len(entries), edge.root()), self.signer
        )
        self.entries = list(entries)

    def target(self) -> LogTarget:
        public = self.key.public_key()
        der = public.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
        instance = TransparencyLogInstance(
            self.url, "SHA2_256", der, "PKIX_ED25519",
            ValidityPeriod(datetime.now(UTC) - timedelta(days=1)),
            ed25519_key_id(self.origin, public),
        )
        return LogTarget(self.url, LogKey(instance, public))


def managed_key_entry(key_der: bytes, n: int) -> bytes:
    """A hashedrekord 0.0.2 entry signed with a managed key (matched by fingerprint)."""
    return json.dumps({"apiVersion": "0.0.2", "kind": "hashedrekord", "spec": {
        "hashedRekordV002": {
            "data": {"algorithm": "SHA2_256",
                     "digest": base64.b64encode(n.to_bytes(32, "big")).decode()},
            "signature": {"content": "AAAA", "verifier": {
                "keyDetails": "PKIX_ED25519",
                "publicKey": {"rawBytes": base64.b64encode(key_der).decode()}}}}}}).encode()


WATCHED_KEY = b"watched-key-spki"
OTHER_KEY = b"other-key-spki"
FINGERPRINT = "sha256:" + __import__("hashlib").sha256(WATCHED_KEY).hexdigest()


@pytest.fixture
def log() -> Iterator[TileLog]:
    served = TileLog()
    try:
        yield served
    finally:
        served.server.shutdown()
        served.server.server_close()


@pytest.fixture
def state(tmp_path: Path) -> Iterator[MonitorState]:
    opened = MonitorState(tmp_path / "state.db")
    try:
        yield opened
    finally:
        opened.close()


def entries(n: int, watched: set[int]) -> list[bytes]:
    return [managed_key_entry(WATCHED_KEY if i in watched else OTHER_KEY, i) for i in range(n)]


def run(log: TileLog, state: MonitorState, *, from_now: bool = False) -> list[dict[str, object]]:
    out = io.StringIO()
    watch = Watch(TrustMaterial(TrustedRoot((), (), ())), fingerprints=[FINGERPRINT])
    Follower(state, watch, EventSink(out), from_now=from_now).run(log.target())
    return [json.loads(line) for line in out.getvalue().splitlines()]


def matched(events: list[dict[str, object]]) -> list[object]:
    return [e["index"] for e in events if e["event"] == "match"]


def inconsistency(events: list[dict[str, object]]) -> str:
    (event,) = events
    assert event["event"] == "inconsistency"
    evidence = Path(str(event["evidence"]))
    assert evidence.stat().st_mode & 0o777 == 0o600
    assert json.loads(evidence.read_text())["reason"] == event["reason"]
    return str(event["reason"])


def test_catches_up_across_partial_and_full_tiles(log: TileLog, state: MonitorState) -> None:
    all_entries = entries(700, {3, 255, 256, 600, 699})
    log.publish(all_entries[:300])
    events = run(log, state)
    assert matched(events) == [3, 255, 256]
    assert events[-1] == {"event": "checkpoint", "log": log.url, "origin": log.origin,
                          "size": 300, "root": events[-1]["root"], "previous_size": None,
                          "scanned_from": 0}
    log.publish(all_entries)
    assert matched(run(log, state)) == [600, 699]
    assert run(log, state) == []  # nothing new: nothing to report
    latest = state.latest(log.url)
    assert latest is not None and latest.size == 700


def test_from_now_skips_the_past(log: TileLog, state: MonitorState) -> None:
    log.publish(entries(10, {1}))
    assert [e["event"] for e in run(log, state, from_now=True)] == ["checkpoint"]
    log.publish(entries(12, {1, 11}))
    assert matched(run(log, state)) == [11]


def test_bad_signature(log: TileLog, state: MonitorState) -> None:
    log.publish(entries(5, set()))
    note = log.files["checkpoint"].decode()
    text, _, sig = note.rpartition(" ")
    raw = bytearray(base64.b64decode(sig))
    raw[-1] ^= 1
    log.files["checkpoint"] = f"{text} {base64.b64encode(bytes(raw)).decode()}\n".encode()
    assert "does not verify" in inconsistency(run(log, state))
    assert state.latest(log.url) is None


def test_rollback_and_fork(log: TileLog, state: MonitorState) -> None:
    log.publish(entries(20, set()))
    run(log, state)
    log.publish(entries(19, set()))
    assert inconsistency(run(log, state)).startswith("rollback")
    other = entries(20, set())
    other[7] = managed_key_entry(b"someone else", 7)
    log.publish(other)
    assert inconsistency(run(log, state)).startswith("fork: two different roots")
    other.append(managed_key_entry(OTHER_KEY, 20))
    log.publish(other)  # longer, and not an extension of the verified tree
    assert inconsistency(run(log, state)).startswith("fork")
    latest = state.latest(log.url)
    assert latest is not None and latest.size == 20


def test_entries_that_do_not_hash_to_the_tiles(log: TileLog, state: MonitorState) -> None:
    log.publish(entries(10, set()))
    run(log, state)
    honest = entries(40, {30})
    log.publish(honest)
    honest_bundle = log.files["tile/entries/000.p/40"]
    lying = list(honest)
    lying[25] = managed_key_entry(b"substituted", 25)
    log.publish(lying)  # tiles and signed root of a tree that extends the verified one…
    log.files["tile/entries/000.p/40"] = honest_bundle  # …but bundles of other entries
    assert "do not hash to the checkpoint's root" in inconsistency(run(log, state))
    log.files["tile/entries/000.p/40"] = honest_bundle[:-1]
    assert inconsistency(run(log, state)).startswith("bad entry bundle")
    latest = state.latest(log.url)
    assert latest is not None and latest.size == 10


def test_tampered_state(log: TileLog, state: MonitorState) -> None:
    log.publish(entries(8, set()))
    run(log, state)
    db = sqlite3.connect(state.path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM checkpoints")
    db.execute("DROP TRIGGER checkpoints_no_update")
    db.execute("UPDATE checkpoints SET root = zeroblob(32)")
    db.commit()
    db.close()
    assert "altered" in inconsistency(run(log, state))
    assert state.path.stat().st_mode & 0o777 == 0o600


def test_split_view_against_a_witness(log: TileLog, state: MonitorState, tmp_path: Path) -> None:
    """A witness that saw another history of the log (signed by the log's own key) is a split
    view; a witness behind on the same history is not."""
    from hashlib import sha256

    from keyless.formats.vkey import VerifierKey
    from keyless.formats.witnesspolicy import WitnessPolicy

    witness_key = ed25519.Ed25519PrivateKey.generate()
    policy = WitnessPolicy.parse(
        f"log {VerifierKey.for_ed25519(log.origin, log.key.public_key())}\n"
        f"witness w1 {VerifierKey.for_ed25519('w1.test', witness_key.public_key(), 0x04)} "
        f"{log.url.removesuffix('/log')}/w\n"
        "quorum none\n"
    )
    honest = entries(20, set())
    forked = list(honest) + entries(5, set())
    forked[3] = managed_key_entry(b"forked", 3)
    log.publish(forked)
    forked_note = log.files["checkpoint"]
    log.publish(honest[:15])
    behind_note = log.files["checkpoint"]
    published = "/w/" + sha256(log.origin.encode()).hexdigest() + "/checkpoint"

    def follow() -> list[dict[str, object]]:
        out = io.StringIO()
        watch = Watch(TrustMaterial(TrustedRoot((), (), ())), fingerprints=[FINGERPRINT])
        Follower(state, watch, EventSink(out), policy=policy).run(log.target())
        return [json.loads(line) for line in out.getvalue().splitlines()]

    log.publish(honest)
    log.files[published] = behind_note
    assert [e["event"] for e in follow()] == ["checkpoint"]
    log.publish(honest + entries(1, set()))
    log.files[published] = forked_note
    reason = inconsistency(follow())
    assert reason.startswith("split view: witness w1 saw tree size 25")
    latest = state.latest(log.url)
    assert latest is not None and latest.size == 20
