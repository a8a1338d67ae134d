"""The barrier anatomy (notebook 02, `eisbach anatomy`) alone and beside a CPU hog, per part.

    python benchmarks/bench_anatomy.py PROFILE [--threads N] [--hog] [--reps 1]

Each measurement runs `anatomy.barrier_anatomy(cfg)` in a fresh subprocess (its own thread pool)
and prints one JSON line: the torch intra-op threads the process starts with (`threads_start`),
the threads the anatomy's loops actually ran with (`threads_in_loop`, read inside the first
forward pass), wall and CPU seconds of each part and of the whole call, and the 1-minute load
average before and after. `--threads N` sets torch's thread count before the call (the old code
ran with torch's default, one thread per core); `--hog` runs `python -c "while 1: pass"` beside it
for the whole measurement (one extra busy process: a machine shared with one other job). The
profile's corpus, cache and base model must exist (`eisbach corpus`, `pretrain`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PARTS = ("entropy_vs_t", "weights_by_clip", "clip_flatness", "grad_cosines", "update_cosines")


def _one(profile: str, threads: int | None) -> dict:
    """Run the anatomy once in this process with every part timed (wall and process CPU)."""
    import torch

    from eisbach_lib import anatomy
    from eisbach_lib.config import load_profile

    if threads:
        torch.set_num_threads(threads)
    out: dict = {"threads_start": torch.get_num_threads(), "parts": {}}
    seen: list[int] = []
    forward = anatomy._forward

    def spy(*a, **k):
        if not seen:
            seen.append(torch.get_num_threads())
        return forward(*a, **k)

    anatomy._forward = spy
    for name in PARTS:
        fn = getattr(anatomy, name)

        def timed(*a, _fn=fn, _name=name, **k):
            w0, c0 = time.perf_counter(), time.process_time()
            try:
                return _fn(*a, **k)
            finally:
                part = out["parts"].setdefault(_name, {"wall_s": 0.0, "cpu_s": 0.0})
                part["wall_s"] += time.perf_counter() - w0
                part["cpu_s"] += time.process_time() - c0

        setattr(anatomy, name, timed)
    cfg = load_profile(profile)
    w0, c0 = time.perf_counter(), time.process_time()
    anatomy.barrier_anatomy(cfg)
    out["wall_s"], out["cpu_s"] = time.perf_counter() - w0, time.process_time() - c0
    out["threads_in_loop"] = seen[0] if seen else None
    return out


def measure(profile: str, threads: int | None, hog: bool) -> dict:
    """One measurement in a subprocess, with a hog process beside it when `hog`."""
    hog_proc = subprocess.Popen([sys.executable, "-c", "while 1: pass"]) if hog else None
    try:
        load0 = os.getloadavg()[0]
        cmd = [sys.executable, __file__, profile, "--one"] + (["--threads", str(threads)] if threads else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        res = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        if hog_proc is not None:
            hog_proc.terminate()
            hog_proc.wait()
    res.update({"hog": hog, "threads_arg": threads, "load1_before": round(load0, 2),
                "load1_after": round(os.getloadavg()[0], 2), "cores": os.cpu_count(),
                "when": time.strftime("%Y-%m-%d %H:%M:%S")})
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("profile")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads before the call")
    p.add_argument("--hog", action="store_true", help="a busy-loop process beside the anatomy")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # the anatomy's progress lines
            res = _one(a.profile, a.threads)
        print(json.dumps(res))
        return
    print(json.dumps(measure(a.profile, a.threads, a.hog)), flush=True)


if __name__ == "__main__":
    main()
