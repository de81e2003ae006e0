"""The witness's own keys: ``DIR/witness-key`` (0600), one ``PRIVATE+KEY+…`` line per key.

``keyless witness init`` creates an Ed25519 cosigning key (type 0x04) and, with ``--mldsa``, an
ML-DSA-44 one (type 0x06); both carry the witness name. The file is never printed or logged; its
vkeys are.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from keyless.errors import ConfigError
from keyless.formats.cosignature import Cosigner, Ed25519Cosigner, MLDSA44Cosigner, mldsa_supported
from keyless.formats.vkey import (
    SIG_COSIGNATURE_V1,
    SIG_MLDSA44_COSIGNATURE,
    PrivateKeyText,
    VkeyError,
)

KEY_FILE = "witness-key"


def key_path(data_dir: Path) -> Path:
    return data_dir / KEY_FILE


def create_keys(data_dir: Path, name: str, *, mldsa: bool = False) -> list[Cosigner]:
    """Create the key file (refusing to overwrite one) and return the cosigners."""
    if mldsa and not mldsa_supported():
        raise ConfigError("this cryptography build has no ML-DSA-44; run init without --mldsa")
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    path = key_path(data_dir)
    cosigners: list[Cosigner] = [
        Ed25519Cosigner(name, ed25519.Ed25519PrivateKey.from_private_bytes(secrets.token_bytes(32)))
    ]
    if mldsa:
        cosigners.append(MLDSA44Cosigner(name, secrets.token_bytes(32)))
    lines = []
    for cosigner in cosigners:
        seed = cosigner.seed()
        text = PrivateKeyText(name, cosigner.vkey.sig_type, seed)
        lines.append(text.encode(cosigner.vkey.public_key))
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError as exc:
        raise ConfigError(f"{path} already exists; the witness has a key") from exc
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write("\n".join(lines) + "\n")
        out.flush()
        os.fsync(out.fileno())
    return cosigners


def load_keys(data_dir: Path) -> list[Cosigner]:
    """The cosigners in ``DIR/witness-key``; refuses a file others can read."""
    path = key_path(data_dir)
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} does not exist; run `keyless witness init` first") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the witness key {path}: {type(exc).__name__}") from exc
    if mode & 0o077:
        raise ConfigError(f"{path} is readable by others (mode {mode & 0o777:o}); chmod 600 it")
    cosigners: list[Cosigner] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            key, key_id = PrivateKeyText.parse(line.strip())
        except VkeyError as exc:
            raise ConfigError(f"{path} line {number}: {exc}") from exc
        cosigner: Cosigner
        if key.sig_type == SIG_COSIGNATURE_V1:
            private = ed25519.Ed25519PrivateKey.from_private_bytes(key.seed)
            cosigner = Ed25519Cosigner(key.name, private)
        elif key.sig_type == SIG_MLDSA44_COSIGNATURE:
            if not mldsa_supported():
                raise ConfigError(f"{path} has an ML-DSA-44 key this cryptography cannot use")
            cosigner = MLDSA44Cosigner(key.name, key.seed)
        else:  # pragma: no cover - parse() refuses other types
            raise ConfigError(f"{path} line {number}: unsupported key type")
        if cosigner.vkey.key_id != key_id:
            raise ConfigError(f"{path} line {number}: key ID does not match the key")
        cosigners.append(cosigner)
    if not cosigners:
        raise ConfigError(f"{path} holds no key")
    return cosigners
