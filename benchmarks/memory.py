"""Resident-memory probes shared by the benchmarks (Linux /proc, with a getrusage fallback)."""

from __future__ import annotations

import resource
from pathlib import Path


def status_kib(field_name: str) -> int:
    """A ``/proc/self/status`` field in KiB (``VmRSS``: now, ``VmHWM``: the high-water mark)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field_name} not in /proc/self/status")


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def maxrss_kib() -> int:
    """The process's peak RSS since it started (getrusage), in KiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
