"""Scores outside their regime: informative features (D = 64) against pure noise (D = 2048).

For every feature-based method, prints the raw formula (``Method.fn``, no remedy) and the value that
``selection.score_detail`` returns (the registry applies the method's remedy outside its regime),
for N = 500 and N = 200 samples of C = 10 balanced classes. A method whose raw value is higher on
the noise rewards dimension, not transferability.

    python benchmarks/bench_regimes.py [--n 500 200]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from selection.registry import available, score_detail

FEATURE_INPUTS = {"features", "labels"}


def informative(n: int, classes: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rectified Gaussian class clusters (N, dim) with balanced labels (N,)."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % classes)
    means = 0.5 * rng.normal(size=(classes, dim))
    return np.maximum(means[labels] + rng.normal(size=(n, dim)), 0), labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[500, 200])
    args = parser.parse_args()
    methods = {
        name: m
        for name, m in available().items()
        if set(m.needs) <= FEATURE_INPUTS and "features" in m.needs
    }
    print(
        "| N | method | raw: informative | raw: noise | remedied: informative | remedied: noise | remedy (noise) |"
    )
    print("|---|---|---|---|---|---|---|")
    for n in args.n:
        good, labels = informative(n, 10, 64, seed=0)
        noise = np.random.default_rng(1).normal(size=(n, 2048))
        for name, m in methods.items():
            t0 = time.perf_counter()
            inputs = [{"features": f, "labels": labels} for f in (good, noise)]
            raw = [m.fn(**{k: v for k, v in x.items() if k in m.needs}) for x in inputs]
            detail = [score_detail(name, **x) for x in inputs]
            print(
                f"| {n} | {name} | {raw[0]:.4g} | {raw[1]:.4g} | {detail[0].value:.4g} | "
                f"{detail[1].value:.4g} | {detail[1].remedy or '-'} |"
                f"  ({time.perf_counter() - t0:.1f} s)"
            )


if __name__ == "__main__":
    main()
