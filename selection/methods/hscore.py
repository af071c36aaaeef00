"""H-score (Bao et al. 2019) and its Ledoit-Wolf shrinkage variant (Ibrahim et al. 2022).

Bao, Li, Huang, Zheng, Lu, Zhong. "An Information-Theoretic Approach to Transferability in Task
Transfer Learning." ICIP 2019.
Ibrahim, Ponomareva, Mazumder. "Newer is not always better: Rethinking transferability metrics,
their peculiarities, stability and performance." ECML-PKDD 2022.

Both use one eigendecomposition of the smaller centred Gram matrix; Cov(E[F|y]) enters only through
the C class-mean deviations, so no D x D between-class matrix is formed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from selection.checks import max_dim_per_sample, require_min_per_class
from selection.linalg import class_index, class_sums, column_means, feature_gram
from selection.registry import register_method


@dataclass(frozen=True)
class _Moments:
    eigenvalues: np.ndarray  # (k,) eigenvalues of Cov(F) = G^T G / N, ascending
    coefficients: np.ndarray  # (C, k) coordinates of d_c = mu_c - mu on the matching eigenvectors
    weights: np.ndarray  # (C,) n_c / N
    trace: float  # tr Cov(F)
    frobenius_sq: float  # ||Cov(F)||_F^2
    fourth: float  # sum_i ||g_i||^4, for the Ledoit-Wolf shrinkage
    n: int
    d: int


def _moments(features: np.ndarray, labels: np.ndarray) -> _Moments:
    n, d = features.shape
    index, counts = class_index(labels)
    gram, sums, row_sq = feature_gram(features, index, len(counts), shift=column_means(features))
    eigenvalues, vectors = np.linalg.eigh(gram)
    eigenvalues = np.clip(eigenvalues, 0.0, None)  # PSD up to rounding
    if d <= n:
        # gram = G^T G; d_c = t_c / n_c with t_c the centred class sums
        coefficients = (sums @ vectors) / counts[:, None]
    else:
        # gram = G G^T = U diag(lambda) U^T; the eigenvectors of G^T G are G^T u_j / sqrt(lambda_j)
        # and d_c = G^T 1_c / n_c, so v_j . d_c = sqrt(lambda_j) (u_j . 1_c) / n_c
        coefficients = class_sums(vectors, index, len(counts)) * np.sqrt(eigenvalues)
        coefficients /= counts[:, None]
    return _Moments(
        eigenvalues=eigenvalues / n,
        coefficients=coefficients,
        weights=counts / n,
        trace=float(row_sq.sum()) / n,
        frobenius_sq=float(np.sum(gram * gram)) / n**2,
        fourth=float(np.sum(row_sq**2)),
        n=n,
        d=d,
    )


def _trace_inverse_between(eigenvalues: np.ndarray, moments: _Moments, rcond: float) -> float:
    # tr(pinv(A) Cov(E[F|y])) = sum_c (n_c/N) d_c^T pinv(A) d_c, A sharing Cov(F)'s eigenvectors
    top = float(eigenvalues.max()) if eigenvalues.size else 0.0
    keep = eigenvalues > rcond * top
    if not keep.any():
        return 0.0
    quad = (moments.coefficients[:, keep] ** 2) @ (1.0 / eigenvalues[keep])
    return float(moments.weights @ quad)


def _default_rcond(n: int, d: int, rcond: float | None) -> float:
    if rcond is None:
        # the usual numerical-rank tolerance (numpy.linalg.matrix_rank)
        return max(n, d) * float(np.finfo(np.float64).eps)
    if not 0 <= rcond < 1:
        raise ValueError(f"rcond must be in [0, 1); got {rcond}")
    return rcond


def ledoit_wolf_shrinkage(moments: _Moments) -> float:
    """The Ledoit-Wolf shrinkage alpha in [0, 1] of Cov(F), as sklearn.covariance.ledoit_wolf.

    With S = Cov(F) (1/N), mu = tr(S)/D, g_i the centred rows:
    b = (sum_i ||g_i||^4 / N - ||S||_F^2) / (D N), delta = (||S||_F^2 - D mu^2) / D,
    alpha = min(b, delta) / delta (0 when that is 0). One feature: alpha = 0.
    """
    if moments.d == 1:
        return 0.0
    mu = moments.trace / moments.d
    b = (moments.fourth / moments.n - moments.frobenius_sq) / (moments.d * moments.n)
    delta = (moments.frobenius_sq - moments.d * mu**2) / moments.d
    b = min(b, delta)
    if b <= 0.0:
        return 0.0
    return float(min(b / delta, 1.0))


#: H-score's regime, D <= N / 4 (see ``hscore``).
SAMPLES_PER_DIM = 4


@register_method(
    "hscore", needs=("features", "labels"), max_dim=max_dim_per_sample(SAMPLES_PER_DIM)
)
def hscore(features: np.ndarray, labels: np.ndarray, rcond: float | None = None) -> float:
    """H-score = tr(pinv(Cov(F)) Cov(E[F | y])), a matrix product of two D x D covariances.

    Cov(F) = (1/N) sum_i (f_i - mu)(f_i - mu)^T and Cov(E[F|y]) = sum_c (n_c/N)(mu_c - mu)(mu_c - mu)^T,
    both with 1/N (the factor cancels). pinv drops eigenvalues <= rcond * lambda_max, rcond default
    max(N, D) * eps (the reference code's fixed 1e-15 keeps rounding noise when N <= D and the
    score then jumps between runs). Features F (N, D) as given; every class needs 2 samples.

    Regime: well posed for D <= N / 4. H-score is Pillai's trace of the (C-1)-dimensional
    between-class fit; with no class signal its expectation is (C - 1) D / (N - 1) (Pillai's
    trace of Gaussian noise), so it reaches its maximum C - 1 for any features at N <= D and a
    wide noise entry outranks a narrow informative one up to N ~ 2-4 D (noise at D = 2048, N = 500,
    C = 10 scores exactly 9; informative D = 64 features 4.9). D <= N / 4 bounds the noise floor at
    a quarter of the maximum. Outside it the registry reduces F by PCA to N // 4 dimensions
    (``selection.checks.regime_pca``), as dbolya/parc reduces features before its H-score
    (``feature_reduce``); the remedy is reported by ``score_detail``. The shrinkage variant is the
    published alternative (Ibrahim et al. 2022) and needs no remedy.
    """
    require_min_per_class(labels, 2, "hscore")
    moments = _moments(features, labels)
    rcond = _default_rcond(moments.n, moments.d, rcond)
    return _trace_inverse_between(moments.eigenvalues, moments, rcond)


@register_method("hscore_shrinkage", needs=("features", "labels"))
def hscore_shrinkage(features: np.ndarray, labels: np.ndarray, rcond: float | None = None) -> float:
    """H_alpha = tr(pinv(Cov_alpha(F)) (1 - alpha) Cov(E[F | y])), Ibrahim et al. 2022.

    Cov_alpha = (1 - alpha) Cov(F) + alpha (tr Cov(F) / D) I is the Ledoit-Wolf estimate (sklearn's
    LedoitWolf, 1/N, alpha its closed-form shrinkage); Cov(E[F|y]) as in ``hscore``, with 1/N. The
    public reference code takes the between-class covariance with 1/(N-1) (np.cov): its values are
    ours times N/(N-1), the same ranking of models on one target. Every class needs 2 samples.

    Regime: well posed at every N and D. Ledoit-Wolf's alpha is the consistent shrinkage for
    D / N bounded or growing (Ledoit & Wolf 2004), so Cov_alpha stays well conditioned at N <= D
    and the noise score falls as D grows (pure noise D = 2048 at N = 500, C = 10 scores 0.22 against
    3.2 for informative D = 64 features); this regularisation is the method's own remedy for the
    plain H-score's N <= D degeneracy (Ibrahim et al. 2022), so no further remedy is applied.
    """
    require_min_per_class(labels, 2, "hscore_shrinkage")
    moments = _moments(features, labels)
    rcond = _default_rcond(moments.n, moments.d, rcond)
    alpha = ledoit_wolf_shrinkage(moments)
    mu = moments.trace / moments.d
    # Cov_alpha shares Cov(F)'s eigenvectors; d_c lies in the span of the centred rows, so the
    # directions outside it (eigenvalue alpha mu) do not contribute
    shrunk = (1.0 - alpha) * moments.eigenvalues + alpha * mu
    return (1.0 - alpha) * _trace_inverse_between(shrunk, moments, rcond)
