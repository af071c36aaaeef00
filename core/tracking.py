"""The wandb mode every stage uses: zoo training, the fine-tuning sweep and the analysis."""

from __future__ import annotations

import os

MODES = ("online", "offline", "disabled")


def resolve_mode(configured: str | None) -> str:
    """``WANDB_MODE`` if set, else the configured mode, else ``offline``; checked against MODES."""
    mode = os.environ.get("WANDB_MODE") or configured or "offline"
    mode = {"dryrun": "offline", "run": "online"}.get(mode, mode)
    if mode not in MODES:
        raise ValueError(f"invalid wandb mode {mode!r}; valid: {', '.join(MODES)}")
    return mode
