"""The fine-tuning result files and the integrity of a cell's ground truth.

Two definitions that the sweep, the collection and the analysis share, so they can never disagree:

- :func:`list_result_files`: which ``result.json`` files exist under a results folder. The sweep's
  "already done" check, ``finetune/collect.py`` and the analysis' staleness check all list files
  with it. It follows symlinked folders (a target folder moved to another disk and linked back is
  part of the results), with a guard against symlink loops.
- :func:`classify_cells`: whether the runs of each (target, shots) cell can be combined into one
  ground truth. A cell is **mixed** when its runs differ in their recipe (the hash of a result's
  ``recipe``, i.e. the effective fine-tuning settings, device type and precision), ``precision`` or
  ``git_revision``; it is **incomplete** when some entry has fewer runs than the cell's lr x seed
  grid. Runs of one cell legitimately differ in lr, seed and entry, so the run's ``config_hash``
  (which covers the run key too) is not what is compared.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from core.io import config_hash
from core.keys import format_lr, format_shots

#: the file name of a finished fine-tuning run (``finetune.run.RESULT_NAME``)
RESULT_NAME = "result.json"

#: the run fields that must agree across the runs of one cell (absent columns are not compared)
PROVENANCE_COLUMNS = ("recipe_hash", "precision", "git_revision")
#: one row per (target, shots) cell (:func:`classify_cells`)
CELL_COLUMNS = (
    "target",
    "shots",
    "status",
    "n_entries",
    "n_runs",
    "n_lrs",
    "n_seeds",
    "mixed",
    "incomplete",
)
OK = "ok"
MIXED = "mixed"
INCOMPLETE = "incomplete"
MAX_LISTED = 10


class GroundTruthIntegrityError(ValueError):
    """Runs of a cell that must not be combined into one ground truth (mixed or incomplete)."""


# ---------------------------------------------------------------------------------------------
# result files


def _walk(top: Path, ancestors: frozenset[str]) -> Iterator[Path]:
    """Every file under ``top`` named :data:`RESULT_NAME`, following symlinked folders.

    ``ancestors`` holds the real paths of the folders above ``top`` in this walk: a folder whose
    real path is one of its own ancestors is a symlink loop and is not entered. Only true loops are
    cut; a folder reachable under two names is listed under both, as a path-by-path check (the
    sweep's) sees it.
    """
    real = os.path.realpath(top)
    if real in ancestors:
        return
    ancestors = ancestors | {real}
    try:
        with os.scandir(top) as it:
            items = sorted(it, key=lambda e: e.name)
    except (NotADirectoryError, FileNotFoundError, PermissionError):
        return
    for item in items:
        path = Path(item.path)
        if item.name == RESULT_NAME and item.is_file():  # follows a symlinked file too
            yield path
        elif item.is_dir():  # follows a symlinked folder
            yield from _walk(path, ancestors)


def list_result_files(root: str | os.PathLike, *under: str) -> list[Path]:
    """Every ``result.json`` under ``root / under...``, sorted, following symlinked folders.

    ``under`` (e.g. ``"dtd", "shots=20"``) restricts the walk to one sub-folder; the symlink-loop
    guard still counts the folders from ``root`` down, so a file is listed from a sub-folder exactly
    when it is listed from ``root``. A missing folder lists nothing. Paths start with ``root`` as given (symlinks are not resolved),
    so ``root / <target> / shots=<k> / ... / result.json`` is how both the sweep and the collection
    name a run. Only files named exactly ``result.json`` are listed (an interrupted write's
    temporary file has another name).
    """
    root = Path(root)
    ancestors: set[str] = set()
    top = root
    for part in under:
        real = os.path.realpath(top)
        if real in ancestors:
            return []
        ancestors.add(real)
        top = top / part
    return sorted(_walk(top, frozenset(ancestors)))


def newest_result(root: str | os.PathLike) -> tuple[Path, float] | None:
    """(path, modification time) of the most recently written result under ``root``, or None."""
    newest = None
    for path in list_result_files(root):
        try:
            mtime = path.stat().st_mtime
        except OSError:  # removed while listing
            continue
        if newest is None or mtime > newest[1]:
            newest = (path, mtime)
    return newest


def recipe_hash(result: dict) -> str | None:
    """The hash of a result's ``recipe`` (its effective settings without the run key), or None
    when the result has no recipe (written before results recorded it)."""
    recipe = result.get("recipe")
    return config_hash(recipe) if isinstance(recipe, dict) else None


# ---------------------------------------------------------------------------------------------
# cell integrity


def _counts(values: pd.Series, entries: pd.Series) -> str:
    """``value (n runs: entry, ...)`` for each distinct value, the most frequent first."""
    text = values.astype("object").where(values.notna(), "<missing>").astype(str)
    parts = []
    for value, idx in sorted(
        text.groupby(text).groups.items(), key=lambda kv: (-len(kv[1]), kv[0])
    ):
        names = sorted(set(entries.loc[idx].astype(str)))
        shown = ", ".join(names[:MAX_LISTED]) + (" ..." if len(names) > MAX_LISTED else "")
        parts.append(f"{value} ({len(idx)} run{'s' * (len(idx) != 1)}: {shown})")
    return "; ".join(parts)


def classify_cells(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (target, shots) cell of a runs table: can its runs make one ground truth?

    ``runs``: one row per fine-tuning run, columns target, shots, entry, lr, seed, and optionally
    :data:`PROVENANCE_COLUMNS` (recipe_hash, precision, git_revision). A failed run (NaN test_acc)
    is a run all the same.

    - ``mixed``: for each provenance column present in the table (and not empty in the cell) whose
      runs take two or more values (a missing value counts as one, ``<missing>``), the column and
      each value with its run count and entries; "" when the cell is uniform.
    - ``incomplete``: the entries that lack runs of the cell's planned grid, ``entry (n/N runs)``;
      "" when every entry has the full grid. The planned grid is **inferred** as the union of the
      lrs and of the seeds seen in the cell (N = n_lrs x n_seeds), since the results do not record
      the sweep that made them: an lr or a seed that no entry ran is not noticed.
    - ``status``: ``"ok"``, ``"mixed"``, ``"incomplete"`` or ``"mixed, incomplete"``.

    Returns columns :data:`CELL_COLUMNS`, sorted by (target, shots).
    """
    missing = [c for c in ("target", "shots", "entry", "lr", "seed") if c not in runs.columns]
    if missing:
        raise ValueError(
            f"runs table lacks columns {missing}; found {list(runs.columns)}; "
            "required: target, shots, entry, lr, seed"
        )
    if runs.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in CELL_COLUMNS})
    runs = runs.assign(
        shots=runs["shots"].map(lambda v: format_shots(v, allow_unspecified=True)),
        _lr=runs["lr"].map(format_lr),
        _seed=runs["seed"].astype("int64"),
    )
    provenance = [c for c in PROVENANCE_COLUMNS if c in runs.columns]
    records = []
    for (target, shots), cell in runs.groupby(["target", "shots"], sort=True):
        mixed = []
        for col in provenance:
            values = cell[col]
            if values.notna().any() and values.astype("object").nunique(dropna=False) > 1:
                mixed.append(f"{col}: {_counts(values, cell['entry'])}")
        lrs, seeds = cell["_lr"].unique(), cell["_seed"].unique()
        planned = len(lrs) * len(seeds)
        short = []
        for entry, e in cell.groupby("entry", sort=True):
            have = len(set(zip(e["_lr"], e["_seed"], strict=True)))
            if have < planned:
                short.append(f"{entry} ({have}/{planned} runs)")
        status = ", ".join(s for s, bad in ((MIXED, mixed), (INCOMPLETE, short)) if bad) or OK
        records.append(
            {
                "target": str(target),
                "shots": str(shots),
                "status": status,
                "n_entries": int(cell["entry"].nunique()),
                "n_runs": len(cell),
                "n_lrs": len(lrs),
                "n_seeds": len(seeds),
                "mixed": " | ".join(mixed),
                "incomplete": ", ".join(short[:MAX_LISTED])
                + (f", ... ({len(short) - MAX_LISTED} more)" if len(short) > MAX_LISTED else ""),
            }
        )
    return pd.DataFrame.from_records(records, columns=list(CELL_COLUMNS))


def cell_problems(cells: pd.DataFrame) -> list[str]:
    """One line per cell of :func:`classify_cells` that is not ``ok``, naming what is wrong."""
    lines = []
    for row in cells[cells["status"] != OK].itertuples(index=False):
        parts = []
        if row.mixed:
            parts.append(f"runs from different settings or code ({row.mixed})")
        if row.incomplete:
            parts.append(
                f"incomplete lr x seed grid (planned {row.n_lrs} lrs x {row.n_seeds} seeds): "
                f"{row.incomplete}"
            )
        lines.append(f"target={row.target} shots={row.shots}: " + "; ".join(parts))
    return lines


def check_cells(runs: pd.DataFrame, *, strict: bool) -> tuple[pd.DataFrame, list[str]]:
    """:func:`classify_cells` and its problems; in ``strict`` mode any problem raises.

    Returns (cells, problems). Raises :class:`GroundTruthIntegrityError` listing every mixed or
    incomplete cell when ``strict`` and there is one.
    """
    cells = classify_cells(runs)
    problems = cell_problems(cells)
    if strict and problems:
        raise GroundTruthIntegrityError(
            "the ground truth would combine runs that do not belong together: "
            + " | ".join(problems)
            + ". Valid: every run of a (target, shots) cell made with one recipe, precision and "
            "code revision, and every entry with the full lr x seed grid. Delete the stale run "
            "folders and rerun the sweep (finetune.py skips finished runs), or turn strict mode off "
            "to have these cells flagged in the report"
        )
    return cells, problems
