"""The git CMS signature: gitsign's layout, and a parser that refuses every other shape."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import cms as asn1cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import NameOID

from keyless.errors import InvalidInput
from keyless.git import cms

KEY = ec.generate_private_key(ec.SECP256R1())
NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
NOW = datetime.now(UTC)
CERT = (x509.CertificateBuilder().subject_name(NAME).issuer_name(NAME)
        .public_key(KEY.public_key()).serial_number(4242)
        .not_valid_before(NOW).not_valid_after(NOW + timedelta(minutes=10))
        .sign(KEY, hashes.SHA256()))
CERT_DER = CERT.public_bytes(serialization.Encoding.DER)
PAYLOAD = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor A <a@b> 1 +0000\n\nmsg\n"


def signed(payload: bytes = PAYLOAD, **kwargs: object) -> bytes:
    attrs = cms.signed_attributes(payload, NOW)
    sig = KEY.sign(hashlib.sha256(attrs).digest(), ec.ECDSA(Prehashed(hashes.SHA256())))
    return cms.assemble(attrs, sig, CERT_DER, **kwargs)  # type: ignore[arg-type]


def test_layout_and_round_trip() -> None:
    der = signed(log_entry=b"\x08\x01")
    parsed = cms.parse(cms.dearmor(cms.armor(der)))
    assert parsed.message_digest == hashlib.sha256(PAYLOAD).digest()
    assert parsed.certificate_der == CERT_DER and parsed.log_entry == b"\x08\x01"
    assert parsed.signing_time == NOW.replace(microsecond=0)
    KEY.public_key().verify(parsed.signature, parsed.signed_attrs, ec.ECDSA(hashes.SHA256()))
    si = asn1cms.ContentInfo.load(der)["content"]["signer_infos"][0]
    assert [a["type"].native for a in si["signed_attrs"]] == [
        "content_type", "signing_time", "message_digest"]
    assert parsed.signed_attrs[:1] == b"\x31"  # the SET OF, as signed


def test_armor_is_git_x509() -> None:
    text = cms.armor(signed()).decode()
    lines = text.splitlines()
    assert lines[0] == "-----BEGIN SIGNED MESSAGE-----"
    assert lines[-1] == "-----END SIGNED MESSAGE-----" and text.endswith("\n")
    assert all(len(line) <= 64 for line in lines[1:-1])


@pytest.mark.parametrize("data", [
    b"", b"-----BEGIN PGP SIGNATURE-----\nAA==\n-----END PGP SIGNATURE-----\n",
    b"-----BEGIN SIGNED MESSAGE-----\n!!!\n-----END SIGNED MESSAGE-----\n",
    b"-----BEGIN SIGNED MESSAGE-----\nAAAA\n", "é".encode(), b"\x30" + b"\x00" * 10,
])
def test_unreadable_signatures(data: bytes) -> None:
    with pytest.raises(InvalidInput):
        cms.parse(cms.dearmor(data))


def test_oversized_signature() -> None:
    with pytest.raises(InvalidInput, match="larger"):
        cms.dearmor(b"\x30" * (cms.MAX_SIGNATURE + 1))


def _mutated(change: object) -> bytes:
    info = asn1cms.ContentInfo.load(signed())
    change(info["content"])  # type: ignore[operator]
    return bytes(info.dump(force=True))


def _second_signer(sd: asn1cms.SignedData) -> None:
    sd["signer_infos"] = [sd["signer_infos"][0], sd["signer_infos"][0]]


def _attached(sd: asn1cms.SignedData) -> None:
    sd["encap_content_info"] = {"content_type": "data", "content": PAYLOAD}


def _sha1(sd: asn1cms.SignedData) -> None:
    sd["signer_infos"][0]["digest_algorithm"] = {"algorithm": "sha1"}


def _other_serial(sd: asn1cms.SignedData) -> None:
    sid = sd["signer_infos"][0]["sid"].chosen
    sid["serial_number"] = 1


def _no_digest(sd: asn1cms.SignedData) -> None:
    attrs = sd["signer_infos"][0]["signed_attrs"]
    sd["signer_infos"][0]["signed_attrs"] = [a for a in attrs
                                             if a["type"].native != "message_digest"]


def _twice(sd: asn1cms.SignedData) -> None:
    attrs = list(sd["signer_infos"][0]["signed_attrs"])
    sd["signer_infos"][0]["signed_attrs"] = [*attrs, attrs[0]]


@pytest.mark.parametrize("change", [_second_signer, _attached, _sha1, _other_serial,
                                    _no_digest, _twice])
def test_other_shapes_are_refused(change: object) -> None:
    with pytest.raises(InvalidInput):
        cms.parse(_mutated(change))
