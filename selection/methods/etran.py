"""ETran, energy-based transferability estimation (Gholami et al. 2023).

Gholami, Akbari, Wang, Kamranian, Zhang. "ETran: Energy-Based Transferability Estimation."
ICCV 2023. ETran = S_en + S_cls (+ S_reg for regression / detection targets). Follows the
reference code (mgholamikn/ETran, ``metrics.py``: ``Energy_Score``, ``LDA_Score``), with the
deviations listed per function. Three registered scores:

- ``etran_energy`` (per entry): S_en, the energy part alone (label-free);
- ``etran_lda`` (per entry): S_cls, the LDA classification part alone;
- ``etran`` (zoo level): the sum of both parts, each min-max normalised over the models ranked.

S_reg, the SVD-based regression score, applies to regression targets (bounding boxes of object
detection); the targets here are classification targets, so it is not included.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.linalg
from scipy.special import logsumexp, softmax

from selection.checks import max_dim_per_sample, regime_pca
from selection.linalg import class_sums
from selection.registry import register_method

#: The reference's tail of the energy distribution: Energy_Score(X, percent=0.5, "bot") keeps the
#: int(0.5 * 10) * N // 1000 = 0.5% lowest-energy samples.
ENERGY_FRACTION = 0.005

#: S_cls's regime, D <= N / 4 (as SFDA's Fisher classifier, which it shares).
SAMPLES_PER_DIM = 4


def energy_score(features: np.ndarray, fraction: float = ENERGY_FRACTION) -> float:
    """S_en = mean of the k = max(1, floor(fraction N)) smallest -E(x_i) = logsumexp_d f_d(x_i).

    The features (N, D) are read as the logits of an energy-based model (the reference applies
    logsumexp over the feature dimensions, temperature 1), so -E(x) is the negative free energy:
    high for inputs the network responds to strongly (in distribution). The reference averages
    the lowest-energy tail only (``fraction`` = 0.005); ``fraction=1`` averages every sample.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"etran fraction must be in (0, 1]; got {fraction}")
    neg_energy = logsumexp(features, axis=1)
    k = max(1, int(fraction * len(neg_energy)))
    return float(np.mean(np.sort(neg_energy)[:k]))


def lda_score(features: np.ndarray, labels: np.ndarray) -> float:
    """S_cls = (1/N) sum_i p(y_i | x_i) under the shrunk LDA classifier of the features (N, D).

    S_w = sum_c pi_c Cov_c (biased), lambda = max(exp(-5 sigma_max(S_w)), 1e-10),
    S_w~ = (1 - lambda) S_w + lambda tr(S_w)/D I, logit_c(x) = x^T S_w~^-1 mu_c
    - 1/2 mu_c^T S_w~^-1 mu_c + log pi_c, p = softmax(logits) (the paper's LDA classifier).

    Deviation: the reference computes the discriminant directions with ``np.linalg.eigh`` of the
    non-symmetric S_w~^-1 S_b, which reads one triangle only and returns an orthonormal V, so
    its coef = M V V^T = M: a Euclidean nearest-mean classifier. Here coef = M S_w~^-1, the LDA
    the paper describes. sigma_max is exact (the reference runs three power iterations).
    """
    n, d = features.shape
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    means = class_sums(features, inverse, len(counts)) / counts[:, None]
    residual = features - means[inverse]
    within = residual.T @ residual / n
    sigma_max = float(scipy.linalg.eigvalsh(within, subset_by_index=[d - 1, d - 1])[0])
    shrinkage = max(float(np.exp(-5.0 * sigma_max)), 1e-10)
    # a floor on tr(S_w)/D keeps S_w~ definite when the classes have no spread (as in sfda)
    total_variance = float(np.mean(np.var(features, axis=0)))
    mu = max(float(np.trace(within)) / d, 1e-12 * total_variance)
    if mu <= 0.0:  # constant features
        mu = 1.0
    shrunk = (1.0 - shrinkage) * within
    shrunk.flat[:: d + 1] += shrinkage * mu
    try:
        coef = scipy.linalg.solve(shrunk, means.T, assume_a="pos").T
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
        coef = (scipy.linalg.pinvh(shrunk) @ means.T).T
    intercept = -0.5 * np.sum(means * coef, axis=1) + np.log(counts / n)
    probs = softmax(features @ coef.T + intercept, axis=1)
    return float(np.mean(probs[np.arange(n), inverse]))


@register_method("etran_energy", needs=("features",))
def etran_energy(features: np.ndarray, fraction: float = ENERGY_FRACTION) -> float:
    """ETran's energy part S_en: mean of the lowest logsumexp_d f_d(x) over the target samples.

    See :func:`energy_score`; features (N, D). Label-free.

    Regime: defined at every N and D, but it is not comparable across feature spaces of
    different width or scale: logsumexp of D features grows with log D and with the feature
    scale (pure noise of D = 2048 scores above informative 64-dimensional features), and the
    default tail (0.5% of N) is a single sample below N = 400. No PCA remedy applies (it would
    change the quantity measured). Use it inside ``etran`` or on a zoo of one architecture.
    """
    return energy_score(features, fraction)


@register_method(
    "etran_lda", needs=("features", "labels"), max_dim=max_dim_per_sample(SAMPLES_PER_DIM)
)
def etran_lda(features: np.ndarray, labels: np.ndarray) -> float:
    """ETran's classification part S_cls: mean true-class probability of the shrunk LDA classifier.

    See :func:`lda_score`; features (N, D), labels (N,), C >= 2. A probability in (0, 1].

    Regime: an in-sample fit of a C x D linear classifier with (almost) no shrinkage, so, like
    SFDA's first stage, it interpolates once D approaches N - C (every probability -> 1 for any
    features). Well posed for D <= N / 4; outside it the registry reduces the features by PCA to
    N // 4 dimensions (``selection.checks.regime_pca``) and ``score_detail`` reports it.
    """
    return lda_score(features, labels)


def _min_max(values: np.ndarray) -> np.ndarray:
    spread = float(values.max() - values.min())
    return np.zeros_like(values) if spread == 0.0 else (values - values.min()) / spread


@register_method("etran", needs=("features", "labels"), level="zoo")
def etran(
    entries: Mapping[str, Mapping[str, np.ndarray]], fraction: float = ENERGY_FRACTION
) -> dict[str, float]:
    """ETran_m = S_en~_m + S_cls~_m, each part min-max normalised over the zoo's models.

    ``entries``: {entry: {"features": (N, D), "labels": (N,)}}. S_en is :func:`energy_score` on
    the entry's features as they are, S_cls is :func:`lda_score` on them after the ``etran_lda``
    regime remedy (PCA to N // 4 dimensions when D > N / 4). x~_m = (x_m - min_k x_k) /
    (max_k x_k - min_k x_k) over the entries k; a part equal for every entry contributes 0.

    Why normalised: the paper adds the parts (T_m = S_en + S_cls), but they live on different
    scales (S_en in feature units, growing with log D; S_cls a probability), so the raw sum is
    the energy part's ranking alone. The reference code computes each part as its own metric;
    putting both on [0, 1] over the ranked models, as NCTI does for its parts, gives each an
    equal say. Zoo-level: scored once per cell over every entry (``selection.score_zoo``).

    Regime: S_cls's (see ``etran_lda``: D <= N / 4, PCA remedy applied inside); S_en is
    comparable across the entries only as far as their feature spaces are (see
    ``etran_energy``). No regression part (classification targets).
    """
    names = list(entries)
    energy = np.array([energy_score(entries[e]["features"], fraction) for e in names])
    lda = []
    for e in names:
        features, labels = entries[e]["features"], entries[e]["labels"]
        reduced, _ = regime_pca(features, max(1, len(labels) // SAMPLES_PER_DIM))
        lda.append(lda_score(reduced, labels))
    total = _min_max(energy) + _min_max(np.array(lda))
    return {e: float(total[i]) for i, e in enumerate(names)}
