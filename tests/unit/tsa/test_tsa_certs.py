"""keyless.services.tsa.certs: generated and loaded TSA chains (RFC 3161 §2.3)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tsa_fixtures import *  # noqa: F403  (the TSA test fixtures)

from keyless.errors import ConfigError
from keyless.keys import InMemorySigner, KeySigner, PublicKey, generate_key
from keyless.services.tsa import (
    load_credentials,
    load_file_credentials,
    load_or_create_credentials,
)
from keyless.services.tsa.certs import check_chain, create_root, issue_leaf


class OpaqueSigner:
    """A KeySigner that, like a PKCS#11 key, never exposes its private key."""

    def __init__(self) -> None:
        self._inner = InMemorySigner(generate_key("ecdsa-p256"))
        self.calls = 0

    def public_key(self) -> PublicKey:
        return self._inner.public_key()

    def sign(self, data: bytes) -> bytes:
        self.calls += 1
        return self._inner.sign(data)


def test_first_start_generates_root_and_leaf_with_private_keys_0600(tsa_dir: Path) -> None:
    creds = load_or_create_credentials(tsa_dir)
    assert sorted(p.name for p in tsa_dir.iterdir()) == [
        "root.key",
        "root.pem",
        "tsa.key",
        "tsa.pem",
    ]
    for key in ("root.key", "tsa.key"):
        assert stat.S_IMODE((tsa_dir / key).stat().st_mode) == 0o600
    leaf, root = creds.chain
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    bc = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    assert root.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    leaf.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)
    assert creds.not_before <= creds.not_after
    assert len(creds.chain_der) == 2
    pems = x509.load_pem_x509_certificates(creds.chain_pem)
    assert pems == list(creds.chain)


def test_restart_reuses_the_same_chain(tsa_dir: Path) -> None:
    first = load_or_create_credentials(tsa_dir)
    second = load_or_create_credentials(tsa_dir)
    assert first.chain_der == second.chain_der


def test_external_signer_gets_a_leaf_under_the_same_root(tsa_dir: Path) -> None:
    file_based = load_or_create_credentials(tsa_dir)
    hsm = OpaqueSigner()
    creds = load_or_create_credentials(tsa_dir, leaf_signer=hsm)
    assert creds.signer is hsm
    assert creds.chain[1] == file_based.chain[1]
    assert creds.chain[0] != file_based.chain[0]
    assert isinstance(hsm, KeySigner)


def test_load_credentials_from_pem_with_any_signer(tmp_path: Path) -> None:
    root_signer = InMemorySigner(generate_key("ecdsa-p384"))
    root = create_root(root_signer)
    hsm = OpaqueSigner()
    leaf = issue_leaf(hsm.public_key(), root, root_signer)
    chain_pem = tmp_path / "chain.pem"
    chain_pem.write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM)
        + root.public_bytes(serialization.Encoding.PEM)
    )
    creds = load_credentials(chain_pem, hsm)
    assert creds.chain == (leaf, root)
    with pytest.raises(ConfigError, match="does not match"):
        load_credentials(chain_pem, OpaqueSigner())


def _leaf_with(
    eku: x509.ExtendedKeyUsage | None, critical: bool, signer: KeySigner
) -> tuple[x509.Certificate, x509.Certificate]:
    import datetime as dt

    root_signer = InMemorySigner(generate_key())
    root = create_root(root_signer)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bad")]))
        .issuer_name(root.subject)
        .public_key(signer.public_key())  # type: ignore[arg-type]
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if eku is not None:
        builder = builder.add_extension(eku, critical=critical)
    from cryptography.hazmat.primitives import hashes

    key = root_signer.private_key
    leaf = builder.sign(key, hashes.SHA256())  # type: ignore[arg-type]
    return leaf, root


@pytest.mark.parametrize(
    ("eku", "critical", "message"),
    [
        (None, False, "no ExtendedKeyUsage"),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), False, "critical"),
        (
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.CODE_SIGNING]
            ),
            True,
            "only id-kp-timeStamping",
        ),
    ],
)
def test_check_chain_refuses_leaves_verifiers_refuse(
    eku: x509.ExtendedKeyUsage | None, critical: bool, message: str
) -> None:
    signer = InMemorySigner(generate_key())
    leaf, root = _leaf_with(eku, critical, signer)
    with pytest.raises(ConfigError, match=message):
        check_chain(signer, [leaf, root])


def test_check_chain_refuses_a_foreign_root(tsa_dir: Path) -> None:
    creds = load_or_create_credentials(tsa_dir)
    other_root = create_root(InMemorySigner(generate_key()))
    with pytest.raises(ConfigError, match="not issued by"):
        check_chain(creds.signer, [creds.chain[0], other_root])
    with pytest.raises(ConfigError, match="at least"):
        check_chain(creds.signer, [creds.chain[0]])


def test_mismatched_root_files_are_refused(tsa_dir: Path) -> None:
    load_or_create_credentials(tsa_dir)
    other = create_root(InMemorySigner(generate_key()))
    (tsa_dir / "root.pem").write_bytes(other.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ConfigError, match="does not match"):
        load_or_create_credentials(tsa_dir)


def test_load_file_credentials_from_pem_chain_and_key(tsa_dir: Path) -> None:
    generated = load_or_create_credentials(tsa_dir)
    chain = tsa_dir / "chain.pem"
    chain.write_bytes(generated.chain_pem)
    creds = load_file_credentials(chain, tsa_dir / "tsa.key")
    assert creds.chain_der == generated.chain_der
    with pytest.raises(ConfigError, match="does not match"):
        load_file_credentials(chain, tsa_dir / "root.key")
