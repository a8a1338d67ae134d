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

from .config import REPO
from .datasets import codec_for, text_encoder_for
from .sampling import rf_schedule, sample_euler, sample_pingpong

CARD_PROMPTS = REPO / "data" / "card_prompts.csv"
NOISE_SEED = 1234  # base seed of the fixed sampling noise, the same for every arm and seed


def prompt_set(cfg: dict) -> pd.DataFrame:
    """The profile's fixed prompts: `generate.finetune_prompts` held-out `finetune` captions
    (spread over texture classes, chosen with the profile seed) plus the model card's four prompts.
    Written to <runs_dir>/prompts.csv on first use and read from there afterwards."""
    path = Path(cfg["runs_dir"]) / "prompts.csv"
    if path.exists():
        return pd.read_csv(path, keep_default_na=False)
    manifest = pd.read_csv(Path(cfg["runs_dir"]) / "corpus" / "manifest.csv", keep_default_na=False)
    ft = manifest[manifest["split"] == "finetune"].sort_values("id")
    n = min(int(cfg["generate"]["finetune_prompts"]), len(ft))
    rng = np.random.default_rng(cfg.get("seed", 0))
    shuffled = ft.sample(frac=1, random_state=int(rng.integers(1 << 31)))
    if "texture" in shuffled:  # round-robin over texture classes so every class is prompted
        shuffled = shuffled.assign(_k=shuffled.groupby("texture").cumcount()).sort_values(["_k", "texture"], kind="stable")
    picked = shuffled.head(n)
    rows = [{"name": r.id, "caption": r.caption, "source": "finetune"} for r in picked.itertuples()]
    if cfg["generate"].get("card_prompts", True):
        card = pd.read_csv(CARD_PROMPTS)
        rows += [{"name": r.name, "caption": r.prompt, "source": "model_card"} for r in card.itertuples()]
    prompts = pd.DataFrame(rows)
    prompts.insert(0, "prompt_id", range(len(prompts)))
    path.parent.mkdir(parents=True, exist_ok=True)
    prompts.to_csv(path, index=False)
    return prompts


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
    out = Path(cfg["runs_dir"]) / "samples" / name / f"step_{step if step is not None else 'final'}"
    if (out / "manifest.csv").exists():
        return pd.read_csv(out / "manifest.csv", keep_default_na=False)
    prompts = prompt_set(cfg)
    codec = codec if codec is not None else codec_for(cfg)
    text_encoder = text_encoder if text_encoder is not None else text_encoder_for(cfg)
    model = model if model is not None else load_run_model(cfg, run_dir, step=step)
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
            sf.write(path, np.asarray(y, dtype=np.float32), codec_rate(codec))
            rows.append({**meta, "run": name, "step": step if step is not None else -1, "prompt_id": p,
                         "prompt_name": prompts.loc[p, "name"], "source": prompts.loc[p, "source"],
                         "caption": prompts.loc[p, "caption"], "sample": s, "path": str(path.relative_to(cfg["runs_dir"]))})
    manifest = pd.DataFrame(rows)
    manifest.to_csv(out / "manifest.csv.tmp", index=False)
    (out / "manifest.csv.tmp").replace(out / "manifest.csv")
    return manifest


def codec_channels(codec) -> int:
    """Latent channels of a codec (MelCodec: n_mels; SA3Codec: its latent dim)."""
    return int(getattr(codec, "n_mels", None) or getattr(codec, "latent_channels"))


def codec_rate(codec) -> int:
    """Audio sample rate of a codec."""
    return int(codec.sample_rate)


def generate_grid(cfg: dict, progress: bool = True) -> pd.DataFrame:
    """Every finished run of the profile at every checkpoint step, plus the base model once.
    Returns the concatenated manifest (also written to <runs_dir>/samples/manifest.csv)."""
    from .train import grid_items

    codec, text_encoder = codec_for(cfg), text_encoder_for(cfg)
    parts = [generate_run(cfg, None, name="base", meta={"adapter": "none", "arm": "base", "seed": -1},
                          step=None, model=_base_model(cfg), codec=codec, text_encoder=text_encoder,
                          progress=progress)]
    steps = list(cfg["finetune"].get("checkpoints") or [])
    final = int(cfg["finetune"]["steps"])
    steps = sorted({s for s in steps if s < final} | {final})
    items = grid_items(cfg)
    for item in Progress(items, desc="generation grid", disable=not progress):
        run_dir = Path(item["run_dir"])
        if not (run_dir / "done.json").exists():
            print(f"skipping {run_dir.name}: not trained (no done.json)")
            continue
        for step in steps:
            meta = {"adapter": item["adapter"], "arm": item["arm"], "seed": item["seed"]}
            parts.append(generate_run(cfg, run_dir, name=run_dir.name, meta=meta,
                                      step=step if step != final else None, codec=codec,
                                      text_encoder=text_encoder, progress=progress))
    manifest = pd.concat(parts, ignore_index=True)
    manifest.loc[manifest["step"] == -1, "step"] = final
    manifest.loc[manifest["arm"] == "base", "step"] = 0
    manifest.to_csv(Path(cfg["runs_dir"]) / "samples" / "manifest.csv", index=False)
    return manifest


def _base_model(cfg: dict):
    from .models import load_base
    from .train import base_dir_for

    return load_base(base_dir_for(cfg)).eval()
