"""The registry of selection scores: ``register_method``, ``score``, ``score_detail``, ``available``.

A method is a pure function over numpy arrays returning a float (higher = better predicted
fine-tuning accuracy). It declares which inputs it needs; ``score`` checks them, converts them to
float64 (labels to int64), and calls it with exactly those inputs plus its keyword parameters.

A method may also declare ``max_dim``: a rule giving the largest feature dimension at which its
estimate is well posed for the target at hand (from N and the class counts). Outside that regime
the registry reduces the features by PCA to that dimension before calling the method
(:func:`selection.checks.regime_pca`) and ``score_detail`` reports the remedy.

A method is per entry (``level="entry"``, the default: one model's inputs in, one float out) or
zoo-level (``level="zoo"``): its value for one entry depends on the other entries ranked with it,
e.g. NCTI and ETran normalise each part of the score over the models being ranked. A zoo-level
function receives ``{entry: {input: array}}`` for every entry of one (target, shots, draw) cell and
returns ``{entry: float}``; it is called through :func:`score_zoo` (``score`` and ``score_detail``
refuse it, since one entry alone has no value). ``score_zoo`` also scores per-entry methods, one
entry at a time, so a caller can treat both levels alike.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
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

#: ``entry``: fn(**inputs, **params) -> float; ``zoo``: fn(entries, **params) -> {entry: float}.
LEVELS = ("entry", "zoo")

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
    level: str = "entry"  # "zoo": scored over every entry of a cell at once (see module doc)


_METHODS: dict[str, Method] = {}


def register_method(
    name: str,
    *,
    needs: tuple[str, ...] | list[str],
    quadratic: bool = False,
    max_dim: DimRule | None = None,
    reference: bool = False,
    level: str = "entry",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(**inputs, **params) -> float`` as the selection score ``name``.

    ``needs`` lists the inputs among :data:`INPUTS` the function takes by keyword. ``max_dim``
    (needs ``features`` and ``labels``) is the method's regime rule: when the features have more
    columns than ``max_dim(N, class_counts, params)`` they are reduced by PCA to that many before
    the call. ``reference`` marks a static reference score. Registering a name twice replaces the
    earlier method (so a user can override a built-in on purpose).

    ``level="zoo"`` registers ``fn(entries, **params) -> {entry: float}`` instead: ``entries`` maps
    each entry of a cell to its checked inputs (a dict with the keys ``needs``; ``max_dim`` applied
    per entry), and the function returns one value per entry (see :func:`score_zoo`).
    """
    if level not in LEVELS:
        raise ValueError(f"method {name!r}: level must be one of {list(LEVELS)}; got {level!r}")
    needs = tuple(needs)
    if max_dim is not None and not {"features", "labels"} <= set(needs):
        raise ValueError(f"method {name!r}: a max_dim rule needs the inputs features and labels")
    unknown = [n for n in needs if n not in INPUTS]
    if unknown:
        raise ValueError(
            f"method {name!r} needs unknown inputs {unknown}; valid inputs: {list(INPUTS)}"
        )

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn)
        if level == "zoo":
            if next(iter(sig.parameters), None) != "entries":
                raise ValueError(
                    f"zoo-level method {name!r}: {fn.__name__}() must take `entries` first "
                    "({entry: {input: array}})"
                )
            taken: tuple[str, ...] = ("entries",)
        else:
            missing = [n for n in needs if n not in sig.parameters]
            if missing:
                raise ValueError(
                    f"method {name!r} declares inputs {missing} that {fn.__name__}() does not take"
                )
            taken = needs
        defaults = {
            k: p.default
            for k, p in sig.parameters.items()
            if k not in taken and p.default is not inspect.Parameter.empty
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
            level,
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
    A zoo-level method raises ValueError: it needs every entry of the cell (:func:`score_zoo`).
    """
    method = get_method(name)
    if method.level == "zoo":
        raise ValueError(
            f"method {name!r} is zoo-level: each entry's value depends on the other entries ranked "
            f"with it, so one entry alone has none; call selection.score_zoo({name!r}, "
            "{entry: {input: array, ...}, ...}) with every entry of the cell"
        )
    params = _check_params(method, inputs)
    checked, remedy = _prepare(method, inputs, params)
    value = float(method.fn(**checked, **params))
    if not np.isfinite(value):
        raise FloatingPointError(f"method {name!r} returned a non-finite score {value}")
    return ScoreResult(value, remedy)


def score_zoo(
    name: str, entries: Mapping[str, Mapping[str, Any]], **params: Any
) -> dict[str, ScoreResult]:
    """Score every entry of one cell: ``{entry: {input: array}}`` -> ``{entry: ScoreResult}``.

    A zoo-level method is called once over all entries (each entry's inputs checked and put in
    its regime as :func:`score_detail` does); a per-entry method is scored entry by entry, so the
    result is the same as calling :func:`score_detail` for each. ``params`` are the method's
    parameters. Inputs the method does not need are ignored.
    """
    method = get_method(name)
    if not isinstance(entries, Mapping) or not entries:
        raise ValueError(
            f"score_zoo({name!r}) needs a non-empty mapping entry -> inputs; got {entries!r}"
        )
    if method.level == "entry":
        return {str(e): score_detail(name, **inputs, **params) for e, inputs in entries.items()}
    params = _check_params(method, params)
    prepared: dict[str, dict[str, Any]] = {}
    remedies: dict[str, str] = {}
    for entry, inputs in entries.items():
        if not isinstance(inputs, Mapping):
            raise ValueError(f"entry {entry!r}: inputs must be a dict input -> array")
        try:
            prepared[str(entry)], remedies[str(entry)] = _prepare(method, inputs, params)
        except ValueError as e:
            raise ValueError(f"entry {entry!r}: {e}") from None
    values = method.fn(prepared, **params)
    if not isinstance(values, Mapping) or set(values) != set(prepared):
        raise RuntimeError(
            f"zoo-level method {name!r} must return one value per entry {sorted(prepared)}; "
            f"got {values!r}"
        )
    out = {}
    for entry in prepared:
        value = float(values[entry])
        if not np.isfinite(value):
            raise FloatingPointError(
                f"method {name!r} returned a non-finite score {value} for entry {entry!r}"
            )
        out[entry] = ScoreResult(value, remedies[entry])
    return out


def _check_params(method: Method, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The method parameters among ``inputs`` (keys outside INPUTS); unknown ones raise."""
    params = {k: v for k, v in inputs.items() if k not in INPUTS}
    bad = [k for k in params if k not in method.defaults]
    if bad:
        raise ValueError(
            f"method {method.name!r} got unknown parameters {bad}; its parameters: "
            f"{sorted(method.defaults)}"
        )
    return params


def _prepare(
    method: Method, inputs: Mapping[str, Any], params: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """The checked inputs the method needs, in its regime (PCA by ``max_dim``), and the remedy."""
    missing = [n for n in method.needs if inputs.get(n) is None]
    if missing:
        raise ValueError(f"method {method.name!r} needs {list(method.needs)}; missing: {missing}")
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
    return checked, remedy
