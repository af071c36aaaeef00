"""PARC, pairwise annotation representation comparison (Bolya et al. 2021).

Bolya, Mittapalli, Hoffman. "Scalable Diverse Model Selection for Accessible Transfer Learning."
NeurIPS 2021 (reference code: dbolya/parc). Cost and memory grow with N^2: callers cap N
(``selection.checks.stratified_cap``).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from selection.methods.lfc import class_index, column_means, max_abs
from selection.registry import register_method


def reduced_standardised(features: np.ndarray, dims: int = 32, seed: int = 0) -> np.ndarray:
    """PCA to ``dims`` components when D > dims (at most N), then per-column standardisation.

    Exact PCA (sklearn's ARPACK solver to full precision, seeded, or 'full' when N <= dims; the
    reference code uses a one-iteration randomized PCA), then (x - mean) / std per column with
    ddof=0; constant columns become 0 (as sklearn's StandardScaler), and so do columns whose std
    is below 1e-10 of the largest (rounding noise).
    """
    from sklearn.decomposition import PCA

    n, d = features.shape
    centred = features - column_means(features)
    # centring and a common scale leave the result unchanged and keep PCA's sums well conditioned
    scale = max_abs(centred)
    if scale == 0.0:
        return np.zeros((n, min(d, dims)))
    centred /= scale
    if d > dims:
        k = min(dims, n)
        # ARPACK (tol 0: converged to rounding, start vector seeded) needs k < min(N, D); it
        # finds 32 components of a 5000 x 2048 matrix far faster than a full decomposition
        solver = "arpack" if k < min(n, d) else "full"
        centred = PCA(n_components=k, svd_solver=solver, random_state=seed).fit_transform(centred)
    std = centred.std(axis=0)
    # a PCA component beyond the rank of the data (N <= dims) holds rounding noise: standardising
    # would blow it up to the weight of a real component, so it counts as constant
    real = std > 1e-10 * std.max()
    return np.divide(centred, std, out=np.zeros_like(centred), where=real)


def rdm_upper(x: np.ndarray) -> np.ndarray:
    """Upper triangle (i < j, row-major) of the RDM 1 - corr(x_i, x_j) between the rows of x (N, k).

    The correlation is over the k columns of each pair of rows (np.corrcoef of the rows). A row
    that is constant over its columns has no correlation: it counts as 0 (dissimilarity 1) with
    every other row instead of NaN. Values are rounded to 1e-12 so that rounding noise does not
    order pairs whose dissimilarities are equal.
    """
    centred = x - x.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1)
    unit = np.divide(centred, norms[:, None], out=np.zeros_like(centred), where=norms[:, None] > 0)
    # a boolean mask (N^2 bytes) selects the same entries in the same order as np.triu_indices
    # (2 N^2 int64 indices: 8x the memory of the correlation matrix itself)
    values = (unit @ unit.T)[upper_mask(x.shape[0])]
    np.subtract(1.0, values, out=values)
    # equal dissimilarities that differ by rounding only must tie in the Spearman ranks
    return np.round(values, 12, out=values)


def upper_mask(n: int) -> np.ndarray:
    """(n, n) boolean mask of the entries above the diagonal."""
    return np.triu(np.ones((n, n), dtype=bool), k=1)


def spearman_percent(a: np.ndarray, b: np.ndarray) -> float:
    """100 x Spearman correlation of two equally long vectors; 0.0 when either is constant.

    ``b`` may be boolean (same / different class), for which the ranks are not computed.
    """
    if a.min() == a.max() or b.min() == b.max():
        return 0.0
    # Spearman's definition (Pearson correlation of average ranks), as stats.spearmanr computes
    # it; ranking each vector on its own avoids spearmanr's (M, 2) float copies of M = N (N-1)/2
    # pairs, and a binary b (PARC's labels) needs no ranking: its ranks are affine in b
    ranks_a = stats.rankdata(a)
    if b.dtype == bool:
        p = float(np.mean(b))
        gap = float(np.mean(ranks_a[b])) - float(np.mean(ranks_a))
        return 100.0 * p * gap / np.sqrt(p * (1.0 - p) * float(np.var(ranks_a)))
    return 100.0 * float(stats.pearsonr(ranks_a, stats.rankdata(b)).statistic)


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
