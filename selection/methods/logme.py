"""LogME, the maximum evidence of a Bayesian linear model on the features (You et al. 2021).

You, Liu, Wang, Long. "LogME: Practical Assessment of Pre-trained Models for Transfer Learning."
ICML 2021. One eigendecomposition of the smaller Gram matrix serves every class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from selection.linalg import class_index, class_sums, feature_gram
from selection.registry import register_method

#: Upper bound on the noise precision beta (noise std 1e-6 of the 0/1 targets). Without a bound the
#: evidence is unbounded when the features reproduce a class indicator exactly (y in the column
#: space of F with rank < N, e.g. duplicated images); the reference code instead adds 1e-5 to both
#: denominators of the fixed point.
BETA_MAX = 1e12


@dataclass(frozen=True)
class Evidence:
    """The fixed point of one class: log evidence L (nats, not divided by N), alpha, beta."""

    log_evidence: float
    alpha: float
    beta: float
    iterations: int


def _log_evidence(
    alpha: float, beta: float, sigma: np.ndarray, x2: np.ndarray, res0: float, n: int
) -> float:
    # L at (alpha, beta) with m2 and res2 evaluated at t = alpha / beta, so that L is exactly
    # log N(y | 0, beta^-1 I + alpha^-1 F F^T). D/2 log alpha - 1/2 sum_{j<=D} log(alpha + beta
    # sigma_j) over all D eigenvalues equals k/2 log alpha - 1/2 sum_{j<=k} over the k non-zero ones.
    t = alpha / beta
    m2 = float(np.sum(sigma * x2 / (sigma + t) ** 2))
    res2 = float(np.sum(x2 * (t / (sigma + t)) ** 2)) + res0
    return (
        len(sigma) / 2 * np.log(alpha)
        + n / 2 * np.log(beta)
        - 0.5 * float(np.sum(np.log(alpha + beta * sigma)))
        - beta / 2 * res2
        - alpha / 2 * m2
        - n / 2 * np.log(2 * np.pi)
    )


def fixed_point(
    sigma: np.ndarray, x2: np.ndarray, y_sq: float, n: int, tol: float = 1e-3, max_iter: int = 100
) -> Evidence:
    """Maximise the evidence over alpha, beta by the fixed-point iteration of DESIGN.md section 6.

    Args:
        sigma: (k,) the non-zero eigenvalues of F^T F (squared singular values of F).
        x2: (k,) squared coordinates of y on the matching left singular vectors, x = U^T y.
        y_sq: ||y||^2.
        n: N, the number of samples.
        tol: stop when |t_new - t| / t <= tol, t = alpha / beta.
        max_iter: at most this many updates.

    When y has no component along the features (sum sigma x^2 = 0, e.g. F = 0), the evidence
    grows with alpha and its supremum is the alpha -> inf limit: y ~ N(0, beta^-1 I) with
    beta = N / ||y||^2; that value is returned with alpha = inf.
    """
    # the part of y outside the column space of F; with rank N there is none, and the rounding
    # residue of the subtraction (~eps ||y||^2) would otherwise be multiplied by a large beta
    res0 = 0.0 if len(sigma) >= n else max(y_sq - float(np.sum(x2)), 0.0)
    if not np.any(sigma * x2 > 0):
        return _no_signal(y_sq, n, 0)
    # once beta sigma / alpha < eps for every sigma, L equals its alpha -> inf limit to rounding
    t_max = float(np.max(sigma)) / np.finfo(np.float64).eps
    alpha, beta = 1.0, 1.0
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 (the count is reported)
        t = alpha / beta
        gamma = float(np.sum(sigma / (sigma + t)))
        # N - gamma without cancellation: gamma -> k as t -> 0
        gamma_rest = (n - len(sigma)) + float(np.sum(t / (sigma + t)))
        m2 = float(np.sum(sigma * x2 / (sigma + t) ** 2))
        res2 = float(np.sum(x2 * (t / (sigma + t)) ** 2)) + res0
        alpha = gamma / m2
        beta = BETA_MAX if gamma_rest >= BETA_MAX * res2 else min(gamma_rest / res2, BETA_MAX)
        if alpha / beta > t_max:
            return _no_signal(y_sq, n, iterations)
        if abs(alpha / beta - t) / t <= tol:
            break
    return Evidence(float(_log_evidence(alpha, beta, sigma, x2, res0, n)), alpha, beta, iterations)


def _no_signal(y_sq: float, n: int, iterations: int) -> Evidence:
    # the supremum over alpha is the alpha -> inf limit, w = 0: y ~ N(0, beta^-1 I), beta = N/||y||^2
    beta = n / y_sq
    value = n / 2 * np.log(beta) - beta / 2 * y_sq - n / 2 * np.log(2 * np.pi)
    return Evidence(float(value), float("inf"), float(beta), iterations)


def spectrum(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-zero eigenvalues of F^T F and the coordinates of every class indicator on U.

    F = U diag(s) V^T; sigma = s^2. From the smaller Gram matrix: with D <= N,
    U^T y_c = diag(1/s) V^T (sum_{i in c} f_i), so U (N x k) is never formed; with N < D, U are
    the eigenvectors of F F^T. Eigenvalues <= max(N, D) eps lambda_max count as zero.

    Returns:
        sigma (k,), x (C, k) with x[c] = U^T 1[y = c], counts (C,) = ||1[y = c]||^2.
    """
    n, d = features.shape
    index, counts = class_index(labels)
    if d <= n:
        gram, sums, _ = feature_gram(features, index, len(counts))
    else:
        gram, _, _ = feature_gram(features)
    eigenvalues, vectors = np.linalg.eigh(gram)
    top = eigenvalues[-1] if eigenvalues.size else 0.0
    keep = eigenvalues > max(n, d) * np.finfo(np.float64).eps * top
    sigma, vectors = eigenvalues[keep], vectors[:, keep]
    if d <= n:
        x = (sums @ vectors) / np.sqrt(sigma)
    else:
        x = class_sums(vectors, index, len(counts))
    return sigma, x, counts


def logme_per_class(
    features: np.ndarray, labels: np.ndarray, tol: float = 1e-3, max_iter: int = 100
) -> list[Evidence]:
    """The maximised evidence of the regression of each one-hot column 1[y = c] on F (N, D)."""
    n = features.shape[0]
    sigma, x, counts = spectrum(features, labels)
    return [
        fixed_point(sigma, x[c] ** 2, float(counts[c]), n, tol, max_iter)
        for c in range(len(counts))
    ]


@register_method("logme", needs=("features", "labels"))
def logme(
    features: np.ndarray, labels: np.ndarray, tol: float = 1e-3, max_iter: int = 100
) -> float:
    """LogME = (1/C) sum_c L_c / N, L_c the maximum log evidence of 1[y = c] given F (N, D).

    Bayesian linear regression y = F w + e, w ~ N(0, alpha^-1 I_D), e ~ N(0, beta^-1 I_N):
    L(alpha, beta) = log N(y | 0, beta^-1 I + alpha^-1 F F^T)
      = D/2 log alpha + N/2 log beta - 1/2 sum_j log(alpha + beta sigma_j) - beta/2 res2
        - alpha/2 m2 - N/2 log 2pi,
    sigma_j the D eigenvalues of F^T F (zero beyond the rank), maximised by the fixed point
    t = alpha/beta, gamma = sum sigma/(sigma+t), m2 = sum sigma x^2/(t+sigma)^2,
    res2 = sum x^2/(1+sigma/t)^2 + (||y||^2 - sum x^2), alpha = gamma/m2, beta = (N-gamma)/res2,
    x = U^T y, until |dt|/t <= tol. Unlike the reference code, the log-determinant counts the
    D - rank zero eigenvalues (the reference omits them when N < D) and no 1e-5 is added to the
    denominators; L is evaluated at the final (alpha, beta), and beta <= BETA_MAX = 1e12 (the
    maximum over beta <= BETA_MAX: finite even when the features reproduce a label exactly).
    Features are used as given (not centred). Units: nats per sample.

    Regime: well posed at every N, D and class count; no remedy. The evidence integrates over the
    D weights (its Occam factor 1/2 sum log(alpha + beta sigma_j) - D/2 log alpha charges every
    direction the fit uses), so extra noise dimensions lower it instead of inflating it: pure noise
    at D = 2048, N = 500, C = 10 scores -0.27 against -0.012 for informative D = 64 features.
    """
    if tol <= 0 or max_iter < 1:
        raise ValueError(
            f"logme needs tol > 0 and max_iter >= 1; got tol={tol}, max_iter={max_iter}"
        )
    n = features.shape[0]
    fits = logme_per_class(features, labels, tol, max_iter)
    return float(np.mean([fit.log_evidence for fit in fits])) / n
