"""LEEP, log expected empirical prediction (Nguyen et al. 2020).

Nguyen, Hassner, Seeger, Archambeau. "LEEP: A New Measure to Evaluate Transferability of Learned
Representations." ICML 2020.
"""

from __future__ import annotations

import numpy as np

from selection.linalg import leep_from_probs
from selection.registry import register_method


@register_method("leep", needs=("probs", "labels"))
def leep(probs: np.ndarray, labels: np.ndarray) -> float:
    """LEEP = (1/N) sum_i log sum_z P(y_i | z) theta_z(x_i), theta = source-head softmax (N, Cs).

    P(y, z) = (1/N) sum_{i: y_i = y} theta_z(x_i), P(y | z) = P(y, z) / sum_y P(y, z). Higher is
    better; the maximum 0 is reached when each sample's source prediction determines its target
    label with certainty. The log and the sign are those of the paper (some public code drops one).

    Regime: independent of the feature dimension; well posed when N is large against the number
    of source classes Cs that receive mass, since P(y | z) is an in-sample estimate with
    Cs (C - 1) free values. The soft counts share every sample among all z, which bounds the
    optimism (a z with little mass contributes little), and there is no published correction, so
    the paper's score is kept as is at every N: no remedy.
    """
    return leep_from_probs(probs, labels)
