"""Feature Metrics (after Ueno & Kondo 2020): sparsity and class-variance statistics of features.

Ueno & Kondo (2020) predict how well a pre-trained network transfers from sparsity and variance
statistics of its features on the target data. Their exact statistics and combination coefficients
are not public, so this module fixes its own, exactly:

* sparsity = the fraction of near-zero activations, mean over all N x D entries of
  1[|F_ij| <= rel_tol * max_ij |F_ij|] (rel_tol = 1e-3). Relative to the largest activation so that
  it does not depend on the feature scale; all-zero features have sparsity 1. Registered as
  ``feature_density`` = 1 - sparsity, so that higher is better like every other score.
* ``feature_variance_ratio`` = the share of the feature variance that lies between classes,
  eta^2 = tr(S_B) / tr(S_T), with S_T = (1/N) sum_i (f_i - mu)(f_i - mu)^T and
  S_B = sum_c (n_c / N)(mu_c - mu)(mu_c - mu)^T. Since tr(S_T) = tr(S_B) + tr(S_W), eta^2 =
  r / (1 + r) for the between/within ratio r = tr(S_B) / tr(S_W): the same ranking, but bounded in
  [0, 1] and finite when the classes have no spread. Constant features give 0.
* ``feature_metrics`` = eta^2 * (1 - sparsity): class-separating variance, discounted by the share
  of inactive units (they carry nothing a new head could use). In [0, 1], higher is better.
"""

from __future__ import annotations

import numpy as np

from selection.checks import class_sums
from selection.registry import register_method


def _sparsity(features: np.ndarray, rel_tol: float) -> float:
    if not 0 <= rel_tol < 1:
        raise ValueError(f"feature sparsity rel_tol must be in [0, 1); got {rel_tol}")
    magnitude = np.abs(features)
    return float(np.mean(magnitude <= rel_tol * magnitude.max()))


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


@register_method("feature_density", needs=("features",))
def feature_density(features: np.ndarray, rel_tol: float = 1e-3) -> float:
    """1 - sparsity: the fraction of active units, mean_ij 1[|F_ij| > rel_tol * max|F|]; in [0, 1].

    The sparsity component of ``feature_metrics`` on its own, oriented like every score (higher =
    better under that score's assumption that inactive units are useless). Features (N, D).
    """
    return 1.0 - _sparsity(features, rel_tol)


@register_method("feature_variance_ratio", needs=("features", "labels"))
def feature_variance_ratio(features: np.ndarray, labels: np.ndarray) -> float:
    """Between-class share of the feature variance, tr(S_B) / tr(S_T) in [0, 1]; features (N, D)."""
    return _variance_ratio(features, labels)


@register_method("feature_metrics", needs=("features", "labels"))
def feature_metrics(features: np.ndarray, labels: np.ndarray, rel_tol: float = 1e-3) -> float:
    """tr(S_B) / tr(S_T) * (1 - sparsity) of the target features (N, D); in [0, 1].

    See the module docstring for the exact statistics.
    """
    return _variance_ratio(features, labels) * (1.0 - _sparsity(features, rel_tol))
