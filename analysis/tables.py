"""Reading and shaping the result tables that the analysis consumes.

Every table is long and tidy; ``shots`` is always a string (``"full"`` or an integer as text, e.g.
``"20"``), so tables from different writers join on it.

- runs (one row per fine-tuning run): target, shots, entry, lr, seed, test_acc (percent),
  seconds (optional), ... -> :func:`core.ground_truth.ground_truth`
- ground truth (one row per (target, shots, entry)): :data:`core.keys.GT_COLUMNS`, derived by
  :func:`core.ground_truth.ground_truth`
- scores (one row per (target, shots, method, entry[, seed])): target, shots, method, entry, score,
  seconds, and optionally ``seed`` (the k-shot draw that was scored) and ``remedy`` (text, "" when
  the inputs were in the method's well-posed regime)
- seed accuracy (one row per (target, shots, entry, seed)): the test accuracy of each fine-tuning
  seed at the entry's ground-truth lr -> :func:`seed_accuracy`
- merged (scores joined with the accuracies they are judged against): target, shots, method,
  entry, score, acc, selection_seconds, finetune_seconds, draw, remedy

**Draws** (per-draw judging): a score table with a ``seed`` column and two or more seeds in a
(target, shots, method) cell is judged draw by draw: the scores of draw s against the test
accuracies of fine-tuning seed s (at the entry's ground-truth lr), so selection and fine-tuning see
the same k-shot subset. A table without ``seed``, or with one draw, is judged against the ground
truth (the seed mean); its rows carry ``draw`` = :data:`DRAW_MEAN`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.metrics import CELL, DRAW_MEAN, RANDOM_EXPECTED, score_order
from core import keys
from core.ground_truth import ground_truth
from core.io import is_temporary
from core.keys import ENTRY_SEP, SHOTS_FULL, SHOTS_UNSPECIFIED, split_entry  # noqa: F401  (re-exported)
from core.results import check_cells, list_result_files, newest_result

GT_COLUMNS = list(keys.GT_COLUMNS)
SCORE_COLUMNS = list(keys.SCORE_COLUMNS)
#: the built-in static references, for score tables without a ``reference`` column
REFERENCE_METHODS = ("param_count", "source_accuracy")
MERGED_COLUMNS = list(keys.MERGED_COLUMNS)
RUN_COLUMNS = list(keys.RUN_REQUIRED_COLUMNS)
SEED_ACC_COLUMNS = list(keys.SEED_ACC_COLUMNS)


def normalize_shots(value: object) -> str:
    """The text form of shots (:func:`core.keys.format_shots`), also accepting ``"all"``
    (:data:`SHOTS_UNSPECIFIED`, the label of results brought without a shots column)."""
    return keys.format_shots(value, allow_unspecified=True)


shots_key = keys.shots_sort_key


def sorted_shots(values: Iterable[str]) -> list[str]:
    return sorted(set(values), key=shots_key)


# ----------------------------------------------------------------------------------------------
# ground truth


def seed_accuracy(runs: pd.DataFrame, gt: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy of every fine-tuning seed at the entry's ground-truth lr.

    ``runs``: the runs table (target, shots, entry, lr, seed, test_acc); ``gt``: its ground truth
    (:func:`ground_truth`, column best_lr = the best lr of the seed mean). Returns one row per
    (target, shots, entry, seed) with column acc = test_acc of that seed at best_lr (failed runs,
    NaN test_acc, left out). This is what a draw s is judged against, and what the noise ceiling
    (:mod:`analysis.ceiling`) compares across seeds.
    """
    missing = [c for c in RUN_COLUMNS if c not in runs.columns]
    if missing:
        raise ValueError(f"runs table lacks columns {missing}; required: {RUN_COLUMNS}")
    keys = ["target", "shots", "entry"]
    runs = runs.assign(shots=runs["shots"].map(normalize_shots))
    best = gt[[*keys, "best_lr"]].dropna(subset=["best_lr"])
    at_best = runs.merge(best, on=keys)
    at_best = at_best[np.isclose(at_best["lr"], at_best["best_lr"], rtol=1e-9, atol=0)]
    at_best = at_best.dropna(subset=["test_acc"]).assign(seed=lambda d: d["seed"].astype(int))
    out = at_best.groupby([*keys, "seed"], as_index=False)["test_acc"].mean()
    return out.rename(columns={"test_acc": "acc"})[SEED_ACC_COLUMNS].sort_values(
        [*keys, "seed"], ignore_index=True
    )


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
    for col in GT_COLUMNS[GT_COLUMNS.index("acc") + 1 :]:
        if col not in gt.columns:
            gt[col] = np.nan
    return gt[GT_COLUMNS].sort_values(["target", "shots", "entry"], ignore_index=True)


def load_ground_truth(out_dir: str | Path, *, strict: bool = False) -> pd.DataFrame:
    """The ground truth of a benchmark run under ``out_dir``.

    Reads ``finetune_runs.parquet`` and/or ``finetune_gt.parquet`` (either may hold runs, a ground
    truth table, or both with a ``kind`` column). When runs are present the ground truth is derived
    from them with :func:`ground_truth`; otherwise the given ground-truth rows are used. With
    ``strict``, runs of a mixed or incomplete (target, shots) cell
    (:func:`core.results.check_cells`) raise :class:`core.results.GroundTruthIntegrityError`;
    otherwise the analysis flags them (:func:`analysis.validate.check_gt` with ``runs``).
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
        runs = pd.concat(runs, ignore_index=True)
        check_cells(runs, strict=strict)
        return ground_truth(runs)
    return normalize_ground_truth(pd.concat(gts, ignore_index=True))


def stale_table_notes(out_dir: str | Path, finetune_dir: str | Path) -> list[str]:
    """Notes when the collected tables under ``out_dir`` lag the results under ``finetune_dir``.

    Compared: the modification time of ``finetune_runs.parquet`` (else ``finetune_gt.parquet``)
    with that of the newest ``result.json`` (:func:`core.results.list_result_files`, the listing
    the collection scans), and the number of rows of ``finetune_runs.parquet`` with the number of
    result files. Either differs when a job of a multirun was killed before it could collect, or
    results were added since: the analysis would judge a ground truth that is not the one on disk.
    Returns [] when the tables are current or there is no results folder.
    """
    out_dir, finetune_dir = Path(out_dir), Path(finetune_dir)
    tables = (out_dir / "finetune_runs.parquet", out_dir / "finetune_gt.parquet")
    table = next((f for f in tables if f.is_file()), None)
    if table is None or not finetune_dir.is_dir():
        return []
    notes = []
    refresh = f"run `python scripts/collect.py --out-dir {out_dir}` to refresh them"
    newest = newest_result(finetune_dir)
    written = table.stat().st_mtime
    if newest is not None and newest[1] > written:
        notes.append(
            f"stale tables: {table} was written at {_time(written)}, before the newest result "
            f"{newest[0]} ({_time(newest[1])}); the ground truth misses results (a job that failed "
            f"or was killed before collecting, or results added since): {refresh}"
        )
    if table.name == "finetune_runs.parquet":
        n_rows = pd.read_parquet(table, columns=["target"]).shape[0]
        n_files = len(list_result_files(finetune_dir))
        if n_rows != n_files:
            notes.append(
                f"stale tables: {table} has {n_rows} runs but {finetune_dir} holds {n_files} "
                f"result files (malformed files, which collect skips with a warning, count here "
                f"too): {refresh}"
            )
    return notes


def _time(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="seconds")


def load_runs(out_dir: str | Path) -> pd.DataFrame | None:
    """The fine-tuning runs under ``out_dir`` (the files of :func:`load_ground_truth`), or None
    when they hold only a ground truth (then no draw can be judged against its own seed)."""
    out_dir = Path(out_dir)
    runs = []
    for f in (out_dir / "finetune_runs.parquet", out_dir / "finetune_gt.parquet"):
        if f.is_file():
            runs += split_finetune_table(pd.read_parquet(f), source=str(f))[0]
    return pd.concat(runs, ignore_index=True) if runs else None


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


def merge_tables(
    gt: pd.DataFrame,
    scores: pd.DataFrame,
    seed_acc: pd.DataFrame | None = None,
    notes: list[str] | None = None,
) -> pd.DataFrame:
    """Scores joined with the accuracies they are judged against, one row per judged draw.

    A (target, shots, method) whose scores carry two or more distinct ``seed`` values is judged per
    draw: each row's acc is the test accuracy of fine-tuning seed ``seed`` at the entry's
    ground-truth lr (``seed_acc``, :func:`seed_accuracy`) and ``draw`` = seed. A draw without the
    runs of its seed is left out (a note says which); without any ``seed_acc`` (a ground truth
    given directly) every draw is judged against the seed mean. Every other cell is judged against
    the ground truth (seed mean) with ``draw`` = :data:`DRAW_MEAN`. ``remedy`` is the score table's
    remedy ("" when absent); ``reference`` its reference flag (for tables without that column, such
    as one brought to ``analyze.py scores=``: the methods in :data:`REFERENCE_METHODS`).
    ``notes`` (a list) receives what was left out.

    Returns columns target, shots, method, entry, score, acc, selection_seconds (the method's
    seconds for that entry and draw), finetune_seconds (the entry's brute-force fine-tuning
    seconds), draw, remedy, reference.
    """
    notes = [] if notes is None else notes
    left = scores[["target", "shots", "method", "entry", "score", "seconds"]].rename(
        columns={"seconds": "selection_seconds"}
    )
    seeds = (
        pd.to_numeric(scores["seed"], errors="coerce").astype("float64")
        if "seed" in scores.columns
        else pd.Series(np.nan, index=scores.index)
    )
    remedy = scores["remedy"] if "remedy" in scores.columns else pd.Series("", index=scores.index)
    reference = (
        scores["reference"].fillna(False).astype(bool)
        if "reference" in scores.columns
        else scores["method"].isin(REFERENCE_METHODS)
    )
    left = left.assign(
        seed=seeds.to_numpy(),
        remedy=remedy.map(lambda v: "" if pd.isna(v) else str(v).strip()).to_numpy(),
        reference=reference.to_numpy(),
    )
    n_seeds = left.groupby(["target", "shots", "method"])["seed"].transform("nunique")
    per_draw = (n_seeds >= 2).to_numpy()
    right = gt[["target", "shots", "entry", "acc", "seconds"]].rename(
        columns={"seconds": "finetune_seconds"}
    )
    keys = ["target", "shots", "entry"]
    mean_rows = left[~per_draw].assign(draw=DRAW_MEAN).merge(right, on=keys, how="inner")
    draws = left[per_draw].assign(draw=lambda d: d["seed"].astype(int))
    if draws.empty or seed_acc is None:
        if not draws.empty:
            notes.append(
                "score tables with several seeds but no runs per seed: each draw is judged against "
                "the ground truth (seed mean) instead of its own seed's runs"
            )
        draw_rows = draws.merge(right, on=keys, how="inner")
    else:
        per_seed = seed_acc[[*keys, "seed", "acc"]].rename(columns={"seed": "draw"})
        joined = draws.merge(per_seed, on=[*keys, "draw"], how="left").merge(
            right.drop(columns="acc"), on=keys, how="inner"
        )
        lost = joined[joined["acc"].isna()]
        if len(lost):
            labels = [
                f"target={t} shots={sh} seed={d}: {', '.join(sorted(set(g['entry'])))}"
                for (t, sh, d), g in lost.groupby(["target", "shots", "draw"], sort=True)
            ]
            notes.append(
                "draws without fine-tuning runs of their seed at the ground-truth lr are not "
                "judged: " + "; ".join(labels[:10]) + (" ..." if len(labels) > 10 else "")
            )
        draw_rows = joined.dropna(subset=["acc"])
    merged = pd.concat([mean_rows, draw_rows], ignore_index=True)
    merged["draw"] = merged["draw"].astype(int)
    return merged[MERGED_COLUMNS].sort_values(
        ["target", "shots", "method", "draw", "entry"], ignore_index=True
    )


def baselines_table(
    gt: pd.DataFrame, baseline: str | None, seed_acc: pd.DataFrame | None = None
) -> pd.DataFrame | None:
    """The baseline entry's accuracy per (target, shots, draw): columns target, shots, draw,
    baseline_acc.

    Rows with draw = :data:`DRAW_MEAN` hold its ground truth (seed mean); with ``seed_acc``, one
    more row per fine-tuning seed holds that seed's accuracy (a draw is judged against its seed).
    """
    if not baseline:
        return None
    rows = gt[gt["entry"] == baseline][[*CELL, "acc"]].assign(draw=DRAW_MEAN)
    if seed_acc is not None:
        per_seed = seed_acc[seed_acc["entry"] == baseline][[*CELL, "seed", "acc"]]
        rows = pd.concat([rows, per_seed.rename(columns={"seed": "draw"})], ignore_index=True)
    rows = rows.rename(columns={"acc": "baseline_acc"}).astype({"draw": int})
    return rows[[*CELL, "draw", "baseline_acc"]].reset_index(drop=True)


def entry_gains(gt: pd.DataFrame, baseline: str | None) -> pd.DataFrame:
    """Fine-tuning gain of every entry: acc minus the baseline's acc of the same (target, shots).

    Without a baseline (or where it has no result) the reference is the best entry of the cell
    (so every gain is <= 0). Columns target, shots, entry, acc, reference, gain.
    """
    ref = gt.groupby(CELL, as_index=False)["acc"].max().rename(columns={"acc": "best_acc"})
    out = gt[[*CELL, "entry", "acc"]].merge(ref, on=CELL)
    base = baselines_table(gt, baseline)
    if base is not None:
        out = out.merge(base.drop(columns="draw"), on=CELL, how="left")
    else:
        out["baseline_acc"] = np.nan
    has_base = out["baseline_acc"].notna()
    out["reference"] = np.where(has_base, f"baseline {baseline}", "best entry")
    out["gain"] = out["acc"] - out["baseline_acc"].where(has_base, out["best_acc"])
    return out[[*CELL, "entry", "acc", "reference", "gain"]]


#: the reference of a multi-domain cell without its configured domain baseline
DOMAIN_MEAN_REFERENCE = "mean over domains"

DOMAIN_COLUMNS = [
    "expert",
    "expert_type",
    "target",
    "shots",
    "method",
    "n_domains",
    "n_scored",
    "n_draws",
    "reference",
    "reference_acc",
    "picked_domain",
    "picked_acc",
    "best_domain",
    "best_acc",
    "gap",
    "top1_gain",
    "top3_gain",
    "trials_to_best",
    "spearman",
    "remedied",
]


def domain_selection(
    merged: pd.DataFrame,
    types: dict[str, str] | None = None,
    domain_baseline: str | None = None,
    notes: list[str] | None = None,
) -> pd.DataFrame:
    """The multi-domain view: each multi-domain expert's domains ranked on their own.

    The paper (Multi-BN zoo) selects the domain-specific parameters *within* one multi-domain
    expert and reports the gain against that expert's ImageNet domain. For every expert (entries
    ``<expert>@<domain>``) with at least two scored domains in a (target, shots) cell, each method's
    scores are restricted to that expert's domains and judged per draw (as in
    :func:`analysis.metrics.metrics_table`, mean over draws):

    - picked_domain: the top-scored domain (ties pessimistic, :func:`analysis.metrics.score_order`;
      the most frequent pick over draws, ties by name), picked_acc its accuracy (mean over draws),
      best_domain / best_acc the domain with the best accuracy, gap = picked_acc - best_acc (<= 0);
    - top1_gain, top3_gain: best accuracy among the 1 / 3 top-scored domains minus the reference
      accuracy, where the reference is the entry ``domain_baseline`` when it is one of this
      expert's scored domains in the cell (the paper: ``multi_bn_resnet101@imagenet``), otherwise
      (null, or another expert's entry) the mean accuracy over the expert's domains, i.e. the
      expected accuracy of a uniformly random domain (reference ``"mean over domains"``), which
      needs no particular domain; ``notes`` says where that fallback was used;
    - n_domains: the expert's domains scored by any method in the cell; n_scored: those this
      method scored (fewer: it is judged on fewer domains, as flagged in the report);
    - trials_to_best and spearman over the expert's domains;
    - remedied: score rows of those domains with a non-empty remedy.

    ``random_expected`` rows hold Random's exact expectations over the same domains
    (picked_domain ``"(random)"``). Columns :data:`DOMAIN_COLUMNS`.
    """
    from analysis.metrics import (
        cell_metrics,
        has_remedy,
        mean_over_draws,
        random_expected_metrics,
    )

    md = merged[merged["entry"].str.contains(ENTRY_SEP, regex=False)]
    if md.empty:
        return pd.DataFrame(columns=DOMAIN_COLUMNS)
    if "draw" not in md.columns:
        md = md.assign(draw=DRAW_MEAN)
    if "remedy" not in md.columns:
        md = md.assign(remedy="")
    md = md.assign(
        expert=md["entry"].map(lambda e: split_entry(e)[0]),
        domain=md["entry"].map(lambda e: split_entry(e)[1]),
    )
    keys = ["expert", "target", "shots"]
    n_domains = md.groupby(keys)["domain"].nunique().rename("n_domains").reset_index()
    md = md.merge(n_domains, on=keys)
    md = md[md["n_domains"] >= 2]
    if md.empty:
        return pd.DataFrame(columns=DOMAIN_COLUMNS)
    fallback: set[tuple[str, str, str]] = set()
    # the reference of a (expert, target, shots, draw) comes from every domain some method scored
    # there, so all methods of a cell share it
    cells = md.drop_duplicates([*keys, "draw", "entry"])
    refs_of: dict[tuple, tuple[str, float]] = {}
    for (expert, target, shots, draw), d in cells.groupby([*keys, "draw"], sort=True):
        hit = d[d["entry"] == domain_baseline] if domain_baseline else d.iloc[:0]
        if len(hit):
            refs_of[(expert, target, shots, draw)] = (
                str(domain_baseline),
                float(hit["acc"].iloc[0]),
            )
        else:
            refs_of[(expert, target, shots, draw)] = (DOMAIN_MEAN_REFERENCE, float(d["acc"].mean()))
            fallback.add((expert, target, shots))

    def reference(d: pd.DataFrame) -> tuple[str, float]:
        first = d.iloc[0]
        return refs_of[(first["expert"], first["target"], first["shots"], first["draw"])]

    def record(key: tuple, g: pd.DataFrame, per_draw: list, refs: list, **fields) -> dict:
        agg = mean_over_draws(per_draw)
        best_mean = g.groupby("domain")["acc"].mean()
        return {
            **dict(zip(["expert", "target", "shots", "method"], key, strict=True)),
            "n_domains": int(g["n_domains"].iloc[0]),
            "n_scored": int(g["domain"].nunique()),
            "n_draws": int(agg["n_draws"]),
            "reference": refs[0][0],
            "reference_acc": float(np.mean([r[1] for r in refs])),
            "picked_domain": fields["picked_domain"],
            "picked_acc": agg["top1_acc"],
            "best_domain": str(best_mean.idxmax()),
            "best_acc": agg["best_acc"],
            "gap": -agg["regret_at_1"],
            "top1_gain": agg["top1_gain"],
            "top3_gain": agg["top3_gain"],
            "trials_to_best": agg["trials_to_best"],
            "spearman": agg["spearman"],
            "remedied": fields["remedied"],
        }

    records = []
    for key, g in md.groupby([*keys, "method"], sort=True):
        per_draw, picks, refs = [], [], []
        for _, d in g.groupby("draw", sort=True):
            refs.append(reference(d))
            per_draw.append(cell_metrics(d["score"], d["acc"], refs[-1][1], 3))
            picks.append(d["domain"].iloc[score_order(d["score"], d["acc"])[0]])
        counts = pd.Series(picks).value_counts()
        records.append(
            record(
                key,
                g,
                per_draw,
                refs,
                picked_domain=sorted(counts[counts == counts.max()].index)[0],
                remedied=int(has_remedy(g["remedy"]).sum()),
            )
        )
    # Random over the domains of the cell (every domain some method scored), per draw
    for key, g in cells.groupby(keys, sort=True):
        refs = [reference(d) for _, d in g.groupby("draw", sort=True)]
        per_draw = [
            random_expected_metrics(d["acc"], ref[1], 3)
            for ref, (_, d) in zip(refs, g.groupby("draw", sort=True), strict=True)
        ]
        records.append(
            record((*key, RANDOM_EXPECTED), g, per_draw, refs, picked_domain="(random)", remedied=0)
        )
    if fallback and notes is not None:
        cells_txt = ", ".join(f"{e} on {t}/shots={sh}" for e, t, sh in sorted(fallback))
        why = (
            f"domain baseline {domain_baseline!r} is not a scored domain there"
            if domain_baseline
            else "no domain baseline is configured (analysis.domain_baseline)"
        )
        notes.append(
            f"multi-domain view: {why}; gains are measured against the mean accuracy over the "
            f"expert's domains (a random domain's expectation) for {cells_txt}"
        )
    out = pd.DataFrame.from_records(records)
    types = types or {}
    out["expert_type"] = out["expert"].map(lambda e: types.get(e, ""))
    return out[DOMAIN_COLUMNS].sort_values([*keys, "method"], ignore_index=True)
