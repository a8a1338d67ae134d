"""Throughput of the whole metric suite (eisbach_lib.metrics) on 48 six-second clips.

    python benchmarks/bench_metrics.py [--clips 48] [--sr 22050] [--out benchmarks/results/metrics.md]

The clips are real tunes from the music21 corpus (Ryan's Mammoth Collection), each rendered for
6 s with pretty_midi + FluidSynth (the soundfont in the pretty_midi wheel) on one of eight General
MIDI instruments, at a tempo between 0.2 and 0.4 s per quarter note. Rendering is not timed.

Timed, in one run, on the same clips (each mode = all per-clip metrics + the set metrics on the
48 embeddings: standardise, Vendi, Fréchet distance of the two halves):
  serial      `clip_metrics` per clip in this process (BLAS held to 1 thread);
  parallel    `metrics_table(n_jobs=2)`, cold: the first call, which starts the loky workers (each
              imports librosa and JIT-compiles its numba stencils, ~2–4 s);
  parallel    `metrics_table(n_jobs=2)`, warm: later calls; loky keeps the workers.
Serial and warm are repeated (--repeats, alternating) because the machine is shared; the median
and the range are reported. Results are printed and written as a markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eisbach_lib import metrics as M  # noqa: E402

TUNES = ["HasteToTheWeddingJig", "SoldiersJoy", "GarryOwenJig", "GirlILeftBehindMe", "RakesOfKildareJig",
         "AmericanHornpipe", "AdmiralsHornpipe", "BannocksOBarleyMealJig"]
PROGRAMS = [0, 8, 13, 24, 40, 45, 71, 73]  # piano, celesta, marimba, guitar, violin, pizzicato, clarinet, flute


def render_clips(n: int, sr: int, seconds: float = 6.0) -> list[np.ndarray]:
    import pretty_midi
    from music21 import corpus

    sf2 = os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2")
    tunes = []
    for name in TUNES:
        score = corpus.parse(f"ryansMammoth/{name}.abc").expandRepeats()
        tunes.append([(p.midi, float(nt.offset), float(nt.quarterLength)) for nt in score.flatten().notes for p in nt.pitches])
    rng = np.random.default_rng(0)
    clips = []
    for i in range(n):
        notes = tunes[i % len(tunes)]
        spq = rng.uniform(0.2, 0.4)
        pm = pretty_midi.PrettyMIDI()
        inst = pretty_midi.Instrument(program=PROGRAMS[(i // len(tunes)) % len(PROGRAMS)])
        inst.notes = [pretty_midi.Note(velocity=90, pitch=p, start=o * spq, end=(o + q) * spq)
                      for p, o, q in notes if o * spq < seconds]
        pm.instruments.append(inst)
        y = pm.fluidsynth(fs=sr, synthesizer=sf2).astype(np.float32)
        y = np.pad(y, (0, max(0, int(seconds * sr) - len(y))))[: int(seconds * sr)]
        clips.append(0.5 * y)
    return clips


def set_metrics(X: np.ndarray) -> dict:
    mean, std = M.fit_standardizer(X)
    Z = M.standardize(X, mean, std)
    half = len(Z) // 2
    return {"vendi": M.vendi_score(Z, bandwidth=M.fit_vendi_bandwidth(Z)),
            "fd_halves": M.frechet_distance(Z[:half], Z[half:]), "kid_halves": M.kid(Z[:half], Z[half:])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=48)
    ap.add_argument("--sr", type=int, default=22050)
    ap.add_argument("--repeats", type=int, default=3, help="timed repetitions of the serial and warm modes")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "metrics.md"))
    args = ap.parse_args()

    t = time.perf_counter()
    clips = render_clips(args.clips, args.sr)
    print(f"rendered {len(clips)} clips of 6 s at {args.sr} Hz in {time.perf_counter() - t:.1f} s (not timed below)")
    M.clip_metrics(clips[0], args.sr)  # imports, numba caches, filter banks: warm this process once

    from threadpoolctl import threadpool_limits

    def serial() -> tuple[list[dict], dict]:
        with threadpool_limits(limits=1):
            per_clip = [M.clip_metrics(y, args.sr) for y in clips]
        return per_clip, set_metrics(np.stack([m["embedding"] for m in per_clip]))

    def parallel():
        table = M.metrics_table(clips, args.sr, n_jobs=2)
        return table, set_metrics(table[[f"emb_{i}" for i in range(M.EMBEDDING_DIM)]].to_numpy())

    cpu_s = []

    def timed(fn, cpu: bool = False):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        if cpu:
            cpu_s.append(time.process_time() - c)  # this process's CPU time: insensitive to other load
        return time.perf_counter() - t, out

    # the machine is shared: cold once (it can only happen once), then serial and warm alternated
    cold_s, _ = timed(parallel)
    serial_s, warm_s = [], []
    for _ in range(args.repeats):
        sec, (per_clip, sm) = timed(serial, cpu=True)
        serial_s.append(sec)
        sec, (table, sm_par) = timed(parallel)
        warm_s.append(sec)
    results = [
        ("serial, per clip (`clip_metrics` loop in this process)", serial_s),
        ("parallel `metrics_table(n_jobs=2)`, cold: includes starting 2 loky workers", [cold_s]),
        ("parallel `metrics_table(n_jobs=2)`, warm: workers already running", warm_s),
    ]

    serial_scalars = np.array([[m[c] for c in M.METRIC_COLUMNS] for m in per_clip])
    assert np.allclose(serial_scalars, table[list(M.METRIC_COLUMNS)].to_numpy()), "parallel != serial"
    assert np.isclose(sm["vendi"], sm_par["vendi"])

    load = os.getloadavg()
    lines = [
        "# Metric suite throughput",
        "",
        f"Command: `python benchmarks/bench_metrics.py --clips {args.clips} --sr {args.sr} --repeats {args.repeats}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, Python "
        f"{platform.python_version()}, numpy {np.__version__}, librosa {M.librosa.__version__}; "
        f"load average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1/5/15 min; the machine is shared).",
        "",
        f"Workload: {args.clips} clips × 6 s of FluidSynth-rendered folk tunes at {args.sr} Hz; per clip "
        "`motif_recurrence`, `novelty_sections`, `spectral_contrast`, `temporal_flatness` and the "
        f"{M.EMBEDDING_DIM}-d `clip_embedding` from one shared STFT, then the set metrics (standardise, "
        "`vendi_score` with the median-distance bandwidth, `frechet_distance`, `kid`).",
        "",
        f"| mode | seconds (median of {args.repeats}; cold: 1) | clips/s (median) | clips/s (range) |",
        "|---|---:|---:|---:|",
    ]
    for label, secs in results:
        med = float(np.median(secs))
        lines.append(f"| {label} | {med:.2f} | {args.clips / med:.1f} | "
                     f"{args.clips / max(secs):.1f}–{args.clips / min(secs):.1f} |")
    cpu_per_clip = float(np.median(cpu_s)) / args.clips
    lines += ["", f"CPU time of the serial suite: {1000 * cpu_per_clip:.1f} ms per clip (median of {args.repeats}), "
                  f"i.e. {1 / cpu_per_clip:.0f} clips/s per free core; the wall-clock numbers above also carry "
                  "whatever else the shared machine was running.",
              "", "Reading: the goal is ≥ 10 clips/s for the whole suite on 2 cores. One core alone does the "
                  "suite at the CPU rate above; `metrics_table(n_jobs=2)` splits the clips over two loky "
                  "processes, which pays off once the workers run (warm) and the cores are free. The cold "
                  "row is a one-off per Python session: each worker imports librosa, whose numba stencils "
                  "are compiled at import (≈ 2–3 s of CPU per worker, uncacheable); on a busy machine that "
                  "start-up alone dominates a 48-clip batch, so use n_jobs=1 for small batches.",
              "", f"Set metrics on these clips: Vendi {sm['vendi']:.2f} (of {args.clips}), "
                  f"FD between the two halves {sm['fd_halves']:.1f}, KID {sm['kid_halves']:.3f}.", ""]
    text = "\n".join(lines)
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
