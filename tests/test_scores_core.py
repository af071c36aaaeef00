"""LEEP, NCE, H-scores, LogME, NLEEP, PARC, RSA and the stratified cap, against independent references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
from scipy import optimize
from sklearn.covariance import LedoitWolf, ledoit_wolf_shrinkage
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler

import selection
from selection.checks import stratified_cap
from selection.methods.hscore import _moments
from selection.methods.hscore import hscore as hscore_formula
from selection.methods.hscore import ledoit_wolf_shrinkage as our_shrinkage
from selection.methods.logme import logme_per_class

EPS = np.finfo(np.float64).eps


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def clustered(n: int, d: int, classes: int, seed: int, spread: float = 1.0):
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % classes)
    features = rng.normal(size=(n, d)) + spread * rng.normal(size=(classes, d))[labels] + 0.5
    return features, labels


# ---------------------------------------------------------------- LEEP


def naive_leep(theta: np.ndarray, labels: np.ndarray) -> float:
    n, z = theta.shape
    classes = np.unique(labels)
    joint = np.array([[theta[labels == y, j].sum() / n for j in range(z)] for y in classes])
    total = 0.0
    for i in range(n):
        c = int(np.searchsorted(classes, labels[i]))
        total += np.log(sum(joint[c, j] / joint[:, j].sum() * theta[i, j] for j in range(z)))
    return total / n


def test_leep_hand_computed():
    theta = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.3, 0.7]])
    labels = np.array([0, 0, 1, 1])
    # P(y, z) = [[.375, .125], [.125, .375]], P(z) = [.5, .5], P(y|z) = [[.75, .25], [.25, .75]]
    # sum_z P(y_i|z) theta_z(x_i) = .7, .55, .65, .6
    expected = np.log(0.7 * 0.55 * 0.65 * 0.6) / 4
    assert selection.score("leep", probs=theta, labels=labels) == pytest.approx(expected, abs=1e-14)


def test_leep_of_a_perfect_one_to_one_source_is_zero():
    labels = np.array([2, 0, 1, 1, 0, 2, 2])
    source_of = np.array([4, 1, 3])  # target class -> source class, two source classes never used
    probs = np.eye(5)[source_of[labels]]
    assert selection.score("leep", probs=probs, labels=labels) == pytest.approx(0.0, abs=1e-15)
    # an uninformative source: sum_z P(y_i|z) / Z = n_{y_i} / N
    uniform = np.full((7, 5), 0.2)
    counts = np.bincount(labels)
    expected = np.mean(np.log(counts[labels] / 7))
    assert selection.score("leep", probs=uniform, labels=labels) == pytest.approx(
        expected, abs=1e-14
    )


def test_leep_against_loop_and_sample_order():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 40)
    probs = softmax(rng.normal(size=(40, 6)) * 2)
    value = selection.score("leep", probs=probs, labels=labels)
    assert value == pytest.approx(naive_leep(probs, labels), abs=1e-12)
    assert value < 0
    order = rng.permutation(40)
    assert selection.score("leep", probs=probs[order], labels=labels[order]) == pytest.approx(
        value, abs=1e-13
    )


# ---------------------------------------------------------------- NCE


def test_nce_hand_computed():
    labels = np.array([0, 0, 1, 1, 1, 0])
    probs = np.eye(2)[[0, 0, 0, 1, 1, 1]] * 0.8 + 0.1  # argmax z = 0, 0, 0, 1, 1, 1
    # joint counts: (y0,z0)=2, (y1,z0)=1, (y1,z1)=2, (y0,z1)=1; P(z) = 1/2 each
    expected = (
        2 / 6 * np.log(2 / 3)
        + 1 / 6 * np.log(1 / 3)
        + 2 / 6 * np.log(2 / 3)
        + 1 / 6 * np.log(1 / 3)
    )
    assert selection.score("nce", probs=probs, labels=labels) == pytest.approx(expected, abs=1e-14)


def test_nce_perfect_and_independent_cases():
    labels = np.array([0, 1, 2, 0, 1, 2])
    assert selection.score(
        "nce", probs=np.eye(3)[[2, 0, 1, 2, 0, 1]], labels=labels
    ) == pytest.approx(0.0)
    # one source class for everything: NCE = -H(Y) = log(1/3)
    assert selection.score("nce", probs=np.eye(3)[[1] * 6], labels=labels) == pytest.approx(
        np.log(1 / 3)
    )


# ---------------------------------------------------------------- H-score


def naive_hscore(features: np.ndarray, labels: np.ndarray, shrink: bool = False) -> float:
    n, d = features.shape
    mu = features.mean(axis=0)
    cov = sum(np.outer(f - mu, f - mu) for f in features) / n
    between = np.zeros((d, d))
    for c in np.unique(labels):
        m = features[labels == c].mean(axis=0)
        between += np.sum(labels == c) / n * np.outer(m - mu, m - mu)
    alpha = 0.0
    if shrink:
        lw = LedoitWolf().fit(features)
        cov, alpha = lw.covariance_, lw.shrinkage_
    inverse = np.linalg.pinv(cov, rtol=max(n, d) * EPS)
    return float(np.trace(inverse @ ((1 - alpha) * between)))


def test_hscore_hand_case():
    # 1-D: var = (9 + 1 + 1 + 9) / 4 = 5, class means 1 and 5 around 3: between = 4; H = 4/5
    features = np.array([[0.0], [2.0], [4.0], [6.0]])
    assert selection.score("hscore", features=features, labels=[0, 0, 1, 1]) == pytest.approx(
        0.8, abs=1e-14
    )
    # 2-D, uncorrelated axes (cov = 0): H = 4/5 + 0/1, the second axis has equal class means
    features2 = np.array([[0.0, 1], [2, -1], [4, -1], [6, 1]])
    assert selection.score("hscore", features=features2, labels=[0, 0, 1, 1]) == pytest.approx(
        0.8, abs=1e-14
    )


@pytest.mark.parametrize(("n", "d", "classes"), [(40, 5, 3), (20, 60, 3), (30, 30, 2), (90, 12, 5)])
def test_hscores_against_loop_implementation(n, d, classes):
    rng = np.random.default_rng(n + d)
    labels = rng.permutation(np.arange(n) % classes)
    features = (
        rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
        + rng.normal(size=(classes, d))[labels]
        + 2
    )
    # the formula itself (``score`` would first reduce D > N / 4: see test_regimes.py)
    assert hscore_formula(features, labels) == pytest.approx(
        naive_hscore(features, labels), rel=1e-8
    )
    assert selection.score("hscore_shrinkage", features=features, labels=labels) == pytest.approx(
        naive_hscore(features, labels, shrink=True), rel=1e-8
    )
    shrinkage = our_shrinkage(_moments(features, labels))
    assert shrinkage == pytest.approx(ledoit_wolf_shrinkage(features), rel=1e-10, abs=1e-14)


def test_hscore_needs_two_samples_per_class():
    with pytest.raises(ValueError, match="at least 2 samples per class"):
        selection.score("hscore", features=np.ones((3, 2)) * [[1], [2], [3]], labels=[0, 0, 1])


# ---------------------------------------------------------------- LogME


def dense_log_evidence(features: np.ndarray, y: np.ndarray, alpha: float, beta: float) -> float:
    """log N(y | 0, beta^-1 I + alpha^-1 F F^T) from the dense N x N covariance."""
    n = len(y)
    cov = np.eye(n) / beta + features @ features.T / alpha
    return float(scipy.stats.multivariate_normal(mean=np.zeros(n), cov=cov).logpdf(y))


@pytest.mark.parametrize(("n", "d"), [(40, 5), (20, 60), (30, 30)])
def test_logme_evidence_matches_dense_marginal_likelihood(n, d):
    features, labels = clustered(n, d, 3, seed=n * d, spread=0.7)
    fits = logme_per_class(features, labels)
    for c, fit in enumerate(fits):
        y = (labels == c).astype(np.float64)
        assert fit.log_evidence == pytest.approx(
            dense_log_evidence(features, y, fit.alpha, fit.beta), rel=1e-9
        )
    expected = np.mean([fit.log_evidence for fit in fits]) / n
    assert selection.score("logme", features=features, labels=labels) == pytest.approx(
        expected, rel=1e-12
    )


@pytest.mark.parametrize(("n", "d"), [(40, 5), (20, 60)])
def test_logme_fixed_point_is_the_maximum(n, d):
    features, labels = clustered(n, d, 2, seed=7, spread=0.7)
    for c, fit in enumerate(logme_per_class(features, labels, tol=1e-12, max_iter=10_000)):
        y = (labels == c).astype(np.float64)

        def negative(log_ab, y=y):
            return -dense_log_evidence(features, y, np.exp(log_ab[0]), np.exp(log_ab[1]))

        point = np.log([fit.alpha, fit.beta])
        # stationary: the gradient in (log alpha, log beta) vanishes
        gradient = optimize.approx_fprime(point, negative, 1e-6)
        assert np.abs(gradient).max() < 1e-4
        # and no better point nearby: a generic optimiser started elsewhere does not beat it
        best = optimize.minimize(
            negative,
            point + [1.0, -1.0],
            method="Nelder-Mead",
            options={"xatol": 1e-8, "fatol": 1e-10},
        )
        assert fit.log_evidence >= -best.fun - 1e-7


def test_logme_class_without_signal_takes_the_alpha_to_infinity_limit():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 10)
    y0 = (labels == 0).astype(np.float64)
    features = rng.normal(size=(20, 3))
    # make every feature orthogonal to the class-0 indicator (and hence to class 1's: 1 - y0)
    features -= np.outer(y0, y0 @ features) / 10 + np.outer(1 - y0, (1 - y0) @ features) / 10
    fit = logme_per_class(features, labels)[0]
    assert fit.alpha == np.inf
    expected = (
        10 * np.log(2.0) - 10 - 10 * np.log(2 * np.pi)
    )  # beta = N/||y||^2 = 2, L = N/2 log beta - N/2 - N/2 log 2pi
    assert fit.log_evidence == pytest.approx(expected, rel=1e-12)
    assert fit.log_evidence == pytest.approx(
        dense_log_evidence(features, y0, 1e300, 2.0), rel=1e-12
    )


# ---------------------------------------------------------------- NLEEP


def test_nleep_is_leep_of_independently_fitted_mixture_posteriors():
    features, labels = clustered(150, 6, 3, seed=11, spread=0.8)
    value = selection.score("nleep", features=features, labels=labels, seed=3)
    assert (
        selection.score("nleep", features=features, labels=labels, seed=3) == value
    )  # deterministic
    # NLEEP fits on the rows in lexicographic order of the features (order-free k-means start)
    order = np.lexsort(features.T[::-1])
    features, labels = features[order], labels[order]
    centred = features - features.mean(axis=0)
    reduced = PCA(n_components=0.8, svd_solver="full").fit_transform(
        centred / np.abs(centred).max()
    )
    reduced /= np.sqrt(np.mean(np.var(reduced, axis=0)))
    theta = GaussianMixture(n_components=15, random_state=3).fit(reduced).predict_proba(reduced)
    assert value == pytest.approx(naive_leep(theta, labels), abs=1e-8)
    # the posteriors do not depend on the features' scale
    assert selection.score(
        "nleep", features=features * 1e3, labels=labels, seed=3
    ) == pytest.approx(value, abs=1e-8)


def test_nleep_fits_a_stratified_subset_and_scores_every_row():
    features, labels = clustered(300, 5, 4, seed=12, spread=0.8)
    value = selection.score("nleep", features=features, labels=labels, seed=2, fit_samples=120)
    # independent reference: PCA and mixture fitted on the subset, posteriors for all 300 rows
    # (rows in lexicographic order of the features, as NLEEP puts them)
    order = np.lexsort(features.T[::-1])
    features, labels = features[order], labels[order]
    rows = stratified_cap(labels, 120, 2)
    centred = features - features.mean(axis=0)
    centred /= np.abs(centred).max()
    pca = PCA(n_components=0.8, svd_solver="full").fit(centred[rows])
    unit = np.sqrt(np.mean(np.var(pca.transform(centred[rows]), axis=0)))
    mixture = GaussianMixture(n_components=20, random_state=2).fit(
        pca.transform(centred[rows]) / unit
    )
    theta = mixture.predict_proba(pca.transform(centred) / unit)
    assert theta.shape == (300, 20)
    assert value == pytest.approx(naive_leep(theta, labels), abs=1e-8)
    # below the bound, the subset is every row: the default equals no bound at all
    assert selection.score("nleep", features=features, labels=labels, seed=2) == (
        selection.score("nleep", features=features, labels=labels, seed=2, fit_samples=None)
    )


def test_nleep_posteriors_in_row_blocks_equal_one_block(monkeypatch):
    import selection.methods.nleep as nleep_module

    features, labels = clustered(300, 5, 4, seed=12, spread=0.8)
    for fit_samples in (None, 120):  # the fitted rows are all rows, or a subset
        whole = selection.score("nleep", features=features, labels=labels, fit_samples=fit_samples)
        monkeypatch.setattr(nleep_module, "BLOCK", 7)
        blocks = selection.score("nleep", features=features, labels=labels, fit_samples=fit_samples)
        monkeypatch.undo()
        assert blocks == pytest.approx(whole, abs=1e-12)


def test_nleep_caps_the_number_of_components():
    features, labels = clustered(150, 6, 3, seed=11, spread=0.8)
    capped = selection.score("nleep", features=features, labels=labels, seed=3, max_components=3)
    one_per_class = selection.score(
        "nleep", features=features, labels=labels, seed=3, components_per_class=1
    )
    assert capped == one_per_class
    with pytest.raises(ValueError, match="max_components must be >= 1"):
        selection.score("nleep", features=features, labels=labels, max_components=0)


def test_nleep_needs_enough_samples_for_its_components():
    features, labels = clustered(12, 4, 3, seed=0)
    with pytest.raises(ValueError, match="15 mixture components"):
        selection.score("nleep", features=features, labels=labels)


# ---------------------------------------------------------------- PARC / RSA


def reference_rdm(x: np.ndarray) -> np.ndarray:
    if x.shape[1] > 32:
        x = PCA(n_components=32, svd_solver="full").fit_transform(x)
    return 1 - np.corrcoef(StandardScaler().fit_transform(x))


def naive_parc(features: np.ndarray, labels: np.ndarray) -> float:
    upper = np.triu_indices(len(labels), k=1)
    label_rdm = 1 - np.corrcoef(np.eye(labels.max() + 1)[labels])
    return 100 * scipy.stats.spearmanr(reference_rdm(features)[upper], label_rdm[upper]).statistic


@pytest.mark.parametrize(("n", "d"), [(60, 50), (80, 10)])
def test_parc_and_rsa_against_reference_computation(n, d):
    features, labels = clustered(n, d, 4, seed=n, spread=0.5)
    assert selection.score("parc", features=features, labels=labels) == pytest.approx(
        naive_parc(features, labels), rel=1e-9
    )
    probe = (
        np.random.default_rng(1).normal(size=(n, 40))
        + np.eye(4)[labels] @ np.ones((4, 40)) * labels[:, None]
    )
    upper = np.triu_indices(n, k=1)
    expected = (
        100
        * scipy.stats.spearmanr(
            reference_rdm(features)[upper], reference_rdm(probe)[upper]
        ).statistic
    )
    value = selection.score("rsa", features=features, probe_features=probe)
    assert value == pytest.approx(expected, rel=1e-9)
    assert selection.score("rsa", features=features, probe_features=features) == pytest.approx(
        100.0
    )


def test_parc_perfect_clusters_and_degenerate_inputs():
    labels = np.repeat(np.arange(3), 5)
    assert selection.score("parc", features=np.eye(3)[labels], labels=labels) == pytest.approx(
        100.0
    )
    assert selection.score("parc", features=np.ones((15, 4)), labels=labels) == 0.0
    with pytest.raises(ValueError, match="class with at least 2 samples"):
        selection.score("parc", features=np.eye(4), labels=[0, 1, 2, 3])


# ---------------------------------------------------------------- stratified cap


def test_stratified_cap_is_proportional_seeded_and_keeps_two_per_class():
    labels = np.repeat(np.arange(5), [100, 50, 3, 2, 1])
    chosen = stratified_cap(labels, 40, seed=0)
    assert len(chosen) == 40 and len(np.unique(chosen)) == 40 and np.all(np.diff(chosen) > 0)
    # floors [2, 2, 2, 2, 1]; 31 more shared as 98 : 48 : 1 -> 20.67, 10.12, 0.21 -> [23, 12, 2, 2, 1]
    assert np.bincount(labels[chosen]).tolist() == [23, 12, 2, 2, 1]
    assert np.array_equal(stratified_cap(labels, 40, seed=0), chosen)
    assert not np.array_equal(stratified_cap(labels, 40, seed=1), chosen)
    # a cap below 2 per class keeps one of each
    assert np.bincount(labels[stratified_cap(labels, 6, seed=0)]).tolist() == [2, 1, 1, 1, 1]
    assert np.array_equal(stratified_cap(labels, 1000, seed=0), np.arange(156))
    with pytest.raises(ValueError, match="smaller than the number of classes 5"):
        stratified_cap(labels, 4, seed=0)


def test_stratified_cap_draws_uniformly_within_classes():
    labels = np.repeat([0, 1], [200, 200])
    hits = np.zeros(400)
    for seed in range(200):
        hits[stratified_cap(labels, 20, seed)] += 1
    # each sample is drawn with probability 10/200: 10 times in 200 draws on average
    assert hits.mean() == pytest.approx(10.0)
    assert hits.max() < 25
