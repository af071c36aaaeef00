"""The wandb mode and run every stage uses: zoo training, the fine-tuning sweep and the analysis."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MODES = ("online", "offline", "disabled")


def resolve_mode(configured: str | None) -> str:
    """``WANDB_MODE`` if set, else the configured mode, else ``offline``; checked against MODES."""
    mode = os.environ.get("WANDB_MODE") or configured or "offline"
    mode = {"dryrun": "offline", "run": "online"}.get(mode, mode)
    if mode not in MODES:
        raise ValueError(f"invalid wandb mode {mode!r}; valid: {', '.join(MODES)}")
    return mode


@contextmanager
def wandb_run(
    logger_cfg: Mapping[str, Any],
    *,
    job_type: str,
    name: str,
    out_dir: str | Path,
    config: Mapping[str, Any] | None = None,
) -> Iterator[Any]:
    """Open one wandb run of a stage, yield it, and always call ``wandb.finish()`` on exit.

    ``logger_cfg`` is the ``logger`` node (project, entity, group, mode); the mode goes through
    :func:`resolve_mode` (``WANDB_MODE`` wins). Runs are written under ``out_dir`` (offline runs:
    ``wandb sync <out_dir>/wandb/offline-run-*`` uploads them). System metrics and console capture
    are off: every stage logs its own numbers, and they add seconds to a short job.
    """
    import wandb

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=logger_cfg.get("project") or "zoobench",
        entity=logger_cfg.get("entity") or None,
        group=logger_cfg.get("group") or None,
        job_type=job_type,
        name=name,
        dir=str(out_dir),
        mode=resolve_mode(logger_cfg.get("mode")),
        config=dict(config or {}),
        settings=wandb.Settings(console="off", x_disable_stats=True),
    )
    try:
        yield run
    finally:
        wandb.finish()
