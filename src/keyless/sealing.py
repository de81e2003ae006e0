"""Private keys at rest in a database, wrapped under a key-encryption key (KEK).

A :class:`Sealer` wraps a value with AES-256-GCM under the KEK; the associated data binds the
value's name, so a wrapped value copied under another name does not unwrap. Whoever reads the
database (or a backup of it) without the KEK learns nothing of the keys.

:class:`SealedKv` keeps every value of a key-value store wrapped. Wrapped values live in the
namespace ``<namespace>.sealed``; a clear value an older version left under the plain
namespace is wrapped in place the first time it is read (and the clear copy deleted), with a
warning in the log. The order (write the wrapped copy, then delete the clear one) and
put-if-absent keep several processes migrating at once consistent: they all adopt the first
wrapped copy written, and a newcomer that finds neither adopts it too.
"""

from __future__ import annotations

import logging
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keyless.errors import ConfigError
from keyless.storage.seam import NEVER, KeyValue

logger = logging.getLogger(__name__)

#: the KEK length in bytes (AES-256)
KEK_SIZE = 32
#: prefix of every wrapped value (format version; also part of the associated data)
MAGIC = b"keyless-sealed-v1\n"
_NONCE = 12


class Sealer:
    """AES-256-GCM under one KEK, with the value's name as associated data."""

    def __init__(self, kek: bytes) -> None:
        if len(kek) != KEK_SIZE:
            raise ConfigError(f"a key-encryption key has {KEK_SIZE} bytes, not {len(kek)}")
        self._aead = AESGCM(kek)

    @classmethod
    def generate(cls) -> Sealer:
        """A sealer over a fresh random KEK (tests, single-process memory stores)."""
        return cls(AESGCM.generate_key(bit_length=8 * KEK_SIZE))

    def seal(self, name: str, plaintext: bytes) -> bytes:
        """``plaintext`` wrapped; only :meth:`open` with the same ``name`` unwraps it."""
        nonce = os.urandom(_NONCE)
        return MAGIC + nonce + self._aead.encrypt(nonce, plaintext, MAGIC + name.encode())

    def open(self, name: str, blob: bytes) -> bytes:
        """The plaintext of a value wrapped under ``name``; fails closed on any mismatch."""
        if not is_sealed(blob) or len(blob) < len(MAGIC) + _NONCE + 16:
            raise ConfigError(f"stored secret {name} is not a wrapped value")
        nonce = blob[len(MAGIC):len(MAGIC) + _NONCE]
        try:
            return self._aead.decrypt(nonce, blob[len(MAGIC) + _NONCE:], MAGIC + name.encode())
        except InvalidTag:
            raise ConfigError(
                f"stored secret {name} does not unwrap with this key-encryption key: every "
                "process sharing the database needs the same KEK file (--kek-file)"
            ) from None


def is_sealed(blob: bytes) -> bool:
    """Whether ``blob`` is a wrapped value (and not a clear one from an older version)."""
    return blob.startswith(MAGIC)


class SealedKv:
    """A key-value store whose values are kept wrapped under a :class:`Sealer`."""

    def __init__(self, kv: KeyValue, sealer: Sealer) -> None:
        self._kv = kv
        self._sealer = sealer

    @staticmethod
    def _where(namespace: str) -> str:
        return f"{namespace}.sealed"

    @staticmethod
    def _name(namespace: str, key: str) -> str:
        return f"{namespace}/{key}"

    async def _read(self, namespace: str, key: str, expires_at: float) -> bytes | None:
        where = self._where(namespace)
        wrapped = await self._kv.get(where, key)
        clear = await self._kv.get(namespace, key)
        if clear is not None:
            if wrapped is None:
                sealed = self._sealer.seal(self._name(namespace, key), clear)
                wrapped = await self._kv.put_if_absent(where, key, sealed, expires_at) or sealed
            await self._kv.delete(namespace, key)
            logger.warning(
                "wrapped the clear value %s/%s left by an older version under the "
                "key-encryption key (the clear copy is deleted)", namespace, key,
                extra={"namespace": namespace, "key": key},
            )
        return None if wrapped is None else self._sealer.open(self._name(namespace, key), wrapped)

    async def get(self, namespace: str, key: str) -> bytes | None:
        """The unwrapped value (wrapping a clear legacy value in place first)."""
        return await self._read(namespace, key, NEVER)

    async def put_if_absent(
        self, namespace: str, key: str, value: bytes, expires_at: float
    ) -> bytes | None:
        """Store ``value`` wrapped unless a value exists: ``None`` if stored, else the existing
        value, unwrapped."""
        existing = await self._read(namespace, key, expires_at)
        if existing is not None:
            return existing
        sealed = self._sealer.seal(self._name(namespace, key), value)
        winner = await self._kv.put_if_absent(self._where(namespace), key, sealed, expires_at)
        return None if winner is None else self._sealer.open(self._name(namespace, key), winner)

    async def delete(self, namespace: str, key: str) -> None:
        """Forget the value (wrapped and any clear copy)."""
        await self._kv.delete(self._where(namespace), key)
        await self._kv.delete(namespace, key)
