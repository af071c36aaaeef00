"""LFC, label-feature correlation (paper eq. 6-8): Pearson correlation of the Gram matrix and labels.

The N x N matrices are never built: every sum has a closed form over the smaller Gram matrix
(D x D when D <= N, else N x N) and the C x D class sums, so the cost is O(N D min(N, D)) time and
O(N D + D^2) memory (:func:`selection.linalg.gram_label_correlation`, shared with LGC).
"""

from __future__ import annotations

import numpy as np

from selection.linalg import gram_label_correlation
from selection.registry import register_method


@register_method("lfc", needs=("features", "labels"))
def lfc(features: np.ndarray, labels: np.ndarray) -> float:
    """LFC = corr(F F^T, 2S - 1) over all N^2 entries (diagonal included), the paper's form.

    K = F F^T with F the raw features (N, D); S_ij = 1[y_i = y_j]. Computed in closed form by
    :func:`gram_label_correlation` in O(N D min(N, D)) time; invariant to the scale of F and to the
    order of the samples, but not to an offset added to every feature (see ``lfc_centered``).

    Regime: well posed at every N >= 2, D and class count; no remedy. It is a correlation of
    N^2 kernel entries with fixed labels, no matrix is inverted and nothing is fitted. Its only
    dependence on D is the diagonal K_ii = ||f_i||^2 (inside S = 1), whose share of var(K)
    saturates as D grows: for pure noise LFC tends to about sqrt((C - 1) / N) at any D (0.12 at
    D = 2048, N = 500, C = 10, against 0.24 for informative D = 64 features).
    """
    return gram_label_correlation(features, labels, center=False)


@register_method("lfc_centered", needs=("features", "labels"))
def lfc_centered(features: np.ndarray, labels: np.ndarray) -> float:
    """LFC with the features centred over the samples: corr(G G^T, 2S - 1), G = F - mean(F).

    Invariant to a constant offset added to every feature (which plain LFC is not), so features
    of different architectures compare on an equal footing.

    Regime: as ``lfc``, well posed at every N >= 2 and D; no remedy (pure noise at D = 2048,
    N = 500, C = 10 scores 0.12 against 0.33 for informative D = 64 features).
    """
    return gram_label_correlation(features, labels, center=True)
