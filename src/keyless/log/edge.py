"""The right edge of a log's tree: what the integrator must hold in memory to append.

It is the compact range of the tree (:class:`keyless.merkle.CompactRange`, RFC 9162 §2.1.1) plus,
for every tile level, the hashes of the rightmost (partial) tile and the entries of the rightmost
partial entry bundle (C2SP tlog-tiles). Extending it by a batch yields exactly the tiles the batch
changes: every tile it completes and the new partial tile of each level it touched.
"""

from __future__ import annotations

from collections.abc import Sequence

from keyless.formats.tiles import (
    HASH_SIZE,
    TILE_BYTES,
    TILE_HEIGHT,
    TILE_WIDTH,
    encode_entry_bundle,
    entries_path,
    tile_path,
)
from keyless.merkle import CompactRange


class RightEdge:
    """Compact range + partial tiles + partial entry bundle at ``size``."""

    def __init__(
        self,
        tree: CompactRange,
        partial_tiles: Sequence[bytes],
        partial_bundle: Sequence[bytes],
    ) -> None:
        self.tree = tree
        self.partials: list[bytearray] = [bytearray(p) for p in partial_tiles]
        self.bundle: list[bytes] = list(partial_bundle)
        size = tree.size
        for level, partial in enumerate(self.partials):
            if len(partial) != HASH_SIZE * ((size >> (TILE_HEIGHT * level)) % TILE_WIDTH):
                raise ValueError(f"partial tile of level {level} does not match size {size}")
        if len(self.bundle) != size % TILE_WIDTH:
            raise ValueError(f"partial entry bundle does not match size {size}")

    @property
    def size(self) -> int:
        """Leaves appended so far."""
        return self.tree.size

    def root(self) -> bytes:
        """MTH of the whole tree (RFC 9162 §2.1.1)."""
        return self.tree.root()

    def _push(
        self, level: int, tiles: dict[str, bytes], obsolete: list[str], h: bytes, k: int
    ) -> None:
        while len(self.partials) <= level:
            self.partials.append(bytearray())
        partial = self.partials[level]
        partial += h
        if len(partial) == TILE_BYTES:
            path = tile_path(level, k // TILE_WIDTH)
            tiles[path] = bytes(partial)
            obsolete.append(path + ".p")
            partial.clear()

    def extend(
        self, leaf_hashes: Sequence[bytes], bundle_entries: Sequence[bytes]
    ) -> tuple[dict[str, bytes], list[str]]:
        """Append a batch; return (tiles to write by path, partial-tile folders made obsolete)."""
        old = self.tree.size
        tiles: dict[str, bytes] = {}
        obsolete: list[str] = []
        bundle = self.bundle
        for i, entry in enumerate(bundle_entries):
            bundle.append(entry)
            if len(bundle) == TILE_WIDTH:
                path = entries_path((old + i) // TILE_WIDTH)
                tiles[path] = encode_entry_bundle(bundle)
                obsolete.append(path + ".p")
                bundle.clear()
        for i, h in enumerate(leaf_hashes):
            self._push(0, tiles, obsolete, h, old + i)
        for node in self.tree.extend(leaf_hashes, min_level=TILE_HEIGHT):
            if node.level % TILE_HEIGHT == 0:
                self._push(node.level // TILE_HEIGHT, tiles, obsolete, node.hash, node.index)
        new = self.tree.size
        for level, partial in enumerate(self.partials):
            if (old >> (TILE_HEIGHT * level)) != (new >> (TILE_HEIGHT * level)) and partial:
                index = new >> (TILE_HEIGHT * (level + 1))
                tiles[tile_path(level, index, len(partial) // HASH_SIZE)] = bytes(partial)
        if bundle and new != old:
            tiles[entries_path(new // TILE_WIDTH, len(bundle))] = encode_entry_bundle(bundle)
        return tiles, obsolete
