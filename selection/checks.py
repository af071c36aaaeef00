"""Validation of selection-score inputs: shapes, lengths, finiteness, class counts."""

from __future__ import annotations

from typing import Any

import numpy as np


def _as_matrix(name: str, x: Any) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (N x D); got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {a.shape}); need at least one sample and one column")
    if not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[:3].tolist()
        raise ValueError(f"{name} contains NaN or inf (first at rows/cols {bad})")
    return a


def _as_labels(x: Any) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"labels must be a 1-D array (N,); got shape {a.shape}")
    if a.size == 0:
        raise ValueError("labels is empty; need at least two samples of two classes")
    if not np.issubdtype(a.dtype, np.integer):
        if np.issubdtype(a.dtype, np.floating) and np.isfinite(a).all() and (a == np.round(a)).all():
            a = a.astype(np.int64)
        else:
            raise ValueError(f"labels must be integers; got dtype {a.dtype}")
    if (a < 0).any():
        raise ValueError(f"labels must be non-negative; got minimum {a.min()}")
    if len(np.unique(a)) < 2:
        raise ValueError(f"labels have a single class ({np.unique(a).tolist()}); need at least 2 classes")
    return a.astype(np.int64)


def check_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """Validate and convert the inputs of a score; every array input must have the same N."""
    out: dict[str, Any] = {}
    for name, value in inputs.items():
        if name == "labels":
            out[name] = _as_labels(value)
        elif name == "source_profile":
            if not isinstance(value, tuple | list) or len(value) != 2:
                raise ValueError("source_profile must be a pair (class means (Cs x D), counts (Cs,))")
            means = _as_matrix("source_profile means", value[0])
            counts = np.asarray(value[1], dtype=np.float64)
            if counts.shape != (means.shape[0],) or (counts < 0).any():
                raise ValueError(
                    f"source_profile counts must be ({means.shape[0]},) non-negative; got {counts.shape}"
                )
            out[name] = (means, counts)
        else:
            out[name] = _as_matrix(name, value)
    lengths = {k: (v.shape[0] if k != "source_profile" else None) for k, v in out.items()}
    lengths = {k: n for k, n in lengths.items() if n is not None}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"inputs disagree on the number of samples N: {lengths}")
    if "probs" in out:
        p = out["probs"]
        if (p < 0).any() or not np.allclose(p.sum(1), 1.0, atol=1e-3):
            raise ValueError("probs must be row-wise probabilities (non-negative, rows summing to 1)")
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
