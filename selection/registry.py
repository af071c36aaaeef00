"""The registry of selection scores: ``register_method``, ``score``, ``score_detail``, ``available``.

A method is a pure function over numpy arrays returning a float (higher = better predicted
fine-tuning accuracy). It declares which inputs it needs; ``score`` checks them, converts them to
float64 (labels to int64), and calls it with exactly those inputs plus its keyword parameters.

A method may also declare ``max_dim``: a rule giving the largest feature dimension at which its
estimate is well posed for the target at hand (from N and the class counts). Outside that regime
the registry reduces the features by PCA to that dimension before calling the method
(:func:`selection.checks.regime_pca`) and ``score_detail`` reports the remedy.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from selection.checks import check_inputs, regime_pca

#: Inputs a method can declare. ``source_profile`` is a tuple (class-mean features (Cs, D), counts
#: (Cs,)); ``entry_info`` a dict {"n_params": int, "source_accuracy": float in [0, 1] or NaN}.
INPUTS = (
    "features",
    "probs",
    "labels",
    "grads",
    "source_profile",
    "probe_features",
    "entry_info",
)

#: ``max_dim(n, class_counts, params) -> int | None``: the largest well-posed feature dimension.
DimRule = Callable[[int, np.ndarray, dict[str, Any]], "int | None"]


@dataclass(frozen=True)
class ScoreResult:
    """A score and the remedy applied to reach it ("" when the inputs were in the method's regime)."""

    value: float
    remedy: str = ""


@dataclass(frozen=True)
class Method:
    name: str
    fn: Callable[..., float]
    needs: tuple[str, ...]
    quadratic: bool = False  # cost grows with N^2: callers cap the samples (selection.sample_cap)
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    max_dim: DimRule | None = None  # regime rule; PCA to it outside the regime (see module doc)
    reference: bool = False  # a static reference (model size, source accuracy), not a target score


_METHODS: dict[str, Method] = {}


def register_method(
    name: str,
    *,
    needs: tuple[str, ...] | list[str],
    quadratic: bool = False,
    max_dim: DimRule | None = None,
    reference: bool = False,
) -> Callable[[Callable[..., float]], Callable[..., float]]:
    """Register ``fn(**inputs, **params) -> float`` as the selection score ``name``.

    ``needs`` lists the inputs among :data:`INPUTS` the function takes by keyword. ``max_dim``
    (needs ``features`` and ``labels``) is the method's regime rule: when the features have more
    columns than ``max_dim(N, class_counts, params)`` they are reduced by PCA to that many before
    the call. ``reference`` marks a static reference score. Registering a name twice replaces the
    earlier method (so a user can override a built-in on purpose).
    """
    needs = tuple(needs)
    if max_dim is not None and not {"features", "labels"} <= set(needs):
        raise ValueError(f"method {name!r}: a max_dim rule needs the inputs features and labels")
    unknown = [n for n in needs if n not in INPUTS]
    if unknown:
        raise ValueError(
            f"method {name!r} needs unknown inputs {unknown}; valid inputs: {list(INPUTS)}"
        )

    def decorator(fn: Callable[..., float]) -> Callable[..., float]:
        sig = inspect.signature(fn)
        missing = [n for n in needs if n not in sig.parameters]
        if missing:
            raise ValueError(
                f"method {name!r} declares inputs {missing} that {fn.__name__}() does not take"
            )
        defaults = {
            k: p.default
            for k, p in sig.parameters.items()
            if k not in needs and p.default is not inspect.Parameter.empty
        }
        doc = inspect.getdoc(fn) or ""
        _METHODS[name] = Method(
            name,
            fn,
            needs,
            quadratic,
            doc.splitlines()[0] if doc else "",
            defaults,
            max_dim,
            reference,
        )
        return fn

    return decorator


def _load_builtin() -> None:
    # importing selection.methods registers every built-in score (one module per method)
    import selection.methods  # noqa: F401


def get_method(name: str) -> Method:
    _load_builtin()
    if name not in _METHODS:
        raise ValueError(f"unknown selection method {name!r}; known: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]


def available() -> dict[str, Method]:
    """Every registered method by name (built-in and user-registered), sorted by name."""
    _load_builtin()
    return dict(sorted(_METHODS.items()))


def score(name: str, **inputs: Any) -> float:
    """Compute the selection score ``name`` on ``inputs``; extra keyword arguments are its parameters.

    Inputs the method does not need are ignored, so a caller can pass everything it extracted.
    The value of :func:`score_detail`, without the remedy record.
    """
    return score_detail(name, **inputs).value


def score_detail(name: str, **inputs: Any) -> ScoreResult:
    """As :func:`score`, with the remedy record: ``ScoreResult(value, remedy)``.

    ``remedy`` is "" when the inputs were in the method's well-posed regime, otherwise a short
    record of what was done, e.g. "pca to 125 dims (D=2048 > max 125 at N=500)".
    """
    method = get_method(name)
    params = {k: v for k, v in inputs.items() if k not in INPUTS}
    bad = [k for k in params if k not in method.defaults]
    if bad:
        raise ValueError(
            f"method {name!r} got unknown parameters {bad}; its parameters: {sorted(method.defaults)}"
        )
    missing = [n for n in method.needs if inputs.get(n) is None]
    if missing:
        raise ValueError(f"method {name!r} needs {list(method.needs)}; missing: {missing}")
    checked = check_inputs({n: inputs[n] for n in method.needs})
    remedy = ""
    if method.max_dim is not None:
        _, counts = np.unique(checked["labels"], return_counts=True)
        limit = method.max_dim(len(checked["labels"]), counts, {**method.defaults, **params})
        if limit is not None:
            checked["features"], remedy = regime_pca(checked["features"], limit)
            if remedy:
                remedy = (
                    f"{remedy[:-1]}; N={len(checked['labels'])}, smallest class {counts.min()})"
                )
    value = float(method.fn(**checked, **params))
    if not np.isfinite(value):
        raise FloatingPointError(f"method {name!r} returned a non-finite score {value}")
    return ScoreResult(value, remedy)
