"""Worker processes for the CPU's second core, and the one-thread rule for CPU work in this process.

`run_workers` starts one spawned process per share of the work (a fresh interpreter: no forked
OpenMP state; OMP/MKL thread counts set to 1 while they start, so each worker is one thread),
shows the parent a progress line counted from the files the workers leave behind (done.json,
manifest.csv), stops them all if the parent is interrupted (e.g. a notebook cell is stopped;
finished work is kept and resumes), and returns the workers that failed.

`one_thread()` applies the same rule to work done in the calling process (the barrier anatomy and
the training dynamics of notebooks 02 and 04): torch's default is one intra-op thread per core, and
on a shared machine two OpenMP threads wait on each other at the end of every small op whenever
one of them is not scheduled, so a loop of small forward/backward passes runs many times slower
beside any other busy process, while alone it gains little from the second thread
(benchmarks/results/anatomy.md).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

from threadpoolctl import threadpool_limits

from .progress import Progress

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
POLL_S = 2.0


@contextmanager
def one_thread(n: int = 1) -> Iterator[None]:
    """Run the block with `n` torch intra-op threads and `n` threads in every BLAS/OpenMP pool
    threadpoolctl finds (numpy and scipy in the metrics), restoring both afterwards, so a notebook's
    later cells keep torch's default. See the module docstring for why one thread."""
    import torch  # heavy: torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(before)


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
