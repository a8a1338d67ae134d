"""MelCodec: shapes and frame rate, librosa equivalence, Griffin-Lim round trip, batching, determinism,
and latent energy that means loudness (docs/design.md §1.2)."""

import librosa
import numpy as np
import pytest
import torch

from eisbach_lib.codec import (AMIN, DB_FLOOR, DB_SCALE, LOUDNESS_SIGNALS, MelCodec, latents_to_db, loudness_check,
                                loudness_frames, loudness_signals)

SR = 22050


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def harmonic_tone(seconds: float = 3.0, f0: float = 220.0, sr: int = SR) -> np.ndarray:
    """A harmonic tone (6 partials, amplitudes 1/k) with a gentle vibrato and a 50 ms fade-in."""
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * f0 * (t + 0.002 * np.sin(2 * np.pi * 5 * t) / (2 * np.pi * 5))
    y = sum(np.sin(k * phase) / k for k in range(1, 7))
    y *= np.minimum(1.0, t / 0.05)
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


@pytest.fixture(scope="module")
def codec() -> MelCodec:
    return MelCodec(sample_rate=SR, n_mels=64, n_fft=2048, hop_length=1024, griffin_lim_iters=32)


def test_frames_and_shapes(codec):
    assert codec.frames(6.0) == 1 + int(6.0 * SR) // 1024 == 130
    fps = (codec.frames(60.0) - codec.frames(0.0)) / 60.0
    assert abs(fps - 21.5) < 0.1
    y = np.zeros((3, int(6.0 * SR)), dtype=np.float32)
    z = codec.encode(y)
    assert z.shape == (3, 64, codec.frames(6.0)) and z.dtype == torch.float32
    assert codec.encode(torch.zeros(int(2.0 * SR))).shape == (1, 64, codec.frames(2.0))
    audio = codec.decode(z[:2], n_iter=2)
    assert audio.shape == (2, codec.samples(z.shape[-1])) and codec.frames(audio.shape[-1] / SR) == z.shape[-1]


def test_encode_is_librosa_power_melspectrogram(codec):
    y = harmonic_tone(2.0)
    ref = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=2048, hop_length=1024, n_mels=64, power=2.0)
    ours = codec.mel_power(y)[0].numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-6 * ref.max())
    z = codec.encode(y)[0].numpy()
    np.testing.assert_allclose(z, (10 * np.log10(np.maximum(ref, 1e-8)) + 80.0) / 21.0, atol=1e-3)


def _loud_db_error(codec: MelCodec, z_ref: torch.Tensor, audio: torch.Tensor) -> float:
    """Mean |log-mel difference| in dB over the bins within 60 dB of the loudest bin."""
    z = codec.encode(audio)[..., : z_ref.shape[-1]]
    db_ref = latents_to_db(z_ref)
    loud = db_ref > db_ref.max() - 60.0
    return float((latents_to_db(z) - db_ref).abs()[loud].mean())


def test_round_trip_error_is_small_on_a_harmonic_tone(codec):
    z = codec.encode(harmonic_tone())
    gen = torch.Generator().manual_seed(0)
    err_gl = _loud_db_error(codec, z, codec.decode(z, generator=gen))
    err_no_gl = _loud_db_error(codec, z, codec.decode(z, n_iter=0, generator=torch.Generator().manual_seed(0)))
    assert err_gl < 5.0, err_gl
    assert err_gl < 0.5 * err_no_gl, (err_gl, err_no_gl)  # the iterations do the work


def test_batched_decode_equals_per_clip_decode(codec):
    clips = np.stack([harmonic_tone(2.0, f0) for f0 in (110.0, 220.0, 330.0)])
    z = codec.encode(clips)
    batched = codec.decode(z)  # zero initial phase: batch-independent
    single = torch.cat([codec.decode(z[i : i + 1]) for i in range(3)])
    # equal up to float32 rounding, which 32 Griffin-Lim iterations amplify to ~1e-3 of the peak
    assert float((batched - single).abs().max()) < 2e-3 * float(single.abs().max())
    assert float((batched - single).pow(2).mean() / single.pow(2).mean()) < 1e-6


def test_decode_is_deterministic_for_a_generator(codec):
    z = codec.encode(harmonic_tone(2.0))
    a = codec.decode(z, n_iter=4, generator=torch.Generator().manual_seed(7))
    b = codec.decode(z, n_iter=4, generator=torch.Generator().manual_seed(7))
    c = codec.decode(z, n_iter=4, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_latents_of_rendered_music_have_unit_spread_and_no_negative_values(codec):
    """The fixed constants give rendered chamber clips a spread of about one latent unit (the
    noise's), z ≥ 0 (silence is 0), and a mean near (−20 dB − DB_FLOOR)/DB_SCALE ≈ 2.9."""
    from eisbach_lib.corpus import plan_clip, render, to_pretty_midi

    piece = {"key": "test", "source": "bach", "work": "test", "length": 32.0, "tonic_pc": 0, "mode": "major",
             "parts": [[[float(b), 1.0, p] for b, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72] * 4)],
                       [[float(b), 2.0, p] for b, p in zip(range(0, 32, 2), [48, 43, 45, 41] * 4)]]}
    zs = []
    for k, texture in enumerate(("sustained", "plucked", "percussive", "mixed")):
        plan = plan_clip(piece, texture, 4.0, np.random.default_rng(k))
        zs.append(codec.encode(render(to_pretty_midi(plan), SR, 4.0)))
    z = torch.cat(zs)
    assert float(z.min()) >= 0.0
    assert 2.0 < float(z.mean()) < 3.75 and 0.5 < float(z.std()) < 1.5, (float(z.mean()), float(z.std()))


# -- latent energy means loudness ------------------------------------------------------------


class OldMapping(MelCodec):
    """The earlier mapping, z = (dB + 20)/21 (silence at z ≈ −2.9): the check must fail it."""

    def encode(self, audio):
        return (10.0 * torch.log10(self.mel_power(audio).clamp_min(AMIN)) + 20.0) / 21.0


def test_silence_is_zero_and_energy_grows_with_gain(codec):
    assert float(codec.encode(np.zeros(SR, dtype=np.float32)).abs().max()) == 0.0
    assert DB_FLOOR == pytest.approx(10 * np.log10(AMIN))
    tone = harmonic_tone(1.0)
    energy = [float(codec.encode(tone * 10 ** (g / 20)).pow(2).mean()) for g in range(-70, 1, 10)]
    assert all(a < b for a, b in zip(energy, energy[1:])), energy


def test_cache_key_names_the_normalisation(codec):
    assert f"{DB_FLOOR}" in codec.cache_key and f"{DB_SCALE}" in codec.cache_key and "floor" in codec.cache_key


def test_latent_energy_ranks_frames_by_loudness(codec):
    """On clips of known loudness, Spearman(mean_c z², frame RMS dB) ≥ 0.9 where the level varies,
    and the barrier's temporal entropy orders bursts < crescendo < drone."""
    check = loudness_check(codec).set_index("signal")
    assert list(check.index) == list(LOUDNESS_SIGNALS)
    assert check.loc["bursts", "spearman"] >= 0.9 and check.loc["crescendo", "spearman"] >= 0.9, check
    h = check["entropy"]
    assert h["bursts"] < h["crescendo"] < h["drone"], h
    assert check.loc["drone", "rms_db_range"] < 10 < check.loc["crescendo", "rms_db_range"]  # the signals are as named


def test_the_loudness_check_fails_the_old_mapping():
    check = loudness_check(OldMapping()).set_index("signal")
    assert check.loc["bursts", "spearman"] < 0 and check.loc["crescendo", "spearman"] < 0.9, check


def test_loudness_frames_and_signals_line_up(codec):
    signals = loudness_signals(SR, 2.0)
    assert set(signals) == set(LOUDNESS_SIGNALS) and all(len(y) == 2 * SR for y in signals.values())
    frames = loudness_frames(codec, seconds=2.0)
    assert len(frames) == 3 * codec.frames(2.0)
    cres = frames[frames["signal"] == "crescendo"]
    assert cres["rms_db"].iloc[-5] > cres["rms_db"].iloc[5] + 30  # 60 dB over the clip
