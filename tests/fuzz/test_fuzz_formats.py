"""The pure parsers of keyless.formats fed mutated real inputs: signed notes and checkpoints,
tile paths and tiles, SCTs, DSSE envelopes, bundles and trusted roots.

Invariants: only the module's documented errors (InvalidInput / MalformedNoteError /
CheckpointError / SCTDecodeError), short messages, quick; encode/parse round-trips hold.
"""

from __future__ import annotations

import base64
import functools
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from fuzz_support import (
    FUZZ,
    FUZZ_SLOW,
    mutated_bytes,
    mutated_json,
    mutated_json_text,
    only,
    root_conftest,
    value_of,
)
from hypothesis import given
from hypothesis import strategies as st

from keyless.errors import InvalidInput
from keyless.formats import sct, tiles
from keyless.formats.bundle import Bundle
from keyless.formats.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from keyless.formats.dsse import Envelope
from keyless.formats.note import CheckpointError, SignedNote
from keyless.formats.note_keys import NoteSigner
from keyless.formats.trustroot import TrustedRoot
from keyless.keys import InMemorySigner

# --------------------------------------------------------------------------------------------
# Signed notes and checkpoints.

_ED = ed25519.Ed25519PrivateKey.generate()
_EC = ec.generate_private_key(ec.SECP256R1())
_SIGNERS = [NoteSigner.ed25519("log.example/rekor", InMemorySigner(_ED)),
            NoteSigner.ecdsa("log.example", InMemorySigner(_EC))]
_NOTES = [sign_checkpoint(Checkpoint(s.name, size, bytes([size % 256]) * 32, ext), s)
          for s in _SIGNERS for size, ext in ((0, ()), (1234567, ("ext line",)))]

checkpoints = st.builds(
    Checkpoint,
    origin=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e, exclude_characters="+"),
                   min_size=1, max_size=40),
    size=st.integers(0, 2**64 - 1),
    root_hash=st.binary(min_size=32, max_size=32),
    extensions=st.lists(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e),
                                min_size=1, max_size=20), max_size=3).map(tuple),
)


@FUZZ
@given(cp=checkpoints, which=st.integers(0, 1))
def test_checkpoint_round_trip(cp: Checkpoint, which: int) -> None:
    signer = _SIGNERS[which]
    assert Checkpoint.from_text(cp.to_text()) == cp
    envelope = sign_checkpoint(cp, signer)
    assert SignedNote.parse(envelope).to_bytes() == envelope
    assert open_checkpoint(envelope, signer.verifier()) == cp


@FUZZ
@given(data=mutated_bytes(_NOTES))
def test_signed_checkpoint_raises_only_checkpoint_error(data: bytes) -> None:
    with only(CheckpointError):
        open_checkpoint(data, [s.verifier() for s in _SIGNERS])
    with only(CheckpointError):  # text too, as bundles carry it (lone surrogates included)
        open_checkpoint(data.decode("utf-8", "surrogateescape"), _SIGNERS[0].verifier())


# --------------------------------------------------------------------------------------------
# Tiles (tlog-tiles paths and bodies).

@FUZZ
@given(level=st.integers(0, tiles.MAX_LEVEL), index=st.integers(0, tiles.MAX_TILE_INDEX),
       width=st.none() | st.integers(1, 255))
def test_tile_path_round_trip(level: int, index: int, width: int | None) -> None:
    assert tiles.parse_tile_path(tiles.tile_path(level, index, width)) == (level, index, width)
    assert tiles.parse_entries_path(tiles.entries_path(index, width)) == (index, width)


_PATHS = [tiles.tile_path(0, 0).encode(), tiles.tile_path(3, 1234567, 17).encode(),
          tiles.entries_path(987654321, 255).encode(), tiles.entries_path(5).encode()]


@FUZZ
@given(data=mutated_bytes(_PATHS))
def test_tile_path_parsers_raise_only_invalid_input(data: bytes) -> None:
    path = data.decode("utf-8", "surrogateescape")
    for parse in (tiles.parse_tile_path, tiles.parse_entries_path):
        with only(InvalidInput):
            parse(path)


@FUZZ
@given(entries=st.lists(st.binary(max_size=300), min_size=1, max_size=20), data=st.data())
def test_entry_bundle_round_trip_and_mutations(entries: list[bytes], data: Any) -> None:
    encoded = tiles.encode_entry_bundle(entries)
    assert tiles.decode_entry_bundle(encoded, len(entries)) == entries
    mutated = data.draw(mutated_bytes([encoded]))
    with only(InvalidInput):
        tiles.decode_entry_bundle(mutated)


# --------------------------------------------------------------------------------------------
# SCTs.

scts = st.builds(
    sct.SignedCertificateTimestamp,
    version=st.just(0),
    log_id=st.binary(min_size=32, max_size=32),
    timestamp_ms=st.integers(0, 2**64 - 1),
    extensions=st.one_of(st.just(b""), st.integers(0, sct.MAX_LEAF_INDEX).map(
        sct.leaf_index_extension)),
    hash_alg=st.just(4),
    sig_alg=st.sampled_from([sct.SIG_ECDSA, 7]),
    signature=st.binary(min_size=1, max_size=100),
)


@FUZZ
@given(items=st.lists(scts, min_size=1, max_size=3), data=st.data())
def test_sct_round_trip_and_mutations(items: list[sct.SignedCertificateTimestamp],
                                      data: Any) -> None:
    for item in items:
        assert sct.decode_sct(sct.encode_sct(item)) == item
    ext = sct.encode_sct_list_extension(items)
    assert sct.decode_sct_list(ext) == items
    mutated = data.draw(mutated_bytes([ext, sct.encode_sct(items[0])]))
    for parse in (sct.decode_sct_list, sct.decode_sct, sct.decode_ct_extensions,
                  sct.leaf_index_of):
        with only(sct.SCTDecodeError):
            parse(mutated)
    response = data.draw(mutated_json([items[0].to_add_chain_response()]))
    with only(sct.SCTDecodeError):
        sct.SignedCertificateTimestamp.from_add_chain_response(value_of(response))


# --------------------------------------------------------------------------------------------
# DSSE envelopes.

_ENVELOPE = {"payload": base64.b64encode(b'{"_type":"https://in-toto.io/Statement/v1"}').decode(),
             "payloadType": "application/vnd.in-toto+json",
             "signatures": [{"sig": base64.b64encode(b"\x30" * 70).decode(), "keyid": ""}]}


@FUZZ
@given(payload_type=st.text(min_size=1), payload=st.binary(),
       sigs=st.lists(st.binary(min_size=1), min_size=1, max_size=3))
def test_dsse_round_trip(payload_type: str, payload: bytes, sigs: list[bytes]) -> None:
    from keyless.formats.dsse import Signature

    env = Envelope(payload_type, payload, tuple(Signature(s) for s in sigs))
    assert Envelope.from_json(env.to_json()) == env
    assert Envelope.from_json(json.dumps(env.to_json())) == env


@FUZZ
@given(doc=mutated_json([_ENVELOPE]), text=mutated_json_text([_ENVELOPE]))
def test_dsse_parser_raises_only_invalid_input(doc: Any, text: bytes) -> None:
    with only(InvalidInput):
        Envelope.from_json(value_of(doc))
    with only(InvalidInput):
        Envelope.from_json(text.decode("utf-8", "surrogateescape"))


# --------------------------------------------------------------------------------------------
# Bundles and trusted roots (the verifier on mutated bundles is tests/unit/verify_hostile).

@functools.cache
def _bundles() -> list[Any]:
    vectors: Path = root_conftest().VECTORS
    root_conftest().require(vectors.is_dir(), f"test vectors at {vectors}")
    found = sorted((vectors / "conformance" / "bundle-verify").glob("*/bundle.sigstore.json"))
    found += sorted((vectors / "sigstore-python").glob("*.sigstore*"))
    out = []
    for path in found:
        try:
            out.append(json.loads(path.read_bytes()))
        except ValueError:
            continue  # the malformed-JSON conformance case
    return out


@functools.cache
def _roots() -> list[Any]:
    vectors: Path = root_conftest().VECTORS
    return [json.loads(p.read_bytes()) for p in sorted(vectors.glob("**/trusted_root.json"))[:6]]


@FUZZ
@given(pick=st.integers(0))
def test_bundle_round_trip(pick: int) -> None:
    docs = _bundles()
    try:
        bundle = Bundle.from_json(docs[pick % len(docs)])
    except InvalidInput:
        return  # a _fail conformance case
    assert Bundle.from_json(bundle.to_bytes()).to_json() == bundle.to_json()


@FUZZ_SLOW
@given(text=st.deferred(lambda: mutated_json_text(_bundles())))
def test_bundle_parser_raises_only_invalid_input(text: bytes) -> None:
    with only(InvalidInput):
        Bundle.from_json(text)


@FUZZ_SLOW
@given(text=st.deferred(lambda: mutated_json_text(_roots())))
def test_trusted_root_parser_raises_only_invalid_input(text: bytes) -> None:
    with only(InvalidInput):
        TrustedRoot.from_json(text)


# --------------------------------------------------------------------------------------------
# Regressions found by the properties above.


def test_signed_note_text_with_a_lone_surrogate_is_malformed() -> None:
    """A str envelope (as a bundle's JSON carries it) with a lone surrogate raised
    UnicodeEncodeError instead of MalformedNoteError."""
    from keyless.formats.note import MalformedNoteError

    envelope = _NOTES[0].decode().replace("log.example", "\udcecog.example", 1)
    for call in (lambda: SignedNote.parse(envelope),
                 lambda: open_checkpoint(envelope, _SIGNERS[0].verifier())):
        try:
            call()
        except MalformedNoteError:
            pass
        else:
            raise AssertionError("accepted")
