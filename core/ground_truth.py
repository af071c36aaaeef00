"""The ground truth of the benchmark: per (target, shots, entry), the best lr of the seed mean.

One rule, used when the fine-tuning results are collected (``finetune_gt.parquet``) and when the
analysis derives the ground truth from a runs table, so the two can never disagree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.keys import GT_COLUMNS, GT_KEY, RUN_REQUIRED_COLUMNS, format_shots

_NUMERIC = {
    "acc": "float64",
    "best_lr": "float64",
    "n_seeds": "int64",
    "n_lrs": "int64",
    "n_runs": "int64",
    "seconds": "float64",
}


def ground_truth(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (target, shots, entry): the best lr of the seed-mean test accuracy.

    With ``runs`` the long table of fine-tuning runs (columns target, shots, entry, lr, seed,
    test_acc in percent, optionally seconds) and ``A[l]`` the mean of test_acc over the seeds run
    at lr ``l``:

    - ``acc = max_l A[l]`` (the paper reports the best test accuracy over the lr grid);
    - ``best_lr = argmax_l A[l]``, ties to the smaller lr;
    - ``n_seeds``: the seeds behind ``A[best_lr]``; ``n_lrs``: the distinct lrs run;
    - ``n_runs``: every run of the (target, shots, entry), failed ones included;
    - ``seconds``: the sum of every run's seconds (the brute-force cost of the lr grid x seeds);
      NaN when no run reports seconds (unknown is not zero), NaN seconds otherwise skipped.

    Runs whose test_acc is NaN (failed) count in n_lrs, n_runs and seconds, never in acc; an entry
    whose every run failed keeps its row with acc = best_lr = NaN and n_seeds = 0. ``shots`` is
    normalised to its text form (:func:`core.keys.format_shots`; ``"all"`` labels the runs of a
    table brought without a shots column).

    Returns columns :data:`core.keys.GT_COLUMNS`, one row per (target, shots, entry), sorted by it.
    """
    missing = [c for c in RUN_REQUIRED_COLUMNS if c not in runs.columns]
    if missing:
        raise ValueError(
            f"runs table lacks columns {missing}; found {list(runs.columns)}; "
            f"required: {list(RUN_REQUIRED_COLUMNS)}"
        )
    keys = list(GT_KEY)
    if runs.empty:
        return pd.DataFrame({c: pd.Series(dtype=_NUMERIC.get(c, "object")) for c in GT_COLUMNS})
    bad_keys = runs[[*keys, "lr"]].isna().any(axis=1)
    if bad_keys.any():
        rows = list(runs.index[bad_keys][:10])
        raise ValueError(f"runs table has missing target/shots/entry/lr values at rows {rows}")
    runs = runs.assign(
        shots=runs["shots"].map(lambda v: format_shots(v, allow_unspecified=True)),
        lr=runs["lr"].astype("float64"),
        test_acc=runs["test_acc"].astype("float64"),
        seconds=runs["seconds"].astype("float64") if "seconds" in runs.columns else np.nan,
    )
    per_lr = (
        runs.dropna(subset=["test_acc"])
        .groupby([*keys, "lr"], as_index=False, observed=True)
        .agg(acc=("test_acc", "mean"), n_seeds=("seed", "nunique"))
    )
    # ascending lr inside each key, so a stable sort on -acc keeps the smaller lr of a tie first
    best = (
        per_lr.sort_values(
            [*keys, "acc", "lr"], ascending=[True, True, True, False, True], kind="stable"
        )
        .drop_duplicates(keys, keep="first")
        .rename(columns={"lr": "best_lr"})
    )
    totals = runs.groupby(keys, as_index=False, observed=True).agg(
        n_lrs=("lr", "nunique"),
        n_runs=("seed", "size"),
        seconds=("seconds", lambda s: s.sum(min_count=1)),
    )
    out = totals.merge(best, on=keys, how="left", validate="one_to_one")
    out["n_seeds"] = out["n_seeds"].fillna(0)
    out = out[list(GT_COLUMNS)].astype(_NUMERIC)
    return out.sort_values(keys, ignore_index=True)
