"""A wandb dashboard of one analysis: the metrics as a Table, the figures as Images, summary values.

wandb is a view, never the record: the report folder's CSV files are the results. One run per
analysis, ``job_type="analysis"``, in the configured project and group, so it sits next to the
sweep's fine-tuning runs of the same group.

Offline by default: ``logger.mode`` defaults to ``offline`` and the ``WANDB_MODE`` environment
variable, when set, takes precedence. Offline runs are written under ``<out_dir>/wandb/``; upload
them later from a machine with network access with::

    wandb sync <out_dir>/wandb/offline-run-*

(``wandb sync --sync-all`` inside ``<out_dir>`` does the same for every unsynced run.)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from analysis.metrics import RANDOM_EXPECTED
from core.tracking import resolve_mode, wandb_run


def summary_values(summary) -> dict[str, float]:
    """``{"<shots>/<method>/<metric>": mean}`` for every finite mean of the summary table."""
    rows = summary.dropna(subset=["mean"])
    return {
        f"shots={s}/{m}/{metric}": float(v)
        for s, m, metric, v in zip(rows["shots"], rows["method"], rows["metric"], rows["mean"])
    }


def log_analysis(
    analysis,
    files: Mapping[str, Path],
    *,
    logger_cfg: Mapping[str, Any],
    out_dir: str | Path,
    config: Mapping[str, Any] | None = None,
) -> Path | None:
    """Log one analysis (an :class:`analysis.compute.Analysis`) and the written ``files`` to wandb.

    ``logger_cfg``: the ``logger`` node (project, entity, group, mode). Returns the run's local
    folder (None when disabled). ``wandb.finish()`` is always called, also when logging fails.
    """
    import wandb

    name = f"analysis-{analysis.name}"
    with wandb_run(
        logger_cfg, job_type="analysis", name=name, out_dir=out_dir, config=config
    ) as run:
        payload: dict[str, Any] = {
            "metrics": wandb.Table(dataframe=analysis.metrics.astype({"value": "float64"})),
            "summary": wandb.Table(dataframe=analysis.summary),
        }
        if analysis.has_cost:
            payload["cost_summary"] = wandb.Table(dataframe=analysis.cost_summary)
        if not analysis.domain_selection.empty:
            payload["domain_selection"] = wandb.Table(dataframe=analysis.domain_selection)
        for key, path in files.items():
            if key.startswith("figure:"):
                payload[key.replace(":", "/")] = wandb.Image(str(path))
        run.log(payload)
        run.summary.update(summary_values(analysis.summary))
        run.summary["methods"] = sorted(
            m for m in analysis.merged["method"].unique() if m != RANDOM_EXPECTED
        )
        run.summary["report"] = str(files.get("report", ""))
        disabled = resolve_mode(logger_cfg.get("mode")) == "disabled"
        return None if disabled else Path(run.dir).parent
