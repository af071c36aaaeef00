"""Reading and shaping the result tables that the analysis consumes.

Every table is long and tidy; ``shots`` is always a string (``"full"`` or an integer as text, e.g.
``"20"``), so tables from different writers join on it.

- runs (one row per fine-tuning run): target, shots, entry, lr, seed, test_acc (percent),
  seconds (optional), ... -> :func:`ground_truth`
- ground truth (one row per (target, shots, entry)): target, shots, entry, acc, best_lr, seconds, n_runs
- scores (one row per (target, shots, method, entry)): target, shots, method, entry, score, seconds
- merged (scores joined with the ground truth): target, shots, method, entry, score, acc,
  selection_seconds, finetune_seconds
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.metrics import CELL, RANDOM_EXPECTED, score_order
from zoo.io import is_temporary

SHOTS_FULL = "full"
#: the shots label of results brought without a shots column
SHOTS_UNSPECIFIED = "all"
GT_COLUMNS = ["target", "shots", "entry", "acc", "best_lr", "seconds", "n_runs"]
SCORE_COLUMNS = ["target", "shots", "method", "entry", "score", "seconds"]
MERGED_COLUMNS = [
    "target",
    "shots",
    "method",
    "entry",
    "score",
    "acc",
    "selection_seconds",
    "finetune_seconds",
]
RUN_COLUMNS = ["target", "shots", "entry", "lr", "seed", "test_acc"]


def normalize_shots(value: object) -> str:
    """``"full"`` or a positive integer as text (20, 20.0, "20", "shots=20" -> "20").

    ``"all"`` (:data:`SHOTS_UNSPECIFIED`) labels results brought without a shots column.
    """
    if isinstance(value, str):
        text = value.strip().removeprefix("shots=")
        if text.lower() in (SHOTS_FULL, SHOTS_UNSPECIFIED):
            return text.lower()
        if re.fullmatch(r"\d+(\.0*)?", text) and int(float(text)) > 0:
            return str(int(float(text)))
    elif isinstance(value, int | np.integer) and not isinstance(value, bool) and value > 0:
        return str(int(value))
    elif isinstance(value, float | np.floating) and math.isfinite(value) and value == int(value):
        if value > 0:
            return str(int(value))
    raise ValueError(f"invalid shots value {value!r}; valid: 'full' or a positive integer")


def shots_key(shots: str) -> tuple[int, float, str]:
    """Sort key: integer shots increasing, then 'full', then 'all'."""
    if shots.isdigit():
        return (0, float(shots), shots)
    return (1, 0.0, "") if shots == SHOTS_FULL else (2, 0.0, shots)


def sorted_shots(values: Iterable[str]) -> list[str]:
    return sorted(set(values), key=shots_key)


# ----------------------------------------------------------------------------------------------
# ground truth


def ground_truth(runs: pd.DataFrame) -> pd.DataFrame:
    """Ground truth per (target, shots, entry) from the long table of fine-tuning runs.

    ``runs`` has columns target, shots, entry, lr, seed, test_acc (percent) and optionally seconds.
    acc = max over lr of the mean test_acc over seeds (the paper reports the best test accuracy over
    the lr grid); best_lr = that lr (ties: the smallest lr); seconds = total seconds of every run of
    that (target, shots, entry), i.e. the brute-force cost of the lr grid x seeds; n_runs = number of
    runs. Runs whose test_acc is NaN (failed) still count in seconds and n_runs, not in acc.
    Returns columns target, shots, entry, acc, best_lr, seconds, n_runs.
    """
    missing = [c for c in RUN_COLUMNS if c not in runs.columns]
    if missing:
        raise ValueError(
            f"runs table lacks columns {missing}; found {list(runs.columns)}; required: {RUN_COLUMNS}"
        )
    keys = ["target", "shots", "entry"]
    bad_keys = runs[keys + ["lr"]].isna().any(axis=1)
    if bad_keys.any():
        rows = list(runs.index[bad_keys][:10])
        raise ValueError(f"runs table has missing target/shots/entry/lr values at rows {rows}")
    runs = runs.assign(
        shots=runs["shots"].map(normalize_shots),
        seconds=runs["seconds"] if "seconds" in runs.columns else np.nan,
    )
    per_lr = (
        runs.dropna(subset=["test_acc"])
        .groupby([*keys, "lr"], as_index=False)["test_acc"]
        .mean()
        .sort_values([*keys, "test_acc", "lr"], ascending=[True, True, True, False, True])
    )
    best = per_lr.drop_duplicates(keys, keep="first").rename(
        columns={"test_acc": "acc", "lr": "best_lr"}
    )
    cost = runs.groupby(keys, as_index=False).agg(
        seconds=("seconds", lambda s: s.sum(min_count=1)), n_runs=("seed", "size")
    )
    out = cost.merge(best, on=keys, how="left")
    return out[GT_COLUMNS].sort_values(keys, ignore_index=True)


def _non_null_columns(df: pd.DataFrame) -> set[str]:
    return {c for c in df.columns if df[c].notna().any()}


def split_finetune_table(df: pd.DataFrame, source: str = "table") -> tuple[list, list]:
    """Split a fine-tuning table into (runs parts, ground-truth parts), being liberal in what it takes.

    A ``kind`` column splits the rows first; each part is then classified by its (non-empty)
    columns: lr, seed and test_acc -> runs; acc without seed -> ground truth.
    """
    parts = [g.drop(columns="kind") for _, g in df.groupby("kind")] if "kind" in df else [df]
    runs, gts = [], []
    for part in parts:
        cols = _non_null_columns(part)
        part = part[[c for c in part.columns if c in cols]]
        if {"lr", "seed", "test_acc"} <= cols:
            runs.append(part)
        elif "acc" in cols and "seed" not in cols:
            gts.append(part)
        else:
            raise ValueError(
                f"{source}: cannot tell whether this is a runs table (needs lr, seed, test_acc) or a "
                f"ground-truth table (needs acc, no seed); its columns are {sorted(cols)}"
            )
    return runs, gts


def normalize_ground_truth(gt: pd.DataFrame) -> pd.DataFrame:
    """A ground-truth table given directly: fill the optional columns, normalise shots."""
    gt = gt.copy()
    if "shots" not in gt.columns:
        gt["shots"] = SHOTS_FULL
    gt["shots"] = gt["shots"].map(normalize_shots)
    for col in ("best_lr", "seconds", "n_runs"):
        if col not in gt.columns:
            gt[col] = np.nan
    return gt[GT_COLUMNS].sort_values(["target", "shots", "entry"], ignore_index=True)


def load_ground_truth(out_dir: str | Path) -> pd.DataFrame:
    """The ground truth of a benchmark run under ``out_dir``.

    Reads ``finetune_runs.parquet`` and/or ``finetune_gt.parquet`` (either may hold runs, a ground
    truth table, or both with a ``kind`` column). When runs are present the ground truth is derived
    from them with :func:`ground_truth`; otherwise the given ground-truth rows are used.
    """
    out_dir = Path(out_dir)
    files = [out_dir / "finetune_runs.parquet", out_dir / "finetune_gt.parquet"]
    present = [f for f in files if f.is_file()]
    if not present:
        raise FileNotFoundError(
            f"no fine-tuning results under {out_dir}: expected {files[1].name} (or {files[0].name}); "
            "run the fine-tuning sweep (python finetune.py -m ...) and collect its results first"
        )
    runs, gts = [], []
    for f in present:
        r, g = split_finetune_table(pd.read_parquet(f), source=str(f))
        runs += r
        gts += g
    if runs:
        return ground_truth(pd.concat(runs, ignore_index=True))
    return normalize_ground_truth(pd.concat(gts, ignore_index=True))


# ----------------------------------------------------------------------------------------------
# scores and the zoo manifest


def load_scores(selection_dir: str | Path) -> pd.DataFrame:
    """Every score table ``<selection_dir>/<target>/shots=<k>/<method>.parquet``, stacked.

    Returns columns target, shots, method, entry, score, seconds (NaN when a table has none), plus
    any extra columns the tables carry.
    """
    selection_dir = Path(selection_dir)
    files = sorted(
        f for f in selection_dir.glob("*/shots=*/*.parquet") if f.is_file() and not is_temporary(f)
    )
    if not files:
        raise FileNotFoundError(
            f"no score tables under {selection_dir} (expected <target>/shots=<k>/<method>.parquet); "
            "run python evaluate_selection.py method=all first"
        )
    frames = []
    for f in files:
        table = pd.read_parquet(f)
        missing = [c for c in ("entry", "score") if c not in table.columns]
        if missing:
            raise ValueError(
                f"score table {f} lacks columns {missing}; found {list(table.columns)}; "
                "required: entry, score (optional: seconds)"
            )
        frames.append(
            table.assign(
                target=f.parent.parent.name,
                shots=normalize_shots(f.parent.name),
                method=f.stem,
                seconds=table["seconds"] if "seconds" in table.columns else np.nan,
            )
        )
    scores = pd.concat(frames, ignore_index=True)
    rest = [c for c in scores.columns if c not in SCORE_COLUMNS]
    return scores[SCORE_COLUMNS + rest]


def load_manifest(zoo_dir: str | Path) -> pd.DataFrame | None:
    """``<zoo_dir>/manifest.csv`` or None when absent."""
    path = Path(zoo_dir) / "manifest.csv"
    return pd.read_csv(path) if path.is_file() else None


def expert_types(manifest: pd.DataFrame | None) -> dict[str, str]:
    """expert_id -> type (single, shared, multi_bn, adapter, ...) from the manifest, if it has them."""
    if manifest is None or not {"expert_id", "type"} <= set(manifest.columns):
        return {}
    rows = manifest.dropna(subset=["expert_id", "type"]).drop_duplicates("expert_id")
    return dict(zip(rows["expert_id"].astype(str), rows["type"].astype(str)))


# ----------------------------------------------------------------------------------------------
# derived tables


def merge_tables(gt: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """Scores joined with the ground truth on (target, shots, entry) (inner join).

    Returns columns target, shots, method, entry, score, acc, selection_seconds (the method's
    seconds for that entry) and finetune_seconds (the entry's brute-force fine-tuning seconds).
    """
    left = scores[["target", "shots", "method", "entry", "score", "seconds"]].rename(
        columns={"seconds": "selection_seconds"}
    )
    right = gt[["target", "shots", "entry", "acc", "seconds"]].rename(
        columns={"seconds": "finetune_seconds"}
    )
    merged = left.merge(right, on=["target", "shots", "entry"], how="inner")
    return merged[MERGED_COLUMNS].sort_values(
        ["target", "shots", "method", "entry"], ignore_index=True
    )


def baselines_table(gt: pd.DataFrame, baseline: str | None) -> pd.DataFrame | None:
    """One row per (target, shots) where the baseline entry has a ground truth: baseline_acc."""
    if not baseline:
        return None
    rows = gt[gt["entry"] == baseline]
    return rows[[*CELL, "acc"]].rename(columns={"acc": "baseline_acc"}).reset_index(drop=True)


def entry_gains(gt: pd.DataFrame, baseline: str | None) -> pd.DataFrame:
    """Fine-tuning gain of every entry: acc minus the baseline's acc of the same (target, shots).

    Without a baseline (or where it has no result) the reference is the best entry of the cell
    (so every gain is <= 0). Columns target, shots, entry, acc, reference, gain.
    """
    ref = gt.groupby(CELL, as_index=False)["acc"].max().rename(columns={"acc": "best_acc"})
    out = gt[[*CELL, "entry", "acc"]].merge(ref, on=CELL)
    base = baselines_table(gt, baseline)
    if base is not None:
        out = out.merge(base, on=CELL, how="left")
    else:
        out["baseline_acc"] = np.nan
    has_base = out["baseline_acc"].notna()
    out["reference"] = np.where(has_base, f"baseline {baseline}", "best entry")
    out["gain"] = out["acc"] - out["baseline_acc"].where(has_base, out["best_acc"])
    return out[[*CELL, "entry", "acc", "reference", "gain"]]


def split_entry(entry: str) -> tuple[str, str]:
    """``"<expert>@<domain>"`` -> (expert, domain); a single-domain entry -> (entry, "")."""
    expert, _, domain = entry.partition("@")
    return expert, domain


def domain_selection(merged: pd.DataFrame, types: dict[str, str] | None = None) -> pd.DataFrame:
    """Which domain of each multi-domain expert each method picks, vs the ground truth's best.

    For every multi-domain expert (entries ``<expert>@<domain>``) with at least two domains in a
    (target, shots) cell, each method's pick is its top-scored domain among that expert's entries
    (ties pessimistic, as in :func:`analysis.metrics.score_order`), and ``random_expected`` is a
    uniformly random domain (picked_acc = mean accuracy). Columns expert, expert_type, target,
    shots, method, n_domains, picked_domain, picked_acc, best_domain, best_acc, gap
    (= picked_acc - best_acc, <= 0).
    """
    cols = [
        "expert",
        "expert_type",
        "target",
        "shots",
        "method",
        "n_domains",
        "picked_domain",
        "picked_acc",
        "best_domain",
        "best_acc",
        "gap",
    ]
    md = merged[merged["entry"].str.contains("@", regex=False)]
    if md.empty:
        return pd.DataFrame(columns=cols)
    md = md.assign(
        expert=md["entry"].map(lambda e: split_entry(e)[0]),
        domain=md["entry"].map(lambda e: split_entry(e)[1]),
    )
    keys = ["expert", "target", "shots"]
    n_domains = md.groupby(keys)["domain"].nunique().rename("n_domains").reset_index()
    md = md.merge(n_domains, on=keys)
    md = md[md["n_domains"] >= 2]
    if md.empty:
        return pd.DataFrame(columns=cols)
    best = (
        md.drop_duplicates([*keys, "domain"])
        .sort_values([*keys, "acc", "domain"], ascending=[True, True, True, False, True])
        .drop_duplicates(keys, keep="first")[[*keys, "domain", "acc"]]
        .rename(columns={"domain": "best_domain", "acc": "best_acc"})
    )
    picks = []
    for (expert, target, shots, method), g in md.groupby([*keys, "method"], sort=True):
        first = g.iloc[score_order(g["score"], g["acc"])[0]]
        picks.append(
            {
                "expert": expert,
                "target": target,
                "shots": shots,
                "method": method,
                "n_domains": int(g["n_domains"].iloc[0]),
                "picked_domain": first["domain"],
                "picked_acc": float(first["acc"]),
            }
        )
    random = (
        md.drop_duplicates([*keys, "domain"])
        .groupby(keys, as_index=False)
        .agg(n_domains=("n_domains", "first"), picked_acc=("acc", "mean"))
        .assign(method=RANDOM_EXPECTED, picked_domain="(random)")
    )
    out = pd.concat([pd.DataFrame.from_records(picks), random], ignore_index=True).merge(
        best, on=keys
    )
    out["gap"] = out["picked_acc"] - out["best_acc"]
    out["expert_type"] = out["expert"].map(types or {}).fillna("")
    return out[cols].sort_values([*keys, "method"], ignore_index=True)
