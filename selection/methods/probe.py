"""Probe accuracies: how well a cheap classifier on the frozen features separates the target classes.

``knn_accuracy``: leave-one-out k-nearest-neighbour accuracy. ``logistic_accuracy``: stratified
k-fold cross-validated accuracy of a multinomial logistic regression (scikit-learn). Both are the
"task-aware search" baselines of Renggli et al., "Which Model to Transfer? Finding the Needle in
the Growing Haystack", CVPR 2022.
"""

from __future__ import annotations

import warnings

import numpy as np

from selection.checks import require_min_per_class, stratified_cap
from selection.registry import register_method

# rows of the distance matrix computed at once: 1024 x 5000 float64 = 40 MB
_BLOCK_ROWS = 1024


def _knn_predict(
    features: np.ndarray, inverse: np.ndarray, n_classes: int, k: int, metric: str
) -> np.ndarray:
    """Leave-one-out k-NN predictions (class indices), ties broken towards the nearest class."""
    if metric == "cosine":
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        # an all-zero row has no direction: it stays zero, at cosine distance 1 from everything
        unit = np.divide(features, norms, out=np.zeros_like(features), where=norms > 0)
    sq_norms = np.sum(features**2, axis=1)
    n = len(features)
    predictions = np.empty(n, dtype=np.int64)
    for start in range(0, n, _BLOCK_ROWS):
        rows = np.arange(start, min(start + _BLOCK_ROWS, n))
        if metric == "cosine":
            dist = 1.0 - unit[rows] @ unit.T
        else:  # squared Euclidean ranks neighbours like Euclidean
            dist = sq_norms[rows, None] + sq_norms[None, :] - 2.0 * features[rows] @ features.T
        dist[np.arange(len(rows)), rows] = np.inf  # leave the sample itself out
        nearest = np.argpartition(dist, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(dist, nearest, axis=1), axis=1, kind="stable")
        # (rows, k) classes of the neighbours, nearest first
        neighbour_classes = inverse[np.take_along_axis(nearest, order, axis=1)]
        votes = np.zeros((len(rows), n_classes))
        first_rank = np.full((len(rows), n_classes), k)
        for rank in range(k - 1, -1, -1):  # backwards, so first_rank ends at the nearest occurrence
            cls = neighbour_classes[:, rank]
            votes[np.arange(len(rows)), cls] += 1
            first_rank[np.arange(len(rows)), cls] = rank
        # most votes first; among equal votes the class whose nearest member is closest
        predictions[rows] = np.argmax(votes * (k + 1) - first_rank, axis=1)
    return predictions


@register_method("knn_accuracy", needs=("features", "labels"), quadratic=True)
def knn_accuracy(
    features: np.ndarray, labels: np.ndarray, k: int = 5, metric: str = "cosine"
) -> float:
    """Leave-one-out k-NN accuracy on the features (N, D); a fraction in [0, 1].

    Each sample is classified by a majority vote of its k nearest other samples (k is capped at
    N - 1); a tied vote goes to the tied class with the nearest neighbour. ``metric`` is "cosine"
    (1 - cosine similarity; all-zero rows are at distance 1 from everything) or "euclidean".
    Cost O(N^2 D): callers cap N (``quadratic``).

    Regime: well posed at every D and N >= 2; no remedy. Leave-one-out prediction fits nothing, so
    it cannot overfit; with noise the neighbours are random and the accuracy sits at chance (pure
    noise at D = 2048, N = 500, C = 10: 0.09, against 0.66 for informative D = 64 features).
    """
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"knn_accuracy metric must be 'cosine' or 'euclidean'; got {metric!r}")
    if k < 1:
        raise ValueError(f"knn_accuracy k must be >= 1; got {k}")
    classes, inverse = np.unique(labels, return_inverse=True)
    k = min(k, len(labels) - 1)
    predictions = _knn_predict(features, inverse, len(classes), k, metric)
    return float(np.mean(predictions == inverse))


@register_method("logistic_accuracy", needs=("features", "labels"))
def logistic_accuracy(
    features: np.ndarray,
    labels: np.ndarray,
    folds: int = 5,
    C: float = 1.0,
    max_iter: int = 200,
    seed: int = 0,
    max_nc: int | None = 4_000_000,
) -> float:
    """Stratified k-fold cross-validated accuracy of logistic regression; a fraction in [0, 1].

    Per fold: StandardScaler fitted on the training part, then sklearn ``LogisticRegression``
    (multinomial, L2, inverse strength ``C``, lbfgs, ``max_iter`` iterations); the accuracy is
    pooled over all held-out predictions. Folds = min(``folds``, smallest class count), shuffled
    with ``seed``; every class needs at least 2 samples. A fit that stops at ``max_iter`` before
    converging is still used (its accuracy is what a budgeted probe gets).

    Cost: each lbfgs iteration computes the N x C logits and their gradient, O(N C D), and a fit
    takes tens of iterations, so a target with many classes is expensive (1000 classes x 50
    samples at D = 512: minutes per entry). ``max_nc`` caps N x C: above it the probe runs on a
    class-stratified, seeded subset (``stratified_cap``, seed ``seed``) of N' = max(max_nc / C,
    2 C) samples. The subset depends only on the labels, so every entry of a target is probed on
    the same samples. The default 4e6 never binds on a usual target (50 images x 20 classes is
    2e4; 50 x 280 is 7e5) and keeps 4 images per class of a 1000-class target.
    ``max_nc=None`` disables the cap.

    The fits run on one BLAS / OpenMP thread: lbfgs makes many small matrix products, where
    extra threads only wait for each other (on a busy 2-core machine, 5 folds at N = 1000,
    D = 2048, C = 20 took 22 s with the default threads and 1.3 s with one, same predictions).

    Regime: well posed at every D and N with 2 samples per class (enforced); no remedy. The accuracy
    is measured on held-out folds, so a wide D that lets the fit interpolate its training part
    does not inflate it (pure noise at D = 2048, N = 500, C = 10: 0.08, against 0.80 for
    informative D = 64 features). The folds are shuffled with ``seed``: a permutation of the
    samples changes the folds and so the value, by sampling noise only.

    Args:
        features: (N, D) target features.
        labels: (N,) target labels.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    if folds < 2:
        raise ValueError(f"logistic_accuracy folds must be >= 2; got {folds}")
    if C <= 0:
        raise ValueError(f"logistic_accuracy C must be > 0; got {C}")
    if max_nc is not None and max_nc < 1:
        raise ValueError(f"logistic_accuracy max_nc must be >= 1 or None; got {max_nc}")
    require_min_per_class(labels, 2, "logistic_accuracy")
    n_classes = len(np.unique(labels))
    if max_nc is not None and len(labels) * n_classes > max_nc:
        keep = stratified_cap(labels, max(max_nc // n_classes, 2 * n_classes), seed)
        features, labels = features[keep], labels[keep]
    _, counts = np.unique(labels, return_counts=True)
    splitter = StratifiedKFold(
        n_splits=min(folds, int(counts.min())), shuffle=True, random_state=seed
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        # few samples per class (a capped many-class target): sklearn wonders whether the labels
        # are a regression target; they are class indices
        warnings.filterwarnings("ignore", message="The number of unique classes is greater")
        predictions = cross_val_predict(model, features, labels, cv=splitter)
    return float(np.mean(predictions == labels))
