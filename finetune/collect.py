"""Collect the fine-tuning results into tables: every run, the ground truth, the brute-force cost.

Reads ``<finetune_dir>/<target>/shots=<k>/<entry>/lr=<lr>/seed=<s>/result.json`` and writes, under
``out_dir`` and atomically:

- ``finetune_runs.parquet``: one row per valid run (:data:`RUN_COLUMNS`);
- ``finetune_gt.parquet``: the ground truth per (target, shots, entry) (:data:`GT_COLUMNS`):
  ``acc`` = best over the lr grid of the seed-mean test accuracy, ``best_lr`` the lr that reaches it
  (ties: the smaller lr), ``n_seeds`` the seeds behind that mean, ``n_lrs`` / ``n_runs`` the lrs and
  runs found, ``seconds`` the brute-force cost of the whole (target, shots, entry) (every lr and
  seed);
- ``finetune_cost.csv``: the brute-force seconds per (target, shots) (:data:`COST_COLUMNS`).

A malformed, partial or misplaced result file is reported (one warning line naming the file and the
problem) and skipped: it never crashes the collection and never counts. Temporary files of
interrupted writes are ignored. The files are listed by :func:`core.results.list_result_files`, the
listing the sweep's "already done" check uses (symlinked folders are followed).

A (target, shots) cell whose runs differ in recipe, precision or code revision, or where an entry
lacks runs of the lr x seed grid, is named in a warning (:func:`core.results.classify_cells`; the
runs table carries ``recipe_hash`` for that); ``ground_truth(runs, strict=True)`` and
``scripts/collect.py --strict`` refuse it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hydra.core.utils import JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from core import keys
from core.ground_truth import ground_truth as _ground_truth
from core.io import atomic_write, read_json
from core.locks import file_lock
from core.results import check_cells, list_result_files, recipe_hash
from finetune.run import check_result

log = logging.getLogger(__name__)

# recipe_hash: the hash of the result's recipe, compared across the runs of a cell
# the final training loss (mean over the last 10% of steps): how far a run converged
RUN_COLUMNS = [*keys.RUN_COLUMNS, "train_loss", "recipe_hash"]
GT_COLUMNS = list(keys.GT_COLUMNS)
COST_COLUMNS = list(keys.COST_COLUMNS)
KEY = list(keys.GT_KEY)

_DTYPES = {
    "target": "string",
    "shots": "string",
    "entry": "string",
    "lr": "float64",
    "seed": "int64",
    "test_acc": "float64",
    "val_acc": "float64",
    "seconds": "float64",
    "epochs": "int64",
    "steps": "int64",
    "train_size": "int64",
    "device": "string",
    "precision": "string",
    "config_hash": "string",
    "git_revision": "string",
    "train_loss": "float64",
    "recipe_hash": "string",
}


def _key_from_path(path: Path, root: Path) -> tuple[str, str, str, str, int] | str:
    """(target, shots, entry, lr text, seed) from the folder names, or what is wrong with them."""
    parts = path.relative_to(root).parts
    if len(parts) != 6:
        return "not at <target>/shots=<k>/<entry>/lr=<lr>/seed=<s>/result.json"
    target, shots, entry, lr, seed, _ = parts
    for part, prefix in ((shots, "shots="), (lr, "lr="), (seed, "seed=")):
        if not part.startswith(prefix):
            return f"folder {part!r} should start with {prefix!r}"
    try:
        return target, shots[6:], entry, lr[3:], int(seed[5:])
    except ValueError:
        return f"folder {seed!r} has no integer seed"


def scan_results(finetune_dir: str | os.PathLike) -> tuple[pd.DataFrame, list[str]]:
    """Every valid result under ``finetune_dir`` as a runs table, and one line per skipped file.

    Returns (runs, problems): runs has :data:`RUN_COLUMNS` (accuracies in percent, seconds of wall
    time), sorted by key; each problem names the file and what is wrong with it.
    """
    root = Path(finetune_dir)
    if not root.is_dir():
        raise FileNotFoundError(
            f"no fine-tuning results folder {root}; run `python finetune.py` first "
            "(or pass the folder that holds <target>/shots=<k>/... results)"
        )
    rows = []
    problems = []
    for path in list_result_files(root):
        key = _key_from_path(path, root)
        if isinstance(key, str):
            problems.append(f"{path}: {key}")
            continue
        try:
            result = read_json(path)
        except ValueError as e:
            problems.append(f"{path}: malformed JSON ({e.__cause__ or e})")
            continue
        except OSError as e:
            problems.append(f"{path}: unreadable ({e.strerror})")
            continue
        problem = check_result(result, *key)
        if problem:
            problems.append(f"{path}: {problem}")
            continue
        rows.append(
            {c: result.get(c) for c in RUN_COLUMNS}
            | {"shots": key[1], "recipe_hash": recipe_hash(result)}
        )
    for p in problems:
        log.warning("skipped result %s", p)
    runs = pd.DataFrame(rows, columns=RUN_COLUMNS)
    runs["val_acc"] = pd.to_numeric(runs["val_acc"], errors="coerce")
    runs = runs.astype(_DTYPES)
    runs = runs.sort_values(["target", "shots", "entry", "lr", "seed"], ignore_index=True)
    return runs, problems


def ground_truth(runs: pd.DataFrame, *, strict: bool = False) -> pd.DataFrame:
    """:func:`core.ground_truth.ground_truth` with the key columns typed as strings.

    Each (target, shots) cell is first classified (:func:`core.results.check_cells`): a cell whose
    runs differ in recipe_hash, precision or git_revision, or with an entry short of the cell's
    lr x seed grid (inferred as the union of the lrs and seeds seen in the cell), is named in one
    warning line; with ``strict`` it raises :class:`core.results.GroundTruthIntegrityError`.
    """
    _, problems = check_cells(runs, strict=strict)
    for p in problems:
        log.warning("ground truth of a mixed or incomplete cell: %s", p)
    return _ground_truth(runs).astype({c: "string" for c in KEY})


def cost_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Brute-force fine-tuning cost per (target, shots): total wall seconds of every run."""
    if runs.empty:
        return pd.DataFrame(
            {
                c: pd.Series(dtype="string" if c in ("target", "shots") else np.int64)
                for c in COST_COLUMNS
            }
        ).astype({"seconds": "float64"})
    cost = (
        runs.groupby(["target", "shots"], sort=True, observed=True)
        .agg(seconds=("seconds", "sum"), n_runs=("seed", "size"), n_entries=("entry", "nunique"))
        .reset_index()
    )
    return cost[COST_COLUMNS]


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False, engine="pyarrow"))


def collect(
    out_dir: str | os.PathLike, finetune_dir: str | os.PathLike | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scan the results (default ``<out_dir>/finetune``) and write the three tables into ``out_dir``.

    Returns (runs, gt): the tables written to finetune_runs.parquet and finetune_gt.parquet.

    The scan and the three writes hold ``<out_dir>/.locks/collect.lock`` (:mod:`core.locks`): of
    two collects ending together, the one that writes last also scanned last, and the three tables
    always come from one scan.
    """
    out_dir = Path(out_dir)
    finetune_dir = Path(finetune_dir) if finetune_dir is not None else out_dir / "finetune"
    with file_lock(out_dir / ".locks" / "collect.lock"):
        runs, problems = scan_results(finetune_dir)
        gt = ground_truth(runs)
        cost = cost_table(runs)
        _write_parquet(runs, out_dir / "finetune_runs.parquet")
        _write_parquet(gt, out_dir / "finetune_gt.parquet")
        atomic_write(out_dir / "finetune_cost.csv", lambda tmp: cost.to_csv(tmp, index=False))
    n_cells = runs[["target", "shots"]].drop_duplicates().shape[0]
    log.info(
        "collected %d runs (%d skipped) into %d ground-truth rows over %d (target, shots) cells in %s",
        len(runs),
        len(problems),
        len(gt),
        n_cells,
        out_dir,
    )
    return runs, gt


class CollectAfterMultirun(Callback):
    """Hydra callback of ``finetune.py -m``: collect the results at the end of every job of the
    multirun (local, joblib, submitit or SLURM launcher alike), failed jobs included.

    Hydra calls ``on_multirun_end`` only when every job succeeded (a failed job re-raises in the
    sweeper first), so collecting only there would leave the tables of the previous collection
    when one job of a sweep fails, with the other jobs' results on disk. ``on_job_end`` runs after
    each job, whether it finished or raised (``hydra.core.utils.run_job``), in the process that ran
    the job; the last job to end collects every result written by then. A job killed outright
    (out of memory, a time limit) runs no callback: ``analyze.py`` then warns that the tables are
    older than the newest result. A plain ``finetune.py`` (no ``-m``) collects at its own end.
    ``paths.out_dir`` / ``paths.finetune_dir`` come from the job's config.
    """

    def on_job_end(self, config: DictConfig, job_return: Any = None, **kwargs: Any) -> None:
        from hydra.types import RunMode

        if OmegaConf.select(config, "hydra.mode") != RunMode.MULTIRUN:
            return  # a single run has collected in finetune_main
        if getattr(job_return, "status", None) == JobStatus.FAILED:
            log.warning(
                "a fine-tuning job failed (%s); collecting the results written so far",
                job_return._return_value,
            )
        out_dir = Path(str(config.paths.out_dir)).expanduser().resolve()
        collect(out_dir, Path(str(config.paths.finetune_dir)).expanduser().resolve())
