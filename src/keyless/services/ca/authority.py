"""The CA's key material: a root and an intermediate, generated on first start or loaded.

Three sources, one result (:class:`CAMaterial`: the issuing signer plus the chain
intermediate → root):

* :func:`load_or_create` — a directory holding ``root.pem``/``root.key`` and
  ``intermediate.pem``/``intermediate.key`` (keys PKCS#8, mode 0600 via
  :mod:`keyless.storage.keyfiles`, optionally encrypted with a password); created on first use;
* :func:`load_from_files` — an operator's own chain PEM (intermediate first, root last) and issuing
  key PEM (optionally encrypted);
* :func:`create_with_signer` — an issuing key that never leaves an HSM (PKCS#11,
  :mod:`keyless.storage.pkcs11`): the directory then holds only certificates and the root key.

CA certificate profile: protocols.md §1.4 "CA chain requirements".
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from keyless.errors import ConfigError
from keyless.formats.x509profile import build_ca_certificate, ca_name, certificate_pem
from keyless.keys import InMemorySigner, KeySigner, generate_key, spki_der
from keyless.localfiles import write_file_atomically
from keyless.storage.keyfiles import load_private_key, write_private_key

#: Lifetime of generated CA certificates (Fulcio's public root and intermediate: ~10 years).
CA_VALIDITY = dt.timedelta(days=3650)
#: Backdating of generated CA certificates, so that a verifier whose clock lags a little still
#: sees them as valid.
CA_BACKDATE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class CAMaterial:
    """The issuing key and the certificate chain above every leaf (intermediate → root)."""

    signer: KeySigner
    chain: tuple[x509.Certificate, ...]

    def __post_init__(self) -> None:
        if not self.chain:
            raise ConfigError("the CA chain is empty")
        if spki_der(self.signer.public_key()) != spki_der(self.chain[0].public_key()):
            raise ConfigError("the issuing key does not match the first certificate of the chain")
        for child, parent in zip(self.chain, self.chain[1:], strict=False):
            try:
                child.verify_directly_issued_by(parent)
            except Exception as exc:
                raise ConfigError(
                    f"CA chain is broken: {child.subject.rfc4514_string()} is not issued by "
                    f"{parent.subject.rfc4514_string()}"
                ) from exc

    @property
    def issuer(self) -> x509.Certificate:
        """The certificate that issues leaves."""
        return self.chain[0]

    @property
    def root(self) -> x509.Certificate:
        return self.chain[-1]

    def chain_der(self) -> list[bytes]:
        """DER certificates intermediate → root (the trusted root's ``certChain``)."""
        return [c.public_bytes(serialization.Encoding.DER) for c in self.chain]

    def chain_pem(self) -> list[str]:
        """Standard PEM certificates intermediate → root."""
        return [certificate_pem(c) for c in self.chain]


def _now(clock: Callable[[], float]) -> dt.datetime:
    return dt.datetime.fromtimestamp(clock(), dt.UTC).replace(microsecond=0)


def _write_public(path: Path, cert: x509.Certificate) -> None:
    write_file_atomically(path, certificate_pem(cert).encode())


def _create_root(
    directory: Path, organization: str, key_kind: str, password: bytes | None,
    clock: Callable[[], float],
) -> tuple[x509.Certificate, KeySigner]:  # fmt: skip
    key = generate_key(key_kind)
    write_private_key(directory / "root.key", key, password)
    signer = InMemorySigner(key)
    start = _now(clock) - CA_BACKDATE
    root = build_ca_certificate(
        subject=ca_name(organization, f"{organization}-root"),
        public_key=signer.public_key(),
        issuer=None,
        signer=signer,
        not_before=start,
        not_after=start + CA_VALIDITY,
    )
    _write_public(directory / "root.pem", root)
    return root, signer


def _create_intermediate(
    directory: Path, organization: str, root: x509.Certificate, root_signer: KeySigner,
    *, issuing: KeySigner, clock: Callable[[], float],
) -> x509.Certificate:  # fmt: skip
    start = _now(clock) - CA_BACKDATE
    cert = build_ca_certificate(
        subject=ca_name(organization, f"{organization}-intermediate"),
        public_key=issuing.public_key(),
        issuer=root,
        signer=root_signer,
        not_before=start,
        not_after=start + CA_VALIDITY,
    )
    _write_public(directory / "intermediate.pem", cert)
    return cert


def load_or_create(
    directory: Path,
    *,
    organization: str = "keyless",
    key_kind: str = "ecdsa-p256",
    root_key_kind: str = "ecdsa-p384",
    password: bytes | None = None,
    clock: Callable[[], float] = time.time,
) -> CAMaterial:
    """The CA in ``directory``, generating root and intermediate there on first use.

    The root key defaults to P-384 like Fulcio's; the issuing (intermediate) key to P-256, which
    signs about six times faster than P-384 and is accepted by every client (it signs two
    certificates per request, so it bounds throughput).
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)  # it holds private keys, also when an older install made it
    inter_pem = directory / "intermediate.pem"
    inter_key = directory / "intermediate.key"
    if inter_pem.exists() and inter_key.exists():
        chain = [_load_cert(inter_pem), _load_cert(directory / "root.pem")]
        return CAMaterial(InMemorySigner(load_private_key(inter_key, password)), tuple(chain))
    root, root_signer = _create_root(directory, organization, root_key_kind, password, clock)
    key = generate_key(key_kind)
    issuing = InMemorySigner(key)
    inter = _create_intermediate(
        directory, organization, root, root_signer, issuing=issuing, clock=clock
    )
    # The key is written last: its presence marks a complete CA directory.
    write_private_key(inter_key, key, password)
    return CAMaterial(issuing, (inter, root))


def create_with_signer(
    directory: Path,
    issuing: KeySigner,
    *,
    organization: str = "keyless",
    key_kind: str = "ecdsa-p384",
    password: bytes | None = None,
    clock: Callable[[], float] = time.time,
) -> CAMaterial:
    """A CA whose issuing key is ``issuing`` (e.g. PKCS#11); certificates reused if they match."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    inter_pem = directory / "intermediate.pem"
    if inter_pem.exists() and (directory / "root.pem").exists():
        inter = _load_cert(inter_pem)
        if spki_der(inter.public_key()) == spki_der(issuing.public_key()):
            return CAMaterial(issuing, (inter, _load_cert(directory / "root.pem")))
    if (directory / "root.key").exists():
        root = _load_cert(directory / "root.pem")
        root_signer: KeySigner = InMemorySigner(load_private_key(directory / "root.key", password))
    else:
        root, root_signer = _create_root(directory, organization, key_kind, password, clock)
    inter = _create_intermediate(
        directory, organization, root, root_signer, issuing=issuing, clock=clock
    )
    return CAMaterial(issuing, (inter, root))


def load_from_files(
    chain_pem: Path, key_pem: Path, password: bytes | None = None
) -> CAMaterial:
    """An operator-supplied chain (issuing certificate first, root last) and issuing key."""
    chain = _load_certs(chain_pem)
    return CAMaterial(InMemorySigner(load_private_key(key_pem, password)), tuple(chain))


def _load_cert(path: Path) -> x509.Certificate:
    certs = _load_certs(path)
    if len(certs) != 1:
        raise ConfigError(f"{path}: expected one certificate, found {len(certs)}")
    return certs[0]


def _load_certs(path: Path) -> Sequence[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load certificates from {path}: {exc}") from exc
    return certs


def load_material(
    directory: Path,
    *,
    chain_pem: Path | None = None,
    key_pem: Path | None = None,
    pkcs11_uri: str | None = None,
    password: bytes | None = None,
    clock: Callable[[], float] = time.time,
) -> CAMaterial:
    """The CA's material from configuration: one entry point for the three sources.

    * ``chain_pem`` + ``key_pem``: an operator's chain and issuing key (:func:`load_from_files`);
    * ``pkcs11_uri``: an issuing key in an HSM (RFC 7512 URI; the key pair must exist, see
      :meth:`keyless.storage.pkcs11.Pkcs11Signer.generate`), certificates kept in ``directory``;
    * neither: generated in ``directory`` on first start (:func:`load_or_create`).
    """
    if chain_pem is not None or key_pem is not None:
        if chain_pem is None or key_pem is None:
            raise ConfigError("an operator-supplied CA needs both the chain PEM and the key PEM")
        return load_from_files(chain_pem, key_pem, password)
    if pkcs11_uri is not None:
        from keyless.storage.pkcs11 import Pkcs11Signer

        return create_with_signer(
            directory, Pkcs11Signer.open(pkcs11_uri), password=password, clock=clock
        )
    return load_or_create(directory, password=password, clock=clock)
