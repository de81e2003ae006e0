"""Signing keys of the services, behind one small protocol.

Services never touch private key material directly: they get a :class:`Signer`. File-backed keys
are PEM files written with mode 0600; an HSM provider (PKCS#11) implements the same protocol.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from keyless.errors import ConfigError

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


@runtime_checkable
class Signer(Protocol):
    """Something that signs bytes with a private key it may not reveal."""

    def public_key(self) -> PublicKey:
        """The public half of the key."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Sign ``data``: ECDSA (DER, hash by curve), Ed25519 (pure), RSA PKCS#1 v1.5 SHA-256."""
        ...


def hash_for_curve(curve: ec.EllipticCurve) -> hashes.HashAlgorithm:
    """The hash conventionally paired with an ECDSA curve (P-256→SHA-256, P-384→SHA-384, …)."""
    if isinstance(curve, ec.SECP384R1):
        return hashes.SHA384()
    if isinstance(curve, ec.SECP521R1):
        return hashes.SHA512()
    return hashes.SHA256()


class InMemorySigner:
    """A :class:`Signer` over a private key held in this process."""

    def __init__(self, key: PrivateKey) -> None:
        self._key = key

    @property
    def private_key(self) -> PrivateKey:
        """The key itself (for libraries such as ``cryptography``'s X.509 builder)."""
        return self._key

    def public_key(self) -> PublicKey:
        return self._key.public_key()

    def sign(self, data: bytes) -> bytes:
        key = self._key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(hash_for_curve(key.curve)))
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(data)
        from cryptography.hazmat.primitives.asymmetric import padding

        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def generate_key(kind: str = "ecdsa-p256") -> PrivateKey:
    """Generate a fresh private key: ``ecdsa-p256``, ``ecdsa-p384``, ``ed25519`` or ``rsa-3072``."""
    if kind == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "rsa-3072":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise ConfigError(f"unknown key kind {kind!r}")


def write_private_key(path: Path, key: PrivateKey, password: bytes | None = None) -> None:
    """Write ``key`` as PKCS#8 PEM, created with mode 0600 and fsynced before it is renamed in."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.parent.chmod(0o700)  # also a directory left by an older install
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def load_private_key(path: Path, password: bytes | None = None) -> PrivateKey:
    """Load a PEM private key, refusing key types keyless cannot sign with."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=password)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"cannot load private key {path}: {exc}") from exc
    if not isinstance(
        key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    ):
        raise ConfigError(f"{path}: unsupported key type {type(key).__name__}")
    return key


def load_or_create_key(path: Path, kind: str = "ecdsa-p256") -> InMemorySigner:
    """The signer for the key at ``path``, generating it (mode 0600) on first use."""
    if not path.exists():
        write_private_key(path, generate_key(kind))
    return InMemorySigner(load_private_key(path))
