"""Plain-text progress for the long loops: a line now and then with step/total, rate and time left.

Why not tqdm: inside a Jupyter kernel `tqdm.auto` draws an ipywidget, which an executed notebook
saved by papermill (or a static HTML page of it) shows only as a placeholder, and tqdm's terminal
bar redraws itself with carriage returns, which a saved stream output keeps as one long smear.
A few whole lines read the same in a terminal, in papermill's streamed output during
`eisbach reproduce`, and in the executed copy:

    encode corpus: 42/84 (50%) | 3.1 it/s | elapsed 0:13 | left ~0:13

When a line is printed (`Progress._due`): never in the first `first_s` seconds; then at the first
step after them (an early rate), whenever the fraction done enters a new tenth (at least
`min_gap_s` after the last line),
at least every `heartbeat_s` seconds while it runs, and once at the end if it printed before or
ran at least `first_s` (a loop of a second or two stays silent; one of 13 minutes prints about 36).

Time left = (total − n) / rate with rate = (n − initial) / elapsed: the mean rate since the loop
started (steps resumed from a checkpoint are not counted as done in this session's time).
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Iterable, Iterator, TextIO


def format_seconds(s: float) -> str:
    """H:MM:SS above an hour, else M:SS (rounded to whole seconds)."""
    s = int(round(max(0.0, s)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class Progress:
    """A tqdm-like counter that prints whole lines (see the module docstring for when).

    Accepts tqdm's common arguments (iterable, total, desc, initial, unit, disable, leave) so a
    loop written for tqdm runs unchanged; `leave` is accepted and ignored (lines are never erased).
    """

    def __init__(self, iterable: Iterable | None = None, total: int | None = None, desc: str = "",
                 initial: int = 0, unit: str = "it", disable: bool = False, leave: bool = True,
                 stream: TextIO | None = None, first_s: float = 5.0, min_gap_s: float = 1.0,
                 heartbeat_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n = self.initial = int(initial)
        self.disable = disable
        self.stream = stream
        self.first_s, self.min_gap_s, self.heartbeat_s = first_s, min_gap_s, heartbeat_s
        self.clock = clock
        self.t0 = self.last_t = clock()
        self.last_tenth = self._tenth()
        self.lines = 0
        self.postfix = ""
        self.closed = False

    # -- tqdm's interface ---------------------------------------------------------------------
    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("Progress without an iterable: call update() instead")
        try:
            for x in self.iterable:
                yield x
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        """Count n more steps and print a line when one is due."""
        self.n += n
        if not self.disable and self._due(self.clock()):
            self._print()

    def set_postfix(self, **values: Any) -> None:
        """Extra `key=value` fields shown at the end of the next line (e.g. the current loss)."""
        self.postfix = " ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        """Print the final line (once) if a line was printed before or the loop ran at least
        `first_s`: a loop of a second or two stays silent."""
        if self.closed:
            return
        self.closed = True
        if not self.disable and (self.lines or (self.n > self.initial and self.clock() - self.t0 >= self.first_s)):
            self._print(final=True)

    # -- the rule and the line ----------------------------------------------------------------
    def _tenth(self) -> int:
        return int(10 * self.n / self.total) if self.total else 0

    def _due(self, now: float) -> bool:
        """See the module docstring: first line, a new tenth, or the heartbeat."""
        since_last = now - self.last_t
        if now - self.t0 < self.first_s or (self.total and self.n >= self.total):
            return False  # a short loop stays silent; the last step's line is close()'s
        if self.lines == 0:
            return True
        if self._tenth() > self.last_tenth and since_last >= self.min_gap_s:
            return True
        return since_last >= self.heartbeat_s

    def rate(self, now: float | None = None) -> float:
        """Steps per second in this session: (n − initial) / elapsed (0 before the first step)."""
        elapsed = (self.clock() if now is None else now) - self.t0
        return (self.n - self.initial) / elapsed if elapsed > 0 else 0.0

    def line(self, now: float | None = None) -> str:
        """The text of one progress line at time `now`."""
        now = self.clock() if now is None else now
        elapsed, rate = now - self.t0, self.rate(now)
        parts = [f"{self.desc}: " if self.desc else ""]
        if self.total:
            parts[0] += f"{self.n}/{self.total} ({100 * self.n / self.total:.0f}%)"
        else:
            parts[0] += f"{self.n}"
        parts.append(f"{rate:.3g} {self.unit}/s" if rate >= 1 or rate == 0 else f"{1 / rate:.3g} s/{self.unit}")
        parts.append(f"elapsed {format_seconds(elapsed)}")
        if self.total and rate > 0 and self.n < self.total:
            parts.append(f"left ~{format_seconds((self.total - self.n) / rate)}")
        if self.postfix:
            parts.append(self.postfix)
        return " | ".join(parts)

    def _print(self, final: bool = False) -> None:
        now = self.clock()
        stream = self.stream or sys.stdout  # looked up late: a kernel swaps sys.stdout per cell
        print(self.line(now) + (" done" if final and self.total and self.n >= self.total else ""),
              file=stream, flush=True)
        self.lines += 1
        self.last_t, self.last_tenth = now, self._tenth()


__all__ = ["Progress", "format_seconds"]
