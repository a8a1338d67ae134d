"""The generation grid: a fixed prompt set, several samples per prompt, the same initial noise for
every arm and seed, ping-pong (or Euler) sampling with each prompt's own CFG scale, decoded to WAV
with a manifest, and the generated latents saved beside them.

Layout: <runs_dir>/prompts.csv (written once, shared by all runs) and
<runs_dir>/samples/<run>/step_<k>/p<prompt>_s<sample>.wav + latents.npy + manifest.csv (a folder
with both latents.npy and manifest.csv is finished and skipped). Noise for (prompt i, sample j)
comes from its own generator seeded by (i, j) only.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch
from .progress import Progress

from .config import REPO, Generate, Profile
from .datasets import codec_for, read_manifest, text_encoder_for
from .device import resolve_device
from .codec import MelCodec
from .files import atomic_json, atomic_write
from .metrics import AUDIO, analysis_of
from .layout import CODEC_FILE, LATENTS_FILE, MANIFEST, Layout, is_finished
from .runs import base_model, grid_items, load_run_model, run_steps
from .sampling import rf_schedule, sample_euler, sample_pingpong
from .text import check_token_lengths, profile_tokenizer
from .workers import run_workers

CARD_PROMPTS = REPO / "data" / "card_prompts.csv"
NOISE_SEED = 1234  # base seed of the fixed sampling noise, the same for every arm and seed
HELDOUT_SPLIT = "reference"                    # evaluation captions come from here (never trained on)
HELDOUT_EXCLUDED_SPLITS = ("base", "finetune")  # the training splits the prompts must be disjoint from
AMBIGUOUS_STYLE = "ambiguous"                  # corpus.make_ambiguous_caption's caption_style
PROMPT_COLUMNS = ("prompt_id", "name", "caption", "source", "set", "cfg")
PROMPT_SETS = ("primary", "primary_cfg", "unconditional", "card")
CHECKPOINT_SETS = ("primary",)  # what an intermediate checkpoint generates (`generation_jobs`)
DECODE_SEED = 5678            # base seed of the Griffin-Lim phases of a clip decoded on demand (`decode_seed`)


def _heldout_captions(cfg: Profile, n_wanted: int) -> pd.DataFrame:
    """`n_wanted` reference-split rows of the corpus manifest (id, caption, ...) for the primary
    prompts, chosen at random with the profile seed. Only captions of the ambiguous style when the
    manifest has such captions (the chamber corpus: all of the reference split), so a primary prompt
    names no instrument and no texture; not stratified by the clip's texture, which such a caption
    does not carry (the generations' texture mix is the outcome, not a design factor). Checks: the
    reference split shares no source piece with base/finetune (when the manifest has
    `source_piece`); no chosen caption occurs verbatim among the training captions (such captions
    are never chosen). Warns when fewer than `n_wanted` captions are usable."""
    layout = Layout.of(cfg)
    manifest = read_manifest(cfg)
    train = manifest[manifest["split"].isin(HELDOUT_EXCLUDED_SPLITS)]
    ref = manifest[manifest["split"] == HELDOUT_SPLIT].sort_values("id")
    if "source_piece" in manifest.columns:
        shared = sorted(set(ref["source_piece"]) & set(train["source_piece"]))
        if shared:
            raise ValueError(f"{layout.corpus_manifest}: the reference split shares {len(shared)} source "
                             f"piece(s) with base/finetune (e.g. {shared[0]!r}); its captions are not held out")
    if "caption_style" in ref.columns and (ref["caption_style"] == AMBIGUOUS_STYLE).any():
        ref = ref[ref["caption_style"] == AMBIGUOUS_STYLE]
    ref = ref[~ref["caption"].isin(set(train["caption"]))]
    if n_wanted > len(ref):
        warnings.warn(f"generate.heldout_prompts = {n_wanted}, but the reference split has {len(ref)} usable captions",
                      stacklevel=3)
    rng = np.random.default_rng(cfg.seed)
    return ref.sample(frac=1, random_state=int(rng.integers(1 << 31))).head(min(n_wanted, len(ref)))


def prompt_set(cfg: Profile) -> pd.DataFrame:
    """The profile's fixed evaluation prompts, one row per (caption, CFG scale). Columns
    PROMPT_COLUMNS: prompt_id, name, caption, source, set, cfg. In this order:

    - `primary` (source "reference"): `generate.heldout_prompts` captions of the reference split
      (never trained on; `_heldout_captions`), at `generate.primary_cfg` (default 1: the model's
      own conditional, where guidance plays no part); name = the clip id;
    - `primary_cfg`: the same captions at the profile's `generate.cfg` (left out when it equals
      primary_cfg);
    - `unconditional` (source "unconditional"): `generate.unconditional_prompts` (default 1) rows
      with an empty caption: the null condition (an all-False token mask, `prompt_conditions`), at
      cfg 1 (both guidance halves would be the null condition, so any scale gives v_u);
    - `card` (source "model_card"): the model card's four prompts (`generate.card_prompts`,
      default true), a secondary set, at `generate.cfg`.

    The rest of the pipeline pairs by prompt_id, so a caption generated at two scales is two
    prompts. Every caption fits text.max_tokens of the profile's text encoder
    (text.CaptionTooLong otherwise: no silent truncation). `generate.finetune_prompts`, the old
    name of the count, is read as `heldout_prompts` with a warning. Written to
    <runs_dir>/prompts.csv; the selection is recomputed on every call (deterministic) and the file
    rewritten, with a warning, when it differs (e.g. a file from before this change)."""
    gen = cfg.generate
    primary_cfg, guided = gen.primary_cfg, gen.cfg
    held = _heldout_captions(cfg, gen.heldout_prompts)
    rows = [{"name": r.id, "caption": r.caption, "source": HELDOUT_SPLIT, "set": "primary", "cfg": primary_cfg}
            for r in held.itertuples()]
    if guided != primary_cfg and gen.primary_at_cfg:  # the same captions again at the profile's CFG
        rows += [{**r, "set": "primary_cfg", "cfg": guided} for r in list(rows)]
    rows += [{"name": f"unconditional_{k}", "caption": "", "source": "unconditional", "set": "unconditional",
              "cfg": 1.0} for k in range(gen.unconditional_prompts)]
    if gen.card_prompts:
        card = pd.read_csv(CARD_PROMPTS)
        rows += [{"name": r.name, "caption": r.prompt, "source": "model_card", "set": "card", "cfg": guided}
                 for r in card.itertuples()]
    prompts = pd.DataFrame(rows, columns=list(PROMPT_COLUMNS[1:]))
    prompts.insert(0, "prompt_id", range(len(prompts)))
    tokenizer, limit = profile_tokenizer(cfg)
    check_token_lengths(list(prompts["caption"]), limit, names=list(prompts["name"]), tokenizer=tokenizer, what="prompt")
    path = Layout.of(cfg).prompts
    if path.exists():
        old = pd.read_csv(path, keep_default_na=False)
        if old.astype(str).equals(prompts.astype(str)):
            return old
        warnings.warn(f"{path} differs from this profile's prompt set; rewritten", stacklevel=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    prompts.to_csv(path, index=False)
    return pd.read_csv(path, keep_default_na=False)


def null_prompts(prompts: pd.DataFrame) -> np.ndarray:
    """Which prompt rows are the null condition: set `unconditional`, or an empty caption."""
    empty = prompts["caption"].astype(str).str.strip() == ""
    if "set" in prompts.columns:
        empty |= prompts["set"] == "unconditional"
    return empty.to_numpy()


def prompt_conditions(prompts: pd.DataFrame, text_encoder) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens, token_mask) of the prompts' captions, the mask all-False on the null rows
    (`null_prompts`): the CFG null condition the model was trained with (condition dropout)."""
    tokens, mask = text_encoder.encode(list(prompts["caption"].astype(str)))
    mask = mask.clone()
    mask[torch.tensor(null_prompts(prompts).tolist(), dtype=torch.bool, device=mask.device)] = False
    return tokens, mask


def prompt_scales(prompts: pd.DataFrame, default: float) -> torch.Tensor:
    """The CFG scale of every prompt row (its `cfg` column; `default` for a file without one), float32 [P]."""
    if "cfg" not in prompts.columns:
        return torch.full((len(prompts),), float(default))
    return torch.tensor(prompts["cfg"].astype(float).to_numpy(), dtype=torch.float32)


def initial_noise(prompt_id: int, sample: int, shape: tuple[int, int]) -> torch.Tensor:
    """The fixed starting noise of (prompt, sample): identical for every arm, seed and run."""
    g = torch.Generator().manual_seed(NOISE_SEED + 10_000 * prompt_id + sample)
    return torch.randn(shape, generator=g)


@torch.no_grad()
def sample_latents(model, tokens: torch.Tensor, token_mask: torch.Tensor, seconds: torch.Tensor,
                   noise: torch.Tensor, gen_cfg: Generate, generator: torch.Generator,
                   scale: float | torch.Tensor | None = None) -> torch.Tensor:
    """Sample latents for one batch with classifier-free guidance per row: v = v_u + s·(v_c − v_u),
    s a [B, 1, 1] tensor from `scale` (a number or one value per row; default gen_cfg.cfg). The
    null condition is an all-False token mask. A row with s = 1 is its conditional prediction v_c
    exactly (no unconditional half is computed for it); the rows with s ≠ 1 get their unconditional
    half in the same forward pass as every row's conditional one."""
    b = noise.shape[0]
    s = torch.as_tensor(gen_cfg.cfg if scale is None else scale, dtype=torch.float32).to(noise.device)
    s = s.expand(b) if s.ndim == 0 else s.reshape(b)
    gi = (s != 1).nonzero().squeeze(1)  # the rows that need v_u
    s_g = s[gi].view(-1, 1, 1)
    tok2 = torch.cat([tokens, tokens[gi]])
    mask2 = torch.cat([token_mask, torch.zeros_like(token_mask[gi])])
    sec2 = torch.cat([seconds, seconds[gi]])

    def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if len(gi) == 0:
            return model(x, t, tokens, token_mask, seconds)
        v = model(torch.cat([x, x[gi]]), torch.cat([t, t[gi]]), tok2, mask2, sec2)
        v_c, v_u = v[:b].clone(), v[b:]
        v_c[gi] = v_u + s_g.to(v.dtype) * (v_c[gi] - v_u)
        return v_c

    ts = rf_schedule(gen_cfg.steps).to(noise.device)
    if gen_cfg.sampler == "euler":
        return sample_euler(guided, noise, ts)
    return sample_pingpong(guided, noise, ts, generator=generator)


def sample_folder_done(folder: Path) -> bool:
    """Whether a sample folder is finished: its manifest.csv and LATENTS_FILE both exist (a folder
    written before the latents were saved is generated again)."""
    return (folder / MANIFEST).exists() and (folder / LATENTS_FILE).exists()


def generate_run(cfg: Profile, run_dir: Path | None, *, name: str, meta: dict, step: int | None = None,
                 model=None, codec=None, text_encoder=None, progress: bool = True,
                 sets: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Generate the prompt x sample grid for one model (an adapter run at `step`, or the base).

    Each prompt row is sampled at its own CFG scale (prompts.csv `cfg`; the null rows with an
    all-False mask). Writes, in the sample folder: LATENTS_FILE (float32 [N, C, T]: what the model
    generated, row i for manifest row i), p<prompt>_s<sample>.wav (decoded) only when the metrics read
    audio (`metrics.analysis_of`; for the embedded codec they read the log-mel and a clip is decoded
    when someone listens to it, `decode_clip`, its codec's settings kept in CODEC_FILE), and
    manifest.csv (written last; its `path` names the clip's WAV whether or not it exists yet). `meta` (adapter, arm, seed)
    is copied into every manifest row, with run, step, prompt_id, prompt_name, source, set, cfg,
    caption, sample, path and latent_row. `sets`: only the prompt rows of these sets (prompts.csv
    `set`; default all). Returns the manifest; a finished folder (`sample_folder_done`) is returned
    as is."""
    gen = cfg.generate
    layout = Layout.of(cfg)
    out = layout.sample_dir(name, step)
    if sample_folder_done(out):
        return pd.read_csv(out / MANIFEST, keep_default_na=False)
    prompts = prompt_set(cfg)
    codec = codec if codec is not None else codec_for(cfg)
    text_encoder = text_encoder if text_encoder is not None else text_encoder_for(cfg)
    if model is None:  # loaded on the CPU, the adapter folded into the weights; sampled on the profile's device
        from .models import merge_adapter  # heavy: diffusers (.models imports it)

        model = merge_adapter(load_run_model(cfg, run_dir, step=step)).to(resolve_device(cfg))
    device = next(model.parameters()).device
    model.eval()
    tokens, token_mask = prompt_conditions(prompts, text_encoder)
    scales = prompt_scales(prompts, gen.cfg)
    n_frames = codec.frames(gen.seconds)
    chosen = [p for p in range(len(prompts)) if sets is None or prompts.loc[p, "set"] in sets]
    jobs = [(p, s) for p in chosen for s in range(gen.samples_per_prompt)]
    decode = analysis_of(codec) == AUDIO
    out.mkdir(parents=True, exist_ok=True)
    if not decode:
        atomic_json(out / CODEC_FILE, {"codec": type(codec).__name__, "settings": codec.settings(),
                                       "seconds": gen.seconds})
    rows, latents, bs = [], [], gen.batch_size
    for k in Progress(range(0, len(jobs), bs), desc=f"generate {name}", disable=not progress, leave=False):
        chunk = jobs[k:k + bs]
        p_idx = torch.tensor([p for p, _ in chunk])
        noise = torch.stack([initial_noise(p, s, (codec_channels(codec), n_frames)) for p, s in chunk]).to(device)
        lat = sample_latents(model, tokens[p_idx].to(device), token_mask[p_idx].to(device),
                             torch.full((len(chunk),), gen.seconds, device=device), noise, gen,
                             torch.Generator().manual_seed(NOISE_SEED + k), scale=scales[p_idx].to(device))
        lat = lat.float().cpu()
        latents.append(lat.numpy())
        audio = codec.decode(lat, generator=torch.Generator().manual_seed(NOISE_SEED + k)).numpy() if decode else None
        for j, (p, s) in enumerate(chunk):
            path = out / f"p{p:02d}_s{s}.wav"
            if decode:
                sf.write(path, exact_length(audio[j], gen.seconds, codec_rate(codec)), codec_rate(codec))
            rows.append({**meta, "run": name, "step": step if step is not None else -1, "prompt_id": p,
                         "prompt_name": prompts.loc[p, "name"], "source": prompts.loc[p, "source"],
                         "set": prompts.loc[p, "set"], "cfg": float(prompts.loc[p, "cfg"]),
                         "caption": prompts.loc[p, "caption"], "sample": s, "path": str(path.relative_to(layout.runs)),
                         "latent_row": len(rows)})
    stacked = np.concatenate(latents).astype(np.float32)
    atomic_write(out / LATENTS_FILE, lambda tmp: np.save(tmp, stacked))
    manifest = pd.DataFrame(rows)
    atomic_write(out / MANIFEST, lambda tmp: manifest.to_csv(tmp, index=False))
    return manifest


def decode_seed(prompt_id: int, sample: int) -> int:
    """The seed of a clip's Griffin-Lim initial phases when it is decoded on demand (`decode_clip`):
    its own, so a clip decodes to the same audio whenever and in whatever company it is decoded."""
    return DECODE_SEED + 10_000 * int(prompt_id) + int(sample)


def decode_clip(path: str | Path) -> Path:
    """The WAV of a generated clip, decoded from its sample folder's latents when it is not there yet
    (log-mel path: generation writes no audio). The folder's CODEC_FILE names the codec and its
    settings, manifest.csv the clip's latent_row, prompt and sample; the Griffin-Lim phases start
    from `decode_seed`. Written atomically; returns `path`. Raises FileNotFoundError naming the
    folder when it holds no latents to decode from."""
    path = Path(path)
    if path.exists():
        return path
    folder = path.parent
    if not (folder / CODEC_FILE).exists() or not sample_folder_done(folder):
        raise FileNotFoundError(f"{path} does not exist and {folder} holds no latents and {CODEC_FILE} to decode "
                                f"it from (generate the grid first: eisbach generate --profile P)")
    info = json.loads((folder / CODEC_FILE).read_text())
    if info["codec"] != "MelCodec":
        raise ValueError(f"{folder / CODEC_FILE}: decoding on demand knows MelCodec only, not {info['codec']}")
    manifest = pd.read_csv(folder / MANIFEST, keep_default_na=False)
    row = manifest[manifest["path"].map(lambda p: Path(p).name) == path.name]
    if len(row) != 1:
        raise ValueError(f"{folder / MANIFEST}: no single row for {path.name}")
    r = row.iloc[0]
    codec = MelCodec(**info["settings"])
    lat = torch.from_numpy(np.array(np.load(folder / LATENTS_FILE, mmap_mode="r")[int(r["latent_row"])], np.float32))
    y = codec.decode(lat[None], generator=torch.Generator().manual_seed(decode_seed(r["prompt_id"], r["sample"])))
    audio = exact_length(y[0].numpy(), float(info["seconds"]), codec.sample_rate)
    atomic_write(path, lambda tmp: sf.write(tmp, audio, codec.sample_rate, format="WAV"))
    return path


def load_latents(folder: Path, manifest: pd.DataFrame | None = None) -> np.ndarray:
    """The generated latents of a sample folder (LATENTS_FILE), float32 [N, C, T]; with `manifest`
    (that folder's rows), the rows in the manifest's order (by its latent_row column)."""
    lat = np.load(Path(folder) / LATENTS_FILE)
    return lat if manifest is None else lat[manifest["latent_row"].to_numpy(dtype=int)]


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


def generation_jobs(cfg: Profile) -> list[dict]:
    """What `generate_grid` generates, in order: the base model once (step 0), then every finished
    run of the profile's grid at its own checkpoint steps (`run_steps`; only for the arms in
    `checkpoint_arms`, and only the primary prompt set: C10 and the by-step plots read nothing else)
    and at its final weights (every set). Each job: name, run_dir (None for the base), meta, step
    (None: final weights), final (the step recorded in the manifest), sets (None: all)."""
    jobs = [{"name": "base", "run_dir": None, "meta": {"adapter": "none", "arm": "base", "seed": -1}, "step": None,
             "final": 0, "sets": None}]
    with_ckpts = cfg.generate.checkpoint_arms
    for item in grid_items(cfg):
        run_dir = Path(item["run_dir"])
        if not is_finished(run_dir):
            print(f"skipping {run_dir.name}: not trained (no done.json)")
            continue
        steps, final = run_steps(run_dir)
        if with_ckpts is not None and item["arm"] not in with_ckpts:
            steps = []
        meta = {"adapter": item["adapter"], "arm": item["arm"], "seed": item["seed"]}
        jobs += [{"name": run_dir.name, "run_dir": run_dir, "meta": meta, "step": step, "final": final,
                  "sets": None if step is None else CHECKPOINT_SETS} for step in [*steps, None]]
    return jobs


def _job_folder(cfg: Profile, job: dict) -> Path:
    return Layout.of(cfg).sample_dir(job["name"], job["step"])


def _job_done(cfg: Profile, job: dict) -> bool:
    return sample_folder_done(_job_folder(cfg, job))


def _generate_job(cfg: Profile, job: dict, codec, text_encoder, progress: bool) -> pd.DataFrame:
    """One job of `generation_jobs` through `generate_run`; the manifest's step is the job's own
    checkpoint, or `final` for the final weights."""
    model = None
    if job["run_dir"] is None and not _job_done(cfg, job):
        model = base_model(cfg).to(resolve_device(cfg))
    part = generate_run(cfg, job["run_dir"], name=job["name"], meta=job["meta"], step=job["step"], model=model,
                        codec=codec, text_encoder=text_encoder, progress=progress, sets=job.get("sets"))
    return part.assign(step=job["final"]) if job["step"] is None else part


def _generate_worker(cfg: Profile, jobs: list[dict]) -> None:
    """One worker process of `generate_grid`: one torch thread, its jobs in order."""
    torch.set_num_threads(1)
    codec, text_encoder = codec_for(cfg), text_encoder_for(cfg)
    for job in jobs:
        _generate_job(cfg, job, codec, text_encoder, progress=False)


def _spawn_generate(cfg: Profile, jobs: list[dict], workers: int, progress: bool) -> None:
    """Run `jobs` in `workers` spawned one-thread processes (worker i: jobs k with k % workers == i)
    and wait; the parent counts finished folders. A failed worker raises RuntimeError naming it."""
    failed = run_workers(_generate_worker, [(cfg, jobs[i::workers]) for i in range(workers)],
                         [f"generate {i}/{workers}" for i in range(workers)],
                         lambda: sum(_job_done(cfg, j) for j in jobs), len(jobs),
                         f"generation grid ({workers} workers)", progress)
    if failed:
        raise RuntimeError(f"generate_grid: worker {', '.join(failed)} failed; its traceback is above. Finished "
                           f"folders are kept; run it again to resume")


def generate_grid(cfg: Profile, progress: bool = True, workers: int | None = None) -> pd.DataFrame:
    """Every job of `generation_jobs` (the base at step 0; each finished run at its own checkpoints,
    for the arms of `generate.checkpoint_arms`, and at its final weights). Returns the concatenated
    manifest (also written to <runs_dir>/samples/manifest.csv).

    `workers` (default `generate.workers`) > 1 on the CPU: the unfinished jobs are shared out over
    that many spawned one-thread processes first. A clip depends only on its model, prompt and
    sample (fixed noise, per-batch generators), so the clips are the ones one process with one
    thread writes (tests/test_generate.py)."""
    jobs = generation_jobs(cfg)
    prompt_set(cfg)  # write prompts.csv once, before any worker reads it
    workers = cfg.generate.workers if workers is None else int(workers)
    todo = [j for j in jobs if not _job_done(cfg, j)]
    if workers > 1 and len(todo) > 1 and resolve_device(cfg).type == "cpu":
        _spawn_generate(cfg, todo, min(workers, len(todo)), progress)
    codec, text_encoder = codec_for(cfg), text_encoder_for(cfg)
    parts = [_generate_job(cfg, job, codec, text_encoder, progress)
             for job in Progress(jobs, desc="generation grid", disable=not progress)]
    manifest = pd.concat(parts, ignore_index=True)
    manifest.to_csv(Layout.of(cfg).samples_manifest, index=False)
    return manifest


# --------------------------------------------------------------------------------------------
# The base model's preview (notebook 01) and the grid's counts (notebook 05)


def preview_inputs(cfg: Profile) -> dict:
    """What one batch of the prompt set needs to be sampled by hand: prompts (`prompt_set`), codec,
    tokens and mask (`prompt_conditions`: the null rows all-False), scale (each row's CFG scale),
    noise (`initial_noise` of sample 0 for every prompt) and seconds (generate.seconds for each
    prompt)."""
    prompts = prompt_set(cfg)
    codec, text = codec_for(cfg), text_encoder_for(cfg)
    tokens, mask = prompt_conditions(prompts, text)
    sec = cfg.generate.seconds
    noise = torch.stack([initial_noise(p, 0, (codec_channels(codec), codec.frames(sec))) for p in range(len(prompts))])
    return {"prompts": prompts, "codec": codec, "tokens": tokens, "mask": mask, "noise": noise,
            "scale": prompt_scales(prompts, cfg.generate.cfg), "seconds": torch.full((len(prompts),), sec)}


def condition_effect(model, inputs: dict, cfg: Profile) -> tuple[float, float]:
    """Does the text condition matter? The same noise sampled with the prompts and with the null
    condition (all-False mask), both at CFG scale 1 and generator seed 0. Returns (mean |cond −
    uncond|, std of the conditional latents)."""
    gen = dataclasses.replace(cfg.generate, cfg=1.0)
    x = inputs
    cond = sample_latents(model, x["tokens"], x["mask"], x["seconds"], x["noise"], gen, torch.Generator().manual_seed(0))
    uncond = sample_latents(model, x["tokens"], torch.zeros_like(x["mask"]), x["seconds"], x["noise"], gen,
                            torch.Generator().manual_seed(0))
    return (cond - uncond).abs().mean().item(), cond.std().item()


def preview_audio(model, inputs: dict, cfg: Profile) -> torch.Tensor:
    """The prompts of `preview_inputs` sampled with the profile's sampler and each row's guidance
    scale (generator seed 0) and decoded (decoder generator seed 0): audio [prompts, samples]."""
    x = inputs
    guided = sample_latents(model, x["tokens"], x["mask"], x["seconds"], x["noise"], cfg.generate,
                            torch.Generator().manual_seed(0), scale=x.get("scale"))
    return x["codec"].decode(guided, generator=torch.Generator().manual_seed(0))


def sample_counts(samples: pd.DataFrame) -> pd.DataFrame:
    """Clips of the generation manifest per arm (rows) and step (columns)."""
    return samples.groupby(["arm", "step"]).size().unstack("step")
