"""Domain similarity, feature metrics, GBC, TransRate, SFDA, probe accuracies and Random.

Each score is checked against hand-computed values or a naive re-implementation of its reference
formula, for invariances, determinism and clear errors. The properties every method shares (no
NaN, permutation invariance, bad input refused) are in test_method_contract.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.optimize
import scipy.special
import scipy.stats

from selection.methods.sfda import sfda as sfda_formula
from selection.methods.transrate import transrate as transrate_formula
from selection.registry import score


def _blobs(n_per_class: int, dim: int, n_classes: int, spread: float, seed: int):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    centres = rng.normal(size=(n_classes, dim)) * spread
    return centres[labels] + rng.normal(size=(len(labels), dim)), labels


# ---------------------------------------------------------------- domain similarity


def _emd_linprog(a: np.ndarray, b: np.ndarray, cost: np.ndarray) -> float:
    """EMD as the transport linear programme, solved by scipy (independent of POT)."""
    m, n = cost.shape
    rows = np.kron(np.eye(m), np.ones(n))  # sum_j f_ij = a_i
    cols = np.kron(np.ones(m), np.eye(n))  # sum_i f_ij = b_j
    res = scipy.optimize.linprog(
        cost.ravel(), A_eq=np.vstack([rows, cols]), b_eq=np.concatenate([a, b]), bounds=(0, None)
    )
    assert res.success
    return float(res.fun)


def test_domain_similarity_identical_profiles_is_one():
    means = np.array([[0.0, 1.0], [3.0, -2.0], [5.0, 5.0]])
    counts = np.array([6, 8, 12])
    labels = np.repeat(np.arange(3), counts)
    # target samples spread symmetrically around the source means: identical class means
    offsets = np.where(np.arange(len(labels)) % 2 == 0, 0.5, -0.5)[:, None]
    features = means[labels] + offsets
    assert score(
        "domain_similarity", features=features, labels=labels, source_profile=(means, counts)
    ) == pytest.approx(1.0, abs=1e-12)


def test_domain_similarity_hand_computed_emd():
    # source: one class at the origin; target: 1 sample at (3, 4), 3 at the origin.
    # Weights 1/4 and 3/4; the quarter of the mass at (3, 4) moves distance 5: EMD = 1.25
    features = np.array([[3.0, 4.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    labels = np.array([0, 1, 1, 1])
    profile = (np.zeros((1, 2)), np.array([10]))
    value = score("domain_similarity", features=features, labels=labels, source_profile=profile)
    assert value == pytest.approx(np.exp(-0.01 * 1.25), rel=1e-12)
    value = score(
        "domain_similarity", features=features, labels=labels, source_profile=profile, gamma=2.0
    )
    assert value == pytest.approx(np.exp(-2.0 * 1.25), rel=1e-12)
    # source: half the mass at the origin, half at (6, 8); target all at the origin: EMD = 5
    profile = (np.array([[0.0, 0.0], [6.0, 8.0]]), np.array([7, 7]))
    value = score(
        "domain_similarity", features=np.zeros((4, 2)), labels=labels, source_profile=profile
    )
    assert value == pytest.approx(np.exp(-0.01 * 0.5 * 10), rel=1e-12)


def test_domain_similarity_matches_linear_programme():
    rng = np.random.default_rng(3)
    features, labels = _blobs(4, 5, 3, spread=3.0, seed=4)
    labels = np.concatenate([labels, [2, 2]])  # unequal class weights
    features = np.vstack([features, rng.normal(size=(2, 5))])
    source_means = rng.normal(size=(4, 5)) * 3
    source_counts = np.array([5, 20, 8, 11])
    value = score(
        "domain_similarity",
        features=features,
        labels=labels,
        source_profile=(source_means, source_counts),
    )
    target_means = np.stack([features[labels == c].mean(0) for c in range(3)])
    target_weights = np.bincount(labels) / len(labels)
    cost = np.linalg.norm(source_means[:, None] - target_means[None], axis=2)
    emd = _emd_linprog(source_counts / source_counts.sum(), target_weights, cost)
    assert value == pytest.approx(np.exp(-0.01 * emd), rel=1e-7)


def test_domain_similarity_drops_rare_source_classes():
    means = np.array([[0.0, 0.0], [1.0, 1.0], [50.0, 50.0]])
    labels = np.array([0, 0, 1, 1])
    features = means[labels]
    # the far class has 4 < 5 images: dropped, so the rest matches the target exactly
    profile = (means, np.array([10, 10, 4]))
    assert score("domain_similarity", features=features, labels=labels, source_profile=profile) == (
        pytest.approx(1.0)
    )
    kept = score(
        "domain_similarity", features=features, labels=labels, source_profile=profile, min_count=3
    )
    assert kept < 0.9
    with pytest.raises(ValueError, match="min_count"):
        score(
            "domain_similarity",
            features=features,
            labels=labels,
            source_profile=profile,
            min_count=11,
        )


def test_domain_similarity_rejects_wrong_feature_dimension():
    features, labels = _blobs(3, 4, 2, spread=1.0, seed=0)
    with pytest.raises(ValueError, match="D=5.*D=4"):
        score(
            "domain_similarity",
            features=features,
            labels=labels,
            source_profile=(np.zeros((3, 5)), np.ones(3) * 9),
        )
    with pytest.raises(ValueError, match="gamma"):
        score(
            "domain_similarity",
            features=features,
            labels=labels,
            source_profile=(np.zeros((3, 4)), np.ones(3) * 9),
            gamma=0.0,
        )


# ---------------------------------------------------------------- feature metrics


def test_feature_metrics_hand_computed():
    features = np.array([[0.0], [2.0], [4.0], [6.0]])
    labels = np.array([0, 0, 1, 1])
    # grand mean 3, class means 1 and 5: tr S_B = 4, tr S_T = (9 + 1 + 1 + 9) / 4 = 5
    assert score("feature_variance_ratio", features=features, labels=labels) == pytest.approx(0.8)
    # max |F| = 6, tolerance 0.006: only the exact zero counts
    assert score("feature_density", features=features) == pytest.approx(0.75)
    # paper's Feature Metrics: (inactive fraction + Hoyer sparsity) / 2; one column: Hoyer 1
    assert score("feature_metrics", features=features) == pytest.approx((0.25 + 1.0) / 2)
    # rows [0, 1] (one unit: Hoyer 1) and [3, 3] (equal units: Hoyer 0); one entry in four is 0
    two = np.array([[0.0, 1.0], [3.0, 3.0]])
    assert score("feature_metrics", features=two) == pytest.approx((0.25 + 0.5) / 2)
    assert score("feature_metrics", features=np.zeros((3, 2))) == 1.0
    # Hoyer of a generic row from its definition (sqrt(D) - l1 / l2) / (sqrt(D) - 1)
    row = np.array([[1.0, -2.0, 0.5, 4.0]])
    hoyer = (2.0 - 7.5 / np.sqrt(1 + 4 + 0.25 + 16)) / (2.0 - 1.0)
    assert score("feature_metrics", features=row) == pytest.approx(hoyer / 2, rel=1e-12)
    # sparser (ReLU) features score higher than dense ones: the paper's orientation
    dense = np.random.default_rng(0).normal(size=(50, 16))
    assert score("feature_metrics", features=np.maximum(dense, 0)) > score(
        "feature_metrics", features=dense
    )
    sparse = np.array([[0.0, 1.0], [2.0, 0.001]])
    # tolerance 1e-3 * 2: 0 and 0.001; 0.6 * 2: 0, 0.001 and 1; 0: only the exact zero
    assert score("feature_density", features=sparse) == pytest.approx(1 - 0.5)
    assert score("feature_density", features=sparse, rel_tol=0.6) == pytest.approx(1 - 0.75)
    assert score("feature_density", features=sparse, rel_tol=0.0) == pytest.approx(1 - 0.25)
    assert score("feature_density", features=np.zeros((3, 2))) == 0.0
    with pytest.raises(ValueError, match="rel_tol"):
        score("feature_density", features=sparse, rel_tol=1.0)


def test_feature_variance_ratio_matches_scatter_matrices():
    features, labels = _blobs(6, 4, 3, spread=1.5, seed=1)
    mu = features.mean(0)
    s_w = sum(
        (features[labels == c] - features[labels == c].mean(0)).T
        @ (features[labels == c] - features[labels == c].mean(0))
        for c in range(3)
    )
    s_b = sum(
        (labels == c).sum()
        * np.outer(features[labels == c].mean(0) - mu, features[labels == c].mean(0) - mu)
        for c in range(3)
    )
    ratio = np.trace(s_b) / np.trace(s_w)
    value = score("feature_variance_ratio", features=features, labels=labels)
    assert value == pytest.approx(ratio / (1 + ratio), rel=1e-12)
    # scale and offset free
    assert score(
        "feature_variance_ratio", features=7 * features + 3, labels=labels
    ) == pytest.approx(value)
    assert score("feature_variance_ratio", features=np.ones((6, 2)), labels=np.arange(6) % 2) == 0.0


# ---------------------------------------------------------------- GBC


def _gbc_naive(features: np.ndarray, labels: np.ndarray, spherical: bool = False) -> float:
    """Bhattacharyya coefficient of diagonal Gaussians with explicit covariance matrices."""
    classes = np.unique(labels)
    stats = []
    for c in classes:
        x = features[labels == c]
        var = np.maximum(x.var(0), 1e-4)
        if spherical:
            var = np.full_like(var, var.mean())
        stats.append((x.mean(0), np.diag(var)))
    total = 0.0
    for i, (m1, s1) in enumerate(stats):
        for j, (m2, s2) in enumerate(stats):
            if i == j:
                continue
            s = (s1 + s2) / 2
            d = m1 - m2
            db = d @ np.linalg.inv(s) @ d / 8 + 0.5 * np.log(
                np.linalg.det(s) / np.sqrt(np.linalg.det(s1) * np.linalg.det(s2))
            )
            total += np.exp(-db)
    return -total


def test_gbc_hand_computed_two_classes():
    features = np.array([[0.0], [2.0], [4.0], [8.0]])
    labels = np.array([0, 0, 1, 1])
    # means 1 and 6, variances 1 and 4, average 2.5
    distance = 25 / 2.5 / 8 + 0.5 * np.log(2.5 / np.sqrt(1 * 4))
    assert score("gbc", features=features, labels=labels) == pytest.approx(
        -2 * np.exp(-distance), rel=1e-12
    )


def test_gbc_limits_identical_and_separated_classes():
    rng = np.random.default_rng(0)
    block = rng.normal(size=(5, 3))
    identical = np.vstack([block, block, block])
    labels = np.repeat(np.arange(3), 5)
    assert score("gbc", features=identical, labels=labels) == pytest.approx(-3 * 2, rel=1e-12)
    separated = identical + 1e3 * labels[:, None]
    assert -1e-12 < score("gbc", features=separated, labels=labels) <= 0.0


def test_gbc_matches_naive_formula():
    features, labels = _blobs(7, 5, 4, spread=1.0, seed=2)
    assert score("gbc", features=features, labels=labels) == pytest.approx(
        _gbc_naive(features, labels), rel=1e-10
    )


def test_gbc_pca_projects_onto_top_components():
    features, labels = _blobs(30, 80, 3, spread=0.5, seed=5)
    centred = features - features.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ vt[:64].T  # component signs do not change GBC
    reduced = score("gbc", features=features, labels=labels)
    assert reduced == pytest.approx(_gbc_naive(projected, labels), rel=1e-6)
    assert score("gbc", features=features, labels=labels, pca_dim=None) == pytest.approx(
        _gbc_naive(features, labels), rel=1e-10
    )


def test_gbc_spherical_and_errors():
    features = np.array([[0.0, 0.0], [2.0, 2.0], [4.0, 4.0], [8.0, 8.0]])
    labels = np.array([0, 0, 1, 1])
    # equal spread in both dimensions: spherical and diagonal agree
    assert score("gbc", features=features, labels=labels, covariance="spherical") == pytest.approx(
        _gbc_naive(features, labels)
    )
    # spread in one dimension only: floored variances (1, 1e-4) and (4, 1e-4) average per class
    flat = features * [1.0, 0.0]
    spherical = score("gbc", features=flat, labels=labels, covariance="spherical")
    s0, s1 = (1 + 1e-4) / 2, (4 + 1e-4) / 2
    distance = 25 / ((s0 + s1) / 2) / 8 + 0.5 * 2 * np.log((s0 + s1) / 2 / np.sqrt(s0 * s1))
    assert spherical == pytest.approx(-2 * np.exp(-distance), rel=1e-12)
    assert spherical == pytest.approx(_gbc_naive(flat, labels, spherical=True), rel=1e-10)
    assert spherical != pytest.approx(score("gbc", features=flat, labels=labels))
    with pytest.raises(ValueError, match="at least 2 samples per class.*\\[1\\]"):
        score("gbc", features=features[:3], labels=np.array([0, 0, 1]))
    with pytest.raises(ValueError, match="covariance"):
        score("gbc", features=features, labels=labels, covariance="full")


# ---------------------------------------------------------------- TransRate


def _rate_direct(z: np.ndarray, eps: float) -> float:
    n, d = z.shape
    sign, logdet = np.linalg.slogdet(np.eye(d) + z.T @ z / (n * eps))
    assert sign > 0
    return 0.5 * logdet


def test_transrate_hand_computed():
    # centred z = [-1, -1, -1, 3]: R(Z) = 1/2 ln(1 + 12/4) = ln 2,
    # class 0 (3 x -1): 1/2 ln(1 + 3/3), class 1 (one 3): 1/2 ln(1 + 9/1)
    features = np.array([[0.0], [0.0], [0.0], [4.0]])
    labels = np.array([0, 0, 0, 1])
    expected = np.log(2) - (0.5 * np.log(2) + 0.5 * np.log(10)) / 2
    assert score("transrate", features=features, labels=labels, eps=1.0) == pytest.approx(
        expected, rel=1e-12
    )


def test_transrate_matches_direct_logdet():
    # D between the class sizes and N, so both Gram orientations are used
    features, labels = _blobs(6, 10, 3, spread=1.0, seed=7)
    z = features - features.mean(0)
    for eps in (1e-4, 0.5):
        expected = _rate_direct(z, eps) - np.mean(
            [_rate_direct(z[labels == c], eps) for c in range(3)]
        )
        # the formula itself: score() would first reduce D = 10 > n_min / 2 (see test_regimes.py)
        assert transrate_formula(features, labels, eps=eps) == pytest.approx(expected, rel=1e-9)
    # translation does not matter (features are centred)
    assert score("transrate", features=features + 5.0, labels=labels) == pytest.approx(
        score("transrate", features=features, labels=labels), rel=1e-9
    )
    with pytest.raises(ValueError, match="eps"):
        score("transrate", features=features, labels=labels, eps=-1.0)


# ---------------------------------------------------------------- SFDA


def _sfda_reference(x: np.ndarray, y: np.ndarray, log_prob: bool = False) -> float:
    """Literal transcription of the reference code's steps (eigen-solver and loops included)."""
    x = x.copy()
    classes = np.unique(y)
    n, d = x.shape

    def cov(a, shrinkage=-1.0):
        emp = np.cov(a.T, bias=True).reshape(d, d)
        if shrinkage < 0:
            return emp
        out = (1 - shrinkage) * emp
        out[np.diag_indices(d)] += shrinkage * np.trace(emp) / d
        return out

    def fit_predict(a, shrinkage=None):
        priors = np.array([(y == c).mean() for c in classes])
        means = np.stack([a[y == c].mean(0) for c in classes])
        s_w = sum(p * cov(a[y == c]) for p, c in zip(priors, classes))
        if shrinkage is None:
            shrinkage = max(np.exp(-5 * np.linalg.eigvalsh(s_w).max()), 1e-10)
        s_t = cov(a, shrinkage)
        s_w_shrunk = (1 - shrinkage) * s_w + shrinkage * np.trace(s_w) / d * np.eye(d)
        evals, evecs = scipy.linalg.eigh(s_t - s_w_shrunk, s_w_shrunk)
        evecs = evecs[:, np.argsort(evals)[::-1]]
        coef = means @ evecs @ evecs.T
        intercept = -0.5 * np.diag(means @ coef.T) + np.log(priors)
        logits = a @ coef.T + intercept
        return logits, shrinkage

    logits, shrinkage = fit_predict(x)
    prob = scipy.special.softmax(logits, axis=1)
    prob = np.exp(prob) / np.exp(prob).sum(axis=1, keepdims=True)
    means = np.stack([x[y == c].mean(0) for c in classes])
    others = [(means.sum(0) - means[i]) / (len(classes) - 1) for i in range(len(classes))]
    for i, c in enumerate(classes):
        idx = np.where(y == c)[0]
        p = prob[idx, i][:, None]
        x[idx] = p * x[idx] + (1 - p) * others[i]
    logits, _ = fit_predict(x, shrinkage)
    rows, cols = np.arange(n), np.searchsorted(classes, y)
    if log_prob:
        return float(np.mean(scipy.special.log_softmax(logits, axis=1)[rows, cols]))
    return float(np.mean(scipy.special.softmax(logits, axis=1)[rows, cols]))


# shrinkage active (small sigma_max) and at its floor; D = 70 takes the Lanczos eigenvalue path
@pytest.mark.parametrize("scale, dim", [(0.3, 5), (3.0, 5), (0.1, 70)])
def test_sfda_matches_reference_transcription(scale, dim):
    features, labels = _blobs(40, dim, 3, spread=0.8, seed=11)
    features = features * scale
    # the formula itself: score() would reduce D = 70 > N / 4 first (see test_regimes.py)
    value = sfda_formula(features, labels)
    assert value == pytest.approx(_sfda_reference(features, labels), rel=1e-8)
    log_value = sfda_formula(features, labels, log_prob=True)
    assert log_value == pytest.approx(_sfda_reference(features, labels, log_prob=True), rel=1e-8)
    assert 0 < value <= 1 and log_value <= 0


def test_sfda_non_contiguous_labels_and_separation():
    features, labels = _blobs(10, 4, 3, spread=1.0, seed=12)
    relabelled = np.array([2, 7, 9])[labels]
    assert score("sfda", features=features, labels=relabelled) == pytest.approx(
        score("sfda", features=features, labels=labels), rel=1e-12
    )
    far, _ = _blobs(10, 4, 3, spread=100.0, seed=12)
    near, _ = _blobs(10, 4, 3, spread=0.1, seed=12)
    assert score("sfda", features=far, labels=labels) > 0.99
    assert score("sfda", features=far, labels=labels) > score("sfda", features=near, labels=labels)


# ---------------------------------------------------------------- probes


def test_knn_accuracy_hand_made_set():
    points = np.array([0.0, 1.0, 2.0, 10.0, 11.0, 12.0, 10.6])[:, None]
    labels = np.array([0, 0, 0, 1, 1, 1, 0])
    # 1-NN misses 10 (-> 10.6), 11 (-> 10.6) and 10.6 (-> 11)
    assert score(
        "knn_accuracy", features=points, labels=labels, k=1, metric="euclidean"
    ) == pytest.approx(4 / 7)
    # 3-NN misses only 10.6 (neighbours 11, 10, 12)
    assert score(
        "knn_accuracy", features=points, labels=labels, k=3, metric="euclidean"
    ) == pytest.approx(6 / 7)


def test_knn_tie_goes_to_the_nearest_class():
    # k=2. 0: neighbours 1 (c1), 3 (c0), a tie won by the nearer c1: wrong (a lowest-class rule
    # would be right); 1: 0, 3 (both c0): wrong; 3: 3.5, 1 (both c1): wrong; 3.5: 3 (c0),
    # 1 (c1), a tie won by c0: wrong (a highest-class rule would be right)
    points = np.array([0.0, 1.0, 3.0, 3.5])[:, None]
    labels = np.array([0, 1, 0, 1])
    assert score("knn_accuracy", features=points, labels=labels, k=2, metric="euclidean") == 0.0


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_knn_accuracy_matches_sklearn_neighbours(metric):
    from sklearn.neighbors import NearestNeighbors

    features, labels = _blobs(40, 6, 2, spread=0.7, seed=8)
    features += 0.5  # cosine differs from Euclidean away from the origin
    # exclude each sample itself: ask for k + 1 and drop the first column
    nn = NearestNeighbors(n_neighbors=6, metric=metric, algorithm="brute").fit(features)
    _, idx = nn.kneighbors(features)
    assert (idx[:, 0] == np.arange(len(labels))).all()
    votes = labels[idx[:, 1:]].sum(1)  # 5 votes, two classes: no ties
    expected = np.mean((votes >= 3).astype(int) == labels)
    assert score("knn_accuracy", features=features, labels=labels, metric=metric) == pytest.approx(
        expected
    )
    with pytest.raises(ValueError, match="k must be >= 1"):
        score("knn_accuracy", features=features, labels=labels, k=0)
    with pytest.raises(ValueError, match="metric"):
        score("knn_accuracy", features=features, labels=labels, metric="manhattan")


def test_logistic_accuracy_separable_is_one_and_seeded():
    features, labels = _blobs(10, 3, 3, spread=20.0, seed=9)
    assert score("logistic_accuracy", features=features, labels=labels) == 1.0
    noisy, labels = _blobs(10, 3, 3, spread=0.5, seed=9)
    first = score("logistic_accuracy", features=noisy, labels=labels, seed=4)
    assert first == score("logistic_accuracy", features=noisy, labels=labels, seed=4)
    assert 0.0 <= first < 1.0


def test_logistic_accuracy_matches_manual_folds():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    features, labels = _blobs(3, 4, 3, spread=0.8, seed=10)
    # smallest class has 3 samples: 3 folds
    correct = 0
    for train, test in StratifiedKFold(3, shuffle=True, random_state=0).split(features, labels):
        mean, std = features[train].mean(0), features[train].std(0)
        model = LogisticRegression(max_iter=200).fit((features[train] - mean) / std, labels[train])
        correct += (model.predict((features[test] - mean) / std) == labels[test]).sum()
    assert score("logistic_accuracy", features=features, labels=labels) == pytest.approx(
        correct / len(labels)
    )


def test_logistic_accuracy_needs_two_samples_per_class():
    features = np.arange(10.0).reshape(5, 2)
    with pytest.raises(ValueError, match="at least 2 samples per class.*\\[2\\]"):
        score("logistic_accuracy", features=features, labels=np.array([0, 0, 1, 1, 2]))


# ---------------------------------------------------------------- random


def test_random_is_deterministic_uniform_and_input_dependent():
    rng = np.random.default_rng(0)
    features, probs = rng.normal(size=(8, 3)), rng.dirichlet(np.ones(4), size=8)
    value = score("random", features=features, probs=probs, seed=1)
    assert value == score("random", features=features.copy(), probs=probs.copy(), seed=1)
    assert value != score("random", features=features, probs=probs, seed=2)
    assert value != score("random", features=features + 1e-9, probs=probs, seed=1)
    assert value != score("random", features=features, probs=probs[:, ::-1], seed=1)
    draws = [
        score("random", features=rng.normal(size=(8, 3)), probs=probs, seed=0) for _ in range(300)
    ]
    assert scipy.stats.kstest(draws, "uniform").pvalue > 1e-3
    with pytest.raises(ValueError, match="non-negative int"):
        score("random", features=features, probs=probs, seed=-1)
    with pytest.raises(ValueError, match="non-negative int"):
        score("random", features=features, probs=probs, seed=1.5)
