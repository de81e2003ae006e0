"""Tiled transparency logs (C2SP tlog-tiles, static-ct-api): coordinates, paths, entry bundles.

A hash tile ``(L, N)`` holds up to 256 consecutive Merkle tree hashes at tree level ``8·L``:
entry ``i`` is ``MTH(D[(N·256+i)·256^L : (N·256+i+1)·256^L])`` (C2SP tlog-tiles "Merkle Tree").
The rightmost tile of a level may be *partial* (width ``floor(size/256^L) mod 256``, path suffix
``.p/<W>``) and is never hashed upward. An entry bundle ``N`` holds the entries of leaves
``N·256 …`` (static-ct-api calls it a data tile and serves its entries without length prefixes).

This module is pure: the log (:mod:`keyless.log`) builds tiles and proves from them; the HTTP
read path (:mod:`keyless.http.tile_routes`) parses request paths with :func:`parse_tile_request`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from keyless.errors import InvalidInput, NotFound
from keyless.merkle import HASH_SIZE

__all__ = [
    "HASH_SIZE",
    "MAX_ENTRY_SIZE",
    "MAX_LEVEL",
    "MAX_TILE_INDEX",
    "TILE_BYTES",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TileWidthError",
    "decode_entry_bundle",
    "encode_entry_bundle",
    "encode_index",
    "entries_path",
    "parse_entries_path",
    "parse_tile_path",
    "parse_tile_request",
    "tile_levels",
    "tile_path",
    "tile_width",
]

TILE_HEIGHT = 8
"""Tree levels per tile level (C2SP tlog-tiles: tiles are subtrees of height 8)."""

TILE_WIDTH = 1 << TILE_HEIGHT
"""Hashes in a full tile, entries in a full bundle (256)."""

TILE_BYTES = HASH_SIZE * TILE_WIDTH
"""Bytes of a full hash tile (8,192)."""

MAX_LEVEL = 63
"""The largest tile level a path may name (C2SP tlog-tiles: ``<L>`` is 0-63)."""

MAX_TILE_INDEX = (1 << 63) - 1
"""The largest tile index a path may name (tlog-tiles clients hold ``<N>`` in an int64)."""

MAX_ENTRY_SIZE = 0xFFFF
"""Entries in a bundle carry a big-endian uint16 length."""


class TileWidthError(InvalidInput):
    """A partial tile path whose ``.p/<W>`` is not 1-255 (C2SP tlog-tiles "Partial Tiles")."""


# --- coordinates -----------------------------------------------------------------------------


def tile_width(level: int, index: int, size: int) -> int:
    """Hashes in tile ``(level, index)`` of a tree of ``size`` leaves: 0 (absent) to 256.

    For ``level`` 0 it is also the number of entries in entry bundle ``index``.
    """
    return max(0, min(TILE_WIDTH, (size >> (TILE_HEIGHT * level)) - TILE_WIDTH * index))


def tile_levels(size: int) -> int:
    """The number of tile levels that hold at least one hash for ``size`` leaves."""
    levels = 0
    while size >> (TILE_HEIGHT * levels):
        levels += 1
    return levels


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
            raise TileWidthError(f"partial tile width must be 1-{TILE_WIDTH - 1}")
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
