"""NCTI, the distance of a model's target features from neural collapse (Wang et al. 2023).

Wang, Zhou, Zeng, Yang, Zhang. "How Far Pre-trained Models Are from Neural Collapse on the Target
Dataset Informs their Transferability." ICCV 2023. Follows the reference code (BUserName/NCTI,
``metrics.py: NCTI_Score`` for the three parts, ``evaluate_metric_group1_cpu.py`` for their
normalisation over the models), with the deviations listed in :func:`ncti`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.linalg
from scipy.special import softmax

from selection.checks import max_dim_per_sample
from selection.linalg import class_sums
from selection.registry import register_method


@dataclass(frozen=True)
class NCTIParts:
    """The three per-model parts of NCTI (each is normalised over the zoo before summing).

    separation: ||T - mean(T)||_* of the LDA-projected features T (N, C-1): class separation;
    ncc: mean probability of the true class under the LDA classifier (nearest-centre accuracy);
    collapse: log sum_c ||P_c||_*, P_c (n_c, C) the LDA probabilities of class c's samples:
        within-class variability (lower = closer to collapse).
    """

    separation: float
    ncc: float
    collapse: float


def pca_scores(features: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores (N, k) on the k <= n_components leading principal components, and their variances.

    Variances are s_j^2 / (N - 1) (scikit-learn's ``explained_variance_``). Components with no
    variance (beyond the rank of the centred data, <= 1e-12 of the largest) are dropped: the
    reference's sklearn PCA keeps them as zero columns, where the shrunk LDA below would divide
    0 by 0 up to rounding.
    """
    n = features.shape[0]
    centred = features - features.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    variance = s**2 / max(n - 1, 1)
    keep = int(np.sum(variance > 1e-12 * (variance[0] if variance.size else 0.0)))
    k = min(n_components, keep)
    return u[:, :k] * s[:k], variance[:k]


def shrunk_lda(
    z: np.ndarray, inverse: np.ndarray, counts: np.ndarray, shrinkage: float
) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's ``LinearDiscriminantAnalysis(solver="eigen", shrinkage=s)`` fitted on z (N, k).

    With biased covariances and A~ = (1 - s) A + s tr(A)/k I: S_w = sum_c pi_c Cov_c~ (= (sum_c
    pi_c Cov_c)~), S_t = Cov(z)~, S_b = S_t - S_w; V the generalised eigenvectors of (S_b, S_w)
    (V^T S_w V = I), largest eigenvalue first. Returns the projection z V[:, :C-1] (N, C-1) and
    the class probabilities (N, C), the softmax of the logits of the classifier
    logit_c(x) = x^T S_w^-1 mu_c - 1/2 mu_c^T S_w^-1 mu_c + log pi_c.
    """
    n, k = z.shape
    c = len(counts)
    means = class_sums(z, inverse, c) / counts[:, None]
    priors = counts / n
    residual = z - means[inverse]
    within = residual.T @ residual / n
    centred = z - z.mean(axis=0)
    total = centred.T @ centred / n

    def shrink(cov: np.ndarray) -> np.ndarray:
        out = (1.0 - shrinkage) * cov
        out.flat[:: k + 1] += shrinkage * np.trace(cov) / k
        return out

    within, total = shrink(within), shrink(total)
    # classes without spread in every direction leave S_w singular: a floor keeps it definite
    floor = 1e-12 * max(float(np.trace(total)) / k, 1e-300)
    within.flat[:: k + 1] += floor
    values, vectors = scipy.linalg.eigh(total - within, within)
    vectors = vectors[:, np.argsort(values)[::-1]]
    projected = z @ vectors[:, : min(c - 1, k)]
    coef = means @ vectors @ vectors.T
    intercept = -0.5 * np.sum(means * coef, axis=1) + np.log(priors)
    return projected, softmax(z @ coef.T + intercept, axis=1)


def ncti_parts(
    features: np.ndarray, labels: np.ndarray, n_components: int = 64, top: int = 32
) -> NCTIParts:
    """The three parts of one model's NCTI (reference ``NCTI_Score``), features (N, D).

    1. PCA to ``n_components`` dimensions; shrinkage s = max(exp(-sum of the ``top`` largest PCA
       variances), 1e-10).
    2. The shrunk LDA of :func:`shrunk_lda` on the PCA scores: projection T (N, C-1) and class
       probabilities P (N, C).
    3. separation = ||T - mean_i T_i||_*; ncc = (1/N) sum_i P[i, y_i];
       collapse = log sum_c ||P[y = c]||_* (nuclear norms: sums of singular values).
    """
    if n_components < 1 or top < 1:
        raise ValueError(f"ncti needs n_components >= 1 and top >= 1; got {n_components}, {top}")
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    z, variance = pca_scores(features, n_components)
    if z.shape[1] == 0:  # constant features: no direction separates anything
        projected = np.zeros((len(labels), len(counts) - 1))
        probs = np.tile(counts / len(labels), (len(labels), 1))
    else:
        shrinkage = max(float(np.exp(-np.sum(variance[:top]))), 1e-10)
        projected, probs = shrunk_lda(z, inverse, counts, shrinkage)
    projected = projected - projected.mean(axis=0)
    separation = float(np.linalg.svd(projected, compute_uv=False).sum())
    ncc = float(np.mean(probs[np.arange(len(labels)), inverse]))
    order = np.argsort(inverse, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(counts)))
    nuclear = sum(
        float(np.linalg.svd(probs[order[a:b]], compute_uv=False).sum())
        for a, b in zip(bounds[:-1], bounds[1:])
    )
    return NCTIParts(separation, ncc, float(np.log(nuclear)))


def min_max(values: np.ndarray) -> np.ndarray:
    """(v - min) / (max - min) over the zoo; all zeros when every entry has the same value."""
    spread = float(values.max() - values.min())
    if spread == 0.0:
        return np.zeros_like(values)
    return (values - values.min()) / spread


@register_method("ncti", needs=("features", "labels"), level="zoo", max_dim=max_dim_per_sample(4))
def ncti(
    entries: Mapping[str, Mapping[str, np.ndarray]], n_components: int = 64, top: int = 32
) -> dict[str, float]:
    """NCTI_m = sep~_m + ncc~_m - col~_m, each part min-max normalised over the zoo's models.

    ``entries``: {entry: {"features": (N, D), "labels": (N,)}} for every model ranked together;
    the parts (:func:`ncti_parts`) measure how far model m's target features are from neural
    collapse: class separation (nuclear norm of the LDA projection, higher = better), the
    nearest-centre fit (mean LDA probability of the true class, higher = better) and within-class
    variability (log of the summed per-class nuclear norms of the probabilities, lower = better).
    x~_m = (x_m - min_k x_k) / (max_k x_k - min_k x_k) over the entries k, as the reference
    evaluation script combines them.

    Zoo-level: the value of one entry depends on the others (the normalisation), so the score is
    computed once per cell over every entry (``selection.score_zoo``); a part equal for all
    entries (e.g. a zoo of one) contributes 0.

    Deviations from the reference code: the LDA is always the shrunk eigen solver (the reference
    switches to scikit-learn's unshrunk SVD solver when the shrinkage hits its 1e-10 floor; both
    whiten the within-class scatter, so the parts agree up to a common scale that the min-max
    normalisation removes); PCA components with no variance are dropped (see :func:`pca_scores`);
    S_w gets a 1e-12 relative floor so that classes without spread keep it definite.

    Regime: the three parts are in-sample statistics of a C x k linear classifier on k <= 64
    PCA dimensions; like SFDA's Fisher classifier it interpolates once k approaches N - C (every
    probability -> 1, the collapse part -> its minimum), so the registry first reduces the
    features of each entry by PCA to N // 4 dimensions when D > N / 4 (``score_detail``-style
    remedy per entry). The paper scores whole training sets (N >> 64), where nothing changes.
    Needs C >= 2 classes; with C = 2 the projection has one column.
    """
    parts = {
        e: ncti_parts(x["features"], x["labels"], n_components, top) for e, x in entries.items()
    }
    names = list(parts)
    separation = min_max(np.array([parts[e].separation for e in names]))
    ncc = min_max(np.array([parts[e].ncc for e in names]))
    collapse = min_max(np.array([parts[e].collapse for e in names]))
    return {e: float(separation[i] + ncc[i] - collapse[i]) for i, e in enumerate(names)}
