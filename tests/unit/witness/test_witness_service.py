"""The witness's add-checkpoint rules (C2SP tlog-witness), status by status."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from keyless.formats.checkpoint import Checkpoint, sign_checkpoint
from keyless.formats.cosignature import Ed25519Cosigner, verifier_for_vkey
from keyless.formats.note import NoteSignature, SignedNote
from keyless.formats.note_keys import NoteSigner
from keyless.formats.vkey import VerifierKey
from keyless.keys import InMemorySigner
from keyless.merkle import EMPTY_ROOT, consistency_proof, leaf_hash, root_from_leaf_hashes
from keyless.witness.app import create_app
from keyless.witness.service import (
    LogConfig,
    WitnessRefusal,
    WitnessService,
    origin_hash,
)
from keyless.witness.store import WitnessStore

ORIGIN = "log.example/rekor"


class Log:
    """A tiny in-memory log that signs checkpoints and makes consistency proofs."""

    def __init__(self, key: ed25519.Ed25519PrivateKey | None = None, tag: bytes = b"") -> None:
        self.key = key or ed25519.Ed25519PrivateKey.generate()
        self.signer = NoteSigner.ed25519(ORIGIN, InMemorySigner(self.key))
        self.leaves: list[bytes] = []
        self.tag = tag

    @property
    def vkey(self) -> VerifierKey:
        return VerifierKey.for_ed25519(ORIGIN, self.key.public_key())

    def grow(self, n: int) -> None:
        self.leaves += [leaf_hash(self.tag + b"%d" % len(self.leaves)) for _ in range(n)]

    def root(self, size: int | None = None) -> bytes:
        size = len(self.leaves) if size is None else size
        return root_from_leaf_hashes(self.leaves[:size]) if size else EMPTY_ROOT

    def note(self, size: int | None = None) -> bytes:
        size = len(self.leaves) if size is None else size
        return sign_checkpoint(Checkpoint(ORIGIN, size, self.root(size)), self.signer)

    def proof(self, old: int, new: int | None = None) -> list[bytes]:
        new = len(self.leaves) if new is None else new
        if old == 0 or old == new:
            return []

        def get(level: int, index: int) -> bytes:
            return root_from_leaf_hashes(self.leaves[index << level : (index + 1) << level])

        return consistency_proof(old, new, get)

    def request(self, old: int, proof: list[bytes] | None = None, note: bytes | None = None
                ) -> bytes:
        proof = self.proof(old) if proof is None else proof
        lines = b"".join(base64.b64encode(h) + b"\n" for h in proof)
        return f"old {old}\n".encode() + lines + b"\n" + (note or self.note())


def make(tmp_path: Path, log: Log, **kwargs: Any) -> tuple[WitnessService, Ed25519Cosigner]:
    cosigner = Ed25519Cosigner("witness.example", ed25519.Ed25519PrivateKey.generate())
    store = WitnessStore(tmp_path / "witness.db")
    return WitnessService(store, [cosigner], LogConfig.from_vkeys([log.vkey]), **kwargs), cosigner


def add(service: WitnessService, body: bytes) -> bytes:
    return asyncio.run(service.add_checkpoint(body))


def refusal(service: WitnessService, body: bytes) -> WitnessRefusal:
    with pytest.raises(WitnessRefusal) as caught:
        add(service, body)
    return caught.value


def test_cosigns_first_checkpoint_and_extensions(tmp_path: Path) -> None:
    log = Log()
    log.grow(5)
    service, cosigner = make(tmp_path, log)
    lines = add(service, log.request(0))
    sig = NoteSignature.from_line(lines.decode().rstrip("\n"))
    assert verifier_for_vkey(cosigner.vkey).check(SignedNote.parse(log.note()).text, sig.signature)
    published = service.monitoring_checkpoint(origin_hash(ORIGIN))
    assert published is not None and published.endswith(lines)
    log.grow(300)
    add(service, log.request(5))
    assert service.store.state(ORIGIN).size == 305


def test_stale_old_is_409_with_the_size(tmp_path: Path) -> None:
    log = Log()
    log.grow(5)
    service, _ = make(tmp_path, log)
    add(service, log.request(0))
    log.grow(2)
    refused = refusal(service, log.request(0))
    assert (refused.status, refused.size) == (409, 5)

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://w") as client:
            return await client.post("/add-checkpoint", content=log.request(3))

    response = asyncio.run(post())
    assert response.status_code == 409
    assert response.headers["content-type"] == "text/x.tlog.size"
    assert response.text == "5\n"


def test_state_survives_a_new_process(tmp_path: Path) -> None:
    log = Log()
    log.grow(4)
    service, _ = make(tmp_path, log)
    add(service, log.request(0))
    service.store.close()
    again = WitnessService(WitnessStore(tmp_path / "witness.db"), service.cosigners,
                           LogConfig.from_vkeys([log.vkey]))
    assert refusal(again, log.request(0)).size == 4


def test_fork_and_bad_proof_are_422_and_kept_as_evidence(tmp_path: Path) -> None:
    log = Log()
    log.grow(5)
    service, _ = make(tmp_path, log)
    add(service, log.request(0))
    fork = Log(log.key, tag=b"fork")  # same key, different entries
    fork.grow(5)
    assert refusal(service, fork.request(5)).status == 422  # same size, other root
    fork.grow(3)
    assert refusal(service, fork.request(5, proof=fork.proof(5))).status == 422
    log.grow(3)
    assert refusal(service, log.request(5, proof=[bytes(32)] * 3)).status == 422
    assert len(service.store.evidence(ORIGIN)) == 3
    assert service.store.state(ORIGIN).size == 5


def test_refusals_by_status(tmp_path: Path) -> None:
    log = Log()
    log.grow(5)
    service, _ = make(tmp_path, log)
    stranger = Log()  # same origin, untrusted key
    stranger.grow(5)
    assert refusal(service, stranger.request(0)).status == 403
    bad_sig = SignedNote.parse(log.note())
    forged = bad_sig.signatures[0]
    forged = NoteSignature(forged.name, forged.key_hint, bytes(64))
    assert refusal(service, log.request(0, note=SignedNote(bad_sig.text, (forged,)).to_bytes())
                   ).status == 403
    other = Log()
    other.signer = NoteSigner.ed25519("other.example", InMemorySigner(other.key))
    assert refusal(service, other.request(0, note=sign_checkpoint(
        Checkpoint("other.example", 1, bytes(32)), other.signer))).status == 404
    assert refusal(service, log.request(6, proof=[])).status == 400
    assert refusal(service, b"old 01\n\n" + log.note()).status == 400
    assert refusal(service, b"old 0\n" + b"AAAA\n" * 64 + b"\n" + log.note()).status == 400
    empty = sign_checkpoint(Checkpoint(ORIGIN, 0, bytes(32)), log.signer)
    assert refusal(service, log.request(0, note=empty)).status == 422
    assert refusal(service, log.request(0, proof=[bytes(32)])).status == 422  # proof from 0


def test_accepts_many_signature_lines(tmp_path: Path) -> None:
    log = Log()
    log.grow(5)
    service, _ = make(tmp_path, log)
    note = SignedNote.parse(log.note())
    extra = tuple(
        NoteSignature(f"other{i}.example", bytes(4), bytes(72)) for i in range(20)
    )
    add(service, log.request(0, note=SignedNote(note.text, (*extra, *note.signatures)).to_bytes()))


def test_rate_limit_per_log(tmp_path: Path) -> None:
    log = Log()
    log.grow(5)
    now = [0.0]
    service, _ = make(tmp_path, log, rate=1.0, burst=2.0, monotonic=lambda: now[0])
    add(service, log.request(0))
    add(service, log.request(5))
    refused = refusal(service, log.request(5))
    assert refused.status == 429 and refused.retry_after
    now[0] += 1.0
    add(service, log.request(5))


def test_mldsa_and_ed25519_keys_both_cosign(tmp_path: Path) -> None:
    from keyless.formats.cosignature import MLDSA44Cosigner

    log = Log()
    log.grow(3)
    ed = Ed25519Cosigner("witness.example", ed25519.Ed25519PrivateKey.generate())
    ml = MLDSA44Cosigner("witness.example", bytes(range(32)))
    service = WitnessService(WitnessStore(tmp_path / "w.db"), [ed, ml],
                             LogConfig.from_vkeys([log.vkey]))
    lines = add(service, log.request(0)).decode().rstrip("\n").split("\n")
    text = SignedNote.parse(log.note()).text
    sigs = [NoteSignature.from_line(line) for line in lines]
    assert [len(s.signature) for s in sigs] == [72, 8 + 2420]
    for cosigner, sig in zip((ed, ml), sigs, strict=True):
        assert verifier_for_vkey(cosigner.vkey).check(text, sig.signature)


async def test_hostile_http_requests_get_json_4xx(tmp_path: Path) -> None:
    log = Log()
    log.grow(2)
    service, _ = make(tmp_path, log)
    transport = httpx.ASGITransport(app=create_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://w") as client:
        cases = [
            (await client.post("/add-checkpoint", content=b"x" * (65 * 1024)), 413),
            (await client.post("/add-checkpoint", content=b"\xff\xfe\n\n"), 400),
            (await client.post("/add-checkpoint", content=b"old 0\n\nnot a note\n"), 400),
            (await client.get("/add-checkpoint"), 405),
            (await client.get("/" + "0" * 64 + "/checkpoint"), 404),
            (await client.get("/../checkpoint"), 404),
            (await client.get(f"/{origin_hash(ORIGIN)}/checkpoint"), 404),  # nothing cosigned
        ]
        for response, status in cases:
            assert response.status_code == status, response.text
            assert set(response.json()) == {"code", "message"}
        ok = await client.post("/add-checkpoint", content=log.request(0))
        assert ok.status_code == 200
        published = await client.get(f"/{origin_hash(ORIGIN)}/checkpoint")
        assert published.status_code == 200 and published.content.endswith(ok.content)
        assert (await client.get("/healthz")).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert f'keyless_witness_log_size{{origin="{ORIGIN}"}} 2' in metrics
