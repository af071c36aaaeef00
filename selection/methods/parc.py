"""PARC, pairwise annotation representation comparison (Bolya et al. 2021).

Bolya, Mittapalli, Hoffman. "Scalable Diverse Model Selection for Accessible Transfer Learning."
NeurIPS 2021 (reference code: dbolya/parc). Cost and memory grow with N^2: callers cap N
(``selection.checks.stratified_cap``).
"""

from __future__ import annotations

import numpy as np

from selection.linalg import (
    class_index,
    rdm_upper,
    reduced_standardised,
    spearman_percent,
    upper_mask,
)
from selection.registry import register_method


@register_method("parc", needs=("features", "labels"), quadratic=True)
def parc(features: np.ndarray, labels: np.ndarray, dims: int = 32, seed: int = 0) -> float:
    """PARC = 100 x Spearman(upper(RDM(F')), upper(RDM(onehot(y)))), F' = standardise(PCA_32(F)).

    RDM(X)_ij = 1 - Pearson correlation of rows x_i and x_j; upper = the N (N-1) / 2 entries
    above the diagonal. The label RDM of one-hot rows is 0 for same-class pairs and
    1 + 1/(C-1) otherwise, a monotone function of 1[y_i != y_j], which is what is ranked. In
    [-100, 100]; features whose RDM is constant score 0. Needs a class with 2 samples (else every
    pair differs and the label RDM is constant). O(N^2) time and memory: cap N before calling.

    Regime: well posed at every D and N >= 3 with a same-class pair; no remedy beyond the method's
    own PCA to 32 dimensions (Bolya et al.'s setup, at most N components), which already makes the
    RDM independent of the input D; nothing is inverted (pure noise at D = 2048, N = 500, C = 10
    scores -0.1 against 22 for informative D = 64 features).
    """
    if dims < 1:
        raise ValueError(f"parc dims must be >= 1; got {dims}")
    index, counts = class_index(labels)
    if counts.max() < 2:
        raise ValueError(
            "parc needs a class with at least 2 samples (a same-class pair); every class has 1"
        )
    feature_rdm = rdm_upper(reduced_standardised(features, dims, seed))
    label_rdm = (index[:, None] != index[None, :])[upper_mask(len(index))]
    return spearman_percent(feature_rdm, label_rdm)
