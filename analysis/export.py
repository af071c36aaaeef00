"""Export of the judged tables in the long schema peers use, and its re-import.

``python analyze.py export=long`` (benchmark outputs or bring-your-own) writes, next to the report,
``export/long.csv`` and ``export/runs.csv``:

- ``long.csv``: one row per judged (target, shots, method, entry[, draw]) with the five columns
  of the long schema

  ``dataset, model, test_score, transf_metric, transf_score``

  (``model`` = zoo entry, ``test_score`` = the accuracy the row is judged against, percent,
  ``transf_metric`` = method, ``transf_score`` = its score), then ``target, shots, draw, best_lr,
  selection_seconds, finetune_seconds, remedy, reference``. A cell (target, shots) maps to one
  ``dataset`` (:func:`cell_dataset`): the target's name for ``full`` (or ``all``, results brought
  without shots), ``<target>_<k>shot`` for k shots, so a reader that knows only the five columns
  ranks each cell on its own. ``draw`` is the k-shot draw (seed) of a score judged per draw, whose
  ``test_score`` is that fine-tuning seed's accuracy at ``best_lr``; it is empty for rows judged
  against the ground truth (the seed mean over the lr grid's best lr).
- ``runs.csv``: one row per fine-tuning run (``finetune_runs.parquet``, or the runs table brought
  as gt=): target, shots, entry, lr, seed, test_acc, val_acc, steps, epochs, seconds and the
  other run fields present (train_size, device, precision, config_hash, git_revision).

Re-import: ``python analyze.py gt=long.csv scores=long.csv`` reads the same file for both roles
(:func:`from_long`) and gives the same metrics: rows with a draw become one run per (entry, seed)
at ``best_lr`` (so draws are judged against their own seed again), other entries one run with
the ground-truth accuracy; ``finetune_seconds`` rides on one run per entry, so costs match too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analysis.metrics import DRAW_MEAN
from analysis.tables import SHOTS_FULL, SHOTS_UNSPECIFIED

if TYPE_CHECKING:
    from analysis.compute import Analysis

EXPORT_FORMATS = ("long",)
#: the long schema's own columns, in order
LONG_SCHEMA = ("dataset", "model", "test_score", "transf_metric", "transf_score")
LONG_COLUMNS = (
    *LONG_SCHEMA,
    "target",
    "shots",
    "draw",
    "best_lr",
    "selection_seconds",
    "finetune_seconds",
    "remedy",
    "reference",
)
RUN_EXPORT_COLUMNS = (
    "target",
    "shots",
    "entry",
    "lr",
    "seed",
    "test_acc",
    "val_acc",
    "steps",
    "epochs",
    "seconds",
    "train_size",
    "device",
    "precision",
    "config_hash",
    "git_revision",
)


def check_export(value: object) -> str | None:
    """The export format of ``analyze.py export=...``: None (no export) or one of
    :data:`EXPORT_FORMATS`; anything else raises ValueError."""
    if value in (None, "", "none", False):
        return None
    if value not in EXPORT_FORMATS:
        raise ValueError(
            f"unknown export format {value!r}; valid: {', '.join(EXPORT_FORMATS)} (or none)"
        )
    return str(value)


def cell_dataset(target: str, shots: str) -> str:
    """The long schema's ``dataset`` of a cell: ``target`` for full / all, else ``target_<k>shot``."""
    return target if shots in (SHOTS_FULL, SHOTS_UNSPECIFIED) else f"{target}_{shots}shot"


def long_table(merged: pd.DataFrame, gt: pd.DataFrame) -> pd.DataFrame:
    """The judged rows (``Analysis.merged``) in the long schema (:data:`LONG_COLUMNS`).

    ``gt`` gives each entry's ``best_lr`` (NaN when the ground truth was brought without it)."""
    best_lr = gt[["target", "shots", "entry", "best_lr"]]
    df = merged.merge(best_lr, on=["target", "shots", "entry"], how="left")
    draw = df["draw"].astype("Int64").mask(df["draw"] == DRAW_MEAN)
    out = pd.DataFrame(
        {
            "dataset": [cell_dataset(t, s) for t, s in zip(df["target"], df["shots"])],
            "model": df["entry"],
            "test_score": df["acc"],
            "transf_metric": df["method"],
            "transf_score": df["score"],
            "target": df["target"],
            "shots": df["shots"],
            "draw": draw,
            "best_lr": df["best_lr"],
            "selection_seconds": df["selection_seconds"],
            "finetune_seconds": df["finetune_seconds"],
            "remedy": df["remedy"],
            "reference": df["reference"].astype(bool),
        }
    )
    return out.sort_values(
        ["target", "shots", "transf_metric", "draw", "model"],
        ignore_index=True,
        na_position="first",
    )


def runs_export(runs: pd.DataFrame | None) -> pd.DataFrame:
    """The per-run table (:data:`RUN_EXPORT_COLUMNS` that ``runs`` has), sorted by run key;
    an empty table with the key columns when there are no runs."""
    if runs is None or runs.empty:
        return pd.DataFrame(columns=list(RUN_EXPORT_COLUMNS[:6]))
    cols = [c for c in RUN_EXPORT_COLUMNS if c in runs.columns]
    return runs[cols].sort_values(["target", "shots", "entry", "lr", "seed"], ignore_index=True)


def write_export(
    analysis: Analysis, runs: pd.DataFrame | None, out_dir: str | Path, fmt: str = "long"
) -> dict[str, Path]:
    """Write ``long.csv`` and ``runs.csv`` under ``out_dir``; returns {name: path}."""
    check_export(fmt)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"long": out_dir / "long.csv", "runs": out_dir / "runs.csv"}
    long_table(analysis.merged, analysis.gt).to_csv(files["long"], index=False)
    runs_export(runs).to_csv(files["runs"], index=False)
    return files


def is_long(df: pd.DataFrame) -> bool:
    """Whether a table read by the analysis is in the long schema (has its five columns)."""
    return set(LONG_SCHEMA) <= set(df.columns)


def from_long(df: pd.DataFrame, role: str) -> pd.DataFrame:
    """A long-schema table as the ``gt`` or ``scores`` table of bring-your-own mode.

    Tables not in the long schema come back unchanged. Without ``target`` / ``shots`` columns,
    ``dataset`` is the target and shots are unspecified. ``role`` ``"scores"``: target, shots,
    method, entry, score (+ seed = draw, seconds, remedy, reference when present). ``role``
    ``"gt"``: a ground truth (target, shots, entry, acc, seconds) when no row has a draw, else a
    runs table (target, shots, entry, lr, seed, test_acc, seconds) as described in the module
    docstring. One entry with two different test scores in one (cell, draw) raises ValueError.
    """
    if role not in ("gt", "scores"):
        raise ValueError(f"role must be 'gt' or 'scores'; got {role!r}")
    if not is_long(df):
        return df
    df = df.copy()
    if "target" not in df.columns:
        df["target"] = df["dataset"]
    if "shots" not in df.columns:
        df["shots"] = SHOTS_UNSPECIFIED
    draw = pd.to_numeric(df["draw"], errors="coerce") if "draw" in df.columns else None
    if role == "scores":
        out = df.rename(
            columns={"model": "entry", "transf_metric": "method", "transf_score": "score"}
        )
        cols = ["target", "shots", "method", "entry", "score"]
        if draw is not None and draw.notna().any():
            out["seed"] = draw
            cols.append("seed")
        if "selection_seconds" in out.columns:
            out["seconds"] = out["selection_seconds"]
            cols.append("seconds")
        cols += [c for c in ("remedy", "reference") if c in out.columns]
        return out[cols]
    key = ["target", "shots", "entry"]
    acc = df.rename(columns={"model": "entry", "test_score": "acc"}).assign(
        draw=draw if draw is not None else np.nan
    )
    per = acc.drop_duplicates([*key, "draw", "acc"])
    clash = per.duplicated([*key, "draw"], keep=False)
    if clash.any():
        bad = per[clash].iloc[0]
        raise ValueError(
            f"long table gives entry {bad['entry']!r} of target={bad['target']} "
            f"shots={bad['shots']} two different test_score values in one draw; valid: one "
            "test_score per (dataset, model, draw) across methods"
        )
    seconds = per.get("finetune_seconds", pd.Series(np.nan, index=per.index))
    per = per.assign(seconds=seconds)
    if draw is None or draw.isna().all():
        return per[[*key, "acc", "seconds"]].reset_index(drop=True)
    # runs: each draw's seed at best_lr; entries never judged per draw: one run with the mean
    seeded = per[per["draw"].notna()]
    covered = seeded[key].drop_duplicates()
    rest = per[per["draw"].isna()].merge(covered, on=key, how="left", indicator=True)
    rest = rest[rest["_merge"] == "left_only"].drop(columns="_merge").assign(draw=0)
    runs = pd.concat([seeded, rest], ignore_index=True)
    lr = runs["best_lr"] if "best_lr" in runs.columns else pd.Series(np.nan, index=runs.index)
    runs = runs.assign(lr=lr.fillna(0.0), seed=runs["draw"].astype(int), test_acc=runs["acc"])
    runs = runs.sort_values([*key, "seed"], ignore_index=True)
    # an entry's brute-force seconds counted once (the ground truth sums its runs' seconds)
    runs["seconds"] = runs["seconds"].where(~runs.duplicated(key))
    return runs[[*key, "lr", "seed", "test_acc", "seconds"]]
