"""RSA, representation similarity analysis against a probe network (Dwivedi & Roig 2019).

Dwivedi, Roig. "Representation Similarity Analysis for Efficient Task Taxonomy & Transfer
Learning." CVPR 2019. The probe is a small network trained on the target's selection samples (paper:
ResNet-18); its features arrive as ``probe_features``. O(N^2): callers cap N.
"""

from __future__ import annotations

import numpy as np

from selection.linalg import rdm_upper, reduced_standardised, spearman_percent
from selection.registry import register_method


@register_method("rsa", needs=("features", "probe_features"), quadratic=True)
def rsa(features: np.ndarray, probe_features: np.ndarray, dims: int = 32, seed: int = 0) -> float:
    """RSA = 100 x Spearman(upper(RDM(F')), upper(RDM(P'))), as PARC with a probe's features.

    F' = standardise(PCA_32(F)) for the candidate's features (N, D) and P' likewise for the probe
    network's features (N, Dp) on the same N images in the same order; RDM(X)_ij = 1 - Pearson
    correlation of rows i and j, upper = the entries above the diagonal. In [-100, 100]; 0 when
    either RDM is constant. Needs N >= 3 (two pairs).

    Regime: as ``parc``: well posed at every D and N >= 3; both inputs pass the method's own PCA
    to 32 dimensions (at most N components) before the RDMs, so neither D matters and nothing is
    inverted. No remedy.
    """
    if dims < 1:
        raise ValueError(f"rsa dims must be >= 1; got {dims}")
    if features.shape[0] < 3:
        raise ValueError(
            f"rsa compares pairs of samples and needs N >= 3; got N={features.shape[0]}"
        )
    return spearman_percent(
        rdm_upper(reduced_standardised(features, dims, seed)),
        rdm_upper(reduced_standardised(probe_features, dims, seed)),
    )
