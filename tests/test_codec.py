"""MelCodec: shapes and frame rate, librosa equivalence, Griffin-Lim round trip, batching, determinism."""

import librosa
import numpy as np
import pytest
import torch

from eisbach_lib.codec import DB_MEAN, DB_STD, MelCodec

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
    np.testing.assert_allclose(z, (10 * np.log10(np.maximum(ref, 1e-8)) - DB_MEAN) / DB_STD, atol=1e-3)


def _loud_db_error(codec: MelCodec, z_ref: torch.Tensor, audio: torch.Tensor) -> float:
    """Mean |log-mel difference| in dB over the bins within 60 dB of the loudest bin."""
    z = codec.encode(audio)[..., : z_ref.shape[-1]]
    db_ref = z_ref * DB_STD + DB_MEAN
    loud = db_ref > db_ref.max() - 60.0
    return float(((z - z_ref).abs() * DB_STD)[loud].mean())


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


def test_latents_of_rendered_music_are_roughly_standardised(codec):
    """The fixed constants put a rendered chamber clip near zero mean and unit variance."""
    from eisbach_lib.corpus import plan_clip, render, to_pretty_midi

    piece = {"key": "test", "source": "bach", "work": "test", "length": 32.0, "tonic_pc": 0, "mode": "major",
             "parts": [[[float(b), 1.0, p] for b, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72] * 4)],
                       [[float(b), 2.0, p] for b, p in zip(range(0, 32, 2), [48, 43, 45, 41] * 4)]]}
    zs = []
    for k, texture in enumerate(("sustained", "plucked", "percussive", "mixed")):
        plan = plan_clip(piece, texture, 4.0, np.random.default_rng(k))
        zs.append(codec.encode(render(to_pretty_midi(plan), SR, 4.0)))
    z = torch.cat(zs)
    assert abs(float(z.mean())) < 0.75 and 0.5 < float(z.std()) < 1.5, (float(z.mean()), float(z.std()))
