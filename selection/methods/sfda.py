"""SFDA, Self-challenging Fisher Discriminant Analysis (Shao et al. 2022).

Shao, Zhao, Ge, Li, Zhang, Luo. "Not All Models Are Equal: Predicting Model Transferability in a
Self-challenging Fisher Space." ECCV 2022. Follows the reference code (TencentARC/SFDA,
``metrics.py``: ``SFDA`` and ``SFDA_Score``), with the deviations listed in :func:`sfda`.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
from scipy.special import log_softmax, softmax

from selection.checks import max_dim_per_sample
from selection.linalg import class_sums
from selection.registry import register_method

# rows of the (rows x C) logits computed at once: the N x C matrices are never held whole
# (4096 x 1000 float64 = 33 MB, where N = 50,000 would take 400 MB per copy)
_BLOCK_ROWS = 4096


def _class_stats(x: np.ndarray, inverse: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, ...]:
    """Class means (C, D), priors (C,), and the prior-weighted within-class covariance (D, D)."""
    means = class_sums(x, inverse, len(counts)) / counts[:, None]
    residual = x - means[inverse]
    # sum_c (n_c/N) * cov_c with the biased per-class covariance = (1/N) sum_i r_i r_i^T
    within = residual.T @ residual / len(x)
    return means, counts / len(x), within


def _largest_eigenvalue(sym: np.ndarray) -> float:
    """Largest eigenvalue of a symmetric matrix: Lanczos (seeded start) for large D, else dense."""
    dim = sym.shape[0]
    if dim > 64:
        start = np.random.default_rng(0).standard_normal(dim)
        try:
            return float(
                scipy.sparse.linalg.eigsh(
                    sym, k=1, which="LA", v0=start, return_eigenvectors=False
                )[0]
            )
        except scipy.sparse.linalg.ArpackNoConvergence:
            pass
    return float(scipy.linalg.eigvalsh(sym, subset_by_index=[dim - 1, dim - 1])[0])


def _shrink(cov: np.ndarray, shrinkage: float, total_variance: float) -> np.ndarray:
    """(1 - s) S + s tr(S)/D I, the reference's ``_cov(..., shrinkage=s)`` regulariser."""
    dim = cov.shape[0]
    # (Almost) no within-class spread makes the reference's S_w~ singular; flooring tr(S)/D at
    # 1e-12 of the mean total variance keeps the classifier defined and its logits finite.
    mu = max(np.trace(cov) / dim, 1e-12 * total_variance)
    if mu <= 0.0:  # constant features
        mu = 1.0
    out = (1.0 - shrinkage) * cov
    out.flat[:: dim + 1] += shrinkage * mu
    return out


def _lda_classifier(
    x: np.ndarray, stats: tuple[np.ndarray, ...], shrinkage: float
) -> tuple[np.ndarray, np.ndarray]:
    """(coef (C, D), intercept (C,)) of the reference's regularised FDA classifier fitted on x."""
    means, priors, within = stats
    shrunk = _shrink(within, shrinkage, float(np.mean(np.var(x, axis=0))))
    # The reference keeps all D generalised eigenvectors V of (S_b, S_w~), V^T S_w~ V = I, and
    # classifies with coef = M V V^T; since V is square and invertible, V V^T = S_w~^{-1}.
    try:
        coef = scipy.linalg.solve(shrunk, means.T, assume_a="pos").T
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
        coef = (scipy.linalg.pinvh(shrunk) @ means.T).T
    intercept = -0.5 * np.sum(means * coef, axis=1) + np.log(priors)
    return coef, intercept


def _row_blocks(n: int):
    for start in range(0, n, _BLOCK_ROWS):
        yield slice(start, min(start + _BLOCK_ROWS, n))


#: SFDA's regime, D <= N / 4 (see ``sfda``).
SAMPLES_PER_DIM = 4


@register_method("sfda", needs=("features", "labels"), max_dim=max_dim_per_sample(SAMPLES_PER_DIM))
def sfda(features: np.ndarray, labels: np.ndarray, log_prob: bool = False) -> float:
    """Mean probability of the true class under the regularised FDA classifier of ConfMix features.

    Reference procedure (features X (N, D), labels y, C classes, priors pi_c = n_c / N):
    1. S_w = sum_c pi_c Cov_c(X) (biased covariances); shrinkage lambda = max(exp(-5 sigma_max(S_w)),
       1e-10); S_w~ = (1 - lambda) S_w + lambda tr(S_w)/D I.
    2. FDA classifier: logits_c(x) = x^T S_w~^{-1} mu_c - 1/2 mu_c^T S_w~^{-1} mu_c + log pi_c,
       p = softmax(logits). (The reference writes S_w~^{-1} as V V^T through the generalised
       eigenproblem S_b v = e S_w~ v; the regularised S_b drops out because every eigenvector is kept.)
    3. Self-challenge (ConfMix): q = softmax(p) row-wise ("softened" probabilities); each sample of
       class c becomes x' = q_c x + (1 - q_c) mu_{-c}, mu_{-c} the mean of the other class means.
    4. Refit step 2 on X' with the same lambda; SFDA = (1/N) sum_i p'_{y_i}(x'_i).

    Deviations: sigma_max is the largest eigenvalue to machine precision (Lanczos with a seeded
    start when D > 64; the reference runs three power iterations, which can only under-estimate
    it); tr(S_w)/D is floored at 1e-12 times the
    mean total variance of the features (1 for constant features) so that S_w~ stays invertible
    when the classes have (almost) no spread; it never binds on ordinary features.
    ``log_prob=True`` returns the mean log-probability instead (the paper's form; the reference
    drops the log for stability).

    Regime: well posed for D <= N / 4. The score is the in-sample accuracy-like fit of a
    C x D linear classifier; its shrinkage lambda = exp(-5 sigma_max) is ~1e-10 on raw features,
    so once N - C < D the within-class scatter is singular, the classifier interpolates and SFDA
    is exactly 1.0 for any features; it stays inflated up to N ~ 2-4 D (pure noise D = 2048 at
    N = 500, C = 10 scores 1.0, informative D = 64 features 0.62; noise reduced to N / 2 = 250
    dims still ties them). Outside the regime the registry reduces the features by PCA to
    N // 4 dimensions (``selection.checks.regime_pca``, the dimension-by-N reduction of the PARC /
    GBC / NLEEP setups and dbolya's ``feature_reduce``); the SFDA paper scored whole training sets
    (N >> D), where nothing changes. ``score_detail`` reports the remedy.

    Args:
        features: (N, D) target features.
        labels: (N,) target labels, C >= 2 classes.

    Returns:
        A probability in (0, 1] (or a log-probability <= 0 with ``log_prob``).
    """
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    stats = _class_stats(features, inverse, counts)
    means, _, within = stats
    shrinkage = max(float(np.exp(-5.0 * _largest_eigenvalue(within))), 1e-10)

    coef, intercept = _lda_classifier(features, stats, shrinkage)
    confidence = np.empty(len(labels))
    for rows in _row_blocks(len(labels)):
        probs = softmax(features[rows] @ coef.T + intercept, axis=1)
        softened = softmax(probs, axis=1)
        confidence[rows] = softened[np.arange(len(probs)), inverse[rows]]
    others = (means.sum(axis=0) - means) / (len(counts) - 1)
    mixed = confidence[:, None] * features + (1.0 - confidence[:, None]) * others[inverse]

    coef, intercept = _lda_classifier(mixed, _class_stats(mixed, inverse, counts), shrinkage)
    total = 0.0
    for rows in _row_blocks(len(labels)):
        logits = mixed[rows] @ coef.T + intercept
        own = np.arange(len(logits)), inverse[rows]
        if log_prob:
            total += float(np.sum(log_softmax(logits, axis=1)[own]))
        else:
            total += float(np.sum(softmax(logits, axis=1)[own]))
    return total / len(labels)
