"""A progress line with an ETA for long loops, printed at most every ``every`` seconds.

>>> progress = Progress(total=468, label="fine-tuning", unit="runs")
>>> for run in runs:
...     do(run)
...     progress.update()        # prints "fine-tuning: 12/468 runs, elapsed 0m30s, eta 18m59s"

Lines are flushed at once, so they reach a log file (stdout not a terminal) as they are printed. The
remaining time is the elapsed time per unit done times the units left: a linear estimate, right for
loops of similar items (fine-tuning runs, training steps, scored entries).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def format_seconds(seconds: float) -> str:
    """``1h02m03s``, ``2m03s`` or ``3s`` (rounded down to whole seconds)."""
    if seconds < 0:
        raise ValueError(f"seconds must be >= 0, got {seconds}")
    s = int(seconds)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m{s:02d}s"
    if m:
        return f"{m}m{s:02d}s"
    return f"{s}s"


class Progress:
    """Counts units done out of ``total`` and prints ``<label>: done/total unit, elapsed, eta``.

    Args:
        total: units to do (>= 0).
        label: what is progressing, first on the line.
        every: seconds between two lines at least (> 0); default 30.
        unit: the word after the counts ("runs", "steps").
        stream: where lines go (default: ``sys.stdout`` at the time of printing).
        clock: seconds from a monotonic clock (default ``time.monotonic``; a fake in tests).
        done: units already done when counting starts (a resumed loop).

    ``update(n)`` adds ``n`` done units and prints when ``every`` seconds have passed since the last
    line (the first line comes ``every`` seconds after the start); ``update`` reaching ``total`` always
    prints, once. ``line()`` returns the text without printing. The ETA counts only units done in this
    process (those given as ``done`` cost nothing here).
    """

    def __init__(
        self,
        total: int,
        label: str = "progress",
        *,
        every: float = 30.0,
        unit: str = "",
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        done: int = 0,
    ) -> None:
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise ValueError(f"total must be an integer >= 0, got {total!r}")
        if not every > 0:
            raise ValueError(f"every must be > 0 seconds, got {every!r}")
        if isinstance(done, bool) or not isinstance(done, int) or not 0 <= done <= total:
            raise ValueError(f"done must be an integer in [0, total={total}], got {done!r}")
        self.total = total
        self.label = label
        self.every = float(every)
        self.unit = unit
        self._stream = stream
        self._clock = clock
        self.start = clock()
        self._last = self.start
        self.done = done
        self._done_at_start = done
        self._finished = False

    def elapsed(self) -> float:
        return self._clock() - self.start

    def remaining(self) -> float | None:
        """Estimated seconds left, None before a unit was done in this process."""
        new = self.done - self._done_at_start
        if new <= 0:
            return None
        return self.elapsed() / new * (self.total - self.done)

    def line(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        left = self.remaining()
        eta = "?" if left is None else format_seconds(left)
        return (
            f"{self.label}: {self.done}/{self.total}{unit}, "
            f"elapsed {format_seconds(self.elapsed())}, eta {eta}"
        )

    def update(self, n: int = 1) -> bool:
        """Add ``n`` (>= 0) units done; print a line when due. Returns whether a line was printed."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an integer >= 0, got {n!r}")
        self.done = min(self.total, self.done + n)
        now = self._clock()
        finished = self.done >= self.total and not self._finished
        if finished or now - self._last >= self.every:
            self._finished = self._finished or finished
            self._last = now
            stream = self._stream or sys.stdout
            print(self.line(), file=stream, flush=True)
            return True
        return False
