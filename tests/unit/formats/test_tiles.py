"""C2SP tlog-tiles: paths, entry bundles, hash tiles, and proofs computed from tiles."""

from __future__ import annotations

import random
from hashlib import sha256
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyless.errors import InvalidInput, NotFound
from keyless.formats.tiles import (
    TILE_WIDTH,
    Tile,
    TileCache,
    TileCoord,
    TileProver,
    append_tiles,
    consistency_tiles,
    decode_entry_bundle,
    encode_entry_bundle,
    encode_index,
    entries_path,
    fetch_tiles,
    hash_tile,
    inclusion_tiles,
    parse_entries_path,
    parse_hash_tile,
    parse_tile_path,
    parse_tile_request,
    reader_from_mapping,
    root_tiles,
    tile_for_node,
    tile_path,
    tile_root,
    tiles_for_size,
)
from keyless.merkle import (
    CompactRange,
    MemoryTree,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

# --- paths -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "encoded"),
    [
        (0, "000"),
        (5, "005"),
        (999, "999"),
        (1000, "x001/000"),
        (1234067, "x001/x234/067"),
        (10**9, "x001/x000/x000/000"),
    ],
)
def test_encode_index(index: int, encoded: str) -> None:
    assert encode_index(index) == encoded


def test_tile_paths() -> None:
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(0, 1234067, 256) == "tile/0/x001/x234/067"
    assert tile_path(1, 0, 7) == "tile/1/000.p/7"
    assert tile_path(63, 1) == "tile/63/001"
    assert entries_path(1000) == "tile/entries/x001/000"
    assert entries_path(3, 255) == "tile/entries/003.p/255"
    assert parse_tile_path("tile/0/x001/x234/067") == (0, 1234067, None)
    assert parse_tile_path("tile/12/000.p/1") == (12, 0, 1)
    assert parse_entries_path("tile/entries/x001/000.p/9") == (1000, 9)
    assert parse_entries_path("tile/entries/000") == (0, None)
    for bad in [(64, 0, None), (-1, 0, None), (0, -1, None), (0, 0, 0), (0, 0, 257)]:
        with pytest.raises(InvalidInput):
            tile_path(*bad)


@pytest.mark.parametrize(
    "path",
    [
        "tile/00/000",
        "tile/64/000",
        "tile/-1/000",
        "tile/0/x000/005",
        "tile/0/1234",
        "tile/0/12",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/07",
        "tile/0/x001",
        "/tile/0/000",
        "tile/0/000/",
        "tile/entries/000",
        "tile/0/x001/x234/067.p/",
        "tile/0/000.p/5/",
        "tile/0/000\n",
        "tile/0/x01/000",
        "tile/0/X001/000",
        "tile/0/000.P/5",
        "tiles/0/000",
        "tile/0/+01",
        "tile/0/\u0660\u0660\u0660",
    ],
)
def test_parse_tile_path_is_strict(path: str) -> None:
    with pytest.raises(InvalidInput):
        parse_tile_path(path)


@pytest.mark.parametrize(
    "path", ["tile/entries/x000/001", "tile/entries/000.p/0", "tile/0/000", "tile/entries/1"]
)
def test_parse_entries_path_is_strict(path: str) -> None:
    with pytest.raises(InvalidInput):
        parse_entries_path(path)


@pytest.mark.parametrize(
    ("path", "kwargs", "expected"),
    [
        ("0/000", {}, (0, 0, None)),
        ("entries/x001/000.p/9", {}, (None, 1000, 9)),
        ("data/005.p/17", {"bundles": "data", "max_level": 5}, (None, 5, 17)),
        ("0/x009/x223/x372/x036/x854/x775/807", {}, (0, 2**63 - 1, None)),
    ],
)
def test_parse_tile_request(path: str, kwargs: dict[str, Any], expected: object) -> None:
    assert parse_tile_request(path, **kwargs) == expected


@pytest.mark.parametrize(
    ("path", "kwargs"),
    [("6/000", {"max_level": 5}), ("entries/000", {"bundles": "data"}), ("0/000\n", {}),
     ("0/000.p/5\n", {}), ("0/x000/" + "x999/" * 1500 + "999", {})],
)
def test_parse_tile_request_is_strict(path: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        parse_tile_request(path, **kwargs)


@pytest.mark.parametrize(
    "path",
    ["tile/0/" + "x999/" * 1500 + "999", "tile/0/x009/x223/x372/x036/x854/x775/808"],
)
def test_tile_index_beyond_int64_names_no_tile(path: str) -> None:
    """Far too many digits for int() must not escape as ValueError (a 500 over HTTP)."""
    with pytest.raises(NotFound, match="beyond any log's size"):
        parse_tile_path(path)
    with pytest.raises(NotFound, match="beyond any log's size"):
        parse_tile_request("0/x001/000", max_index=999)


@settings(deadline=None)
@given(st.integers(0, 63), st.integers(0, 2**60), st.one_of(st.none(), st.integers(1, 255)))
def test_path_round_trip(level: int, index: int, width: int | None) -> None:
    assert parse_tile_path(tile_path(level, index, width)) == (level, index, width)
    assert parse_entries_path(entries_path(index, width)) == (index, width)


# --- entry bundles ---------------------------------------------------------------------------


@settings(deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=256))
def test_entry_bundle_round_trip(entries: list[bytes]) -> None:
    data = encode_entry_bundle(entries)
    assert len(data) == sum(2 + len(e) for e in entries)
    assert decode_entry_bundle(data) == entries
    assert decode_entry_bundle(data, len(entries)) == entries


def test_entry_bundle_format_and_limits() -> None:
    assert encode_entry_bundle([b"ab", b""]) == b"\x00\x02ab\x00\x00"
    assert decode_entry_bundle(b"\x01\x00" + b"x" * 256) == [b"x" * 256]
    assert decode_entry_bundle(encode_entry_bundle([b"y" * 0xFFFF])) == [b"y" * 0xFFFF]
    with pytest.raises(InvalidInput):
        encode_entry_bundle([b"y" * 0x10000])
    with pytest.raises(InvalidInput):
        encode_entry_bundle([b""] * 257)
    for bad in [b"\x00", b"\x00\x03ab", b"\x00\x02ab\x00"]:
        with pytest.raises(InvalidInput):
            decode_entry_bundle(bad)
    with pytest.raises(InvalidInput):
        decode_entry_bundle(b"\x00\x00" * 257)
    with pytest.raises(InvalidInput):
        decode_entry_bundle(b"\x00\x00", 2)


# --- hash tiles ------------------------------------------------------------------------------


def test_hash_tile_format() -> None:
    hashes = [sha256(bytes([i])).digest() for i in range(3)]
    data = hash_tile(hashes)
    assert len(data) == 96
    assert parse_hash_tile(data) == hashes
    assert parse_hash_tile(data, 2) == hashes[:2]
    for bad in [b"", b"x" * 33, b"x" * (8192 + 32)]:
        with pytest.raises(InvalidInput):
            parse_hash_tile(bad)
    with pytest.raises(InvalidInput):
        parse_hash_tile(data, 4)
    with pytest.raises(InvalidInput):
        hash_tile([])
    with pytest.raises(InvalidInput):
        hash_tile([b"short"])
    with pytest.raises(InvalidInput):
        tile_root(hashes)


def test_spec_example_70000() -> None:
    # C2SP tlog-tiles "Partial Tiles": 273 full level-0 tiles + one of width 112, one full level-1
    # tile + one of width 17, one level-2 tile of width 1.
    assert tiles_for_size(70_000) == [
        TileCoord(0, 273, 112),
        TileCoord(1, 1, 17),
        TileCoord(2, 0, 1),
    ]
    assert tiles_for_size(256) == [TileCoord(0, 0, 256), TileCoord(1, 0, 1)]
    assert tiles_for_size(0) == []
    assert TileCoord(0, 273, 112).path == "tile/0/273.p/112"


SIZE = 70_000
LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(SIZE)]


def _build_tiles() -> dict[tuple[int, int], bytes]:
    """Tiles written by append_tiles in uneven batches, keeping each tile's widest version."""
    store: dict[tuple[int, int], bytes] = {}
    rng = random.Random(7)
    size = 0
    while size < SIZE:
        batch = LEAVES[size : size + rng.choice([1, 3, 255, 256, 257, 1000, 5000])]
        for t in append_tiles(size, batch, reader_from_mapping(store)):
            assert len(t.data) == 32 * t.width
            old = store.get((t.level, t.index), b"")
            assert t.data.startswith(old)  # tiles only ever grow
            store[(t.level, t.index)] = t.data
        size += len(batch)
    return store


_TREE = MemoryTree(LEAVES)
_TILES = _build_tiles()


@pytest.fixture(scope="module")
def tree() -> MemoryTree:
    return _TREE


@pytest.fixture(scope="module")
def tiles() -> dict[tuple[int, int], bytes]:
    return _TILES


def test_append_tiles_match_tree(tree: MemoryTree, tiles: dict[tuple[int, int], bytes]) -> None:
    assert set(tiles) == {(0, n) for n in range(274)} | {(1, 0), (1, 1), (2, 0)}
    for (level, index), data in tiles.items():
        hashes = parse_hash_tile(data)
        for i, h in enumerate(hashes):
            assert h == tree.get_hash(8 * level, index * TILE_WIDTH + i)
        if len(hashes) == TILE_WIDTH:
            assert tile_root(hashes) == tree.get_hash(8 * level + 8, index)


def test_append_tiles_single_steps() -> None:
    store: dict[tuple[int, int], bytes] = {}
    written: list[Tile] = []
    for i in range(257):
        written = append_tiles(i, [LEAVES[i]], reader_from_mapping(store))
        for t in written:
            store[(t.level, t.index)] = t.data
    assert [(t.level, t.index, t.width) for t in written] == [(0, 1, 1)]
    assert store[(1, 0)] == root_from_leaf_hashes(LEAVES[:256])
    assert append_tiles(5, [], reader_from_mapping(store)) == []


@pytest.mark.parametrize("size", [1, 2, 255, 256, 257, 65535, 65536, 65537, 69_999, 70_000])
def test_roots_and_proofs_from_tiles(
    size: int, tree: MemoryTree, tiles: dict[tuple[int, int], bytes]
) -> None:
    reader = reader_from_mapping(tiles)
    root = tree.root(size)
    edge = CompactRange.from_getter(size, tree.get_hash).hashes
    assert TileProver(size, reader).root() == root
    no_read = TileProver(size, reader, right_edge=edge)
    assert no_read.root() == root
    assert no_read.reads == 0
    rng = random.Random(size)
    levels = len(tiles_for_size(size))
    seen: list[TileCoord] = []

    def recording(level: int, index: int, width: int) -> bytes:
        seen.append(TileCoord(level, index, width))
        return reader(level, index, width)

    for index in {0, size - 1, size // 2, *(rng.randrange(size) for _ in range(20))}:
        for known in (False, True):
            seen.clear()
            prover = TileProver(size, recording, right_edge=edge if known else None)
            proof = prover.inclusion_proof(index)
            assert proof == tree.inclusion_proof(index, size)
            verify_inclusion(LEAVES[index], index, size, proof, root)
            # the prefetch list is exactly what the prover reads (async callers rely on it)
            assert sorted(seen) == sorted(inclusion_tiles(index, size, right_edge_known=known))
        assert len(seen) <= levels  # with the right edge: at most one tile per level
        first = rng.randrange(1, size + 1)
        for known in (False, True):
            seen.clear()
            prover = TileProver(size, recording, right_edge=edge if known else None)
            cproof = prover.consistency_proof(first)
            assert cproof == tree.consistency_proof(first, size)
            verify_consistency(first, size, tree.root(first), root, cproof)
            assert sorted(seen) == sorted(consistency_tiles(first, size, right_edge_known=known))
        assert len(seen) <= levels


def test_shared_cache(tree: MemoryTree, tiles: dict[tuple[int, int], bytes]) -> None:
    cache = TileCache(max_tiles=8)
    reader = reader_from_mapping(tiles)
    first = TileProver(SIZE, reader, cache=cache)
    first.inclusion_proof(12345)
    again = TileProver(SIZE, reader, cache=cache)
    assert again.inclusion_proof(12345) == tree.inclusion_proof(12345, SIZE)
    assert first.reads > 0 and again.reads == 0
    for i in range(0, SIZE, 256 * 9):
        TileProver(SIZE, reader, cache=cache).inclusion_proof(i)
    assert len(cache) == 8


def _fake_reader(counter: list[TileCoord]) -> object:
    def read(level: int, index: int, width: int) -> bytes:
        counter.append(TileCoord(level, index, width))
        return b"".join(sha256(f"{level}/{index}/{i}".encode()).digest() for i in range(width))

    return read


@pytest.mark.parametrize("size", [10**9, 10**9 + 12345, 2**32 - 1])
def test_billion_entry_tree_reads(size: int) -> None:
    # Tile contents are fake (the tree is not materialised); only the access pattern is checked.
    rng = random.Random(size)
    levels = len(tiles_for_size(size))
    assert levels == 4
    fake_edge = [sha256(b"edge").digest()] * size.bit_count()
    for _ in range(50):
        index = rng.randrange(size)
        seen: list[TileCoord] = []
        prover = TileProver(size, _fake_reader(seen), right_edge=fake_edge)  # type: ignore[arg-type]
        assert len(prover.inclusion_proof(index)) >= 29
        assert len(seen) <= levels
        assert seen == inclusion_tiles(index, size, right_edge_known=True)
        seen2: list[TileCoord] = []
        cold = TileProver(size, _fake_reader(seen2))  # type: ignore[arg-type]
        cold.inclusion_proof(index)
        assert len(seen2) <= 2 * levels - 1
        assert sorted(seen2) == sorted(inclusion_tiles(index, size))
        first = rng.randrange(1, size)
        seen3: list[TileCoord] = []
        TileProver(size, _fake_reader(seen3), right_edge=fake_edge).consistency_proof(first)  # type: ignore[arg-type]
        assert len(seen3) <= levels
    assert root_tiles(size, right_edge_known=True) == []
    assert len(root_tiles(size)) <= levels


def test_tile_for_node() -> None:
    assert tile_for_node(0, 300, 1000) == (TileCoord(0, 1, 256), 0, 44)
    assert tile_for_node(3, 40, 1000) == (TileCoord(0, 1, 256), 3, 8)
    assert tile_for_node(8, 2, 1000) == (TileCoord(1, 0, 3), 0, 2)
    assert tile_for_node(2, 249, 1000) == (TileCoord(0, 3, 232), 2, 57)
    with pytest.raises(InvalidInput):
        tile_for_node(3, 124, 999)  # leaves 992..999 are not all present


def test_bad_tiles_are_rejected(tiles: dict[tuple[int, int], bytes]) -> None:
    short = dict(tiles)
    short[(0, 0)] = tiles[(0, 0)][:64]
    with pytest.raises(InvalidInput):
        TileProver(SIZE, reader_from_mapping(short)).inclusion_proof(5)
    with pytest.raises(InvalidInput):  # the stored tile is narrower than the size needs
        TileProver(SIZE + 256, reader_from_mapping(tiles)).inclusion_proof(SIZE + 1)
    with pytest.raises(NotFound):
        TileProver(SIZE + 512, reader_from_mapping(tiles)).inclusion_proof(SIZE + 300)
    with pytest.raises(InvalidInput):
        TileProver(SIZE, reader_from_mapping(tiles), right_edge=[b"x" * 32])


async def test_fetch_tiles_async(tree: MemoryTree, tiles: dict[tuple[int, int], bytes]) -> None:
    sync = reader_from_mapping(tiles)

    async def read(level: int, index: int, width: int) -> bytes:
        return sync(level, index, width)

    size, index = 69_999, 4242
    coords = inclusion_tiles(index, size)
    reader = await fetch_tiles(coords, read)
    assert TileProver(size, reader).inclusion_proof(index) == tree.inclusion_proof(index, size)
    with pytest.raises(NotFound):
        TileProver(size, reader).inclusion_proof(index + 256 * 3)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_size_any_proof_from_tiles(data: st.DataObject) -> None:
    tree, tiles = _TREE, _TILES
    size = data.draw(st.integers(1, SIZE))
    index = data.draw(st.integers(0, size - 1))
    first = data.draw(st.integers(0, size))
    edge = CompactRange.from_getter(size, tree.get_hash).hashes
    for prover in (
        TileProver(size, reader_from_mapping(tiles)),
        TileProver(size, reader_from_mapping(tiles), right_edge=edge),
    ):
        assert prover.root() == tree.root(size)
        assert prover.inclusion_proof(index) == tree.inclusion_proof(index, size)
        assert prover.consistency_proof(first) == tree.consistency_proof(first, size)
