"""Tiled transparency logs (C2SP tlog-tiles): paths, hash tiles, entry bundles and proofs.

A hash tile ``(L, N)`` holds up to 256 consecutive Merkle tree hashes at tree level ``8·L``:
entry ``i`` is ``MTH(D[(N·256+i)·256^L : (N·256+i+1)·256^L])`` (C2SP tlog-tiles "Merkle Tree").
The rightmost tile of a level may be *partial* (width ``floor(size/256^L) mod 256``, path suffix
``.p/<W>``) and is never hashed upward. Levels between ``8·L`` and ``8·L+8`` are recomputed by
hashing inside a tile, so any complete subtree ``(level, index)`` of :mod:`keyless.merkle` is
found in exactly one tile.

:class:`TileProver` turns a tile reader into ``get_hash`` for :mod:`keyless.merkle` and computes
roots and inclusion/consistency proofs. A proof touches one tile per tile level on its path plus
the right-edge tiles for the one "ephemeral" node; given the tree's right edge (the compact range
the log keeps in memory) it needs **one tile per level**: 4 tile reads for a billion-entry tree.
Async callers (the log engine) list the tiles first with :func:`inclusion_tiles` /
:func:`consistency_tiles`, fetch them concurrently, then run the prover over the fetched dict.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from hashlib import sha256
from typing import NamedTuple

from keyless.errors import InvalidInput, NotFound
from keyless.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    consistency_proof_nodes,
    inclusion_proof_nodes,
    range_nodes,
    root_from_leaf_hashes,
    subtree_root,
)

__all__ = [
    "MAX_ENTRY_SIZE",
    "MAX_LEVEL",
    "MAX_TILE_INDEX",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "AsyncTileReader",
    "Tile",
    "TileCache",
    "TileCoord",
    "TileProver",
    "TileReader",
    "append_tiles",
    "consistency_tiles",
    "decode_entry_bundle",
    "encode_entry_bundle",
    "encode_index",
    "entries_path",
    "fetch_tiles",
    "hash_tile",
    "inclusion_tiles",
    "parse_entries_path",
    "parse_hash_tile",
    "parse_tile_path",
    "parse_tile_request",
    "reader_from_mapping",
    "root_tiles",
    "tile_for_node",
    "tile_path",
    "tile_root",
    "tile_width",
    "tiles_for_size",
]

TILE_HEIGHT = 8
"""Tree levels per tile level (C2SP tlog-tiles: tiles are subtrees of height 8)."""

TILE_WIDTH = 1 << TILE_HEIGHT
"""Hashes in a full tile (256, i.e. 8,192 bytes)."""

MAX_LEVEL = 63
"""The largest tile level a path may name (C2SP tlog-tiles: ``<L>`` is 0-63)."""

MAX_TILE_INDEX = (1 << 63) - 1
"""The largest tile index a path may name (tlog-tiles clients hold ``<N>`` in an int64)."""

MAX_ENTRY_SIZE = 0xFFFF
"""Entries in a bundle carry a big-endian uint16 length."""

TileReader = Callable[[int, int, int], bytes]
"""``read_tile(level, index, width)`` → at least ``width`` hashes (``width`` 256 = full tile).

Returning a wider tile than asked is allowed (the first ``width`` hashes of a tile never change
once written), so a reader may answer a partial request with the full tile."""

AsyncTileReader = Callable[[int, int, int], Awaitable[bytes]]


class TileCoord(NamedTuple):
    """A hash tile as stored for a given tree size: level, index and width (1-256)."""

    level: int
    index: int  # type: ignore[assignment]  # shadows tuple.index on purpose: the tile's index
    width: int

    @property
    def path(self) -> str:
        """The tile's path relative to the log prefix."""
        return tile_path(self.level, self.index, self.width)


class Tile(NamedTuple):
    """A hash tile and its content (``width`` concatenated 32-byte hashes)."""

    level: int
    index: int  # type: ignore[assignment]  # shadows tuple.index on purpose: the tile's index
    width: int
    data: bytes

    @property
    def path(self) -> str:
        """The tile's path relative to the log prefix."""
        return tile_path(self.level, self.index, self.width)


# --- paths -----------------------------------------------------------------------------------


def encode_index(index: int) -> str:
    """``<N>``: zero-padded 3-digit groups, all but the last prefixed ``x`` (``x001/x234/067``)."""
    if index < 0:
        raise InvalidInput(f"tile index must be non-negative, got {index}")
    groups = []
    while True:
        groups.append(f"{index % 1000:03d}")
        index //= 1000
        if index == 0:
            break
    groups.reverse()
    return "/".join([*(f"x{g}" for g in groups[:-1]), groups[-1]])


def _suffix(width: int | None) -> str:
    if width is None or width == TILE_WIDTH:
        return ""
    if not 1 <= width < TILE_WIDTH:
        raise InvalidInput(f"tile width must be 1-256, got {width}")
    return f".p/{width}"


def tile_path(level: int, index: int, width: int | None = None) -> str:
    """``tile/<L>/<N>[.p/<W>]`` (C2SP tlog-tiles); ``width`` None or 256 means a full tile."""
    if not 0 <= level <= MAX_LEVEL:
        raise InvalidInput(f"tile level must be 0-{MAX_LEVEL}, got {level}")
    return f"tile/{level}/{encode_index(index)}{_suffix(width)}"


def entries_path(index: int, width: int | None = None) -> str:
    """``tile/entries/<N>[.p/<W>]``: the entry bundle of leaves ``N·256 …``."""
    return f"tile/entries/{encode_index(index)}{_suffix(width)}"


_LEVEL_RE = re.compile(r"0|[1-9][0-9]?")
_WIDTH_RE = re.compile(r"[1-9][0-9]{0,2}")
_GROUP_RE = re.compile(r"x[0-9]{3}")
_LAST_RE = re.compile(r"[0-9]{3}")


def parse_tile_request(
    path: str,
    *,
    bundles: str = "entries",
    max_level: int = MAX_LEVEL,
    max_index: int = MAX_TILE_INDEX,
) -> tuple[int | None, int, int | None]:
    """``<L>/<N>[.p/<W>]`` or ``<bundles>/<N>[.p/<W>]`` (after ``tile/``) → (L or None, N, W).

    The one strict C2SP grammar (protocols.md §5) for every tile path keyless reads: L a decimal
    without leading zeros, 0-``max_level``; N in 3-digit groups, all but the last prefixed ``x``,
    no superfluous leading ``x000`` group; W 1-255 without leading zeros. ``bundles`` names the
    entry-bundle directory (``entries`` in tlog-tiles, ``data`` in static-ct-api). A malformed
    path raises :class:`InvalidInput` naming the rule; a well-formed N above ``max_index``
    raises :class:`NotFound` (such a tile exists in no log).
    """
    head, _, rest = path.partition("/")
    if head == bundles:
        level: int | None = None
    elif _LEVEL_RE.fullmatch(head) and int(head) <= max_level:
        level = int(head)
    else:
        raise InvalidInput(f"tile level {head!r} must be 0-{max_level} (or {bundles!r})")
    width: int | None = None
    rest, partial, w = rest.partition(".p/")
    if partial:
        if not _WIDTH_RE.fullmatch(w) or int(w) >= TILE_WIDTH:
            raise InvalidInput(f"partial tile width must be 1-{TILE_WIDTH - 1}")
        width = int(w)
    groups = rest.split("/")
    if not _LAST_RE.fullmatch(groups[-1]) or not all(_GROUP_RE.fullmatch(g) for g in groups[:-1]):
        raise InvalidInput("tile index must be 3-digit groups, all but the last prefixed 'x'")
    if len(groups) > 1 and groups[0] == "x000":
        raise InvalidInput("tile index has a superfluous leading zero group")
    digits = "".join(g[-3:] for g in groups).lstrip("0") or "0"
    # compare lengths first: a hostile path may hold more digits than int() converts
    if len(digits) > len(str(max_index)) or int(digits) > max_index:
        shown = digits if len(digits) <= 40 else digits[:40] + "…"
        raise NotFound(f"tile index {shown} is beyond any log's size")
    return level, int(digits), width


def parse_tile_path(path: str) -> tuple[int, int, int | None]:
    """``tile/<L>/<N>[.p/<W>]`` → ``(level, index, width or None)``; strict, else InvalidInput."""
    level: int | None = None
    if path.startswith("tile/"):
        level, index, width = parse_tile_request(path[5:])
    if level is None:
        raise InvalidInput(f"not a tile path: {path[:100]!r}")
    return level, index, width


def parse_entries_path(path: str) -> tuple[int, int | None]:
    """``tile/entries/<N>[.p/<W>]`` → ``(index, width or None)``; strict, else InvalidInput."""
    if path.startswith("tile/entries/"):
        level, index, width = parse_tile_request(path[5:])
        if level is None:
            return index, width
    raise InvalidInput(f"not an entry bundle path: {path[:100]!r}")


# --- entry bundles ---------------------------------------------------------------------------


def encode_entry_bundle(entries: Sequence[bytes]) -> bytes:
    """Concatenate ``u16 big-endian length || entry`` for up to 256 entries (C2SP tlog-tiles)."""
    if len(entries) > TILE_WIDTH:
        raise InvalidInput(f"an entry bundle holds at most {TILE_WIDTH} entries")
    out = bytearray()
    for i, entry in enumerate(entries):
        if len(entry) > MAX_ENTRY_SIZE:
            raise InvalidInput(f"entry {i} is {len(entry)} bytes; bundles allow {MAX_ENTRY_SIZE}")
        out += len(entry).to_bytes(2, "big")
        out += entry
    return bytes(out)


def decode_entry_bundle(data: bytes, width: int | None = None) -> list[bytes]:
    """Split an entry bundle; strict about truncation, count (≤ 256) and an expected ``width``."""
    entries: list[bytes] = []
    pos = 0
    view = memoryview(data)
    while pos < len(data):
        if pos + 2 > len(data):
            raise InvalidInput(f"entry bundle truncated in the length of entry {len(entries)}")
        n = int.from_bytes(view[pos : pos + 2], "big")
        pos += 2
        if pos + n > len(data):
            raise InvalidInput(f"entry bundle truncated in entry {len(entries)}")
        entries.append(bytes(view[pos : pos + n]))
        pos += n
        if len(entries) > TILE_WIDTH:
            raise InvalidInput(f"entry bundle holds more than {TILE_WIDTH} entries")
    if width is not None and len(entries) != width:
        raise InvalidInput(f"entry bundle holds {len(entries)} entries, expected {width}")
    return entries


# --- hash tiles ------------------------------------------------------------------------------


def hash_tile(hashes: Sequence[bytes]) -> bytes:
    """A tile's bytes: 1-256 concatenated 32-byte hashes."""
    if not 1 <= len(hashes) <= TILE_WIDTH:
        raise InvalidInput(f"a tile holds 1-{TILE_WIDTH} hashes, got {len(hashes)}")
    if any(len(h) != HASH_SIZE for h in hashes):
        raise InvalidInput("tile hashes must be 32 bytes each")
    return b"".join(hashes)


def parse_hash_tile(data: bytes, width: int | None = None) -> list[bytes]:
    """The hashes of a tile; with ``width``, the first ``width`` of a tile at least that wide."""
    if len(data) % HASH_SIZE or not HASH_SIZE <= len(data) <= TILE_WIDTH * HASH_SIZE:
        raise InvalidInput(f"a tile is 32-8192 bytes in 32-byte hashes, got {len(data)} bytes")
    count = len(data) // HASH_SIZE
    if width is not None:
        if count < width:
            raise InvalidInput(f"tile has {count} hashes, {width} needed")
        count = width
    return [data[i * HASH_SIZE : (i + 1) * HASH_SIZE] for i in range(count)]


def tile_root(hashes: Sequence[bytes]) -> bytes:
    """The hash a *full* tile contributes to the level above (MTH over its 256 hashes)."""
    if len(hashes) != TILE_WIDTH:
        raise InvalidInput("only full tiles are hashed into the level above")
    return root_from_leaf_hashes(hashes)


def tile_width(level: int, index: int, size: int) -> int:
    """Width of tile ``(level, index)`` in a tree of ``size`` leaves; 0 if it does not exist."""
    count = size >> (TILE_HEIGHT * level)
    return max(0, min(TILE_WIDTH, count - index * TILE_WIDTH))


def tiles_for_size(size: int) -> list[TileCoord]:
    """The rightmost tile of every level for a tree size (what a checkpoint makes servable)."""
    out: list[TileCoord] = []
    level = 0
    while (count := size >> (TILE_HEIGHT * level)) > 0:
        index = (count - 1) // TILE_WIDTH
        out.append(TileCoord(level, index, tile_width(level, index, size)))
        level += 1
    return out


def tile_for_node(level: int, index: int, size: int) -> tuple[TileCoord, int, int]:
    """The tile holding complete subtree ``(level, index)``: (coord, in-tile level, position)."""
    tile_level, r = divmod(level, TILE_HEIGHT)
    first = index << r  # index at level 8·tile_level of the subtree's leftmost entry
    tile_index = first >> TILE_HEIGHT
    width = tile_width(tile_level, tile_index, size)
    pos_end = (first & (TILE_WIDTH - 1)) + (1 << r)
    if width < pos_end:
        raise InvalidInput(f"subtree ({level}, {index}) is not complete in a tree of size {size}")
    return TileCoord(tile_level, tile_index, width), r, index & ((TILE_WIDTH >> r) - 1)


def append_tiles(old_size: int, leaf_hashes: Sequence[bytes], read_tile: TileReader) -> list[Tile]:
    """The tiles to write when ``leaf_hashes`` are appended to a tree of ``old_size`` leaves.

    Reads only the rightmost partial tile of each affected level; returns every tile whose
    content changed (new full tiles and the new partial tiles), lowest level first. Full tiles
    are hashed upward; partial tiles never are (C2SP tlog-tiles "Partial Tiles").
    """
    if old_size < 0:
        raise InvalidInput("tree size must be non-negative")
    out: list[Tile] = []
    new_hashes: list[bytes] = list(leaf_hashes)
    level = 0
    while new_hashes:
        count = old_size >> (TILE_HEIGHT * level)  # entries at this level before the append
        first_tile, kept = divmod(count, TILE_WIDTH)
        entries: list[bytes] = []
        if kept:
            entries = parse_hash_tile(read_tile(level, first_tile, kept), kept)
        entries.extend(new_hashes)
        new_hashes = []
        for t, start in enumerate(range(0, len(entries), TILE_WIDTH)):
            chunk = entries[start : start + TILE_WIDTH]
            out.append(Tile(level, first_tile + t, len(chunk), b"".join(chunk)))
            if len(chunk) == TILE_WIDTH:
                new_hashes.append(root_from_leaf_hashes(chunk))
        level += 1
    return out


# --- reading trees from tiles ----------------------------------------------------------------


def _expand(hashes: list[bytes]) -> list[list[bytes]]:
    """All in-tile levels of complete subtrees: ``levels[r][j]`` covers entries j·2^r…"""
    levels = [hashes]
    cur = hashes
    for _ in range(TILE_HEIGHT):
        if len(cur) < 2:
            break
        it = iter(cur)
        cur = [sha256(b"\x01" + a + b).digest() for a, b in zip(it, it, strict=False)]
        levels.append(cur)
    return levels


_LOCAL_TILES = 64


class TileCache:
    """An LRU of expanded tiles shared between provers (a tile of a given width never changes).

    Thread-safe: the log engine computes proofs in worker threads.
    """

    def __init__(self, max_tiles: int = 4096) -> None:
        self.max_tiles = max_tiles
        self._tiles: OrderedDict[tuple[int, int, int], list[list[bytes]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, coord: tuple[int, int, int]) -> list[list[bytes]] | None:
        """The expanded tile ``(level, index, width)``, refreshed as most recently used."""
        with self._lock:
            levels = self._tiles.get(coord)
            if levels is not None:
                self._tiles.move_to_end(coord)
            return levels

    def put(self, coord: tuple[int, int, int], levels: list[list[bytes]]) -> None:
        """Remember an expanded tile, evicting the least recently used beyond ``max_tiles``."""
        with self._lock:
            self._tiles[coord] = levels
            self._tiles.move_to_end(coord)
            while len(self._tiles) > self.max_tiles:
                self._tiles.popitem(last=False)

    def __len__(self) -> int:
        return len(self._tiles)


class TileProver:
    """Tree hashes and proofs for a tree of ``size`` leaves, read from its tiles.

    ``right_edge`` optionally gives the hashes of :func:`keyless.merkle.range_nodes(0, size)
    <keyless.merkle.range_nodes>` (e.g. ``CompactRange.hashes``); then roots need no tile read and
    a proof needs one tile per tile level. ``cache`` shares expanded tiles between provers.
    ``reads`` counts calls to ``read_tile``. A prover may be reused for many proofs of one size.
    """

    def __init__(
        self,
        size: int,
        read_tile: TileReader,
        *,
        right_edge: Sequence[bytes] | None = None,
        cache: TileCache | None = None,
    ) -> None:
        if size < 0:
            raise InvalidInput("tree size must be non-negative")
        if right_edge is not None and len(right_edge) != size.bit_count():
            raise InvalidInput(
                f"right edge of size {size} has {size.bit_count()} hashes, got {len(right_edge)}"
            )
        self.size = size
        self._read = read_tile
        self._cache = cache
        self._local: dict[tuple[int, int, int], list[list[bytes]]] = {}
        self._edge = right_edge
        self.reads = 0

    def _tile(self, coord: tuple[int, int, int]) -> list[list[bytes]]:
        levels = self._cache.get(coord) if self._cache is not None else None
        if levels is None:
            self.reads += 1
            level, index, width = coord
            levels = _expand(parse_hash_tile(self._read(level, index, width), width))
            if self._cache is not None:
                self._cache.put(coord, levels)
        if len(self._local) >= _LOCAL_TILES and self._cache is not None:
            self._local.clear()  # a long-lived prover keeps a bounded memo over the shared cache
        self._local[coord] = levels
        return levels

    def get_hash(self, level: int, index: int) -> bytes:
        """The hash of complete subtree ``(level, index)`` (the ``get_hash`` of keyless.merkle)."""
        size = self.size
        above = size >> level
        if self._edge is not None and above & 1 and index == above - 1:
            # a right-edge node: one per set bit of size, largest first (merkle.range_nodes)
            return self._edge[(above >> 1).bit_count()]
        r = level & 7
        tile_level = level >> 3
        first = index << r  # index of the node's leftmost entry at level 8·tile_level
        tile_index = first >> 8
        width = (size >> (tile_level << 3)) - (tile_index << 8)
        width = min(width, TILE_WIDTH)
        if (first & 0xFF) + (1 << r) > width or index < 0:
            raise InvalidInput(
                f"subtree ({level}, {index}) is not complete in a tree of size {size}"
            )
        coord = (tile_level, tile_index, width)
        levels = self._local.get(coord) or self._tile(coord)
        return levels[r][index & ((TILE_WIDTH >> r) - 1)]

    def root(self) -> bytes:
        """MTH of the whole tree (RFC 9162 §2.1.1)."""
        return EMPTY_ROOT if self.size == 0 else subtree_root(0, self.size, self.get_hash)

    def _entries(self, tile_level: int, entry: int) -> list[list[bytes]]:
        """The expanded tile holding entry ``entry`` of level ``8·tile_level``."""
        tile_index = entry >> 8
        width = min(TILE_WIDTH, (self.size >> (tile_level << 3)) - (tile_index << 8))
        coord = (tile_level, tile_index, width)
        return self._local.get(coord) or self._tile(coord)

    def _path(self, level: int, index: int) -> list[bytes]:
        """Siblings from node ``(level, index)`` up to the root, leaf side first.

        The same walk as :func:`keyless.merkle.inclusion_proof_nodes`, specialised to tiles: all
        siblings between tree levels 8·L and 8·L+7 lie in one tile, fetched once.
        """
        size = self.size
        out: list[bytes] = []
        node = index
        lvl = level
        current = -1
        levels: list[list[bytes]] = []
        edge = self._edge
        while node or (1 << lvl) < size:
            sibling = node ^ 1
            begin = sibling << lvl
            if begin < size:
                above = size >> lvl
                if edge is not None and above & 1 and sibling == above - 1:
                    out.append(edge[(above >> 1).bit_count()])  # a known right-edge node
                elif begin + (1 << lvl) <= size:
                    tile_level = lvl >> 3
                    if tile_level != current:
                        levels = self._entries(tile_level, begin >> (tile_level << 3))
                        current = tile_level
                    r = lvl & 7
                    out.append(levels[r][sibling & ((TILE_WIDTH >> r) - 1)])
                else:  # the one ephemeral right-edge node
                    out.append(subtree_root(begin, size, self.get_hash))
            node >>= 1
            lvl += 1
        return out

    def inclusion_proof(self, index: int) -> list[bytes]:
        """RFC 9162 §2.1.3.1 audit path of leaf ``index`` in this tree (same as merkle's)."""
        if not 0 <= index < self.size:
            raise InvalidInput(f"leaf index {index} is not in a tree of size {self.size}")
        return self._path(0, index)

    def consistency_proof(self, first: int) -> list[bytes]:
        """RFC 9162 §2.1.4.1 proof that the tree of ``first`` leaves is a prefix of this one."""
        if not 0 <= first <= self.size:
            raise InvalidInput(f"first tree size {first} is not in 0..{self.size}")
        if first in (0, self.size):
            return []
        level = (first & -first).bit_length() - 1
        index = (first - 1) >> level
        path = self._path(level, index)
        return path if index == 0 else [self.get_hash(level, index), *path]


def _coords(
    ranges: Iterable[tuple[int, int, int]], size: int, right_edge_known: bool
) -> list[TileCoord]:
    edge = set(range_nodes(0, size)) if right_edge_known else set()
    out: dict[TileCoord, None] = {}
    for _level, begin, end in ranges:
        for node in range_nodes(begin, end):  # one node when complete, else the ephemeral's parts
            if node not in edge:
                out[tile_for_node(*node, size)[0]] = None
    return list(out)


def root_tiles(size: int, *, right_edge_known: bool = False) -> list[TileCoord]:
    """The tiles :meth:`TileProver.root` reads (none when the right edge is known)."""
    if right_edge_known:
        return []
    return list(dict.fromkeys(tile_for_node(lv, ix, size)[0] for lv, ix in range_nodes(0, size)))


def inclusion_tiles(index: int, size: int, *, right_edge_known: bool = False) -> list[TileCoord]:
    """The distinct tiles an inclusion proof of ``index`` in ``size`` reads."""
    return _coords(inclusion_proof_nodes(index, size), size, right_edge_known)


def consistency_tiles(
    first: int, second: int, *, right_edge_known: bool = False
) -> list[TileCoord]:
    """The distinct tiles a consistency proof from ``first`` to ``second`` reads."""
    return _coords(consistency_proof_nodes(first, second), second, right_edge_known)


async def fetch_tiles(coords: Iterable[TileCoord], read: AsyncTileReader) -> TileReader:
    """Fetch tiles with an async reader and return a sync reader over them for TileProver.

    Fetches one after another (storage backends serialise anyway); a tile the prover then asks
    for that was not fetched raises NotFound, which signals a bug in the coordinate lists.
    """
    fetched: dict[tuple[int, int, int], bytes] = {}
    for c in coords:
        fetched[(c.level, c.index, c.width)] = await read(c.level, c.index, c.width)

    def reader(level: int, index: int, width: int) -> bytes:
        try:
            return fetched[(level, index, width)]
        except KeyError:
            raise NotFound(f"tile {tile_path(level, index, width)} was not prefetched") from None

    return reader


def reader_from_mapping(tiles: Mapping[tuple[int, int], bytes]) -> TileReader:
    """A reader over ``{(level, index): bytes}`` holding each tile at its widest (tests, caches)."""

    def reader(level: int, index: int, width: int) -> bytes:
        try:
            return tiles[(level, index)]
        except KeyError:
            raise NotFound(f"tile {tile_path(level, index, width)} not found") from None

    return reader
