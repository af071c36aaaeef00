"""Checks of the tables the analysis reads, with messages that name the bad rows and columns.

Bring-your-own mode is strict: any problem raises :class:`InputTableError` (a ``ValueError``).
Benchmark mode (tables a sweep is still filling) is lenient where a partial result is normal: rows
that cannot be judged are left out and a note says which (the notes go into report.md).

Row numbers in messages count data rows from 1 (the header is not a row).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.tables import CELL, normalize_shots
from core.results import GroundTruthIntegrityError, check_cells

GT_REQUIRED = ("target", "entry", "acc")
GT_OPTIONAL = ("shots", "seconds", "best_lr")
SCORES_REQUIRED = ("target", "entry", "method", "score")
SCORES_OPTIONAL = ("shots", "seconds", "seed", "remedy")
RUNS_REQUIRED = ("target", "shots", "entry", "lr", "seed", "test_acc")
MAX_LISTED = 10


class InputTableError(ValueError):
    """A table given to the analysis cannot be used as it is; the message says why and where."""


def _listing(items: Sequence[str], limit: int = MAX_LISTED) -> str:
    items = list(items)
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def _rows(index: Iterable[int]) -> str:
    return _listing([str(i + 1) for i in index])


def read_table(path: str | Path, what: str) -> pd.DataFrame:
    """Read a CSV (or parquet) table given by a user; ``what`` names it in messages ('gt', 'scores').

    Column names are stripped and lower-cased. Missing, empty, header-only and malformed files raise
    :class:`InputTableError`.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputTableError(f"{what} table {path} does not exist (or is not a file)")
    try:
        if path.suffix.lower() == ".parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise InputTableError(
            f"{what} table {path} is empty; expected a CSV with a header row and one row per result"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as e:
        raise InputTableError(f"{what} table {path} is malformed: {e}") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    if df.empty:
        raise InputTableError(
            f"{what} table {path} has a header ({', '.join(df.columns)}) but no rows"
        )
    return df


def check_table(
    df: pd.DataFrame,
    *,
    what: str,
    required: Sequence[str],
    optional: Sequence[str] = (),
    numeric: Sequence[str] = (),
    key: Sequence[str] = (),
    strict: bool = True,
    source: str | Path | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Check and normalise one table; returns (clean copy, notes).

    - every column of ``required`` present;
    - no missing (NaN/empty) value in a required column (lenient mode: numeric columns' NaN rows are
      dropped with a note; key columns always fail);
    - ``numeric`` columns numeric and finite (NaN allowed only in optional numeric columns);
    - text keys stripped, ``shots`` normalised to text ('full' or an integer);
    - no two rows with the same ``key``.

    ``what`` names the table in messages ('gt', 'scores'), ``source`` its file.
    """
    notes: list[str] = []
    label = f"{what} table" + (f" {source}" if source else "")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputTableError(
            f"{label} lacks column(s) {missing}; found columns {list(df.columns)}; "
            f"required: {', '.join(required)}"
            + (f" (optional: {', '.join(optional)})" if optional else "")
        )
    df = df.reset_index(drop=True).copy()
    text_cols = [c for c in ("target", "entry", "method") if c in df.columns]
    for c in text_cols:
        df[c] = df[c].map(lambda v: v.strip() if isinstance(v, str) else v)
        df.loc[df[c].map(lambda v: isinstance(v, str) and v == ""), c] = np.nan
        df[c] = df[c].map(lambda v: v if pd.isna(v) else str(v))
    for c in required:
        if c in numeric:
            continue
        bad = df.index[df[c].isna()]
        if len(bad):
            raise InputTableError(
                f"{label} has missing values in column {c!r} at rows {_rows(bad)}"
            )
    for c in numeric:
        if c not in df.columns:
            continue
        values = pd.to_numeric(df[c], errors="coerce")
        not_numeric = df.index[values.isna() & df[c].notna()]
        if len(not_numeric):
            examples = _listing([repr(df.at[i, c]) for i in not_numeric])
            raise InputTableError(
                f"{label} has non-numeric values in column {c!r} at rows "
                f"{_rows(not_numeric)}: {examples}"
            )
        infinite = df.index[np.isinf(values.to_numpy(dtype=np.float64))]
        if len(infinite):
            raise InputTableError(
                f"{label} has infinite values in column {c!r} at rows {_rows(infinite)}"
            )
        df[c] = values.astype(np.float64)
        nan_rows = df.index[values.isna()]
        if c in required and len(nan_rows):
            where = "; ".join(
                " ".join(f"{k}={df.at[i, k]}" for k in key if k in df.columns and k != c)
                for i in nan_rows[:3]
            )
            if strict:
                raise InputTableError(
                    f"{label} has NaN (missing) values in column {c!r} at rows "
                    f"{_rows(nan_rows)} ({where}); every row needs a number there"
                )
            notes.append(
                f"{what}: left out {len(nan_rows)} row(s) with no {c} value ({where}"
                + (", ..." if len(nan_rows) > 3 else "")
                + ")"
            )
            df = df.drop(index=nan_rows).reset_index(drop=True)
    if "shots" in df.columns:
        bad = df.index[df["shots"].isna()]
        if len(bad):
            raise InputTableError(f"{label} has missing shots at rows {_rows(bad)}")
        try:
            df["shots"] = df["shots"].map(normalize_shots)
        except ValueError as e:
            raise InputTableError(f"{label}: {e}") from None
    if key:
        dup = df.duplicated(list(key), keep=False)
        if dup.any():
            lines = [
                ", ".join(f"{k}={v}" for k, v in zip(key, vals)) + f" at rows {_rows(g.index)}"
                for vals, g in df[dup].groupby(list(key), sort=False)
            ]
            raise InputTableError(
                f"{label} has duplicate rows (same {', '.join(key)}): "
                + "; ".join(lines[:MAX_LISTED])
                + (f"; ... ({len(lines) - MAX_LISTED} more)" if len(lines) > MAX_LISTED else "")
                + ". Keep one row per key (average repeated runs before bringing them)"
            )
    return df, notes


def check_gt(
    df: pd.DataFrame,
    *,
    strict: bool = True,
    source: str | Path | None = None,
    runs: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Check a ground-truth table (target, entry, acc; optional shots, seconds, best_lr).

    ``runs``: the runs the table was derived from, when there are any. Each (target, shots) cell of
    them is classified (:func:`core.results.check_cells`): a cell whose runs differ in recipe,
    precision or code revision, or with an entry short of the cell's lr x seed grid, raises in
    ``strict`` mode and gets a note naming it otherwise.
    """
    label = "gt table" + (f" {source}" if source else "")
    notes: list[str] = []
    if runs is not None:
        try:
            _, problems = check_cells(runs, strict=strict)
        except GroundTruthIntegrityError as e:
            raise InputTableError(f"{label}: {e}") from None
        notes += [f"ground truth of a mixed or incomplete cell: {p}" for p in problems]
    key = ("target", "shots", "entry") if "shots" in df.columns else ("target", "entry")
    out, more = check_table(
        df,
        what="gt",
        required=GT_REQUIRED,
        optional=GT_OPTIONAL,
        numeric=("acc", "seconds", "best_lr"),
        key=key,
        strict=strict,
        source=source,
    )
    notes += more
    # an accuracy is a percentage (or a fraction): anything else is a unit or column mix-up
    bad = out.index[(out["acc"] < 0) | (out["acc"] > 100)]
    if len(bad):
        raise InputTableError(
            f"{label} has accuracies outside [0, 100] in column 'acc' at rows {_rows(bad)}: "
            f"{_listing([repr(float(out.at[i, 'acc'])) for i in bad])}; valid: percentages in "
            "[0, 100] (or fractions in [0, 1])"
        )
    return out, notes


def check_accuracy_units(
    df: pd.DataFrame, column: str, *, source: str | Path | None = None, what: str = "gt"
) -> None:
    """Refuse a table whose ``column`` mixes fractions and percentages.

    Accuracies are either all percentages (0-100) or all fractions (0-1); a table with values in
    (0, 1] next to values above 1 mixes the two (e.g. results pasted from two tools), and ranking
    across them would be meaningless. 0 is valid in both units and never counts. Raises
    :class:`InputTableError` naming the rows of the less frequent unit (target, entry, value).
    Where an accuracy of at most 1 % is genuine in a table of percentages (a run at chance level
    on a hundred classes or more), the table cannot be told apart from a mix: give such a run as
    NaN (a failed run) in a runs table.
    """
    values = pd.to_numeric(df[column], errors="coerce")
    small = df.index[(values > 0) & (values <= 1)]
    large = df.index[values > 1]
    if not len(small) or not len(large):
        return
    odd, odd_unit, main_unit = (
        (small, "fractions", "percentages")
        if len(small) <= len(large)
        else (large, "percentages", "fractions")
    )
    label = f"{what} table" + (f" {source}" if source else "")
    named = [
        f"row {i + 1} (target={df.at[i, 'target']}, entry={df.at[i, 'entry']}, "
        f"{column}={float(values[i])!r})"
        for i in odd
    ]
    raise InputTableError(
        f"{label} mixes fractions and percentages in column {column!r}: {len(large)} values above 1 "
        f"and {len(small)} in (0, 1]; the {odd_unit} among mostly {main_unit}: {_listing(named)}. "
        "Valid: every accuracy in one unit, all percentages in [0, 100] or all fractions in [0, 1]"
    )


def check_scores(
    df: pd.DataFrame, *, strict: bool = True, source: str | Path | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """Check a scores table (target, entry, method, score; optional shots, seconds, seed, remedy).

    With a ``seed`` column (the k-shot draw that was scored) a key is one row per
    (target, shots, method, entry, seed) and every given seed must be an integer (a missing one:
    a row from a table without the column); ``remedy`` is text
    (missing = "": the inputs were in the method's well-posed regime).
    """
    key = (
        ("target", "shots", "method", "entry")
        if "shots" in df.columns
        else ("target", "method", "entry")
    )
    has_seed = "seed" in df.columns and df["seed"].notna().any()
    if has_seed:
        key = (*key, "seed")
    out, notes = check_table(
        df,
        what="scores",
        required=SCORES_REQUIRED,
        optional=SCORES_OPTIONAL,
        numeric=("score", "seconds", "seed") if has_seed else ("score", "seconds"),
        key=key,
        strict=strict,
        source=source,
    )
    if has_seed:
        seeds = out["seed"]
        # a missing seed is a row from a table written without the column (judged against the
        # seed mean); a fractional one is a mix-up
        bad = out.index[seeds.notna() & (seeds != seeds.round())]
        if len(bad):
            label = "scores table" + (f" {source}" if source else "")
            raise InputTableError(
                f"{label} has seeds that are not integers in column 'seed' at rows {_rows(bad)}; "
                "valid: the integer seed of the k-shot draw that was scored (or no seed column)"
            )
        out["seed"] = seeds.astype("Int64")
    if "remedy" in out.columns:
        out["remedy"] = out["remedy"].map(lambda v: "" if pd.isna(v) else str(v).strip())
    return out, notes


def check_runs(df: pd.DataFrame, source: str | Path | None = None) -> pd.DataFrame:
    """Check a runs table (target, shots, entry, lr, seed, test_acc; NaN test_acc = failed run)."""
    out, _ = check_table(
        df,
        what="runs",
        required=RUNS_REQUIRED,
        numeric=("lr", "seed", "seconds"),
        key=("target", "shots", "entry", "lr", "seed"),
        source=source,
    )
    out["test_acc"] = pd.to_numeric(out["test_acc"], errors="coerce")
    return out


def harmonize_shots(
    gt: pd.DataFrame, scores: pd.DataFrame, default: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables with a shots column: given in both, or absent from both (then ``default``)."""
    has = ("shots" in gt.columns, "shots" in scores.columns)
    if has == (False, False):
        return gt.assign(shots=default), scores.assign(shots=default)
    if has != (True, True):
        which, other = ("gt", "scores") if has[0] else ("scores", "gt")
        raise InputTableError(
            f"the {which} table has a shots column but the {other} table does not; give shots in "
            "both tables or in neither"
        )
    return gt, scores


def _cell_label(row: Sequence[object], names: Sequence[str]) -> str:
    return " ".join(f"{n}={v}" for n, v in zip(names, row))


def reconcile(
    gt: pd.DataFrame, scores: pd.DataFrame, *, strict: bool
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Match the entries of the scores with those of the ground truth, cell by cell.

    A cell is a (target, shots). Checked: cells with scores but no ground truth, cells with ground
    truth but no scores, entries scored but absent from the ground truth, and entries of the ground
    truth that a method did not score. Strict mode raises one :class:`InputTableError` listing
    them; lenient mode drops scores that cannot be judged and returns notes.
    Returns (gt, scores, notes).
    """
    notes: list[str] = []
    problems: list[str] = []
    gt_cells = gt[CELL].drop_duplicates()
    sc_cells = scores[CELL].drop_duplicates()
    cells = sc_cells.merge(gt_cells, on=CELL, how="outer", indicator=True)
    only_scores = cells[cells["_merge"] == "left_only"][CELL]
    only_gt = cells[cells["_merge"] == "right_only"][CELL]
    if len(only_scores):
        labels = [_cell_label(r, CELL) for r in only_scores.itertuples(index=False)]
        msg = f"scores for (target, shots) cells with no ground truth: {_listing(labels)}"
        valid = [_cell_label(r, CELL) for r in gt_cells.itertuples(index=False)]
        problems.append(msg + f" (ground truth has: {_listing(valid)})")
        scores = scores.merge(gt_cells, on=CELL)
    if len(only_gt):
        labels = [_cell_label(r, CELL) for r in only_gt.itertuples(index=False)]
        problems.append(
            f"ground truth for (target, shots) cells that no method scored: {_listing(labels)}"
        )
    # entries scored but without a ground truth
    ent = scores.merge(gt[[*CELL, "entry"]], on=[*CELL, "entry"], how="left", indicator=True)
    extra = ent[ent["_merge"] == "left_only"]
    if len(extra):
        lines = [
            f"{_cell_label(k, [*CELL, 'method'])}: {_listing(sorted(g['entry']))}"
            for k, g in extra.groupby([*CELL, "method"], sort=True)
        ]
        known = {k: sorted(g["entry"]) for k, g in gt.groupby(CELL, sort=True)}
        cells_hit = extra[CELL].drop_duplicates().itertuples(index=False)
        valid = "; ".join(
            f"{_cell_label(c, CELL)}: {_listing(known.get(tuple(c), []))}" for c in cells_hit
        )
        problems.append(
            "entries in the scores but not in the ground truth: "
            + "; ".join(lines[:MAX_LISTED])
            + (f"; ... ({len(lines) - MAX_LISTED} more)" if len(lines) > MAX_LISTED else "")
            + f" (entries in the ground truth: {valid})"
        )
        scores = ent[ent["_merge"] == "both"].drop(columns="_merge")
    # entries of the ground truth that a method did not score
    expected = scores[[*CELL, "method"]].drop_duplicates().merge(gt[[*CELL, "entry"]], on=CELL)
    got = expected.merge(scores[[*CELL, "method", "entry"]], how="left", indicator=True)
    lacking = got[got["_merge"] == "left_only"]
    if len(lacking):
        lines = [
            f"{_cell_label(k, [*CELL, 'method'])}: {_listing(sorted(g['entry']))}"
            for k, g in lacking.groupby([*CELL, "method"], sort=True)
        ]
        problems.append(
            "entries in the ground truth but not in the scores (each method must score every "
            "entry of a cell): "
            + "; ".join(lines[:MAX_LISTED])
            + (f"; ... ({len(lines) - MAX_LISTED} more)" if len(lines) > MAX_LISTED else "")
        )
    if problems and strict:
        raise InputTableError("the gt and scores tables do not match: " + " | ".join(problems))
    notes += [p + " (left out / ranked over the entries that have both)" for p in problems]
    return gt, scores.reset_index(drop=True), notes


def check_baseline(gt: pd.DataFrame, baseline: str | None, *, strict: bool) -> list[str]:
    """The baseline entry must have a ground truth in every cell (lenient: in at least one)."""
    if not baseline:
        return []
    has = gt[gt["entry"] == baseline][CELL].drop_duplicates()
    cells = gt[CELL].drop_duplicates()
    missing = cells.merge(has, on=CELL, how="left", indicator=True)
    missing = missing[missing["_merge"] == "left_only"][CELL]
    if missing.empty:
        return []
    valid = _listing(sorted(gt["entry"].unique()), limit=30)
    labels = _listing([_cell_label(r, CELL) for r in missing.itertuples(index=False)])
    if has.empty:
        raise InputTableError(
            f"unknown baseline {baseline!r}: it is not an entry of the ground truth; valid entries: {valid}"
        )
    if strict:
        raise InputTableError(
            f"baseline {baseline!r} has no ground truth for {labels}; give its accuracy there or "
            f"choose another baseline among: {valid}"
        )
    return [f"baseline {baseline!r} has no result for {labels}: gain metrics are left out there"]
