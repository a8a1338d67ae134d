"""Checking a Stable Audio 3 directory (diffusers layout) before any work, from its files and configs.

Light on purpose (json and pathlib only, no torch or diffusers import), so a command with a broken
base directory fails within a second or two of starting. `models` re-exports every name here.
"""

from __future__ import annotations

import json
from pathlib import Path

from .config import Profile
from .layout import Layout

WEIGHTS = "diffusion_pytorch_model.safetensors"


class BaseDirError(FileNotFoundError):
    """A base directory that cannot be used: files missing or unreadable, or parts whose widths do not fit."""


# the files of each part of a Stable Audio 3 directory; inner tuples are alternatives (any one suffices)
BASE_PARTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "dit": (("transformer/config.json",), (f"transformer/{WEIGHTS}", f"transformer/{WEIGHTS}.index.json"),
            ("duration_embedder/config.json",),
            (f"duration_embedder/{WEIGHTS}", f"duration_embedder/{WEIGHTS}.index.json")),
    "codec": (("vae/config.json",), (f"vae/{WEIGHTS}", f"vae/{WEIGHTS}.index.json")),
    "text": (("text_encoder/config.json",), ("text_encoder/model.safetensors", "text_encoder/model.safetensors.index.json"),
             ("tokenizer/tokenizer.json", "tokenizer/tokenizer.model")),
}


def _read_json(path: Path, problems: list[str]) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        problems.append(f"{path.name} in {path.parent.name}/ is not readable JSON ({e})")
        return None
    if not isinstance(value, dict):
        problems.append(f"{path.parent.name}/{path.name} does not hold a JSON object")
        return None
    return value


def _check_safetensors(path: Path, rel: str, problems: list[str]) -> None:
    """A safetensors file starts with an 8-byte little-endian header length and a JSON header; a git-lfs
    pointer or a truncated download fails this (checked without reading the tensors). An index file's
    shards must exist and pass the same check."""
    if rel.endswith(".index.json"):
        index = _read_json(path, problems)
        shards = sorted(set((index or {}).get("weight_map", {}).values()))
        if index is not None and not shards:
            problems.append(f"{rel} lists no weight files (weight_map is empty)")
        for shard in shards:
            shard_path = path.parent / shard
            if not shard_path.exists():
                problems.append(f"missing {Path(rel).parent.as_posix()}/{shard} (listed in {rel})")
            else:
                _check_safetensors(shard_path, f"{Path(rel).parent.as_posix()}/{shard}", problems)
        return
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if not 0 < n <= size - 8:
                raise ValueError(f"header length {n} does not fit a {size}-byte file")
            json.loads(f.read(n))
    except (OSError, ValueError) as e:
        hint = " (a git-lfs pointer? run `git lfs pull` in the checkpoint)" if size < 1024 else ""
        problems.append(f"{rel} is not a readable safetensors file{hint}: {e}")


def _widths(directory: Path, parts: tuple[str, ...], problems: list[str]) -> dict[str, int]:
    """The widths the parts must agree on, read from their configs."""
    w: dict[str, int] = {}
    configs = {"transformer": ("dit", ("io_channels", "cond_token_dim", "global_cond_dim")),
               "duration_embedder": ("dit", ("output_dim",)), "vae": ("codec", ("latent_dim", "sampling_rate"))}
    for folder, (part, keys) in configs.items():
        if part in parts and (directory / folder / "config.json").exists():
            conf = _read_json(directory / folder / "config.json", problems) or {}
            for k in keys:
                if k in conf:
                    w[f"{folder}.{k}"] = int(conf[k])
                elif conf:
                    problems.append(f"{folder}/config.json has no {k}")
    if "text" in parts and (directory / "text_encoder" / "config.json").exists():
        conf = _read_json(directory / "text_encoder" / "config.json", problems) or {}
        hidden = (conf.get("encoder") or {}).get("hidden_size", conf.get("hidden_size"))
        if hidden is not None:
            w["text_encoder.hidden_size"] = int(hidden)
        elif conf:
            problems.append("text_encoder/config.json has no encoder.hidden_size")
    return w


def check_base_dir(directory: str | Path, parts: tuple[str, ...] = ("dit", "codec", "text"), *,
                   what: str = "base directory", fix: str | None = None) -> dict[str, int]:
    """Check a base directory before any work, from its files and configs only (seconds, no weights loaded).

    Checks, for each part in `parts` (BASE_PARTS: dit = transformer + duration_embedder, codec = vae,
    text = text_encoder + tokenizer): every file present, every config readable JSON, every
    safetensors header readable (and every shard of an index present), and the widths compatible:
    duration_embedder.output_dim = transformer.cond_token_dim = transformer.global_cond_dim
    (SA3 puts the duration embedding in the AdaLN input and in the cross-attention context) =
    text_encoder hidden size (the text tokens share that context), and vae.latent_dim =
    transformer.io_channels. Raises BaseDirError naming `what`, the directory, every problem, the
    files looked for and `fix`; returns the widths read.
    """
    directory = Path(directory)
    unknown = [p for p in parts if p not in BASE_PARTS]
    if unknown:
        raise ValueError(f"check_base_dir: unknown part(s) {unknown}; known: {', '.join(BASE_PARTS)}")
    problems: list[str] = []
    looked = [" or ".join(alts) for p in parts for alts in BASE_PARTS[p]]
    if not directory.is_dir():
        problems.append("the directory does not exist")
    else:
        for p in parts:
            for alts in BASE_PARTS[p]:
                found = next((a for a in alts if (directory / a).is_file()), None)
                if found is None:
                    problems.append(f"missing {' or '.join(alts)}")
                elif found.endswith("config.json"):
                    _read_json(directory / found, problems)
                elif ".safetensors" in found:
                    _check_safetensors(directory / found, found, problems)
    widths = _widths(directory, parts, problems) if directory.is_dir() else {}
    cond = {k: v for k, v in widths.items() if k in ("duration_embedder.output_dim", "transformer.cond_token_dim",
                                                      "transformer.global_cond_dim", "text_encoder.hidden_size")}
    if len(set(cond.values())) > 1:
        problems.append("conditioning widths differ: " + ", ".join(f"{k} = {v}" for k, v in cond.items())
                        + " (all must be equal)")
    io = {k: v for k, v in widths.items() if k in ("vae.latent_dim", "transformer.io_channels")}
    if len(set(io.values())) > 1:
        problems.append("latent widths differ: " + ", ".join(f"{k} = {v}" for k, v in io.items()) + " (must be equal)")
    if problems:
        raise BaseDirError(
            f"{what} {directory} cannot be used:\n  - " + "\n  - ".join(problems)
            + f"\nlooked for: {', '.join(looked)}"
            + (f"\nfix: {fix}" if fix else ""))
    return widths


def check_base_for(cfg: Profile, dit: bool = True, base_dir: str | Path | None = None) -> None:
    """The early check of a command that will need a base directory (cli: corpus, train, grid, generate,
    reproduce), before any work.

    With model.base_dir set (real weights), the whole directory is checked (DiT, codec, text
    encoder: every later step needs them all, so the corpus step already fails on a missing DiT).
    A --base folder (`base_dir`) is checked for the DiT. Without either, and when `dit` (the command
    loads the base of adapter runs), <runs_dir>/base is checked: the pretrained embedded DiT. The fix
    named fits the case: complete the directory or point the profile elsewhere for real weights,
    `eisbach pretrain` for the embedded base."""
    profile = cfg.path
    real = cfg.model.base_dir
    if real:
        fix = (f"copy the missing or broken files of the Stable Audio 3 checkpoint into {real} (nothing is "
               f"downloaded at run time), or point model.base_dir in {profile} at a complete directory")
        parts = ("codec", "text") if base_dir and Path(base_dir).resolve() != Path(real).resolve() else ("dit", "codec", "text")
        check_base_dir(real, parts, what="model.base_dir", fix=fix)
    if base_dir and (not real or Path(base_dir).resolve() != Path(real).resolve()):
        check_base_dir(base_dir, ("dit",), what="--base",
                       fix="pass --base a complete Stable Audio 3 directory or a folder written by `eisbach pretrain`")
    elif dit and not real:
        check_base_dir(Layout.of(cfg).base, ("dit",), what="the embedded base DiT",
                       fix=f"train it first: `eisbach pretrain --profile {profile}` (or set model.base_dir "
                           f"to a Stable Audio 3 directory)")
