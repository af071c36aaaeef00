"""Feature Metrics (Ueno & Kondo 2020, as the seed paper's appendix C uses it) and two variants.

Ueno & Kondo, "A base model selection methodology for efficient fine-tuning", 2020. The seed paper
scores a pre-trained model by "the optimal linear combination of the two sparsity metrics" of its
target features, on the hypothesis that a model producing *sparser* representations transfers
better. Neither the two statistics' exact definitions nor the fitted coefficients survive in the
sources the project has, so ``feature_metrics`` fixes them as follows, exactly:

* inactive fraction s0 = mean over all N x D entries of 1[|F_ij| <= rel_tol * max_ij |F_ij|]
  (rel_tol = 1e-3): the share of units that are off (zero after a ReLU); relative to the largest
  activation so that it does not depend on the feature scale. All-zero features give 1.
* Hoyer sparsity s1 = mean_i (sqrt(D) - ||f_i||_1 / ||f_i||_2) / (sqrt(D) - 1) (Hoyer 2004,
  "Non-negative matrix factorization with sparseness constraints", JMLR): 0 when all units of a
  row are equal in magnitude, 1 when one unit carries the row. An all-zero row counts 1, and with
  D = 1 every row counts 1 (one unit is as concentrated as a row can be).
* ``feature_metrics`` = (s0 + s1) / 2, higher = sparser = better. Both statistics already lie in
  [0, 1] with the same orientation, so an equal-weight mean stands in for the lost coefficients
  without fitting anything (a per-target standardisation would need the other entries' features,
  which a score does not see).

The project's variants keep their own names and are not the paper's baseline:

* ``feature_density`` = 1 - s0, the fraction of active units: it rewards *dense* features, the
  opposite of the paper's hypothesis.
* ``feature_variance_ratio`` = tr(S_B) / tr(S_T), the between-class share of the feature
  variance (label-aware, unlike the paper's sparsity statistics).
"""

from __future__ import annotations

import numpy as np

from selection.linalg import class_sums
from selection.registry import register_method


def inactive_fraction(features: np.ndarray, rel_tol: float = 1e-3) -> float:
    """s0 = mean_ij 1[|F_ij| <= rel_tol * max|F|] of features (N, D); in [0, 1]."""
    if not 0 <= rel_tol < 1:
        raise ValueError(f"feature sparsity rel_tol must be in [0, 1); got {rel_tol}")
    magnitude = np.abs(features)
    return float(np.mean(magnitude <= rel_tol * magnitude.max()))


def hoyer_sparsity(features: np.ndarray) -> float:
    """s1 = mean_i (sqrt(D) - ||f_i||_1 / ||f_i||_2) / (sqrt(D) - 1) of features (N, D); in [0, 1]."""
    n, d = features.shape
    if d == 1:
        return 1.0
    l1 = np.abs(features).sum(axis=1)
    l2 = np.linalg.norm(features, axis=1)
    ratio = np.divide(l1, l2, out=np.ones(n), where=l2 > 0)  # an all-zero row counts as sparse
    per_row = (np.sqrt(d) - ratio) / (np.sqrt(d) - 1.0)
    return float(np.mean(np.clip(per_row, 0.0, 1.0)))  # clip: rounding at the extremes


def _variance_ratio(features: np.ndarray, labels: np.ndarray) -> float:
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    centred = features - features.mean(axis=0)
    sums = class_sums(centred, inverse, len(counts))
    # tr(S_B) = sum_c n_c ||mu_c - mu||^2 / N with mu_c - mu = class_sum_c / n_c
    between = float(np.sum(sums**2 / counts[:, None])) / len(labels)
    total = float(np.sum(centred**2)) / len(labels)
    if total <= 0.0:
        return 0.0
    return min(between / total, 1.0)  # rounding can push a perfect separation a hair above 1


@register_method("feature_metrics", needs=("features",))
def feature_metrics(features: np.ndarray, rel_tol: float = 1e-3) -> float:
    """Feature Metrics = (s0 + s1) / 2, the mean of two sparsity statistics of features (N, D).

    s0 the inactive fraction (units with |F_ij| <= rel_tol max|F|), s1 Hoyer's sparsity per row;
    see the module docstring for the exact definitions and why an equal-weight mean. In [0, 1];
    higher = sparser target features = better, the seed paper's hypothesis (appendix C).

    Regime: well posed at every N, D and class count: both statistics are means over the N x D
    entries or the N rows, with no fitted parameter, so they neither saturate nor grow with D
    (dense Gaussian noise has s0 = 0 and s1 = 1 - sqrt(2/pi) ~ 0.2 at any D). No remedy.
    """
    return 0.5 * (inactive_fraction(features, rel_tol) + hoyer_sparsity(features))


@register_method("feature_density", needs=("features",))
def feature_density(features: np.ndarray, rel_tol: float = 1e-3) -> float:
    """1 - s0: the fraction of active units, mean_ij 1[|F_ij| > rel_tol * max|F|]; in [0, 1].

    Not the paper's Feature Metrics: it rewards dense activations, the opposite of the seed paper's
    hypothesis (``feature_metrics`` is that). Features (N, D).

    Regime: well posed at every N and D (a mean over entries, nothing fitted). It is label-free
    and maximal for dense noise, so it cannot tell information from noise at any N. No remedy.
    """
    return 1.0 - inactive_fraction(features, rel_tol)


@register_method("feature_variance_ratio", needs=("features", "labels"))
def feature_variance_ratio(features: np.ndarray, labels: np.ndarray) -> float:
    """Between-class share of the feature variance, tr(S_B) / tr(S_T) in [0, 1]; features (N, D).

    S_T = (1/N) sum_i (f_i - mu)(f_i - mu)^T, S_B = sum_c (n_c/N)(mu_c - mu)(mu_c - mu)^T.
    Not the paper's Feature Metrics (those are label-free sparsity statistics).

    Regime: well posed at every N and D: only traces enter, sums over dimensions of per-dimension
    variances, so no matrix is inverted. With no class signal its expectation is (C - 1) / (N - 1)
    whatever D (each dimension's between share), so a wide noise entry gains nothing. No remedy.
    """
    return _variance_ratio(features, labels)
