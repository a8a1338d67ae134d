"""MelCodec: audio ↔ normalised log-mel "latents" for the embedded (CPU) scale (docs/design.md §1.2).

Encoding (power mel spectrogram, the same as `librosa.feature.melspectrogram(power=2.0)` with
its defaults: periodic Hann window, centred frames with zero ("constant") padding, Slaney mel
filterbank `librosa.filters.mel(sr, n_fft, n_mels)`, fmin = 0, fmax = sr/2):

    X[f, t]  = STFT(y)                                    n_fft, hop_length, Hann window
    M[m, t]  = Σ_f F[m, f] · |X[f, t]|²                   F: librosa.filters.mel
    d[m, t]  = 10 · log10(max(M[m, t], AMIN))             dB, floor AMIN = 1e-8 (DB_FLOOR = −80 dB)
    z[m, t]  = (d[m, t] − DB_FLOOR) / DB_SCALE            the latent, ≥ 0; silence (the floor) is 0

Latent energy means loudness. The barrier reads frame energy mean_c z² (docs/design.md §2), so the
latent must grow with loudness and be smallest at silence: z = 0 at the −80 dB floor and z grows
linearly with dB above it, so z² (and mean_c z²) is monotone in every band's level. The earlier
mapping z = (d + 20)/21 put silence at z ≈ −2.9, z² ≈ 8.2, more "energy" than a 0 dB frame
(`loudness_check`: Spearman(mean_c z², frame RMS dB) −0.88 on sparse bursts, −0.01 on a
crescendo; now 0.93 and 1.00). Any affine map with silence at zero has this property and moves
the mean away from zero; the map stays affine so decoding inverts it exactly: the Griffin-Lim
round trip of 16 rendered 6 s clips is 0.65 dB of log-mel error over all bins and 0.48 dB within
60 dB of each peak, with the old mapping and the new.

DB_SCALE = 21 dB per latent unit is the standard deviation of d over 300 clips of the cpu-profile
chamber corpus (peak-normalised to 0.9, 22.05 kHz, n_fft 2048, 64 mels: mean −19.8 dB, std
21.1 dB; per texture the mean runs from −28 dB, percussive, to −10 dB, sustained). Keeping that
unit keeps the content's spread at std ≈ 1 (350 finetune clips: mean 2.86, std 1.01, min 0.11;
before: mean 0.00, std 1.01), so the rectified-flow balance between the data's variation and the
unit noise at a given t (content SNR (1 − t)²/t²) and the barrier's softmax temperature per dB
stay as they were; only the mean moves, by 60/21 ≈ 2.9 (a constant offset of the velocity
target, which the DiT's output bias learns). Scaling to unit second moment instead (≈ 64 dB per
unit) would shrink the content's std to 0.33 (content SNR 9× lower at every t) and squeeze frame
energies into a range where softmax_t is nearly uniform. Measured on the same 350 clips, the
barrier's weight at the true velocity target v = ε − z, per texture (sustained, mixed, plucked,
percussive): new 0.39, 0.47, 0.57, 0.70; old mapping 0.12, 0.14, 0.14, 0.20; unit second moment
0.12, 0.12, 0.12, 0.15. Only the chosen mapping lets the barrier tell flat from contrasted clips.
The offset has a price: the DiT must also learn the t-dependent mean (1 − t)·m of x_t. Pretraining
the smoke-profile DiT on the same 48 clips, the loss at equal steps is 1.28× (400 steps) to 1.33×
(1200 steps) that of the zero-mean mapping (which reaches in 600 steps the loss this one reaches
in 1200); after 400 steps it grows about linearly with the mean: 0.82, 0.87, 0.92, 0.98, 1.06 at
means 0, 0.94, 1.42, 1.89, 2.85. A higher floor (less offset) would buy little of it back and
lose dynamic range; the barrier's meaning is worth the steps.
At 22050 Hz with hop 1024 there are 22050/1024 ≈ 21.5 frames per second, the frame rate of
Stable Audio's latents; a clip of S samples gives T = 1 + S // hop_length frames.

Decoding inverts each step: d = z·DB_SCALE + DB_FLOOR, M = 10^(d/10); the linear power spectrum
starts from the least-squares (minimum-norm) solution P₀ = clamp(F⁺ · M, ≥ 0) + AMIN, F⁺ the
Moore–Penrose pseudo-inverse of the filterbank (no scipy NNLS), refined by `mel_inverse_iters`
batched multiplicative updates that fit F·P to M in the Itakura–Saito divergence (Févotte,
Bertin & Durrieu 2009, NMF with the basis F fixed):

    P_{k+1} = P_k ⊙ Fᵀ(M ⊙ (F P_k)^−2) / Fᵀ((F P_k)^−1)

Each update is a few small matmuls and keeps P ≥ 0. The IS divergence is scale-invariant, so
quiet bands are fitted as well as loud ones, which is what a log-mel error measures: on a
harmonic tone the clamped pseudo-inverse alone (like any linear least-squares fit, NNLS
included) is ≈ 10 dB off in the bands within 60 dB of the peak, ten IS updates ≈ 0.2 dB. The
magnitude is √P, and the phase comes from a batched torch "fast Griffin-Lim" (Perraudin,
Balazs & Søndergaard 2013, the algorithm of `librosa.griffinlim` with momentum 0.99):

    c_0 = |S| · a_0,   a_0 = 1 (zero phase) or exp(2πi·U), U ~ Uniform[0, 1) from `generator`
    for n = 1 .. N:    t_n = STFT(ISTFT(|S| · a_{n−1}))
                       a_n = (t_n − α/(1 + α) · t_{n−1}) / |…|,   α = 0.99, t_0 = 0
    y = ISTFT(|S| · a_N)

With `generator=None` the initial phase is zero, so decoding is deterministic and every clip of a
batch is decoded exactly as it would be alone; with a `torch.Generator` the initial phases are
drawn from it (one draw of shape [B, F, T] for the batch), deterministic for a given seed.
"""

from __future__ import annotations

import math

import librosa
import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from .barrier import temporal_entropy

AMIN = 1e-8         # power floor before the log: −80 dB
DB_FLOOR = -80.0    # 10·log10(AMIN): the level that maps to z = 0 (silence)
DB_SCALE = 21.0     # dB per latent unit: the std of d over 300 cpu-profile chamber clips (21.1 dB)
NORMALISATION = "floor"  # names the mapping z = (d − DB_FLOOR)/DB_SCALE in cache keys (was z = (d + 20)/21)
GL_MOMENTUM = 0.99  # librosa.griffinlim's default momentum


class MelCodec:
    """Normalised log-mel codec with a batched torch Griffin-Lim decoder (see the module docstring).

    `encode` and `decode` run on the device of their input tensor; no torch thread settings are
    touched. Latents have `n_mels` channels (`latent_channels` is the same number).
    """

    def __init__(self, sample_rate: int = 22050, n_mels: int = 64, n_fft: int = 2048,
                 hop_length: int = 1024, griffin_lim_iters: int = 32, mel_inverse_iters: int = 10) -> None:
        self.sample_rate = int(sample_rate)
        self.n_mels = int(n_mels)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.griffin_lim_iters = int(griffin_lim_iters)
        self.mel_inverse_iters = int(mel_inverse_iters)
        self.latent_channels = self.n_mels
        fb = librosa.filters.mel(sr=self.sample_rate, n_fft=self.n_fft, n_mels=self.n_mels)  # [n_mels, F]
        self._fb = torch.from_numpy(fb.astype(np.float32))
        self._fb_pinv = torch.linalg.pinv(torch.from_numpy(fb.astype(np.float64))).float()  # [F, n_mels]
        self._window = torch.hann_window(self.n_fft, periodic=True)
        self._envelopes: dict[tuple[int, str], torch.Tensor] = {}

    def __repr__(self) -> str:
        return (f"MelCodec(sample_rate={self.sample_rate}, n_mels={self.n_mels}, n_fft={self.n_fft}, "
                f"hop_length={self.hop_length}, griffin_lim_iters={self.griffin_lim_iters}, "
                f"mel_inverse_iters={self.mel_inverse_iters})")

    def settings(self) -> dict:
        """The constructor's arguments: MelCodec(**codec.settings()) is this codec."""
        return {"sample_rate": self.sample_rate, "n_mels": self.n_mels, "n_fft": self.n_fft,
                "hop_length": self.hop_length, "griffin_lim_iters": self.griffin_lim_iters,
                "mel_inverse_iters": self.mel_inverse_iters}

    @property
    def cache_key(self) -> str:
        """Identifies the latents this codec produces (used in pre-encoded cache keys)."""
        return f"{self!r} z=(dB-{DB_FLOOR})/{DB_SCALE} amin={AMIN} norm={NORMALISATION}"

    @property
    def frames_per_second(self) -> float:
        """sample_rate / hop_length (≈ 21.5 at 22050 / 1024)."""
        return self.sample_rate / self.hop_length

    def frames(self, seconds: float) -> int:
        """Latent frames of a clip of `seconds`: T = 1 + round(seconds · sr) // hop_length."""
        return 1 + int(round(float(seconds) * self.sample_rate)) // self.hop_length

    def samples(self, frames: int) -> int:
        """Audio samples decoded from `frames` latent frames: (T − 1) · hop_length."""
        return (int(frames) - 1) * self.hop_length

    # -- analysis -------------------------------------------------------------------------

    def _stft(self, y: torch.Tensor) -> torch.Tensor:
        return torch.stft(y, self.n_fft, hop_length=self.hop_length, window=self._window.to(y.device),
                          center=True, pad_mode="constant", return_complex=True)

    def _istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """Inverse STFT, equal to torch.istft(center=True, length=length) (to float32 rounding).

        When hop_length divides n_fft (the default 2048 / 1024) the overlap-add is done here:
        irfft of every frame × window, frames summed at their hops, divided by the summed squared
        window (computed once per frame count). torch.istft rebuilds that envelope and runs a
        general `fold` on every call, which made it two thirds of the Griffin-Lim time.
        """
        if self.n_fft % self.hop_length:
            return torch.istft(spec, self.n_fft, hop_length=self.hop_length, window=self._window.to(spec.device),
                               center=True, length=length)
        window = self._window.to(spec.device)
        frames = torch.fft.irfft(spec.transpose(-1, -2), n=self.n_fft, dim=-1).mul_(window)  # [B, T, n_fft]
        pad = self.n_fft // 2
        y = _overlap_add(frames, self.hop_length)[..., pad:pad + length]
        return y * self._inverse_envelope(spec.shape[-1], spec.device)[pad:pad + length]

    def _inverse_envelope(self, n_frames: int, device: torch.device) -> torch.Tensor:
        """1 / Σ_t w²[n − t·hop] (clamped at 1e-11, as torch.istft) for `n_frames` frames, cached."""
        key = (n_frames, str(device))
        if key not in self._envelopes:
            w2 = self._window.to(device).square().expand(1, n_frames, self.n_fft)
            self._envelopes = {key: 1.0 / _overlap_add(w2, self.hop_length)[0].clamp_min(1e-11)}
        return self._envelopes[key]

    def mel_power(self, audio: torch.Tensor | np.ndarray) -> torch.Tensor:
        """M[b, m, t] = Σ_f F[m, f]·|STFT(y_b)[f, t]|² (librosa.feature.melspectrogram, power=2)."""
        y = _as_batch(audio)
        power = self._stft(y).abs().pow(2)
        return torch.matmul(self._fb.to(y.device), power)

    def encode(self, audio: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Latents z [B, n_mels, T] = (10·log10(max(M, AMIN)) − DB_FLOOR) / DB_SCALE, ≥ 0.

        `audio`: float mono, shape [B, S] or [S] (a single clip gives B = 1), tensor or array.
        """
        return db_to_latents(10.0 * torch.log10(self.mel_power(audio).clamp_min(AMIN)))

    # -- synthesis ------------------------------------------------------------------------

    def mel_to_power(self, mel: torch.Tensor) -> torch.Tensor:
        """Linear power P [B, F, T] ≥ 0 from mel power M [B, n_mels, T]: clamped pseudo-inverse,
        then `mel_inverse_iters` Itakura–Saito updates P ← P ⊙ Fᵀ(M (FP)^−2) / Fᵀ((FP)^−1)."""
        fb = self._fb.to(mel.device)
        power = torch.matmul(self._fb_pinv.to(mel.device), mel).clamp_min(0.0) + AMIN
        for _ in range(self.mel_inverse_iters):
            approx = torch.matmul(fb, power).clamp_min(1e-12)
            numer = torch.matmul(fb.T, mel / approx.square())
            power = power * numer / torch.matmul(fb.T, 1.0 / approx).clamp_min(1e-30)  # bins no filter covers → 0
        return power

    def latents_to_magnitude(self, latents: torch.Tensor) -> torch.Tensor:
        """|S| [B, F, T] = √P with P = mel_to_power(10^((z·DB_SCALE + DB_FLOOR)/10))."""
        z = torch.as_tensor(latents).float()
        if z.dim() == 2:
            z = z.unsqueeze(0)
        mel = torch.pow(10.0, latents_to_db(z) / 10.0)
        return self.mel_to_power(mel).sqrt()

    def griffin_lim(self, magnitude: torch.Tensor, n_iter: int, length: int,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """Batched fast Griffin-Lim (momentum 0.99) of |S| [B, F, T] → audio [B, length].

        Initial phase: zero when `generator` is None, else uniform random drawn from `generator`.
        """
        mag = magnitude.float()
        if generator is None:
            angles = torch.ones_like(mag, dtype=torch.complex64)
        else:
            u = torch.rand(mag.shape, generator=generator, device=generator.device).to(mag.device)
            angles = torch.polar(torch.ones_like(mag), 2.0 * math.pi * u)
        spec = mag * angles
        rebuilt = torch.zeros_like(spec)
        beta = GL_MOMENTUM / (1.0 + GL_MOMENTUM)
        tiny = torch.finfo(torch.float32).tiny
        for _ in range(int(n_iter)):
            previous = rebuilt
            rebuilt = self._stft(self._istft(spec, length))
            angles = previous.mul_(-beta).add_(rebuilt)        # t_n − β·t_{n−1}, in place
            scale = angles.abs().add_(tiny)
            spec = angles.mul_(torch.div(mag, scale, out=scale))  # |S| · a_n
        return self._istft(spec, length)

    def decode(self, latents: torch.Tensor, n_iter: int | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Audio [B, S] with S = (T − 1)·hop_length from latents [B, n_mels, T] (or [n_mels, T]).

        `n_iter` Griffin-Lim iterations (default `griffin_lim_iters`); `generator` as in
        `griffin_lim`. Runs under no_grad on the latents' device.
        """
        with torch.no_grad():
            mag = self.latents_to_magnitude(latents)
            length = self.samples(mag.shape[-1])
            n = self.griffin_lim_iters if n_iter is None else int(n_iter)
            return self.griffin_lim(mag, n, length, generator=generator)


def db_to_latents(db: torch.Tensor) -> torch.Tensor:
    """z = (d − DB_FLOOR) / DB_SCALE: log-mel dB to latents (0 at the −80 dB floor)."""
    return (db - DB_FLOOR) / DB_SCALE


def latents_to_db(z: torch.Tensor) -> torch.Tensor:
    """d = z·DB_SCALE + DB_FLOOR: latents back to log-mel dB (the inverse of db_to_latents)."""
    return z * DB_SCALE + DB_FLOOR


def _as_batch(audio: torch.Tensor | np.ndarray) -> torch.Tensor:
    """A float32 tensor [B, S] from audio [B, S] or [S] (tensor or array)."""
    y = torch.as_tensor(np.asarray(audio, dtype=np.float32) if isinstance(audio, np.ndarray) else audio)
    y = y.float()
    if y.dim() == 1:
        y = y.unsqueeze(0)
    if y.dim() != 2:
        raise ValueError(f"MelCodec.encode: audio must be [B, S] or [S], got shape {tuple(y.shape)}")
    return y


def _overlap_add(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """y[b, t·hop + n] = Σ frames[b, t, n] for frames [B, T, N] with hop dividing N → [B, (T−1)·hop + N]."""
    b, t, n = frames.shape
    r = n // hop
    parts = frames.reshape(b, t, r, hop)
    out = frames.new_zeros(b, t + r - 1, hop)
    for k in range(r):
        out[:, k:k + t] += parts[:, :, k]
    return out.reshape(b, -1)


# --------------------------------------------------------------------------------------------
# loudness check: does latent frame energy mean loudness? (docs/design.md §1.2, §2)

LOUDNESS_SIGNALS = ("bursts", "crescendo", "drone")  # the order the barrier's entropy must follow


def loudness_signals(sample_rate: int, seconds: float = 6.0, seed: int = 0) -> dict[str, np.ndarray]:
    """Three clips of known loudness, float32 mono at `sample_rate`:

    - crescendo: a harmonic tone (110 Hz, partials 1/k, k = 1..6) whose level rises linearly in dB
      from −60 dB to 0 dB (peak 0.5) over the clip, with 20 ms fades: loudness grows steadily;
    - bursts: silence with 6 white-noise bursts (peak 0.5, decay e^(−t/40 ms)) at evenly spaced
      onsets jittered by ±0.1 s (from `seed`): energy in a few frames;
    - drone: the same harmonic tone at a constant 0.5 peak (20 ms fades): flat loudness.
    """
    sr, n = int(sample_rate), int(round(seconds * sample_rate))
    t = np.arange(n) / sr
    tone = sum(np.sin(2 * np.pi * 110.0 * k * t) / k for k in range(1, 7))
    tone = tone / np.abs(tone).max()
    fade = np.minimum(1.0, np.minimum(t, seconds - t) / 0.02)  # no click at the clip's ends
    crescendo = 0.5 * tone * fade * 10.0 ** ((-60.0 + 60.0 * t / seconds) / 20.0)
    drone = 0.5 * tone * fade
    rng = np.random.default_rng(seed)
    bursts = np.zeros(n)
    for onset in (np.arange(6) + 0.5) * seconds / 6 + rng.uniform(-0.1, 0.1, 6):
        start = int(onset * sr)
        k = np.arange(n - start) / sr
        bursts[start:] += 0.5 * rng.standard_normal(n - start) * np.exp(-k / 0.04)
    return {"bursts": bursts.astype(np.float32), "crescendo": crescendo.astype(np.float32),
            "drone": drone.astype(np.float32)}


def frame_rms_db(audio: np.ndarray, n_frames: int, hop: int, centred: bool = True) -> np.ndarray:
    """Hann-weighted RMS level in dB of `n_frames` frames of width 2·hop, centred at k·hop
    (`centred`, as MelCodec's STFT) or at (k + 0.5)·hop; zero padding outside the clip;
    10·log10(mean square + 1e−12), so digital silence is −120 dB."""
    y = np.pad(np.asarray(audio, dtype=np.float64), (2 * hop, 2 * hop))
    w = np.hanning(2 * hop + 1)[:-1]
    out = np.empty(n_frames)
    for k in range(n_frames):
        centre = 2 * hop + (k * hop if centred else int((k + 0.5) * hop))
        seg = y[centre - hop:centre + hop]
        out[k] = 10.0 * np.log10(float(np.sum(w * seg**2) / np.sum(w)) + 1e-12)
    return out


def _loudness_latents(codec, sample_rate: int | None, seconds: float) -> tuple[dict, torch.Tensor, dict]:
    """(signals, latents [3, C, T], {signal: frame RMS dB [T]}) for `loudness_signals` through `codec`."""
    sr = int(sample_rate or codec.sample_rate)
    signals = loudness_signals(sr, seconds)
    z = torch.as_tensor(codec.encode(np.stack([signals[k] for k in LOUDNESS_SIGNALS]))).float().cpu()
    n_samples, n_frames = len(signals["drone"]), int(z.shape[-1])
    hop = int(getattr(codec, "hop_length", 0) or getattr(codec, "hop", 0) or round(n_samples / n_frames))
    centred = n_frames == 1 + n_samples // hop
    rms = {k: frame_rms_db(signals[k], n_frames, hop, centred) for k in LOUDNESS_SIGNALS}
    return signals, z, rms


def loudness_frames(codec, sample_rate: int | None = None, seconds: float = 6.0) -> pd.DataFrame:
    """Per latent frame of each `loudness_signals` clip: its RMS level and its latent energy.
    Columns: signal, frame, rms_db, energy (= mean_c z²). `codec` is anything with
    `encode(audio [B, S]) -> latents [B, C, T]` and `sample_rate` (MelCodec, SA3Codec)."""
    _, z, rms = _loudness_latents(codec, sample_rate, seconds)
    energy = z.pow(2).mean(dim=1).numpy()
    return pd.DataFrame([{"signal": k, "frame": f, "rms_db": float(rms[k][f]), "energy": float(energy[i, f])}
                         for i, k in enumerate(LOUDNESS_SIGNALS) for f in range(z.shape[-1])])


def loudness_check(codec, sample_rate: int | None = None, seconds: float = 6.0) -> pd.DataFrame:
    """Does the codec's latent energy mean loudness? One row per signal of `loudness_signals`.
    Columns:

    - spearman: Spearman rank correlation over the clip's frames of (energy = mean_c z², frame
      RMS dB); should be ≥ 0.9 where the level varies (bursts, crescendo). On the drone the level
      is constant (range a few dB, from the fades), so its value only ranks edge frames and
      noise: reported, not judged. Frames are compared within a clip, as the barrier's softmax
      over t does: across timbres mean_c z² also counts how many bands rise above the floor, so a
      quiet noise can outweigh a louder pure tone;
    - entropy: barrier.temporal_entropy of the clip's latents (as the barrier reads frame energy);
      should order bursts < crescendo < drone;
    - rms_db_range, energy_min, energy_max, frames.
    """
    _, z, rms = _loudness_latents(codec, sample_rate, seconds)
    energy = z.pow(2).mean(dim=1).numpy()
    h = temporal_entropy(z).numpy()
    rows = []
    for i, k in enumerate(LOUDNESS_SIGNALS):
        rows.append({"signal": k, "spearman": float(spearmanr(energy[i], rms[k]).statistic), "entropy": float(h[i]),
                     "rms_db_range": float(np.ptp(rms[k])), "energy_min": float(energy[i].min()),
                     "energy_max": float(energy[i].max()), "frames": int(z.shape[-1])})
    return pd.DataFrame(rows)
