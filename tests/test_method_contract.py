"""The contract every registered method keeps, parametrised over ``selection.available()``.

A method registered later is checked automatically: valid inputs are built from its declared
``needs``. The contract: a finite value on valid input (random, also degenerate, arrays), the same
value when the samples are shuffled (methods whose value depends on the order say why and what
holds instead), and a clear ValueError on bad input (NaN, length mismatch, one class, a bad
``entry_info``, a missing input, an unknown parameter).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from selection.registry import INPUTS, available, score, score_detail, score_zoo

NAMES = list(available())
PER_SAMPLE = ("features", "probs", "labels", "grads", "probe_features")

#: Methods whose value depends on the order of the samples, and what holds instead.
ORDER_DEPENDENT = {
    # the draw is seeded by a hash of the arrays, order included: another order is another
    # uniform draw; equal inputs give equal values
    "random": None,
    # the cross-validation folds are drawn from the sample order (StratifiedKFold, seeded): the
    # accuracy on another order differs by fold sampling only
    "logistic_accuracy": 0.15,
}


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def valid_inputs(n_per_class: int = 12, classes: int = 3, dim: int = 6, seed: int = 0) -> dict:
    """Every input a method can declare, for one clustered target of N = classes x n_per_class."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(classes), n_per_class))
    centres = 2.0 * rng.normal(size=(classes, dim))
    features = np.maximum(centres[labels] + rng.normal(size=(len(labels), dim)), 0.0)
    return {
        "features": features,
        "labels": labels,
        "probs": _softmax(
            rng.normal(size=(classes, 5))[labels] + rng.normal(size=(len(labels), 5))
        ),
        "grads": features @ rng.normal(size=(dim, 8)) + 0.1 * rng.normal(size=(len(labels), 8)),
        "probe_features": features[:, :4] + rng.normal(size=(len(labels), 4)),
        "source_profile": (rng.normal(size=(4, dim)), np.array([10, 20, 5, 8])),
        "entry_info": {"n_params": 123_456, "source_accuracy": 0.75},
    }


def _needs(name: str) -> tuple[str, ...]:
    return available()[name].needs


def _is_zoo(name: str) -> bool:
    return available()[name].level == "zoo"


def _zoo_value(name: str, inputs: dict, other: dict) -> float:
    """A zoo-level method's value for entry "a" in the zoo {a: inputs, b: other}.

    Keys of ``inputs`` outside INPUTS are passed as the method's parameters."""
    params = {k: v for k, v in inputs.items() if k not in INPUTS}
    own = {k: v for k, v in inputs.items() if k in INPUTS}
    return score_zoo(name, {"a": own, "b": other}, **params)["a"].value


@st.composite
def random_inputs(draw) -> dict:
    """Valid but arbitrary inputs: values anywhere in [-100, 100], ties, constant columns."""
    classes = draw(st.integers(2, 3))
    # 5 per class: NLEEP's default mixture has 5 components per class
    per_class = draw(st.lists(st.integers(5, 7), min_size=classes, max_size=classes))
    labels = np.repeat(np.arange(classes), per_class)
    n, d = len(labels), draw(st.integers(1, 6))
    values = st.floats(-100, 100, allow_nan=False, allow_subnormal=False)
    features = draw(arrays(np.float64, (n, d), elements=values))
    logits = draw(arrays(np.float64, (n, 3), elements=st.floats(-20, 20, allow_subnormal=False)))
    probe = draw(arrays(np.float64, (n, 2), elements=values))
    means = draw(arrays(np.float64, (2, d), elements=values))
    accuracy = draw(st.floats(0.0, 1.0))
    return {
        "features": features,
        "labels": labels,
        "probs": _softmax(logits),
        "grads": features[:, ::-1].copy(),
        "probe_features": probe,
        "source_profile": (means, np.array([5, 9])),
        "entry_info": {"n_params": draw(st.integers(1, 10**9)), "source_accuracy": accuracy},
    }


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs=random_inputs())
def test_finite_on_valid_input(name, inputs):
    if _is_zoo(name):
        # a zoo of the drawn entry and a shifted copy, and the entry alone
        shifted = {**inputs, "features": inputs["features"] + 1.0}
        results = score_zoo(name, {"a": inputs, "b": shifted})
        assert all(np.isfinite(r.value) and isinstance(r.remedy, str) for r in results.values())
        assert np.isfinite(score_zoo(name, {"a": inputs})["a"].value)
        with pytest.raises(ValueError, match="zoo-level"):
            score_detail(name, **inputs)
        return
    result = score_detail(name, **inputs)  # score_detail raises on a non-finite value
    assert np.isfinite(result.value)
    assert isinstance(result.remedy, str)
    assert score(name, **inputs) == result.value


@pytest.mark.parametrize("name", NAMES)
def test_sample_permutation(name):
    inputs = valid_inputs()
    order = np.random.default_rng(5).permutation(len(inputs["labels"]))
    shuffled = {k: (v[order] if k in PER_SAMPLE else v) for k, v in inputs.items()}
    if _is_zoo(name):
        # both entries' samples shuffled (they are one target's samples in the same order)
        other = valid_inputs(seed=1)
        other_shuffled = {k: (v[order] if k in PER_SAMPLE else v) for k, v in other.items()}
        a, b = _zoo_value(name, inputs, other), _zoo_value(name, shuffled, other_shuffled)
        assert _zoo_value(name, inputs, other) == a
        assert b == pytest.approx(a, rel=1e-7, abs=1e-10)
        return
    a, b = score(name, **inputs), score(name, **shuffled)
    assert score(name, **inputs) == a  # equal inputs, equal value (seeded methods included)
    if name not in ORDER_DEPENDENT:
        assert b == pytest.approx(a, rel=1e-7, abs=1e-10)
    elif ORDER_DEPENDENT[name] is not None:
        assert abs(b - a) <= ORDER_DEPENDENT[name]


def _bad_cases(name: str) -> list[tuple[str, dict, str]]:
    needs = _needs(name)
    good = valid_inputs()
    cases = []
    per_sample = [key for key in needs if key in PER_SAMPLE]
    for key in ("features", "probs", "grads", "probe_features"):
        if key in needs:
            bad = good[key].copy()
            bad[3, 0] = np.nan
            cases.append((f"NaN {key}", {**good, key: bad}, "NaN"))
            if len(per_sample) > 1:  # a length mismatch needs two per-sample inputs
                short = {**good, key: good[key][:-1]}
                cases.append((f"short {key}", short, "number of samples"))
    if "labels" in needs:
        one = np.zeros_like(good["labels"])
        cases.append(("one class", {**good, "labels": one}, "single class"))
        cases.append(("float labels", {**good, "labels": good["labels"] + 0.5}, "integers"))
    if "entry_info" in needs:
        info = good["entry_info"]
        cases.append(("no n_params", {**good, "entry_info": {"source_accuracy": 0.5}}, "n_params"))
        cases.append(
            ("percent", {**good, "entry_info": {**info, "source_accuracy": 75.0}}, "[0, 1]")
        )
        cases.append(("zero params", {**good, "entry_info": {**info, "n_params": 0}}, "n_params"))
        cases.append(("not a dict", {**good, "entry_info": [1, 0.5]}, "dict"))
    cases.append(("missing input", {k: v for k, v in good.items() if k != needs[0]}, "missing"))
    cases.append(("unknown parameter", {**good, "no_such_parameter": 1}, "unknown parameters"))
    return cases


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_is_refused_clearly(name):
    for label, inputs, message in _bad_cases(name):
        with pytest.raises(ValueError, match=message):
            if _is_zoo(name):
                _zoo_value(name, inputs, valid_inputs(seed=1))
            else:
                score(name, **inputs)
        assert label  # the case's name, for the traceback


# The flags the evaluation acts on: the methods capped at selection.sample_cap samples (their cost
# grows with N^2) and the static reference scores (read from the card, nothing extracted).
QUADRATIC = {"knn_accuracy", "parc", "rsa"}
REFERENCE = {"param_count", "source_accuracy"}
# the inputs of every method that needs more or less than (features, labels)
OTHER_NEEDS = {
    "domain_similarity": ("features", "labels", "source_profile"),
    "domain_similarity_own_space": ("features", "labels", "source_profile"),
    "etran_energy": ("features",),
    "ot_nce": ("features", "labels", "source_profile"),
    "feature_density": ("features",),
    "feature_metrics": ("features",),
    "lgc": ("grads", "labels"),
    "leep": ("probs", "labels"),
    "nce": ("probs", "labels"),
    "param_count": ("entry_info",),
    "random": ("features", "probs"),
    "rsa": ("features", "probe_features"),
    "source_accuracy": ("entry_info",),
}


#: Methods scored over every entry of a cell at once (``selection.score_zoo``).
ZOO_LEVEL = {"etran", "ncti"}


def test_registered_inputs_and_cost_flags():
    methods = available()
    assert {n for n, m in methods.items() if m.level == "zoo"} == ZOO_LEVEL
    assert {n for n, m in methods.items() if m.quadratic} == QUADRATIC
    assert {n for n, m in methods.items() if m.reference} == REFERENCE
    for name, method in methods.items():
        assert method.needs == OTHER_NEEDS.get(name, ("features", "labels")), name


@pytest.mark.parametrize("name", NAMES)
def test_every_method_states_its_regime(name):
    doc = available()[name].fn.__doc__ or ""
    assert "Regime:" in doc, f"{name}'s docstring has no 'Regime:' paragraph"


@pytest.mark.parametrize("name", NAMES)
def test_every_method_has_its_yaml(name):
    from pathlib import Path

    import yaml

    path = Path(__file__).resolve().parent.parent / "configs" / "method" / f"{name}.yaml"
    assert path.is_file(), f"no configs/method/{name}.yaml"
    text = path.read_text()
    cfg = yaml.safe_load(text)
    assert cfg["name"] == name and not {"_target_", "_partial_"} & set(cfg)
    params = {k for k in cfg if k != "name"}
    assert params <= set(available()[name].defaults), params
    assert f"needs: {', '.join(available()[name].needs)}" in text
