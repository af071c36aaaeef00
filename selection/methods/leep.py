"""LEEP, log expected empirical prediction (Nguyen et al. 2020).

Nguyen, Hassner, Seeger, Archambeau. "LEEP: A New Measure to Evaluate Transferability of Learned
Representations." ICML 2020.
"""

from __future__ import annotations

import numpy as np

from selection.methods.lfc import class_index, class_indicator, row_blocks
from selection.registry import register_method


def leep_from_probs(theta: np.ndarray, labels: np.ndarray) -> float:
    """LEEP of dummy-label probabilities ``theta`` (N, Z) for target ``labels`` (N,).

    P(y, z) = (1/N) sum_{i: y_i = y} theta_z(x_i); P(y | z) = P(y, z) / sum_y' P(y', z);
    LEEP = (1/N) sum_i log sum_z P(y_i | z) theta_z(x_i)   (nats; <= 0; 0 for a perfect predictor).

    A dummy label z that no sample gives mass to has P(z) = 0 and contributes nothing (its
    P(. | z) is set to 0). Every term of the sum is positive: a z with theta_z(x_i) > 0 has
    P(y_i, z) >= theta_z(x_i) / N > 0, so the log is finite. Shared with NLEEP (mixture posteriors).
    """
    theta = np.asarray(theta, dtype=np.float64)
    n = theta.shape[0]
    index, counts = class_index(labels)
    joint = (class_indicator(index, len(counts)) @ theta) / n  # P(y, z): (C, Z)
    marginal = joint.sum(axis=0)  # P(z): (Z,)
    conditional = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)
    total = 0.0
    for rows in row_blocks(n, theta.shape[1]):  # bounded memory: one block of P(y_i | .) rows
        expected = np.einsum("iz,iz->i", theta[rows], conditional[index[rows]])
        total += float(np.sum(np.log(expected)))
    return total / n


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
