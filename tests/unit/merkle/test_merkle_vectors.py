"""Known-answer tests for keyless.merkle (RFC 6962 §2.1 / RFC 9162 §2.1).

The 8-leaf tree, its node hashes, roots and proofs are the classic vectors of the Certificate
Transparency / transparency-dev test suites (transparency-dev/merkle ``testonly/constants.go`` and
``proof/verify_test.go``); the corruption probes mirror that suite's ``corruptInclusionProof`` /
``corruptConsistencyProof``.
"""

from __future__ import annotations

import pytest

from keyless import merkle
from keyless.errors import InvalidInput, VerificationError
from keyless.merkle import (
    EMPTY_ROOT,
    CompactRange,
    ConsistencyProofError,
    InclusionProofError,
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

h = bytes.fromhex

LEAVES = [
    h(""),
    h("00"),
    h("10"),
    h("2021"),
    h("3031"),
    h("40414243"),
    h("5051525354555657"),
    h("606162636465666768696a6b6c6d6e6f"),
]

NODE_HASHES = [
    [
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        h("0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
        h("07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
        h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        h("4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
        h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        h("46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    ],
    [
        h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ],
    [
        h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ],
    [h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")],
]

# Root of the tree of the first n leaves, n = 0..8.
ROOTS = [
    h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]

# (0-based leaf index, tree size, proof)
INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        5,
        8,
        [
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (2, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        1,
        5,
        [
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
]

CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]

SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")


@pytest.fixture(scope="module")
def tree() -> MemoryTree:
    return MemoryTree(leaf_hash(x) for x in LEAVES)


def test_hash_primitives() -> None:
    assert ROOTS[0] == EMPTY_ROOT
    assert [leaf_hash(x) for x in LEAVES] == NODE_HASHES[0]
    assert merkle.leaf_hashes(LEAVES) == NODE_HASHES[0]
    assert node_hash(NODE_HASHES[0][0], NODE_HASHES[0][1]) == NODE_HASHES[1][0]
    assert node_hash(NODE_HASHES[2][0], NODE_HASHES[2][1]) == NODE_HASHES[3][0]


def test_every_complete_subtree(tree: MemoryTree) -> None:
    for level, hashes in enumerate(NODE_HASHES):
        for index, expected in enumerate(hashes):
            assert tree.get_hash(level, index) == expected


@pytest.mark.parametrize("n", range(9))
def test_roots(n: int, tree: MemoryTree) -> None:
    hashes = [leaf_hash(x) for x in LEAVES[:n]]
    assert root_from_leaf_hashes(hashes) == ROOTS[n]
    assert tree.root(n) == ROOTS[n]
    cr = CompactRange()
    cr.extend(hashes)
    assert cr.size == n
    assert cr.root() == ROOTS[n]


def test_compact_range_hashes_match_reference(tree: MemoryTree) -> None:
    # transparency-dev testonly.CompactTrees(): the right-edge subtrees of every size.
    nh = NODE_HASHES
    expected = [
        [],
        [nh[0][0]],
        [nh[1][0]],
        [nh[1][0], nh[0][2]],
        [nh[2][0]],
        [nh[2][0], nh[0][4]],
        [nh[2][0], nh[1][2]],
        [nh[2][0], nh[1][2], nh[0][6]],
        [nh[3][0]],
    ]
    cr = CompactRange()
    for n in range(9):
        assert list(cr.hashes) == expected[n]
        assert CompactRange(n, expected[n]).root() == ROOTS[n]
        assert CompactRange.from_getter(n, tree.get_hash).root() == ROOTS[n]
        if n < 8:
            cr.append(NODE_HASHES[0][n])


def test_compact_range_reports_completed_subtrees() -> None:
    cr = CompactRange()
    seen: dict[tuple[int, int], bytes] = {}
    for i in range(8):
        for node in cr.append(NODE_HASHES[0][i]):
            assert (node.level, node.index) not in seen
            seen[(node.level, node.index)] = node.hash
    assert seen == {
        (level, index): hh for level, row in enumerate(NODE_HASHES) for index, hh in enumerate(row)
    }
    cr2 = CompactRange()
    upper = cr2.extend(NODE_HASHES[0], min_level=1)
    assert {(n.level, n.index): n.hash for n in upper} == {
        k: v for k, v in seen.items() if k[0] >= 1
    }


def test_compact_range_rejects_bad_state() -> None:
    with pytest.raises(InvalidInput):
        CompactRange(3, [SOME_HASH])
    with pytest.raises(InvalidInput):
        CompactRange(1, [b"short"])
    with pytest.raises(InvalidInput):
        CompactRange().append(b"short")


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_inclusion_vectors(index: int, size: int, proof: list[bytes], tree: MemoryTree) -> None:
    assert inclusion_proof(index, size, tree.get_hash) == proof
    lh = leaf_hash(LEAVES[index])
    assert root_from_inclusion_proof(lh, index, size, proof) == ROOTS[size]
    verify_inclusion(lh, index, size, proof, ROOTS[size])
    probes: list[tuple[str, bytes, int, int, list[bytes], bytes]] = [
        ("index-1", lh, index - 1, size, proof, ROOTS[size]),
        ("index+1", lh, index + 1, size, proof, ROOTS[size]),
        ("index^2", lh, index ^ 2, size, proof, ROOTS[size]),
        ("size*2", lh, index, size * 2, proof, ROOTS[size]),
        ("size//2", lh, index, size // 2, proof, ROOTS[size]),
        ("wrong leaf", b"WrongLeaf", index, size, proof, ROOTS[size]),
        ("empty root", lh, index, size, proof, EMPTY_ROOT),
        ("random root", lh, index, size, proof, SOME_HASH),
        ("trailing garbage", lh, index, size, [*proof, b""], ROOTS[size]),
        ("trailing root", lh, index, size, [*proof, ROOTS[size]], ROOTS[size]),
        ("preceding garbage", lh, index, size, [b"", *proof], ROOTS[size]),
        ("preceding root", lh, index, size, [ROOTS[size], *proof], ROOTS[size]),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 8]) + bad[i][1:]
        probes.append((f"bit flip {i}", lh, index, size, bad, ROOTS[size]))
    if proof:
        probes.append(("removed", lh, index, size, proof[:-1], ROOTS[size]))
    if len(proof) > 1:
        probes.append(("inserted", lh, index, size, [SOME_HASH, proof[0], *proof[1:]], ROOTS[size]))
    for desc, leaf, i2, s2, p2, r2 in probes:
        if (i2, s2) == (index, size) and p2 == proof and leaf == lh and r2 == ROOTS[size]:
            continue
        with pytest.raises(InclusionProofError):
            verify_inclusion(leaf, i2, s2, p2, r2)
            pytest.fail(f"accepted corrupted inclusion proof: {desc}")


@pytest.mark.parametrize(("first", "second", "proof"), CONSISTENCY)
def test_consistency_vectors(first: int, second: int, proof: list[bytes], tree: MemoryTree) -> None:
    assert consistency_proof(first, second, tree.get_hash) == proof
    r1, r2 = ROOTS[first], ROOTS[second]
    verify_consistency(first, second, r1, r2, proof)
    if not proof:
        return
    probes: list[tuple[str, int, int, bytes, bytes, list[bytes]]] = [
        ("first-1", first - 1, second, r1, r2, proof),
        ("first+1", first + 1, second, r1, r2, proof),
        ("first^2", first ^ 2, second, r1, r2, proof),
        ("second*2", first, second * 2, r1, r2, proof),
        ("second//2", first, second // 2, r1, r2, proof),
        ("wrong root1", first, second, b"WrongRoot", r2, proof),
        ("wrong root2", first, second, r1, b"WrongRoot", proof),
        ("swapped roots", first, second, r2, r1, proof),
        ("empty proof", first, second, r1, r2, []),
        ("trailing garbage", first, second, r1, r2, [*proof, b""]),
        ("trailing root1", first, second, r1, r2, [*proof, r1]),
        ("trailing root2", first, second, r1, r2, [*proof, r2]),
        ("preceding garbage", first, second, r1, r2, [b"", *proof]),
        ("preceding root1", first, second, r1, r2, [r1, *proof]),
        ("preceding root2", first, second, r1, r2, [r2, *proof]),
        ("preceding proof[0]", first, second, r1, r2, [proof[0], *proof]),
        ("truncated", first, second, r1, r2, proof[:-1]),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 16]) + bad[i][1:]
        probes.append((f"bit flip {i}", first, second, r1, r2, bad))
    for desc, f2, s2, a, b, p2 in probes:
        if f2 == 0 and not p2:
            continue  # size 0 is consistent with everything (transparency-dev semantics)
        with pytest.raises(ConsistencyProofError):
            verify_consistency(f2, s2, a, b, p2)
            pytest.fail(f"accepted corrupted consistency proof: {desc}")


def test_trivial_consistency() -> None:
    r1, r2 = b"don't care 1", b"don't care 2"
    verify_consistency(0, 0, r1, r1, [])
    verify_consistency(0, 1, r1, r2, [])
    verify_consistency(1, 1, r2, r2, [])
    for first, second, a, b, p in [
        (0, 0, r1, r2, []),
        (1, 1, r1, r2, []),
        (1, 0, r1, r2, []),
        (2, 1, r1, r2, []),
        (1, 2, r1, r2, []),
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
        (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
        (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
    ]:
        with pytest.raises(ConsistencyProofError):
            verify_consistency(first, second, a, b, p)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (0, 1), (1, 0), (2, 1)])
def test_inclusion_degenerate(index: int, size: int) -> None:
    with pytest.raises(InclusionProofError):
        verify_inclusion(SOME_HASH, index, size, [], b"")
    with pytest.raises(InclusionProofError):
        verify_inclusion(b"", index, size, [], EMPTY_ROOT)
    with pytest.raises(InclusionProofError):
        verify_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT)


def test_single_entry() -> None:
    lh = leaf_hash(b"data")
    verify_inclusion(lh, 0, 1, [], lh)
    for leaf, root in [(lh, b""), (b"", lh), (b"", b"")]:
        with pytest.raises(InclusionProofError):
            verify_inclusion(leaf, 0, 1, [], root)


def test_errors_are_verification_errors() -> None:
    assert issubclass(InclusionProofError, VerificationError)
    assert issubclass(ConsistencyProofError, VerificationError)


def test_generation_rejects_out_of_range(tree: MemoryTree) -> None:
    with pytest.raises(InvalidInput):
        inclusion_proof(8, 8, tree.get_hash)
    with pytest.raises(InvalidInput):
        inclusion_proof(-1, 8, tree.get_hash)
    with pytest.raises(InvalidInput):
        consistency_proof(5, 4, tree.get_hash)
    with pytest.raises(InvalidInput):
        tree.root(9)


def test_range_nodes() -> None:
    assert merkle.range_nodes(0, 0) == []
    assert merkle.range_nodes(0, 7) == [(2, 0), (1, 2), (0, 6)]
    assert merkle.range_nodes(3, 13) == [(0, 3), (2, 1), (2, 2), (0, 12)]
    with pytest.raises(InvalidInput):
        merkle.range_nodes(5, 4)
