"""Audio-caption datasets and the pre-encoded cache (docs/design.md §1.1, §1.2).

Loaders (`load_musiccaps`, `load_audio_folder`) return an `AudioCaptionDataset` and a table of
the rows they skipped, each with its reason; one bad file never stops a run.

Audio rules, the same for every loader:

- a file is read with soundfile, or librosa/audioread for what soundfile cannot read (mp3 on an
  old libsndfile), resampled to `sample_rate` (librosa, soxr_hq) and downmixed to mono;
- MusicCaps: `{ytid}.wav|.flac|.mp3` in `audio_dir`. A file no longer than the CSV's clip
  (end_s − start_s) + 0.5 s is taken to be the clip itself; a longer file is the full track and
  is cut at start_s..end_s;
- the clip is then cut or zero-padded to `seconds`; `seconds` in the manifest is the length of
  real audio (≤ `seconds`), so padding can be masked;
- skip reasons: `missing` (no file), `unreadable` (the decoder fails), `empty` (zero samples),
  `too short` (less real audio than half of min(seconds, clip length); for a folder, half of
  `seconds`), `silent` (peak < 1e-4), `duplicate` (an id seen before).

`encode_corpus` turns a manifest of rendered clips into a `PreEncoded` cache (cache.py) with any
codec / text encoder that has `.encode(audio_batch)` / `.encode(captions)`; `prepare_corpus` is
the top level behind `eisbach corpus` and notebook 00.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
import zlib
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import soundfile as sf
import torch
from .progress import Progress

from .cache import PreEncoded, fingerprint_files, load_cache, save_cache
from .config import Profile, config_hash
from .corpus import build_chamber_corpus, corpus_params
from .device import resolve_device
from .files import atomic_write
from .layout import CACHE_META, CORPUS_PARAMS, MANIFEST, SKIPPED, Layout
from .text import TextEncoder

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3")
MUSICCAPS_REQUIRED = ("ytid", "start_s", "end_s", "caption")
FOLDER_REQUIRED = ("file_name", "caption")
SILENCE_PEAK = 1e-4
CLIP_TOLERANCE_S = 0.5      # a file up to (end_s − start_s) + this long is the clip itself
MIN_FRACTION = 0.5          # at least this fraction of min(seconds, clip length) must be real audio
FOLDER_REFERENCE_EVERY = 10  # a folder without a split column holds out 1 in 10 files (by name hash)


class DataError(ValueError):
    """A dataset file is missing or lacks what the loader needs."""


# --- reading one clip ------------------------------------------------------------------------

def read_audio(path: str | Path, sample_rate: int, offset: float = 0.0, duration: float | None = None) -> np.ndarray:
    """Mono float32 audio at `sample_rate` from `offset` seconds, at most `duration` seconds.

    soundfile first (wav/flac/ogg, mp3 with libsndfile >= 1.1), librosa (audioread) otherwise.
    Raises on a file no decoder can read.
    """
    path = str(path)
    try:
        info = sf.info(path)
        start = int(round(offset * info.samplerate))
        stop = None if duration is None else start + int(round(duration * info.samplerate))
        y, sr = sf.read(path, start=min(start, info.frames), stop=None if stop is None else min(stop, info.frames),
                        dtype="float32", always_2d=True)
        y = y.mean(axis=1)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        with warnings.catch_warnings():  # librosa warns that it falls back to audioread
            warnings.simplefilter("ignore")
            y, sr = librosa.load(path, sr=None, mono=True, offset=offset, duration=duration)
    if sr != sample_rate and y.size:
        y = librosa.resample(y, orig_sr=sr, target_sr=sample_rate)
    return np.ascontiguousarray(y, dtype=np.float32)


def audio_duration(path: str | Path) -> float:
    """Length of an audio file in seconds (raises on an unreadable file)."""
    try:
        info = sf.info(str(path))
        return info.frames / info.samplerate
    except (sf.LibsndfileError, RuntimeError, TypeError):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(librosa.get_duration(path=str(path)))


def fit_length(y: np.ndarray, n: int) -> np.ndarray:
    """Cut or zero-pad `y` to `n` samples."""
    return np.pad(y[:n], (0, max(0, n - len(y)))).astype(np.float32)


def check_clip(path: Path, sample_rate: int, seconds: float, start_s: float | None = None,
               end_s: float | None = None) -> tuple[float, float, str | None]:
    """(offset, real seconds, skip reason or None) of one clip, by the rules of the module docstring.

    With start_s/end_s (MusicCaps) a file longer than the clip + CLIP_TOLERANCE_S is read from
    start_s; without them the file is read from its start.
    """
    try:
        total = audio_duration(path)
    except Exception:  # noqa: BLE001 - any decoder failure is a skip reason
        return 0.0, 0.0, "unreadable"
    if total <= 0:
        return 0.0, 0.0, "empty"
    offset, expected = 0.0, float(seconds)
    if start_s is not None and end_s is not None:
        clip_len = float(end_s) - float(start_s)
        expected = min(float(seconds), clip_len)
        if total > clip_len + CLIP_TOLERANCE_S:
            offset = float(start_s)
    try:
        y = read_audio(path, sample_rate, offset=offset, duration=min(float(seconds), expected))
    except Exception:  # noqa: BLE001
        return offset, 0.0, "unreadable"
    if y.size == 0 and offset == 0.0:
        return offset, 0.0, "empty"
    real = len(y) / sample_rate
    if real < MIN_FRACTION * expected:
        return offset, real, "too short"
    if float(np.abs(y).max()) < SILENCE_PEAK:
        return offset, real, "silent"
    return offset, min(real, float(seconds)), None


# --- the dataset -----------------------------------------------------------------------------

class AudioCaptionDataset(torch.utils.data.Dataset):
    """Clips with captions, read lazily from their source files.

    `manifest` columns: id, caption, split, path (absolute source file), seconds (real audio),
    offset (where the clip starts in the file). Items: {id, audio (float32 [round(seconds_target·sr)],
    zero-padded), caption, seconds}.
    """

    def __init__(self, manifest: pd.DataFrame, sample_rate: int, seconds: float) -> None:
        self.manifest = manifest.reset_index(drop=True)
        self.sample_rate = int(sample_rate)
        self.target_seconds = float(seconds)

    def __len__(self) -> int:
        return len(self.manifest)

    def __getitem__(self, i: int) -> dict:
        row = self.manifest.iloc[i]
        y = read_audio(row["path"], self.sample_rate, offset=float(row["offset"]), duration=float(row["seconds"]))
        return {"id": row["id"], "audio": fit_length(y, int(round(self.target_seconds * self.sample_rate))),
                "caption": row["caption"], "seconds": float(row["seconds"])}


def _read_csv(csv_path: str | Path, required: tuple[str, ...], what: str) -> pd.DataFrame:
    path = Path(csv_path)
    if not path.exists():
        raise DataError(f"{what}: no file {path}")
    try:
        df = pd.read_csv(path, keep_default_na=False)
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{what}: {path} is not a readable CSV: {e}") from e
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"{what}: {path} lacks the column(s) {', '.join(missing)} "
                        f"(required: {', '.join(required)}; found: {', '.join(map(str, df.columns))})")
    return df


def _find_audio(audio_dir: Path, stem: str) -> Path | None:
    for ext in AUDIO_EXTENSIONS:
        p = audio_dir / f"{stem}{ext}"
        if p.exists():
            return p
    return None


def _truthy(v) -> bool:
    return str(v).strip().lower() in ("true", "1", "yes")


def _summary(what: str, source: Path, n_ok: int, skipped: pd.DataFrame) -> None:
    counts = ", ".join(f"{r}: {n}" for r, n in skipped["reason"].value_counts().items()) if len(skipped) else "none"
    print(f"{what}: {n_ok} clips loaded from {source}, {len(skipped)} skipped ({counts})")


def load_musiccaps(csv_path: str | Path, audio_dir: str | Path, sample_rate: int, seconds: float,
                   progress: bool = True) -> tuple[AudioCaptionDataset, pd.DataFrame]:
    """MusicCaps from its public CSV and a folder of `{ytid}.wav|.flac|.mp3` (module docstring).

    Required columns: ytid, start_s, end_s, caption; `is_audioset_eval` (optional, default
    false) gives the split: reference if true, else finetune. Returns (dataset, skipped) with
    skipped columns ytid, path, reason.
    """
    df = _read_csv(csv_path, MUSICCAPS_REQUIRED, "MusicCaps")
    audio_dir = Path(audio_dir)
    rows, skipped, seen = [], [], set()
    for r in Progress(df.itertuples(index=False), total=len(df), desc="MusicCaps", disable=not progress):
        ytid = str(r.ytid)
        path = _find_audio(audio_dir, ytid)
        if ytid in seen:
            skipped.append({"ytid": ytid, "path": str(path or ""), "reason": "duplicate"})
            continue
        seen.add(ytid)
        if path is None:
            skipped.append({"ytid": ytid, "path": str(audio_dir / f"{ytid}.*"), "reason": "missing"})
            continue
        offset, real, reason = check_clip(path, sample_rate, seconds, float(r.start_s), float(r.end_s))
        if reason:
            skipped.append({"ytid": ytid, "path": str(path), "reason": reason})
            continue
        split = "reference" if _truthy(getattr(r, "is_audioset_eval", False)) else "finetune"
        rows.append({"id": ytid, "caption": str(r.caption), "split": split, "path": str(path),
                     "seconds": real, "offset": offset})
    skipped_df = pd.DataFrame(skipped, columns=["ytid", "path", "reason"])
    if progress:
        _summary("MusicCaps", Path(csv_path), len(rows), skipped_df)
    manifest = pd.DataFrame(rows, columns=["id", "caption", "split", "path", "seconds", "offset"])
    return AudioCaptionDataset(manifest, sample_rate, seconds), skipped_df


def load_audio_folder(folder: str | Path, sample_rate: int, seconds: float,
                      progress: bool = True) -> tuple[AudioCaptionDataset, pd.DataFrame]:
    """A folder with `metadata.csv` (file_name relative to the folder, caption[, split]).

    Each file is read from its start. Without a `split` column, 1 in FOLDER_REFERENCE_EVERY files
    (crc32 of file_name) is `reference`, the rest `finetune`. Returns (dataset, skipped) with
    skipped columns file_name, path, reason.
    """
    folder = Path(folder)
    df = _read_csv(folder / "metadata.csv", FOLDER_REQUIRED, "audio folder")
    rows, skipped, seen = [], [], set()
    for r in Progress(df.itertuples(index=False), total=len(df), desc="audio folder", disable=not progress):
        name = str(r.file_name)
        path = folder / name
        clip_id = Path(name).with_suffix("").as_posix().replace("/", "__")
        if clip_id in seen:
            skipped.append({"file_name": name, "path": str(path), "reason": "duplicate"})
            continue
        seen.add(clip_id)
        if not path.is_file():
            skipped.append({"file_name": name, "path": str(path), "reason": "missing"})
            continue
        offset, real, reason = check_clip(path, sample_rate, seconds)
        if reason:
            skipped.append({"file_name": name, "path": str(path), "reason": reason})
            continue
        split = str(getattr(r, "split", "")) or (
            "reference" if zlib.crc32(name.encode()) % FOLDER_REFERENCE_EVERY == 0 else "finetune")
        rows.append({"id": clip_id, "caption": str(r.caption), "split": split, "path": str(path),
                     "seconds": real, "offset": offset})
    skipped_df = pd.DataFrame(skipped, columns=["file_name", "path", "reason"])
    if progress:
        _summary("audio folder", folder / "metadata.csv", len(rows), skipped_df)
    manifest = pd.DataFrame(rows, columns=["id", "caption", "split", "path", "seconds", "offset"])
    return AudioCaptionDataset(manifest, sample_rate, seconds), skipped_df


def _newer(source: Path, copy: Path) -> bool:
    """Whether `source` was modified after `copy` was written."""
    try:
        return source.stat().st_mtime_ns > copy.stat().st_mtime_ns
    except OSError:
        return False


def write_dataset(dataset: AudioCaptionDataset, out_dir: str | Path, progress: bool = True) -> pd.DataFrame:
    """Write every clip as out_dir/audio/<id>.wav (16-bit PCM; an existing file is kept unless its
    source was modified after it) and
    out_dir/manifest.csv (id, split, caption, path relative to out_dir, seconds, source)."""
    out = Path(out_dir)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in Progress(range(len(dataset)), desc="write clips", disable=not progress):
        row = dataset.manifest.iloc[i]
        wav = out / "audio" / f"{row['id']}.wav"
        if not wav.exists() or _newer(Path(row["path"]), wav):  # a changed source file is written again
            item = dataset[i]
            atomic_write(wav, lambda tmp: sf.write(str(tmp), np.clip(item["audio"], -1.0, 1.0), dataset.sample_rate,
                                                   subtype="PCM_16"))
        rows.append({"id": row["id"], "split": row["split"], "caption": row["caption"],
                     "path": f"audio/{row['id']}.wav", "seconds": float(row["seconds"]), "source": row["path"]})
    manifest = pd.DataFrame(rows, columns=["id", "split", "caption", "path", "seconds", "source"])
    manifest.to_csv(out / MANIFEST, index=False)
    return manifest


# --- the pre-encoded cache -------------------------------------------------------------------

def cache_folder(cache_root: str | Path, meta: dict) -> Path:
    """cache_root/<config_hash(meta)>."""
    return Path(cache_root) / config_hash(meta)


def _cache_complete(folder: Path, manifest: pd.DataFrame) -> bool:
    """A finished cache (save_cache renames a temp folder at the end) holding exactly these ids."""
    if not (folder / CACHE_META).exists() or not (folder / MANIFEST).exists():
        return False
    if not list(folder.glob("shard_*.pt")):
        return False
    ids = pd.read_csv(folder / MANIFEST, keep_default_na=False, usecols=["id"])["id"].astype(str).tolist()
    return ids == manifest["id"].astype(str).tolist()


def encode_corpus(manifest: pd.DataFrame, audio_root: str | Path, codec, text_encoder, cache_root: str | Path,
                  meta: dict, batch_size: int = 32, progress: bool = True, seconds: float | None = None) -> Path:
    """Encode every clip of `manifest` into a PreEncoded cache at cache_root/<config_hash(meta)>/.

    Audio is read from audio_root/<path> at `codec.sample_rate`, cut/padded to `seconds` (default:
    the longest `seconds` of the manifest) and encoded in batches with `codec.encode(audio [B, S])`
    → latents [B, C, T]; frame_mask[b, t] = t < codec.frames(seconds_b) (False on padding);
    captions go through `text_encoder.encode(captions)` → (tokens [B, L, D], mask [B, L]). An
    existing complete folder for the same meta and ids is reused without encoding.
    """
    folder = cache_folder(cache_root, meta)
    manifest = manifest.reset_index(drop=True)
    if _cache_complete(folder, manifest):
        if progress:
            print(f"pre-encoded cache: reusing {folder} ({len(manifest)} clips)")
        return folder
    if len(manifest) == 0:
        raise DataError(f"encode_corpus: the manifest is empty; nothing to encode into {folder}")
    sr = int(codec.sample_rate)
    target = float(seconds) if seconds is not None else float(manifest["seconds"].max())
    n_samples = int(round(target * sr))
    latents, frame_masks, tokens, token_masks = [], [], [], []
    root = Path(audio_root)
    starts = range(0, len(manifest), batch_size)
    with torch.no_grad():
        for start in Progress(starts, desc="encode corpus", disable=not progress):
            chunk = manifest.iloc[start:start + batch_size]
            audio = np.stack([fit_length(read_audio(root / p, sr, duration=target), n_samples) for p in chunk["path"]])
            lat = codec.encode(torch.from_numpy(audio)).detach().float().cpu()
            valid = torch.tensor([min(int(codec.frames(min(float(s), target))), lat.shape[-1]) for s in chunk["seconds"]])
            frame_masks.append(torch.arange(lat.shape[-1])[None, :] < valid[:, None])
            latents.append(lat)
            tok, tmask = text_encoder.encode([str(c) for c in chunk["caption"]])
            tokens.append(tok.detach().float().cpu())
            token_masks.append(tmask.detach().bool().cpu())
    pe = PreEncoded(latents=torch.cat(latents), frame_mask=torch.cat(frame_masks), tokens=torch.cat(tokens),
                    token_mask=torch.cat(token_masks),
                    seconds=torch.tensor(manifest["seconds"].astype(float).clip(upper=target).to_numpy(), dtype=torch.float32),
                    manifest=manifest)
    save_cache(pe, folder, meta)
    if progress:
        print(f"pre-encoded cache: wrote {folder} ({len(pe)} clips, latents {tuple(pe.latents.shape)})")
    return folder


def _codec_key(codec) -> str:
    """What identifies a codec in the cache key: its `cache_key`, else its class."""
    return str(getattr(codec, "cache_key", None) or f"{type(codec).__module__}.{type(codec).__qualname__}")


def _clear_audio_if_changed(corpus_dir: Path, params: dict) -> None:
    """Store `params` in corpus_dir/corpus.json; remove rendered audio made with other parameters."""
    meta_path = corpus_dir / CORPUS_PARAMS
    old = json.loads(meta_path.read_text()) if meta_path.exists() else None
    if old is not None and old != params:
        for f in (corpus_dir / "audio").glob("*"):
            f.unlink()
    corpus_dir.mkdir(parents=True, exist_ok=True)
    meta_path.write_text(json.dumps(params, indent=2, sort_keys=True))


def cache_meta(cfg: Profile, corpus_key: dict, manifest: pd.DataFrame, corpus_dir: str | Path, codec,
               text_encoder) -> dict:
    """The parts of the pre-encoded cache's key: everything that changes the cached tensors.

    - `codec`, `text`: the codec's and text encoder's `cache_key` (for SA3: the class and a
      fingerprint of the configs, weight files and tokenizer, cache.fingerprint_files), else the class;
    - `codec_config`, `max_tokens`: the profile's codec and text settings;
    - `corpus`: the corpus parameters (render settings, or the source CSV / folder);
    - `manifest`: a hash of the manifest's id, split, caption, path, seconds (and source) columns;
    - `audio`: names, sizes and modification times of the audio files the manifest points at
      (cache.fingerprint_files without content: a re-rendered or replaced clip changes it);
    - `seconds`, `sample_rate`, `codec_sample_rate`: the clip length and the rates audio is
      rendered at and read at.
    """
    cols = [c for c in ("id", "split", "caption", "path", "seconds", "source") if c in manifest.columns]
    root = Path(corpus_dir)
    audio = [root / p for p in manifest["path"] if (root / p).exists()]
    return {"corpus": corpus_key, "codec": _codec_key(codec), "codec_config": dataclasses.asdict(cfg.codec),
            "text": _codec_key(text_encoder), "max_tokens": int(cfg.text.max_tokens),
            "seconds": float(cfg.corpus.seconds), "sample_rate": int(cfg.corpus.sample_rate),
            "codec_sample_rate": int(codec.sample_rate),
            "manifest": config_hash(manifest[cols].astype(str).to_numpy().tolist()),
            "audio": fingerprint_files(audio, root, sample_bytes=0)}


def codec_for(cfg: Profile):
    """The audio codec of a profile: the SA3 autoencoder when model.base_dir is set (on the profile's
    device: SAME-L has 852 M parameters; results come back on the CPU), else MelCodec."""
    if cfg.model.base_dir:
        from .models import SA3Codec  # heavy: diffusers (.models imports it)

        return SA3Codec(cfg.model.base_dir, device=resolve_device(cfg))
    from .codec import MelCodec  # heavy: scipy (.codec imports scipy.stats)

    return MelCodec(sample_rate=cfg.corpus.sample_rate, **dataclasses.asdict(cfg.codec))


def text_encoder_for(cfg: Profile):
    """The text encoder of a profile: the SA3 text encoder when model.base_dir is set (on the profile's
    device; results come back on the CPU), else MiniLM."""
    if cfg.model.base_dir:
        from .models import SA3TextEncoder  # heavy: diffusers (.models imports it)

        return SA3TextEncoder(cfg.model.base_dir, cfg.text.max_tokens, device=resolve_device(cfg))
    return TextEncoder(cfg.text.max_tokens)


def prepare_corpus(cfg: Profile, codec=None, text_encoder=None, progress: bool = True) -> Path:
    """Render or load the profile's corpus into <runs_dir>/corpus/ and pre-encode it into
    <runs_dir>/cache/<hash>/; returns the cache folder (safe to re-run: finished work is reused).

    corpus.source: `chamber` → build_chamber_corpus; `musiccaps` (corpus.musiccaps_csv,
    corpus.audio_dir) → load_musiccaps; `folder` (corpus.audio_dir) → load_audio_folder. Loaded
    clips are written as WAVs under corpus/audio so every source looks the same downstream, and
    skipped rows go to corpus/skipped.csv. `codec` and `text_encoder` default to the
    profile's (`codec_for`, `text_encoder_for`: the Stable Audio 3 autoencoder and text encoder
    when model.base_dir is set, else MelCodec and MiniLM). The settings are config.Corpus's (its
    optional keys: clips_per_piece, flat_share, encode_batch_size, workers).
    """
    c = cfg.corpus
    layout = Layout.of(cfg)
    corpus_dir = layout.corpus
    sr, seconds, source = c.sample_rate, c.seconds, c.source
    if source == "chamber":
        cpp, flat = c.clips_per_piece, c.flat_share
        manifest = build_chamber_corpus(corpus_dir, dict(c.clips), seconds, sr, seed=cfg.seed,
                                        workers=c.workers, progress=progress, clips_per_piece=cpp,
                                        flat_share=flat)
        corpus_key = corpus_params(dict(c.clips), seconds, sr, cfg.seed, cpp, flat)
    elif source in ("musiccaps", "folder"):
        corpus_key = {"source": source, "musiccaps_csv": c.musiccaps_csv, "audio_dir": c.audio_dir,
                      "sample_rate": sr, "seconds": seconds}
        if not c.audio_dir or (source == "musiccaps" and not c.musiccaps_csv):
            need = "corpus.musiccaps_csv and corpus.audio_dir" if source == "musiccaps" else "corpus.audio_dir"
            raise DataError(f"{cfg.path}: corpus.source is {source!r} but {need} is not set")
        _clear_audio_if_changed(corpus_dir, corpus_key)
        if source == "musiccaps":
            dataset, skipped = load_musiccaps(c.musiccaps_csv, c.audio_dir, sr, seconds, progress=progress)
        else:
            dataset, skipped = load_audio_folder(c.audio_dir, sr, seconds, progress=progress)
        skipped.to_csv(corpus_dir / SKIPPED, index=False)
        manifest = write_dataset(dataset, corpus_dir, progress=progress)
    else:
        raise DataError(f"{cfg.path}: corpus.source must be chamber, musiccaps or folder, got {source!r}")

    codec = codec if codec is not None else codec_for(cfg)
    text_encoder = text_encoder if text_encoder is not None else text_encoder_for(cfg)
    meta = cache_meta(cfg, corpus_key, manifest, corpus_dir, codec, text_encoder)
    return encode_corpus(manifest, corpus_dir, codec, text_encoder, layout.cache, meta,
                         batch_size=c.encode_batch_size, progress=progress, seconds=seconds)


# --------------------------------------------------------------------------------------------
# The corpus as notebook 00 shows it


def load_corpus(cfg: Profile):
    """The profile's pre-encoded corpus (`prepare_corpus`, then cache.load_cache): every split."""
    return load_cache(prepare_corpus(cfg))


def read_manifest(cfg: Profile) -> pd.DataFrame:
    """<runs_dir>/corpus/manifest.csv (empty strings kept as strings)."""
    return pd.read_csv(Layout.of(cfg).corpus_manifest, keep_default_na=False)


def split_texture_counts(manifest: pd.DataFrame) -> pd.DataFrame:
    """Clips per split (rows) and texture class (columns), with totals ("All")."""
    return pd.crosstab(manifest["split"], manifest["texture"], margins=True)


def instrument_counts(manifest: pd.DataFrame) -> pd.Series:
    """How many clips each instrument plays in (the manifest's `instruments` are ';'-joined), most first."""
    return manifest["instruments"].str.split(";").explode().value_counts()


def caption_examples(manifest: pd.DataFrame, n: int = 3) -> dict[str, list[str]]:
    """The first `n` captions of each caption style, by style (sorted)."""
    return {style: list(g["caption"].head(n)) for style, g in manifest.groupby("caption_style")}


def texture_examples(manifest: pd.DataFrame, corpus_dir: str | Path, textures: list[str]) -> list[dict]:
    """The first clip of each of `textures`: texture, caption, audio (float32, as stored) and sample_rate."""
    out = []
    for texture in textures:
        row = manifest[manifest["texture"] == texture].iloc[0]
        y, sr = sf.read(Path(corpus_dir) / row["path"], dtype="float32")
        out.append({"texture": texture, "caption": row["caption"], "audio": y, "sample_rate": sr})
    return out
