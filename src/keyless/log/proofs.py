"""Inclusion proofs for a whole batch at once (RFC 9162 §2.1.3.1), sharing the work.

The audit path of leaf ``i`` splits at tree level 8: below it, the siblings lie inside ``i``'s own
level-0 tile; from level 8 up they depend only on the tile index ``i >> 8`` and the tree size
(:func:`keyless.merkle.inclusion_proof_nodes`). A batch of a few thousand entries spans a handful of
tiles, so the upper parts are resolved once per tile, and the lower parts are read off the levels of
the tile's own small tree (for a partial rightmost tile, the RFC 6962 tree of its ``w`` leaves,
which is what the big tree looks like under that node). The result equals
:func:`keyless.merkle.inclusion_proof` (tests/unit/log check it); it is ~4 times cheaper per entry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from hashlib import sha256

from keyless.formats.tiles import TILE_WIDTH
from keyless.merkle import GetHash, MemoryTree, inclusion_proof_nodes, subtree_root


def _upper(tile: int, size: int, get_hash: GetHash) -> list[bytes]:
    proof: list[bytes] = []
    for level, begin, end in inclusion_proof_nodes(tile * TILE_WIDTH, size):
        if level < 8:
            continue
        if end - begin == 1 << level:
            proof.append(get_hash(level, begin >> level))
        else:
            proof.append(subtree_root(begin, end, get_hash))
    return proof


def _perfect_levels(hashes: Sequence[bytes]) -> list[list[bytes]]:
    levels = [list(hashes)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append(
            [sha256(b"\x01" + below[k] + below[k + 1]).digest() for k in range(0, len(below), 2)]
        )
    return levels


def batch_inclusion_proofs(
    indexes: Sequence[int],
    size: int,
    get_hash: GetHash,
    tile_hashes: Callable[[int, int], list[bytes]],
) -> list[list[bytes]]:
    """The audit path of each of ``indexes`` in the tree of ``size`` leaves.

    ``tile_hashes(tile, width)`` returns the first ``width`` leaf hashes of level-0 tile ``tile``.
    """
    uppers: dict[int, list[bytes]] = {}
    lowers: dict[int, Callable[[int], list[bytes]]] = {}
    proofs: list[list[bytes]] = []
    for index in indexes:
        tile = index >> 8
        lower = lowers.get(tile)
        if lower is None:
            width = min(TILE_WIDTH, size - tile * TILE_WIDTH)
            hashes = tile_hashes(tile, width)
            if width == TILE_WIDTH:
                levels = _perfect_levels(hashes)

                def lower(j: int, levels: list[list[bytes]] = levels) -> list[bytes]:
                    return [levels[lv][(j >> lv) ^ 1] for lv in range(8)]
            else:
                mini = MemoryTree(hashes)

                def lower(j: int, mini: MemoryTree = mini, width: int = width) -> list[bytes]:
                    return mini.inclusion_proof(j, width) if width > 1 else []

            lowers[tile] = lower
            uppers[tile] = _upper(tile, size, get_hash)
        proofs.append(lower(index & 0xFF) + uppers[tile])
    return proofs
