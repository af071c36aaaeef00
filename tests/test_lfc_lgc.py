"""LFC / LGC: the closed form against the naive N x N Pearson correlation, invariances, memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import selection
from selection.linalg import gram_label_correlation


def naive_correlation(kernel: np.ndarray, labels: np.ndarray) -> float:
    """The paper's definition: Pearson correlation of the N^2 entries of K and Y = 2S - 1."""
    same = (labels[:, None] == labels[None, :]).astype(np.float64)
    return float(np.corrcoef(kernel.ravel(), (2 * same - 1).ravel())[0, 1])


def random_problem(n: int, d: int, classes: int, seed: int, offset: float = 0.0):
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % classes)
    # class-dependent means so that the correlation is far from 0
    features = rng.normal(size=(n, d)) + 0.8 * rng.normal(size=(classes, d))[labels] + offset
    return features, labels


SHAPES = [(30, 5, 3), (12, 40, 3), (50, 50, 4), (200, 16, 7), (7, 3, 2), (9, 300, 2)]


@pytest.mark.parametrize(("n", "d", "classes"), SHAPES)
def test_lfc_equals_naive_pearson(n, d, classes):
    features, labels = random_problem(n, d, classes, seed=n + d, offset=0.4)
    expected = naive_correlation(features @ features.T, labels)
    assert selection.score("lfc", features=features, labels=labels) == pytest.approx(
        expected, abs=1e-10
    )
    centred = features - features.mean(axis=0)
    expected_centred = naive_correlation(centred @ centred.T, labels)
    value = selection.score("lfc_centered", features=features, labels=labels)
    assert value == pytest.approx(expected_centred, abs=1e-10)
    # the two differ on these offset features, so each check above is specific
    assert abs(expected - expected_centred) > 1e-4


@pytest.mark.parametrize(("n", "p", "classes"), SHAPES)
def test_lgc_equals_naive_pearson_of_summed_head_kernels(n, p, classes):
    rng = np.random.default_rng(n * p)
    labels = rng.permutation(np.arange(n) % classes)
    heads = [
        rng.normal(size=(n, p)) + 0.5 * rng.normal(size=(classes, p))[labels] for _ in range(3)
    ]
    kernel = sum(g @ g.T for g in heads)  # K = sum_r G_r G_r^T
    grads = np.concatenate(heads, axis=1)
    value = selection.score("lgc", grads=grads, labels=labels)
    assert value == pytest.approx(naive_correlation(kernel, labels), abs=1e-10)


def test_closed_form_keeps_precision_under_a_large_offset():
    # sum K^2 - (sum K)^2 / M cancels almost completely here; the centred expansion does not
    features, labels = random_problem(40, 6, 3, seed=1, offset=300.0)
    expected = naive_correlation(features @ features.T, labels)
    assert gram_label_correlation(features, labels) == pytest.approx(expected, abs=1e-10)


def test_lfc_invariant_to_scale_and_sample_order():
    features, labels = random_problem(60, 12, 4, seed=3, offset=1.0)
    base = selection.score("lfc", features=features, labels=labels)
    assert selection.score("lfc", features=features * 37.5, labels=labels) == pytest.approx(
        base, abs=1e-12
    )
    order = np.random.default_rng(0).permutation(60)
    assert selection.score("lfc", features=features[order], labels=labels[order]) == pytest.approx(
        base, abs=1e-12
    )
    # relabelling the classes changes nothing either
    assert selection.score("lfc", features=features, labels=labels + 10) == pytest.approx(
        base, abs=1e-12
    )


def test_centred_lfc_ignores_an_offset_plain_lfc_does_not():
    features, labels = random_problem(50, 8, 3, seed=4)
    shifted = features + 5.0
    centred = selection.score("lfc_centered", features=features, labels=labels)
    assert selection.score("lfc_centered", features=shifted, labels=labels) == pytest.approx(
        centred, abs=1e-10
    )
    plain, plain_shifted = (
        selection.score("lfc", features=f, labels=labels) for f in (features, shifted)
    )
    assert abs(plain - plain_shifted) > 1e-3


def test_one_hot_features_give_correlation_one():
    labels = np.repeat(np.arange(3), 10)
    # K = S exactly: correlation 1, and Y = 2S - 1 changes nothing
    assert selection.score("lfc", features=np.eye(3)[labels], labels=labels) == pytest.approx(
        1.0, abs=1e-12
    )
    # +1 / -1 features for two classes: K = Y exactly
    two = np.array([0, 0, 0, 1, 1])
    signs = np.where(two == 0, 1.0, -1.0)[:, None]
    assert selection.score("lfc", features=signs, labels=two) == pytest.approx(1.0, abs=1e-12)


def test_constant_kernel_scores_zero():
    labels = np.array([0, 0, 1, 1])
    assert selection.score("lfc", features=np.zeros((4, 3)), labels=labels) == 0.0
    assert selection.score("lfc_centered", features=np.ones((4, 3)), labels=labels) == 0.0


def test_no_n_by_n_matrix_is_built():
    n, d = 20_000, 8  # an N x N float64 matrix would be 3.2 GB
    features, labels = random_problem(n, d, 10, seed=5, offset=0.3)
    tracemalloc.start()
    try:
        for center in (False, True):
            gram_label_correlation(features, labels, center=center)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 40 * 2**20, f"peak {peak / 2**20:.1f} MiB"


@pytest.mark.parametrize(
    ("features", "labels", "match"),
    [
        (np.ones((4, 2)), np.zeros(4, dtype=int), "single class"),
        (np.array([[0.0, np.nan], [1, 1], [2, 2]]), np.array([0, 1, 1]), "NaN"),
        (np.ones((4, 2)), np.array([0, 1, 1]), "disagree"),
        (np.ones(4), np.array([0, 0, 1, 1]), "2-D"),
    ],
)
def test_bad_input_is_rejected(features, labels, match):
    with pytest.raises(ValueError, match=match):
        selection.score("lfc", features=features, labels=labels)
