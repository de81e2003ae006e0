"""Property tests: keyless.merkle against a literal transcription of RFC 9162 §2.1.

``_mth``, ``_path`` and ``_subproof`` below are the recursive definitions of RFC 9162 §2.1.1,
§2.1.3.1 and §2.1.4.1 written out as directly as possible, so the iterative code under test is
checked against the spec text rather than against itself.
"""

from __future__ import annotations

import random
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyless.merkle import (
    CompactRange,
    ConsistencyProofError,
    InclusionProofError,
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

MAX = 300
LEAF_HASHES = [leaf_hash(i.to_bytes(4, "big")) for i in range(MAX)]
TREE = MemoryTree(LEAF_HASHES)


def _k(n: int) -> int:
    """The largest power of two smaller than n (RFC 9162 §2.1.1)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


@cache
def _mth(begin: int, end: int) -> bytes:
    n = end - begin
    if n == 1:
        return LEAF_HASHES[begin]
    k = _k(n)
    return node_hash(_mth(begin, begin + k), _mth(begin + k, end))


def _path(m: int, begin: int, end: int) -> list[bytes]:
    n = end - begin
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*_path(m, begin, begin + k), _mth(begin + k, end)]
    return [*_path(m - k, begin + k, end), _mth(begin, begin + k)]


def _subproof(m: int, begin: int, end: int, b: bool) -> list[bytes]:
    n = end - begin
    if m == n:
        return [] if b else [_mth(begin, end)]
    k = _k(n)
    if m <= k:
        return [*_subproof(m, begin, begin + k, b), _mth(begin + k, end)]
    return [*_subproof(m - k, begin + k, end, False), _mth(begin, begin + k)]


@pytest.mark.parametrize("n", [*range(1, 70), 127, 128, 129, 255, 256, 257, 300])
def test_matches_rfc_definitions(n: int) -> None:
    root = _mth(0, n)
    assert TREE.root(n) == root
    assert root_from_leaf_hashes(LEAF_HASHES[:n]) == root
    for m in range(n):
        assert inclusion_proof(m, n, TREE.get_hash) == _path(m, 0, n)
    for m in range(1, n):
        assert consistency_proof(m, n, TREE.get_hash) == _subproof(m, 0, n, True)


def test_every_proof_up_to_300_verifies() -> None:
    roots = [TREE.root(n) for n in range(MAX + 1)]
    cr = CompactRange()
    for n in range(1, MAX + 1):
        cr.append(LEAF_HASHES[n - 1])
        assert cr.root() == roots[n]
        for m in range(n):
            verify_inclusion(LEAF_HASHES[m], m, n, TREE.inclusion_proof(m, n), roots[n])
        for m in range(n + 1):
            verify_consistency(m, n, roots[m], roots[n], TREE.consistency_proof(m, n))


@st.composite
def _inclusion_case(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, MAX))
    return draw(st.integers(0, size - 1)), size


@settings(max_examples=400, deadline=None)
@given(_inclusion_case(), st.data())
def test_any_bit_flip_breaks_inclusion(case: tuple[int, int], data: st.DataObject) -> None:
    index, size = case
    proof = TREE.inclusion_proof(index, size)
    root = TREE.root(size)
    leaf = LEAF_HASHES[index]
    # Flip one bit anywhere: in a proof hash, the leaf hash or the root.
    targets = len(proof) + 2
    t = data.draw(st.integers(0, targets - 1))
    bit = data.draw(st.integers(0, 255))

    def flip(b: bytes) -> bytes:
        ba = bytearray(b)
        ba[bit // 8] ^= 1 << (bit % 8)
        return bytes(ba)

    if t < len(proof):
        proof = [*proof[:t], flip(proof[t]), *proof[t + 1 :]]
    elif t == len(proof):
        leaf = flip(leaf)
    else:
        root = flip(root)
    with pytest.raises(InclusionProofError):
        verify_inclusion(leaf, index, size, proof, root)


@settings(max_examples=400, deadline=None)
@given(st.integers(1, MAX), st.data())
def test_any_bit_flip_breaks_consistency(second: int, data: st.DataObject) -> None:
    first = data.draw(st.integers(1, second))
    proof = TREE.consistency_proof(first, second)
    r1, r2 = TREE.root(first), TREE.root(second)
    t = data.draw(st.integers(0, len(proof) + 1))
    bit = data.draw(st.integers(0, 255))

    def flip(b: bytes) -> bytes:
        ba = bytearray(b)
        ba[bit // 8] ^= 1 << (bit % 8)
        return bytes(ba)

    if t < len(proof):
        proof = [*proof[:t], flip(proof[t]), *proof[t + 1 :]]
    elif t == len(proof):
        r1 = flip(r1)
    else:
        r2 = flip(r2)
    with pytest.raises(ConsistencyProofError):
        verify_consistency(first, second, r1, r2, proof)


@settings(max_examples=300, deadline=None)
@given(_inclusion_case(), st.integers(-3, 3).filter(bool))
def test_wrong_index_fails(case: tuple[int, int], di: int) -> None:
    # A different size of the same shape may legitimately give the same computation (the path
    # does not bind the size), but a different index changes the left/right order of the hashes.
    index, size = case
    proof = TREE.inclusion_proof(index, size)
    with pytest.raises(InclusionProofError):
        verify_inclusion(LEAF_HASHES[index], index + di, size, proof, TREE.root(size))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=70), st.integers(0, 5))
def test_compact_range_split_appends(data: list[bytes], split: int) -> None:
    hashes = [leaf_hash(d) for d in data]
    cr = CompactRange()
    cut = min(split * 7, len(hashes))
    cr.extend(hashes[:cut])
    restored = CompactRange(cr.size, cr.hashes)
    restored.extend(hashes[cut:])
    assert restored.root() == root_from_leaf_hashes(hashes)


def _flip(b: bytes, bit: int) -> bytes:
    ba = bytearray(b)
    ba[bit // 8] ^= 1 << (bit % 8)
    return bytes(ba)


def test_every_proof_up_to_300_rejects_a_flipped_bit_in_every_position() -> None:
    """Exhaustive over (index, size) / (first, second) ≤ 300 and over every hash of each proof,
    leaf and roots; the flipped bit is drawn from a fixed-seed RNG for each position."""
    rng = random.Random(300)
    roots = [TREE.root(n) for n in range(MAX + 1)]
    checked = 0
    for n in range(1, MAX + 1):
        for m in range(n):
            proof = TREE.inclusion_proof(m, n)
            for t in range(len(proof) + 2):
                bit = rng.randrange(256)
                p, leaf, root = list(proof), LEAF_HASHES[m], roots[n]
                if t < len(proof):
                    p[t] = _flip(p[t], bit)
                elif t == len(proof):
                    leaf = _flip(leaf, bit)
                else:
                    root = _flip(root, bit)
                try:
                    verify_inclusion(leaf, m, n, p, root)
                except InclusionProofError:
                    checked += 1
                else:
                    pytest.fail(f"flipped bit accepted: inclusion {m} in {n}, position {t}")
        for m in range(1, n):
            proof = TREE.consistency_proof(m, n)
            for t in range(len(proof) + 2):
                bit = rng.randrange(256)
                p, r1, r2 = list(proof), roots[m], roots[n]
                if t < len(proof):
                    p[t] = _flip(p[t], bit)
                elif t == len(proof):
                    r1 = _flip(r1, bit)
                else:
                    r2 = _flip(r2, bit)
                try:
                    verify_consistency(m, n, r1, r2, p)
                except ConsistencyProofError:
                    checked += 1
                else:
                    pytest.fail(f"flipped bit accepted: consistency {m}..{n}, position {t}")
    assert checked > 800_000
