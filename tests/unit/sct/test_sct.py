"""SCT encoding and verification against the real embedded SCT of a public-good certificate.

Provenance: ``sigstore-python/leaf.der`` (public-good production leaf, issued by
``sigstore-intermediate``, SCT from ctfe.sigstore.dev/2022) and the production trusted root.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given
from hypothesis import strategies as st

from keyless.errors import VerificationError
from keyless.formats import sct as sctmod
from keyless.formats.sct import (
    SCTDecodeError,
    SCTSignatureError,
    SignedCertificateTimestamp,
    decode_sct,
    decode_sct_list,
    encode_sct,
    encode_sct_list,
    encode_sct_list_extension,
    log_id_for,
    precert_signed_data,
    verify_sct,
    x509_signed_data,
)
from keyless.keys import InMemorySigner


def _load(vectors: Path) -> tuple[x509.Certificate, x509.Certificate, object, dict[str, object]]:
    leaf = x509.load_der_x509_certificate((vectors / "sigstore-python" / "leaf.der").read_bytes())
    root = json.loads((vectors / "public-good" / "production" / "trusted_root.json").read_text())
    issuer = None
    for ca in root["certificateAuthorities"]:
        for c in ca["certChain"]["certificates"]:
            cert = x509.load_der_x509_certificate(base64.b64decode(c["rawBytes"]))
            if cert.subject == leaf.issuer:
                issuer = cert
    assert issuer is not None
    sct_ext = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(sctmod.SCT_LIST_OID))
    (real,) = decode_sct_list(sct_ext.value.public_bytes())
    key = None
    for log in root["ctlogs"]:
        if base64.b64decode(log["logId"]["keyId"]) == real.log_id:
            key = serialization.load_der_public_key(base64.b64decode(log["publicKey"]["rawBytes"]))
    assert key is not None
    return leaf, issuer, key, root


def _issuer_key_hash(issuer: x509.Certificate) -> bytes:
    spki = issuer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


def test_real_embedded_sct_verifies(vectors: Path) -> None:
    leaf, issuer, key, _ = _load(vectors)
    ext = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(sctmod.SCT_LIST_OID))
    (real,) = decode_sct_list(ext.value.public_bytes())
    lib = ext.value[0]
    assert real.version == 0
    assert real.log_id == lib.log_id
    assert real.timestamp_ms == int(lib.timestamp.timestamp() * 1000) or abs(
        real.timestamp_ms - lib.timestamp.timestamp() * 1000
    ) < 1
    assert real.hash_alg == sctmod.HASH_SHA256 and real.sig_alg == sctmod.SIG_ECDSA
    assert real.log_id == log_id_for(key)
    data = precert_signed_data(real, _issuer_key_hash(issuer), leaf.tbs_precertificate_bytes)
    verify_sct(real, data, key)


def test_real_sct_list_round_trips_byte_for_byte(vectors: Path) -> None:
    leaf, _, _, _ = _load(vectors)
    ext = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(sctmod.SCT_LIST_OID))
    raw = ext.value.public_bytes()
    scts = decode_sct_list(raw)
    assert encode_sct_list_extension(scts) == raw
    assert decode_sct_list(encode_sct_list(scts)) == scts
    assert raw[:6] == bytes.fromhex("047a00780076")


def test_tampered_tbs_or_timestamp_fails(vectors: Path) -> None:
    leaf, issuer, key, _ = _load(vectors)
    ext = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(sctmod.SCT_LIST_OID))
    (real,) = decode_sct_list(ext.value.public_bytes())
    ikh = _issuer_key_hash(issuer)
    tbs = bytearray(leaf.tbs_precertificate_bytes)
    tbs[-1] ^= 1
    with pytest.raises(SCTSignatureError):
        verify_sct(real, precert_signed_data(real, ikh, bytes(tbs)), key)
    moved = SignedCertificateTimestamp(
        real.version, real.log_id, real.timestamp_ms + 1, real.extensions,
        real.hash_alg, real.sig_alg, real.signature,
    )
    with pytest.raises(VerificationError):
        verify_sct(moved, precert_signed_data(moved, ikh, leaf.tbs_precertificate_bytes), key)
    # the wrong issuer key hash (e.g. the root instead of the intermediate)
    with pytest.raises(SCTSignatureError):
        verify_sct(real, precert_signed_data(real, b"\0" * 32, leaf.tbs_precertificate_bytes), key)


def test_wrong_key_is_refused_by_log_id(vectors: Path) -> None:
    leaf, issuer, _, _ = _load(vectors)
    ext = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(sctmod.SCT_LIST_OID))
    (real,) = decode_sct_list(ext.value.public_bytes())
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    data = precert_signed_data(real, _issuer_key_hash(issuer), leaf.tbs_precertificate_bytes)
    with pytest.raises(SCTSignatureError, match="log ID"):
        verify_sct(real, data, other)


def test_signed_data_layout_matches_rfc6962() -> None:
    sct = SignedCertificateTimestamp(0, b"\x11" * 32, 0x0102030405060708, b"\xaa", 4, 3, b"sig")
    data = precert_signed_data(sct, b"\x22" * 32, b"TBS")
    assert data == (
        b"\x00\x00" + bytes.fromhex("0102030405060708") + b"\x00\x01" + b"\x22" * 32
        + b"\x00\x00\x03TBS" + b"\x00\x01\xaa"
    )
    assert x509_signed_data(sct, b"CERT") == (
        b"\x00\x00" + bytes.fromhex("0102030405060708") + b"\x00\x00" + b"\x00\x00\x04CERT"
        + b"\x00\x01\xaa"
    )


@pytest.mark.parametrize(
    "key",
    [
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP384R1()),
        ed25519.Ed25519PrivateKey.generate(),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ],
    ids=["p256", "p384", "ed25519", "rsa"],
)
def test_sign_and_verify_with_each_key_type(key: object) -> None:
    signer = InMemorySigner(key)  # type: ignore[arg-type]
    pub = signer.public_key()
    hash_alg, sig_alg = sctmod.algorithms_for_key(pub)
    unsigned = SignedCertificateTimestamp(0, log_id_for(pub), 1_700_000_000_000, b"", hash_alg,
                                          sig_alg, b"")
    data = x509_signed_data(unsigned, b"cert")
    sct = SignedCertificateTimestamp(0, unsigned.log_id, unsigned.timestamp_ms, b"", hash_alg,
                                     sig_alg, signer.sign(data))
    verify_sct(decode_sct(encode_sct(sct)), data, pub)
    again = SignedCertificateTimestamp.from_add_chain_response(sct.to_add_chain_response())
    assert again == sct
    with pytest.raises(SCTSignatureError):
        verify_sct(sct, data + b"x", pub)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", b"\x00\x02\x00", b"\x01" + b"\0" * 60, bytes.fromhex("0000"), b"\x04\x00"],
)
def test_malformed_lists_raise_decode_error(data: bytes) -> None:
    with pytest.raises(SCTDecodeError):
        decode_sct_list(data)


def test_trailing_bytes_refused() -> None:
    sct = SignedCertificateTimestamp(0, b"\x01" * 32, 5, b"", 4, 3, b"s")
    with pytest.raises(SCTDecodeError, match="trailing"):
        decode_sct(encode_sct(sct) + b"\0")


@given(
    ts=st.integers(0, 2**64 - 1),
    ext=st.binary(max_size=300),
    sig=st.binary(max_size=300),
    n=st.integers(1, 3),
)
def test_round_trip_property(ts: int, ext: bytes, sig: bytes, n: int) -> None:
    scts = [SignedCertificateTimestamp(0, bytes([i]) * 32, ts, ext, 4, 3, sig) for i in range(n)]
    assert decode_sct_list(encode_sct_list(scts)) == scts
    assert decode_sct_list(encode_sct_list_extension(scts)) == scts


@given(st.binary(max_size=200))
def test_fuzz_never_crashes(data: bytes) -> None:
    with contextlib.suppress(SCTDecodeError):
        decode_sct_list(data)


# -- C2SP static-ct-api "SCT Extension": leaf_index -------------------------------------------


@pytest.mark.parametrize(
    ("index", "wire"),
    [
        (0, "0000050000000000"),
        (5, "0000050000000005"),
        (0x0102030405, "0000050102030405"),
        (2**40 - 1, "000005ffffffffff"),
    ],
)
def test_leaf_index_extension_wire_form(index: int, wire: str) -> None:
    # type 0, u16 length 5, uint40 big-endian: "8 bytes" for a field with only leaf_index
    assert sctmod.leaf_index_extension(index).hex() == wire
    assert sctmod.leaf_index_of(bytes.fromhex(wire)) == index


def test_leaf_index_out_of_range_is_refused() -> None:
    for bad in (-1, 2**40):
        with pytest.raises(sctmod.SCTError):
            sctmod.leaf_index_extension(bad)


@pytest.mark.parametrize(
    ("ext", "needle"),
    [
        ("000005000000000000000500000000", "truncated"),  # second extension cut short
        ("00000500000000010000050000000002", "repeats"),
        ("0000040000000a", "not 5"),
        ("00", "truncated"),
    ],
)
def test_malformed_ct_extensions_are_refused(ext: str, needle: str) -> None:
    with pytest.raises(SCTDecodeError, match=needle):
        sctmod.leaf_index_of(bytes.fromhex(ext))


def test_other_extensions_are_kept_and_rfc6962_scts_have_no_leaf_index() -> None:
    assert sctmod.leaf_index_of(b"") is None
    assert sctmod.leaf_index_of(bytes.fromhex("07000161")) is None
    mixed = bytes.fromhex("07000161") + sctmod.leaf_index_extension(9)
    assert sctmod.decode_ct_extensions(mixed) == {7: b"a", 0: (9).to_bytes(5, "big")}
    assert sctmod.leaf_index_of(mixed) == 9


def test_leaf_index_is_signed_and_survives_the_wire() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    ext = sctmod.leaf_index_extension(42)
    template = SignedCertificateTimestamp(0, sctmod.log_id_for(key.public_key()), 1, ext, 4, 3, b"")
    data = sctmod.x509_signed_data(template, b"cert")
    assert data.endswith(b"\x00\x08" + ext)  # RFC 6962 §3.2: extensions are in the signed data
    from cryptography.hazmat.primitives import hashes

    sig = key.sign(data, ec.ECDSA(hashes.SHA256()))
    sct = SignedCertificateTimestamp(0, template.log_id, 1, ext, 4, 3, sig)
    back = decode_sct(encode_sct(sct))
    assert back.extensions == ext and sctmod.leaf_index_of(back.extensions) == 42
    sctmod.verify_sct(back, data, key.public_key())
    stripped = SignedCertificateTimestamp(0, template.log_id, 1, b"", 4, 3, sig)
    with pytest.raises(SCTSignatureError):
        sctmod.verify_sct(stripped, sctmod.x509_signed_data(stripped, b"cert"), key.public_key())
