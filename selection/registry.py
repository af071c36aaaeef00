"""The registry of selection scores: ``register_method``, ``score`` and ``available``.

A method is a pure function over numpy arrays returning a float (higher = better predicted
fine-tuning accuracy). It declares which inputs it needs; ``score`` checks them, converts them to
float64 (labels to int64), and calls it with exactly those inputs plus its keyword parameters.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from selection.checks import check_inputs

#: Inputs a method can declare. ``source_profile`` is a tuple (class-mean features (Cs, D), counts (Cs,)).
INPUTS = (
    "features",
    "probs",
    "labels",
    "grads",
    "source_profile",
    "probe_features",
    "entry_info",
)


@dataclass(frozen=True)
class Method:
    name: str
    fn: Callable[..., float]
    needs: tuple[str, ...]
    quadratic: bool = False  # cost grows with N^2: callers cap the samples (selection.sample_cap)
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)


_METHODS: dict[str, Method] = {}


def register_method(
    name: str, *, needs: tuple[str, ...] | list[str], quadratic: bool = False
) -> Callable[[Callable[..., float]], Callable[..., float]]:
    """Register ``fn(**inputs, **params) -> float`` as the selection score ``name``.

    ``needs`` lists the inputs among :data:`INPUTS` the function takes by keyword. Registering a
    name twice replaces the earlier method (so a user can override a built-in on purpose).
    """
    needs = tuple(needs)
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
            name, fn, needs, quadratic, doc.splitlines()[0] if doc else "", defaults
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
    value = float(method.fn(**checked, **params))
    if not np.isfinite(value):
        raise FloatingPointError(f"method {name!r} returned a non-finite score {value}")
    return value


@dataclass(frozen=True)
class ScoreResult:
    value: float
    remedy: str = ""


def score_detail(name: str, **inputs: Any) -> ScoreResult:
    return ScoreResult(score(name, **inputs))
