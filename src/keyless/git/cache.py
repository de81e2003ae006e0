"""The short-lived certificate and its key, kept for a burst of commits (docs/git.md).

git starts ``keyless-git`` once per commit or tag; asking for a token (maybe a browser sign-in)
and a certificate each time would make ``git rebase -S`` unbearable. The key and certificate
chain of the last signing are kept in ``<user cache dir>/keyless/git/<instance>.json`` (directory
0700, file 0600, owned by the user; anything else is ignored, never trusted) and reused while the
certificate has at least :data:`MIN_REMAINING` seconds left. The key is never logged or printed.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.localfiles import write_file_atomically

__all__ = ["MIN_REMAINING", "CachedCertificate", "cache_dir", "load", "store"]

#: reuse a certificate only with this much validity left: one signing (timestamp + log entry)
#: must finish well inside it, so the signer never has to renew without a token
MIN_REMAINING = 180.0
_MAX_FILE = 64 << 10


@dataclass(frozen=True)
class CachedCertificate:
    key: ec.EllipticCurvePrivateKey
    chain: tuple[x509.Certificate, ...]

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]

    def usable(self, now: float | None = None) -> bool:
        """Valid now, with :data:`MIN_REMAINING` seconds to spare, and for this key."""
        now = time.time() if now is None else now
        leaf = self.leaf
        if leaf.not_valid_before_utc.timestamp() > now:
            return False
        if leaf.not_valid_after_utc.timestamp() - now < MIN_REMAINING:
            return False
        public = leaf.public_key()
        return isinstance(public, ec.EllipticCurvePublicKey) and (
            public.public_numbers() == self.key.public_key().public_numbers()
        )


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/keyless/git`` (platformdirs' user cache dir)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("keyless", appauthor=False)) / "git"


def _path(instance: str, directory: Path | None) -> Path:
    name = hashlib.sha256(instance.encode()).hexdigest()[:32]
    return (directory or cache_dir()) / f"{name}.json"


def _private(path: Path, mode: int) -> bool:
    """Owned by us and not readable or writable by anyone else."""
    try:
        info = path.lstat()
    except OSError:
        return False
    kind = stat.S_ISDIR if mode == 0o700 else stat.S_ISREG
    return kind(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077


def load(instance: str, directory: Path | None = None) -> CachedCertificate | None:
    """The certificate cached for ``instance`` (the CA URL), or None (absent, unsafe, broken)."""
    path = _path(instance, directory)
    if not _private(path.parent, 0o700) or not _private(path, 0o600):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            data = json.loads(f.read(_MAX_FILE))
        key = serialization.load_pem_private_key(data["key"].encode(), password=None)
        chain = tuple(x509.load_pem_x509_certificate(c.encode()) for c in data["chain"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not chain:
        return None
    return CachedCertificate(key, chain)


def store(
    instance: str,
    key: ec.EllipticCurvePrivateKey,
    chain: list[x509.Certificate],
    directory: Path | None = None,
) -> None:
    """Keep ``key`` and ``chain`` for ``instance``: written 0600 to a temporary file, renamed.

    Raises OSError when that is impossible, e.g. a cache directory of another user."""
    path = _path(instance, directory)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not _private(path.parent, 0o700):
        os.chmod(path.parent, 0o700)  # fails for a directory that is not ours
        if not _private(path.parent, 0o700):
            raise PermissionError(f"{path.parent} is not a private directory")
    data = json.dumps(
        {
            "key": key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
            "chain": [c.public_bytes(serialization.Encoding.PEM).decode() for c in chain],
        }
    ).encode()
    write_file_atomically(path, data, mode=0o600)
