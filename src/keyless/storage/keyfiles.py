"""Signing keys of the services loaded from files (an HSM: :mod:`keyless.storage.pkcs11`).

Services never touch private key material directly: they get a :class:`keyless.keys.KeySigner`.
File-backed keys are PEM files written with mode 0600; the pure parts (key types, the in-memory
signer, key generation) are :mod:`keyless.keys`.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from keyless.errors import ConfigError
from keyless.keys import InMemorySigner, PrivateKey, generate_key
from keyless.localfiles import write_file_atomically


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
    write_file_atomically(path, pem, mode=0o600, fsync=True)


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
