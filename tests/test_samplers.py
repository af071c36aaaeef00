"""Seeded per-class samplers: exact counts, reproducibility, class-order independence, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo.samplers import selection_indices, shot_indices, stratified_split

# 4 classes with 30, 12, 7 and 25 images, interleaved so that class order != index order
COUNTS = {0: 30, 1: 12, 2: 7, 3: 25}


def _labels(seed: int = 0) -> np.ndarray:
    labels = np.concatenate([np.full(n, c) for c, n in COUNTS.items()])
    return np.random.default_rng(seed).permutation(labels).astype(np.int64)


def _per_class_counts(labels: np.ndarray, idx: np.ndarray) -> dict[int, int]:
    return {c: int(np.sum(labels[idx] == c)) for c in COUNTS}


@pytest.mark.parametrize("k", [1, 5, 7])
def test_shot_indices_takes_exactly_k_per_class(k):
    labels = _labels()
    idx = shot_indices(labels, k, seed=3)
    assert _per_class_counts(labels, idx) == {c: k for c in COUNTS}
    assert idx.dtype == np.int64
    assert np.all(np.diff(idx) > 0)  # sorted, no repeats


@pytest.mark.parametrize("shots", ["full", None])
def test_full_means_every_image(shots):
    labels = _labels()
    np.testing.assert_array_equal(shot_indices(labels, shots, seed=0), np.arange(len(labels)))


def test_numeric_string_shots_equal_int_shots():
    labels = _labels()
    np.testing.assert_array_equal(shot_indices(labels, "5", 1), shot_indices(labels, 5, 1))


def test_same_seed_same_subset_other_seed_other_subset():
    labels = _labels()
    a, b = shot_indices(labels, 5, seed=11), shot_indices(labels, 5, seed=11)
    np.testing.assert_array_equal(a, b)
    others = [shot_indices(labels, 5, seed=s) for s in range(12, 17)]
    assert all(not np.array_equal(a, o) for o in others)


def test_draw_of_a_class_ignores_other_classes_and_their_order():
    """Class c's draw depends only on the positions of class c (its k-th member is the same
    whatever the other classes are and wherever they appear)."""
    labels = _labels(seed=0)
    reordered = _labels(seed=1)  # same classes, different positions and class order
    dropped = np.where(labels == 1, 0, labels)  # class 1 merged away: classes 2, 3 untouched
    for c in (2, 3):
        ranks = []
        for lab in (labels, reordered, dropped):
            members = np.flatnonzero(lab == c)
            chosen = shot_indices(lab, 5, seed=4)
            ranks.append(np.searchsorted(members, chosen[lab[chosen] == c]))
        np.testing.assert_array_equal(ranks[0], ranks[1])
        np.testing.assert_array_equal(ranks[0], ranks[2])


def test_smaller_shots_are_nested_in_larger_ones_and_in_the_selection():
    labels = _labels()
    five, seven = shot_indices(labels, 5, 9), shot_indices(labels, 7, 9)
    assert set(five) <= set(seven)
    assert set(seven) <= set(selection_indices(labels, 10, 9))


def test_too_few_images_names_the_class_and_count():
    labels = _labels()
    with pytest.raises(ValueError, match=r"class 2 has only 7 training images.*shots=8"):
        shot_indices(labels, 8, seed=0)


@pytest.mark.parametrize("bad", [0, -3, "few", 2.5, True])
def test_bad_shots_are_rejected(bad):
    with pytest.raises(ValueError, match="invalid shots"):
        shot_indices(_labels(), bad, seed=0)


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.zeros((3, 2), dtype=np.int64), "1-D"),
        (np.array([0.0, 1.0]), "integers"),
        (np.array([0, -1]), "non-negative"),
    ],
)
def test_bad_labels_are_rejected(labels, match):
    with pytest.raises(ValueError, match=match):
        shot_indices(labels, 1, seed=0)


def test_bad_seed_is_rejected():
    with pytest.raises(ValueError, match="seed"):
        shot_indices(_labels(), 1, seed=-1)


@pytest.mark.parametrize("per_class", [1, 10, 50])
def test_selection_takes_at_most_per_class(per_class):
    labels = _labels()
    idx = selection_indices(labels, per_class, seed=2)
    assert _per_class_counts(labels, idx) == {c: min(per_class, n) for c, n in COUNTS.items()}
    np.testing.assert_array_equal(idx, selection_indices(labels, per_class, seed=2))


def test_selection_rejects_non_positive_cap():
    with pytest.raises(ValueError, match="per_class"):
        selection_indices(_labels(), 0, seed=0)


def test_stratified_split_sizes_match_the_rounding_rule():
    labels = _labels()
    train, test = stratified_split(labels, 0.2, seed=0)
    # hand-computed floor(0.2 * n + 0.5): 30 -> 6, 12 -> 2, 7 -> 1, 25 -> 5
    expected_test = {0: 6, 1: 2, 2: 1, 3: 5}
    assert _per_class_counts(labels, test) == expected_test
    assert _per_class_counts(labels, train) == {c: COUNTS[c] - expected_test[c] for c in COUNTS}
    assert not set(train) & set(test)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(len(labels)))


def test_stratified_split_is_seeded_and_keeps_tiny_classes_in_train():
    labels = np.array([0, 0, 1, 2, 2, 2], dtype=np.int64)
    train, test = stratified_split(labels, 0.2, seed=5)
    # class 0 (2 images) and class 2 (3 images): one test image each; class 1 (1 image): train only
    assert sorted(labels[test].tolist()) == [0, 2]
    assert 2 in train
    a = stratified_split(_labels(), 0.2, seed=1)
    b = stratified_split(_labels(), 0.2, seed=1)
    c = stratified_split(_labels(), 0.2, seed=2)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=6),
    k=st.integers(min_value=1, max_value=40),
    seed=st.integers(min_value=0, max_value=2**31),
)
def test_counts_for_random_class_sizes(counts, k, seed):
    labels = np.repeat(np.arange(len(counts)), counts)
    sel = selection_indices(labels, k, seed)
    np.testing.assert_array_equal(
        np.bincount(labels[sel], minlength=len(counts)), np.minimum(counts, k)
    )
    if min(counts) >= k:
        idx = shot_indices(labels, k, seed)
        np.testing.assert_array_equal(np.bincount(labels[idx]), np.full(len(counts), k))
    else:
        with pytest.raises(ValueError, match="fewer than shots"):
            shot_indices(labels, k, seed)
