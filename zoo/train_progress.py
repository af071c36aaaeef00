"""A Lightning callback printing an expert's training progress (steps done, elapsed, ETA) at most
every ``every`` seconds, also when stdout is a log file rather than a terminal."""

from __future__ import annotations

from typing import Any

import lightning as L

from core.progress import Progress


class StepProgress(L.Callback):
    """``train <label>: <step>/<total> steps, elapsed .., eta ..`` every ``every`` seconds (rank 0).

    The total is the trainer's ``estimated_stepping_batches`` (epochs x batches, or ``max_steps``);
    a resumed training counts from its checkpoint's step.
    """

    def __init__(self, label: str, every: float = 30.0) -> None:
        self.label = label
        self.every = every
        self._progress: Progress | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            total = int(trainer.estimated_stepping_batches)
            done = min(int(trainer.global_step), total)
            self._progress = Progress(
                total, f"train {self.label}", every=self.every, unit="steps", done=done
            )

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if self._progress is not None:
            self._progress.update(max(0, int(trainer.global_step) - self._progress.done))
