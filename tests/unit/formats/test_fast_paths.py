"""The verifier's hot-path shortcuts give exactly the answers of the general code they bypass."""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyless.errors import InvalidInput
from keyless.formats.bundle import Bundle
from keyless.formats.jsonreader import b64decode
from keyless.formats.note import MalformedNoteError, check_text_chars
from keyless.verify import entries
from keyless.verify.errors import LogEntryMismatchError
from keyless.verify.tlog import set_payload


def _slow_b64decode(value: str) -> bytes | None:
    """The lenient protobuf-JSON reading that ``b64decode`` must keep (validate, then repair)."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        pass
    text = value.replace("\n", "").replace("\r", "")
    text = text.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()),
        st.binary(max_size=64).map(lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")),
        st.text(alphabet="ABCab+/=-_\n\r é", max_size=24),
    )
)
def test_b64decode_fast_path_agrees_with_the_general_reading(value: str) -> None:
    expected = _slow_b64decode(value)
    if expected is None:
        with pytest.raises(InvalidInput):
            b64decode(value, "x")
    else:
        assert b64decode(value, "x") == expected


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_control_characters_are_found_like_a_character_scan(text: str) -> None:
    bad = [ch for ch in text if ch < " " and ch != "\n"]
    if bad:
        with pytest.raises(MalformedNoteError, match=f"{ord(bad[0]):#04x}"):
            check_text_chars(text, "t")
    else:
        check_text_chars(text, "t")


def _real_entries(vectors: Path) -> list[Bundle]:
    out = []
    for path in sorted((vectors / "conformance" / "bundle-verify").glob("*/bundle.sigstore.json")):
        try:
            bundle = Bundle.from_json(path.read_bytes())
        except InvalidInput:
            continue
        out.append(bundle)
    return out


def test_set_payload_is_the_jcs_of_the_entry(vectors: Path) -> None:
    seen = 0
    for bundle in _real_entries(vectors):
        for entry in bundle.verification_material.tlog_entries:
            expected = json.dumps(
                {
                    "body": base64.b64encode(entry.canonicalized_body).decode(),
                    "integratedTime": entry.integrated_time,
                    "logID": entry.log_id.hex(),
                    "logIndex": entry.log_index,
                },
                sort_keys=True,
                separators=(",", ":"),
            ).encode()
            assert set_payload(entry) == expected
            seen += 1
    assert seen > 50


def test_pem_shortcut_agrees_with_cryptography(vectors: Path) -> None:
    """Every Rekor v1 body's PEM key: the shortcut and the full loader agree, for the bundle's
    own certificate, another certificate, and re-wrapped or damaged PEM."""
    checked = 0
    bundles = _real_entries(vectors)
    for bundle, other in zip(bundles, bundles[1:] + bundles[:1], strict=True):
        certs = bundle.verification_material.certificates
        entry = bundle.verification_material.tlog_entries[0]
        body = json.loads(entry.canonicalized_body)
        if body.get("kind") != "hashedrekord" or body.get("apiVersion") != "0.0.1" or not certs:
            continue
        content = body["spec"]["signature"]["publicKey"]["content"]
        pem = base64.b64decode(content)
        variants = [
            content,
            base64.b64encode(pem.replace(b"\n", b"\r\n")).decode(),
            base64.b64encode(pem.rstrip(b"\n")).decode(),
            base64.b64encode(pem[:40] + pem[41:]).decode(),
            base64.b64encode(pem.replace(b"\n", b"\n\n", 2).replace(b"\n\n", b"\n", 1)).decode(),
            base64.b64encode(pem.replace(b"CERTIFICATE", b"PUBLIC KEY")).decode(),
            "not base64!",
        ]
        keys = [certs[0], *other.verification_material.certificates[:1]]
        for variant in variants:
            for key_der in keys:
                try:
                    expected = entries._pem_der(variant, "k") == key_der
                except LogEntryMismatchError:
                    expected = False
                try:
                    got = entries._pem_is(variant, key_der, "k")
                except LogEntryMismatchError:
                    got = False
                assert got == expected
                checked += 1
    assert checked > 50


@pytest.mark.parametrize("text", ["--645", "1" * 5000, "+5", " 5", "5 ", "0x10", "٣"])
def test_integers_that_are_not_int64_text_are_invalid_input(vectors: Path, text: str) -> None:
    path = vectors / "conformance" / "bundle-verify" / "happy-path-v0.3" / "bundle.sigstore.json"
    bundle = json.loads(path.read_text())
    bundle["verificationMaterial"]["tlogEntries"][0]["logIndex"] = text
    with pytest.raises(InvalidInput, match="logIndex must be an integer"):
        Bundle.from_json(json.dumps(bundle))
