"""Pure profile helpers: DER surgery on TBS, OIDs, CA certificate profile."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.errors import InvalidInput
from keyless.formats.der import encode_oid, encode_tlv
from keyless.formats.sct import POISON_OID, SCT_LIST_OID
from keyless.formats.x509profile import (
    der_utf8string,
    sigstore_extension_value,
    strip_extension,
)
from keyless.services.ca import load_or_create


def test_strip_sct_list_of_a_real_leaf_equals_cryptography(vectors: Path) -> None:
    leaf = x509.load_der_x509_certificate((vectors / "sigstore-python" / "leaf.der").read_bytes())
    assert strip_extension(leaf.tbs_certificate_bytes, SCT_LIST_OID) == (
        leaf.tbs_precertificate_bytes
    )


def test_strip_refuses_missing_extension_and_garbage(vectors: Path) -> None:
    leaf = x509.load_der_x509_certificate((vectors / "sigstore-python" / "leaf.der").read_bytes())
    with pytest.raises(InvalidInput, match="no extension"):
        strip_extension(leaf.tbs_certificate_bytes, POISON_OID)
    for garbage in (b"", b"\x30\x05\x01", b"\x04\x00", leaf.tbs_certificate_bytes[:-3]):
        with pytest.raises(InvalidInput):
            strip_extension(garbage, POISON_OID)


def test_der_helpers() -> None:
    oid = encode_tlv(0x06, encode_oid("1.3.6.1.4.1.11129.2.4.3"))
    assert oid.hex() == "060a2b06010401d679020403"
    assert der_utf8string("ab") == b"\x0c\x02ab"
    assert len(der_utf8string("x" * 200)) == 203  # long-form length
    assert sigstore_extension_value(1, "https://x") == b"https://x"
    assert sigstore_extension_value(8, "https://x") == b"\x0c\x09https://x"


def test_ca_profile_and_reload(tmp_path: Path) -> None:
    material = load_or_create(tmp_path / "ca")
    inter, root = material.chain
    for cert in (inter, root):
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and bc.value.ca
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
        assert not ku.value.digital_signature
        cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert inter.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    assert x509.ExtendedKeyUsageOID.CODE_SIGNING in inter.extensions.get_extension_for_class(
        x509.ExtendedKeyUsage).value
    assert root.not_valid_before_utc < dt.datetime.now(dt.UTC)
    assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)
    for name in ("root.key", "intermediate.key"):
        assert (tmp_path / "ca" / name).stat().st_mode & 0o777 == 0o600
    again = load_or_create(tmp_path / "ca")
    assert again.chain == material.chain


def test_encrypted_keys(tmp_path: Path) -> None:
    from keyless.errors import ConfigError

    material = load_or_create(tmp_path / "ca", password=b"pw")
    assert b"ENCRYPTED" in (tmp_path / "ca" / "intermediate.key").read_bytes()
    assert load_or_create(tmp_path / "ca", password=b"pw").chain == material.chain
    with pytest.raises(ConfigError):
        load_or_create(tmp_path / "ca", password=b"wrong")


def test_operator_supplied_files(tmp_path: Path) -> None:
    from keyless.errors import ConfigError
    from keyless.services.ca import load_from_files

    material = load_or_create(tmp_path / "ca")
    chain = tmp_path / "chain.pem"
    chain.write_text("".join(material.chain_pem()))
    loaded = load_from_files(chain, tmp_path / "ca" / "intermediate.key")
    assert loaded.chain == material.chain
    with pytest.raises(ConfigError, match="does not match"):
        load_from_files(chain, tmp_path / "ca" / "root.key")


def test_load_material_sources(tmp_path: Path) -> None:
    from keyless.errors import ConfigError
    from keyless.services.ca import load_material

    generated = load_material(tmp_path / "ca")
    chain = tmp_path / "chain.pem"
    chain.write_text("".join(generated.chain_pem()))
    from_files = load_material(tmp_path / "other", chain_pem=chain,
                               key_pem=tmp_path / "ca" / "intermediate.key")
    assert from_files.chain == generated.chain
    with pytest.raises(ConfigError, match="both"):
        load_material(tmp_path / "x", chain_pem=chain)
