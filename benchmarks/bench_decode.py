"""Batched torch Griffin-Lim (MelCodec.decode) vs librosa.feature.inverse.mel_to_audio.

Both invert the same power mel spectrograms of N rendered chamber clips with the same number of
Griffin-Lim iterations; reported: seconds per clip for each, their ratio, and the round-trip
log-mel error |encode(decode(z)) − z| in dB (all bins, and the bins within 60 dB of each clip's
peak). One run measures everything.

    python benchmarks/bench_decode.py [--clips 16] [--seconds 6] [--iters 32] [--threads 2] [--repeats 3]
                                      [--corpus DIR] [--out benchmarks/results/decode.md]

Without --corpus the clips are rendered into a temporary folder with build_chamber_corpus.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import soundfile as sf
import torch

from eisbach_lib.codec import MelCodec, latents_to_db
from eisbach_lib.corpus import build_chamber_corpus


def load_clips(corpus: Path | None, n: int, seconds: float, sr: int) -> np.ndarray:
    """n clips [n, S] from a rendered corpus folder (its reference split first), else render them."""
    if corpus is None:
        corpus = Path(tempfile.mkdtemp(prefix="bench_decode_"))
        build_chamber_corpus(corpus, {"reference": n}, seconds, sr, seed=0, workers=2, progress=False)
    m = pd.read_csv(corpus / "manifest.csv", keep_default_na=False)
    m = pd.concat([m[m["split"] == "reference"], m[m["split"] != "reference"]]).head(n)
    s = int(round(seconds * sr))
    return np.stack([sf.read(corpus / p, dtype="float32")[0][:s] for p in m["path"]])


def log_mel_error(codec: MelCodec, z: torch.Tensor, audio: torch.Tensor) -> tuple[float, float]:
    """Mean |log-mel difference| in dB: over all bins, and over bins within 60 dB of each clip's peak."""
    z2 = codec.encode(audio)[..., : z.shape[-1]]
    db = latents_to_db(z)
    diff = (latents_to_db(z2) - db).abs()
    loud = db > db.amax(dim=(1, 2), keepdim=True) - 60.0
    return float(diff.mean()), float(diff[loud].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--iters", type=int, default=32)
    ap.add_argument("--sr", type=int, default=22050)
    ap.add_argument("--threads", type=int, nargs="+", default=[2, 1],
                    help="torch intra-op thread counts to time (the library itself never sets this)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each decoder; the fastest is reported")
    ap.add_argument("--corpus", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    load_before = os.getloadavg()[0]

    codec = MelCodec(sample_rate=args.sr, griffin_lim_iters=args.iters)
    y = load_clips(args.corpus, args.clips, args.seconds, args.sr)
    z = codec.encode(y)
    mel = codec.mel_power(y).numpy()

    times: dict[int, list[float]] = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        codec.decode(z[:1], n_iter=2)  # warm-up
        times[threads] = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            ours = codec.decode(z, generator=torch.Generator().manual_seed(0))
            times[threads].append((time.perf_counter() - t0) / len(y))
    err_ours = log_mel_error(codec, z, ours)

    pinv_only = MelCodec(sample_rate=args.sr, griffin_lim_iters=args.iters, mel_inverse_iters=0)
    err_pinv = log_mel_error(codec, z, pinv_only.decode(z, generator=torch.Generator().manual_seed(0)))

    lib_times = []
    for _ in range(args.repeats):
        np.random.seed(0)  # librosa.griffinlim draws its random initial phase from numpy's global state
        t0 = time.perf_counter()
        lib = [librosa.feature.inverse.mel_to_audio(m, sr=args.sr, n_fft=codec.n_fft, hop_length=codec.hop_length,
                                                    n_iter=args.iters, length=ours.shape[-1])
               for m in mel]
        lib_times.append((time.perf_counter() - t0) / len(y))
    t_lib = min(lib_times)
    err_lib = log_mel_error(codec, z, torch.from_numpy(np.stack(lib)).float())

    load_after = os.getloadavg()[0]
    cmd = (f"python benchmarks/bench_decode.py --clips {args.clips} --seconds {args.seconds:g} --iters {args.iters} "
           f"--threads {' '.join(map(str, args.threads))} --repeats {args.repeats}" + (f" --corpus {args.corpus}" if args.corpus else ""))
    lines = [
        "# Decode benchmark: batched torch Griffin-Lim vs librosa mel_to_audio",
        "",
        f"Command: `{cmd}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, librosa "
        f"{librosa.__version__}; a shared machine (1-min load average {load_before:.1f} before, {load_after:.1f} after the run), so times are indicative.",
        "",
        f"{len(y)} chamber clips of {args.seconds:g} s at {args.sr} Hz, 64 mels, n_fft {codec.n_fft}, hop "
        f"{codec.hop_length}, {args.iters} Griffin-Lim iterations (momentum 0.99) for both.",
        "",
        "| decoder | s / clip | log-mel error, all bins (dB) | within 60 dB of peak (dB) |",
        "|---|---|---|---|",
        *[f"| MelCodec.decode (batched torch, {k} thread{'s' if k > 1 else ''}; pinv + {codec.mel_inverse_iters} IS "
          f"updates) | {min(v):.3f} | {err_ours[0]:.2f} | {err_ours[1]:.2f} |" for k, v in times.items()],
        f"| same, pinv + clamp only (mel_inverse_iters=0) | - | {err_pinv[0]:.2f} | {err_pinv[1]:.2f} |",
        f"| librosa.feature.inverse.mel_to_audio (NNLS + librosa.griffinlim) | {t_lib:.3f} | "
        f"{err_lib[0]:.2f} | {err_lib[1]:.2f} |",
        "",
        "Speed-up per clip (goal >= 10x): " + ", ".join(
            f"**{t_lib / min(v):.1f}x** with {k} torch thread{'s' if k > 1 else ''}" for k, v in times.items()) + ".",
        "",
        f"Times are the fastest of {args.repeats} runs; all runs, s / clip: " + "; ".join(
            f"torch {k} thread{'s' if k > 1 else ''}: " + ", ".join(f"{t:.3f}" for t in v) for k, v in times.items())
        + "; librosa: " + ", ".join(f"{t:.3f}" for t in lib_times) + ". On a loaded machine two torch threads "
        "can be slower than one (the OpenMP threads wait for each other at every small op).",
        "",
        "Error: mean |dB(encode(decode(z))) − dB(z)|, i.e. the log-mel difference in dB between the clip and "
        "its reconstruction, re-encoded with the same codec.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
