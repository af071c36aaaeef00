"""Noise ceiling: how well fine-tuning seeds agree with each other on the ranking of the zoo.

A selection score is judged against fine-tuning accuracies that are themselves noisy: two seeds of
the same recipe (different k-shot draws, initial heads and batch orders) do not rank the entries
identically. Their agreement measures the noise of the ground truth. It is a soft ceiling, not a
hard one: a score that predicted one seed's accuracies perfectly would agree with another seed only
as well as the seeds agree with each other, but a score that knew the seed-free ranking would
agree with each seed at about the square root of the seeds' agreement (the reliability bound of
classical test theory: corr(x, y_s) <= sqrt(corr(y_s, y_s'))), so a good score can exceed it.

For one (target, shots) cell, let ``A`` be the (n entries, m seeds) matrix of test accuracies, each
at the entry's ground-truth lr (:func:`analysis.tables.seed_accuracy`), over the entries that have a
run for every seed of the cell. Over the m (m - 1) / 2 seed pairs (i < j):

- ``spearman``: mean of Spearman's rho between columns i and j;
- ``wtau``: mean of ``scipy.stats.weightedtau(A[:, i], A[:, j])`` (scipy's default, the same
  convention as the methods' ``wtau``; it is symmetric in its two arguments);
- ``top1_agreement``: fraction of pairs whose best entries coincide; with ties at the top, a pair
  agrees when the sets of entries reaching each seed's best accuracy (within
  :data:`analysis.metrics.ACC_ATOL`) share an entry.

Each value has a percentile bootstrap interval over **entries**: the rows of ``A`` are resampled
with replacement (seeded per cell), the statistic is recomputed, and degenerate resamples (a
constant column) are left out. It measures how much the agreement depends on which entries the zoo
happens to hold; with two seeds there is one pair, so resampling seeds would say nothing.

Well posed with m >= 2 seeds and n >= 2 entries whose accuracies vary within each seed; otherwise
the correlations are NaN (as for the methods).

The multi-domain view (:func:`analysis.tables.domain_selection`) ranks one expert's domains on their
own, so it has its own ceiling (:func:`domain_agreement_table`): the same statistics over that
expert's domain entries only. Domains whose fine-tuned accuracies differ by less than the seed
noise give a ceiling near 0: that view's ground truth is then noise, whatever the pooled ceiling.

The entry's lr is chosen on the mean of the same seeds that are compared. For entries that are
truly tied, that choice favours the lr whose seeds happened to sum high and leaves the seeds'
deviations negatively correlated, so their agreement centres below 0 rather than at 0. On the
mini benchmark's 20-shot Multi-BN domains it centres at -0.18; with each pair compared at the lr
chosen by the third seed, it centres at 0.00. The pooled median is 0.69 either way
(benchmarks/RESULTS.md). Read a negative value as "no agreement", not as "reversed".
"""

from __future__ import annotations

import itertools
import math
import zlib

import numpy as np
import pandas as pd
import scipy.stats

from analysis.metrics import ACC_ATOL, CELL, spearman, wtau
from analysis.tables import ENTRY_SEP, sorted_shots, split_entry

#: the method name of the seed-agreement rows in metrics.csv and summary.csv
SEED_AGREEMENT = "seed_agreement"

#: the agreement statistics, in the order they are written
AGREEMENT_METRICS = ("spearman", "wtau", "top1_agreement")


def _top1_agree(x: np.ndarray, y: np.ndarray) -> float:
    best_x = x >= x.max() - ACC_ATOL
    best_y = y >= y.max() - ACC_ATOL
    return float((best_x & best_y).any())


def agreement(acc: np.ndarray) -> dict[str, float]:
    """Mean over seed pairs of Spearman, weighted tau and top-1 agreement.

    ``acc``: (n entries, m seeds) finite accuracies. Returns ``{spearman, wtau, top1_agreement}``;
    a correlation is NaN when every pair is degenerate (one entry or a constant column), and
    otherwise the mean over the pairs where it is defined.
    """
    a = np.asarray(acc, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] < 2 or a.shape[0] < 1:
        raise ValueError(
            f"acc must be an (entries, seeds) matrix with at least 2 seeds; got shape {a.shape}"
        )
    if not np.isfinite(a).all():
        raise ValueError("acc must be finite; got NaN or inf")
    rho, tau, top = [], [], []
    for i, j in itertools.combinations(range(a.shape[1]), 2):
        rho.append(spearman(a[:, i], a[:, j]))
        tau.append(wtau(a[:, i], a[:, j]))
        top.append(_top1_agree(a[:, i], a[:, j]))

    def mean(v: list[float]) -> float:
        v = [x for x in v if math.isfinite(x)]
        return float(np.mean(v)) if v else math.nan

    return {"spearman": mean(rho), "wtau": mean(tau), "top1_agreement": float(np.mean(top))}


def _boot_statistics(a: np.ndarray, idx: np.ndarray) -> dict[str, np.ndarray]:
    """The statistics of :func:`agreement` for every resample ``a[idx[b]]``, vectorised over b
    (Spearman as the Pearson correlation of average ranks, top-1 agreement from the best sets;
    the weighted tau calls scipy per resample). Returns {metric: (B,) values, NaN when undefined}."""
    boot = a[idx]  # (B, n, m)
    ranks = scipy.stats.rankdata(boot, axis=1)
    centred = ranks - ranks.mean(axis=1, keepdims=True)
    best = boot >= boot.max(axis=1, keepdims=True) - ACC_ATOL
    flat = np.ptp(boot, axis=1) == 0  # (B, m): a constant column has no ranking
    rho, tau, top = [], [], []
    for i, j in itertools.combinations(range(a.shape[1]), 2):
        num = (centred[:, :, i] * centred[:, :, j]).sum(axis=1)
        den = np.sqrt((centred[:, :, i] ** 2).sum(axis=1) * (centred[:, :, j] ** 2).sum(axis=1))
        bad = flat[:, i] | flat[:, j]
        rho.append(np.where(bad, np.nan, num / np.where(bad, 1.0, den)))
        tau.append(
            np.array(
                [
                    math.nan
                    if bad[b]
                    else float(scipy.stats.weightedtau(boot[b, :, i], boot[b, :, j]).statistic)
                    for b in range(boot.shape[0])
                ]
            )
        )
        top.append((best[:, :, i] & best[:, :, j]).any(axis=1).astype(np.float64))
    with np.errstate(all="ignore"):
        # a resample's mean over the pairs where it is defined (all-NaN rows stay NaN)
        def pair_mean(v: list[np.ndarray]) -> np.ndarray:
            stack = np.vstack(v)
            n = np.isfinite(stack).sum(axis=0)
            total = np.nansum(stack, axis=0)
            return np.where(n > 0, total / np.maximum(n, 1), np.nan)

        return {
            "spearman": pair_mean(rho),
            "wtau": pair_mean(tau),
            "top1_agreement": pair_mean(top),
        }


def agreement_with_ci(
    acc: np.ndarray, n_boot: int = 1000, seed: int | list[int] = 0, level: float = 0.95
) -> dict[str, float]:
    """:func:`agreement` plus ``<metric>_ci_low`` / ``<metric>_ci_high`` for each statistic.

    Percentile bootstrap over entries (rows of ``acc``), ``n_boot`` resamples seeded by ``seed``;
    resamples where a statistic is NaN are left out of its interval. ``n_boot`` = 0, or a NaN
    point value, gives NaN intervals.
    """
    a = np.asarray(acc, dtype=np.float64)
    point = agreement(a)
    out = dict(point)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level}")
    boots: dict[str, np.ndarray] = {}
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        boots = _boot_statistics(a, rng.integers(0, a.shape[0], size=(int(n_boot), a.shape[0])))
    alpha = (1.0 - level) / 2.0
    for k in AGREEMENT_METRICS:
        v = boots.get(k, np.empty(0))
        v = v[np.isfinite(v)]
        low, high = math.nan, math.nan
        if v.size and math.isfinite(point[k]):
            low, high = (float(q) for q in np.quantile(v, [alpha, 1.0 - alpha]))
        out[f"{k}_ci_low"], out[f"{k}_ci_high"] = low, high
    return out


def seed_agreement_table(
    seed_acc: pd.DataFrame | None, n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Long rows (target, shots, method = ``seed_agreement``, metric, value) for every cell with two
    or more seeds.

    ``seed_acc``: columns target, shots, entry, seed, acc (:func:`analysis.tables.seed_accuracy`).
    Metrics per cell: n_seeds, n_entries (entries with a run of every seed), spearman, wtau,
    top1_agreement and each one's ``_ci_low`` / ``_ci_high``. A cell's resampling is seeded by
    (seed, a hash of the cell), so it does not depend on the other cells.
    """
    cols = [*CELL, "method", "metric", "value"]
    if seed_acc is None or seed_acc.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for key, g in seed_acc.groupby(CELL, sort=True):
        wide = g.pivot_table(index="entry", columns="seed", values="acc", aggfunc="mean").dropna()
        if wide.shape[1] < 2 or wide.shape[0] < 1:
            continue
        cell_seed = [int(seed), zlib.crc32("\x1f".join(map(str, key)).encode())]
        values = {
            "n_seeds": float(wide.shape[1]),
            "n_entries": float(wide.shape[0]),
            **agreement_with_ci(wide.to_numpy(), n_boot, cell_seed),
        }
        rows += [(*key, SEED_AGREEMENT, metric, v) for metric, v in values.items()]
    return pd.DataFrame(rows, columns=cols)


def domain_agreement_table(
    seed_acc: pd.DataFrame | None, n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """The noise ceiling of the multi-domain view: :func:`seed_agreement_table` over each
    multi-domain expert's domain entries (``<expert>@<domain>``) alone, per (expert, target, shots).

    Returns the long rows of :func:`seed_agreement_table` with a leading ``expert`` column; experts
    with fewer than two domains in a cell give no rows.
    """
    cols = ["expert", *CELL, "method", "metric", "value"]
    if seed_acc is None or seed_acc.empty:
        return pd.DataFrame(columns=cols)
    md = seed_acc[seed_acc["entry"].str.contains(ENTRY_SEP, regex=False)]
    parts = []
    for expert, g in md.groupby(md["entry"].map(lambda e: split_entry(e)[0]), sort=True):
        g = g.groupby(CELL).filter(lambda cell: cell["entry"].nunique() >= 2)
        t = seed_agreement_table(g, n_boot=n_boot, seed=seed)
        if not t.empty:
            parts.append(t.assign(expert=expert)[cols])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def ceiling_medians(table: pd.DataFrame) -> pd.DataFrame:
    """Median over cells of each agreement statistic, per shots and over all cells.

    ``table``: the long rows of :func:`seed_agreement_table`. Returns columns shots (a shots value
    or ``all``), n_cells, and one column per :data:`AGREEMENT_METRICS` (NaN cells left out). The
    median, not the mean, because a cell with two seeds gives one noisy pair and a few such cells
    would drag a mean.
    """
    cols = ["shots", "n_cells", *AGREEMENT_METRICS]
    t = table[table["metric"].isin(AGREEMENT_METRICS)] if not table.empty else table
    if t.empty:
        return pd.DataFrame(columns=cols)
    wide = t.pivot_table(index=CELL, columns="metric", values="value", aggfunc="first")
    wide = wide.reindex(columns=list(AGREEMENT_METRICS)).reset_index()
    rows = []
    groups = [(s, wide[wide["shots"] == s]) for s in sorted_shots(wide["shots"])]
    for shots, g in [*groups, ("all", wide)]:
        rows.append([shots, len(g), *(float(g[m].median()) for m in AGREEMENT_METRICS)])
    return pd.DataFrame(rows, columns=cols)
