"""Complete-subtree hashes read from hash tiles, for proofs (C2SP tlog-tiles, RFC 9162 §2.1.3).

A stored hash at tree level 8·L, index k, is entry ``k mod 256`` of tile ``(L, k div 256)``;
levels in between are recomputed by hashing within a tile (protocols.md §5). Complete subtrees
never change in an append-only log, so every hash this reader learns can be cached without
invalidation — which is what makes proofs cheap for the batch the integrator has just written (its
tiles are pushed in with :meth:`NodeReader.put_tile`) and bounded (≤ 1 tile read per tile level)
for old entries.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from hashlib import sha256

from keyless.errors import StorageError
from keyless.formats.tiles import HASH_SIZE, TILE_WIDTH, tile_path, tile_width

_MAX_TILES = 2048  # ≤ 16 MiB of hashes
_MAX_NODES = 1 << 17  # ≤ ~15 MiB of memoised interior nodes


class NodeReader:
    """``get_hash(level, index)`` for :mod:`keyless.merkle`, backed by a log's hash tiles.

    ``read_tile(path)`` fetches a stored tile (None if absent); ``head_size()`` gives the size of
    the latest checkpoint, which tells which partial tile (``.p/W``) exists for the rightmost tiles.
    Thread-safe enough for its use: racing threads may compute a hash twice, never a wrong one.
    """

    def __init__(
        self, read_tile: Callable[[str], bytes | None], head_size: Callable[[], int]
    ) -> None:
        self._read_tile = read_tile
        self._head_size = head_size
        self._tiles: dict[tuple[int, int], bytes] = {}
        self._nodes: dict[tuple[int, int], bytes] = {}
        self._lock = threading.Lock()

    def put_tile(self, level: int, index: int, data: bytes, *, authoritative: bool = False) -> None:
        """Remember a tile's hashes.

        A longer version of a partial tile replaces a shorter one; ``authoritative`` (the
        integrator's own, just-committed tiles) always replaces.
        """
        key = (level, index)
        old = self._tiles.get(key)
        if authoritative or old is None or len(old) < len(data):
            if len(self._tiles) >= _MAX_TILES:
                with self._lock:
                    self._tiles.clear()
            self._tiles[key] = data

    def forget(self) -> None:
        """Drop every cached hash (after a failed batch whose tiles might have been pushed)."""
        with self._lock:
            self._tiles.clear()
            self._nodes.clear()

    def _fetch(self, level: int, index: int, need: int) -> bytes:
        """Read the tile version the committed head references (never a leftover beyond it).

        A crashed or failed batch may have left tiles for positions beyond the head (tlog-tiles
        paths of a *future* size); they are overwritten by the next batch and must never be
        cached, so the width is always taken from the committed head.
        """
        data: bytes | None = None
        for _attempt in range(3):
            width = tile_width(level, index, self._head_size())
            if width < need:
                break
            full = width == TILE_WIDTH
            data = self._read_tile(tile_path(level, index, None if full else width))
            if data is not None:
                break  # else: the partial was completed and collected meanwhile; look again
        if data is None or len(data) < HASH_SIZE * need:
            raise StorageError(f"hash tile {tile_path(level, index)} is missing or short")
        self.put_tile(level, index, data)
        return data

    def base(self, tile_level: int, k: int) -> bytes:
        """The stored hash at tree level ``8·tile_level``, index ``k``."""
        index, offset = divmod(k, TILE_WIDTH)
        data = self._tiles.get((tile_level, index))
        if data is None or len(data) < HASH_SIZE * (offset + 1):
            data = self._fetch(tile_level, index, offset + 1)
        return data[HASH_SIZE * offset : HASH_SIZE * offset + HASH_SIZE]

    def tile_hashes(self, tile_level: int, index: int, width: int) -> list[bytes]:
        """The first ``width`` hashes of tile ``(tile_level, index)``."""
        data = self._tiles.get((tile_level, index))
        if data is None or len(data) < HASH_SIZE * width:
            data = self._fetch(tile_level, index, width)
        return [data[i : i + HASH_SIZE] for i in range(0, HASH_SIZE * width, HASH_SIZE)]

    def get_hash(self, level: int, index: int) -> bytes:
        """The hash of the complete subtree ``(level, index)`` (RFC 9162 §2.1.1)."""
        if level & 7 == 0:
            return self.base(level >> 3, index)
        key = (level, index)
        found = self._nodes.get(key)
        if found is not None:
            return found
        left = self.get_hash(level - 1, 2 * index)
        right = self.get_hash(level - 1, 2 * index + 1)
        value = sha256(b"\x01" + left + right).digest()
        if len(self._nodes) >= _MAX_NODES:
            with self._lock:
                self._nodes.clear()
        self._nodes[key] = value
        return value
