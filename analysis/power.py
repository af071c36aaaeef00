"""How much a benchmark's tables can tell: pure functions over the ground truth and metrics tables.

- :func:`target_spread` and :func:`means_without`: each method's mean over targets also without the
  target whose entries spread most (spread = max - min fine-tuned accuracy over the entries of a
  cell). A single target with a wide spread carries most of the variance of a mean gain: the
  second column shows whether a method's standing survives without it.
- :func:`lr_edges`: whether the ground-truth lr of each (cell, entry) pair lies at the edge of the
  lr grid it was chosen from. An lr at the edge means the grid may not bracket the optimum, so the
  entry's accuracy is a lower bound; more than :data:`EDGE_WARN` of the pairs deserves a note.
- :func:`best_entries`: the best entry of every cell, with the runner-up and the margin.

Accuracies are in the ground truth's units (percent in the benchmark), so spreads and margins are
in points. Every function takes long tables (columns named below) and returns a new DataFrame.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.metrics import CELL
from analysis.tables import normalize_shots, sorted_shots

#: share of (cell, entry) pairs with the lr at the grid's edge above which the report adds a note
EDGE_WARN = 0.10


def _require(df: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}; required: {columns}")


def target_spread(gt: pd.DataFrame) -> pd.DataFrame:
    """Per cell: spread = max - min of ``acc`` over its entries (NaN accuracies left out).

    ``gt``: columns target, shots, entry, acc. Returns columns target, shots, n_entries, spread,
    sorted by shots then decreasing spread (ties by target name).
    """
    _require(gt, [*CELL, "entry", "acc"], "the ground truth")
    g = gt.dropna(subset=["acc"]).groupby(CELL)["acc"]
    out = g.agg(n_entries="count", spread=lambda v: float(v.max() - v.min())).reset_index()
    return out.sort_values(
        ["shots", "spread", "target"], ascending=[True, False, True], ignore_index=True
    )


def largest_spread_target(gt: pd.DataFrame, shots: str) -> str | None:
    """The target of ``shots`` whose entries spread most (ties: the first by name); None when the
    shots setting has fewer than two targets (leaving one out would leave nothing)."""
    s = target_spread(gt)
    s = s[s["shots"] == shots]
    return str(s["target"].iloc[0]) if len(s) >= 2 else None


def means_without(metrics: pd.DataFrame, shots: str, target: str, names: list[str]) -> pd.Series:
    """Mean over the targets of ``shots`` other than ``target`` of each (method, metric in ``names``).

    ``metrics``: the long metrics table (target, shots, method, metric, value; one row per
    target). NaN values are left out, as in the summary's means. Returns a Series indexed by
    (method, metric); a (method, metric) with no value left is NaN.
    """
    _require(metrics, [*CELL, "method", "metric", "value"], "the metrics table")
    m = metrics[(metrics["shots"] == shots) & metrics["metric"].isin(names)]
    keys = m[["method", "metric"]].drop_duplicates()
    rest = m[m["target"] != target]
    means = rest.groupby(["method", "metric"])["value"].mean()
    index = pd.MultiIndex.from_frame(keys)
    return means.reindex(index)


def lr_edges(gt: pd.DataFrame, runs: pd.DataFrame | None) -> pd.DataFrame:
    """Per (cell, entry): the lr grid it was fine-tuned on and where its best lr lies in it.

    ``gt``: target, shots, entry, best_lr; ``runs``: target, shots, entry, lr (the runs behind the
    ground truth). Returns columns target, shots, entry, best_lr, n_lrs, lr_min, lr_max, edge, with
    edge = "low" (best lr is the grid's smallest), "high" (its largest), "inside", or missing
    (NaN) when the grid has fewer than 3 lrs (no inside to speak of) or the best lr is unknown. Shots values
    are normalised (``20``, ``full``) on both sides.
    """
    cols = ["target", "shots", "entry", "best_lr", "n_lrs", "lr_min", "lr_max", "edge"]
    if runs is None or runs.empty:
        return pd.DataFrame(columns=cols)
    _require(gt, [*CELL, "entry", "best_lr"], "the ground truth")
    _require(runs, [*CELL, "entry", "lr"], "the runs table")
    keys = [*CELL, "entry"]
    runs = runs.assign(shots=runs["shots"].map(normalize_shots))
    grid = (
        runs.dropna(subset=["lr"])
        .groupby(keys)["lr"]
        .agg(n_lrs="nunique", lr_min="min", lr_max="max")
        .reset_index()
    )
    gt = gt[[*keys, "best_lr"]].assign(shots=gt["shots"].map(normalize_shots))
    out = gt.merge(grid, on=keys)
    low = np.isclose(out["best_lr"], out["lr_min"], rtol=1e-9, atol=0.0)
    high = np.isclose(out["best_lr"], out["lr_max"], rtol=1e-9, atol=0.0)
    edge = np.where(low, "low", np.where(high, "high", "inside")).astype(object)
    edge[(out["n_lrs"] < 3).to_numpy() | out["best_lr"].isna().to_numpy()] = None
    out["edge"] = edge
    return out[cols].sort_values(keys, ignore_index=True)


def lr_edge_summary(edges: pd.DataFrame) -> pd.DataFrame:
    """Per shots (and ``all``): pairs judged (grid of 3+ lrs), pairs at the low and high edge, and
    their share at either edge. Columns shots, n_pairs, n_low, n_high, share_edge."""
    cols = ["shots", "n_pairs", "n_low", "n_high", "share_edge"]
    judged = edges.dropna(subset=["edge"])
    if judged.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    groups = [(s, judged[judged["shots"] == s]) for s in sorted_shots(judged["shots"])]
    for shots, g in [*groups, ("all", judged)]:
        n_low, n_high = int((g["edge"] == "low").sum()), int((g["edge"] == "high").sum())
        rows.append((shots, len(g), n_low, n_high, (n_low + n_high) / len(g)))
    return pd.DataFrame(rows, columns=cols)


def best_entries(gt: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """The best entry of every cell.

    ``gt``: target, shots, entry, acc. Returns one row per cell with columns target, shots,
    best_entry, best_acc, runner_up, runner_up_acc, margin (best - runner-up, points), spread (best
    - worst), baseline_acc (NaN without a baseline or when it has no accuracy in the cell). Ties
    for the best accuracy are broken by entry name (the first wins; the margin is then 0).
    """
    _require(gt, [*CELL, "entry", "acc"], "the ground truth")
    rows = []
    for (target, shots), g in gt.dropna(subset=["acc"]).groupby(CELL, sort=True):
        g = g.sort_values(["acc", "entry"], ascending=[False, True])
        accs, entries = g["acc"].to_numpy(dtype=float), g["entry"].to_numpy()
        has_second = len(g) > 1
        base = g.loc[g["entry"] == baseline, "acc"] if baseline else pd.Series(dtype=float)
        rows.append(
            {
                "target": target,
                "shots": shots,
                "best_entry": entries[0],
                "best_acc": accs[0],
                "runner_up": entries[1] if has_second else None,
                "runner_up_acc": accs[1] if has_second else np.nan,
                "margin": accs[0] - accs[1] if has_second else np.nan,
                "spread": accs[0] - accs[-1],
                "baseline_acc": float(base.iloc[0]) if len(base) else np.nan,
            }
        )
    cols = [
        "target",
        "shots",
        "best_entry",
        "best_acc",
        "runner_up",
        "runner_up_acc",
        "margin",
        "spread",
        "baseline_acc",
    ]
    return pd.DataFrame(rows, columns=cols)
