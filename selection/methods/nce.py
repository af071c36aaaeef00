"""NCE, negative conditional entropy (Tran et al. 2019), with hard source labels.

Tran, Nguyen, Hassner. "Transferability and Hardness of Supervised Classification Tasks."
ICCV 2019.
"""

from __future__ import annotations

import numpy as np

from selection.linalg import class_index
from selection.registry import register_method


@register_method("nce", needs=("probs", "labels"))
def nce(probs: np.ndarray, labels: np.ndarray) -> float:
    """NCE = -H(Y | Z) = sum_{y,z} P(y, z) log P(y | z), z_i = argmax_z theta_z(x_i).

    theta = source-head softmax (N, Cs); P(y, z) = #{i: y_i = y, z_i = z} / N (hard counts),
    P(y | z) = P(y, z) / P(z). Pairs with P(y, z) = 0 contribute 0 (0 log 0 = 0), with no additive
    epsilon. In nats, <= 0; 0 when the source prediction determines the target label. Ties in the
    argmax go to the first source class (numpy's argmax).

    Regime: independent of the feature dimension; the plug-in conditional entropy is well posed
    when every predicted source class holds several samples (N >> number of distinct argmax
    classes). With about one sample per predicted class H(Y | Z) -> 0 and NCE reaches its maximum
    0 for any labels; the plug-in bias is about (m_YZ - m_Z) / (2N) nats (Miller 1955), m the
    occupied cells. The paper's plug-in score is kept at every N: no remedy is applied.
    """
    n = probs.shape[0]
    z = np.argmax(probs, axis=1)
    y, counts = class_index(labels)
    # joint counts over the (y, z) pairs that occur
    pairs, joint = np.unique(y * probs.shape[1] + z, return_counts=True)
    z_of_pair = pairs % probs.shape[1]
    z_counts = np.bincount(z, minlength=probs.shape[1])
    return float(np.sum(joint / n * np.log(joint / z_counts[z_of_pair])))
