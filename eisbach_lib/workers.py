"""Worker processes for the CPU's second core: the grid and the generation grid share one pattern.

`run_workers` starts one spawned process per share of the work (a fresh interpreter: no forked
OpenMP state; OMP/MKL thread counts set to 1 while they start, so each worker is one thread),
shows the parent a progress line counted from the files the workers leave behind (done.json,
manifest.csv), stops them all if the parent is interrupted (e.g. a notebook cell is stopped;
finished work is kept and resumes), and returns the workers that failed.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from typing import Callable, Sequence

from .progress import Progress

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
POLL_S = 2.0


def run_workers(target: Callable, shares: Sequence[tuple], names: Sequence[str], n_done: Callable[[], int],
                total: int, desc: str, progress: bool = True) -> list[str]:
    """Run `target(*share)` in one spawned process per share; return "name (exit code k)" of every
    worker that failed (empty when all succeeded). `n_done()` counts the finished items for the
    progress line (`total` of them)."""
    ctx = mp.get_context("spawn")
    saved = {k: os.environ.get(k) for k in THREAD_VARS}
    os.environ.update({k: "1" for k in THREAD_VARS})
    try:
        procs = [ctx.Process(target=target, args=share, name=name) for share, name in zip(shares, names)]
        for p in procs:
            p.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    bar = Progress(total=total, desc=desc, disable=not progress)
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(POLL_S)
            bar.update(n_done() - bar.n)
    except BaseException:  # an interrupted parent stops its workers too
        for p in procs:
            p.terminate()
        raise
    bar.update(n_done() - bar.n)
    bar.close()
    return [f"{p.name} (exit code {p.exitcode})" for p in procs if p.exitcode != 0]
