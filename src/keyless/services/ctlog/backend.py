"""What the CT personality needs from the shared log engine and storage (internal-apis.md).

The CT log is a personality over :class:`keyless.log.TransparencyLog` and ``keyless.storage``.
The log seam (:class:`LogEngine`) is defined once in :mod:`keyless.log.seam` and re-exported
here; :class:`KeyValue` names the part of ``storage.kv`` the CT log uses. The CA can be developed
against :class:`MemoryLogEngine` / :class:`MemoryKeyValue`, small in-process stand-ins with the
same semantics (dedup, integrated-on-return, proofs).
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from keyless.errors import InvalidInput, NotFound
from keyless.log.seam import LogEngine
from keyless.merkle import MemoryTree, leaf_hash


class KeyValue(Protocol):
    """``storage.kv``: small records with an expiry (issuer certificates, replay guard)."""

    async def put_if_absent(
        self, namespace: str, key: str, value: bytes, expires_at: float
    ) -> bytes | None: ...
    async def get(self, namespace: str, key: str) -> bytes | None: ...


@dataclass(frozen=True)
class _Added:
    index: int
    duplicate: bool
    leaf_hash: bytes


@dataclass(frozen=True)
class _Stored:
    index: int
    leaf: bytes
    bundle_entry: bytes


class MemoryLogEngine:
    """An in-process stand-in for ``TransparencyLog`` (no durability; tests and development).

    Entries are integrated immediately. ``seed`` dummy leaves are appended at creation so that no
    real entry gets index 0 (interop.md §5 item 1).
    """

    def __init__(self, seed: int = 0) -> None:
        self._tree = MemoryTree()
        self._leaves: list[bytes] = []
        self._bundles: list[bytes] = []
        self._dedup: dict[bytes, int] = {}
        self._by_leaf_hash: dict[bytes, int] = {}
        for i in range(seed):
            self._append(b"keyless-seed-%d" % i, b"")

    def _append(self, leaf: bytes, bundle: bytes) -> int:
        self._tree.append(leaf_hash(leaf))
        self._by_leaf_hash.setdefault(leaf_hash(leaf), len(self._leaves))
        self._leaves.append(leaf)
        self._bundles.append(bundle)
        return len(self._leaves) - 1

    async def add(
        self, leaf: bytes, *, bundle_entry: bytes | None = None, dedup_key: bytes | None = None
    ) -> _Added:
        key = dedup_key if dedup_key is not None else leaf_hash(leaf)
        if key in self._dedup:
            index = self._dedup[key]
            return _Added(index, True, leaf_hash(self._leaves[index]))
        index = self._append(leaf, leaf if bundle_entry is None else bundle_entry)
        self._dedup[key] = index
        return _Added(index, False, leaf_hash(leaf))

    async def entry(self, index: int) -> _Stored:
        if not 0 <= index < len(self._leaves):
            raise NotFound(f"no entry at index {index}")
        return _Stored(index, self._leaves[index], self._bundles[index])

    async def entries(self, start: int, end: int) -> list[_Stored]:
        """Stored entries ``start <= index < end`` (at most what exists)."""
        if start < 0 or end < start:
            raise InvalidInput(f"bad entry range [{start}, {end})")
        return [_Stored(i, self._leaves[i], self._bundles[i])
                for i in range(start, min(end, len(self._leaves)))]

    async def index_of(self, key: bytes) -> int | None:
        """By dedup key, else by leaf hash (as the storage backends do)."""
        found = self._dedup.get(key)
        return found if found is not None else self._by_leaf_hash.get(key)

    async def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        if not 0 <= index < tree_size <= self._tree.size:
            raise InvalidInput(f"index {index} is not in a tree of size {tree_size}")
        return self._tree.inclusion_proof(index, tree_size)

    async def consistency_proof(self, first: int, second: int) -> list[bytes]:
        if not 0 < first <= second <= self._tree.size:
            raise InvalidInput(f"no consistency proof from {first} to {second}")
        return self._tree.consistency_proof(first, second)

    async def tree(self) -> tuple[int, bytes]:
        return self._tree.size, self._tree.root()

    async def tile(self, level: int, index: int, width: int | None) -> bytes:
        size = self._tree.size
        full = size // 256 ** (level + 1)
        w = 256 if width is None else width
        available = (size // 256**level) - index * 256
        if index > full or w > available or (width is None and index >= full) or w <= 0:
            raise NotFound(f"tile {level}/{index} is not available")
        return b"".join(
            self._tree.get_hash(8 * level, index * 256 + i) for i in range(w)
        )

    async def entry_bundle(self, index: int, width: int | None) -> bytes:
        await self.tile(0, index, width)
        w = 256 if width is None else width
        return b"".join(
            struct.pack(">H", len(b)) + b for b in self._bundles[index * 256 : index * 256 + w]
        )


class MemoryKeyValue:
    """An in-process ``storage.kv`` stand-in with expiry."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._data: dict[tuple[str, str], tuple[bytes, float]] = {}
        self._clock = clock

    async def put_if_absent(
        self, namespace: str, key: str, value: bytes, expires_at: float
    ) -> bytes | None:
        current = self._data.get((namespace, key))
        if current is not None and current[1] > self._clock():
            return current[0]
        self._data[(namespace, key)] = (value, expires_at)
        return None

    async def get(self, namespace: str, key: str) -> bytes | None:
        current = self._data.get((namespace, key))
        if current is None or current[1] <= self._clock():
            return None
        return current[0]


def digest(data: bytes) -> bytes:
    """SHA-256, the only hash of RFC 6962 logs."""
    return hashlib.sha256(data).digest()


__all__ = ["KeyValue", "LogEngine", "MemoryKeyValue", "MemoryLogEngine", "digest"]
