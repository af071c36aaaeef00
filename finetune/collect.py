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
interrupted writes are ignored.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from core import keys
from core.ground_truth import ground_truth as _ground_truth
from core.io import atomic_write, is_temporary, read_json
from core.locks import file_lock
from finetune.run import RESULT_NAME, check_result

log = logging.getLogger(__name__)

RUN_COLUMNS = list(keys.RUN_COLUMNS)
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
    for path in sorted(root.rglob(f"*{RESULT_NAME}*")):
        if is_temporary(path) or not path.is_file():
            continue
        if path.name != RESULT_NAME:
            continue
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
        rows.append({c: result.get(c) for c in RUN_COLUMNS} | {"shots": key[1]})
    for p in problems:
        log.warning("skipped result %s", p)
    runs = pd.DataFrame(rows, columns=RUN_COLUMNS)
    runs["val_acc"] = pd.to_numeric(runs["val_acc"], errors="coerce")
    runs = runs.astype(_DTYPES)
    runs = runs.sort_values(["target", "shots", "entry", "lr", "seed"], ignore_index=True)
    return runs, problems


def ground_truth(runs: pd.DataFrame) -> pd.DataFrame:
    """:func:`core.ground_truth.ground_truth` with the key columns typed as strings."""
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
    """Hydra callback of ``finetune.py -m``: once every job of the multirun has finished (local,
    joblib, submitit or SLURM launcher alike), collect the results once, in the launching process.

    The jobs themselves do not collect (each would rescan every result); a plain ``finetune.py``
    collects at its end. ``paths.out_dir`` / ``paths.finetune_dir`` come from the multirun's config.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        out_dir = Path(str(config.paths.out_dir)).expanduser().resolve()
        collect(out_dir, Path(str(config.paths.finetune_dir)).expanduser().resolve())
