"""LFC, label-feature correlation (paper eq. 6-8): Pearson correlation of the Gram matrix and labels.

The N x N matrices are never built: every sum has a closed form over the smaller Gram matrix
(D x D when D <= N, else N x N) and the C x D class sums, so the cost is O(N D min(N, D)) time and
O(N D + D^2) memory. The helpers here (``gram_label_correlation``, ``feature_gram``) are shared by
LGC (gradients instead of features), LogME and the H-scores.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import sparse

from selection.registry import register_method

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
    return sparse.csr_array((np.ones(n), (index, np.arange(n))), shape=(n_classes, n))


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
            sums[:] = class_indicator(index, n_classes) @ x
        row_sq[:] = np.einsum("ij,ij->i", x, x)
        return gram, sums, row_sq
    for rows in row_blocks(n, d):
        x = features[rows] - shift if shift is not None else features[rows].copy()
        x /= scale
        gram += x.T @ x  # numpy dispatches X^T X of one buffer to BLAS syrk
        if index is not None:
            sums += class_indicator(index[rows], n_classes) @ x
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
