"""Linear-algebra helpers shared by the selection methods: per-class sums, streamed Gram matrices,
the Gram-label correlation of LFC and LGC, the LEEP of a posterior (LEEP, NLEEP) and the
representational dissimilarity of PARC and RSA.

Method files import these helpers, never other methods.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import sparse, stats

from core.arrays import class_sums  # noqa: F401  (re-exported: the methods import it from here)

# rows per block when streaming over samples: about 64 MiB of float64 temporaries for D = 2048
_BLOCK_BYTES = 64 * 2**20


def row_blocks(n: int, d: int) -> Iterator[slice]:
    """Slices of consecutive rows of an (n, d) float64 array, about 64 MiB each."""
    step = max(1, _BLOCK_BYTES // (8 * max(d, 1)))
    for start in range(0, n, step):
        yield slice(start, min(start + step, n))


def class_index(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map labels (N,) to dense indices 0..C-1 over the classes present.

    Returns:
        (index (N,) int64, counts (C,) int64).
    """
    _, index, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return index.reshape(-1).astype(np.int64), counts.astype(np.int64)


def class_indicator(index: np.ndarray, n_classes: int) -> sparse.csr_array:
    """Sparse (C, n) one-hot matrix of class indices: indicator @ X sums X's rows per class."""
    n = len(index)
    return sparse.csr_array((np.ones(n), (np.asarray(index), np.arange(n))), shape=(n_classes, n))


def feature_gram(
    features: np.ndarray,
    index: np.ndarray | None = None,
    n_classes: int = 0,
    *,
    shift: np.ndarray | None = None,
    scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Gram matrix, class sums and row norms of X = (F - shift) / scale, streamed over samples.

    Only blocks of rows of X are materialised, so the extra memory is O(D^2 + C D) for D <= N.

    Args:
        features: F (N, D) float64.
        index: (N,) class indices 0..C-1 (from :func:`class_index`), or None for no class sums.
        n_classes: C.
        shift: (D,) subtracted from every row (e.g. the column means), or None.
        scale: every row is divided by it after the shift.

    Returns:
        gram: X^T X (D, D) when D <= N, else X X^T (N, N), the smaller of the two;
        class_sums: (C, D) sum of the rows of X per class, or None when ``index`` is None;
        row_sq_norms: (N,) ||x_i||^2.
    """
    n, d = features.shape
    small_gram_is_dd = d <= n
    gram = np.zeros((d, d) if small_gram_is_dd else (n, n))
    sums = np.zeros((n_classes, d)) if index is not None else None
    row_sq = np.empty(n)
    if not small_gram_is_dd:
        x = features - shift if shift is not None else features.copy()
        x /= scale
        gram[:] = x @ x.T
        if index is not None:
            sums[:] = class_sums(x, index, n_classes)
        row_sq[:] = np.einsum("ij,ij->i", x, x)
        return gram, sums, row_sq
    for rows in row_blocks(n, d):
        x = features[rows] - shift if shift is not None else features[rows].copy()
        x /= scale
        gram += x.T @ x  # numpy dispatches X^T X of one buffer to BLAS syrk
        if index is not None:
            sums += class_sums(x, index[rows], n_classes)
        row_sq[rows] = np.einsum("ij,ij->i", x, x)
    return gram, sums, row_sq


def column_means(x: np.ndarray) -> np.ndarray:
    """Column means of x (N, D), exact for constant columns (so that centring them gives 0, not
    rounding residue)."""
    mean = x.mean(axis=0)
    lo, hi = x.min(axis=0), x.max(axis=0)
    constant = lo == hi
    mean[constant] = lo[constant]
    return mean


def max_abs(x: np.ndarray) -> float:
    """max |x_ij| without an N x D temporary."""
    return float(max(x.max(), -x.min()))


def gram_label_correlation(
    features: np.ndarray, labels: np.ndarray, *, center: bool = False
) -> float:
    """Pearson correlation over all N^2 entries of K = F F^T and S_ij = 1[y_i = y_j].

    Y = 2S - 1 is affine in S, so corr(K, Y) = corr(K, S). Write f_i = m + g_i with m the mean row
    and g_i centred, a_i = m . g_i, t_c = sum_{i in c} g_i, M = N^2 and sum S = sum_c n_c^2. Then
    mean(K) = |m|^2 and, with no N x N matrix and no cancellation of large terms,

        sum (K - mean K)(S - mean S) = sum_c ||t_c||^2 + 2 sum_c n_c m . t_c
        sum (K - mean K)^2           = ||G^T G||_F^2 + 2 N sum_i a_i^2   (G the centred rows)
        sum (S - mean S)^2           = sum S - (sum S)^2 / M.

    These equal the closed form of DESIGN.md section 6 (sum K = ||sum_i f_i||^2,
    sum K^2 = ||F^T F||_F^2, sum K.S = sum_c ||sum_{i in c} f_i||^2) expanded around the mean.
    With ``center=True`` the features are centred first (m = 0 in the formulas above).

    Args:
        features: F (N, D); any real features or per-sample gradients.
        labels: (N,) integer labels with at least two classes.
        center: centre F over the samples before the Gram matrix.

    Returns:
        The correlation in [-1, 1]; 0.0 when K is constant (e.g. all features equal), which
        carries no label information.
    """
    features = np.asarray(features, dtype=np.float64)
    n = features.shape[0]
    index, counts = class_index(labels)
    if len(counts) < 2:
        raise ValueError(f"gram_label_correlation needs at least 2 classes; got {len(counts)}")
    # the correlation is invariant to the scale of F: dividing by max |F| keeps every sum finite
    scale = max_abs(features)
    if scale == 0.0:
        return 0.0
    raw_mean = column_means(features)
    mean = raw_mean / scale  # m in the formulas, in the units of the scaled features
    gram, sums, _ = feature_gram(features, index, len(counts), shift=raw_mean, scale=scale)

    cov = float(np.sum(sums * sums))
    var_k = float(np.sum(gram * gram))
    if not center:
        # sum_i a_i^2 = m^T G^T G m (D <= N) or ||G m||^2 computed from the N x N route
        if gram.shape[0] == features.shape[1]:
            a_sq = float(mean @ gram @ mean)
        else:
            a = ((features - raw_mean) / scale) @ mean
            a_sq = float(a @ a)
        cov += 2.0 * float(counts @ (sums @ mean))
        var_k += 2.0 * n * a_sq
    sum_s = float(np.sum(counts.astype(np.float64) ** 2))
    var_s = sum_s - sum_s**2 / float(n) ** 2
    if var_k <= 0.0 or var_s <= 0.0:
        return 0.0
    return cov / np.sqrt(var_k) / np.sqrt(var_s)


def leep_from_probs(theta: np.ndarray, labels: np.ndarray) -> float:
    """LEEP of dummy-label probabilities ``theta`` (N, Z) for target ``labels`` (N,).

    P(y, z) = (1/N) sum_{i: y_i = y} theta_z(x_i); P(y | z) = P(y, z) / sum_y' P(y', z);
    LEEP = (1/N) sum_i log sum_z P(y_i | z) theta_z(x_i)   (nats; <= 0; 0 for a perfect predictor).

    A dummy label z that no sample gives mass to has P(z) = 0 and contributes nothing (its
    P(. | z) is set to 0). Every term of the sum is positive: a z with theta_z(x_i) > 0 has
    P(y_i, z) >= theta_z(x_i) / N > 0, so the log is finite. Shared by LEEP (source-head posteriors) and NLEEP (mixture posteriors).
    """
    theta = np.asarray(theta, dtype=np.float64)
    n = theta.shape[0]
    index, counts = class_index(labels)
    joint = class_sums(theta, index, len(counts)) / n  # P(y, z): (C, Z)
    marginal = joint.sum(axis=0)  # P(z): (Z,)
    conditional = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)
    total = 0.0
    for rows in row_blocks(n, theta.shape[1]):  # bounded memory: one block of P(y_i | .) rows
        expected = np.einsum("iz,iz->i", theta[rows], conditional[index[rows]])
        total += float(np.sum(np.log(expected)))
    return total / n


# representational dissimilarity (PARC, RSA)


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
