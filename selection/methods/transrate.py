"""TransRate (Huang et al. 2022): the coding-rate gain of knowing the labels.

Huang, Huang, Chen, Tao, Ling, Zhao. "Frustratingly Easy Transferability Estimation." ICML 2022.
Follows the code printed in the paper's appendix (and copied by public implementations).
"""

from __future__ import annotations

import numpy as np

from selection.checks import max_dim_per_class
from selection.registry import register_method


def coding_rate(z: np.ndarray, eps: float) -> float:
    """R(Z, eps) = 1/2 logdet(I_d + 1/(n eps) Z^T Z) for Z (n, d), as in the reference code.

    Computed on the smaller Gram matrix (Z^T Z and Z Z^T share their non-zero eigenvalues, so
    logdet(I_d + a Z^T Z) = logdet(I_n + a Z Z^T)): a class of 50 samples in 2048 dimensions costs
    a 50 x 50 factorisation. I + a G has every eigenvalue >= 1, so a Cholesky factor L gives
    1/2 logdet = sum log diag L.
    """
    n, d = z.shape
    gram = z.T @ z if d <= n else z @ z.T
    scaled = gram / (n * eps)
    scaled.flat[:: len(gram) + 1] += 1.0
    try:
        return float(np.sum(np.log(np.diag(np.linalg.cholesky(scaled)))))
    except np.linalg.LinAlgError:  # rounding on a huge a * G; eigenvalues are robust to it
        eigenvalues = np.clip(np.linalg.eigvalsh(gram), 0.0, None)
        return 0.5 * float(np.sum(np.log1p(eigenvalues / (n * eps))))


#: TransRate's regime, D <= n_min / 2 (see ``transrate``).
SAMPLES_PER_DIM = 2


@register_method(
    "transrate", needs=("features", "labels"), max_dim=max_dim_per_class(SAMPLES_PER_DIM)
)
def transrate(features: np.ndarray, labels: np.ndarray, eps: float = 1e-4) -> float:
    """TransRate = R(Z, eps) - (1/C) sum_c R(Z_c, eps), Z the centred features (N, D).

    Normalisation, exactly as the reference code (which differs from the paper's equations):
    * R(Z, eps) = 1/2 logdet(I_d + 1/(n eps) Z^T Z) with n the rows of Z (the paper writes
      d / (n eps^2)); the per-class term uses n = n_c.
    * Z = F - mean(F) once over all samples; the class blocks Z_c are not re-centred.
    * The conditional rate is the plain mean over the C classes present (the reference divides by
      max(y) + 1, the same for labels 0..C-1); the paper weights classes by n_c / N.
    The value is in nats and depends on the feature scale (eps is absolute), as in the reference.

    Regime: well posed for D <= n_min / 2, n_min the smallest class count. Each class's rate
    R(Z_c) has rank at most min(n_c, D) while R(Z) has rank min(N, D), so with D above the class
    sizes the difference grows with D whatever the labels: pure noise with D = 2048 at N = 500,
    C = 10 scores 2293 against 68 for informative D = 64 features (the noise still wins at 62
    dims, loses from 32). With two samples per dimension in every class each class covariance is
    estimated at full rank and noise falls well below informative features (after the remedy,
    at N = 500: noise 3.8 nats, informative D = 64 features 6.4). Outside the regime the registry
    reduces the features by PCA to n_min // 2 dimensions (``selection.checks.regime_pca``), the
    reduce-by-N remedy of the PARC / GBC / NLEEP setups (dbolya's ``feature_reduce``);
    ``score_detail`` reports it.

    Args:
        features: (N, D) target features.
        labels: (N,) target labels.
        eps: distortion (reference default 1e-4).
    """
    if eps <= 0:
        raise ValueError(f"transrate eps must be > 0; got {eps}")
    z = features - features.mean(axis=0, keepdims=True)
    rate = coding_rate(z, eps)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    # one stable sort instead of a mask per class (1000 classes x 50,000 samples); the rows of
    # each class keep their order
    order = np.argsort(inverse, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(counts)))
    conditional = sum(
        coding_rate(z[order[a:b]], eps) for a, b in zip(bounds[:-1], bounds[1:])
    ) / len(counts)
    return rate - conditional
