"""ETran, NCTI, PACTran-Gaussian, OT-NCE (Sinkhorn), PED and zoo-level scoring.

Each score is checked against an independent naive computation (explicit per-class loops,
np.linalg.svd, scikit-learn's LDA, a generic optimiser, POT's Sinkhorn, an exact assignment), and
a zoo-level method is run through evaluate_selection's scoring path on a tiny cell. The properties
every method shares (no NaN, permutation invariance, bad input refused) are in
test_method_contract.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.optimize
import scipy.special
import torch

import selection
from selection.evaluate import SCORE_COLUMNS, evaluate_selection_main
from selection.methods.ncti import ncti_parts
from selection.methods.ot_nce import sinkhorn
from selection.methods.ped import ped_step
from selection.registry import score, score_detail, score_zoo
from tests.test_evaluate_selection import PER_CLASS, SHOTS, TARGET, _cfg, tiny_zoo  # noqa: F401 (fixture)
from zoo.data import load_split
from zoo.samplers import selection_indices, shot_indices
from zoo.store import load_entry


def _blobs(n_per_class: int, dim: int, n_classes: int, spread: float, seed: int):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    centres = rng.normal(size=(n_classes, dim)) * spread
    return centres[labels] + rng.normal(size=(len(labels), dim)), labels


def _naive_min_max(values: list[float]) -> list[float]:
    lo, hi = min(values), max(values)
    return [0.0 if hi == lo else (v - lo) / (hi - lo) for v in values]


# ---------------------------------------------------------------- NCTI


def _naive_ncti_parts(features, labels, n_components=64, top=32):
    """The reference NCTI_Score: sklearn PCA + sklearn's shrunk eigen LDA, per-class loops."""
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    pca = PCA(n_components=n_components).fit(features)
    z = pca.transform(features)
    shrinkage = max(np.exp(-pca.explained_variance_[:top].sum()), 1e-10)
    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=float(shrinkage))
    low = lda.fit_transform(z, labels)
    low = low - low.mean(axis=0, keepdims=True)
    separation = np.linalg.svd(low, compute_uv=False).sum()
    probs = lda.predict_proba(z)
    ncc = np.mean([probs[i, labels[i]] for i in range(len(labels))])
    nuclear = 0.0
    for c in np.unique(labels):
        nuclear += np.linalg.svd(probs[labels == c], compute_uv=False).sum()
    return separation, ncc, np.log(nuclear)


@pytest.mark.parametrize(("classes", "seed"), [(3, 0), (2, 1), (5, 2)])
def test_ncti_parts_match_sklearn_lda_and_explicit_loops(classes, seed):
    features, labels = _blobs(30, 12, classes, spread=1.5, seed=seed)
    features = features * 0.3  # a shrinkage above its 1e-10 floor: exp(-sum of variances)
    parts = ncti_parts(features, labels, n_components=8, top=4)
    separation, ncc, collapse = _naive_ncti_parts(features, labels, n_components=8, top=4)
    # the projection's columns are defined up to sign and the whitening's scale convention
    assert parts.separation == pytest.approx(separation, rel=1e-6)
    assert parts.ncc == pytest.approx(ncc, rel=1e-8)
    assert parts.collapse == pytest.approx(collapse, rel=1e-8)


def test_ncti_zoo_value_is_the_min_max_normalised_sum():
    zoo = {}
    for i, spread in enumerate((0.5, 1.5, 3.0)):
        features, labels = _blobs(20, 6, 3, spread=spread, seed=10 + i)
        zoo[f"m{i}"] = {"features": features, "labels": labels}
    values = score_zoo("ncti", zoo)
    parts = [ncti_parts(x["features"], x["labels"]) for x in zoo.values()]
    sep = _naive_min_max([p.separation for p in parts])
    ncc = _naive_min_max([p.ncc for p in parts])
    col = _naive_min_max([p.collapse for p in parts])
    for i, entry in enumerate(zoo):
        assert values[entry].value == pytest.approx(sep[i] + ncc[i] - col[i], abs=1e-12)
    # better separated classes rank higher
    assert values["m2"].value > values["m0"].value
    # one entry alone: every part is constant over the zoo
    assert score_zoo("ncti", {"m0": zoo["m0"]})["m0"].value == 0.0


def test_ncti_regime_reduces_each_entry_and_reports_it():
    features, labels = _blobs(10, 30, 2, spread=2.0, seed=3)  # D = 30 > N / 4 = 5
    result = score_zoo("ncti", {"a": {"features": features, "labels": labels}})
    assert result["a"].remedy.startswith("pca to 5 dims")


# ---------------------------------------------------------------- ETran


def test_etran_energy_is_the_mean_of_the_lowest_logsumexp():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(400, 5))
    lse = [np.log(sum(np.exp(v) for v in row)) for row in features]
    lowest = sorted(lse)[:2]  # 0.5% of 400
    assert score("etran_energy", features=features) == pytest.approx(np.mean(lowest), rel=1e-12)
    every = score("etran_energy", features=features, fraction=1.0)
    assert every == pytest.approx(np.mean(lse), rel=1e-12)
    # at least one sample below N = 200
    assert score("etran_energy", features=features[:50]) == pytest.approx(min(lse[:50]))


def _naive_lda_score(features, labels):
    n, d = features.shape
    classes = np.unique(labels)
    means = np.array([features[labels == c].mean(axis=0) for c in classes])
    within = np.zeros((d, d))
    for c, mean in zip(classes, means):
        for x in features[labels == c]:
            within += np.outer(x - mean, x - mean) / n
    lam = max(np.exp(-5 * np.linalg.eigvalsh(within).max()), 1e-10)
    shrunk = (1 - lam) * within + lam * np.trace(within) / d * np.eye(d)
    inv = np.linalg.inv(shrunk)
    total = 0.0
    for x, y in zip(features, labels):
        logits = [
            x @ inv @ m - 0.5 * m @ inv @ m + np.log(np.mean(labels == c))
            for c, m in zip(classes, means)
        ]
        total += scipy.special.softmax(logits)[list(classes).index(y)]
    return total / n


def test_etran_lda_matches_explicit_lda():
    features, labels = _blobs(15, 4, 3, spread=1.0, seed=4)
    value = score("etran_lda", features=features, labels=labels)
    assert value == pytest.approx(_naive_lda_score(features, labels), rel=1e-9)


def test_etran_zoo_value_and_lda_regime():
    zoo = {}
    for i, spread in enumerate((0.3, 2.0)):
        features, labels = _blobs(20, 5, 2, spread=spread, seed=20 + i)
        zoo[f"m{i}"] = {"features": features, "labels": labels}
    zoo["m2"] = {"features": zoo["m1"]["features"] + 3.0, "labels": zoo["m1"]["labels"]}
    values = score_zoo("etran", zoo)
    energy = _naive_min_max([score("etran_energy", **x) for x in zoo.values()])
    lda = _naive_min_max([score("etran_lda", **x) for x in zoo.values()])
    for i, entry in enumerate(zoo):
        assert values[entry].value == pytest.approx(energy[i] + lda[i], abs=1e-9)
    wide, labels = _blobs(8, 20, 2, spread=1.0, seed=5)  # D = 20 > N / 4 = 4
    assert score_detail("etran_lda", features=wide, labels=labels).remedy.startswith("pca to 4")


# ---------------------------------------------------------------- PACTran-Gaussian


def _naive_pactran(features, labels, lda_factor=1.0, s2_factor=1.0):
    n, d = features.shape
    c = labels.max() + 1
    ldas2 = lda_factor * n

    def loss(theta):
        w, b = theta[: d * c].reshape(d, c), theta[d * c :]
        total = 0.0
        for x, y in zip(features, labels):
            logits = x @ w + b
            total -= logits[y] - np.log(np.sum(np.exp(logits)))
        return total / n + 0.5 * np.sum(w * w) / ldas2

    theta = scipy.optimize.minimize(loss, np.zeros((d + 1) * c), method="BFGS", tol=1e-12).x
    w, b = theta[: d * c].reshape(d, c), theta[d * c :]
    h = 0.0
    for x in features:
        p = scipy.special.softmax(x @ w + b)
        for k in range(c):
            h += sum(x[j] ** 2 for j in range(d)) * p[k] * (1 - p[k]) + p[k] * (1 - p[k])
    h += d * c / ldas2
    sigma2_inv = h * ldas2 / (d * c) + 1e-10
    bound = loss(theta) + 0.5 * d * c / ldas2 * (s2_factor / d) * np.log(sigma2_inv)
    return -bound


@pytest.mark.parametrize(
    ("d", "c", "lda_factor", "s2_factor"), [(1, 2, 1.0, 1.0), (2, 3, 0.1, 10.0)]
)
def test_pactran_gaussian_matches_a_naive_map_and_bound(d, c, lda_factor, s2_factor):
    features, labels = _blobs(4, d, c, spread=1.0, seed=d + c)
    value = score(
        "pactran_gaussian",
        features=features,
        labels=labels,
        lda_factor=lda_factor,
        s2_factor=s2_factor,
    )
    naive = _naive_pactran(features, labels, lda_factor, s2_factor)
    assert value == pytest.approx(naive, rel=1e-6)


def test_pactran_prefers_separable_features():
    good, labels = _blobs(20, 4, 3, spread=4.0, seed=7)
    bad = np.random.default_rng(7).normal(size=good.shape)
    assert score("pactran_gaussian", features=good, labels=labels) > score(
        "pactran_gaussian", features=bad, labels=labels
    )


# ---------------------------------------------------------------- OT-NCE and Sinkhorn


@pytest.mark.slow  # ~2 min: Sinkhorn contracts by ~tanh(range / 4 reg)^2 per sweep at small reg
def test_sinkhorn_tends_to_the_exact_assignment():
    rng = np.random.default_rng(0)
    for _ in range(5):
        # a unique optimal assignment with a clear gap to the others
        perm = rng.permutation(3)
        cost = 1.0 - 0.8 * np.eye(3)[perm] + 0.1 * rng.uniform(size=(3, 3))
        rows, cols = scipy.optimize.linear_sum_assignment(cost)
        exact = np.zeros((3, 3))
        exact[rows, cols] = 1.0 / 3
        errors = []
        for reg in (0.05, 0.03):
            plan = sinkhorn(np.full(3, 1 / 3), np.full(3, 1 / 3), cost, reg=reg, tol=1e-8)
            errors.append(np.abs(plan - exact).max())
        assert errors[0] > errors[1] and errors[1] < 1e-6
        assert np.sum(plan * cost) == pytest.approx(np.sum(exact * cost), abs=1e-6)


def test_sinkhorn_matches_pot_on_unequal_marginals():
    import ot

    rng = np.random.default_rng(1)
    a, b = rng.uniform(1, 2, size=4), rng.uniform(1, 2, size=6)
    a, b = a / a.sum(), b / b.sum()
    cost = rng.uniform(size=(4, 6))
    plan = sinkhorn(a, b, cost, reg=0.1)
    reference = ot.sinkhorn(a, b, cost, 0.1, stopThr=1e-12, numItermax=100_000)
    np.testing.assert_allclose(plan, reference, atol=1e-9)
    np.testing.assert_allclose(plan.sum(axis=1), a, atol=1e-10)
    np.testing.assert_allclose(plan.sum(axis=0), b, atol=1e-10)


def _naive_ot_nce(features, labels, means, counts, reg):
    import ot

    cost = np.array([[np.sum((m - x) ** 2) for x in features] for m in means])
    n = len(labels)
    plan = ot.sinkhorn(
        counts / counts.sum(),
        np.full(n, 1 / n),
        cost / cost.max(),
        reg,
        stopThr=1e-12,
        numItermax=100_000,
        method="sinkhorn_log",
    )
    classes = np.unique(labels)
    joint = np.array([[plan[s, labels == t].sum() for t in classes] for s in range(len(means))])
    ce = 0.0
    for s in range(len(means)):
        for t in range(len(classes)):
            if joint[s, t] > 0:
                ce -= joint[s, t] * np.log(joint[s, t] / joint[s].sum())
    return -ce


def test_ot_nce_matches_a_naive_coupling_and_hand_cases():
    features, labels = _blobs(6, 3, 3, spread=2.0, seed=8)
    rng = np.random.default_rng(8)
    means, counts = rng.normal(size=(4, 3)) * 2, np.array([5.0, 10.0, 0.0, 7.0])
    value = score(
        "ot_nce", features=features, labels=labels, source_profile=(means, counts), reg=0.05
    )
    naive = _naive_ot_nce(features, labels, means[counts > 0], counts[counts > 0], 0.05)
    assert value == pytest.approx(naive, rel=1e-6)
    # source classes sitting on well separated target classes: each maps to one, H = 0
    centres = np.array([[0.0, 0.0], [10.0, 0.0]])
    labels = np.repeat([0, 1], 5)
    features = centres[labels] + 0.01 * np.random.default_rng(9).normal(size=(10, 2))
    profile = (centres, np.array([5.0, 5.0]))
    exact = score("ot_nce", features=features, labels=labels, source_profile=profile)
    assert exact == pytest.approx(0.0, abs=1e-9)
    # one source class: H(Y_t | Y_s) = H(Y_t) = log 2
    one = (np.zeros((1, 2)), np.array([3.0]))
    assert score("ot_nce", features=features, labels=labels, source_profile=one) == pytest.approx(
        -np.log(2.0), rel=1e-9
    )
    with pytest.raises(ValueError, match="same feature extractor"):
        score("ot_nce", features=features, labels=labels, source_profile=(np.zeros((2, 3)), [1, 1]))


# ---------------------------------------------------------------- PED


def _naive_ped_step(x, labels, shift, scale, time_step=0.1, nsigma=2.0, constant=1.0):
    z = (x - shift) / scale
    classes = list(np.unique(labels))
    means = {c: z[labels == c].mean(axis=0) for c in classes}
    radius = {c: np.sqrt(z[labels == c].var(axis=0).sum()) for c in classes}
    delta = {c: np.zeros(x.shape[1]) for c in classes}
    for i in classes:
        for j in classes:
            if i == j:
                continue
            diff = means[i] - means[j]
            d = np.linalg.norm(diff)
            overlap = max(nsigma * radius[i] + nsigma * radius[j] - d, 0.0)
            delta[i] += diff / d * min(0.5 * time_step**2 * constant * overlap, overlap)
    moved = np.array([z[k] + delta[y] for k, y in enumerate(labels)]) * scale + shift
    return moved, sum(np.abs(v).sum() for v in delta.values())


def test_ped_step_and_score_match_the_naive_simulation():
    features, labels = _blobs(10, 3, 3, spread=1.0, seed=11)
    shift, scale = features.mean(axis=0), np.maximum(features.std(axis=0), 1e-3)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    moved, change = ped_step(features, inverse, counts, shift, scale, 0.1, 2.0, 1.0)
    naive, naive_change = _naive_ped_step(features, labels, shift, scale)
    np.testing.assert_allclose(moved, naive, atol=1e-12)
    assert change == pytest.approx(naive_change, rel=1e-12) and change > 0
    # the reference's loop: keep stepping while a step moves more than half the first one
    x, first = features, None
    for _ in range(6):
        step, ch = _naive_ped_step(x, labels, shift, scale)
        first = ch if first is None else first
        if ch / first <= 0.5:
            break
        x = step
    expected = score("sfda", features=x, labels=labels)
    assert score("ped", features=features, labels=labels) == pytest.approx(expected, rel=1e-10)
    assert score("ped", features=features, labels=labels, base="logme") == pytest.approx(
        score("logme", features=x, labels=labels), rel=1e-10
    )
    # classes far apart do not overlap: nothing moves and PED equals the base score
    far, labels = _blobs(10, 3, 3, spread=100.0, seed=12)
    assert score("ped", features=far, labels=labels) == score("sfda", features=far, labels=labels)
    with pytest.raises(ValueError, match="base must be one of"):
        score("ped", features=far, labels=labels, base="hscore")


# ---------------------------------------------------------------- zoo-level scoring


def test_zoo_level_registry_contract():
    features, labels = _blobs(10, 3, 2, spread=1.0, seed=13)
    inputs = {"features": features, "labels": labels}
    with pytest.raises(ValueError, match=r"zoo-level.*selection\.score_zoo"):
        score("ncti", **inputs)
    with pytest.raises(ValueError, match="non-empty mapping"):
        score_zoo("ncti", {})
    with pytest.raises(ValueError, match="unknown parameters"):
        score_zoo("ncti", {"a": inputs}, bogus=1)
    with pytest.raises(ValueError, match="entry 'b'.*NaN"):
        bad = features.copy()
        bad[0, 0] = np.nan
        score_zoo("ncti", {"a": inputs, "b": {"features": bad, "labels": labels}})
    # a per-entry method through score_zoo: the same as score_detail entry by entry
    other = {"features": features * 2 + 1, "labels": labels}
    results = score_zoo("logme", {"a": inputs, "b": other})
    assert results["b"] == score_detail("logme", **other)
    with pytest.raises(ValueError, match="must take `entries`"):
        selection.register_method("broken_zoo", needs=("features",), level="zoo")(
            lambda features: {}
        )
    with pytest.raises(ValueError, match="level must be one of"):
        selection.register_method("broken_level", needs=("features",), level="cell")


def test_zoo_level_method_through_evaluate_selection(tiny_zoo, tmp_path):  # noqa: F811
    entries = ["alpha", "beta", "gamma@d1", "gamma@d2"]
    results = evaluate_selection_main(_cfg(tmp_path, tiny_zoo, method="ncti"))
    table = results[(TARGET, str(SHOTS), "ncti")]
    path = tmp_path / "selection" / TARGET / f"shots={SHOTS}" / "ncti.parquet"
    pd.testing.assert_frame_equal(table, pd.read_parquet(path))
    assert list(table.columns) == SCORE_COLUMNS
    assert table["entry"].tolist() == entries and (table["seed"] == 0).all()
    assert table["key"].nunique() == 1 and (table["score_seconds"] > 0).all()
    np.testing.assert_allclose(table["seconds"], table["extract_seconds"] + table["score_seconds"])
    # independent reference: the drawn samples' features from the stored models, one zoo call
    train = load_split(TARGET, "train")
    shot = shot_indices(train.labels, SHOTS, 0)
    idx = shot[selection_indices(train.labels[shot], PER_CLASS, 0)]
    images, labels = train.subset(idx).tensors()
    zoo = {}
    for entry in entries:
        with torch.no_grad():
            feats = load_entry(entry, tiny_zoo).model.forward_features(images).double().numpy()
        zoo[entry] = {"features": feats, "labels": labels.numpy()}
    expected = score_zoo("ncti", zoo)
    for entry, value, remedy in zip(table["entry"], table["score"], table["remedy"]):
        assert value == pytest.approx(expected[entry].value, abs=1e-6)
        assert remedy == expected[entry].remedy
    # rerun: the complete table under the same key is reused, not recomputed
    again = evaluate_selection_main(_cfg(tmp_path, tiny_zoo, method="ncti"))
    pd.testing.assert_frame_equal(again[(TARGET, str(SHOTS), "ncti")], table)
