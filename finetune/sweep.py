"""Plan and run the fine-tuning ground truth: targets x shots x entries x learning rates x seeds.

``finetune_main(cfg)`` is what ``finetune.py`` calls. Without ``-m`` it runs every cell the config
selects in one process; with ``-m`` Hydra's sweeper (``hydra.sweeper.params`` of configs/sweep/) makes
one job per (target, shots) cell. Either way a run whose result.json exists and is valid is skipped,
so a rerun, or a requeued SLURM job, does no finished work twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import astuple, dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from core.config import FinetuneSettings, SweepConfig, typed
from core.keys import expert_of, format_lr, format_shots, parse_shots
from core.progress import Progress
from core.results import list_result_files
from finetune.run import (
    FinetunePaths,
    expected_config_hash,
    finetune_run,
    load_result,
    result_path,
    target_fingerprint,
)
from finetune.wandb_log import sweep_run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunKey:
    """One fine-tuning run: the key of its folder and of its row in the result tables."""

    target: str
    shots: int | str
    entry: str
    lr: float
    seed: int

    def path(self, finetune_dir: str | Path) -> Path:
        return result_path(finetune_dir, self.target, self.shots, self.entry, self.lr, self.seed)

    def __str__(self) -> str:
        return (
            f"{self.target} shots={format_shots(self.shots)} {self.entry} "
            f"lr={format_lr(self.lr)} seed={self.seed}"
        )


@dataclass
class SweepSummary:
    """What a sweep did: runs planned, skipped (already finished), stale (finished from other
    weights, redone) and executed, and their cost."""

    planned: int = 0
    skipped: int = 0
    stale: int = 0  # finished runs redone: their entry's weights or target's data changed since
    executed: int = 0
    seconds: float = 0.0  # wall seconds of the executed runs (their result's `seconds`)
    results: list[dict] = field(default_factory=list)  # the executed runs' results, in order


def plan_runs(
    targets: Sequence[str],
    shots: Sequence[int | str],
    entries: Sequence[str],
    lrs: Sequence[float],
    seeds: Sequence[int],
    full_seeds: Sequence[int] | None = None,
) -> list[RunKey]:
    """Every run of the grid, grouped by (target, shots, entry) so each entry is loaded once per cell.

    ``seeds`` are used for few-shot cells, ``full_seeds`` (default: ``seeds``) for shots="full".
    Duplicates in any list are dropped (first occurrence kept).
    """
    for name, values in (
        ("targets", targets),
        ("shots", shots),
        ("entries", entries),
        ("lrs", lrs),
    ):
        if len(values) == 0:
            raise ValueError(f"empty {name}: nothing to fine-tune")
    lrs = _unique(float(format_lr(lr)) for lr in lrs)
    seeds = _unique(int(s) for s in seeds)
    full_seeds = seeds if full_seeds is None else _unique(int(s) for s in full_seeds)
    runs = []
    for target in _unique(targets):
        for k in _unique(parse_shots(s) for s in shots):
            cell_seeds = full_seeds if k == "full" else seeds
            if not cell_seeds:
                raise ValueError(
                    f"no seeds for shots={k}: set sweep.seeds / sweep.full_seeds or seed="
                )
            for entry in _unique(entries):
                for lr in lrs:
                    for seed in cell_seeds:
                        runs.append(RunKey(target, k, entry, lr, seed))
    return runs


def _unique(values: Iterable) -> list:
    return list(dict.fromkeys(values))


def _as_list(value: Any) -> list | None:
    """None stays None; a scalar becomes a one-element list; a list / ListConfig becomes a list."""
    if value is None:
        return None
    if isinstance(value, ListConfig | list | tuple):
        return list(value)
    if isinstance(value, str) and "," in value:
        return [v.strip() for v in value.split(",") if v.strip()]
    return [value]


def zoo_entries(cfg: DictConfig, zoo_dir: Path) -> list[str]:
    """The entries to fine-tune: ``cfg.entry`` if set (each must be in the store), else
    ``zoo.entries``, else every entry of ``zoo.experts`` in the store, else every stored entry.

    Entries or experts of the zoo config that are not in the store are reported and left out
    (:func:`zoo.store.zoo_entries`).
    """
    from zoo.store import zoo_entries as store_entries

    chosen = _as_list(cfg.entry)
    if chosen:
        return store_entries(zoo_dir, entries=[str(e) for e in chosen], strict=True)
    experts = [e if isinstance(e, str) else str(e["id"]) for e in (cfg.zoo.experts or [])]
    return store_entries(zoo_dir, experts, _as_list(cfg.zoo.entries), strict=False)


def plan_from_cfg(cfg: DictConfig, zoo_dir: Path) -> list[RunKey]:
    """The runs a composed ``finetune.py`` config asks for (see configs/finetune.yaml)."""
    sweep = typed(SweepConfig, cfg.sweep)
    target_node = cfg.get("target")
    if target_node is None:
        targets = list(sweep.targets)
    elif isinstance(target_node, str):
        targets = [target_node]
    else:
        targets = [str(target_node.name)]
    shots = _as_list(cfg.get("shots")) or list(sweep.shots)
    lrs = _as_list(cfg.optim.lr) or list(sweep.lrs)
    seed = _as_list(cfg.get("seed"))
    seeds = seed if seed is not None else list(sweep.seeds)
    full_seeds = seed if seed is not None else list(sweep.full_seeds or sweep.seeds)
    entries = zoo_entries(cfg, zoo_dir)
    return plan_runs(targets, shots, entries, lrs, seeds, full_seeds)


def finished_files(runs: Iterable[RunKey], finetune_dir: str | Path) -> set[Path]:
    """The result files present for the (target, shots) cells of ``runs``.

    Listed by :func:`core.results.list_result_files`, the listing ``finetune/collect.py`` scans,
    so a run counts as already done only when the collection will see its result (a result under
    a symlinked folder is both; one inside a symlink loop is neither).
    """
    cells = _unique((r.target, f"shots={format_shots(r.shots)}") for r in runs)
    return {p for cell in cells for p in list_result_files(finetune_dir, *cell)}


def stored_fingerprint(entry_id: str, zoo_dir: str | Path) -> str:
    """``zoo.store.entry_fingerprint`` of an entry of the store at ``zoo_dir`` (reads its card)."""
    from zoo.store import entry_fingerprint, load_card

    return entry_fingerprint(entry_id, load_card(expert_of(entry_id), zoo_dir))


def run_sweep(
    runs: Sequence[RunKey],
    settings: FinetuneSettings,
    paths: FinetunePaths,
    *,
    load_entry: Callable[[str, Path], Any] | None = None,
    fingerprint: Callable[[str, Path], str] | None = None,
    echo: Callable[[str], None] | None = None,
    on_result: Callable[[RunKey, dict], None] | None = None,
) -> SweepSummary:
    """Execute the runs of ``runs`` that have no valid result yet, one after another.

    A finished result counts only when it was made from the entry's current weights (its
    ``entry_weights`` equals ``fingerprint(entry, zoo_dir)``, default
    :func:`stored_fingerprint`) and the target's current data (its ``target_data`` equals
    :func:`finetune.run.target_fingerprint`); results of a since retrained expert or of since
    edited data are stale and redone. Each
    (target, shots, entry) group loads its entry once; every run copies the pristine weights.
    One progress line per executed run and a summary line go to ``echo`` (default: this module's
    logger at INFO level); ``on_result(run, result)`` is called after each executed run.
    """
    if load_entry is None:
        from zoo.store import load_entry
    fingerprint = fingerprint or stored_fingerprint
    say = echo or log.info
    t0 = time.perf_counter()
    summary = SweepSummary(planned=len(runs))
    weights = {e: fingerprint(e, paths.zoo_dir) for e in _unique(r.entry for r in runs)}
    data = {t: target_fingerprint(t, paths.data_dir) for t in _unique(r.target for r in runs)}
    todo = []
    other_weights = []
    other_data = []
    other_settings = []
    listed = finished_files(runs, paths.finetune_dir)
    for r in runs:
        path = r.path(paths.finetune_dir)
        done = load_result(path, *astuple(r)) if path in listed else None
        if done is None:
            todo.append(r)
        elif done.get("entry_weights") != weights[r.entry]:
            # made from other weights (a retrained expert), or before results recorded theirs
            todo.append(r)
            other_weights.append(r)
        elif done.get("target_data") != data[r.target]:
            # made from other data (an edited dataset), or before results recorded theirs
            todo.append(r)
            other_data.append(r)
        elif done["config_hash"] != expected_config_hash(
            r.target, r.shots, r.entry, r.lr, r.seed, settings, weights[r.entry], data[r.target]
        ):
            other_settings.append(r)
    summary.skipped = len(runs) - len(todo)
    summary.stale = len(other_weights) + len(other_data)
    if summary.skipped:
        say(f"{summary.skipped}/{len(runs)} runs already finished in {paths.finetune_dir}: skipped")
    if other_weights:
        say(
            f"{len(other_weights)} finished runs are stale (made from other weights of their "
            f"entry: the expert was retrained, e.g. {other_weights[0]}): redone"
        )
    if other_data:
        say(
            f"{len(other_data)} finished runs are stale (made from other data of their target: "
            f"the dataset changed, e.g. {other_data[0]}): redone"
        )
    stale = other_settings
    if stale:
        # never deleted silently: the folder key has no recipe in it, so a changed recipe is the
        # user's call (delete the folders to redo them)
        log.warning(
            "%d finished runs were made with other settings (config hash differs), e.g. %s; "
            "they are kept: delete their folders to redo them",
            len(stale),
            stale[0].path(paths.finetune_dir).parent,
        )
    i = 0
    progress = Progress(len(todo), "fine-tuning", unit="runs")
    for (_target, _shots, entry_id), group in groupby(
        todo, key=lambda r: (r.target, r.shots, r.entry)
    ):
        entry = load_entry(entry_id, paths.zoo_dir)
        for run in group:
            i += 1
            result = finetune_run(
                run.entry, run.target, run.shots, run.lr, run.seed, settings, paths, entry=entry
            )
            summary.executed += 1
            summary.seconds += result["seconds"]
            summary.results.append(result)
            if on_result is not None:
                on_result(run, result)
            progress.update()
            val = "" if result["val_acc"] is None else f" val {result['val_acc']:.1f}%"
            elapsed = time.perf_counter() - t0
            say(
                f"[{i}/{len(todo)}] {run}: test {result['test_acc']:.2f}%{val}"
                f"{' (diverged)' if result['diverged'] else ''}, {result['seconds']:.1f} s"
                f" ({result['steps']} steps), elapsed {elapsed:.0f} s,"
                f" eta {elapsed / i * (len(todo) - i):.0f} s"
            )
        del entry
    say(
        f"fine-tuning: {summary.planned} runs planned, {summary.skipped} already done, "
        f"{summary.executed} run in {summary.seconds:.1f} s (wall {time.perf_counter() - t0:.1f} s)"
    )
    return summary


def finetune_main(cfg: DictConfig) -> SweepSummary:
    """Entry point of ``finetune.py``: one run, one (target, shots) cell, or the whole sweep.

    ``target`` unset: every target of ``sweep.targets``; ``shots`` unset: every value of
    ``sweep.shots``; ``entry`` / ``optim.lr`` / ``seed`` set: only those (a value or a list).
    """
    paths = FinetunePaths.from_cfg(cfg.paths)
    settings = typed(FinetuneSettings, cfg.finetune)
    runs = plan_from_cfg(cfg, paths.zoo_dir)
    log.info(
        "fine-tuning %d runs: targets %s, shots %s, %d entries, lrs %s, seeds %s -> %s",
        len(runs),
        ",".join(_unique(r.target for r in runs)),
        ",".join(_unique(format_shots(r.shots) for r in runs)),
        len(_unique(r.entry for r in runs)),
        ",".join(_unique(format_lr(r.lr) for r in runs)),
        ",".join(str(s) for s in _unique(r.seed for r in runs)),
        paths.finetune_dir,
    )
    out_dir = Path(str(cfg.paths.out_dir)).expanduser().resolve()
    logger_cfg = OmegaConf.to_container(cfg.logger, resolve=True)
    config = {
        k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("finetune", "sweep") if k in cfg
    }
    with sweep_run(logger_cfg, runs, out_dir, config) as on_result:
        summary = run_sweep(runs, settings, paths, on_result=on_result)
    if not _in_multirun():
        # one process saw the whole request: refresh the tables now. In a multirun the
        # CollectAfterMultirun callback (configs/finetune.yaml) collects at the end of each job.
        from finetune.collect import collect

        collect(out_dir, paths.finetune_dir)
    return summary


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
