"""The pre-encoded cache: latents, text-token embeddings and masks for a whole corpus.

Training never touches audio or the text encoder: it reads one `PreEncoded` held in memory.
On disk a cache is a folder `<cache_root>/<hash>/` with `shard_XXX.pt` files (each a dict of
tensors for up to `shard_size` clips), `manifest.csv` (rows aligned with the tensors) and
`meta.json` (the config parts that produced it). The folder name is a hash of those parts, so a
changed config rebuilds and an unchanged one is reused.

The parts (`datasets.cache_meta`) are everything that changes the cached tensors: the codec and
text encoder (their class, configs and weight files: `fingerprint_files`), the corpus parameters,
the manifest, the audio files it points at, the clip length and the sample rates.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from .files import atomic_dir
from .layout import CACHE_META, MANIFEST

TENSOR_FIELDS = ("latents", "frame_mask", "tokens", "token_mask", "seconds")
SAMPLE_BYTES = 1 << 20  # fingerprint_files reads this much from the head and from the tail of each file


def fingerprint_files(paths, root: str | Path, sample_bytes: int = SAMPLE_BYTES) -> str:
    """A short hash of a set of files: for each, in sorted order, its path relative to `root`, its
    size, its modification time (ns) and, when `sample_bytes` > 0, its first and last `sample_bytes`
    bytes (the whole file when it is at most 2·sample_bytes long: configs and tokenizers are hashed
    whole, a safetensors file by its header, which lists every tensor's name, dtype, shape and offsets,
    and by its last tensors). A rewritten weight file changes at least its mtime; a copy made
    without keeping mtimes (plain `cp`) changes the key too, which only costs one re-encode.
    A missing file raises FileNotFoundError naming it."""
    root = Path(root)
    h = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        st = path.stat()
        h.update(f"{path.relative_to(root).as_posix()}|{st.st_size}|{st.st_mtime_ns}|".encode())
        if sample_bytes > 0:
            with open(path, "rb") as f:
                if st.st_size <= 2 * sample_bytes:
                    h.update(f.read())
                else:
                    h.update(f.read(sample_bytes))
                    f.seek(-sample_bytes, os.SEEK_END)
                    h.update(f.read(sample_bytes))
    return h.hexdigest()[:16]


@dataclass
class PreEncoded:
    """A corpus as tensors. Row i of every tensor and of `manifest` is the same clip.

    latents [N, C, T] float32, frame_mask [N, T] bool (True = real audio, False = padding),
    tokens [N, L, D] float32 text-token embeddings, token_mask [N, L] bool, seconds [N] float32,
    manifest: one row per clip with at least `id`, `split`, `caption` (and `texture` when known).
    """

    latents: torch.Tensor
    frame_mask: torch.Tensor
    tokens: torch.Tensor
    token_mask: torch.Tensor
    seconds: torch.Tensor
    manifest: pd.DataFrame

    def __len__(self) -> int:
        return self.latents.shape[0]

    def select(self, index: torch.Tensor | list[int]) -> "PreEncoded":
        """The clips at `index`, in that order."""
        idx = torch.as_tensor(index, dtype=torch.long)
        return PreEncoded(
            **{f: getattr(self, f)[idx] for f in TENSOR_FIELDS},
            manifest=self.manifest.iloc[idx.tolist()].reset_index(drop=True),
        )

    def split(self, name: str) -> "PreEncoded":
        """The clips of one split (`base`, `finetune`, `reference`)."""
        idx = [i for i, s in enumerate(self.manifest["split"]) if s == name]
        if not idx:
            raise ValueError(f"no clips in split {name!r}; splits present: {sorted(set(self.manifest['split']))}")
        return self.select(idx)


def save_cache(pe: PreEncoded, folder: Path, meta: dict, shard_size: int = 512) -> Path:
    """Write `pe` to `folder` atomically (a temp folder renamed at the end)."""
    def write(tmp: Path) -> None:
        for k, start in enumerate(range(0, len(pe), shard_size)):
            sl = slice(start, start + shard_size)
            shard = {f: getattr(pe, f)[sl].clone() for f in TENSOR_FIELDS}
            shard["tokens"] = shard["tokens"].half()  # halves the cache; restored to float32 on load
            torch.save(shard, tmp / f"shard_{k:03d}.pt")
        pe.manifest.to_csv(tmp / MANIFEST, index=False)
        (tmp / CACHE_META).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))

    return atomic_dir(folder, write)


def load_cache(folder: Path) -> PreEncoded:
    """Read a cache written by `save_cache`; a missing or partial folder names what is absent."""
    folder = Path(folder)
    shards = sorted(folder.glob("shard_*.pt"))
    if not shards or not (folder / MANIFEST).exists():
        raise FileNotFoundError(
            f"{folder}: not a pre-encoded cache (expected shard_*.pt and manifest.csv); run `eisbach corpus` first"
        )
    parts = [torch.load(s, weights_only=True) for s in shards]
    tensors = {f: torch.cat([p[f] for p in parts]) for f in TENSOR_FIELDS}
    tensors["tokens"] = tensors["tokens"].float()
    manifest = pd.read_csv(folder / MANIFEST, keep_default_na=False)
    if len(manifest) != tensors["latents"].shape[0]:
        raise ValueError(f"{folder}: manifest.csv has {len(manifest)} rows but the shards hold {tensors['latents'].shape[0]} clips")
    return PreEncoded(**tensors, manifest=manifest)
