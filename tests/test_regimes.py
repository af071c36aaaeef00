"""Regimes and their remedy, and the static reference scores.

* The remedy path (PCA to the regime's dimension, selection.checks.regime_pca) equals sklearn's PCA
  followed by the method's formula, and ``score_detail`` records it; inside the regime nothing is
  done.
* Two entries that differ in D only: informative features (D = 64) against pure noise
  (D = 2048) at N = 500 and N = 200 with 10 classes, synthetic and from a small trained network.
  No feature-based method may rank the noise first.
* ``param_count`` and ``source_accuracy`` read ``entry_info``, which passes the checks unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

import selection
from selection.checks import check_inputs, regime_pca
from selection.methods.hscore import hscore as hscore_formula
from selection.methods.sfda import sfda as sfda_formula
from selection.methods.transrate import transrate as transrate_formula
from selection.registry import available, score, score_detail

# ---------------------------------------------------------------- the remedy against sklearn


def _target(n_per_class: int, classes: int, dim: int, seed: int):
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(classes), n_per_class))
    mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    features = (
        rng.normal(size=(len(labels), dim)) @ mixing + rng.normal(size=(classes, dim))[labels]
    )
    return features + 3.0, labels


def _naive_hscore(f: np.ndarray, labels: np.ndarray) -> float:
    mu = f.mean(0)
    cov = (f - mu).T @ (f - mu) / len(f)
    between = sum(
        np.mean(labels == c) * np.outer(f[labels == c].mean(0) - mu, f[labels == c].mean(0) - mu)
        for c in np.unique(labels)
    )
    return float(np.trace(np.linalg.pinv(cov) @ between))


def _naive_transrate(f: np.ndarray, labels: np.ndarray, eps: float = 1e-4) -> float:
    def rate(z):
        n, d = z.shape
        return 0.5 * np.linalg.slogdet(np.eye(d) + z.T @ z / (n * eps))[1]

    z = f - f.mean(0)
    return rate(z) - np.mean([rate(z[labels == c]) for c in np.unique(labels)])


@pytest.mark.parametrize(("n_per_class", "dim"), [(10, 30), (6, 80)])  # D < N and D > N
def test_remedy_equals_sklearn_pca_then_the_formula(n_per_class, dim):
    features, labels = _target(n_per_class, 4, dim, seed=dim)
    n = len(labels)
    reduced = {
        k: PCA(n_components=k, svd_solver="full").fit_transform(features)
        for k in (n // 4, n_per_class // 2)
    }
    cases = {
        "hscore": (n // 4, _naive_hscore),
        "sfda": (n // 4, sfda_formula),
        "transrate": (n_per_class // 2, _naive_transrate),
    }
    for name, (k, formula) in cases.items():
        result = score_detail(name, features=features, labels=labels)
        assert result.value == pytest.approx(formula(reduced[k], labels), rel=1e-6), name
        assert result.remedy.startswith(f"pca to {k} dims (D={dim} > {k}; N={n}"), result.remedy
        assert score(name, features=features, labels=labels) == result.value


def test_no_remedy_inside_the_regime():
    features, labels = _target(40, 3, 5, seed=1)  # N = 120: D = 5 <= N / 4 and <= n_min / 2
    for name, formula in (
        ("hscore", hscore_formula),
        ("sfda", sfda_formula),
        ("transrate", transrate_formula),
    ):
        result = score_detail(name, features=features, labels=labels)
        assert result.remedy == ""
        assert result.value == formula(features, labels)
    # the regime's boundary: D = N / 4 exactly is inside, one more column is outside
    wide, labels = _target(10, 2, 5, seed=2)  # N = 20
    assert score_detail("hscore", features=wide, labels=labels).remedy == ""
    wider = np.hstack([wide, np.random.default_rng(0).normal(size=(20, 1))])
    assert score_detail("hscore", features=wider, labels=labels).remedy.startswith("pca to 5 dims")


def test_the_remedy_lifts_the_saturation_at_n_below_d():
    # N = 100 <= D = 200, pure noise, 5 classes: the raw formulas saturate for any features
    rng = np.random.default_rng(7)
    noise, labels = rng.normal(size=(100, 200)), np.repeat(np.arange(5), 20)
    assert hscore_formula(noise, labels) == pytest.approx(4.0, abs=1e-9)  # C - 1
    assert sfda_formula(noise, labels) == pytest.approx(1.0, abs=1e-6)
    # with the remedy the noise scores near its Pillai-trace expectation (C-1) k / (N-1), k = 25
    assert score("hscore", features=noise, labels=labels) < 2 * 4 * 25 / 99
    assert score("sfda", features=noise, labels=labels) < 0.5


def test_regime_pca_components_and_variance():
    features, _ = _target(10, 3, 12, seed=3)
    for k in (1, 4, 12):
        ours, remedy = regime_pca(features, k)
        if k == 12:
            assert remedy == "" and ours is features
            continue
        ref = PCA(n_components=k, svd_solver="full").fit_transform(features)
        # equal up to the sign of each component
        assert np.allclose(np.abs(ours), np.abs(ref), atol=1e-9)
    wide = np.random.default_rng(4).normal(size=(5, 40))  # N < max_dim: empty trailing components
    ours, _ = regime_pca(wide, 8)
    assert ours.shape == (5, 8) and np.allclose(ours[:, 5:], 0.0)
    with pytest.raises(ValueError, match="max_dim must be >= 1"):
        regime_pca(wide, 0)


# ---------------------------------------------------------------- informative D = 64 vs noise D = 2048

#: Feature-based methods exempt from the comparison, and why.
_LABEL_FREE_DENSITY = {
    # rewards dense activations by design (not the paper's Feature Metrics): pure Gaussian noise
    # is fully active, so it ranks noise first at every N and D; no regime makes it informative
    "feature_density",
    # ETran's energy part: logsumexp of the features grows with log D and the feature scale, so
    # wide noise ranks first at every N; no PCA remedy applies (it changes what is measured)
    "etran_energy",
}


def _feature_methods() -> list[str]:
    return [
        name
        for name, m in available().items()
        if "features" in m.needs
        and m.level == "entry"  # zoo-level scores have no per-entry value (score_zoo)
        and set(m.needs) <= {"features", "labels"}
        and name not in _LABEL_FREE_DENSITY
    ]


def _informative(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Post-ReLU features (N, 64) of 10 classes with a moderate class signal, labels sorted."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), n // 10)
    centres = 0.5 * rng.normal(size=(10, 64))
    return np.maximum(centres[labels] + rng.normal(size=(n, 64)), 0.0), labels


_NOISE_SCORES: dict[tuple[int, float], dict[str, object]] = {}


def _noise_scores(n: int, scale: float) -> dict[str, object]:
    """Every feature method on pure noise (N, 2048) x scale with labels repeat(arange(10), N/10).

    Computed once per (N, scale): the noise entry is the costly one (PCA of 2048 columns)."""
    if (n, scale) not in _NOISE_SCORES:
        noise = np.random.default_rng(n + 1).normal(size=(n, 2048)) * scale
        labels = np.repeat(np.arange(10), n // 10)
        _NOISE_SCORES[n, scale] = {
            name: score_detail(name, features=noise, labels=labels) for name in _feature_methods()
        }
    return _NOISE_SCORES[n, scale]


def _check_informative_first(features: np.ndarray, labels: np.ndarray, scale: float) -> None:
    assert (labels == np.repeat(np.arange(10), len(labels) // 10)).all()
    noise = _noise_scores(len(labels), scale)
    for name in _feature_methods():
        good = score_detail(name, features=features, labels=labels)
        assert good.value > noise[name].value, (name, good, noise[name])


def _digits_features(per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """ResNet-8 features (N, 64) of sklearn digits after 40 SGD steps on other digits images.

    The scored images are per_class held-out images of each digit, sorted by class."""
    from sklearn.datasets import load_digits

    from zoo.models import create_model

    digits = load_digits()
    images = torch.tensor(digits.images / 16.0, dtype=torch.float32)
    images = images.repeat_interleave(2, 1).repeat_interleave(2, 2)[:, None].expand(-1, 3, -1, -1)
    labels = digits.target
    rng = np.random.default_rng(0)
    order = rng.permutation(len(labels))
    train, rest = order[:1000], order[1000:]
    torch.manual_seed(0)
    model = create_model("resnet8", num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.train()
    for step in range(40):
        batch = train[(step * 64) % 1000 :][:64]
        loss = torch.nn.functional.cross_entropy(
            model(images[batch]), torch.as_tensor(labels[batch])
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    keep = np.concatenate([rest[labels[rest] == c][:per_class] for c in range(10)])
    model.eval()
    with torch.no_grad():
        features = model.forward_features(images[keep]).double().numpy()
    return features, labels[keep]


_N_CASES = [
    pytest.param(500, marks=pytest.mark.slow),  # ~40 s on 2 busy cores: the PCA of the noise
    200,
]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("n", _N_CASES)
def test_informative_beats_wide_noise_synthetic(n):
    features, labels = _informative(n, seed=n)
    _check_informative_first(features, labels, scale=1.0)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("n", _N_CASES)
def test_informative_beats_wide_noise_real_features(n):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        features, labels = _digits_features(n // 10)
    finally:
        torch.set_num_threads(threads)
    assert features.shape == (n, 64)
    # the noise has unit scale, as the features nearly do (TransRate's eps is absolute); the
    # ReLU features' std is checked so that the comparison stays a fair one
    assert 0.2 < features.std() < 5.0
    _check_informative_first(features, labels, scale=1.0)


# ---------------------------------------------------------------- static references


def test_reference_methods_read_entry_info():
    info = {"n_params": 11_689_512, "source_accuracy": 0.6976}
    assert score("param_count", entry_info=info) == pytest.approx(np.log10(11_689_512), rel=1e-15)
    assert score("source_accuracy", entry_info=info) == 0.6976
    assert available()["param_count"].reference and available()["source_accuracy"].reference
    assert not available()["lfc"].reference
    # a caller passes everything it extracted: the reference ignores the arrays
    features, labels = _target(5, 2, 3, seed=0)
    assert score("param_count", entry_info=info, features=features, labels=labels) == score(
        "param_count", entry_info=info
    )
    unknown = {**info, "source_accuracy": float("nan")}
    assert score("param_count", entry_info=unknown) == pytest.approx(np.log10(11_689_512))
    with pytest.raises(ValueError, match="unknown"):
        score("source_accuracy", entry_info=unknown)
    assert selection.registry.score_detail("param_count", entry_info=info).remedy == ""


def test_entry_info_passes_the_checks_unchanged():
    info = {"n_params": np.int64(12), "source_accuracy": float("nan")}
    assert check_inputs({"entry_info": info})["entry_info"] is info
    for bad, message in [
        ({"n_params": 3}, "missing \\['source_accuracy'\\]"),
        ({"n_params": 3, "source_accuracy": 0.5, "top5": 0.9}, "unknown \\['top5'\\]"),
        ({"n_params": 2.5, "source_accuracy": 0.5}, "n_params must be an int"),
        ({"n_params": True, "source_accuracy": 0.5}, "n_params must be an int"),
        ({"n_params": 3, "source_accuracy": 1.5}, "in \\[0, 1\\]"),
        ({"n_params": 3, "source_accuracy": "high"}, "source_accuracy must be a float"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_inputs({"entry_info": bad})
