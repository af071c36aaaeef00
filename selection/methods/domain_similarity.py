"""Domain Similarity (Cui et al. 2018), the Earth Mover's Distance between class-mean profiles.

Cui, Song, Sun, Howard, Belongie. "Large Scale Fine-Grained Categorization and Domain-Specific
Transfer Learning." CVPR 2018, section 4.1.

Two registered variants share the formula and differ only in the feature space the caller measures
both profiles in:

- ``domain_similarity`` (the paper's protocol): one fixed *reference* extractor for every entry
  (``selection.reference_entry``, by default the benchmark's baseline). The caller passes the
  reference's target features and the reference-space profile of the entry's source data
  (``selection.extract.Extractor.source_profile``). Its function carries ``reference_space = True``,
  which is how ``selection.evaluate`` knows what to feed it.
- ``domain_similarity_own_space``: each entry's own features and the source profile stored with it
  at training time (``zoo.store.load_source_profile``).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from selection.linalg import class_sums
from selection.registry import register_method

# The network simplex is exact but may need many pivots for a 1000-class source against a 100-class
# target; POT's default (1e5) can stop early and then only warns.
_EMD_MAX_ITER = 10_000_000


def emd_similarity(
    features: np.ndarray,
    labels: np.ndarray,
    source_profile: tuple[np.ndarray, np.ndarray],
    gamma: float = 0.01,
    min_count: int = 5,
) -> float:
    """exp(-gamma * EMD) between the source and target class-mean feature distributions.

    Reference formula (Cui et al. 2018, eq. 2-3): each domain is a discrete distribution over its
    classes, class i placed at its mean feature g(s_i) with weight w_i = n_i / sum_j n_j (n_i images
    of class i). With Euclidean ground distance d_ij = ||g(s_i) - g(t_j)||_2,
    EMD = min_{f >= 0, sum_j f_ij = w_si, sum_i f_ij = w_tj} sum_ij f_ij d_ij (solved exactly by
    POT's ``ot.emd2``), and similarity = exp(-gamma * EMD).

    Args:
        features: (N, D) target features.
        labels: (N,) target labels; each class's mean and count come from its samples.
        source_profile: (class means (Cs, D), image counts (Cs,)) of the source data, both in the
            same feature space as ``features``.
        gamma: the scale of the exponential, in inverse feature units (paper: 0.01).
        min_count: source classes with fewer than this many images are dropped before the EMD, as
            the paper drops rare source classes (their means are noisy). Default 5.

    Returns:
        A similarity in (0, 1]; 1 when both profiles are identical.
    """
    import ot  # POT imports torch on load: keep it out of ``import selection.methods``

    if gamma <= 0:
        raise ValueError(f"domain_similarity gamma must be > 0; got {gamma}")
    if min_count < 0:
        raise ValueError(f"domain_similarity min_count must be >= 0; got {min_count}")
    source_means, source_counts = source_profile
    if source_means.shape[1] != features.shape[1]:
        raise ValueError(
            f"source_profile means have D={source_means.shape[1]} but features have "
            f"D={features.shape[1]}; both must come from the same feature extractor"
        )
    keep = (source_counts >= min_count) & (source_counts > 0)
    if not keep.any():
        raise ValueError(
            f"every source class has fewer than min_count={min_count} images "
            f"(largest count {source_counts.max():g}); lower min_count"
        )
    source_means, source_counts = source_means[keep], source_counts[keep]

    classes, inverse, target_counts = np.unique(labels, return_inverse=True, return_counts=True)
    target_means = class_sums(features, inverse, len(classes)) / target_counts[:, None]

    source_weights = source_counts / source_counts.sum()
    target_weights = target_counts / target_counts.sum()
    ground = ot.dist(source_means, target_means, metric="euclidean")
    emd = float(ot.emd2(source_weights, target_weights, ground, numItermax=_EMD_MAX_ITER))
    return float(np.exp(-gamma * emd))


def _register(name: str, doc: str, reference_space: bool) -> None:
    """Register one variant: the formula of :func:`emd_similarity`, fed as ``doc`` says."""

    # the signature (inputs and parameters the registry reads) is emd_similarity's
    @functools.wraps(emd_similarity)
    def variant(*args: Any, **kwargs: Any) -> float:
        return emd_similarity(*args, **kwargs)

    variant.__name__ = variant.__qualname__ = name
    variant.__doc__ = doc
    variant.reference_space = reference_space  # type: ignore[attr-defined]
    register_method(name, needs=("features", "labels", "source_profile"))(variant)


_register(
    "domain_similarity",
    """exp(-gamma * EMD) between source and target class means, both in ONE reference feature space.

    The formula of :func:`emd_similarity` (Cui et al. 2018, eq. 2-3). ``features`` (N, D) are the
    target features of the reference extractor (the same for every entry), ``source_profile`` the
    class means (Cs, D) and class sizes (Cs,) of the entry's source data (the datasets of its card;
    for ``expert@domain`` that domain's datasets) measured with the same reference extractor. The
    entry's own network does not enter: the score ranks entries by how close their source data lies
    to the target, which is what Cui et al. measure (one ImageNet-trained network for every source).

    Regime: the EMDs of different entries are comparable because every class mean lives in the
    same D-dimensional space with the same scale; gamma (paper 0.01) is in that space's units.
    Well posed when the reference extractor separates the datasets at all (a trained network; a
    random one gives a weak but still common metric) and each kept source class has at least
    ``min_count`` images. The rule comes from Cui et al. 2018, section 4.1 (a single fixed
    extractor for all domains). No remedy is applied.
    """,
    reference_space=True,
)
_register(
    "domain_similarity_own_space",
    """exp(-gamma * EMD) between source and target class means in each entry's OWN feature space.

    The formula of :func:`emd_similarity` (Cui et al. 2018, eq. 2-3), with ``features`` (N, D) the
    entry's own target features and ``source_profile`` the class means (Cs, D) and counts (Cs,) the
    entry stored with itself at training time (its penultimate features of its source data).

    Regime: one entry's EMD is well posed (both profiles share the entry's space), but EMDs of
    different entries are NOT comparable: each is in its own network's units, so an entry whose
    features have a smaller scale (or another dimension D) gets a smaller EMD and a higher score
    whatever its data. Use it to rank entries of one architecture and training recipe, or to show
    the artefact; the comparable score is ``domain_similarity`` (Cui et al. 2018, section 4.1,
    measure every domain with one fixed network). No remedy is applied.
    """,
    reference_space=False,
)
