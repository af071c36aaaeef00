"""Which device and precision a fine-tuning run, an extraction or a training uses (one device per job)."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
PRECISIONS = ("auto", "32", "32-true", "bf16-mixed", "16-mixed")


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


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX), where bf16 autocast pays off.

    ``torch.backends.cpu.get_cpu_capability()`` reports only the vector ISA level (``AVX512``), not the
    bf16 extensions, so the flags come from /proc/cpuinfo; oneDNN must also accept bf16.
    """
    try:
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
    except (AttributeError, RuntimeError):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision a run uses: ``32-true``, ``bf16-mixed`` or ``16-mixed``.

    ``auto``: bf16 autocast on a CUDA device that supports it (fp16 with loss scaling otherwise), and on
    a CPU with native bf16; fp32 everywhere else.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    if precision == "32":
        return "32-true"
    if precision != "auto":
        if precision == "16-mixed" and device.type != "cuda":
            raise ValueError(
                f"precision='16-mixed' needs a CUDA device, not {device.type}; use bf16-mixed or 32-true"
            )
        return precision
    if device.type == "cuda":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16-mixed"
    return "32-true"


def use_channels_last(requested: bool, device: torch.device, precision: str) -> bool:
    """Whether to run in channels-last layout: asked for, and on CUDA or in CPU bf16 autocast.

    On CPU it pays off only with oneDNN's bf16 kernels (+15-20% for the mini models on AMX); in fp32 on
    an AVX2-only CPU (AMD Zen 2) torch 2.14's channels-last convolution backward crashes.
    """
    return requested and (
        device.type == "cuda" or (device.type == "cpu" and precision == "bf16-mixed")
    )


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """The autocast context of a resolved ``precision`` (disabled for ``32-true``)."""
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
