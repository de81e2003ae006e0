"""The log's own tile code against an in-memory tree: the tiles :class:`RightEdge` writes, and the
roots and proofs :class:`NodeReader` computes from them (C2SP tlog-tiles, RFC 9162 §2.1)."""

from __future__ import annotations

import random
from hashlib import sha256

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyless.errors import StorageError
from keyless.formats.tiles import (
    HASH_SIZE,
    TILE_WIDTH,
    decode_entry_bundle,
    entries_path,
    parse_tile_path,
    tile_levels,
    tile_path,
    tile_width,
)
from keyless.log.edge import RightEdge
from keyless.log.nodes import NodeReader
from keyless.log.proofs import batch_inclusion_proofs
from keyless.merkle import (
    CompactRange,
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

SIZE = 70_000
ENTRIES = [i.to_bytes(4, "big") for i in range(SIZE)]
LEAVES = [leaf_hash(e) for e in ENTRIES]


def _split(data: bytes) -> list[bytes]:
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def _build() -> tuple[dict[str, bytes], dict[tuple[int, int], bytes], list[int]]:
    """Every tile :class:`RightEdge` writes in uneven batches: by path, and widest by coordinate."""
    by_path: dict[str, bytes] = {}
    widest: dict[tuple[int, int], bytes] = {}
    sizes: list[int] = []
    edge = RightEdge(CompactRange(), [], [])
    rng = random.Random(7)
    while edge.size < SIZE:
        start = edge.size
        end = min(SIZE, start + rng.choice([1, 3, 255, 256, 257, 1000, 5000]))
        tiles, _obsolete = edge.extend(LEAVES[start:end], ENTRIES[start:end])
        by_path.update(tiles)
        for path, data in tiles.items():
            if path.startswith("tile/entries/"):
                continue
            level, index, _width = parse_tile_path(path)
            old = widest.get((level, index), b"")
            assert data.startswith(old)  # tiles only ever grow
            widest[(level, index)] = data
        sizes.append(edge.size)
    return by_path, widest, sizes


_TREE = MemoryTree(LEAVES)
_BY_PATH, _WIDEST, _SIZES = _build()


def _reader(size: int, reads: list[str] | None = None) -> NodeReader:
    """A NodeReader over the stored tiles at ``size``, serving a partial as its widest version
    truncated, as the engine does (the first W hashes of a tile never change)."""

    def read_tile(path: str) -> bytes | None:
        if reads is not None:
            reads.append(path)
        level, index, width = parse_tile_path(path)
        data = _WIDEST.get((level, index), b"")
        need = HASH_SIZE * (width or TILE_WIDTH)
        return data[:need] if len(data) >= need else None

    return NodeReader(read_tile, lambda: size)


def test_right_edge_tiles_match_the_tree() -> None:
    assert set(_WIDEST) == {(0, n) for n in range(274)} | {(1, 0), (1, 1), (2, 0)}
    for (level, index), data in _WIDEST.items():
        for i, h in enumerate(_split(data)):
            assert h == _TREE.get_hash(8 * level, index * TILE_WIDTH + i)
    for n in range(274):
        width = tile_width(0, n, SIZE)
        bundle = decode_entry_bundle(_BY_PATH[entries_path(n, width)], width)
        assert bundle == ENTRIES[n * TILE_WIDTH : n * TILE_WIDTH + width]


def test_spec_example_70000() -> None:
    # C2SP tlog-tiles "Partial Tiles": 273 full level-0 tiles + one of width 112, one full level-1
    # tile + one of width 17, one level-2 tile of width 1.
    widths = {(0, 273): 112, (1, 1): 17, (2, 0): 1, (0, 272): 256, (1, 0): 256, (0, 274): 0}
    assert {coord: tile_width(*coord, SIZE) for coord in widths} == widths
    assert tile_width(3, 0, SIZE) == 0
    assert tile_levels(SIZE) == 3 and tile_levels(256) == 2 and tile_levels(0) == 0
    assert SIZE in _SIZES  # so the partials of size 70,000 were written under their own paths
    for path in ("tile/0/273.p/112", "tile/1/001.p/17", "tile/2/000.p/1", "tile/entries/273.p/112"):
        assert path in _BY_PATH


def test_right_edge_single_steps() -> None:
    edge = RightEdge(CompactRange(), [], [])
    store: dict[str, bytes] = {}
    written: dict[str, bytes] = {}
    for i in range(257):
        written, obsolete = edge.extend([LEAVES[i]], [ENTRIES[i]])
        store.update(written)
        if i == 255:
            assert set(written) == {"tile/0/000", "tile/1/000.p/1", "tile/entries/000"}
            assert obsolete == ["tile/entries/000.p", "tile/0/000.p"]
    assert set(written) == {"tile/0/001.p/1", "tile/entries/001.p/1"}
    assert store["tile/1/000.p/1"] == root_from_leaf_hashes(LEAVES[:256])
    assert edge.extend([], []) == ({}, [])


@pytest.mark.parametrize("size", [1, 2, 255, 256, 257, 65535, 65536, 65537, 69_999, 70_000])
def test_roots_and_proofs_from_tiles(size: int) -> None:
    root = _TREE.root(size)
    assert CompactRange.from_getter(size, _reader(size).get_hash).root() == root
    levels = tile_levels(size)
    rng = random.Random(size)
    for index in {0, size - 1, size // 2, *(rng.randrange(size) for _ in range(20))}:
        reads: list[str] = []
        proof = inclusion_proof(index, size, _reader(size, reads).get_hash)
        assert proof == _TREE.inclusion_proof(index, size)
        verify_inclusion(LEAVES[index], index, size, proof, root)
        assert len(reads) <= 2 * levels  # the path's tile and the right edge's, per level
        first = rng.randrange(1, size + 1)
        reads.clear()
        cproof = consistency_proof(first, size, _reader(size, reads).get_hash)
        assert cproof == _TREE.consistency_proof(first, size)
        verify_consistency(first, size, _TREE.root(first), root, cproof)
        assert len(reads) <= 3 * levels


def test_node_reader_reads_a_tile_once() -> None:
    reads: list[str] = []
    nodes = _reader(SIZE, reads)
    first = inclusion_proof(12345, SIZE, nodes.get_hash)
    assert reads
    reads.clear()
    assert inclusion_proof(12345, SIZE, nodes.get_hash) == first
    assert reads == []
    nodes.forget()
    inclusion_proof(12345, SIZE, nodes.get_hash)
    assert reads


def test_batch_proofs_from_tiles() -> None:
    """What the engine answers a batch with: batch_inclusion_proofs over a NodeReader."""
    for size in (257, 65_537, SIZE):
        nodes = _reader(size)
        indexes = sorted({0, size - 1, size // 3, max(0, size - 300)})
        proofs = batch_inclusion_proofs(
            indexes, size, nodes.get_hash, lambda t, w, n=nodes: n.tile_hashes(0, t, w)
        )
        assert proofs == [_TREE.inclusion_proof(i, size) for i in indexes]


def test_missing_or_short_tiles_fail_closed() -> None:
    def short(path: str) -> bytes | None:
        return b"x" * HASH_SIZE if path == tile_path(0, 0) else None

    with pytest.raises(StorageError):
        inclusion_proof(5, SIZE, NodeReader(short, lambda: SIZE).get_hash)
    with pytest.raises(StorageError):  # the head says size+512: tile (0, 275) is not stored
        inclusion_proof(SIZE + 300, SIZE + 512, _reader(SIZE + 512).get_hash)


@pytest.mark.parametrize("size", [10**9, 10**9 + 12345, 2**32 - 1])
def test_billion_entry_tree_reads(size: int) -> None:
    """Tile contents are fake (the tree is not materialised); only the access pattern counts."""
    levels = tile_levels(size)
    assert levels == 4
    rng = random.Random(size)

    def fake(reads: list[str]) -> NodeReader:
        def read_tile(path: str) -> bytes:
            reads.append(path)
            level, index, width = parse_tile_path(path)
            return b"".join(
                sha256(f"{level}/{index}/{i}".encode()).digest() for i in range(width or 256)
            )

        return NodeReader(read_tile, lambda: size)

    for _ in range(20):
        index = rng.randrange(size)
        reads: list[str] = []
        assert len(inclusion_proof(index, size, fake(reads).get_hash)) >= 29
        assert len(reads) <= 2 * levels - 1
        assert len(set(reads)) == len(reads)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_size_any_proof_from_tiles(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, SIZE))
    index = data.draw(st.integers(0, size - 1))
    first = data.draw(st.integers(0, size))
    nodes = _reader(size)
    assert CompactRange.from_getter(size, nodes.get_hash).root() == _TREE.root(size)
    assert inclusion_proof(index, size, nodes.get_hash) == _TREE.inclusion_proof(index, size)
    assert consistency_proof(first, size, nodes.get_hash) == _TREE.consistency_proof(first, size)
