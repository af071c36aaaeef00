"""A wandb run of one fine-tuning process: a row per executed run, the table of them, the totals.

wandb is a view, never the record: the ``result.json`` files are the results. One run per
``finetune.py`` process (``job_type="finetune"``; with ``-m``, one per (target, shots) job), named
after the cells it covers, in the configured project and group, next to the zoo's training runs and
the analysis. Offline by default (``logger.mode``; ``WANDB_MODE`` takes precedence); offline runs
go under ``<out_dir>/wandb/`` and ``wandb sync <out_dir>/wandb/offline-run-*`` uploads them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from core.keys import format_lr, format_shots
from core.tracking import wandb_run

COLUMNS = (
    "target", "shots", "entry", "lr", "seed", "test_acc", "val_acc", "steps", "seconds", "diverged"
)  # fmt: skip


def run_name(runs: Sequence[Any]) -> str:
    """``finetune/<target>-<shots>`` for a single cell, else ``finetune/sweep``."""
    cells = {(r.target, format_shots(r.shots)) for r in runs}
    if len(cells) == 1:
        target, shots = next(iter(cells))
        return f"finetune/{target}-{shots}"
    return "finetune/sweep"


@contextmanager
def sweep_run(
    logger_cfg: Mapping[str, Any], runs: Sequence[Any], out_dir: str | Path, config: Mapping
) -> Iterator[Any]:
    """Yield ``on_result(run_key, result)`` logging each executed run to a wandb run (or None when
    the logger is not wandb). The wandb run opens with the first executed run (a rerun that finds
    everything finished leaves none); at exit the table of the logged runs and the totals are
    written and ``wandb.finish()`` is called, also when the sweep fails."""
    if (logger_cfg or {}).get("type") != "wandb":
        yield None
        return
    import wandb

    rows: list[list] = []
    opened: list[Any] = []
    # entered by hand at the first executed run: a rerun that finds everything done opens no run
    stack = ExitStack()

    def on_result(key: Any, result: Mapping[str, Any]) -> None:
        if not opened:
            run = wandb_run(
                logger_cfg, job_type="finetune", name=run_name(runs), out_dir=out_dir, config=config
            )
            opened.append(stack.enter_context(run))
        row = [
            key.target,
            format_shots(key.shots),
            key.entry,
            format_lr(key.lr),
            key.seed,
            result["test_acc"],
            result["val_acc"],
            result["steps"],
            result["seconds"],
            bool(result["diverged"]),
        ]
        rows.append(row)
        opened[0].log({"run/" + c: v for c, v in zip(COLUMNS, row) if c in ("test_acc", "seconds")})

    with stack:
        try:
            yield on_result
        finally:
            if opened:
                run = opened[0]
                run.log({"runs": wandb.Table(columns=list(COLUMNS), data=rows)})
                run.summary["planned"] = len(runs)
                run.summary["executed"] = len(rows)
                run.summary["seconds"] = float(sum(r[COLUMNS.index("seconds")] for r in rows))
