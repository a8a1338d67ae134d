"""The generation grid: a fixed prompt set, several samples per prompt, the same initial noise for
every arm and seed, ping-pong (or Euler) sampling with CFG, decoded to WAV with a manifest.

Layout: <runs_dir>/prompts.csv (written once, shared by all runs) and
<runs_dir>/samples/<run>/step_<k>/p<prompt>_s<sample>.wav + manifest.csv (a finished folder is
skipped). Noise for (prompt i, sample j) comes from its own generator seeded by (i, j) only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch
from .progress import Progress

from .config import REPO, checkpoint_arms, heldout_prompts
from .config import workers as config_workers
from .datasets import codec_for, read_manifest, text_encoder_for
from .files import atomic_write
from .layout import Layout, is_finished, read_done
from .sampling import rf_schedule, sample_euler, sample_pingpong

CARD_PROMPTS = REPO / "data" / "card_prompts.csv"
NOISE_SEED = 1234  # base seed of the fixed sampling noise, the same for every arm and seed
HELDOUT_SPLIT = "reference"                    # evaluation captions come from here (never trained on)
HELDOUT_EXCLUDED_SPLITS = ("base", "finetune")  # the training splits the prompts must be disjoint from


def prompt_set(cfg: dict) -> pd.DataFrame:
    """The profile's fixed evaluation prompts: `generate.heldout_prompts` captions of the `reference`
    split (never trained on: the base model trains on `base`, the adapters on `finetune`), spread
    over texture classes and chosen with the profile seed, plus the model card's four prompts
    (`generate.card_prompts`, default true). Columns: prompt_id, name, caption, source
    ("reference" | "model_card").

    Checked here, each raising ValueError that names what is wrong: the reference split shares no
    source piece with base/finetune (when the manifest has `source_piece`); no chosen caption occurs
    verbatim among the training captions (such captions are never chosen); every prompt fits
    text.max_tokens of the profile's text encoder (text.CaptionTooLong otherwise: no silent
    truncation). `generate.finetune_prompts`, the old name of the count, is read as
    `heldout_prompts` with a warning (the captions now come from `reference`, not `finetune`).
    Written to <runs_dir>/prompts.csv; the selection is recomputed on every call (deterministic) and
    the file rewritten, with a warning, when it differs (e.g. a file from before this change)."""
    import warnings

    from .text import check_token_lengths, profile_tokenizer

    gen = cfg["generate"]
    n_wanted = heldout_prompts(cfg)
    layout = Layout.of(cfg)
    manifest = read_manifest(cfg)
    train = manifest[manifest["split"].isin(HELDOUT_EXCLUDED_SPLITS)]
    ref = manifest[manifest["split"] == HELDOUT_SPLIT].sort_values("id")
    if "source_piece" in manifest.columns:
        shared = sorted(set(ref["source_piece"]) & set(train["source_piece"]))
        if shared:
            raise ValueError(f"{layout.corpus_manifest}: the reference split shares {len(shared)} source "
                             f"piece(s) with base/finetune (e.g. {shared[0]!r}); its captions are not held out")
    ref = ref[~ref["caption"].isin(set(train["caption"]))]
    if n_wanted > len(ref):
        warnings.warn(f"generate.heldout_prompts = {n_wanted}, but the reference split has {len(ref)} usable captions",
                      stacklevel=2)
    n = min(n_wanted, len(ref))
    rng = np.random.default_rng(cfg.get("seed", 0))
    shuffled = ref.sample(frac=1, random_state=int(rng.integers(1 << 31)))
    if "texture" in shuffled:  # round-robin over texture classes so every class is prompted
        shuffled = shuffled.assign(_k=shuffled.groupby("texture").cumcount()).sort_values(["_k", "texture"], kind="stable")
    rows = [{"name": r.id, "caption": r.caption, "source": HELDOUT_SPLIT} for r in shuffled.head(n).itertuples()]
    if gen.get("card_prompts", True):
        card = pd.read_csv(CARD_PROMPTS)
        rows += [{"name": r.name, "caption": r.prompt, "source": "model_card"} for r in card.itertuples()]
    prompts = pd.DataFrame(rows, columns=["name", "caption", "source"])
    prompts.insert(0, "prompt_id", range(len(prompts)))
    tokenizer, limit = profile_tokenizer(cfg)
    check_token_lengths(list(prompts["caption"]), limit, names=list(prompts["name"]), tokenizer=tokenizer, what="prompt")
    path = layout.prompts
    if path.exists():
        old = pd.read_csv(path, keep_default_na=False)
        if old.astype(str).equals(prompts.astype(str)):
            return old
        warnings.warn(f"{path} differs from this profile's prompt set; rewritten", stacklevel=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    prompts.to_csv(path, index=False)
    return pd.read_csv(path, keep_default_na=False)


def initial_noise(prompt_id: int, sample: int, shape: tuple[int, int]) -> torch.Tensor:
    """The fixed starting noise of (prompt, sample): identical for every arm, seed and run."""
    g = torch.Generator().manual_seed(NOISE_SEED + 10_000 * prompt_id + sample)
    return torch.randn(shape, generator=g)


@torch.no_grad()
def sample_latents(model, tokens: torch.Tensor, token_mask: torch.Tensor, seconds: torch.Tensor,
                   noise: torch.Tensor, gen_cfg: dict, generator: torch.Generator) -> torch.Tensor:
    """Sample latents for one batch with classifier-free guidance, conditional and unconditional
    halves in one forward pass: v = v_u + s·(v_c − v_u). The null condition is an all-False token mask."""
    scale = float(gen_cfg["cfg"])
    b = noise.shape[0]
    tok2 = torch.cat([tokens, tokens])
    mask2 = torch.cat([token_mask, torch.zeros_like(token_mask)])
    sec2 = torch.cat([seconds, seconds])

    def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        v = model(torch.cat([x, x]), torch.cat([t, t]), tok2, mask2, sec2)
        v_c, v_u = v[:b], v[b:]
        return v_u + scale * (v_c - v_u)

    ts = rf_schedule(int(gen_cfg["steps"])).to(noise.device)
    if gen_cfg["sampler"] == "euler":
        return sample_euler(guided, noise, ts)
    return sample_pingpong(guided, noise, ts, generator=generator)


def generate_run(cfg: dict, run_dir: Path | None, *, name: str, meta: dict, step: int | None = None,
                 model=None, codec=None, text_encoder=None, progress: bool = True) -> pd.DataFrame:
    """Generate the prompt x sample grid for one model (an adapter run at `step`, or the base).

    `meta` (adapter, arm, seed) is copied into every manifest row. Returns the manifest; a folder
    with a manifest already is returned as is."""
    from .train import load_run_model

    gen = cfg["generate"]
    layout = Layout.of(cfg)
    out = layout.sample_dir(name, step)
    if (out / "manifest.csv").exists():
        return pd.read_csv(out / "manifest.csv", keep_default_na=False)
    prompts = prompt_set(cfg)
    codec = codec if codec is not None else codec_for(cfg)
    text_encoder = text_encoder if text_encoder is not None else text_encoder_for(cfg)
    if model is None:  # loaded on the CPU; sampled on the profile's device (cuda when there is one)
        from .train import resolve_device

        model = load_run_model(cfg, run_dir, step=step).to(resolve_device(cfg))
    device = next(model.parameters()).device
    model.eval()
    tokens, token_mask = text_encoder.encode(list(prompts["caption"]))
    n_frames = codec.frames(float(gen["seconds"]))
    jobs = [(p, s) for p in range(len(prompts)) for s in range(int(gen["samples_per_prompt"]))]
    out.mkdir(parents=True, exist_ok=True)
    rows, bs = [], int(gen["batch_size"])
    for k in Progress(range(0, len(jobs), bs), desc=f"generate {name}", disable=not progress, leave=False):
        chunk = jobs[k:k + bs]
        p_idx = torch.tensor([p for p, _ in chunk])
        noise = torch.stack([initial_noise(p, s, (codec_channels(codec), n_frames)) for p, s in chunk]).to(device)
        lat = sample_latents(model, tokens[p_idx].to(device), token_mask[p_idx].to(device),
                             torch.full((len(chunk),), float(gen["seconds"]), device=device), noise, gen,
                             torch.Generator().manual_seed(NOISE_SEED + k))
        audio = codec.decode(lat.float().cpu(), generator=torch.Generator().manual_seed(NOISE_SEED + k)).numpy()
        for (p, s), y in zip(chunk, audio):
            path = out / f"p{p:02d}_s{s}.wav"
            sf.write(path, exact_length(y, float(gen["seconds"]), codec_rate(codec)), codec_rate(codec))
            rows.append({**meta, "run": name, "step": step if step is not None else -1, "prompt_id": p,
                         "prompt_name": prompts.loc[p, "name"], "source": prompts.loc[p, "source"],
                         "caption": prompts.loc[p, "caption"], "sample": s, "path": str(path.relative_to(layout.runs))})
    manifest = pd.DataFrame(rows)
    atomic_write(out / "manifest.csv", lambda tmp: manifest.to_csv(tmp, index=False))
    return manifest


def exact_length(y, seconds: float, sample_rate: int) -> np.ndarray:
    """`y` cut (or zero-padded) to exactly int(seconds · sample_rate) samples, as the diffusers SA3
    pipeline trims its output (`waveform_length = int(duration * sampling_rate)`). A codec decodes
    whole latent frames: SA3's 4096-sample hop turns 4.0 s into ceil(176400 / 4096) = 44 frames =
    180224 samples = 4.087 s, which this trims back to 4.0 s."""
    n = int(seconds * sample_rate)
    y = np.asarray(y, dtype=np.float32)[..., :n]
    return np.pad(y, [(0, 0)] * (y.ndim - 1) + [(0, n - y.shape[-1])]) if y.shape[-1] < n else y


def codec_channels(codec) -> int:
    """Latent channels of a codec (MelCodec: n_mels; SA3Codec: its latent dim)."""
    return int(getattr(codec, "n_mels", None) or getattr(codec, "latent_channels"))


def codec_rate(codec) -> int:
    """Audio sample rate of a codec."""
    return int(codec.sample_rate)


def run_steps(run_dir: Path) -> tuple[list[int], int]:
    """(checkpoint steps to generate at, final step) of a finished run, from its own record: the
    final step is done.json's `steps`; the checkpoints are the complete ckpt_* folders present below
    it (the ones done.json lists, when it lists any). A run trained with `--steps 5` under a profile
    whose checkpoints are [10, 20] is generated at step 5, not at 10 and 20."""
    from .train import list_checkpoints

    done = read_done(run_dir)
    final = int(done["steps"])
    present = set(list_checkpoints(run_dir))
    listed = set(int(s) for s in done.get("checkpoints") or present)
    return sorted(s for s in present & listed if s < final), final


def generation_jobs(cfg: dict) -> list[dict]:
    """What `generate_grid` generates, in order: the base model once (step 0), then every finished
    run of the profile's grid at its own checkpoint steps (`run_steps`; only for the arms in
    `checkpoint_arms`) and at its final weights. Each job: name, run_dir (None for the base), meta,
    step (None: final weights), final (the step recorded in the manifest)."""
    from .train import grid_items

    jobs = [{"name": "base", "run_dir": None, "meta": {"adapter": "none", "arm": "base", "seed": -1}, "step": None,
             "final": 0}]
    with_ckpts = checkpoint_arms(cfg)
    for item in grid_items(cfg):
        run_dir = Path(item["run_dir"])
        if not is_finished(run_dir):
            print(f"skipping {run_dir.name}: not trained (no done.json)")
            continue
        steps, final = run_steps(run_dir)
        if with_ckpts is not None and item["arm"] not in with_ckpts:
            steps = []
        meta = {"adapter": item["adapter"], "arm": item["arm"], "seed": item["seed"]}
        jobs += [{"name": run_dir.name, "run_dir": run_dir, "meta": meta, "step": step, "final": final}
                 for step in [*steps, None]]
    return jobs


def _job_folder(cfg: dict, job: dict) -> Path:
    return Layout.of(cfg).sample_dir(job["name"], job["step"])


def _generate_job(cfg: dict, job: dict, codec, text_encoder, progress: bool) -> pd.DataFrame:
    """One job of `generation_jobs` through `generate_run`; the manifest's step is the job's own
    checkpoint, or `final` for the final weights."""
    model = None
    if job["run_dir"] is None and not (_job_folder(cfg, job) / "manifest.csv").exists():
        from .train import resolve_device

        model = base_model(cfg).to(resolve_device(cfg))
    part = generate_run(cfg, job["run_dir"], name=job["name"], meta=job["meta"], step=job["step"], model=model,
                        codec=codec, text_encoder=text_encoder, progress=progress)
    return part.assign(step=job["final"]) if job["step"] is None else part


def generate_workers(cfg: dict) -> int:
    """`generate.workers` (default 1): CPU processes generating at once, one torch thread each
    (Griffin-Lim decoding is faster on one thread than on two, benchmarks/results/decode.md)."""
    return config_workers(cfg, "generate")


def _generate_worker(cfg: dict, jobs: list[dict]) -> None:
    """One worker process of `generate_grid`: one torch thread, its jobs in order."""
    torch.set_num_threads(1)
    codec, text_encoder = codec_for(cfg), text_encoder_for(cfg)
    for job in jobs:
        _generate_job(cfg, job, codec, text_encoder, progress=False)


def _spawn_generate(cfg: dict, jobs: list[dict], workers: int, progress: bool) -> None:
    """Run `jobs` in `workers` spawned one-thread processes (worker i: jobs k with k % workers == i)
    and wait; the parent counts finished folders. A failed worker raises RuntimeError naming it."""
    from .workers import run_workers

    failed = run_workers(_generate_worker, [(cfg, jobs[i::workers]) for i in range(workers)],
                         [f"generate {i}/{workers}" for i in range(workers)],
                         lambda: sum((_job_folder(cfg, j) / "manifest.csv").exists() for j in jobs), len(jobs),
                         f"generation grid ({workers} workers)", progress)
    if failed:
        raise RuntimeError(f"generate_grid: worker {', '.join(failed)} failed; its traceback is above. Finished "
                           f"folders are kept; run it again to resume")


def generate_grid(cfg: dict, progress: bool = True, workers: int | None = None) -> pd.DataFrame:
    """Every job of `generation_jobs` (the base at step 0; each finished run at its own checkpoints,
    for the arms of `generate.checkpoint_arms`, and at its final weights). Returns the concatenated
    manifest (also written to <runs_dir>/samples/manifest.csv).

    `workers` (default `generate.workers`) > 1 on the CPU: the unfinished jobs are shared out over
    that many spawned one-thread processes first. A clip depends only on its model, prompt and
    sample (fixed noise, per-batch generators), so the clips are the ones one process with one
    thread writes (tests/test_generate.py)."""
    from .train import resolve_device

    jobs = generation_jobs(cfg)
    prompt_set(cfg)  # write prompts.csv once, before any worker reads it
    workers = generate_workers(cfg) if workers is None else int(workers)
    todo = [j for j in jobs if not (_job_folder(cfg, j) / "manifest.csv").exists()]
    if workers > 1 and len(todo) > 1 and resolve_device(cfg).type == "cpu":
        _spawn_generate(cfg, todo, min(workers, len(todo)), progress)
    codec, text_encoder = codec_for(cfg), text_encoder_for(cfg)
    parts = [_generate_job(cfg, job, codec, text_encoder, progress)
             for job in Progress(jobs, desc="generation grid", disable=not progress)]
    manifest = pd.concat(parts, ignore_index=True)
    manifest.to_csv(Layout.of(cfg).samples_manifest, index=False)
    return manifest


def base_model(cfg: dict):
    """The base model of the profile's adapter runs (`train.base_dir_for`: model.base_dir, else
    <runs_dir>/base), loaded in eval mode on the CPU; checked first with models.check_base_dir so a missing or
    broken part fails at once, naming the files."""
    from .basedir import check_base_for
    from .models import load_base
    from .train import base_dir_for

    check_base_for(cfg, dit=True)
    return load_base(base_dir_for(cfg)).eval()


# --------------------------------------------------------------------------------------------
# The base model's preview (notebook 01) and the grid's counts (notebook 05)


def preview_inputs(cfg: dict) -> dict:
    """What one batch of the prompt set needs to be sampled by hand: prompts (`prompt_set`), codec,
    tokens and mask (the profile's text encoder), noise (`initial_noise` of sample 0 for every
    prompt) and seconds (generate.seconds for each prompt)."""
    prompts = prompt_set(cfg)
    codec, text = codec_for(cfg), text_encoder_for(cfg)
    tokens, mask = text.encode(list(prompts["caption"]))
    sec = float(cfg["generate"]["seconds"])
    noise = torch.stack([initial_noise(p, 0, (codec_channels(codec), codec.frames(sec))) for p in range(len(prompts))])
    return {"prompts": prompts, "codec": codec, "tokens": tokens, "mask": mask, "noise": noise,
            "seconds": torch.full((len(prompts),), sec)}


def condition_effect(model, inputs: dict, cfg: dict) -> tuple[float, float]:
    """Does the text condition matter? The same noise sampled with the prompts and with the null
    condition (all-False mask), both at CFG scale 1 and generator seed 0. Returns (mean |cond −
    uncond|, std of the conditional latents)."""
    gen = {**cfg["generate"], "cfg": 1.0}
    x = inputs
    cond = sample_latents(model, x["tokens"], x["mask"], x["seconds"], x["noise"], gen, torch.Generator().manual_seed(0))
    uncond = sample_latents(model, x["tokens"], torch.zeros_like(x["mask"]), x["seconds"], x["noise"], gen,
                            torch.Generator().manual_seed(0))
    return (cond - uncond).abs().mean().item(), cond.std().item()


def preview_audio(model, inputs: dict, cfg: dict) -> torch.Tensor:
    """The prompts of `preview_inputs` sampled with the profile's sampler and guidance (generator
    seed 0) and decoded (decoder generator seed 0): audio [prompts, samples]."""
    x = inputs
    guided = sample_latents(model, x["tokens"], x["mask"], x["seconds"], x["noise"], dict(cfg["generate"]),
                            torch.Generator().manual_seed(0))
    return x["codec"].decode(guided, generator=torch.Generator().manual_seed(0))


def sample_counts(samples: pd.DataFrame) -> pd.DataFrame:
    """Clips of the generation manifest per arm (rows) and step (columns)."""
    return samples.groupby(["arm", "step"]).size().unstack("step")
