"""Levers that fit the cpu profile's design (docs/design.md §6) into an hour on 2 cores.

    python benchmarks/bench_levers.py prepare      # a small bench profile: corpus (240/96/48 clips) + base (200 steps)
    python benchmarks/bench_levers.py gen          # generation: sampling and decoding cost per clip, 1 thread
    python benchmarks/bench_levers.py parallel     # 1 process x 1 thread, 1 x 2 threads, 2 x 1 thread: train and generate
    python benchmarks/bench_levers.py gl           # Griffin-Lim iterations against metric stability
    python benchmarks/bench_levers.py adapters     # adapter movement along fine-tuning (output distance, loss)
    python benchmarks/bench_levers.py generate     # notebook 05's generate_grid end to end on the bench grid (2 workers)

Everything runs on the cpu profile's model shape (configs/cpu.yaml: embed 128, depth 4, patch 2)
and codec, on a small corpus rendered by `prepare` into /tmp/eisbach_levers (set EISBACH_LEVERS_DIR
to move it). Each section prints JSON lines; benchmarks/results/levers.md records them with the
projection of the cpu profile's time per notebook. The machine is shared: times are min and median
over repeats, and the comparisons are ratios within one run.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
ROOT = Path(os.environ.get("EISBACH_LEVERS_DIR", "/tmp/eisbach_levers"))
PROFILE = ROOT / "bench.yaml"


def _emit(**row) -> None:
    print(json.dumps(row), flush=True)


def _load() -> dict:
    from eisbach_lib.config import load_profile

    return load_profile(PROFILE)


def _data(cfg, split: str):
    from eisbach_lib.cache import load_cache
    from eisbach_lib.datasets import prepare_corpus

    return load_cache(prepare_corpus(cfg, progress=False)).split(split)


def prepare() -> None:
    """Write the bench profile (cpu.yaml with a small corpus, 200 pretraining steps, a 2-seed
    none/eisbach grid of 200 steps with checkpoints 50, 100, 200), render, encode, pretrain
    (200 steps: enough for the base to condition and for the adapters to have something to move;
    the speed measurements do not depend on the weights)."""
    import yaml

    from eisbach_lib.config import set_dotted

    cfg = yaml.safe_load((REPO / "configs" / "cpu.yaml").read_text())
    changes = {"name": "levers", "runs_dir": str(ROOT / "runs"), "figures_dir": str(ROOT / "figures"),
               "corpus.clips": {"base": 240, "finetune": 96, "reference": 48}, "pretrain.steps": 200,
               "finetune.steps": 200, "finetune.checkpoints": [50, 100, 200], "finetune.arms": ["none", "eisbach"],
               "finetune.seeds": [0, 1], "finetune.workers": 2}
    for key, value in changes.items():
        set_dotted(cfg, key, value)
    ROOT.mkdir(parents=True, exist_ok=True)
    PROFILE.write_text(yaml.safe_dump(cfg, sort_keys=False))
    from eisbach_lib.train import pretrain

    cfg = _load()
    t0 = time.perf_counter()
    from eisbach_lib.cache import load_cache
    from eisbach_lib.datasets import prepare_corpus

    data = load_cache(prepare_corpus(cfg))
    _emit(section="prepare", what="corpus", clips=len(data), seconds=time.perf_counter() - t0)
    t0 = time.perf_counter()
    pretrain(cfg, data)
    _emit(section="prepare", what="pretrain", steps=cfg.pretrain.steps, seconds=time.perf_counter() - t0)


def _times(fn, reps: int) -> dict:
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return {"min_s": min(ts), "median_s": statistics.median(ts), "all_s": [round(t, 3) for t in ts]}


def gen(reps: int = 3, threads: int = 1) -> None:
    """Per clip: `sample_latents` (8 ping-pong steps, CFG in one doubled batch) at batch 16/32/64,
    and `MelCodec.decode` at 8/16/24/32 Griffin-Lim iterations (batch 32), `threads` torch threads."""
    import torch

    from eisbach_lib.datasets import codec_for, text_encoder_for
    from eisbach_lib.generate import sample_latents
    from eisbach_lib.runs import base_model

    torch.set_num_threads(threads)
    cfg = _load()
    model, codec = base_model(cfg), codec_for(cfg)
    tok, mask = text_encoder_for(cfg).encode(["a slow drone with a rising swell"] * 64)
    n_frames = codec.frames(float(cfg.generate.seconds))
    for b in (16, 32, 64):
        noise = torch.randn(b, codec.n_mels, n_frames, generator=torch.Generator().manual_seed(0))
        sec = torch.full((b,), float(cfg.generate.seconds))
        t = _times(lambda: sample_latents(model, tok[:b], mask[:b], sec, noise, cfg.generate,
                                          torch.Generator().manual_seed(1)), reps)
        _emit(section="gen", what="sample", batch=b, threads=threads, per_clip_min_s=t["min_s"] / b,
              per_clip_median_s=t["median_s"] / b, **t)
    lat = sample_latents(model, tok[:32], mask[:32], torch.full((32,), float(cfg.generate.seconds)),
                         torch.randn(32, codec.n_mels, n_frames, generator=torch.Generator().manual_seed(0)),
                         cfg.generate, torch.Generator().manual_seed(1))
    for iters in (8, 16, 24, 32):
        t = _times(lambda: codec.decode(lat, n_iter=iters, generator=torch.Generator().manual_seed(2)), reps)
        _emit(section="gen", what="decode", iters=iters, batch=32, threads=threads, per_clip_min_s=t["min_s"] / 32,
              per_clip_median_s=t["median_s"] / 32, **t)


def _work(kind: str, threads: int, out: str) -> None:
    """One unit of work in this process (`parallel` runs it in subprocesses): 'train' = 60 DoRA
    steps of train_run (arm eisbach, batch 4) on the bench finetune split; 'gen' = 64 clips
    (sample_latents at batch 64 + decode at the profile's Griffin-Lim iterations)."""
    import torch

    torch.set_num_threads(threads)
    cfg = _load()
    t0, c0 = time.perf_counter(), time.process_time()
    if kind == "train":
        from eisbach_lib.train import train_run

        data = _data(cfg, "finetune")
        t0, c0 = time.perf_counter(), time.process_time()
        train_run(cfg, data, Path(out), arm="eisbach", seed=0, adapter="dora", steps=60, progress=False)
    else:
        from eisbach_lib.datasets import codec_for, text_encoder_for
        from eisbach_lib.generate import sample_latents
        from eisbach_lib.runs import base_model

        model, codec = base_model(cfg), codec_for(cfg)
        tok, mask = text_encoder_for(cfg).encode(["a slow drone with a rising swell"] * 64)
        n = codec.frames(float(cfg.generate.seconds))
        t0, c0 = time.perf_counter(), time.process_time()
        lat = sample_latents(model, tok, mask, torch.full((64,), float(cfg.generate.seconds)),
                             torch.randn(64, codec.n_mels, n, generator=torch.Generator().manual_seed(0)),
                             cfg.generate, torch.Generator().manual_seed(1))
        codec.decode(lat, generator=torch.Generator().manual_seed(2))
    print(json.dumps({"work_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}))


def _launch(kind: str, threads: int, copies: int) -> dict:
    """`copies` concurrent subprocesses of `_work`: each reports the wall and CPU time of its timed
    part; throughput = copies / the slowest wall. On a shared machine the wall carries the other
    agents' load; the CPU seconds per unit show whether two one-thread processes slow each other
    (memory bandwidth, caches) where cores are free: if not, 2 free cores give 2x."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as tmp:
        procs = [subprocess.Popen([sys.executable, __file__, "_work", kind, str(threads), f"{tmp}/run{i}"],
                                  env=env, stdout=subprocess.PIPE, text=True) for i in range(copies)]
        outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    wall = [o["work_s"] for o in outs]
    return {"work_s": wall, "cpu_s": [o["cpu_s"] for o in outs], "throughput_units_per_s": copies / max(wall)}


def parallel(reps: int = 2, kinds: tuple[str, ...] = ("train", "gen")) -> None:
    """Throughput of 1 process x 1 thread, 1 x 2 threads and 2 concurrent x 1 thread, interleaved."""
    for kind in kinds:
        for r in range(reps):
            for threads, copies in ((1, 1), (2, 1), (1, 2)):
                _emit(section="parallel", kind=kind, rep=r, threads=threads, copies=copies, load=os.getloadavg()[0],
                      **_launch(kind, threads, copies))


def gl() -> None:
    """Metric stability against Griffin-Lim iterations: the 48 reference clips and 48 generated
    clips (base model) decoded from the same latents with 8, 16, 24 and 32 iterations (same
    generator) and with 64 (the reference for 'converged'). Per metric: the mean |m_k − m_32| and
    the shift of the mean, both over the between-clip SD at 32; for the embedding (standardised on
    the 32-iteration reference clips): the mean ‖e_k − e_32‖ over the mean between-clip distance."""
    import numpy as np
    import torch

    from eisbach_lib import metrics
    from eisbach_lib.datasets import codec_for, text_encoder_for
    from eisbach_lib.generate import prompt_set, sample_latents
    from eisbach_lib.runs import base_model

    torch.set_num_threads(2)
    cfg = _load()
    codec = codec_for(cfg)
    sr, seconds = codec.sample_rate, float(cfg.generate.seconds)
    sets = {"reference": _data(cfg, "reference").latents[:48]}
    prompts = prompt_set(cfg)
    tok, mask = text_encoder_for(cfg).encode(list(prompts["caption"]))
    idx = torch.arange(48) % len(prompts)
    n = codec.frames(seconds)
    sets["generated"] = sample_latents(base_model(cfg), tok[idx], mask[idx], torch.full((48,), seconds),
                                       torch.randn(48, codec.n_mels, n, generator=torch.Generator().manual_seed(0)),
                                       cfg.generate, torch.Generator().manual_seed(1))
    scalars = ("motif_recurrence", "novelty_sections", "spectral_contrast", "temporal_flatness")
    for name, lat in sets.items():
        rows = {}
        for iters in (8, 16, 24, 32, 64):
            audio = codec.decode(lat, n_iter=iters, generator=torch.Generator().manual_seed(2)).numpy()
            rows[iters] = [metrics.clip_metrics(y, sr) for y in audio]
        ref = rows[32]
        emb32 = np.stack([r["embedding"] for r in ref])
        mean, std = metrics.fit_standardizer(emb32)
        z32 = metrics.standardize(emb32, mean, std)
        between = float(np.mean([np.linalg.norm(z32[i] - z32[j]) for i in range(len(z32)) for j in range(i)]))
        for iters in (8, 16, 24, 64):
            out = {}
            for m in scalars:
                a, b = np.array([r[m] for r in rows[iters]]), np.array([r[m] for r in ref])
                sd = float(np.std(b, ddof=1))
                out[m] = {"mean_abs_over_sd": float(np.mean(np.abs(a - b)) / sd), "shift_over_sd": float((a - b).mean() / sd)}
            zk = metrics.standardize(np.stack([r["embedding"] for r in rows[iters]]), mean, std)
            out["embedding"] = {"dist_over_between": float(np.mean(np.linalg.norm(zk - z32, axis=1)) / between)}
            _emit(section="gl", clips=name, iters=iters, against=32, **out)


def adapters() -> None:
    """Train (or reuse) the bench grid (none/eisbach x seeds 0, 1, 200 steps, 2 workers; wall time
    recorded) and measure how far the adapters move: anatomy's output distance D = ‖v_a − v_b‖/‖v_base‖
    on 16 reference clips at t = 0.5, at steps 50, 100, 200, for base↔none, none↔eisbach (same seed)
    and none s0↔none s1 (seed to seed); and the loss change (first vs last 20 steps)."""
    import torch

    from eisbach_lib.probes import _forward
    from eisbach_lib.runs import base_model, grid_items, load_run_model, read_log
    from eisbach_lib.train import run_grid

    torch.set_num_threads(1)
    cfg = _load()
    t0 = time.perf_counter()
    run_grid(cfg, _data(cfg, "finetune"), progress=False)
    _emit(section="adapters", what="grid_wall", runs=len(grid_items(cfg)), steps=cfg.finetune.steps,
          workers=cfg.finetune.workers, seconds=time.perf_counter() - t0, load=os.getloadavg()[0])
    ref = _data(cfg, "reference")
    idx = torch.arange(16)
    noise = torch.randn(ref.latents[idx].shape, generator=torch.Generator().manual_seed(0))
    t = torch.full((16,), 0.5)
    base = _forward(base_model(cfg), ref, idx, t, noise)[0]
    scale = base.pow(2).mean().sqrt().item()
    runs = {(it["arm"], it["seed"]): it["run_dir"] for it in grid_items(cfg)}
    for step in (50, 100, 200):
        out = {k: _forward(load_run_model(cfg, d, step=None if step == 200 else step), ref, idx, t, noise)[0]
               for k, d in runs.items()}
        dist = lambda a, b: (a - b).pow(2).mean().sqrt().item() / scale  # noqa: E731
        _emit(section="adapters", step=step,
              base_none=[dist(base, out[("none", s)]) for s in (0, 1)],
              none_eisbach_same_seed=[dist(out[("none", s)], out[("eisbach", s)]) for s in (0, 1)],
              none_seed_to_seed=dist(out[("none", 0)], out[("none", 1)]),
              eisbach_seed_to_seed=dist(out[("eisbach", 0)], out[("eisbach", 1)]))
    for (arm, seed), d in runs.items():
        log = read_log(d, "steps")
        _emit(section="adapters", arm=arm, seed=seed, loss_first20=float(log["loss_unweighted"].head(20).mean()),
              loss_last20=float(log["loss_unweighted"].tail(20).mean()),
              loss_by_50={int(k): float(v) for k, v in log.groupby((log["step"] - 1) // 50)["loss_unweighted"].mean().items()})


def generate(workers: int = 2) -> None:
    """notebook 05's call end to end on the bench grid (after `adapters`): `generate_grid` with
    cpu.yaml's generate section and Griffin-Lim iterations (set in memory; the bench cache is kept),
    from an empty samples folder. Wall time per clip, to check the per-clip projection of levers.md
    (model loading, WAV writing and the workers' start-up included)."""
    import dataclasses
    import shutil

    from eisbach_lib.config import load_profile, override
    from eisbach_lib.generate import generate_grid, generation_jobs

    cfg = _load()
    cpu = load_profile("cpu")
    cfg = override(cfg, {"generate": {**dataclasses.asdict(cpu.generate), "workers": workers},
                         "codec.griffin_lim_iters": cpu.codec.griffin_lim_iters})
    shutil.rmtree(Path(cfg.runs_dir) / "samples", ignore_errors=True)
    jobs = len(generation_jobs(cfg))
    t0 = time.perf_counter()
    m = generate_grid(cfg, progress=False)
    wall = time.perf_counter() - t0
    _emit(section="generate", workers=workers, jobs=jobs, clips=len(m), seconds=wall, s_per_clip=wall / len(m),
          griffin_lim_iters=cfg.codec.griffin_lim_iters, batch=cfg.generate.batch_size,
          load=os.getloadavg()[0])


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "gen"
    _emit(section="machine", uptime=os.popen("uptime").read().strip(), cpus=os.cpu_count())
    if what == "_work":
        _work(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif what == "parallel" and len(sys.argv) > 2:  # e.g. `parallel train 3`: one kind, 3 repeats
        parallel(reps=int(sys.argv[3]) if len(sys.argv) > 3 else 2, kinds=(sys.argv[2],))
    else:
        {"prepare": prepare, "gen": gen, "parallel": parallel, "gl": gl, "adapters": adapters, "generate": generate}[what]()
