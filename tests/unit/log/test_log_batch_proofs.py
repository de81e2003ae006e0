"""Batch inclusion proofs equal keyless.merkle's one-at-a-time proofs (RFC 9162 §2.1.3.1)."""

from __future__ import annotations

from hashlib import sha256

from hypothesis import given, settings
from hypothesis import strategies as st

from keyless import merkle
from keyless.log.proofs import batch_inclusion_proofs

LEAVES = [sha256(b"leaf %d" % i).digest() for i in range(70_000)]
TREE = merkle.MemoryTree(LEAVES)


def tile_hashes(tile: int, width: int) -> list[bytes]:
    return LEAVES[tile * 256 : tile * 256 + width]


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 70_000), st.data())
def test_batch_proofs_match_merkle(size: int, data: st.DataObject) -> None:
    indexes = data.draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=40))
    proofs = batch_inclusion_proofs(indexes, size, TREE.get_hash, tile_hashes)
    root = TREE.root(size)
    for index, proof in zip(indexes, proofs, strict=True):
        assert proof == TREE.inclusion_proof(index, size)
        merkle.verify_inclusion(LEAVES[index], index, size, proof, root)


def test_edges() -> None:
    for size in (1, 2, 255, 256, 257, 511, 512, 513, 65535, 65536, 65537):
        indexes = sorted({0, size - 1, size // 2, max(0, size - 257)})
        proofs = batch_inclusion_proofs(indexes, size, TREE.get_hash, tile_hashes)
        assert proofs == [TREE.inclusion_proof(i, size) for i in indexes]
