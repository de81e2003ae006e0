"""Merkle tree hashing, proofs and their verification (RFC 6962 §2.1, RFC 9162 §2.1).

Everything here is pure: hashes in, hashes out. Trees are addressed the way the tiles and the log
engine store them: a *node* ``(level, index)`` is the root of the complete subtree over leaves
``[index·2^level, (index+1)·2^level)``. The RFC 6962 tree of ``n`` leaves is the same as the
bottom-up tree where a node with no right child is *promoted* unchanged, so every RFC node is
either a complete subtree or an "ephemeral" right-edge node computed from complete subtrees.

Proof generation takes ``get_hash(level, index)`` for complete subtrees only, so the same code
serves proofs from an in-memory list (:class:`MemoryTree`), from a database or from tiles (the
log's ``NodeReader``). Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 literally and raises
:class:`InclusionProofError` / :class:`ConsistencyProofError`; it never returns a bool.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Sequence
from hashlib import sha256
from typing import NamedTuple

from keyless.errors import InvalidInput, VerificationError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "ConsistencyProofError",
    "GetHash",
    "InclusionProofError",
    "MemoryTree",
    "Node",
    "consistency_proof",
    "consistency_proof_nodes",
    "inclusion_proof",
    "inclusion_proof_nodes",
    "leaf_hash",
    "leaf_hashes",
    "node_hash",
    "range_nodes",
    "root_from_inclusion_proof",
    "root_from_leaf_hashes",
    "subtree_root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Every hash in the tree is SHA-256 (RFC 6962 §2.1)."""

EMPTY_ROOT: bytes = sha256(b"").digest()
"""MTH({}) = SHA-256() — the root of the empty tree (RFC 9162 §2.1.1)."""

GetHash = Callable[[int, int], bytes]
"""``get_hash(level, index)``: the hash of the complete subtree at that node."""


class InclusionProofError(VerificationError):
    """An inclusion proof does not prove the leaf into the root (RFC 9162 §2.1.3.2)."""


class ConsistencyProofError(VerificationError):
    """A consistency proof does not link the two tree heads (RFC 9162 §2.1.4.2)."""


class Node(NamedTuple):
    """A complete subtree: ``level`` 0 is a leaf hash; ``index`` counts from the left."""

    level: int
    index: int  # type: ignore[assignment]  # shadows tuple.index on purpose: the node's index
    hash: bytes


def leaf_hash(data: bytes) -> bytes:
    """MTH({d0}) = SHA-256(0x00 || d0) (RFC 6962 §2.1, RFC 9162 §2.1.1)."""
    return sha256(b"\x00" + data).digest()


def leaf_hashes(entries: Iterable[bytes]) -> list[bytes]:
    """``leaf_hash`` of many entries at once (the integrator's hot loop, without call overhead)."""
    return [sha256(b"\x00" + e).digest() for e in entries]


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): an interior node (RFC 6962 §2.1)."""
    return sha256(b"\x01" + left + right).digest()


def _check_size(name: str, value: int) -> None:
    if value < 0:
        raise InvalidInput(f"{name} must be non-negative, got {value}")


def range_nodes(begin: int, end: int) -> list[tuple[int, int]]:
    """The complete subtrees ``(level, index)`` that exactly cover leaves ``[begin, end)``.

    Left to right; this is the "compact range" of transparency-dev/merkle. With ``begin = 0`` it is
    one node per set bit of ``end`` (largest first), which is what a log must keep to append.
    """
    _check_size("begin", begin)
    if end < begin:
        raise InvalidInput(f"range end {end} is before its begin {begin}")
    left: list[tuple[int, int]] = []
    right: list[tuple[int, int]] = []
    level = 0
    while begin < end:
        if begin & 1 and begin + 1 <= end:
            left.append((level, begin))
            begin += 1
        if end & 1 and end - 1 >= begin:
            end -= 1
            right.append((level, end))
        begin >>= 1
        end >>= 1
        level += 1
    return left + right[::-1]


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Fold complete-subtree hashes of decreasing size, right to left (RFC 9162 §2.1.1 MTH)."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = sha256(b"\x01" + h + acc).digest()
    return acc


def subtree_root(begin: int, end: int, get_hash: GetHash) -> bytes:
    """MTH(D[begin:end]) for a range that starts on a boundary of its size's top power of two.

    This is any node of the RFC 6962 tree, complete or ephemeral: ``begin`` must be a multiple of
    the largest power of two ≥ ``end - begin`` (or of 2^level for the node it stands for), which is
    how every node of §2.1.1's recursive split is laid out.
    """
    if end <= begin:
        raise InvalidInput(f"empty or negative range [{begin}, {end})")
    nodes = range_nodes(begin, end)
    if len(nodes) == 1:
        level, index = nodes[0]
        return get_hash(level, index)
    if any(nodes[i][0] <= nodes[i + 1][0] for i in range(len(nodes) - 1)):
        raise InvalidInput(f"[{begin}, {end}) is not a node of an RFC 6962 tree")
    return _fold([get_hash(level, index) for level, index in nodes])


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH(D[0:n]) from the leaf hashes (RFC 9162 §2.1.1), level by level in O(n)."""
    if not hashes:
        return EMPTY_ROOT
    level: list[bytes] = list(hashes)
    while len(level) > 1:
        odd = level[-1] if len(level) & 1 else None
        it = iter(level)
        level = [sha256(b"\x01" + a + b).digest() for a, b in zip(it, it, strict=False)]
        if odd is not None:
            level.append(odd)  # promoted: a node without a right child equals its left child
    return level[0]


class CompactRange:
    """The right edge of an append-only tree: one complete subtree per set bit of the size.

    This is all a log's integrator needs to append leaves and compute the root in O(log n)
    (RFC 9162 §2.1.1 via the equivalent bottom-up construction). :meth:`append` reports every
    complete subtree it finishes so the caller can write hash tiles (C2SP tlog-tiles).
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        """Restore a range: ``hashes`` are those of :func:`range_nodes(0, size)` in order."""
        _check_size("size", size)
        if len(hashes) != size.bit_count():
            raise InvalidInput(
                f"a compact range of size {size} has {size.bit_count()} hashes, got {len(hashes)}"
            )
        for h in hashes:
            if len(h) != HASH_SIZE:
                raise InvalidInput(f"subtree hash must be {HASH_SIZE} bytes, got {len(h)}")
        self._size = size
        self._hashes: list[bytes] = list(hashes)

    @classmethod
    def from_getter(cls, size: int, get_hash: GetHash) -> CompactRange:
        """Restore the range of a stored tree by reading its right-edge subtrees."""
        return cls(size, [get_hash(level, index) for level, index in range_nodes(0, size)])

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The right-edge subtree hashes, largest subtree first (see :func:`range_nodes`)."""
        return tuple(self._hashes)

    def copy(self) -> CompactRange:
        """An independent copy (to try a batch without committing to it)."""
        return CompactRange(self._size, self._hashes)

    def append(self, leaf: bytes) -> list[Node]:
        """Append one *leaf hash*; return the subtrees it completed, from the leaf upwards.

        The first returned node is always ``(0, index, leaf)``; a further node at level ``l`` is
        returned each time the new leaf closes a subtree of 2^l leaves.
        """
        if len(leaf) != HASH_SIZE:
            raise InvalidInput(f"leaf hash must be {HASH_SIZE} bytes, got {len(leaf)}")
        index = self._size
        completed = [Node(0, index, leaf)]
        stack = self._hashes
        h = leaf
        level = 0
        while index & 1:
            h = sha256(b"\x01" + stack.pop() + h).digest()
            level += 1
            index >>= 1
            completed.append(Node(level, index, h))
        stack.append(h)
        self._size += 1
        return completed

    def extend(self, leaves: Iterable[bytes], *, min_level: int = 0) -> list[Node]:
        """Append many leaf hashes; return completed subtrees at ``level >= min_level``.

        ``min_level=1`` skips echoing the leaves themselves (the caller has them), which is the
        fast path of the integrator: it only writes tiles for levels 8, 16, … above the leaves.
        """
        completed: list[Node] = []
        stack = self._hashes
        size = self._size
        try:
            for leaf in leaves:
                if len(leaf) != HASH_SIZE:
                    raise InvalidInput(f"leaf hash must be {HASH_SIZE} bytes, got {len(leaf)}")
                if min_level == 0:
                    completed.append(Node(0, size, leaf))
                index = size
                h = leaf
                level = 0
                while index & 1:
                    h = sha256(b"\x01" + stack.pop() + h).digest()
                    level += 1
                    index >>= 1
                    if level >= min_level:
                        completed.append(Node(level, index, h))
                stack.append(h)
                size += 1
        finally:
            self._size = size
        return completed

    def root(self) -> bytes:
        """MTH of the leaves appended so far (RFC 9162 §2.1.1)."""
        if not self._hashes:
            return EMPTY_ROOT
        return _fold(self._hashes)


class MemoryTree:
    """A whole tree in memory: every level kept, so any node and proof is O(log n).

    Meant for tests, small logs and reference computations; the log engine stores tiles instead.
    """

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for h in leaf_hashes:
            self.append(h)

    @property
    def size(self) -> int:
        """The number of leaves."""
        return len(self._levels[0])

    def append(self, leaf: bytes) -> int:
        """Append a leaf hash; return its index."""
        if len(leaf) != HASH_SIZE:
            raise InvalidInput(f"leaf hash must be {HASH_SIZE} bytes, got {len(leaf)}")
        levels = self._levels
        index = len(levels[0])
        levels[0].append(leaf)
        level, i, h = 0, index, leaf
        while i & 1:
            h = sha256(b"\x01" + levels[level][i - 1] + h).digest()
            level += 1
            i >>= 1
            if len(levels) == level:
                levels.append([])
            levels[level].append(h)
        return index

    def get_hash(self, level: int, index: int) -> bytes:
        """The hash of the complete subtree ``(level, index)``; raises InvalidInput if absent."""
        if level < 0 or level >= len(self._levels) or not 0 <= index < len(self._levels[level]):
            raise InvalidInput(f"no complete subtree at level {level}, index {index}")
        return self._levels[level][index]

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default: all)."""
        n = self.size if size is None else size
        if not 0 <= n <= self.size:
            raise InvalidInput(f"tree size {n} out of range 0..{self.size}")
        return EMPTY_ROOT if n == 0 else subtree_root(0, n, self.get_hash)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 §2.1.3.1 PATH(index, D[0:size])."""
        return inclusion_proof(index, size, self.get_hash)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """RFC 9162 §2.1.4.1 PROOF(first, D[0:second])."""
        return consistency_proof(first, second, self.get_hash)


def _path_nodes(level: int, index: int, size: int) -> list[tuple[int, int, int]]:
    """Siblings on the way from node ``(level, index)`` to the root of a tree of ``size`` leaves.

    Each item is ``(level, begin, end)``: the sibling covers leaves ``[begin, end)``. A sibling is
    complete when ``end - begin == 2^level``; otherwise it is the one ephemeral right-edge node.
    Siblings that would lie entirely beyond ``size`` do not exist (their parent is promoted).
    """
    out: list[tuple[int, int, int]] = []
    k = index
    lvl = level
    while not (k == 0 and (1 << lvl) >= size):
        sibling = k ^ 1
        begin = sibling << lvl
        if begin < size:
            out.append((lvl, begin, min(begin + (1 << lvl), size)))
        k >>= 1
        lvl += 1
    return out


def _resolve(nodes: list[tuple[int, int, int]], get_hash: GetHash) -> list[bytes]:
    proof: list[bytes] = []
    for lvl, begin, end in nodes:
        if end - begin == 1 << lvl:
            proof.append(get_hash(lvl, begin >> lvl))
        else:
            proof.append(subtree_root(begin, end, get_hash))
    return proof


def inclusion_proof_nodes(index: int, size: int) -> list[tuple[int, int, int]]:
    """The ``(level, begin, end)`` ranges whose hashes form PATH(index, D[0:size])."""
    _check_size("index", index)
    if index >= size:
        raise InvalidInput(f"leaf index {index} is not in a tree of size {size}")
    return _path_nodes(0, index, size)


def inclusion_proof(index: int, size: int, get_hash: GetHash) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``size`` leaves (RFC 9162 §2.1.3.1).

    Hashes are ordered from the leaf towards the root, as RFC 9162 and every Sigstore client expect.
    """
    return _resolve(inclusion_proof_nodes(index, size), get_hash)


def consistency_proof_nodes(first: int, second: int) -> list[tuple[int, int, int]]:
    """The ``(level, begin, end)`` ranges whose hashes form PROOF(first, D[0:second])."""
    _check_size("first", first)
    if second < first:
        raise InvalidInput(f"first tree size {first} exceeds second tree size {second}")
    if first in (0, second):
        return []
    # SUBPROOF(m, D[0:n], true) (RFC 9162 §2.1.4.1): the path of the rightmost complete subtree
    # of the first tree, preceded by that subtree itself unless it is the whole first tree.
    level = (first & -first).bit_length() - 1
    index = (first - 1) >> level
    nodes = _path_nodes(level, index, second)
    if index != 0:
        nodes.insert(0, (level, index << level, (index + 1) << level))
    return nodes


def consistency_proof(first: int, second: int, get_hash: GetHash) -> list[bytes]:
    """The consistency proof between tree sizes ``first`` ≤ ``second`` (RFC 9162 §2.1.4.1).

    Empty when ``first`` is 0 or equal to ``second`` (nothing to prove).
    """
    return _resolve(consistency_proof_nodes(first, second), get_hash)


def _check_hashes(proof: Sequence[bytes], error: type[VerificationError]) -> None:
    for i, h in enumerate(proof):
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise error(f"proof hash {i} is not a {HASH_SIZE}-byte SHA-256 value")


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """The root that ``proof`` links ``leaf_hash`` at ``index`` to (RFC 9162 §2.1.3.2 steps 1-5).

    Raises :class:`InclusionProofError` when the proof has the wrong shape for (index, size).
    """
    if index < 0 or size < 0:
        raise InclusionProofError(f"negative leaf index {index} or tree size {size}")
    if index >= size:
        raise InclusionProofError(f"leaf index {index} is not in a tree of size {size}")
    if len(leaf_hash) != HASH_SIZE:
        raise InclusionProofError(f"leaf hash must be {HASH_SIZE} bytes, got {len(leaf_hash)}")
    _check_hashes(proof, InclusionProofError)
    fn = index
    sn = size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            raise InclusionProofError(
                f"inclusion proof has too many hashes ({len(proof)}) for index {index} "
                f"in tree size {size}"
            )
        if fn & 1 or fn == sn:
            r = sha256(b"\x01" + p + r).digest()
            while not fn & 1 and fn != 0:  # "if LSB(fn) is not set, right-shift until …"
                fn >>= 1
                sn >>= 1
        else:
            r = sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InclusionProofError(
            f"inclusion proof has too few hashes ({len(proof)}) for index {index} "
            f"in tree size {size}"
        )
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``proof`` proves ``leaf_hash`` at ``index`` in the tree ``root`` of ``size``.

    RFC 9162 §2.1.3.2; raises :class:`InclusionProofError` naming what failed.
    """
    computed = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if not hmac.compare_digest(computed, root):
        raise InclusionProofError(
            f"inclusion proof for index {index} computes root {computed.hex()}, "
            f"expected {root.hex()[:64]}{'…' if len(root) > 32 else ''} (tree size {size})"
        )


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree ``second_root`` of size ``second`` extends ``first_root`` of ``first``.

    RFC 9162 §2.1.4.2; a first size of 0 is consistent with anything given an empty proof
    (as in transparency-dev/merkle). Raises :class:`ConsistencyProofError`.
    """
    if first < 0 or second < 0:
        raise ConsistencyProofError(f"negative tree size ({first}, {second})")
    if second < first:
        raise ConsistencyProofError(f"second tree size {second} is smaller than first {first}")
    _check_hashes(proof, ConsistencyProofError)
    if first == second:
        if proof:
            raise ConsistencyProofError("trees of equal size need an empty consistency proof")
        if not hmac.compare_digest(first_root, second_root):
            raise ConsistencyProofError(f"trees of equal size {first} have different roots")
        return
    if first == 0:
        if proof:
            raise ConsistencyProofError("consistency with the empty tree needs an empty proof")
        return
    if not proof:
        raise ConsistencyProofError(f"empty consistency proof between sizes {first} and {second}")
    path = list(proof)
    if first & (first - 1) == 0:  # step 2: first is an exact power of two
        path.insert(0, first_root)
    fn = first - 1
    sn = second - 1
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ConsistencyProofError(
                f"consistency proof has too many hashes ({len(proof)}) for sizes {first}, {second}"
            )
        if fn & 1 or fn == sn:
            fr = sha256(b"\x01" + c + fr).digest()
            sr = sha256(b"\x01" + c + sr).digest()
            while not fn & 1 and fn != 0:  # "if LSB(fn) is not set, right-shift until …"
                fn >>= 1
                sn >>= 1
        else:
            sr = sha256(b"\x01" + sr + c).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ConsistencyProofError(
            f"consistency proof has too few hashes ({len(proof)}) for sizes {first}, {second}"
        )
    if not hmac.compare_digest(fr, first_root):
        raise ConsistencyProofError(f"consistency proof does not match the root of size {first}")
    if not hmac.compare_digest(sr, second_root):
        raise ConsistencyProofError(f"consistency proof does not match the root of size {second}")
