"""Training speed and memory of the embedded DiT on this machine's CPU, and the barrier's share of a step.

    python benchmarks/bench_train.py --rounds 3           # everything, ~25 minutes on 2 cores
    python benchmarks/bench_train.py --only profiles      # one section: profiles | levers | sa3
    python benchmarks/bench_train.py --one '{"kind": "step", ...}'   # one measurement (used internally)

Every measurement runs in its own subprocess (so that its peak RSS and its thread count are its
own) and prints one JSON line. Times are medians and minima over repeated steps after warm-up; on a
shared machine the minimum is the better estimate of the uncontended speed.

Measurements:
  step      forward + backward + AdamW of EisbachDiT on random tensors (pretraining: all parameters;
            dora: a rank-16 DoRA adapter), and barrier_weights on the output-shaped tensor
  loop      eisbach_lib.train.train_run on a synthetic PreEncoded (the whole step: batch gathering,
            timesteps, noise, exact OT, condition dropout, barrier, logging), per-step time from its log
  barrier   barrier_weights alone on a [B, C, T] tensor (e.g. Stable Audio 3 medium's latent shape)
  sa3block  one Stable Audio 3 medium DiT block (the diffusers defaults: embed 1536, 24 heads, io 256,
            64 memory tokens) with DoRA, forward + backward at B=4, T frames; x depth = a step estimate
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


# --------------------------------------------------------------------------------------------
# single measurements (run in a subprocess)


def _times(fn, warmup: int, reps: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _stats(ts: list[float]) -> dict:
    return {"median_s": statistics.median(ts), "min_s": min(ts), "n": len(ts)}


def _barrier_time(shape: tuple[int, int, int], arm: str = "eisbach", reps: int = 200) -> dict:
    import torch

    from eisbach_lib.barrier import barrier_weights

    v = torch.randn(*shape)
    mask = torch.ones(shape[0], shape[2], dtype=torch.bool)
    return _stats(_times(lambda: barrier_weights(v, arm, mask=mask), 10, reps))


def measure_step(spec: dict) -> dict:
    """forward + backward + AdamW on random inputs; spec: model (dict), batch, frames, adapter, threads, reps."""
    import torch

    from eisbach_lib.barrier import barrier_weights, per_sample_loss, weighted_loss
    from eisbach_lib.config import Model
    from eisbach_lib.models import add_adapter, build_base, count_parameters

    torch.set_num_threads(int(spec.get("threads", 2)))
    b, frames, channels, text_dim, n_tok = spec["batch"], spec["frames"], spec.get("channels", 64), 384, spec.get("tokens", 64)
    model = build_base(Model(**spec["model"]), channels, text_dim, seed=0)
    if spec.get("adapter"):
        add_adapter(model, spec["adapter"], 16, 16, seed=0)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    x, target = torch.randn(b, channels, frames, generator=g), torch.randn(b, channels, frames, generator=g)
    t, tok = torch.rand(b, generator=g), torch.randn(b, n_tok, text_dim, generator=g)
    tmask = torch.zeros(b, n_tok, dtype=torch.bool)
    tmask[:, :24] = True
    seconds = torch.full((b,), frames / 21.5)

    def step():
        v = model(x, t, tok, tmask, seconds)
        w = barrier_weights(v, "eisbach")
        loss = weighted_loss(w, per_sample_loss(v, target))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    ts = _times(step, 3, int(spec.get("reps", 15)))
    barrier = _barrier_time((b, channels, frames))
    return {**spec, **count_parameters(model), **_stats(ts), "samples_per_s": b / min(ts),
            "barrier_median_s": barrier["median_s"], "barrier_min_s": barrier["min_s"],
            "barrier_share_pct": 100 * barrier["min_s"] / min(ts)}


def measure_loop(spec: dict) -> dict:
    """train_run on synthetic data; spec: model, batch, frames, adapter (None = pretraining), steps, threads."""
    import pandas as pd
    import torch

    from eisbach_lib.cache import PreEncoded
    from eisbach_lib.runs import read_log
    from eisbach_lib.config import load_profile
    from eisbach_lib.train import pretrain, train_run

    torch.set_num_threads(int(spec.get("threads", 2)))
    n, frames = 64, spec["frames"]
    g = torch.Generator().manual_seed(0)
    tmask = torch.zeros(n, 64, dtype=torch.bool)
    tmask[:, :24] = True

    def data(split: str) -> PreEncoded:
        man = pd.DataFrame({"id": [f"{split}{i}" for i in range(n)], "split": split, "caption": "c",
                            "texture": ["sustained", "plucked"] * (n // 2)})
        return PreEncoded(torch.randn(n, 64, frames, generator=g), torch.ones(n, frames, dtype=torch.bool),
                          torch.randn(n, 64, 384, generator=g), tmask, torch.full((n,), frames / 21.5), man)

    with tempfile.TemporaryDirectory() as root:
        cfg = load_profile("smoke", {
            "runs_dir": root, "figures_dir": root, "device": "cpu", "model": spec["model"],
            "pretrain": {"steps": spec["steps"] if not spec.get("adapter") else 2, "batch_size": spec["batch"],
                         "lr": 1e-3, "cond_dropout": 0.1, "checkpoints": []},
            "finetune": {"steps": spec["steps"], "batch_size": spec["batch"], "lr": 5e-5, "arms": ["none", "eisbach"],
                         "seeds": [0], "checkpoints": []}})
        t0 = time.perf_counter()
        run = pretrain(cfg, data("base"), progress=False)
        if spec.get("adapter"):
            t0 = time.perf_counter()
            run = train_run(cfg, data("finetune"), Path(root) / "ft", arm=spec.get("arm", "eisbach"), seed=0,
                            adapter=spec["adapter"], progress=False)
        wall = time.perf_counter() - t0
        steps = read_log(run, "steps")
    per_step = (spec["batch"] / steps["samples_per_s"]).tolist()[2:]
    return {**spec, **_stats(per_step), "run_wall_s": wall, "run_steps": int(len(steps))}


def measure_barrier(spec: dict) -> dict:
    import torch

    torch.set_num_threads(int(spec.get("threads", 2)))
    return {**spec, **_barrier_time(tuple(spec["shape"]), spec.get("arm", "eisbach"), int(spec.get("reps", 50)))}


def measure_sa3block(spec: dict) -> dict:
    """One SA3-medium-shaped DiT block with DoRA: forward + backward + AdamW on the adapter."""
    import torch
    from diffusers import StableAudio3DiTModel
    from diffusers.pipelines.stable_audio_3.modeling_stable_audio_3 import StableAudio3DurationEmbedder

    from eisbach_lib.models import EisbachDiT, add_adapter, count_parameters

    torch.set_num_threads(int(spec.get("threads", 2)))
    full = StableAudio3DiTModel.from_config({})  # the diffusers defaults, depth 24 (parameter count only)
    full_params = sum(p.numel() for p in full.parameters())
    depth = int(full.config.depth)
    del full
    model = EisbachDiT(StableAudio3DiTModel(depth=1), StableAudio3DurationEmbedder(output_dim=768))
    add_adapter(model, "dora", 16, 16, seed=0)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=5e-5, betas=(0.9, 0.95), weight_decay=0.0)
    b, frames = spec["batch"], spec["frames"]
    x = torch.randn(b, 256, frames)
    tok, tmask = torch.randn(b, 128, 768), torch.ones(b, 128, dtype=torch.bool)

    def step():
        v = model(x, torch.rand(b), tok, tmask, torch.full((b,), 60.0))
        loss = (v - x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    ts = _times(step, 1, int(spec.get("reps", 3)))
    barrier = _barrier_time((b, 256, frames), reps=20)
    est = min(ts) * depth
    return {**spec, "block_min_s": min(ts), "block_median_s": statistics.median(ts), "depth": depth,
            "sa3_params": full_params, "one_block_dora": count_parameters(model), "est_step_s": est,
            "barrier_min_s": barrier["min_s"], "barrier_share_pct": 100 * barrier["min_s"] / est}


KINDS = {"step": measure_step, "loop": measure_loop, "barrier": measure_barrier, "sa3block": measure_sa3block}


def run_one(spec: dict) -> dict:
    """Run one measurement in a fresh subprocess; add its peak RSS."""
    env = {**os.environ, "OMP_NUM_THREADS": str(spec.get("threads", 2)), "PYTHONWARNINGS": "ignore"}
    out = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], capture_output=True, text=True, env=env,
                         cwd=REPO)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode or not lines:
        raise RuntimeError(f"measurement {spec} failed:\n{out.stderr[-3000:]}")
    res = json.loads(lines[-1])
    print(json.dumps(res), flush=True)
    return res


# --------------------------------------------------------------------------------------------
# sections

# the cpu profile's model before this benchmark changed it (patch 1 -> 2: 10.8 tokens/s, SA3's rate)
BEFORE = {"cpu": {"patch_size": 1}}


def profile_model(name: str) -> tuple[dict, int]:
    """A profile's model section and its latent frames per clip (MelCodec: 1 + seconds*sr//hop)."""
    from eisbach_lib.config import load_profile

    cfg = load_profile(name)
    keys = ("embed_dim", "depth", "num_heads", "ff_mult", "num_memory_tokens", "patch_size")
    frames = 1 + int(float(cfg.corpus.seconds) * cfg.corpus.sample_rate) // int(cfg.codec.hop_length)
    return {k: getattr(cfg.model, k) for k in keys}, frames


def specs_profiles(reps: int) -> list[dict]:
    out = []
    models = {name: profile_model(name) for name in ("smoke", "cpu")}
    for name, over in BEFORE.items():
        model, frames = models[name]
        models[f"{name} (before: patch 1)"] = ({**model, **over}, frames)
    for name, (model, frames) in models.items():
        for kind, batch, adapter in (("step", 16, None), ("step", 4, "dora"), ("loop", 16, None), ("loop", 4, "dora")):
            out.append({"kind": kind, "section": "profiles", "profile": name, "model": model, "frames": frames,
                        "batch": batch, "adapter": adapter, "threads": 2, "reps": reps, "steps": 25})
    return out


def specs_levers(reps: int) -> list[dict]:
    model, frames = profile_model("cpu")
    out = []
    for threads in (1, 2):
        for patch in (1, 2):
            for batch, adapter in ((16, None), (4, "dora")):
                out.append({"kind": "step", "section": "levers", "model": {**model, "patch_size": patch},
                            "frames": frames, "batch": batch, "adapter": adapter, "threads": threads, "reps": reps})
    for batch in (8, 32):
        out.append({"kind": "step", "section": "levers", "model": {**model, "patch_size": 2}, "frames": frames,
                    "batch": batch, "adapter": None, "threads": 2, "reps": reps})
    return out


def specs_sa3() -> list[dict]:
    out = [{"kind": "barrier", "section": "sa3", "shape": [4, 256, f], "threads": 2, "reps": 50} for f in (646, 1292)]
    out.append({"kind": "sa3block", "section": "sa3", "batch": 4, "frames": 646, "threads": 2, "reps": 3})
    return out


def aggregate(rounds: list[list[dict]]) -> list[dict]:
    """Per spec over rounds: best (lowest) min and median, worst median, and the load averages seen."""
    out = []
    for same in zip(*rounds):
        first = dict(same[0])
        for key in ("min_s", "median_s", "block_min_s", "est_step_s", "barrier_min_s", "peak_rss_mb"):
            if key in first:
                first[key] = min(r[key] for r in same)
        if "median_s" in first:
            first["worst_median_s"] = max(r["median_s"] for r in same)
        if "barrier_share_pct" in first and "min_s" in first:
            first["barrier_share_pct"] = 100 * first["barrier_min_s"] / first["min_s"]
        if "samples_per_s" in first:
            first["samples_per_s"] = first["batch"] / first["min_s"]
        first["load_avg"] = [r.get("load_avg") for r in same]
        first["rounds"] = len(same)
        out.append(first)
    return out


def _model_name(r: dict) -> str:
    m = r["model"]
    return f"embed {m['embed_dim']}, depth {m['depth']}, patch {m['patch_size']}"


def to_markdown(meta: dict, results: list[dict]) -> str:
    """The results as the tables of benchmarks/results/train_cpu.md (times: best of the rounds)."""
    out = ["# Training speed on CPU and the barrier's share of a step", "",
           f"Command: `{meta['command']}`", "",
           f"Machine: {meta['machine']}, {meta['cpus']} CPU cores, Python {meta['python']}, torch {meta.get('torch')}; "
           f"wall time of the benchmark {meta['wall_s'] / 60:.1f} min. Times in ms are the minimum over the timed steps "
           "(median in brackets); `step` = forward + backward + AdamW on random tensors with `barrier_weights` "
           "inside, `loop` = `train_run` end to end (batch gathering, timesteps, OT, dropout, barrier, per-sample log).", ""]
    prof = [r for r in results if r.get("section") == "profiles"]
    if prof:
        out += ["## Profiles", "", "| profile | model | kind | batch | adapter | trainable params | ms / step | samples/s "
                "| barrier ms | barrier share | peak RSS MB |", "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|"]
        for r in prof:
            barrier = (f"{1e3 * r['barrier_min_s']:.3f} | {r['barrier_share_pct']:.3f}%" if "barrier_min_s" in r else " | ")
            out.append(f"| {r['profile']} | {_model_name(r)} | {r['kind']} | {r['batch']} | {r['adapter'] or 'full'} | "
                       f"{r.get('trainable', '')} | {1e3 * r['min_s']:.1f} ({1e3 * r['median_s']:.1f}) | "
                       f"{r['batch'] / r['min_s']:.1f} | {barrier} | {r['peak_rss_mb']:.0f} |")
        out.append("")
    lev = [r for r in results if r.get("section") == "levers"]
    if lev:
        out += ["## Levers (cpu profile's model, `step`)", "", "| threads | patch | batch | adapter | ms / step | samples/s "
                "| peak RSS MB |", "|---:|---:|---:|---|---:|---:|---:|"]
        for r in lev:
            out.append(f"| {r['threads']} | {r['model']['patch_size']} | {r['batch']} | {r['adapter'] or 'full'} | "
                       f"{1e3 * r['min_s']:.1f} ({1e3 * r['median_s']:.1f}) | {r['batch'] / r['min_s']:.1f} | "
                       f"{r['peak_rss_mb']:.0f} |")
        out.append("")
    sa3 = [r for r in results if r.get("section") == "sa3"]
    if sa3:
        out += ["## Stable Audio 3 medium's shape (CPU)", ""]
        for r in sa3:
            if r["kind"] == "barrier":
                out.append(f"- `barrier_weights` on [{', '.join(map(str, r['shape']))}]: {1e3 * r['min_s']:.2f} ms "
                           f"(median {1e3 * r['median_s']:.2f} ms)")
            else:
                out.append(f"- one SA3-medium DiT block with DoRA, B={r['batch']}, {r['frames']} latent frames: "
                           f"{r['block_min_s']:.2f} s forward + backward + AdamW; x depth {r['depth']} = "
                           f"{r['est_step_s']:.1f} s per step (estimate; {r['sa3_params'] / 1e9:.2f} B parameters); "
                           f"barrier {1e3 * r['barrier_min_s']:.2f} ms = **{r['barrier_share_pct']:.4f}%** of the step")
        out.append("")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--one", default=None, help="run one measurement (JSON spec) and print its result")
    p.add_argument("--only", default=None, choices=["profiles", "levers", "sa3"])
    p.add_argument("--reps", type=int, default=15, help="timed steps per measurement")
    p.add_argument("--rounds", type=int, default=1, help="repeat every measurement, interleaved; keep the best")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "train_cpu.json"))
    args = p.parse_args()
    if args.one:
        spec = json.loads(args.one)
        load = os.getloadavg()[0]
        res = KINDS[spec["kind"]](spec)
        res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        res["load_avg"] = round(max(load, os.getloadavg()[0]), 2)
        print(json.dumps(res))
        return
    specs, once = [], []
    if args.only in (None, "profiles"):
        specs += specs_profiles(args.reps)
    if args.only in (None, "levers"):
        specs += specs_levers(args.reps)
    if args.only in (None, "sa3"):
        once = specs_sa3()  # minutes each: measured in one round only
    t0 = time.time()
    rounds = [[run_one(spec) for spec in specs] for _ in range(args.rounds)]
    single = [run_one(spec) for spec in once]
    meta = {"command": " ".join(sys.argv), "machine": platform.platform(), "processor": platform.processor(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "wall_s": time.time() - t0}
    try:
        import torch

        meta["torch"] = torch.__version__
    except ImportError:
        pass
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    results = aggregate(rounds) + single
    Path(args.out).write_text(json.dumps({"meta": meta, "results": results, "raw": rounds}, indent=1))
    Path(args.out).with_suffix(".md").write_text(to_markdown(meta, results))
    print(f"wrote {args.out} and {Path(args.out).with_suffix('.md')}")


if __name__ == "__main__":
    main()
