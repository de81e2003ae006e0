"""The TSA's key and certificate chain: generated on first start, or loaded from PEM.

RFC 3161 §2.3 requires the TSA certificate to carry exactly one ExtendedKeyUsage, critical, with
id-kp-timeStamping; rfc3161-client (sigstore-python) and sigstore-js both check it. The chain is
published leaf first (``GET /api/v1/timestamp/certchain``) and, as DER, goes into the trusted
root's ``timestampAuthorities[].certChain`` (protocols.md §7, §8).

Layout of a generated directory (keys written 0600 by :mod:`keyless.storage.keyfiles`)::

    root.key  root.pem      self-signed CA (ECDSA P-384), only used to (re)issue the leaf
    tsa.key   tsa.pem       the timestamping leaf (ECDSA P-256: the fastest widely verified)

Any :class:`keyless.keys.KeySigner` (e.g. a PKCS#11 key) may replace ``tsa.key``: the leaf is
then issued for that signer's public key and ``tsa.key`` is never written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keyless.errors import ConfigError
from keyless.formats.x509profile import CA_KEY_USAGE, SIGNING_KEY_USAGE
from keyless.keys import InMemorySigner, KeySigner, PublicKey, hash_for_curve, spki_der
from keyless.storage.keyfiles import load_or_create_key, load_private_key

ROOT_VALIDITY = dt.timedelta(days=3650)
LEAF_VALIDITY = dt.timedelta(days=1825)
#: Backdate notBefore so that a freshly generated chain verifies under a slightly slow verifier.
BACKDATE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class TsaCredentials:
    """The TSA's signer and its certificate chain ``[leaf, …, root]``."""

    signer: KeySigner
    chain: tuple[x509.Certificate, ...]

    @property
    def chain_der(self) -> list[bytes]:
        """DER certificates leaf→root, for the trusted root's ``certChain``."""
        return [c.public_bytes(serialization.Encoding.DER) for c in self.chain]

    @property
    def chain_pem(self) -> bytes:
        """The PEM chain leaf→root served at ``/api/v1/timestamp/certchain``."""
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)

    @property
    def not_before(self) -> dt.datetime:
        """Earliest time every certificate of the chain is valid (the trusted root's validFor)."""
        return max(c.not_valid_before_utc for c in self.chain)

    @property
    def not_after(self) -> dt.datetime:
        """Latest time every certificate of the chain is valid: no token may be issued after."""
        return min(c.not_valid_after_utc for c in self.chain)


def _sign_certificate(
    builder: x509.CertificateBuilder, issuer_signer: InMemorySigner
) -> x509.Certificate:
    key = issuer_signer.private_key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = hash_for_curve(key.curve)
        assert isinstance(algorithm, hashes.SHA256 | hashes.SHA384 | hashes.SHA512)
        return builder.sign(key, algorithm)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return builder.sign(key, None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return builder.sign(key, hashes.SHA256())


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def create_root(
    signer: InMemorySigner, *, organization: str = "keyless", now: dt.datetime | None = None
) -> x509.Certificate:
    """A self-signed TSA root: critical CA:TRUE and keyCertSign (RFC 5280 §4.2.1.9, §4.2.1.3)."""
    now = now or dt.datetime.now(dt.UTC)
    name = _name("keyless TSA root", organization)
    pub = signer.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + ROOT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            CA_KEY_USAGE,
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
    )
    return _sign_certificate(builder, signer)


def issue_leaf(
    leaf_key: PublicKey,
    root: x509.Certificate,
    root_signer: InMemorySigner,
    *,
    organization: str = "keyless",
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """The TSA leaf: one critical EKU id-kp-timeStamping (RFC 3161 §2.3), digitalSignature."""
    now = now or dt.datetime.now(dt.UTC)
    not_after = min(now + LEAF_VALIDITY, root.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name("keyless TSA", organization))
        .issuer_name(root.subject)
        .public_key(leaf_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            SIGNING_KEY_USAGE,
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                root.public_key()  # type: ignore[arg-type]
            ),
            critical=False,
        )
    )
    return _sign_certificate(builder, root_signer)


def check_chain(signer: KeySigner, chain: Sequence[x509.Certificate]) -> None:
    """Refuse a chain the verifiers would refuse (RFC 3161 §2.3; protocols.md §8).

    The leaf must match the signer and carry only the critical timeStamping EKU; every
    certificate must be issued by the next one, and the last must be self-signed.
    """
    if len(chain) < 2:
        raise ConfigError("the TSA chain needs at least the leaf and its root")
    leaf = chain[0]
    if spki_der(leaf.public_key()) != spki_der(signer.public_key()):
        raise ConfigError("the TSA signing key does not match the TSA leaf certificate")
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound as exc:
        raise ConfigError("the TSA leaf has no ExtendedKeyUsage extension") from exc
    if not eku.critical or list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise ConfigError(
            "the TSA leaf's ExtendedKeyUsage must be critical and only id-kp-timeStamping"
        )
    for child, parent in zip(chain, [*chain[1:], chain[-1]], strict=True):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise ConfigError(
                f"TSA certificate {child.subject.rfc4514_string()} is not issued by "
                f"{parent.subject.rfc4514_string()}: {exc}"
            ) from exc


def load_chain_pem(path: Path) -> list[x509.Certificate]:
    """Certificates of a PEM file, in file order."""
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the TSA certificate chain {path}: {exc}") from exc


def load_credentials(chain_pem: Path, signer: KeySigner) -> TsaCredentials:
    """An operator-supplied chain (leaf first) and the signer of its leaf (file or PKCS#11)."""
    chain = load_chain_pem(chain_pem)
    check_chain(signer, chain)
    return TsaCredentials(signer=signer, chain=tuple(chain))


def load_file_credentials(
    chain_pem: Path, key_pem: Path, password: bytes | None = None
) -> TsaCredentials:
    """An operator-supplied chain (leaf first) and the leaf's PEM private key file."""
    return load_credentials(chain_pem, InMemorySigner(load_private_key(key_pem, password)))


def load_or_create_credentials(
    directory: Path, *, leaf_signer: KeySigner | None = None, organization: str = "keyless"
) -> TsaCredentials:
    """The TSA's credentials under ``directory``, generating whatever is missing on first start.

    With ``leaf_signer`` (e.g. an HSM key) the leaf is issued for that key instead of ``tsa.key``;
    an existing ``tsa.pem`` for another key is replaced by a fresh leaf under the same root.
    """
    root_signer = load_or_create_key(directory / "root.key", "ecdsa-p384")
    root_path = directory / "root.pem"
    if root_path.exists():
        root = load_chain_pem(root_path)[0]
        if spki_der(root.public_key()) != spki_der(root_signer.public_key()):
            raise ConfigError(f"{root_path} does not match {directory / 'root.key'}")
    else:
        root = create_root(root_signer, organization=organization)
        _write_public(root_path, root.public_bytes(serialization.Encoding.PEM))
    signer = leaf_signer or load_or_create_key(directory / "tsa.key", "ecdsa-p256")
    leaf_path = directory / "tsa.pem"
    leaf: x509.Certificate | None = None
    if leaf_path.exists():
        leaf = load_chain_pem(leaf_path)[0]
        if spki_der(leaf.public_key()) != spki_der(signer.public_key()):
            leaf = None
    if leaf is None:
        leaf = issue_leaf(signer.public_key(), root, root_signer, organization=organization)
        _write_public(leaf_path, leaf.public_bytes(serialization.Encoding.PEM))
    chain = (leaf, root)
    check_chain(signer, chain)
    return TsaCredentials(signer=signer, chain=chain)


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # beside the TSA key
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
