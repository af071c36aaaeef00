"""Seeded per-class samplers: k-shot training subsets, selection subsets, stratified 80/20 splits.

Every sampler draws each class with its own random stream, seeded by ``(seed, class label)``, so a
class's draw depends only on the seed, its label and the positions of its own images: adding,
removing or reordering other classes changes nothing for it. Within a class the draw is a prefix of
one seeded permutation, so for one seed the 5-shot set is a subset of the 20-shot set, and
``selection_indices(labels, 50, s)`` contains ``shot_indices(labels, 20, s)``.

All functions return sorted int64 index arrays into ``labels``.
"""

from __future__ import annotations

import numpy as np

from core.keys import SHOTS_FULL, parse_shots

__all__ = ["selection_indices", "shot_indices", "stratified_split"]

# Stream tags keep the split, few-shot and selection draws of one seed independent of each other
# where they must be (the train/test split), and nested where that is useful (shots in selection).
_TAG_SHOTS = 0
_TAG_SPLIT = 0x5B11


def _check_labels(labels: np.ndarray) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"labels must be a 1-D array of class indices, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"labels must be integers (class indices), got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and arr.min() < 0:
        raise ValueError(f"labels must be non-negative class indices, got minimum {arr.min()}")
    return arr


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _class_permutation(members: np.ndarray, seed: int, label: int, tag: int) -> np.ndarray:
    """``members`` (indices of one class, ascending) in a seeded order that depends only on
    (seed, label, tag) and the number of members."""
    rng = np.random.default_rng([seed, label, tag])
    return members[rng.permutation(len(members))]


def _per_class(labels: np.ndarray) -> list[tuple[int, np.ndarray]]:
    order = np.argsort(labels, kind="stable")
    classes, starts = np.unique(labels[order], return_index=True)
    groups = np.split(order, starts[1:])
    return [(int(c), g) for c, g in zip(classes, groups)]


def shot_indices(labels: np.ndarray, shots: int | str | None, seed: int) -> np.ndarray:
    """Indices of a seeded k-shot subset of a training split.

    Args:
        labels: (N,) integer class index of each training image.
        shots: k images per class, or ``"full"`` / ``None`` for every image.
        seed: non-negative integer; the same (labels, shots, seed) always gives the same subset.

    Returns:
        (C*k,) sorted int64 indices into ``labels`` (all N indices for ``"full"``).

    Raises:
        ValueError: if a class present in ``labels`` has fewer than k images (the message names
            the class and its count), or for malformed ``shots``/``seed``/``labels``.
    """
    labels = _check_labels(labels)
    k = parse_shots(shots)
    seed = _check_seed(seed)
    if k == SHOTS_FULL:
        return np.arange(len(labels), dtype=np.int64)
    picked = []
    for label, members in _per_class(labels):
        if len(members) < k:
            raise ValueError(
                f"class {label} has only {len(members)} training images, fewer than shots={k}; "
                f"use shots <= {len(members)} or shots='full'"
            )
        picked.append(_class_permutation(members, seed, label, _TAG_SHOTS)[:k])
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def selection_indices(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of the images a selection method may see: at most ``per_class`` per class.

    Classes with fewer images contribute all of them. Drawn from the same per-class permutation as
    :func:`shot_indices`, so for one seed the selection subset contains the k-shot subset when
    ``per_class >= k``.

    Returns:
        (sum_c min(per_class, N_c),) sorted int64 indices into ``labels``.
    """
    labels = _check_labels(labels)
    seed = _check_seed(seed)
    if isinstance(per_class, bool) or not isinstance(per_class, int | np.integer) or per_class < 1:
        raise ValueError(f"per_class must be a positive integer, got {per_class!r}")
    picked = [
        _class_permutation(members, seed, label, _TAG_SHOTS)[:per_class]
        for label, members in _per_class(labels)
    ]
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def stratified_split(
    labels: np.ndarray, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded stratified train/test split (the paper's 80/20 split when no official one exists).

    Each class with N_c images puts ``floor(test_fraction * N_c + 0.5)`` of them in the test split,
    clipped to [1, N_c - 1] so that a class with at least 2 images appears in both splits (a class
    with 1 image goes to train).

    Returns:
        (train_indices, test_indices): sorted, disjoint int64 arrays whose union is ``arange(N)``.
    """
    labels = _check_labels(labels)
    seed = _check_seed(seed)
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    train, test = [], []
    for label, members in _per_class(labels):
        n = len(members)
        n_test = int(np.floor(test_fraction * n + 0.5))
        n_test = min(max(n_test, 1), n - 1) if n >= 2 else 0
        perm = _class_permutation(members, seed, label, _TAG_SPLIT)
        test.append(perm[:n_test])
        train.append(perm[n_test:])
    empty = np.zeros(0, dtype=np.int64)
    return (
        np.sort(np.concatenate(train)) if train else empty,
        np.sort(np.concatenate(test)) if test else empty,
    )
