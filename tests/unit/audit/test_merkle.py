"""RFC 9162 Merkle tree hashing and proofs, checked against the RFC's recursive definitions."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest

from vault.audit import merkle

MAX_SIZE = 64


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def naive_mth(leaves: Sequence[bytes]) -> bytes:
    """MTH straight from RFC 9162 §2.1.1, over leaf hashes."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = _split(n)
    return hashlib.sha256(b"\x01" + naive_mth(leaves[:k]) + naive_mth(leaves[k:])).digest()


def naive_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) straight from RFC 9162 §2.1.3.1."""
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*naive_path(m, leaves[:k]), naive_mth(leaves[k:])]
    return [*naive_path(m - k, leaves[k:]), naive_mth(leaves[:k])]


def naive_subproof(m: int, leaves: Sequence[bytes], whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) straight from RFC 9162 §2.1.4.1."""
    n = len(leaves)
    if m == n:
        return [] if whole else [naive_mth(leaves)]
    k = _split(n)
    if m <= k:
        return [*naive_subproof(m, leaves[:k], whole), naive_mth(leaves[k:])]
    return [*naive_subproof(m - k, leaves[k:], False), naive_mth(leaves[:k])]


def flipped(value: bytes, position: int = 0) -> bytes:
    changed = bytearray(value)
    changed[position] ^= 0x01
    return bytes(changed)


# One leaf more than the largest tree, so every tree has a successor to confuse it with.
LEAVES = [merkle.leaf_hash(f"entry {i}".encode()) for i in range(MAX_SIZE + 1)]
ROOTS = {n: naive_mth(LEAVES[:n]) for n in range(MAX_SIZE + 2)}
SIZES = range(1, MAX_SIZE + 1)

# The eight entries and tree heads used across Certificate Transparency implementations' test suites.
CT_ENTRIES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    bytes(range(0x60, 0x70)),
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


class TestHashing:
    def test_leaf_and_node_hashes_are_domain_separated(self) -> None:
        assert merkle.leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
        assert merkle.node_hash(b"L", b"R") == hashlib.sha256(b"\x01LR").digest()
        assert merkle.leaf_hash(b"LR") != merkle.node_hash(b"L", b"R")

    def test_empty_tree_root_is_hash_of_empty_string(self) -> None:
        assert merkle.root([]) == merkle.EMPTY_ROOT
        assert merkle.EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    def test_single_empty_leaf_root(self) -> None:
        assert merkle.root([merkle.leaf_hash(b"")]) == hashlib.sha256(b"\x00").digest()
        assert merkle.root([merkle.leaf_hash(b"")]).hex() == CT_ROOTS[0]

    @pytest.mark.parametrize("size", range(1, len(CT_ENTRIES) + 1))
    def test_known_tree_heads(self, size: int) -> None:
        leaves = [merkle.leaf_hash(entry) for entry in CT_ENTRIES[:size]]
        assert merkle.root(leaves).hex() == CT_ROOTS[size - 1]

    @pytest.mark.parametrize("size", range(MAX_SIZE + 1))
    def test_root_matches_recursive_definition(self, size: int) -> None:
        assert merkle.root(LEAVES[:size]) == ROOTS[size]

    @pytest.mark.parametrize("size", [127, 128, 129, 1000, 1023, 1024, 1025, 100_000])
    def test_root_of_large_trees_matches_recursive_definition(self, size: int) -> None:
        leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
        assert merkle.root(leaves) == naive_mth(leaves)

    def test_root_accepts_any_sequence(self) -> None:
        assert merkle.root(tuple(LEAVES[:5])) == ROOTS[5]


class TestInclusion:
    @pytest.mark.parametrize("size", SIZES)
    def test_every_proof_matches_the_rfc_path(self, size: int) -> None:
        leaves = LEAVES[:size]
        for index in range(size):
            assert merkle.inclusion_proof(leaves, index) == naive_path(index, leaves)

    @pytest.mark.parametrize("size", SIZES)
    def test_every_proof_verifies(self, size: int) -> None:
        leaves = LEAVES[:size]
        for index in range(size):
            proof = merkle.inclusion_proof(leaves, index)
            assert merkle.verify_inclusion(leaves[index], index, size, proof, ROOTS[size])

    @pytest.mark.parametrize("size", SIZES)
    def test_every_wrong_index_fails(self, size: int) -> None:
        leaves = LEAVES[:size]
        for index in range(size):
            proof = merkle.inclusion_proof(leaves, index)
            for other in [*range(-1, size + 2)]:
                if other != index:
                    assert not merkle.verify_inclusion(leaves[index], other, size, proof, ROOTS[size])

    @pytest.mark.parametrize("size", SIZES)
    def test_wrong_leaf_fails(self, size: int) -> None:
        leaves = LEAVES[:size]
        for index in range(size):
            proof = merkle.inclusion_proof(leaves, index)
            wrong = [flipped(leaves[index]), LEAVES[(index + 1) % MAX_SIZE], merkle.leaf_hash(b"other")]
            for leaf in wrong:
                assert not merkle.verify_inclusion(leaf, index, size, proof, ROOTS[size])

    @pytest.mark.parametrize("size", SIZES)
    def test_wrong_root_or_tree_size_fails(self, size: int) -> None:
        leaves = LEAVES[:size]
        for index in range(size):
            proof = merkle.inclusion_proof(leaves, index)
            assert not merkle.verify_inclusion(leaves[index], index, size, proof, flipped(ROOTS[size]))
            assert not merkle.verify_inclusion(leaves[index], index, size, proof, ROOTS[size + 1])
            # The size is bound by the signed tree head, not the proof: another size's head must not match.
            for other_size in range(index + 1, MAX_SIZE + 2):
                if other_size != size:
                    assert not merkle.verify_inclusion(leaves[index], index, other_size, proof, ROOTS[other_size])

    @pytest.mark.parametrize("size", SIZES)
    def test_truncated_or_extended_proof_fails(self, size: int) -> None:
        leaves = LEAVES[:size]
        for index in range(size):
            proof = merkle.inclusion_proof(leaves, index)
            for cut in range(len(proof)):
                assert not merkle.verify_inclusion(leaves[index], index, size, proof[:cut], ROOTS[size])
                assert not merkle.verify_inclusion(leaves[index], index, size, proof[cut + 1 :], ROOTS[size])
            for extra in (leaves[0], ROOTS[size], bytes(32)):
                assert not merkle.verify_inclusion(leaves[index], index, size, [*proof, extra], ROOTS[size])
                assert not merkle.verify_inclusion(leaves[index], index, size, [extra, *proof], ROOTS[size])

    @pytest.mark.parametrize("size", SIZES)
    def test_flipped_byte_in_any_element_fails(self, size: int) -> None:
        leaves = LEAVES[:size]
        for index in range(size):
            proof = merkle.inclusion_proof(leaves, index)
            for i in range(len(proof)):
                for position in (0, 17, 31):
                    tampered = [*proof[:i], flipped(proof[i], position), *proof[i + 1 :]]
                    assert not merkle.verify_inclusion(leaves[index], index, size, tampered, ROOTS[size])

    @pytest.mark.parametrize("size", [3, 5, 8, 13])
    def test_reordered_proof_fails(self, size: int) -> None:
        proof = merkle.inclusion_proof(LEAVES[:size], 0)
        assert not merkle.verify_inclusion(LEAVES[0], 0, size, proof[::-1], ROOTS[size])

    def test_single_leaf_tree_has_empty_proof(self) -> None:
        assert merkle.inclusion_proof(LEAVES[:1], 0) == []
        assert merkle.verify_inclusion(LEAVES[0], 0, 1, [], ROOTS[1])

    def test_nothing_is_in_the_empty_tree(self) -> None:
        assert not merkle.verify_inclusion(LEAVES[0], 0, 0, [], merkle.EMPTY_ROOT)

    @pytest.mark.parametrize("size", [1000, 1025])
    def test_large_tree_proofs_verify(self, size: int) -> None:
        leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
        tree_root = merkle.root(leaves)
        for index in (0, 1, size // 2, size - 2, size - 1):
            proof = merkle.inclusion_proof(leaves, index)
            assert merkle.verify_inclusion(leaves[index], index, size, proof, tree_root)

    @pytest.mark.parametrize("index", [-1, 5, 6])
    def test_proof_for_index_outside_tree_is_refused(self, index: int) -> None:
        with pytest.raises(ValueError, match="outside a tree of size 5"):
            merkle.inclusion_proof(LEAVES[:5], index)


class TestConsistency:
    @pytest.mark.parametrize("n", SIZES)
    def test_every_proof_matches_the_rfc_proof(self, n: int) -> None:
        leaves = LEAVES[:n]
        for m in range(1, n + 1):
            assert merkle.consistency_proof(leaves, m) == naive_subproof(m, leaves, True)

    @pytest.mark.parametrize("n", SIZES)
    def test_every_proof_verifies(self, n: int) -> None:
        for m in range(1, n + 1):
            proof = merkle.consistency_proof(LEAVES[:n], m)
            assert merkle.verify_consistency(m, n, ROOTS[m], ROOTS[n], proof)

    @pytest.mark.parametrize("n", SIZES)
    def test_changed_root_fails(self, n: int) -> None:
        for m in range(1, n + 1):
            proof = merkle.consistency_proof(LEAVES[:n], m)
            assert not merkle.verify_consistency(m, n, flipped(ROOTS[m]), ROOTS[n], proof)
            assert not merkle.verify_consistency(m, n, ROOTS[m], flipped(ROOTS[n]), proof)
            if m != n:
                assert not merkle.verify_consistency(m, n, ROOTS[n], ROOTS[m], proof)

    @pytest.mark.parametrize("n", SIZES)
    def test_changed_element_fails(self, n: int) -> None:
        for m in range(1, n + 1):
            proof = merkle.consistency_proof(LEAVES[:n], m)
            for i in range(len(proof)):
                for position in (0, 31):
                    tampered = [*proof[:i], flipped(proof[i], position), *proof[i + 1 :]]
                    assert not merkle.verify_consistency(m, n, ROOTS[m], ROOTS[n], tampered)

    @pytest.mark.parametrize("n", SIZES)
    def test_truncated_or_extended_proof_fails(self, n: int) -> None:
        for m in range(1, n + 1):
            proof = merkle.consistency_proof(LEAVES[:n], m)
            for cut in range(len(proof)):
                assert not merkle.verify_consistency(m, n, ROOTS[m], ROOTS[n], proof[:cut])
                assert not merkle.verify_consistency(m, n, ROOTS[m], ROOTS[n], proof[cut + 1 :])
            for extra in (LEAVES[0], ROOTS[m], bytes(32)):
                assert not merkle.verify_consistency(m, n, ROOTS[m], ROOTS[n], [*proof, extra])
                assert not merkle.verify_consistency(m, n, ROOTS[m], ROOTS[n], [extra, *proof])

    @pytest.mark.parametrize("n", SIZES)
    def test_wrong_sizes_fail(self, n: int) -> None:
        for m in range(1, n + 1):
            proof = merkle.consistency_proof(LEAVES[:n], m)
            for other_m in (m - 1, m + 1):
                if 1 <= other_m <= n:
                    assert not merkle.verify_consistency(other_m, n, ROOTS[other_m], ROOTS[n], proof)
            assert not merkle.verify_consistency(m, n + 1, ROOTS[m], ROOTS[n + 1], proof)

    def test_divergent_histories_are_not_consistent(self) -> None:
        forked = [*LEAVES[:5], merkle.leaf_hash(b"rewritten"), *LEAVES[6:12]]
        forked_root = merkle.root(forked)
        for m in range(6, 12):
            proof = merkle.consistency_proof(forked, m)
            assert merkle.verify_consistency(m, 12, merkle.root(forked[:m]), forked_root, proof)
            assert not merkle.verify_consistency(m, 12, ROOTS[m], forked_root, proof)

    def test_equal_sizes_need_an_empty_proof_and_equal_roots(self) -> None:
        assert merkle.consistency_proof(LEAVES[:7], 7) == []
        assert merkle.verify_consistency(7, 7, ROOTS[7], ROOTS[7], [])
        assert not merkle.verify_consistency(7, 7, ROOTS[7], flipped(ROOTS[7]), [])
        assert not merkle.verify_consistency(7, 7, ROOTS[7], ROOTS[7], [ROOTS[7]])

    def test_power_of_two_old_size_omits_the_old_root(self) -> None:
        for m in (1, 2, 4, 8, 16, 32):
            proof = merkle.consistency_proof(LEAVES[:MAX_SIZE], m)
            assert ROOTS[m] not in proof
            assert merkle.verify_consistency(m, MAX_SIZE, ROOTS[m], ROOTS[MAX_SIZE], proof)

    def test_empty_tree_is_a_prefix_of_every_tree(self) -> None:
        assert merkle.consistency_proof(LEAVES[:9], 0) == []
        assert merkle.verify_consistency(0, 9, merkle.EMPTY_ROOT, ROOTS[9], [])
        assert merkle.verify_consistency(0, 0, merkle.EMPTY_ROOT, merkle.EMPTY_ROOT, [])
        assert not merkle.verify_consistency(0, 9, ROOTS[1], ROOTS[9], [])
        assert not merkle.verify_consistency(0, 9, merkle.EMPTY_ROOT, ROOTS[9], [ROOTS[9]])

    def test_shrinking_or_negative_sizes_fail(self) -> None:
        assert not merkle.verify_consistency(9, 8, ROOTS[9], ROOTS[8], [ROOTS[9]])
        assert not merkle.verify_consistency(-1, 8, ROOTS[1], ROOTS[8], [ROOTS[1]])

    @pytest.mark.parametrize("old_size", [-1, 6])
    def test_proof_for_old_size_outside_tree_is_refused(self, old_size: int) -> None:
        with pytest.raises(ValueError, match=r"outside 0\.\.5"):
            merkle.consistency_proof(LEAVES[:5], old_size)

    def test_large_tree_proofs_verify(self) -> None:
        leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(3000)]
        new_root = merkle.root(leaves)
        for m in (1, 511, 1024, 1025, 2047, 2999):
            proof = merkle.consistency_proof(leaves, m)
            assert merkle.verify_consistency(m, 3000, merkle.root(leaves[:m]), new_root, proof)
