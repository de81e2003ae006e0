"""Signed-note / checkpoint signing, verification and strict parsing (C2SP signed-note,
tlog-checkpoint, tlog-cosignature)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from keyless.errors import ConfigError, InvalidInput, VerificationError
from keyless.formats.checkpoint import (
    Checkpoint,
    RFC6962NoteVerifier,
    open_checkpoint,
    sign_checkpoint,
)
from keyless.formats.note import (
    MAX_SIGNATURES,
    CheckpointError,
    MalformedNoteError,
    NoteSignature,
    SignedNote,
)
from keyless.formats.note_keys import (
    CosignatureVerifier,
    NoteSigner,
    NoteVerifier,
    cosign,
    ed25519_key_id,
    name_from_base_url,
    verify_note,
)
from keyless.keys import InMemorySigner

ROOT = hashlib.sha256(b"root").digest()
ORIGIN = "localhost:3000/rekor"


@pytest.fixture(scope="module")
def ed_signer() -> NoteSigner:
    return NoteSigner.ed25519(ORIGIN, InMemorySigner(ed25519.Ed25519PrivateKey.generate()))


@pytest.fixture(scope="module")
def ec_signer() -> NoteSigner:
    return NoteSigner.ecdsa(
        "localhost:3000", InMemorySigner(ec.generate_private_key(ec.SECP256R1()))
    )


def test_ed25519_round_trip(ed_signer: NoteSigner) -> None:
    cp = Checkpoint(ORIGIN, 646, ROOT)
    note = sign_checkpoint(cp, ed_signer)
    assert note.startswith(
        f"{ORIGIN}\n646\n{base64.b64encode(ROOT).decode()}\n\n— {ORIGIN} ".encode()
    )
    assert open_checkpoint(note, ed_signer.verifier(), origin=ORIGIN) == cp
    parsed = SignedNote.parse(note)
    assert parsed.signatures[0].key_hint == ed_signer.key_id[:4]
    pub = ed_signer.signer.public_key()
    assert isinstance(pub, ed25519.Ed25519PublicKey)
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert ed_signer.key_id == hashlib.sha256(ORIGIN.encode() + b"\n\x01" + raw).digest()
    assert len(parsed.signatures[0].signature) == 64


def test_ecdsa_round_trip_rekor_v1_style(ec_signer: NoteSigner) -> None:
    cp = Checkpoint("localhost:3000 - 1234", 7, ROOT, ("Timestamp: 1689177396617352539",))
    note = sign_checkpoint(cp, ec_signer)
    assert open_checkpoint(note, ec_signer.verifier()) == cp
    pub = ec_signer.signer.public_key()
    spki = pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert ec_signer.key_id == hashlib.sha256(spki).digest()
    assert SignedNote.parse(note).signatures[0].key_hint == hashlib.sha256(spki).digest()[:4]


def test_verifier_from_trusted_log_matches_signer(
    ec_signer: NoteSigner, ed_signer: NoteSigner
) -> None:
    for signer, url in [
        (ec_signer, "http://localhost:3000"),
        (ed_signer, "http://localhost:3000/rekor/"),
    ]:
        der = signer.signer.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        v = NoteVerifier.from_trusted_log(url, der, signer.key_id)
        assert (v.name, v.key_id) == (signer.name, signer.key_id)
        with pytest.raises(ConfigError):
            NoteVerifier.from_trusted_log(url, der, b"\x00" * 32)
    with pytest.raises(ConfigError):
        NoteVerifier.from_trusted_log("http://localhost:3000", b"not a key")


def test_public_good_rekor_v2_log_id(vectors: Path) -> None:
    # protocols.md §4: log2025-1's logId = SHA-256("log2025-1.rekor.sigstore.dev\n\x01" || pk).
    doc = json.loads((vectors / "public-good/production/trusted_root.json").read_bytes())
    (v2,) = [t for t in doc["tlogs"] if "log2025-1" in t["baseUrl"]]
    v = NoteVerifier.from_trusted_log(
        v2["baseUrl"],
        base64.b64decode(v2["publicKey"]["rawBytes"]),
        base64.b64decode(v2["logId"]["keyId"]),
    )
    assert v.name == "log2025-1.rekor.sigstore.dev"
    assert base64.b64encode(v.key_id).decode().startswith("zxGZFVvd")


def test_name_from_base_url() -> None:
    assert name_from_base_url("https://rekor.sigstore.dev") == "rekor.sigstore.dev"
    assert name_from_base_url("http://localhost:3000/rekor/") == "localhost:3000/rekor"
    with pytest.raises(ConfigError):
        name_from_base_url("rekor.sigstore.dev")


def test_unknown_keys_ignored_known_bad_rejects(
    ed_signer: NoteSigner, ec_signer: NoteSigner
) -> None:
    text = Checkpoint(ORIGIN, 1, ROOT).to_text()
    other = NoteSigner.ed25519(ORIGIN, InMemorySigner(ed25519.Ed25519PrivateKey.generate()))
    good = ed_signer.sign(text)
    note = SignedNote(text, (other.sign(text), ec_signer.sign(text), good))
    assert ed_signer.verifier().verify(note) == good  # not assumed to be the first line
    with pytest.raises(CheckpointError, match="no signature from a trusted key"):
        ed_signer.verifier().verify(SignedNote(text, (other.sign(text),)))
    forged = NoteSignature(good.name, good.key_hint, other.sign(text).signature)
    with pytest.raises(CheckpointError, match="does not verify"):
        ed_signer.verifier().verify(SignedNote(text, (forged, good)))
    # same key, other name: a different key (C2SP: name and ID both identify the key)
    renamed = NoteSignature("example.com/other", good.key_hint, good.signature)
    with pytest.raises(CheckpointError):
        ed_signer.verifier().verify(SignedNote(text, (renamed,)))
    with pytest.raises(ConfigError):
        verify_note(note, [])


def test_cosignature_round_trip(ed_signer: NoteSigner) -> None:
    text = Checkpoint(ORIGIN, 9, ROOT).to_text()
    wkey = ed25519.Ed25519PrivateKey.generate()
    line = cosign(text, "witness.example/w1", wkey, 1_700_000_000)
    assert len(line.signature) == 72
    assert line.key_hint == ed25519_key_id("witness.example/w1", wkey.public_key(), 0x04)[:4]
    note = SignedNote(text, (ed_signer.sign(text),)).with_signature(line)
    assert SignedNote.parse(note.to_bytes()) == note
    wv = CosignatureVerifier("witness.example/w1", wkey.public_key())
    assert verify_note(note, [ed_signer.verifier(), wv]) == list(note.signatures)
    assert CosignatureVerifier.timestamp(line) == 1_700_000_000
    other_text = Checkpoint(ORIGIN, 10, ROOT).to_text()
    with pytest.raises(CheckpointError):
        wv_note = SignedNote(other_text, (line,))
        verify_note(wv_note, [wv])


def test_errors_hierarchy() -> None:
    assert issubclass(CheckpointError, VerificationError)
    assert issubclass(MalformedNoteError, CheckpointError)
    assert issubclass(MalformedNoteError, InvalidInput)


GOOD_TEXT = f"{ORIGIN}\n5\n{base64.b64encode(ROOT).decode()}\n"
SIG = "— " + ORIGIN + " " + base64.b64encode(b"\x01\x02\x03\x04" + b"s" * 64).decode() + "\n"
GOOD = GOOD_TEXT + "\n" + SIG

MALFORMED_NOTES = {
    "no blank line": GOOD_TEXT + SIG,
    "no signatures": GOOD_TEXT + "\n",
    "no trailing newline": GOOD[:-1],
    "not utf-8": GOOD.encode().replace(b"localhost", b"local\xffhost"),
    "control character": GOOD.replace("localhost", "local\thost"),
    "carriage return": GOOD.replace("\n5\n", "\r\n5\n"),
    "bad base64": GOOD.replace(SIG, "— " + ORIGIN + " !!!notbase64==\n"),
    "unpadded base64": GOOD.replace(SIG, SIG.replace("=", "")),
    "short signature": GOOD.replace(SIG, "— " + ORIGIN + " AQIDBA==\n"),
    "space in key name": GOOD.replace(SIG, SIG.replace(ORIGIN, "local host")),
    "plus in key name": GOOD.replace(SIG, SIG.replace(ORIGIN, "a+b")),
    "empty key name": GOOD.replace(SIG, SIG.replace(ORIGIN, "")),
    "hyphen not em dash": GOOD.replace("— ", "- "),
    "no space after dash": GOOD.replace("— ", "—"),
    "blank line among signatures": GOOD + "\n" + SIG,
    "too many signatures": GOOD_TEXT + "\n" + SIG * (MAX_SIGNATURES + 1),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_NOTES))
def test_malformed_notes_rejected(case: str) -> None:
    data = MALFORMED_NOTES[case]
    raw = data if isinstance(data, bytes) else data.encode()
    with pytest.raises(MalformedNoteError):
        note = SignedNote.parse(raw)
        Checkpoint.from_text(note.text)  # "blank line among signatures" is a bad body


def test_good_note_parses() -> None:
    note = SignedNote.parse(GOOD)
    assert note.to_bytes() == GOOD.encode()
    assert Checkpoint.from_text(note.text) == Checkpoint(ORIGIN, 5, ROOT)
    assert (
        len(SignedNote.parse(GOOD_TEXT + "\n" + SIG * MAX_SIGNATURES).signatures) == MAX_SIGNATURES
    )


B64 = base64.b64encode(ROOT).decode()
URLSAFE = base64.urlsafe_b64encode(bytes([0xFF]) * 32).decode()
MALFORMED_CHECKPOINTS = {
    "two lines": f"{ORIGIN}\n5\n",
    "empty origin": f"\n5\n{B64}\n",
    "leading zero": f"{ORIGIN}\n05\n{B64}\n",
    "signed size": f"{ORIGIN}\n+5\n{B64}\n",
    "negative size": f"{ORIGIN}\n-5\n{B64}\n",
    "hex size": f"{ORIGIN}\n0x5\n{B64}\n",
    "size over 64 bits": f"{ORIGIN}\n{1 << 64}\n{B64}\n",
    "short root": f"{ORIGIN}\n5\n{base64.b64encode(ROOT[:31]).decode()}\n",
    "url-safe root": f"{ORIGIN}\n5\n{URLSAFE}\n",
    "root with spaces": f"{ORIGIN}\n5\n {B64}\n",
    "empty extension": f"{ORIGIN}\n5\n{B64}\n\nx\n",
    "no final newline": f"{ORIGIN}\n5\n{B64}",
}


@pytest.mark.parametrize("case", sorted(MALFORMED_CHECKPOINTS))
def test_malformed_checkpoints_rejected(case: str) -> None:
    with pytest.raises(MalformedNoteError):
        Checkpoint.from_text(MALFORMED_CHECKPOINTS[case].encode())


def test_strict_origin() -> None:
    rekor_v1 = f"rekor.sigstore.dev - 2605736670972794746\n5\n{B64}\n".encode()
    assert Checkpoint.from_text(rekor_v1).origin == "rekor.sigstore.dev - 2605736670972794746"
    for origin in ["rekor.sigstore.dev - 26", "a+b", "tab\u00a0nbsp"]:
        with pytest.raises(MalformedNoteError):
            Checkpoint.from_text(f"{origin}\n5\n{B64}\n".encode(), strict_origin=True)
    assert Checkpoint.from_text(f"{ORIGIN}\n5\n{B64}\n".encode(), strict_origin=True).size == 5


def test_checkpoint_constructor_validates() -> None:
    with pytest.raises(MalformedNoteError):
        Checkpoint("", 1, ROOT)
    with pytest.raises(MalformedNoteError):
        Checkpoint("a\nb", 1, ROOT)
    with pytest.raises(MalformedNoteError):
        Checkpoint("a", -1, ROOT)
    with pytest.raises(MalformedNoteError):
        Checkpoint("a", 1, ROOT[:5])
    with pytest.raises(MalformedNoteError):
        Checkpoint("a", 1, ROOT, ("",))
    assert Checkpoint.from_text(b"a\n0\n" + base64.b64encode(ROOT) + b"\n").size == 0


def test_signer_key_type_checked() -> None:
    with pytest.raises(ConfigError):
        NoteSigner.ed25519("x", InMemorySigner(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(ConfigError):
        NoteSigner.ecdsa("x", InMemorySigner(ed25519.Ed25519PrivateKey.generate()))
    with pytest.raises(MalformedNoteError):
        NoteSigner.ed25519("has space", InMemorySigner(ed25519.Ed25519PrivateKey.generate()))


_origin = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x2FFF, exclude_characters="+"), min_size=1
)


@settings(deadline=None)
@given(
    origin=_origin,
    size=st.integers(0, (1 << 64) - 1),
    root=st.binary(min_size=32, max_size=32),
    ext=st.lists(_origin, max_size=3),
)
def test_checkpoint_text_round_trip(origin: str, size: int, root: bytes, ext: list[str]) -> None:
    cp = Checkpoint(origin, size, root, tuple(ext))
    assert Checkpoint.from_text(cp.to_text()) == cp


@settings(deadline=None)
@given(st.binary(max_size=300))
def test_parser_never_crashes(data: bytes) -> None:
    try:
        note = SignedNote.parse(data)
    except MalformedNoteError:
        return
    assert note.to_bytes() == data


def test_static_ct_rfc6962_note_signature() -> None:
    # C2SP static-ct-api "Checkpoints": u64 timestamp || DigitallySigned(TreeHeadSignature).
    key = ec.generate_private_key(ec.SECP256R1())
    origin = "localhost:3000/ctlog"
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    log_id = hashlib.sha256(spki).digest()
    ts, size = 1_700_000_000_123, 42
    tbs = b"\x00\x01" + ts.to_bytes(8, "big") + size.to_bytes(8, "big") + ROOT
    der = InMemorySigner(key).sign(tbs)
    body = bytes([4, 3]) + len(der).to_bytes(2, "big") + der
    hint = hashlib.sha256(origin.encode() + b"\n\x05" + log_id).digest()[:4]
    text = Checkpoint(origin, size, ROOT).to_text()
    line = NoteSignature(origin, hint, ts.to_bytes(8, "big") + body)
    note = SignedNote(text, (line,)).to_bytes()
    v = RFC6962NoteVerifier(origin, key.public_key())
    assert v.key_hint == hint
    assert open_checkpoint(note, v) == Checkpoint(origin, size, ROOT)
    assert RFC6962NoteVerifier.timestamp(line) == ts
    other = Checkpoint(origin, size + 1, ROOT).to_text()  # the signature covers size and root
    with pytest.raises(CheckpointError):
        verify_note(SignedNote(other, (line,)), [v])
    with pytest.raises(CheckpointError):  # wrong timestamp
        bad = NoteSignature(origin, hint, (ts + 1).to_bytes(8, "big") + body)
        verify_note(SignedNote(text, (bad,)), [v])
    with_ext = Checkpoint(origin, size, ROOT, ("ext",)).to_text()
    with pytest.raises(CheckpointError):  # static-ct checkpoints carry no extension lines
        verify_note(SignedNote(with_ext, (line,)), [v])


def _flip_each_bit(data: bytes) -> list[bytes]:
    return [data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1 :]
            for i in range(len(data)) for bit in range(8)]


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa"])
def test_every_bit_flip_in_a_checkpoint_signature_or_body_is_rejected(
    kind: str, ed_signer: NoteSigner, ec_signer: NoteSigner,
) -> None:
    """Not merely "does not crash": every single-bit change of the signature line's key hint and
    signature, and of the signed text, is refused with CheckpointError (issue #17)."""
    signer = ed_signer if kind == "ed25519" else ec_signer
    note = sign_checkpoint(Checkpoint(signer.name, 646, ROOT, ("ext",)), signer)
    assert open_checkpoint(note, signer.verifier()).size == 646
    text, _, signature_line = note.rstrip(b"\n").rpartition(b"\n")
    dash_name, _, blob = signature_line.rpartition(b" ")
    raw = base64.b64decode(blob)
    flipped_notes = [text + b"\n" + dash_name + b" " + base64.b64encode(bad) + b"\n"
                     for bad in _flip_each_bit(raw)]
    flipped_notes += [bad + b"\n" + signature_line + b"\n" for bad in _flip_each_bit(text)]
    accepted = []
    for bad_note in flipped_notes:
        try:
            open_checkpoint(bad_note, signer.verifier())
        except CheckpointError:
            continue
        accepted.append(bad_note)
    assert not accepted, accepted[:3]
