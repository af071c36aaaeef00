"""Which device a fine-tuning run or an extraction uses (one device per job)."""

from __future__ import annotations

import torch

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


def resolve_device(accelerator: str = "auto") -> torch.device:
    """``auto``: the CUDA device when there is one, else the CPU; ``gpu``/``cuda``/``mps``/``cpu`` as asked."""
    if accelerator not in ACCELERATORS:
        raise ValueError(f"unknown accelerator {accelerator!r}; known: {', '.join(ACCELERATORS)}")
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ValueError(
                f"accelerator={accelerator!r} but no CUDA device is available; use cpu or auto"
            )
        return torch.device("cuda", torch.cuda.current_device())
    if accelerator == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError("accelerator='mps' but MPS is not available; use cpu or auto")
        return torch.device("mps")
    return torch.device("cpu")
