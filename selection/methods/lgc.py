"""LGC, label-gradient correlation (paper eq. 2, 7, 8): LFC's correlation with a gradient kernel.

The gradients (R random heads; last-conv per-sample gradients, exact for a small layer, else
count-sketched so that the kernel is kept: correlation >= 0.988 with the exact kernel, LGC within
2%) are computed by ``selection.sketch``; this module only scores them.
"""

from __future__ import annotations

import numpy as np

from selection.linalg import gram_label_correlation
from selection.registry import register_method


@register_method("lgc", needs=("grads", "labels"))
def lgc(grads: np.ndarray, labels: np.ndarray) -> float:
    """LGC = corr(K, 2S - 1) over all N^2 entries, K = sum_r G_r G_r^T = G G^T.

    ``grads`` G (N, P) holds the R (exact or sketched) per-sample gradients side by side
    (P = R x P_r), so G G^T is the sum of the per-head kernels, the linearised model's NTK of the last convolution in
    expectation over the random heads. S_ij = 1[y_i = y_j]. Gradients are not centred (the
    paper's form). Closed form, O(N P min(N, P)): see
    :func:`selection.methods.lfc.gram_label_correlation`.

    Regime: well posed for any N, D and class counts, like LFC (a correlation over the N^2 kernel
    entries; its noise floor is about sqrt((C - 1) / N) for uninformative gradients). The kernel
    itself must be faithful: ``selection.sketch`` keeps it exact for a last conv of at most 8192
    weights and count-sketches larger ones (measured kernel correlation >= 0.988, LGC within 2%, on
    ResNet-8/20, DenseNet-mini and EfficientNet-Lite0; ``benchmarks/RESULTS.md``). No remedy needed.
    """
    return gram_label_correlation(grads, labels, center=False)
