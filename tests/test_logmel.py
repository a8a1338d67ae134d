"""The log-mel path (docs/design.md §4): the outcome metrics read the embedded codec's log-mel, the
generated clips' and the reference's through the same code, and only listened clips are decoded.

Known answers at the profiles' clip length (6 s): the log-mel path must rank well-separated signals
as the audio path does (flatness and contrast ladders), keep the loudness order the barrier's
entropy follows, and read a sample folder's latents without any audio on disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from eisbach_lib import metrics as M
from eisbach_lib.codec import MelCodec, loudness_signals
from helpers import smoke_at

SR, SECONDS = 22050, 6.0
T = np.arange(int(SR * SECONDS)) / SR


def _codec(**kw) -> MelCodec:
    return MelCodec(sample_rate=SR, n_mels=64, n_fft=2048, hop_length=1024, griffin_lim_iters=4, **kw)


def _mel_metrics(codec: MelCodec, y: np.ndarray) -> dict:
    with torch.no_grad():
        z = codec.encode(torch.from_numpy(np.asarray(y, np.float32)))
        return M.magnitude_metrics(codec.latents_to_magnitude(z)[0].numpy(), codec.hop_length, SECONDS)


def test_analysis_follows_the_codec_grid():
    assert M.analysis_of(_codec()) == M.LOG_MEL
    assert M.analysis_of(MelCodec(sample_rate=16000)) == M.AUDIO          # another frequency grid
    assert M.analysis_of(MelCodec(sample_rate=SR, hop_length=768)) == M.AUDIO  # 768 does not divide the pools
    assert M.analysis_of(object()) == M.AUDIO                              # an autoencoder: decode, then read


def test_log_mel_flatness_ranks_a_decay_ladder_as_the_audio_does():
    """A tone under exp(−k·t) for k = 0 … 16 /s: flatness falls strictly with k on both paths (a
    strict order of 8 known answers, so any swap fails), and the steady tone reads ≈ 1."""
    tone = 0.3 * np.sin(2 * np.pi * 330 * T)
    ladder = [np.exp(-k * T) * tone for k in (0, 0.2, 0.5, 1, 2, 4, 8, 16)]
    codec = _codec()
    mel = [_mel_metrics(codec, y)["temporal_flatness"] for y in ladder]
    audio = [M.temporal_flatness(y.astype(np.float32), SR) for y in ladder]
    assert np.all(np.diff(mel) < 0) and np.all(np.diff(audio) < 0)
    assert mel[0] > 0.99


def test_log_mel_flatness_keeps_the_loudness_order():
    """bursts < crescendo < drone (codec.LOUDNESS_SIGNALS, the order the barrier's entropy follows)."""
    codec = _codec()
    values = [_mel_metrics(codec, y)["temporal_flatness"] for y in loudness_signals(SR, SECONDS).values()]
    assert values[0] < values[1] < values[2]


def test_log_mel_contrast_falls_as_noise_fills_the_valleys():
    """A tone mixed with white noise at noise power shares 1 % … 100 %: spectral contrast falls
    strictly on both paths (the valleys fill). The pure tone is left out: with no energy between
    its harmonics the log-mel inversion puts the valleys at its floor."""
    tone, noise = 0.3 * np.sin(2 * np.pi * 330 * T), 0.15 * np.random.default_rng(0).standard_normal(T.size)
    ladder = [np.sqrt(1 - a) * tone + np.sqrt(a) * noise for a in (0.01, 0.03, 0.1, 0.3, 0.6, 0.9, 1.0)]
    codec = _codec()
    mel = [_mel_metrics(codec, y)["spectral_contrast"] for y in ladder]
    audio = [M.spectral_contrast(y.astype(np.float32), SR) for y in ladder]
    assert np.all(np.diff(mel) < 0) and np.all(np.diff(audio) < 0)


def test_log_mel_features_keep_the_pooled_frame_rate():
    """Hop 1024 pools 2 frames where hop 512 pools 4: the structure features run at one rate."""
    f = M.features_from_magnitude(np.ones((1025, 130), np.float32), 1024, SECONDS)
    assert M._pool_size(f, M.REC_POOL) == 2 and M._pool_size(f, M.NOV_POOL) == 2
    assert f.duration_s == SECONDS and f.y is None and f.rms.shape == (130,)
    with pytest.raises(ValueError, match="1025"):
        M.features_from_magnitude(np.ones((64, 130), np.float32), 1024)


def _sample_folder(runs: Path, codec: MelCodec, clips: list[np.ndarray]) -> pd.DataFrame:
    """A generated sample folder as generate_run writes it on the log-mel path: latents, codec.json
    and manifest.csv, no audio."""
    folder = runs / "samples" / "r" / "step_final"
    folder.mkdir(parents=True)
    lat = codec.encode(torch.from_numpy(np.stack(clips).astype(np.float32))).numpy()
    np.save(folder / "latents.npy", lat[::-1].copy())  # stored in another order: latent_row maps them
    rows = [{"run": "r", "adapter": "dora", "arm": "none", "seed": 0, "step": 2, "prompt_id": k, "sample": 0,
             "set": "primary", "path": f"samples/r/step_final/p{k:02d}_s0.wav", "latent_row": len(clips) - 1 - k}
            for k in range(len(clips))]
    manifest = pd.DataFrame(rows)
    manifest.to_csv(folder / "manifest.csv", index=False)
    (folder / "codec.json").write_text(json.dumps({"codec": "MelCodec", "settings": codec.settings(), "seconds": SECONDS}))
    return manifest


def test_clip_metrics_read_the_latents_and_decode_nothing(tmp_path: Path, one_torch_thread):
    from eisbach_lib import evaluate as E

    codec = _codec()
    clips = [0.3 * np.exp(-k * T) * np.sin(2 * np.pi * 220 * (k + 1) * T) for k in range(3)]
    samples = _sample_folder(tmp_path, codec, clips)
    cfg = smoke_at(tmp_path, {"generate.seconds": SECONDS})
    out = E.clip_metrics(cfg, samples, n_jobs=1, codec=codec)
    assert set(out["analysis"]) == {M.LOG_MEL} and list(out["path"]) == list(samples["path"])
    for k, y in enumerate(clips):  # row k is clip k, whatever row of latents.npy holds it
        assert out.loc[k, "temporal_flatness"] == pytest.approx(_mel_metrics(codec, y)["temporal_flatness"], abs=1e-6)
    assert not any((tmp_path / p).exists() for p in samples["path"])
    # a cached row read the audio way is not mixed in: it is recomputed the log-mel way
    cached = pd.read_parquet(tmp_path / "metrics" / "clips.parquet")
    cached.loc[0, ["analysis", "temporal_flatness"]] = [M.AUDIO, -1.0]
    cached.to_parquet(tmp_path / "metrics" / "clips.parquet", index=False)
    again = E.clip_metrics(cfg, samples, n_jobs=1, codec=codec)
    assert again.loc[0, "temporal_flatness"] == pytest.approx(out.loc[0, "temporal_flatness"])


def test_reference_is_read_from_its_latents_on_the_log_mel_path(tmp_path: Path, one_torch_thread, monkeypatch):
    """The reference goes through the same code as the generations: its cached latents, not audio."""
    from eisbach_lib import evaluate as E

    codec = _codec()
    clips = [0.3 * np.exp(-k * T) * np.sin(2 * np.pi * 220 * (k + 1) * T) for k in range(3)]
    ref = pd.DataFrame({"id": ["a", "b", "c"], "path": ["x.wav", "y.wav", "z.wav"], "split": "reference"})
    monkeypatch.setattr(E, "_reference_manifest", lambda cfg: (tmp_path, ref))
    monkeypatch.setattr(E, "reference_latents", lambda cfg, r, c: c.encode(torch.from_numpy(np.stack(clips).astype(np.float32))).numpy())
    cfg = smoke_at(tmp_path, {"generate.seconds": SECONDS})
    df = E.reference_metrics(cfg, n_jobs=1, codec=codec)
    assert set(df["audio"]) == {M.LOG_MEL} and df["codec"].iloc[0].endswith("analysis=log-mel")
    assert df["temporal_flatness"].tolist() == pytest.approx([_mel_metrics(codec, y)["temporal_flatness"] for y in clips], abs=1e-6)


def test_a_clip_is_decoded_on_demand_once(tmp_path: Path, one_torch_thread):
    from eisbach_lib.generate import decode_clip, decode_seed
    from eisbach_lib.listen import load_clip

    codec = _codec()
    samples = _sample_folder(tmp_path, codec, [0.3 * np.sin(2 * np.pi * 220 * T), 0.1 * np.sin(2 * np.pi * 440 * T)])
    path = tmp_path / samples.loc[1, "path"]
    y, sr = load_clip(path, max_seconds=None, max_sr=None)  # the listening code decodes what is missing
    lat = torch.from_numpy(np.load(path.parent / "latents.npy")[samples.loc[1, "latent_row"]][None])
    expect = codec.decode(lat, generator=torch.Generator().manual_seed(decode_seed(1, 0)))[0].numpy()[: int(SR * SECONDS)]
    assert sr == SR and y.shape == (int(SR * SECONDS),)
    np.testing.assert_allclose(y, np.pad(expect, (0, y.size - expect.size)), atol=2e-4)
    assert not (tmp_path / samples.loc[0, "path"]).exists()
    stamp = path.stat().st_mtime_ns
    assert decode_clip(path) == path and path.stat().st_mtime_ns == stamp  # kept, not decoded again
    with pytest.raises(FileNotFoundError, match="holds no latents"):
        decode_clip(tmp_path / "samples" / "nowhere" / "p00_s0.wav")


def test_structure_metric_through_the_codec_is_the_log_mel_path():
    from eisbach_lib.validation import _codec_metric

    codec = _codec()
    y = 0.3 * np.sin(2 * np.pi * 262 * T) * (1 + np.sign(np.sin(2 * np.pi * 0.5 * T))) / 2
    mel = _mel_metrics(codec, y)
    for name in ("motif_recurrence", "novelty_sections"):
        assert _codec_metric(y.astype(np.float32), SR, codec=codec, name=name) == pytest.approx(mel[name], abs=1e-9)
