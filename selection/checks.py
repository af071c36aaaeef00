"""Validation of selection-score inputs: shapes, lengths, finiteness, class counts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def _as_matrix(name: str, x: Any) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"{name} must be a numeric 2-D array (N x D); got {_describe(x)} ({e})"
        ) from None
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (N x D); got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(
            f"{name} is empty (shape {a.shape}); need at least one sample and one column"
        )
    if not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[:3].tolist()
        raise ValueError(f"{name} contains NaN or inf (first at rows/cols {bad})")
    return a


def _describe(x: Any) -> str:
    dtype = getattr(x, "dtype", None)
    return f"{type(x).__name__}" + (f" of dtype {dtype}" if dtype is not None else "")


def _as_labels(x: Any) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"labels must be a 1-D array (N,); got shape {a.shape}")
    if a.size == 0:
        raise ValueError("labels is empty; need at least two samples of two classes")
    if not np.issubdtype(a.dtype, np.integer):
        if (
            np.issubdtype(a.dtype, np.floating)
            and np.isfinite(a).all()
            and (a == np.round(a)).all()
        ):
            a = a.astype(np.int64)
        else:
            raise ValueError(f"labels must be integers; got dtype {a.dtype}")
    if (a < 0).any():
        raise ValueError(f"labels must be non-negative; got minimum {a.min()}")
    if len(np.unique(a)) < 2:
        raise ValueError(
            f"labels have a single class ({np.unique(a).tolist()}); need at least 2 classes"
        )
    return a.astype(np.int64)


def check_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """Validate and convert the inputs of a score; every array input must have the same N."""
    out: dict[str, Any] = {}
    for name, value in inputs.items():
        if name == "labels":
            out[name] = _as_labels(value)
        elif name == "entry_info":
            out[name] = check_entry_info(value)
        elif name == "source_profile":
            if not isinstance(value, tuple | list) or len(value) != 2:
                raise ValueError(
                    "source_profile must be a pair (class means (Cs x D), counts (Cs,))"
                )
            means = _as_matrix("source_profile means", value[0])
            counts = np.asarray(value[1], dtype=np.float64)
            if counts.shape != (means.shape[0],):
                raise ValueError(
                    f"source_profile counts must have shape ({means.shape[0]},), one per class "
                    f"mean; got {counts.shape}"
                )
            if not np.isfinite(counts).all() or (counts < 0).any():
                bad = np.flatnonzero(~np.isfinite(counts) | (counts < 0))[:3].tolist()
                raise ValueError(
                    f"source_profile counts must be finite and non-negative; classes {bad} have "
                    f"{counts[bad].tolist()}"
                )
            out[name] = (means, counts)
        else:
            out[name] = _as_matrix(name, value)
    lengths = {
        k: (v.shape[0] if k not in ("source_profile", "entry_info") else None)
        for k, v in out.items()
    }
    lengths = {k: n for k, n in lengths.items() if n is not None}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"inputs disagree on the number of samples N: {lengths}")
    if "probs" in out:
        p = out["probs"]
        if (p < 0).any():
            row = int(np.argwhere(p < 0)[0, 0])
            raise ValueError(
                f"probs must be row-wise probabilities (non-negative, rows summing to 1); row {row} "
                f"has a negative entry {p[row].min():g} (pass the softmax of the logits)"
            )
        sums = p.sum(axis=1)
        off = np.flatnonzero(np.abs(sums - 1.0) > 1e-3)
        if off.size:
            raise ValueError(
                f"probs must be row-wise probabilities (non-negative, rows summing to 1 within 1e-3); "
                f"{off.size} rows do not, e.g. row {off[0]} sums to {sums[off[0]]:.6g} "
                "(pass the softmax of the logits)"
            )
    return out


def class_counts(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique classes and their counts."""
    return np.unique(labels, return_counts=True)


def require_min_per_class(labels: np.ndarray, k: int, method: str) -> None:
    """Raise if some class has fewer than ``k`` samples (e.g. a covariance needs two)."""
    classes, counts = class_counts(labels)
    small = classes[counts < k]
    if small.size:
        raise ValueError(
            f"{method} needs at least {k} samples per class; classes {small[:10].tolist()} have fewer"
        )


def stratified_cap(labels: np.ndarray, cap: int, seed: int) -> np.ndarray:
    """Indices (sorted, int64) of a class-stratified, seeded subset of at most ``cap`` samples.

    Every class keeps min(n_c, 2) samples when the cap allows it (else min(n_c, 1)); the rest of
    the cap is shared in proportion to the remaining class sizes (largest remainders, ties to the
    smaller class index), then samples are drawn without replacement within each class with
    ``numpy.random.default_rng(seed)``. With N <= cap every index is returned. Used to bound the
    samples of quadratic scores (``Method.quadratic``).

    Raises:
        ValueError: if ``cap`` is smaller than the number of classes (a class would be dropped).
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be a 1-D array (N,); got shape {labels.shape}")
    n = labels.shape[0]
    if cap >= n:
        return np.arange(n, dtype=np.int64)
    classes, index, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if cap < len(classes):
        raise ValueError(
            f"sample cap {cap} is smaller than the number of classes {len(classes)}; "
            f"use a cap >= {len(classes)} (>= {int(np.minimum(counts, 2).sum())} keeps 2 per class)"
        )
    floor = np.minimum(counts, 2)
    if floor.sum() > cap:
        floor = np.minimum(counts, 1)
    rest, spare = counts - floor, cap - int(floor.sum())
    share = spare * rest / rest.sum()
    quota = floor + np.floor(share).astype(np.int64)
    # hand out what flooring left, largest fractional part first (stable: ties to lower index)
    left = cap - int(quota.sum())
    order = np.argsort(-(share - np.floor(share)), kind="stable")
    quota[order[:left]] += 1
    rng = np.random.default_rng(seed)
    members = np.argsort(index, kind="stable")  # sample indices grouped by class
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    chosen = [
        rng.choice(members[start : start + count], size=k, replace=False)
        for start, count, k in zip(starts, counts, quota)
    ]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


# ---------------------------------------------------------------- regimes and their remedy


_PCA_BLOCK = 4096  # rows per block of the streamed Gram matrix


def _top_eigenvectors(sym: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest eigenvalues (descending) of a symmetric matrix and their eigenvectors.

    LAPACK's subset driver (scipy ``subset_by_index``) computes only those k: a few times faster
    than the full decomposition when k is small against the order (25 of 2048 for TransRate).
    """
    import scipy.linalg

    order = sym.shape[0]
    k = min(k, order)
    values, vectors = scipy.linalg.eigh(sym, subset_by_index=[order - k, order - 1])
    return values[::-1], vectors[:, ::-1]


def regime_pca(features: np.ndarray, max_dim: int) -> tuple[np.ndarray, str]:
    """Reduce features (N, D) to their ``max_dim`` leading principal components when D > max_dim.

    The remedy for scores whose estimate is ill posed when D is large against N (a D x D
    covariance, an in-sample classifier or a coding rate with more parameters than samples): PCA
    to a dimension set by N, as the PARC, GBC and NLEEP setups reduce features before scoring
    (dbolya/parc ``feature_reduce``). Exact and deterministic: the eigendecomposition of the
    smaller Gram matrix of the centred features (D x D when D <= N, else N x N); component
    scores G v_j (= sqrt(lambda_j) u_j), largest variance first. Components beyond the rank of the
    data are zero columns. Scores are invariant to the components' signs and rotations within the
    kept subspace (H-score, SFDA's Fisher classifier and TransRate are), so no sign is fixed.

    Returns:
        (features (N, min(D, max_dim)), remedy) with remedy "" when D <= max_dim (nothing done).
    """
    if max_dim < 1:
        raise ValueError(f"a regime's max_dim must be >= 1; got {max_dim}")
    n, d = features.shape
    if d <= max_dim:
        return features, ""
    mean = features.mean(axis=0)
    # a common scale keeps the Gram's sums well conditioned; it is undone on the scores
    scale = float(max(features.max() - mean.min(), mean.max() - features.min()))
    if scale == 0.0:
        return np.zeros((n, max_dim)), f"pca to {max_dim} dims (D={d} > {max_dim})"
    if d <= n:
        # streamed over row blocks: no centred N x D copy (800 MB at N = 50,000, D = 2048)
        gram = np.zeros((d, d))
        for start in range(0, n, _PCA_BLOCK):
            block = (features[start : start + _PCA_BLOCK] - mean) / scale
            gram += block.T @ block
        top = _top_eigenvectors(gram, max_dim)[1]
        reduced = features @ top - mean @ top
    else:
        centred = (features - mean) / scale
        eigenvalues, vectors = _top_eigenvectors(centred @ centred.T, max_dim)
        reduced = vectors * np.sqrt(np.clip(eigenvalues, 0.0, None)) * scale
        if reduced.shape[1] < max_dim:  # N < max_dim: the rest of the components are empty
            reduced = np.hstack([reduced, np.zeros((n, max_dim - reduced.shape[1]))])
    return reduced, f"pca to {max_dim} dims (D={d} > {max_dim})"


def max_dim_per_sample(samples_per_dim: int) -> Callable[[int, np.ndarray, dict], int]:
    """Regime rule D <= N / samples_per_dim: the dimension a covariance over all N samples affords.

    Returns ``rule(n, class_counts, params) -> max(1, N // samples_per_dim)`` for
    ``register_method(max_dim=...)``.
    """

    def rule(n: int, counts: np.ndarray, params: dict) -> int:
        return max(1, n // samples_per_dim)

    return rule


def max_dim_per_class(samples_per_dim: int) -> Callable[[int, np.ndarray, dict], int]:
    """Regime rule D <= n_min / samples_per_dim: the dimension each class's own estimate affords.

    n_min is the smallest class count. Returns ``rule(n, class_counts, params)`` for
    ``register_method(max_dim=...)``.
    """

    def rule(n: int, counts: np.ndarray, params: dict) -> int:
        return max(1, int(np.min(counts)) // samples_per_dim)

    return rule


ENTRY_INFO_KEYS = ("n_params", "source_accuracy")


def check_entry_info(value: Any) -> dict[str, Any]:
    """Validate the ``entry_info`` input and return it unchanged (the same dict).

    A plain dict with ``n_params`` (int >= 1, the entry model's parameter count) and
    ``source_accuracy`` (float in [0, 1], NaN when the card does not give it).
    """
    if not isinstance(value, dict):
        raise ValueError(
            f"entry_info must be a dict with keys {list(ENTRY_INFO_KEYS)}; got {_describe(value)}"
        )
    missing = [k for k in ENTRY_INFO_KEYS if k not in value]
    extra = [k for k in value if k not in ENTRY_INFO_KEYS]
    if missing or extra:
        raise ValueError(
            f"entry_info must have exactly the keys {list(ENTRY_INFO_KEYS)}; "
            f"missing {missing}, unknown {extra}"
        )
    n_params = value["n_params"]
    if isinstance(n_params, bool) or not isinstance(n_params, int | np.integer) or n_params < 1:
        raise ValueError(f"entry_info n_params must be an int >= 1; got {n_params!r}")
    accuracy = value["source_accuracy"]
    if isinstance(accuracy, bool) or not isinstance(accuracy, int | float | np.floating):
        raise ValueError(
            f"entry_info source_accuracy must be a float in [0, 1] or NaN; got {accuracy!r}"
        )
    if not (np.isnan(accuracy) or 0.0 <= accuracy <= 1.0):
        raise ValueError(
            f"entry_info source_accuracy must be in [0, 1] (a fraction) or NaN; got {accuracy!r}"
        )
    return value
