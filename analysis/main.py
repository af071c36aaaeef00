"""``analyze.py``: judge every selection method's ranking against the fine-tuning ground truth.

Two modes, one report (see :mod:`analysis.report` for the files and their columns):

- **benchmark outputs** (default): reads ``<paths.out_dir>/finetune_gt.parquet`` (runs or ground
  truth; also ``finetune_runs.parquet``), the scores ``<paths.selection_dir>/<target>/shots=<k>/
  <method>.parquet`` and ``<paths.zoo_dir>/manifest.csv``; writes ``<paths.reports_dir>/<name>/``.
  Partial sweeps are fine: what cannot be judged is left out and listed under "Data notes".
- **results you bring**: ``python analyze.py gt=GT.csv scores=SCORES.csv out=DIR [baseline=ENTRY]``
  with ``gt`` columns target, entry, acc (optional shots, seconds) and ``scores`` columns target,
  entry, method, score (optional shots, seconds); writes the report into ``DIR``. Checked strictly:
  a bad table stops the analysis with a message naming the rows and columns (exit status 2).

``export=long`` also writes ``<report>/export/long.csv`` and ``runs.csv`` (:mod:`analysis.export`);
a long.csv serves as gt= and scores= again.

Config keys read (all optional except where noted): name; gt, scores, out, baseline (bring-your-own);
export (none|long);
analysis (:class:`core.config.AnalysisConfig`: baseline, domain_baseline, topk, bootstrap, seed,
strict, cost_topk, spread_points, methods);
paths.{out_dir (benchmark mode), finetune_dir, selection_dir, reports_dir, zoo_dir};
logger.{type (csv|wandb|none), project, mode, entity, group}.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from analysis.compute import compute_analysis
from analysis.export import check_export, from_long, is_long, write_export
from analysis.report import integrity_section, source_tables_section, write_report
from analysis.tables import (
    SHOTS_UNSPECIFIED,
    expert_types,
    load_ground_truth,
    load_manifest,
    load_runs,
    load_scores,
    normalize_ground_truth,
    stale_table_notes,
)
from analysis.validate import (
    InputTableError,
    check_accuracy_units,
    check_baseline,
    check_gt,
    check_runs,
    check_scores,
    harmonize_shots,
    read_table,
    reconcile,
)
from core.config import AnalysisConfig, LoggerConfig, typed
from core.ground_truth import ground_truth
from core.io import git_revision
from core.results import classify_cells

LOGGER_TYPES = ("csv", "wandb", "none")


def _select(cfg: DictConfig, key: str) -> Any:
    """A top-level or ``paths`` value of the config, None when absent (the analysis runs on a
    composed config and on a hand-built one)."""
    return OmegaConf.select(cfg, key)


def _abs(path: Any) -> Path | None:
    """An absolute path (relative to where the command was launched, also under Hydra)."""
    if path in (None, ""):
        return None
    from hydra.utils import to_absolute_path

    return Path(to_absolute_path(str(Path(str(path)).expanduser())))


def load_byo(gt_path: Path, scores_path: Path, baseline: str | None):
    """Read and strictly check a ground truth and scores table a user brings.

    The gt table may also be a table of runs (target, [shots,] entry, lr, seed, test_acc): its
    ground truth is then derived as in the benchmark, and its runs judge each scored draw against
    its own seed. Returns (gt, scores, runs or None).
    """
    gt_raw = read_table(gt_path, "gt")
    scores_raw = read_table(scores_path, "scores")
    # a long-schema file (analyze.py export=long) serves as either table; its runs are each
    # seed's run at the best lr only, so there is no lr x seed grid to check
    gt_is_long = is_long(gt_raw)
    gt_raw, scores_raw = from_long(gt_raw, "gt"), from_long(scores_raw, "scores")
    runs = None
    if "acc" not in gt_raw.columns and {"lr", "seed", "test_acc"} <= set(gt_raw.columns):
        gt_raw, scores_raw = harmonize_shots(gt_raw, scores_raw, SHOTS_UNSPECIFIED)
        gt = check_runs(gt_raw, source=gt_path)
        check_accuracy_units(gt, "test_acc", source=gt_path)
        # a brought runs table is checked like the benchmark's: one recipe, full grids
        check_gt(ground_truth(gt), strict=True, source=gt_path, runs=None if gt_is_long else gt)
        runs = gt
    else:
        gt, _ = check_gt(gt_raw, strict=True, source=gt_path)
        check_accuracy_units(gt, "acc", source=gt_path)
    scores, _ = check_scores(scores_raw, strict=True, source=scores_path)
    # checked before a missing shots column is filled, so messages show only the user's columns
    gt, scores = harmonize_shots(gt, scores, SHOTS_UNSPECIFIED)
    if runs is not None:
        runs = gt
    gt = ground_truth(gt) if "test_acc" in gt.columns else normalize_ground_truth(gt)
    if "seconds" not in scores.columns:
        scores["seconds"] = float("nan")
    gt, scores, _ = reconcile(gt, scores, strict=True)
    check_baseline(gt, baseline, strict=True)
    return gt, scores, runs


def load_benchmark(
    out_dir: Path,
    selection_dir: Path,
    baseline: str | None,
    strict: bool,
    finetune_dir: Path | None = None,
):
    """The benchmark's own tables, checked leniently unless ``strict``.

    Mixed or incomplete ground-truth cells (:func:`core.results.check_cells`) raise in ``strict``
    mode and are noted otherwise; tables older than the newest result under ``finetune_dir``
    (default ``<out_dir>/finetune``), or with another number of runs than result files, are noted
    in either mode (:func:`analysis.tables.stale_table_notes`).

    Returns (gt, scores, runs or None, notes)."""
    notes = stale_table_notes(out_dir, finetune_dir or out_dir / "finetune")
    for note in notes:
        print(f"analyze: warning: {note}", file=sys.stderr)
    gt = load_ground_truth(out_dir)
    runs = load_runs(out_dir)
    gt, more = check_gt(gt, strict=strict, runs=runs)
    notes += more
    scores, more = check_scores(load_scores(selection_dir), strict=strict)
    notes += more
    gt, scores, more = reconcile(gt, scores, strict=strict)
    notes += more
    notes += check_baseline(gt, baseline, strict=strict)
    return gt, scores, runs, notes


def run_analysis(cfg: DictConfig) -> Path:
    """Run one analysis from a composed config; returns the path of report.md."""
    settings = typed(AnalysisConfig, _select(cfg, "analysis"))
    logger = typed(LoggerConfig, _select(cfg, "logger"))
    name = str(_select(cfg, "name") or "analysis")
    gt_path, scores_path = _abs(_select(cfg, "gt")), _abs(_select(cfg, "scores"))
    methods = settings.methods
    domain_baseline = settings.domain_baseline or None
    logger_type = logger.type
    export = check_export(_select(cfg, "export"))
    if logger_type not in LOGGER_TYPES:
        raise ValueError(f"unknown logger.type {logger_type!r}; valid: {', '.join(LOGGER_TYPES)}")

    reports_dir = _abs(_select(cfg, "paths.reports_dir"))
    if gt_path or scores_path:
        if not (gt_path and scores_path):
            given = "gt" if gt_path else "scores"
            raise InputTableError(
                f"bring-your-own mode needs both gt=PATH and scores=PATH; only {given}= was given"
            )
        baseline = _select(cfg, "baseline") or None
        report_dir = _abs(_select(cfg, "out")) or (reports_dir or Path("reports").resolve()) / name
        gt, scores, runs = load_byo(gt_path, scores_path, baseline)
        notes: list[str] = []
        inputs = {
            "mode": "results brought by the user",
            "gt": str(gt_path),
            "scores": str(scores_path),
        }
        zoo_dir, log_dir, types = None, report_dir, {}
    else:
        out_dir = _abs(_select(cfg, "paths.out_dir"))
        if out_dir is None:
            raise ValueError(
                "paths.out_dir is not set: give the benchmark's output folder, or gt=PATH scores=PATH"
            )
        selection_dir = _abs(_select(cfg, "paths.selection_dir")) or out_dir / "selection"
        zoo_dir = _abs(_select(cfg, "paths.zoo_dir")) or out_dir / "zoo"
        report_dir = (reports_dir or out_dir / "reports") / name
        baseline = settings.baseline or None
        finetune_dir = _abs(_select(cfg, "paths.finetune_dir")) or out_dir / "finetune"
        gt, scores, runs, notes = load_benchmark(
            out_dir, selection_dir, baseline, settings.strict, finetune_dir
        )
        inputs = {
            "mode": "benchmark outputs",
            "out_dir": str(out_dir),
            "scores": str(selection_dir),
        }
        log_dir, types = out_dir, expert_types(load_manifest(zoo_dir))
    if methods:
        known = sorted(scores["method"].unique())
        unknown = sorted(set(methods) - set(known))
        if unknown:
            raise ValueError(
                f"analysis.methods lists unknown methods {unknown}; scored methods: {known}"
            )
        scores = scores[scores["method"].isin(methods)]
    inputs["git revision"] = git_revision()

    analysis = compute_analysis(
        gt,
        scores,
        name=name,
        baseline=baseline,
        topk=settings.topk,
        n_boot=settings.bootstrap,
        seed=settings.seed,
        cost_ks=list(settings.cost_topk),
        expert_types=types,
        notes=notes,
        inputs=inputs,
        spread_points=settings.spread_points,
        runs=runs,
        domain_baseline=domain_baseline,
    )
    extra = []
    if runs is not None:
        section = integrity_section(classify_cells(runs))
        if section:
            extra.append(section)
    if zoo_dir is not None:
        try:
            section = source_tables_section(zoo_dir, report_dir)
        except (ValueError, OSError, KeyError) as e:
            analysis.notes.append(f"source-accuracy tables could not be built from {zoo_dir}: {e}")
            section = None
        if section:
            extra.append(section)
    for note in analysis.notes:
        print(f"note: {note}")
    files = write_report(analysis, report_dir, extra_sections=extra)
    if export:
        for label, path in write_export(analysis, runs, report_dir / "export", export).items():
            print(f"export {label}: {path}")

    if logger_type == "wandb":
        from analysis.wandb_log import log_analysis

        run_dir = log_analysis(
            analysis,
            files,
            logger_cfg=asdict(logger),
            out_dir=log_dir,
            config={
                "name": name,
                "baseline": baseline,
                "domain_baseline": domain_baseline,
                "topk": settings.topk,
                "bootstrap": settings.bootstrap,
                "seed": settings.seed,
                **inputs,
            },
        )
        if run_dir is not None:
            print(f"wandb run: {run_dir} (offline runs: wandb sync {run_dir})")
    return files["report"]


def analyze_main(cfg: DictConfig) -> None:
    """Entry point of ``analyze.py``: writes the report; bad input exits with status 2 and a message."""
    try:
        report = run_analysis(cfg)
    except (ValueError, FileNotFoundError) as e:
        print(f"analyze: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"report: {report}")
