"""What a generated clip costs before and after the log-mel path, on one thread (a generation worker).

For one finished adapter run of a profile, in one process and in alternating repeats:
  sample   sampling the primary set (ping-pong, batch as the profile) with the DoRA adapter as trained
           (peft recomputes the column norms in every forward call) and folded into the weights
           (`models.merge_adapter`), with the largest |difference| of the latents;
  decode   the Griffin-Lim decode of those clips (`MelCodec.decode`), which generation no longer does;
  metrics  the outcome metrics per clip on the audio path (decoded WAV → `metrics.clip_metrics`) and on
           the log-mel path (`codec.latents_to_magnitude` → `metrics.magnitude_metrics`).

    python benchmarks/bench_generation.py --runs runs/cpu [--run dora_eisbach_s0] [--repeats 2]
                                          [--out benchmarks/results/generation.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from eisbach_lib import metrics as M  # noqa: E402
from eisbach_lib.config import load_profile, override  # noqa: E402
from eisbach_lib.datasets import codec_for, text_encoder_for  # noqa: E402
from eisbach_lib.generate import NOISE_SEED, generate_run  # noqa: E402
from eisbach_lib.models import merge_adapter  # noqa: E402
from eisbach_lib.runs import load_run_model  # noqa: E402


def sample_seconds(cfg, run: Path, merged: bool, out: Path, codec, text_encoder) -> tuple[float, np.ndarray]:
    """Seconds to sample the primary set of `run` (final weights) into `out`, and the latents."""
    model = load_run_model(cfg, run)
    model = merge_adapter(model) if merged else model
    cfg = override(cfg, {"runs_dir": str(out)})
    t0 = time.perf_counter()
    m = generate_run(cfg, None, name=f"bench_{'merged' if merged else 'adapter'}", meta={"arm": "bench"},
                     model=model, codec=codec, text_encoder=text_encoder, progress=False, sets=("primary",))
    seconds = time.perf_counter() - t0
    return seconds, np.load(out / "samples" / f"bench_{'merged' if merged else 'adapter'}" / "step_final" / "latents.npy")[m["latent_row"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default="runs/cpu", help="a runs folder with prompts.csv, corpus and finished adapters")
    ap.add_argument("--profile", default="configs/cpu.yaml")
    ap.add_argument("--run", default="dora_eisbach_s0")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "generation.md"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    cfg = load_profile(args.profile, {"runs_dir": str(Path(args.runs).resolve())})
    run = Path(args.runs) / "adapters" / args.run
    codec, text_encoder = codec_for(cfg), text_encoder_for(cfg)
    times: dict[str, list[float]] = {"adapter": [], "merged": []}
    lat = {}
    for r in range(args.repeats):
        for merged in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "corpus").symlink_to(Path(cfg.runs_dir) / "corpus")
                (Path(tmp) / "prompts.csv").symlink_to(Path(cfg.runs_dir) / "prompts.csv")
                s, lat["merged" if merged else "adapter"] = sample_seconds(cfg, run, merged, Path(tmp), codec, text_encoder)
            times["merged" if merged else "adapter"].append(s)
            print(f"repeat {r}: {'merged' if merged else 'adapter'} {s:.2f} s", flush=True)
    n = len(lat["merged"])
    diff = float(np.abs(lat["merged"] - lat["adapter"]).max())
    z = torch.from_numpy(lat["merged"])
    t0 = time.perf_counter()
    audio = [codec.decode(z[k:k + 16], generator=torch.Generator().manual_seed(NOISE_SEED + k)).numpy()
             for k in range(0, n, 16)]
    decode_s = (time.perf_counter() - t0) / n
    audio = np.concatenate(audio)
    t0 = time.perf_counter()
    for y in audio:
        M.clip_metrics(y, codec.sample_rate)
    audio_metrics_s = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for k in range(0, n, 16):
        for mag in codec.latents_to_magnitude(z[k:k + 16]).numpy():
            M.magnitude_metrics(mag, codec.hop_length, float(cfg.generate.seconds))
    mel_metrics_s = (time.perf_counter() - t0) / n
    a, m = min(times["adapter"]) / n, min(times["merged"]) / n
    old, new = a + decode_s + audio_metrics_s, m + mel_metrics_s
    lines = [
        "# Generation and metrics per clip: before and after the log-mel path",
        "",
        f"Command: `benchmarks/bench_generation.py --runs {args.runs} --run {args.run} --repeats {args.repeats}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, torch "
        f"{torch.__version__}; one torch thread (as a generation worker); {n} clips of the primary set "
        f"({cfg.generate.sampler}, {cfg.generate.steps} steps, batch {cfg.generate.batch_size}, "
        f"{cfg.generate.seconds} s); sampling times are the minimum of {args.repeats} alternating repeats; "
        f"wall time of the benchmark {(time.perf_counter() - started) / 60:.1f} min.",
        "",
        "| step | before (s / clip) | after (s / clip) |",
        "|---|---:|---:|",
        f"| sample (DoRA as trained → folded into the weights) | {a:.4f} | {m:.4f} |",
        f"| Griffin-Lim decode ({codec.griffin_lim_iters} iterations) | {decode_s:.4f} | 0 (listened clips only) |",
        f"| outcome metrics (audio path → log-mel path) | {audio_metrics_s:.4f} | {mel_metrics_s:.4f} |",
        f"| **total** | **{old:.4f}** | **{new:.4f}** ({old / new:.2f}× faster) |",
        "",
        f"Folding the adapter in changes the generated latents by at most {diff:.2g} (float32 rounding; the "
        f"latents' std is {float(lat['adapter'].std()):.2f}). Sampling alone: {a / m:.2f}× faster merged. "
        f"All sampling repeats (s for {n} clips): adapter {', '.join(f'{t:.2f}' for t in times['adapter'])}; "
        f"merged {', '.join(f'{t:.2f}' for t in times['merged'])}.",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
