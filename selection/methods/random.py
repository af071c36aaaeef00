"""Random: the no-information baseline, a seeded uniform score per (entry, target) input.

``score()`` sees only arrays, not the entry's name, so the random number is derived from the seed and
a stable hash of the inputs: the same inputs and seed always give the same score, different
entries get independent-looking uniform draws. The analysis computes Random's expected metrics
exactly (over all orderings) elsewhere; this score is for running Random through the same pipeline.
"""

from __future__ import annotations

import zlib

import numpy as np

from selection.registry import register_method


def _crc32(array: np.ndarray) -> int:
    # shape and dtype take part so that equal bytes in another layout hash differently
    header = f"{array.shape}{array.dtype.str}".encode()
    return zlib.crc32(np.ascontiguousarray(array).tobytes(), zlib.crc32(header))


@register_method("random", needs=("features", "probs"))
def random(features: np.ndarray, probs: np.ndarray, seed: int = 0) -> float:
    """U(0, 1) drawn by ``np.random.default_rng([seed, crc32(features), crc32(probs)])``.

    The hash covers the float64 features (N, D) and source-head probabilities (N, Cs): entries of a
    shared-backbone expert have identical features but different heads, and would otherwise tie.
    Identical inputs (the same entry) tie by design. The order of the samples is part of the hash.

    Regime: no estimate, so no regime and no remedy: a uniform draw at every N and D. A permutation
    of the samples gives another (equally uniform) draw; equal inputs and seed give equal values.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"random seed must be a non-negative int; got {seed!r}")
    rng = np.random.default_rng([int(seed), _crc32(features), _crc32(probs)])
    return float(rng.uniform())
