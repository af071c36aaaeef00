"""Ranking metrics: how well a selection score's ranking of the zoo matches fine-tuning accuracy.

Every metric is a small pure function of one cell (one target, one shots setting, one method):

- ``score``: (n,) float, the method's score of each entry (higher = predicted better);
- ``acc``: (n,) float, the ground-truth fine-tuning accuracy of the same entries, in the units
  given (the benchmark uses percent, 0-100), so gains and regrets are in points;
- ``baseline_acc``: float, the accuracy of the reference entry of that cell.

Conventions (DESIGN.md section 8):

- **Score order** (:func:`score_order`): entries by decreasing score; entries with equal scores are
  ordered by *increasing* accuracy, so a tie never helps a method (the best of a tied group is
  tried last). Top-k, trials-to-best and regret all use this order.
- **Maximal accuracy**: an entry reaches the best accuracy when ``acc >= max(acc) - ACC_ATOL``
  (accuracies are seed means, so exact float equality is too strict for ties).
- **Correlations** use scipy.stats. ``wtau`` is scipy's default ``weightedtau(score, acc)`` (the
  average of the two lexicographic rank orders, hyperbolic weights; used by LogME, SFDA and most
  peers); ``wtau_gt`` is ``weightedtau(acc, score, rank=None)`` (weights from the ground-truth
  order; used by Model Spider). A degenerate cell (fewer than 2 entries, constant scores or
  constant accuracies) gives NaN: a correlation is undefined there.
- **Random**: the expected value of every metric under a uniformly random order of the entries is
  computed exactly (:func:`random_expected_metrics`), not simulated.
- **Draws**: a merged table may carry a ``draw`` column (the k-shot draw that was scored, judged
  against the fine-tuning runs of the same seed; :data:`DRAW_MEAN` for rows judged against the seed
  mean). :func:`metrics_table` and :func:`cost_table` compute a cell's metrics per draw and report
  their mean over draws, with ``n_draws``.
- **Means over targets** carry percentile bootstrap intervals over targets
  (:func:`bootstrap_mean_ci`), seeded, so a report is reproducible.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import scipy.stats

#: two accuracies closer than this count as equal (accuracies are means of a few seeds)
ACC_ATOL = 1e-9

#: the name under which Random's exact expectations appear in the tables
RANDOM_EXPECTED = "random_expected"

#: metrics where smaller is better (everything else: larger is better)
LOWER_IS_BETTER = ("trials_to_best",)

CELL = ["target", "shots"]
KEY = ["target", "shots", "method"]

#: the ``draw`` of rows judged against the ground truth (seed mean) rather than one seed's runs
DRAW_MEAN = -1

#: per-cell counts in the metrics table (not averaged over targets in the summary)
COUNT_METRICS = ("n_entries", "n_draws", "remedied")


def _arrays(score: Sequence[float] | np.ndarray, acc: Sequence[float] | np.ndarray):
    s = np.asarray(score, dtype=np.float64)
    a = np.asarray(acc, dtype=np.float64)
    if s.ndim != 1 or s.shape != a.shape:
        raise ValueError(
            f"score and acc must be 1-d arrays of one length; got shapes {s.shape} and {a.shape}"
        )
    if s.size == 0:
        raise ValueError("a ranking needs at least one entry; got empty score and acc arrays")
    if not (np.isfinite(s).all() and np.isfinite(a).all()):
        raise ValueError("score and acc must be finite; got NaN or inf")
    return s, a


def _acc(acc: Sequence[float] | np.ndarray) -> np.ndarray:
    a = np.asarray(acc, dtype=np.float64)
    if a.ndim != 1 or a.size == 0 or not np.isfinite(a).all():
        raise ValueError(f"acc must be a non-empty 1-d array of finite values; got {a!r}")
    return a


def _k(k: int) -> int:
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    return int(k)


def score_order(score, acc) -> np.ndarray:
    """Indices (n,) of the entries from best to worst score; ties in score put lower accuracy first."""
    s, a = _arrays(score, acc)
    # np.lexsort sorts by the last key first: decreasing score, then increasing accuracy
    return np.lexsort((a, -s))


def topk_acc(score, acc, k: int) -> float:
    """Best accuracy among the k best-scored entries (all entries when k >= n)."""
    order = score_order(score, acc)
    return float(np.asarray(acc, dtype=np.float64)[order[: _k(k)]].max())


def topk_gain(score, acc, baseline_acc: float, k: int) -> float:
    """``max_{e in top-k by score} acc(e) - baseline_acc``, in accuracy points."""
    return topk_acc(score, acc, k) - float(baseline_acc)


def best_gain(acc, baseline_acc: float) -> float:
    """``max_e acc(e) - baseline_acc``: the gain an oracle selection reaches."""
    return float(_acc(acc).max()) - float(baseline_acc)


def regret_at_k(score, acc, k: int) -> float:
    """``max_e acc(e) - max_{e in top-k} acc(e)`` (>= 0; 0 when the best entry is in the top-k)."""
    return float(np.max(acc)) - topk_acc(score, acc, k)


def top1_rel_acc(score, acc) -> float:
    """Accuracy of the top-1 entry divided by the best accuracy (NaN when the best accuracy is <= 0)."""
    best = float(_acc(acc).max())
    return topk_acc(score, acc, 1) / best if best > 0 else math.nan


def _is_best(acc: np.ndarray) -> np.ndarray:
    return acc >= acc.max() - ACC_ATOL


def trials_to_best(score, acc) -> int:
    """1-based position, in score order, of the first entry reaching the best accuracy.

    Ties in score count pessimistically: within a group of equal scores the best entry comes last.
    """
    order = score_order(score, acc)
    hits = _is_best(np.asarray(acc, dtype=np.float64)[order])
    return int(np.argmax(hits)) + 1


def random_trials_to_best(acc) -> float:
    """Expected trials-to-best of a uniformly random order: ``(n + 1) / (m + 1)``.

    n entries of which m reach the best accuracy; the first of m marked items in a random
    permutation of n sits on average at (n + 1) / (m + 1).
    """
    a = _acc(acc)
    return (a.size + 1) / (int(_is_best(a).sum()) + 1)


def random_topk_acc(acc, k: int) -> float:
    """Exact ``E[max acc over a uniformly random k-subset]``.

    With accuracies sorted increasingly a_(1) <= ... <= a_(n), the i-th smallest is the maximum of
    C(i-1, k-1) of the C(n, k) subsets, so E = sum_i a_(i) C(i-1, k-1) / C(n, k). Ties do not change
    the sum (tied values are interchangeable).
    """
    a = np.sort(_acc(acc))
    n, k = a.size, min(_k(k), a.size)
    total = math.comb(n, k)
    # exact integer binomials, divided once: float(int / int) is correctly rounded
    weights = np.array([math.comb(i, k - 1) / total for i in range(n)], dtype=np.float64)
    return float(weights @ a)


def random_topk_gain(acc, baseline_acc: float, k: int) -> float:
    """Exact expected top-k gain of a uniformly random selection."""
    return random_topk_acc(acc, k) - float(baseline_acc)


def _correlation(fn: Callable[[np.ndarray, np.ndarray], float], x, y) -> float:
    x, y = _arrays(x, y)
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(fn(x, y))
    # scipy warns (instead of failing) when one side is constant up to rounding: the value is noise
    bad = (scipy.stats.ConstantInputWarning, scipy.stats.NearConstantInputWarning)
    if any(issubclass(w.category, bad) for w in caught):
        return math.nan
    for w in caught:  # anything else is unexpected: surface it
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return value


def spearman(score, acc) -> float:
    """Spearman's rho between scores and accuracies (NaN when degenerate)."""
    return _correlation(lambda x, y: scipy.stats.spearmanr(x, y).statistic, score, acc)


def pearson(score, acc) -> float:
    """Pearson's r between scores and accuracies (NaN when degenerate)."""
    return _correlation(lambda x, y: scipy.stats.pearsonr(x, y).statistic, score, acc)


def kendall(score, acc) -> float:
    """Kendall's tau-b between scores and accuracies (NaN when degenerate)."""
    return _correlation(lambda x, y: scipy.stats.kendalltau(x, y).statistic, score, acc)


def wtau(score, acc) -> float:
    """``scipy.stats.weightedtau(score, acc).statistic`` (scipy's default, symmetric ranks)."""
    return _correlation(lambda x, y: scipy.stats.weightedtau(x, y).statistic, score, acc)


def wtau_gt(score, acc) -> float:
    """``scipy.stats.weightedtau(acc, score, rank=None).statistic`` (weights from the accuracy order)."""
    return _correlation(lambda x, y: scipy.stats.weightedtau(y, x, rank=None).statistic, score, acc)


def cell_metrics(score, acc, baseline_acc: float | None, topk: int) -> dict[str, float]:
    """Every ranking metric of one (target, shots, method) cell.

    Returns ``{metric: value}``: n_entries, top{k}_acc and regret_at_{k} for k = 1..topk,
    trials_to_best, top1_rel_acc, spearman, pearson, kendall, wtau, wtau_gt, and, when a baseline
    accuracy is given (not None / NaN), top{k}_gain and best_gain.
    """
    s, a = _arrays(score, acc)
    out: dict[str, float] = {"n_entries": float(a.size)}
    has_baseline = baseline_acc is not None and np.isfinite(baseline_acc)
    for k in range(1, _k(topk) + 1):
        out[f"top{k}_acc"] = topk_acc(s, a, k)
        out[f"regret_at_{k}"] = regret_at_k(s, a, k)
        if has_baseline:
            out[f"top{k}_gain"] = topk_gain(s, a, baseline_acc, k)
    if has_baseline:
        out["best_gain"] = best_gain(a, baseline_acc)
    out["best_acc"] = float(a.max())
    out["trials_to_best"] = float(trials_to_best(s, a))
    out["top1_rel_acc"] = top1_rel_acc(s, a)
    for name, fn in (
        ("spearman", spearman),
        ("pearson", pearson),
        ("kendall", kendall),
        ("wtau", wtau),
        ("wtau_gt", wtau_gt),
    ):
        out[name] = fn(s, a)
    return out


def random_expected_metrics(acc, baseline_acc: float | None, topk: int) -> dict[str, float]:
    """Exact expectations of :func:`cell_metrics` under a uniformly random order of the entries.

    Spearman, Pearson and Kendall have expectation 0 under a random permutation (their numerators
    average to 0 and their denominators do not depend on the order), NaN when the accuracies are
    constant or there is a single entry. The weighted taus have no simple exact expectation and are
    left out.
    """
    a = _acc(acc)
    out: dict[str, float] = {"n_entries": float(a.size)}
    has_baseline = baseline_acc is not None and np.isfinite(baseline_acc)
    for k in range(1, _k(topk) + 1):
        expected = random_topk_acc(a, k)
        out[f"top{k}_acc"] = expected
        out[f"regret_at_{k}"] = float(a.max()) - expected
        if has_baseline:
            out[f"top{k}_gain"] = expected - float(baseline_acc)
    if has_baseline:
        out["best_gain"] = best_gain(a, baseline_acc)
    out["best_acc"] = float(a.max())
    out["trials_to_best"] = random_trials_to_best(a)
    best = float(a.max())
    out["top1_rel_acc"] = float(a.mean()) / best if best > 0 else math.nan
    degenerate = a.size < 2 or np.ptp(a) == 0
    for name in ("spearman", "pearson", "kendall"):
        out[name] = math.nan if degenerate else 0.0
    return out


def cost_metrics(
    score, acc, selection_seconds, finetune_seconds, ks: Sequence[int]
) -> dict[str, float]:
    """Compute cost of one cell: brute force vs selection + fine-tuning the top-k entries.

    ``selection_seconds`` (n,): seconds the method spent on each entry (its share of extraction
    included); ``finetune_seconds`` (n,): seconds of all fine-tuning runs (lr grid x seeds) of each
    entry. Returns brute_force_seconds, selection_seconds and, for each k, finetune_top{k}_seconds,
    total_top{k}_seconds and cost_saved_top{k} = 1 - total / brute force. Missing seconds (NaN)
    propagate to NaN.
    """
    order = score_order(score, acc)
    sel = np.asarray(selection_seconds, dtype=np.float64)
    ft = np.asarray(finetune_seconds, dtype=np.float64)
    brute = float(ft.sum())
    selection = float(sel.sum())
    out = {"brute_force_seconds": brute, "selection_seconds": selection}
    for k in ks:
        top = float(ft[order[: _k(k)]].sum())
        out[f"finetune_top{k}_seconds"] = top
        out[f"total_top{k}_seconds"] = selection + top
        out[f"cost_saved_top{k}"] = 1.0 - (selection + top) / brute if brute > 0 else math.nan
    return out


def random_expected_cost(finetune_seconds, ks: Sequence[int]) -> dict[str, float]:
    """Expected cost of fine-tuning a random k-subset (each entry is in it with probability k/n)."""
    ft = np.asarray(finetune_seconds, dtype=np.float64)
    n, brute = ft.size, float(ft.sum())
    out = {"brute_force_seconds": brute, "selection_seconds": 0.0}
    for k in ks:
        top = brute * min(_k(k), n) / n
        out[f"finetune_top{k}_seconds"] = top
        out[f"total_top{k}_seconds"] = top
        out[f"cost_saved_top{k}"] = 1.0 - top / brute if brute > 0 else math.nan
    return out


# ----------------------------------------------------------------------------------------------
# tables


def _with_baseline(merged: pd.DataFrame, baselines: pd.DataFrame | None) -> pd.DataFrame:
    if "draw" not in merged.columns:
        merged = merged.assign(draw=DRAW_MEAN)
    if baselines is None or baselines.empty:
        return merged.assign(baseline_acc=np.nan)
    if "draw" not in baselines.columns:
        return merged.merge(baselines[[*CELL, "baseline_acc"]], on=CELL, how="left")
    out = merged.merge(baselines[[*CELL, "draw", "baseline_acc"]], on=[*CELL, "draw"], how="left")
    # a draw without its own baseline row (no runs per seed: draws judged against the seed mean)
    # takes the baseline's seed mean
    mean = baselines[baselines["draw"] == DRAW_MEAN][[*CELL, "baseline_acc"]]
    fill = out[CELL].merge(mean, on=CELL, how="left")["baseline_acc"].to_numpy()
    out["baseline_acc"] = out["baseline_acc"].fillna(pd.Series(fill, index=out.index))
    return out


def has_remedy(remedy: pd.Series) -> pd.Series:
    """True where a score row records a remedy (a non-empty text; NaN and "" mean none)."""
    return remedy.map(lambda v: not pd.isna(v) and str(v).strip() != "").astype(bool)


def mean_over_draws(per_draw: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over the draws of one cell (NaN values skipped; keys in first-seen order),
    plus ``n_draws``. A metric undefined in every draw stays NaN."""
    table = pd.DataFrame.from_records(list(per_draw))
    out = {k: float(v) for k, v in table.mean(axis=0, skipna=True).items()}
    out["n_draws"] = float(len(table))
    return out


def metrics_table(
    merged: pd.DataFrame,
    baselines: pd.DataFrame | None,
    topk: int = 3,
    *,
    random_expected: bool = True,
) -> pd.DataFrame:
    """Long table of ranking metrics: columns target, shots, method, metric, value.

    ``merged``: one row per (target, shots, method, entry[, draw]) with columns score and acc
    (optional draw and remedy, see :func:`analysis.tables.merge_tables`).
    ``baselines``: one row per (target, shots[, draw]) with column baseline_acc (None: no gain
    metrics). Each draw of a cell is judged on its own; the cell's value is the mean over draws,
    ``n_draws`` their number, ``n_entries`` the mean number of entries judged per draw and, when
    ``merged`` has a remedy column, ``remedied`` the number of its score rows with a non-empty
    remedy. With ``random_expected``, adds the method ``random_expected`` (Random's exact
    expectations over the entries of each cell, per draw, averaged the same way).
    Metrics whose value is undefined (a correlation of a degenerate cell) stay as NaN rows.
    """
    df = _with_baseline(merged, baselines)
    records = []
    for key, g in df.groupby(KEY, sort=True):
        per_draw = [
            cell_metrics(d["score"], d["acc"], d["baseline_acc"].iloc[0], topk)
            for _, d in g.groupby("draw", sort=True)
        ]
        record = {**dict(zip(KEY, key)), **mean_over_draws(per_draw)}
        if "remedy" in g.columns:
            record["remedied"] = float(has_remedy(g["remedy"]).sum())
        records.append(record)
    wide = pd.DataFrame.from_records(records)
    if random_expected and not df.empty:
        # the entries of a cell: every entry with an accuracy that some method scored, per draw
        cells = df.drop_duplicates([*CELL, "draw", "entry"])
        extra = [
            {
                **dict(zip(CELL, key)),
                "method": RANDOM_EXPECTED,
                **mean_over_draws(
                    [
                        random_expected_metrics(d["acc"], d["baseline_acc"].iloc[0], topk)
                        for _, d in g.groupby("draw", sort=True)
                    ]
                ),
            }
            for key, g in cells.groupby(CELL, sort=True)
        ]
        wide = pd.concat([wide, pd.DataFrame.from_records(extra)], ignore_index=True)
    if wide.empty:
        return pd.DataFrame(columns=[*KEY, "metric", "value"])
    long = wide.melt(id_vars=KEY, var_name="metric", value_name="value")
    # metrics a cell does not define at all (gains without baseline, wtau for random_expected)
    # are dropped; correlations that are NaN because the cell is degenerate are kept as NaN
    may_be_nan = long["metric"].isin(
        ["spearman", "pearson", "kendall", "wtau", "wtau_gt", "top1_rel_acc"]
    )
    not_defined = (long["method"] == RANDOM_EXPECTED) & long["metric"].isin(["wtau", "wtau_gt"])
    long = long[long["value"].notna() | (may_be_nan & ~not_defined)]
    # stable sort: one block per cell, metrics in the order cell_metrics lists them
    return long.sort_values(KEY, kind="stable", ignore_index=True)


def cost_table(
    merged: pd.DataFrame, ks: Sequence[int] = (1, 3), *, random_expected: bool = True
) -> pd.DataFrame:
    """Per (target, shots, method, k) cost of selection + fine-tuning the top-k vs brute force.

    ``merged`` needs columns score, acc, selection_seconds, finetune_seconds. Returns columns
    target, shots, method, k, brute_force_seconds, selection_seconds, finetune_topk_seconds,
    total_seconds, cost_saved (fraction of the brute-force seconds saved; NaN where seconds are
    missing). With a ``draw`` column, each draw is costed on its own and the values are averaged.
    """
    cols = [
        *KEY,
        "k",
        "brute_force_seconds",
        "selection_seconds",
        "finetune_topk_seconds",
        "total_seconds",
        "cost_saved",
    ]
    if merged.empty:
        return pd.DataFrame(columns=cols)
    if "draw" not in merged.columns:
        merged = merged.assign(draw=DRAW_MEAN)
    records = [
        {
            **dict(zip(KEY, key)),
            **mean_over_draws(
                [
                    cost_metrics(
                        d["score"], d["acc"], d["selection_seconds"], d["finetune_seconds"], ks
                    )
                    for _, d in g.groupby("draw", sort=True)
                ]
            ),
        }
        for key, g in merged.groupby(KEY, sort=True)
    ]
    if random_expected:
        cells = merged.drop_duplicates([*CELL, "entry"])
        records += [
            {
                **dict(zip(CELL, key)),
                "method": RANDOM_EXPECTED,
                **random_expected_cost(g["finetune_seconds"], ks),
            }
            for key, g in cells.groupby(CELL, sort=True)
        ]
    wide = pd.DataFrame.from_records(records)
    per_k = [
        wide[[*KEY, "brute_force_seconds", "selection_seconds"]].assign(
            k=k,
            finetune_topk_seconds=wide[f"finetune_top{k}_seconds"],
            total_seconds=wide[f"total_top{k}_seconds"],
            cost_saved=wide[f"cost_saved_top{k}"],
        )
        for k in ks
    ]
    return pd.concat(per_k, ignore_index=True)[cols].sort_values([*KEY, "k"], ignore_index=True)


def cost_summary(cost: pd.DataFrame) -> pd.DataFrame:
    """Totals over targets per (shots, method, k): the paper's runtime table.

    Columns shots, method, k, n_targets, brute_force_seconds, selection_seconds,
    finetune_topk_seconds, total_seconds, cost_saved (= 1 - total / brute force, of the sums).
    """
    cols = [
        "shots",
        "method",
        "k",
        "n_targets",
        "brute_force_seconds",
        "selection_seconds",
        "finetune_topk_seconds",
        "total_seconds",
        "cost_saved",
    ]
    if cost.empty:
        return pd.DataFrame(columns=cols)
    sums = ["brute_force_seconds", "selection_seconds", "finetune_topk_seconds", "total_seconds"]
    keys = ["shots", "method", "k"]
    grouped = cost.groupby(keys, sort=True)
    # a missing second anywhere makes the total unknown rather than too small
    unknown = cost[sums].isna().groupby([cost[k] for k in keys], sort=True).any()
    out = grouped[sums].sum().mask(unknown)
    out["n_targets"] = grouped["target"].nunique()
    out = out.reset_index()
    out["cost_saved"] = 1.0 - out["total_seconds"] / out["brute_force_seconds"].where(
        out["brute_force_seconds"] > 0
    )
    return out[cols]


def bootstrap_mean_ci(
    values, n_boot: int = 1000, seed: int | Sequence[int] = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """Mean of ``values`` with a percentile bootstrap interval: (mean, low, high).

    NaN values are dropped first. No values: all NaN. ``n_boot`` = 0: the interval is NaN.
    One value: the interval collapses onto it.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if n_boot <= 0:
        return mean, math.nan, math.nan
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level}")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(int(n_boot), v.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return mean, float(low), float(high)


def summarize(metrics: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Means over targets with bootstrap intervals.

    ``metrics``: the long table of :func:`metrics_table` (plus any cost_saved rows). Returns columns
    shots, method, metric, mean, ci_low, ci_high, n_targets (targets with a defined value). Each
    group's resampling is seeded by (seed, a hash of the group's key), so a group's interval does
    not depend on which other groups are in the table.
    """
    cols = ["shots", "method", "metric", "mean", "ci_low", "ci_high", "n_targets"]
    if metrics.empty:
        return pd.DataFrame(columns=cols)
    records = []
    for key, g in metrics.groupby(["shots", "method", "metric"], sort=True):
        group_seed = [int(seed), zlib.crc32("\x1f".join(map(str, key)).encode())]
        mean, low, high = bootstrap_mean_ci(g["value"].to_numpy(), n_boot, group_seed)
        records.append(
            {
                "shots": key[0],
                "method": key[1],
                "metric": key[2],
                "mean": mean,
                "ci_low": low,
                "ci_high": high,
                "n_targets": int(g["value"].notna().sum()),
            }
        )
    return pd.DataFrame.from_records(records, columns=cols)
