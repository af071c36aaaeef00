"""PED, potential energy descent: a score after simulating how fine-tuning moves the classes
(Li et al. 2023).

Li, Hu, Li, Wang, Guo, Huang. "Exploring Model Transferability through the Lens of Potential
Energy." ICCV 2023. Follows the reference code (lixiaotong97/PED, ``metrics.py``:
``One_Step_PED``, ``PED_Score``), with the deviations listed in :func:`ped`.

Of the two scores that simulate fine-tuning dynamics, PED is implemented rather than LEAD (Hu et
al., CVPR 2024): PED needs only the target features and labels, and its reference code fixes
every step; LEAD integrates an ODE of the logits driven by the source classifier head (its
weights and the target logits), which the zoo's extraction does not provide (it keeps features
and the head's probabilities, not the head).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from selection.linalg import class_sums
from selection.registry import register_method, score

#: Base scores PED can finish with, and the regime rule each needs (samples per dimension).
BASES = {"sfda": 4, "logme": None}


def ped_step(
    x: np.ndarray,
    inverse: np.ndarray,
    counts: np.ndarray,
    shift: np.ndarray,
    scale: np.ndarray,
    time_step: float,
    nsigma: float,
    constant: float,
) -> tuple[np.ndarray, float]:
    """One step of the reference's ``One_Step_PED``: classes repel while their balls overlap.

    In standardised coordinates z = (x - shift) / scale, class c is a ball at its mean mu_c with
    radius r_c = sqrt(sum_d Var_c[z_d]) (biased per-dimension variances). For classes c != k with
    distance d_ck = ||mu_c - mu_k||, overlap o_ck = max(nsigma (r_c + r_k) - d_ck, 0); every
    sample of class c moves rigidly by
        delta_c = sum_{k != c} (mu_c - mu_k) / d_ck * min(1/2 time_step^2 constant o_ck, o_ck)
    (coincident means, d_ck = 0, give no direction and no move). Returns the moved x (original
    units) and sum_c sum_d |delta_c,d|, the reference's ``position_change``.
    """
    z = (x - shift) / scale
    c = len(counts)
    means = class_sums(z, inverse, c) / counts[:, None]
    sq = class_sums(z * z, inverse, c) / counts[:, None]
    radius = np.sqrt(np.maximum(sq - means * means, 0.0).sum(axis=1))
    diff = means[:, None, :] - means[None, :, :]  # (C, C, D): mu_c - mu_k
    dist = np.sqrt(np.sum(diff * diff, axis=2))
    overlap = np.maximum(nsigma * (radius[:, None] + radius[None, :]) - dist, 0.0)
    np.fill_diagonal(overlap, 0.0)
    step = np.minimum(0.5 * time_step**2 * constant * overlap, overlap)
    unit = np.divide(diff, dist[:, :, None], out=np.zeros_like(diff), where=dist[:, :, None] > 0)
    delta = np.sum(unit * step[:, :, None], axis=1)  # (C, D)
    return (z + delta[inverse]) * scale + shift, float(np.abs(delta).sum())


def _ped_max_dim(n: int, counts: np.ndarray, params: dict[str, Any]) -> int | None:
    per_dim = BASES.get(params.get("base", "sfda"))
    return None if per_dim is None else max(1, n // per_dim)


@register_method("ped", needs=("features", "labels"), max_dim=_ped_max_dim)
def ped(
    features: np.ndarray,
    labels: np.ndarray,
    base: str = "sfda",
    time_step: float = 0.1,
    nsigma: float = 2.0,
    constant: float = 1.0,
    exit_ratio: float = 0.5,
    max_steps: int = 6,
    eps: float = 1e-3,
) -> float:
    """The ``base`` score (SFDA by default) of the features after potential energy descent.

    The reference treats each class as a charged ball in standardised feature space and lets
    overlapping classes repel (:func:`ped_step`), a cheap stand-in for how fine-tuning pulls
    classes apart: steps repeat while the step's total displacement is more than ``exit_ratio``
    of the first step's (at most ``max_steps`` steps; none when no classes overlap), and the
    moved features are scored with ``base`` (``"sfda"`` or ``"logme"``, through the registry).
    Reference defaults: time_step 0.1, nsigma 2.0 (the paper also tries 0.3 and 0.6), constant
    1.0, exit_ratio 0.5, 6 steps, SFDA.

    Deviation: the reference standardises with the mean and std (floored at ``eps``) of the
    model's features on ImageNet validation images, its source data; the zoo does not keep
    per-sample source features, so the target features' own mean and std are used (the same
    affine map for every step, as in the reference).

    Regime: the base score's. With ``base="sfda"`` the registry first reduces the features by
    PCA to N // 4 dimensions when D > N / 4 (SFDA's regime, in which the whole simulation then
    runs); ``"logme"`` is well posed everywhere. The simulation needs per-class variances, so
    classes of one sample have radius 0 (they move only when other classes reach them).
    """
    if base not in BASES:
        raise ValueError(f"ped base must be one of {sorted(BASES)}; got {base!r}")
    if time_step <= 0 or nsigma < 0 or constant < 0 or eps <= 0 or max_steps < 0:
        raise ValueError(
            "ped needs time_step > 0, nsigma >= 0, constant >= 0, eps > 0, max_steps >= 0; got "
            f"{time_step}, {nsigma}, {constant}, {eps}, {max_steps}"
        )
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    shift = features.mean(axis=0)
    scale = np.maximum(features.std(axis=0), eps)
    x = features
    first = None
    for _ in range(max_steps):
        moved, change = ped_step(x, inverse, counts, shift, scale, time_step, nsigma, constant)
        if first is None:
            first = change
        if first == 0.0 or change / first <= exit_ratio:
            break
        x = moved
    return score(base, features=x, labels=labels)
