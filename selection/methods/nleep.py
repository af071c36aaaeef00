"""NLEEP (Li et al. 2021): LEEP with a Gaussian mixture on the features as the source "head".

Li, Jia, Sang, Zhu, Green, Wang, Gong. "Ranking Neural Checkpoints." CVPR 2021.
"""

from __future__ import annotations

import numpy as np

from selection.checks import stratified_cap
from selection.linalg import class_index, column_means, leep_from_probs, max_abs
from selection.registry import register_method

BLOCK = 8192  # rows per posterior block


def mixture_posteriors(
    features: np.ndarray,
    n_components: int,
    variance: float = 0.8,
    covariance_type: str = "full",
    seed: int = 0,
    fit_index: np.ndarray | None = None,
) -> np.ndarray:
    """Posteriors (N, n_components) of a seeded Gaussian mixture fitted to PCA-reduced features.

    PCA and the mixture are fitted on the rows ``fit_index`` (all rows when None); the posteriors
    are then computed for every row.

    PCA keeps the fewest leading components whose explained variance reaches ``variance``
    (sklearn's fractional n_components); the scores are then divided by their overall standard
    deviation so that the mixture's absolute covariance floor (reg_covar = 1e-6) means the same on
    every network's features (the posteriors are then invariant to the features' scale).
    Features with no variance give one posterior column of ones.
    """
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    n, d = features.shape
    # centring and a common scale change no posterior but keep PCA's sums well conditioned
    centred = features - column_means(features)
    scale = max_abs(centred)
    if scale == 0.0:
        return np.ones((n, 1))
    centred /= scale
    fit = centred if fit_index is None else centred[fit_index]
    # both solvers are exact and deterministic; the covariance route avoids an N x D SVD
    solver = "covariance_eigh" if fit.shape[0] >= d else "full"
    pca = PCA(n_components=variance, svd_solver=solver, random_state=seed).fit(fit)
    reduced_fit = pca.transform(fit)
    unit = np.sqrt(np.mean(np.var(reduced_fit, axis=0)))
    mixture = GaussianMixture(
        n_components=n_components, covariance_type=covariance_type, random_state=seed
    )
    # EM makes a few small BLAS calls per component and iteration: extra BLAS threads only add
    # synchronisation (on a busy 2-core machine two threads made the fit ~80x slower than one)
    with threadpool_limits(limits=1):  # BLAS and OpenMP (k-means init) alike
        mixture.fit(reduced_fit / unit)
        # posteriors row block by row block (each row's are its own): sklearn holds several
        # N x K temporaries per call, which at N = 50k and K = 1000 is gigabytes
        theta = np.empty((n, n_components))
        for start in range(0, n, BLOCK):
            rows = centred[start : start + BLOCK]
            block = reduced_fit[start : start + BLOCK] if fit_index is None else pca.transform(rows)
            theta[start : start + BLOCK] = mixture.predict_proba(block / unit)
        return theta


@register_method("nleep", needs=("features", "labels"))
def nleep(
    features: np.ndarray,
    labels: np.ndarray,
    variance: float = 0.8,
    components_per_class: int = 5,
    covariance_type: str = "full",
    seed: int = 0,
    max_components: int | None = 1000,
    fit_samples: int | None = 10000,
) -> float:
    """NLEEP = LEEP(theta, y) with theta_z(x_i) = p(z | PCA(x_i)), z a Gaussian-mixture component.

    PCA keeps ``variance`` (80%) of the variance; the mixture has ``components_per_class`` x C
    components (5 C), full covariances (sklearn's default, as the public implementations), k-means
    initialisation seeded by ``seed``; then LEEP of the posteriors:
    (1/N) sum_i log sum_z P(y_i | z) theta_z(x_i), P(y | z) from the soft counts (see ``leep``).
    The log is kept (some public code drops it). Needs N >= components_per_class x C.

    Scale bounds (a full-covariance EM costs ~ N x K x d^2 per iteration): the mixture has at most
    ``max_components`` components (1000 keeps 5 C for every target of up to 200 classes, so every
    paper target is unchanged), and PCA and the mixture are fitted on a class-stratified seeded
    subset of ``fit_samples`` rows (raised to the number of components when smaller; see
    ``stratified_cap``) whose posteriors are then computed for all N rows. None lifts a bound.

    Regime: the mixture needs N >= its component count (enforced: ValueError); the feature
    dimension is already set by the method's own PCA (80% of the variance, at most N - 1 components,
    as in Li et al.), and sklearn's reg_covar keeps each full covariance invertible when a component
    holds fewer samples than dimensions. Noise gains nothing from D there (pure noise at D = 2048,
    N = 500, C = 10 scores -1.87 against -1.12 for informative D = 64 features), so no further
    remedy. The value is a seeded fit: exactly reproducible for equal inputs and seed, and
    invariant to the order of the samples (the rows are put in lexicographic order of the
    features before the fit).
    """
    if not 0 < variance < 1:
        raise ValueError(f"nleep variance must be a fraction in (0, 1); got {variance}")
    if components_per_class < 1:
        raise ValueError(f"nleep components_per_class must be >= 1; got {components_per_class}")
    for name, bound in (("max_components", max_components), ("fit_samples", fit_samples)):
        if bound is not None and bound < 1:
            raise ValueError(f"nleep {name} must be >= 1 or null (no bound); got {bound}")
    _, counts = class_index(labels)
    n_components = components_per_class * len(counts)
    if max_components is not None:
        n_components = min(n_components, max_components)
    if features.shape[0] < n_components:
        raise ValueError(
            f"nleep fits {components_per_class} x {len(counts)} = {n_components} mixture components "
            f"and needs at least that many samples; got N={features.shape[0]} "
            f"(use components_per_class <= {features.shape[0] // len(counts)})"
        )
    # A canonical row order (lexicographic in the features) makes the seeded k-means start and
    # the fit subset independent of the order the samples arrive in; LEEP itself is a mean over
    # rows, so the score becomes invariant to a permutation of the samples.
    order = np.lexsort(features.T[::-1])
    features, labels = features[order], labels[order]
    fit_index = None
    if fit_samples is not None and features.shape[0] > fit_samples:
        fit_index = stratified_cap(labels, max(fit_samples, n_components, len(counts)), seed)
    theta = mixture_posteriors(features, n_components, variance, covariance_type, seed, fit_index)
    return leep_from_probs(theta, labels)
