"""Per-clip and set metrics for the claims C2 and C5–C8 (docs/design.md §1.6, §4).

Every per-clip metric works on a mono float waveform `y` at rate `sr`. Spectral features are
computed at one fixed analysis rate and frame grid, ANALYSIS_SR = 22050 Hz, N_FFT = 2048,
HOP = 512 (≈ 43 frames/s), so the numbers do not depend on the rate a clip was rendered or
decoded at: a clip at another rate is resampled first (soxr). `clip_metrics` computes all of
them from one shared STFT; the single-metric functions call the same code.

Per-clip metrics
----------------
- `motif_recurrence`   how much of the clip's pitch material comes back later (C6), in [0, 1];
- `novelty_sections`   sections per minute from a Foote (2000) checkerboard novelty curve (C6);
- `spectral_contrast`  mean librosa spectral contrast in dB (C7);
- `temporal_flatness`  normalised entropy of the frame-RMS distribution, in [0, 1] (C2);
- `clip_embedding`     a raw (unstandardised) texture embedding for the set metrics.

Set metrics (on embeddings standardised with the `reference` split's mean and std)
---------------------------------------------------------------------------------
- `vendi_score`        Friedman & Dieng (2023) with a Gaussian distance kernel whose bandwidth is
                       fixed once from the reference split (`fit_vendi_bandwidth`) (C5, C8);
- `frechet_distance`   the Fréchet distance of two Gaussians fitted to two sets (Heusel et al.
                       2017, as in FID/FAD) (C8);
- `kid`                the unbiased kernel (MMD²) distance of Bińkowski et al. (2018), cubic
                       polynomial kernel, for small sets (C8).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterable, Sequence

import librosa
import numpy as np
import pandas as pd
import scipy.linalg
import scipy.spatial.distance
import soundfile as sf
from scipy.ndimage import uniform_filter1d
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

from .progress import Progress

METRICS_VERSION = 2     # bump when a metric's definition changes: caches keyed on it are recomputed
                        # (2: Gaussian-kernel Vendi with a reference bandwidth, KID, the reference through the codec)
ANALYSIS_SR = 22050
N_FFT = 2048
HOP = 512
N_MFCC = 20
N_CHROMA = 12
N_CONTRAST_BANDS = 6  # librosa returns n_bands + 1 = 7 rows

# motif_recurrence
REC_POOL = 4            # average 4 STFT frames → ≈ 10.8 chroma frames/s
REC_STACK = 4           # time-delay embedding: 4 pooled frames ≈ 0.37 s of context per vector
REC_MIN_LAG_S = 1.0     # only lags of at least 1 s count as recurrence (no self-/near-diagonal)
REC_MAX_LAG_FRAC = 0.5  # and at most half the clip, so every lag is averaged over ≥ half the frames
REC_NORM_FLOOR = 0.25   # stacked departure vectors shorter than this (L1-chroma units) are not scaled up

# novelty_sections
NOV_POOL = 4            # ≈ 10.8 feature frames/s
NOV_SMOOTH_S = 1.0      # features are averaged over 1 s: sections, not notes
NOV_N_MFCC = 12         # MFCC 1..12: spectral envelope (timbre) without loudness (c0) or pitch detail
NOV_MFCC_FLOOR = 40.0   # departures shorter than this (MFCC units) are not scaled up
NOV_CHROMA_FLOOR = 0.3  # the same for the L1 chroma departures
NOV_W_TIMBRE = 0.75     # S = 0.75·S_timbre + 0.25·S_chroma
NOV_KERNEL_S = 1.0      # half-width of the checkerboard kernel, seconds
NOV_DELTA = 0.10        # a boundary's novelty must exceed its ±2 s local mean by 0.10 (novelty ∈ [−1, 1])
NOV_MIN_HEIGHT = 0.35   # and be at least 0.35 in absolute terms
NOV_MIN_GAP_S = 1.0     # boundaries at least 1 s apart

SILENCE_RMS = 1e-5      # below this overall RMS a clip counts as silent


# ----------------------------------------------------------------------------- shared features


@dataclass
class Features:
    """The shared analysis of one clip at ANALYSIS_SR (one STFT; everything else derives from it)."""

    y: np.ndarray | None   # waveform at ANALYSIS_SR (None when analysed from a log-mel)
    mag: np.ndarray        # |STFT| [1 + N_FFT/2, T]
    mel_db: np.ndarray     # log-mel power [128, T], dB, floored 80 dB below the clip's peak
    mfcc: np.ndarray       # [N_MFCC, T]
    chroma_energy: np.ndarray  # chroma_stft [12, T], unnormalised energy per pitch class
    chroma: np.ndarray     # the same, each frame max-normalised (librosa's default)
    contrast: np.ndarray   # spectral contrast [7, T], dB
    duration_s: float
    hop: int = HOP         # the frame grid: HOP for audio, the codec's hop for a log-mel (`features_from_magnitude`)
    rms: np.ndarray | None = None  # frame RMS [T] (the log-mel path's loudness curve; the audio path reads `y`)


def to_analysis_rate(y: np.ndarray, sr: int) -> np.ndarray:
    """Mono float32 at ANALYSIS_SR (librosa.resample, soxr_hq), NaN/inf set to 0, at least N_FFT long.

    A multichannel array [channels, samples] is averaged to mono (librosa.to_mono).
    """
    y = np.asarray(y, dtype=np.float32)
    y = librosa.to_mono(y) if y.ndim > 1 else y
    y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
    if sr != ANALYSIS_SR:
        y = librosa.resample(y, orig_sr=sr, target_sr=ANALYSIS_SR, res_type="soxr_hq").astype(np.float32)
    if len(y) < N_FFT:
        y = np.pad(y, (0, N_FFT - len(y)))
    return y


@lru_cache(maxsize=1)
def _filterbanks() -> tuple[np.ndarray, np.ndarray]:
    """librosa's mel (128 bands) and chroma (12, tuning 0) filter banks for the fixed analysis grid."""
    mel = librosa.filters.mel(sr=ANALYSIS_SR, n_fft=N_FFT).astype(np.float32)
    chroma = librosa.filters.chroma(sr=ANALYSIS_SR, n_fft=N_FFT, tuning=0.0).astype(np.float32)
    return mel, chroma


def features(y: np.ndarray, sr: int) -> Features:
    """One STFT (N_FFT, HOP, Hann, centred) and the spectral features every metric uses.

    The mel spectrogram and chroma are librosa's filter banks applied to the one power
    spectrogram (the same numbers as librosa.feature.melspectrogram / chroma_stft(norm=None,
    tuning=0), with the banks built once and applied as a plain matrix product).
    """
    y = to_analysis_rate(y, sr)
    mag = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP))
    f = _spectral(mag, HOP, len(y) / ANALYSIS_SR)
    f.y = y
    return f


def _spectral(mag: np.ndarray, hop: int, duration_s: float) -> Features:
    """Every spectral feature from |STFT| [1 + N_FFT/2, T] at ANALYSIS_SR on a grid of `hop` samples."""
    power = mag**2
    mel_fb, chroma_fb = _filterbanks()
    mel_db = librosa.power_to_db(mel_fb @ power, ref=1.0, top_db=80.0)
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=N_MFCC)
    chroma_energy = chroma_fb @ power
    chroma = librosa.util.normalize(chroma_energy, norm=np.inf, axis=0)
    contrast = librosa.feature.spectral_contrast(S=mag, sr=ANALYSIS_SR, n_fft=N_FFT, n_bands=N_CONTRAST_BANDS)
    rms = librosa.feature.rms(S=mag, frame_length=N_FFT)[0]
    return Features(y=None, mag=mag, mel_db=mel_db, mfcc=mfcc, chroma_energy=chroma_energy, chroma=chroma,
                    contrast=contrast, duration_s=duration_s, hop=int(hop), rms=rms)


def mel_grid_ok(sample_rate: int, n_fft: int, hop: int) -> bool:
    """Whether a log-mel codec's grid is the analysis grid (ANALYSIS_SR, N_FFT) with a hop that
    divides the pooling windows (HOP·REC_POOL and HOP·NOV_POOL samples): then `features_from_magnitude`
    reads the codec's log-mel on the same frequency bins and at the same pooled frame rate as audio."""
    return (int(sample_rate) == ANALYSIS_SR and int(n_fft) == N_FFT
            and all((HOP * k) % int(hop) == 0 for k in (REC_POOL, NOV_POOL)))


LOG_MEL, AUDIO = "log-mel", "audio"  # how the outcome metrics read a generated clip (`analysis_of`)


def analysis_of(codec) -> str:
    """How the outcome metrics read a clip of this codec (docs/design.md §4): LOG_MEL when its
    latents are a log-mel on the analysis grid (the embedded MelCodec at 22050 Hz and n_fft 2048,
    `mel_grid_ok`; it offers `latents_to_magnitude`), so the metrics read what the model generated
    with no Griffin-Lim phase estimate in between; else AUDIO (a learned autoencoder: decode, then
    analyse the waveform)."""
    grid = [getattr(codec, k, None) for k in ("sample_rate", "n_fft", "hop_length")]
    ok = hasattr(codec, "latents_to_magnitude") and None not in grid and mel_grid_ok(*grid)
    return LOG_MEL if ok else AUDIO


def features_from_magnitude(mag: np.ndarray, hop: int, seconds: float | None = None) -> Features:
    """The shared analysis of a clip given as |S| [1 + N_FFT/2, T] at ANALYSIS_SR on a grid of `hop`
    samples, with no waveform: the log-mel path (docs/design.md §4). For the embedded codec `mag` is
    `MelCodec.latents_to_magnitude(z)`, the linear magnitude its 64-band log-mel implies, so the
    metrics read what the model generated and no Griffin-Lim phase estimate sits in between. The
    features are those of `features` (mel, MFCC, chroma, contrast from the one power spectrogram),
    the pooled structure features run at the same frames per second (`_pool_size`), and the
    loudness curve is the frame RMS of the spectrum (librosa.feature.rms(S=...)). `seconds`: the
    clip's length (default (T − 1)·hop / ANALYSIS_SR, the length a codec decodes T frames to)."""
    mag = np.asarray(mag, dtype=np.float32)
    if mag.ndim != 2 or mag.shape[0] != 1 + N_FFT // 2:
        raise ValueError(f"features_from_magnitude: need |S| [{1 + N_FFT // 2}, T], got shape {mag.shape}")
    duration = max(mag.shape[1] - 1, 1) * int(hop) / ANALYSIS_SR if seconds is None else float(seconds)
    return _spectral(mag, hop, duration)


def _pool_size(f: Features, pool_at_hop: int) -> int:
    """Frames to average for the rate that `pool_at_hop` frames of HOP give (4 at HOP; 2 at hop 1024)."""
    return max(int(round(pool_at_hop * HOP / f.hop)), 1)


def _is_silent(f: Features) -> bool:
    if f.y is not None:
        return float(np.sqrt(np.mean(f.y.astype(np.float64) ** 2))) < SILENCE_RMS
    return float(np.sqrt(np.mean(np.asarray(f.rms, dtype=np.float64) ** 2))) < SILENCE_RMS


def _pool(x: np.ndarray, k: int) -> np.ndarray:
    """Mean over non-overlapping blocks of k frames (the last partial block is dropped, keeps ≥ 1)."""
    n = max(x.shape[1] // k, 1)
    x = x[:, : n * k] if x.shape[1] >= k else x
    return x.reshape(x.shape[0], n, -1).mean(axis=2)


def _departures(x: np.ndarray, floor: float) -> np.ndarray:
    """Centre each row on its clip mean; scale columns to unit norm, but never up from below `floor`."""
    x = x - x.mean(axis=1, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=0, keepdims=True), floor)


# ----------------------------------------------------------------------------- motif recurrence


def _motif_recurrence(f: Features) -> float:
    if _is_silent(f):
        return 0.0
    pool = _pool_size(f, REC_POOL)
    fps = ANALYSIS_SR / f.hop / pool
    c = _pool(f.chroma_energy, pool)
    c = c / np.maximum(c.sum(axis=0, keepdims=True), 1e-10)     # L1: each frame's pitch-class distribution
    x = librosa.feature.stack_memory(c, n_steps=REC_STACK, delay=1, mode="edge")
    x = x[:, REC_STACK - 1:]                                    # drop the edge-padded frames
    n = x.shape[1]
    min_lag = int(np.ceil(REC_MIN_LAG_S * fps))
    max_lag = int(np.floor(REC_MAX_LAG_FRAC * n))
    if max_lag < min_lag:
        return 0.0
    x = _departures(x, REC_NORM_FLOOR)                          # departures from the clip's mean, floored
    ssm = x.T @ x                                               # floored cosine similarity, [-1, 1]
    profile = np.array([np.diagonal(ssm, lag).mean() for lag in range(min_lag, max_lag + 1)])
    return float(np.clip(profile.max(), 0.0, 1.0))


def motif_recurrence(y: np.ndarray, sr: int) -> float:
    """Recurrence of pitch material: the best lag's mean time-delayed chroma similarity, in [0, 1].

    Rule. Chroma energy (from the shared STFT, tuning fixed at 0) is averaged to ≈ 10.8 frames/s,
    each frame L1-normalised to a pitch-class distribution and centred on the clip's mean
    distribution, so a vector d_t describes how the pitch content departs from the clip's overall
    key. Four consecutive frames are stacked (time-delay embedding, ≈ 0.37 s: a melodic fragment,
    not a single chord), x_t = d_t / max(|d_t|, 0.25), and S[i, j] = x_i · x_j ∈ [−1, 1] (cosine
    similarity, except that departures shorter than 0.25 are not scaled up: a drone, a held chord
    or its slow beating has no material to recur; a change of melody note has |d| ≈ 1). For each
    lag ℓ from 1 s to half the clip the lag profile R(ℓ) = mean_t S[t, t + ℓ] is the average
    similarity of the clip with itself shifted by ℓ; the score is max(0, max_ℓ R(ℓ)).

    Why it is not fixed by construction: nothing is ranked or thresholded to a quota (unlike a
    k-nearest-neighbour recurrence matrix, whose density is set by k), so its value ranges over
    [0, 1] with the audio. A motif played n times gives R(period) ≈ 1 over (n−1)/n of the frames;
    the same notes in random order have no single lag at which the clip lines up with itself, so
    R stays low; noise and drones give ≈ 0; silence gives 0. Lags are capped at half the clip so
    each R(ℓ) averages at least half of the frames.
    """
    return _motif_recurrence(features(y, sr))


# ----------------------------------------------------------------------------- novelty sections


def _checkerboard_kernel(half: int) -> np.ndarray:
    """Foote's Gaussian-tapered checkerboard kernel of size 2·half, normalised to Σ|K| = 1."""
    sign = np.concatenate([-np.ones(half), np.ones(half)])
    grid = np.arange(-half, half) + 0.5
    taper = np.exp(-0.5 * (grid / (0.5 * half)) ** 2)
    k = np.outer(sign, sign) * np.outer(taper, taper)
    return k / np.abs(k).sum()


def _novelty_curve(f: Features) -> tuple[np.ndarray, float]:
    """Foote novelty over the clip (0 where the kernel does not fit) and its frame rate."""
    pool = _pool_size(f, NOV_POOL)
    fps = ANALYSIS_SR / f.hop / pool
    smooth = max(int(round(NOV_SMOOTH_S * fps)), 1)
    mfcc = uniform_filter1d(_pool(f.mfcc[1:NOV_N_MFCC + 1], pool), smooth, axis=1, mode="nearest")
    chroma = uniform_filter1d(_pool(f.chroma_energy, pool), smooth, axis=1, mode="nearest")
    chroma = chroma / np.maximum(chroma.sum(axis=0, keepdims=True), 1e-10)
    timbre, pitch = _departures(mfcc, NOV_MFCC_FLOOR), _departures(chroma, NOV_CHROMA_FLOOR)
    ssm = NOV_W_TIMBRE * (timbre.T @ timbre) + (1.0 - NOV_W_TIMBRE) * (pitch.T @ pitch)
    half = max(int(round(NOV_KERNEL_S * fps)), 2)
    kernel = _checkerboard_kernel(half)
    n = ssm.shape[0]
    nov = np.zeros(n)
    for t in range(half, n - half + 1):
        nov[t] = np.sum(kernel * ssm[t - half: t + half, t - half: t + half])
    return nov, fps


def _novelty_sections(f: Features) -> float:
    if _is_silent(f):
        return 60.0 / f.duration_s
    nov, fps = _novelty_curve(f)
    w = max(int(round(NOV_MIN_GAP_S * fps)), 1)
    peaks = librosa.util.peak_pick(nov, pre_max=w, post_max=w, pre_avg=2 * w, post_avg=2 * w,
                                   delta=NOV_DELTA, wait=w)
    peaks = [p for p in peaks if nov[p] >= NOV_MIN_HEIGHT]
    return (len(peaks) + 1) * 60.0 / f.duration_s


def novelty_sections(y: np.ndarray, sr: int) -> float:
    """Sections per minute: (number of novelty boundaries + 1) / clip length in minutes.

    Foote (2000), "Automatic audio segmentation using a measure of audio novelty". Features,
    averaged to ≈ 10.8 frames/s and smoothed over 1 s (sections, not single notes): timbre =
    MFCC 1–12, pitch = chroma as a pitch-class distribution. Each is centred on its clip mean
    and scaled to unit norm, except that departures below a floor (40 MFCC units, 0.3 chroma)
    are not scaled up, so a steady texture's small fluctuations stay small. The self-similarity
    matrix S = 0.75·S_timbre + 0.25·S_chroma (cosines, in [−1, 1]) is correlated along its
    diagonal with a Gaussian-tapered checkerboard kernel (half-width 1 s, Σ|K| = 1, so novelty
    lies in [−1, 1]). A boundary is a peak of that curve (librosa.util.peak_pick: the maximum
    within ±1 s, ≥ 1 s after the previous one) that exceeds its ±2 s local mean by 0.10 and is at
    least 0.35 in absolute terms (fixed thresholds: the count is not set by construction). The
    kernel is only evaluated where it fits inside the clip (no zero-padding artefacts), so a
    boundary within 1 s of either end cannot be found. One unchanging texture gives 1 section
    (60 / duration per minute, 10 for a 6 s clip); silence counts as one section.
    """
    return _novelty_sections(features(y, sr))


# ----------------------------------------------------------------------------- spectral contrast


def spectral_contrast(y: np.ndarray, sr: int) -> float:
    """Mean over bands and frames of librosa.feature.spectral_contrast (dB), at 22050 Hz, n_fft 2048.

    Contrast per octave band = log-power of the band's peak quantile minus its valley quantile
    (Jiang et al. 2002). The analysis rate and FFT size are fixed so the bands are the same for
    every clip. Silence gives a finite (≈ 0 dB) value.
    """
    return float(features(y, sr).contrast.mean())


# ----------------------------------------------------------------------------- temporal flatness


def temporal_flatness(y: np.ndarray, sr: int) -> float:
    """Normalised entropy of the frame-RMS distribution, in [0, 1] (1 = flat energy over time).

    e_t = librosa.feature.rms(y=y, frame_length=2048, hop_length=512)[0, t]  (RMS, not squared,
    on y at its own rate, centred frames), p_t = e_t / Σ e, h = −Σ p_t log p_t / log T.
    Silence (Σ e = 0) is perfectly flat: 1.0. Never NaN. This is the audio-side counterpart of the
    barrier's temporal entropy (docs/design.md §2), used for C2.
    """
    y = np.asarray(y, dtype=np.float32)
    y = np.nan_to_num(librosa.to_mono(y) if y.ndim > 1 else y, nan=0.0, posinf=0.0, neginf=0.0)
    return flatness_of(librosa.feature.rms(y=y, frame_length=2048, hop_length=512)[0])


def flatness_of(rms: np.ndarray) -> float:
    """h = −Σ p_t log p_t / log T with p_t = e_t / Σ e (`temporal_flatness`'s rule on a frame-RMS
    curve e; the log-mel path passes Features.rms). Silence is 1.0; never NaN."""
    e = np.asarray(rms, dtype=np.float64)
    total = e.sum()
    if e.size < 2 or not np.isfinite(total) or total <= 0.0:
        return 1.0
    p = e / total
    nz = p[p > 0]
    return float(np.clip(-(nz * np.log(nz)).sum() / np.log(e.size), 0.0, 1.0))


# ----------------------------------------------------------------------------- embedding


def _embedding(f: Features) -> np.ndarray:
    onset = librosa.onset.onset_strength(S=f.mel_db, sr=ANALYSIS_SR)
    centroid = librosa.feature.spectral_centroid(S=f.mag, sr=ANALYSIS_SR, n_fft=N_FFT)[0]
    flatness = librosa.feature.spectral_flatness(S=f.mag)[0]
    log_rms = np.log(f.rms + 1e-6)  # the shared analysis' frame RMS (librosa.feature.rms(S=mag, frame_length=N_FFT))
    parts = [
        f.mfcc.mean(axis=1), f.mfcc.std(axis=1),                 # 40: timbre and its variation
        f.contrast.mean(axis=1), f.contrast.std(axis=1),         # 14: peak/valley per octave band
        f.chroma.mean(axis=1),                                   # 12: pitch-class profile
        [onset.mean(), onset.std()],                             # 2: attack density and strength
        [np.log(centroid.mean() + 1.0), np.log(centroid.std() + 1.0)],  # 2: brightness
        [flatness.mean(), flatness.std()],                       # 2: noisiness
        [log_rms.std()],                                         # 1: dynamics (level-free)
    ]
    return np.nan_to_num(np.concatenate([np.asarray(p, dtype=np.float64).ravel() for p in parts])).astype(np.float32)


EMBEDDING_NAMES: tuple[str, ...] = (
    tuple(f"mfcc{i}_mean" for i in range(N_MFCC)) + tuple(f"mfcc{i}_std" for i in range(N_MFCC))
    + tuple(f"contrast{i}_mean" for i in range(N_CONTRAST_BANDS + 1))
    + tuple(f"contrast{i}_std" for i in range(N_CONTRAST_BANDS + 1))
    + tuple(f"chroma{i}_mean" for i in range(N_CHROMA))
    + ("onset_mean", "onset_std", "log_centroid_mean", "log_centroid_std", "flatness_mean", "flatness_std",
       "log_rms_std")
)
EMBEDDING_DIM = len(EMBEDDING_NAMES)


def clip_embedding(y: np.ndarray, sr: int) -> np.ndarray:
    """Raw texture embedding, float32 [EMBEDDING_DIM] (= 73); names in EMBEDDING_NAMES.

    Summary statistics of the shared analysis: mean and std over frames of 20 MFCCs and of the 7
    spectral-contrast bands, mean chroma, mean/std of onset strength, log spectral centroid and
    spectral flatness, and the std of log RMS (loudness variation, independent of overall gain).
    The dimensions have very different scales: standardise with the `reference` split
    (`fit_standardizer` / `standardize` or `EmbeddingStandardizer`) before `vendi_score` or
    `frechet_distance`.
    """
    return _embedding(features(y, sr))


def fit_standardizer(X_reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std (ddof=0) of the reference embeddings; a std of 0 becomes 1."""
    X = np.asarray(X_reference, dtype=np.float64)
    mean, std = X.mean(axis=0), X.std(axis=0)
    return mean, np.where(std > 1e-12, std, 1.0)


def standardize(X: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(X − mean) / std, row-wise."""
    return (np.asarray(X, dtype=np.float64) - mean) / std


class EmbeddingStandardizer:
    """fit on the reference split, transform every set with the same mean and std."""

    def __init__(self) -> None:
        self.mean_: np.ndarray | None = None
        self.std_: np.ndarray | None = None

    def fit(self, X_reference: np.ndarray) -> "EmbeddingStandardizer":
        self.mean_, self.std_ = fit_standardizer(X_reference)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        if self.mean_ is None or self.std_ is None:
            raise RuntimeError("EmbeddingStandardizer.transform called before fit")
        return standardize(X, self.mean_, self.std_)


# ----------------------------------------------------------------------------- set metrics


def default_bandwidth(dim: int) -> float:
    """σ = √(2·D): the expected distance between two independent standardised D-dimensional
    embeddings with uncorrelated unit-variance dimensions (E||x − y||² = 2D). The default of
    `vendi_score` when no bandwidth fitted on a reference split is given."""
    return float(np.sqrt(2.0 * max(int(dim), 1)))


def fit_vendi_bandwidth(Z_reference: np.ndarray) -> float:
    """The Vendi kernel bandwidth, fixed once per run from the reference split: the median
    pairwise Euclidean distance of its (standardised) embeddings (the median heuristic; Gretton
    et al. 2012). Needs ≥ 2 distinct rows."""
    Z = np.asarray(Z_reference, dtype=np.float64)
    if Z.ndim != 2 or len(Z) < 2:
        raise ValueError(f"fit_vendi_bandwidth: need a [N>=2, D] reference array, got shape {Z.shape}")
    d = scipy.spatial.distance.pdist(Z)
    sigma = float(np.median(d))
    if not np.isfinite(sigma) or sigma <= 0.0:
        raise ValueError("fit_vendi_bandwidth: the reference embeddings have zero median pairwise distance")
    return sigma


def vendi_score(X: np.ndarray, bandwidth: float | None = None) -> float:
    """Vendi score (Friedman & Dieng 2023) with a Gaussian distance kernel.

    K_ij = exp(−||x_i − x_j||² / (2σ²)) (K_ii = 1), λ = eigenvalues of K / N (clipped at 0 and
    renormalised to sum 1), VS = exp(−Σ λ log λ): the effective number of distinct items.
    Because K depends only on distances, VS is invariant to translating (and rotating) the whole
    set; it is 1 for N copies of one point, N when the points are far apart compared with σ,
    always in [1, N], and grows as the set spreads out (K → I). The bandwidth σ sets the scale at
    which two clips count as different, so it must be the SAME for every set compared: fit it
    once on the reference split (`fit_vendi_bandwidth`, recorded by evaluate in
    <runs_dir>/metrics/vendi_bandwidth.json). bandwidth=None uses `default_bandwidth(D)` = √(2D),
    the typical distance of two standardised embeddings. (The earlier cosine kernel measured
    angles around the origin: 8 random 73-d points scored 7.6, the same set shifted by a vector of
    norm 50 scored 1.2.) N = 0 gives nan.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        return float("nan")
    sigma = default_bandwidth(X.shape[1]) if bandwidth is None else float(bandwidth)
    if not np.isfinite(sigma) or sigma <= 0.0:
        raise ValueError(f"vendi_score: bandwidth must be a positive number, got {bandwidth!r}")
    sq = scipy.spatial.distance.squareform(scipy.spatial.distance.pdist(X, "sqeuclidean")) if len(X) > 1 \
        else np.zeros((1, 1))
    lam = np.clip(np.linalg.eigvalsh(np.exp(-sq / (2.0 * sigma**2)) / X.shape[0]), 0.0, None)
    lam = lam / lam.sum()
    lam = lam[lam > 1e-15]
    return float(np.clip(np.exp(-(lam * np.log(lam)).sum()), 1.0, X.shape[0]))


def frechet_distance(X: np.ndarray, Y: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to the rows of X and Y (Heusel et al. 2017).

    FD = ||μ_x − μ_y||² + Tr(Σ_x + Σ_y − 2 (Σ_x Σ_y)^{1/2}) with sample covariances (ddof=1) and
    scipy.linalg.sqrtm; when the product is singular (fewer clips than dimensions) or the root is
    not finite, eps·I is added to both covariances (as in the reference FID code). The real part is
    kept and the result clipped at 0. Needs ≥ 2 rows per set.
    """
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[1] or min(len(X), len(Y)) < 2:
        raise ValueError(f"need two [N>=2, D] arrays of the same D, got {X.shape} and {Y.shape}")
    mu_x, mu_y = X.mean(axis=0), Y.mean(axis=0)
    s_x, s_y = np.atleast_2d(np.cov(X, rowvar=False)), np.atleast_2d(np.cov(Y, rowvar=False))
    covmean = scipy.linalg.sqrtm(s_x @ s_y)
    if not np.isfinite(covmean).all() or np.linalg.matrix_rank(s_x @ s_y) < s_x.shape[0]:
        ridge = eps * np.eye(s_x.shape[0])
        covmean = scipy.linalg.sqrtm((s_x + ridge) @ (s_y + ridge))
    covmean = np.real(covmean)
    fd = np.sum((mu_x - mu_y) ** 2) + np.trace(s_x) + np.trace(s_y) - 2.0 * np.trace(covmean)
    return float(max(fd, 0.0))


def kid(X: np.ndarray, Y: np.ndarray) -> float:
    """Kernel distance (KID; Bińkowski et al. 2018): the unbiased estimate of MMD² with the cubic
    polynomial kernel k(x, y) = (xᵀy / D + 1)³.

    MMD²_u = Σ_{i≠j} k(x_i, x_j) / (m(m−1)) + Σ_{i≠j} k(y_i, y_j) / (n(n−1)) − 2 Σ_{i,j} k(x_i, y_j) / (mn).
    Unlike FD it has no bias that depends on the number of samples (its mean over draws from one
    distribution is exactly 0, so single values can be slightly negative; they are not clipped),
    and it needs no covariance estimate: suited to 10–100 clips in 73 dimensions. Inputs should be
    standardised embeddings (the kernel's scale assumes xᵀy/D of order 1). Needs ≥ 2 rows per set.
    """
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[1] or min(len(X), len(Y)) < 2:
        raise ValueError(f"need two [N>=2, D] arrays of the same D, got {X.shape} and {Y.shape}")
    d, m, n = X.shape[1], len(X), len(Y)
    kxx = (X @ X.T / d + 1.0) ** 3
    kyy = (Y @ Y.T / d + 1.0) ** 3
    kxy = (X @ Y.T / d + 1.0) ** 3
    xx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    yy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(xx + yy - 2.0 * kxy.mean())


# ----------------------------------------------------------------------------- all at once

METRIC_COLUMNS: tuple[str, ...] = ("motif_recurrence", "novelty_sections", "spectral_contrast", "temporal_flatness")


def clip_metrics(y: np.ndarray, sr: int) -> dict:
    """All per-clip metrics from one shared analysis: the four scalars and 'embedding' [D]."""
    return _all_metrics(features(y, sr), temporal_flatness(y, sr))


def _all_metrics(f: Features, flatness: float) -> dict:
    return {**{name: float(value(f)) for name, value in FROM_FEATURES.items()}, "temporal_flatness": flatness,
            "embedding": _embedding(f)}


#: metric → its value from a shared analysis (`features` or `features_from_magnitude`)
FROM_FEATURES = {"motif_recurrence": _motif_recurrence, "novelty_sections": _novelty_sections,
                 "spectral_contrast": lambda f: float(f.contrast.mean())}


def magnitude_metrics(mag: np.ndarray, hop: int, seconds: float | None = None) -> dict:
    """All per-clip metrics of a clip given as |S| (`features_from_magnitude`): the log-mel path.
    temporal_flatness is `flatness_of` the spectrum's frame RMS."""
    f = features_from_magnitude(mag, hop, seconds)
    return _all_metrics(f, flatness_of(f.rms))


def _load(item: str | os.PathLike | np.ndarray, sr: int | None) -> tuple[np.ndarray, int]:
    """(mono float32 waveform, its rate). A sound file is read with soundfile, averaged to mono and
    resampled to `sr` (sr=None keeps the file's own rate); an array is taken to be at `sr`."""
    if isinstance(item, (str, os.PathLike)):
        y, file_sr = sf.read(item, dtype="float32", always_2d=True)
        y = y.mean(axis=1)
        if sr is None or sr == file_sr:
            return y, int(file_sr)
        return librosa.resample(y, orig_sr=file_sr, target_sr=sr, res_type="soxr_hq"), sr
    if sr is None:
        raise ValueError("an audio array needs its sample rate: metrics_table(..., sr=<int>)")
    return np.asarray(item, dtype=np.float32), sr


def _flat(m: dict) -> dict:
    """A metrics dict with its embedding spread into emb_0 … emb_{D−1}."""
    emb = m.pop("embedding")
    m.update({f"emb_{i}": float(v) for i, v in enumerate(emb)})
    return m


def _row(item: str | os.PathLike | np.ndarray, sr: int | None) -> dict:
    return _flat(clip_metrics(*_load(item, sr)))


def _rows(items: Sequence, sr: int | None) -> list[dict]:
    """Serial rows with BLAS held to one thread: the matrices are small, and a second BLAS thread
    on a busy 2-core machine only adds contention (measured: mel product 28 ms vs 2 ms)."""
    with threadpool_limits(limits=1):
        return [_row(item, sr) for item in items]


def metrics_table(paths_or_arrays: Iterable, sr: int | None, n_jobs: int = 2) -> pd.DataFrame:
    """One row per clip: METRIC_COLUMNS + emb_0 … emb_{D−1}, in input order.

    Items are sound-file paths (read with soundfile, averaged to mono, resampled to `sr`; sr=None
    keeps each file's own rate — the spectral metrics resample to ANALYSIS_SR in any case) or
    mono arrays at `sr` (then sr is required).

    Parallelism: the clips are cut into 4·n_jobs contiguous chunks that joblib runs on n_jobs loky
    worker processes (each chunk computed serially with BLAS at one thread), so the per-task
    overhead is paid per chunk, not per clip, and the chunks still balance the load. The first
    parallel call of a session starts the workers, and each imports librosa and JIT-compiles its
    numba stencils (≈ 3 s on an idle 2-core machine, more on a busy one); loky keeps them for
    later calls. n_jobs=1 runs in-process: use it for a handful of clips. Measured throughput:
    benchmarks/results/metrics.md.
    """
    items = list(paths_or_arrays)
    if n_jobs == 1 or len(items) <= 1:
        rows = _rows(items, sr)
    else:
        chunks = [c for c in np.array_split(np.arange(len(items)), 4 * n_jobs) if len(c)]
        parts = Parallel(n_jobs=n_jobs, return_as="generator")(delayed(_rows)([items[i] for i in c], sr) for c in chunks)
        parts = list(Progress(parts, total=len(chunks), unit="chunk", desc=f"metrics of {len(items)} clips"))
        rows = [r for part in parts for r in part]
    return pd.DataFrame(rows, columns=_columns())


def _columns() -> list[str]:
    return list(METRIC_COLUMNS) + [f"emb_{i}" for i in range(EMBEDDING_DIM)]


def _magnitude_rows(latents: np.ndarray, to_magnitude: Callable[[np.ndarray], np.ndarray], hop: int,
                    seconds: float | None) -> list[dict]:
    with threadpool_limits(limits=1):
        return [_flat(magnitude_metrics(m, hop, seconds)) for m in to_magnitude(latents)]


def magnitude_table(latents: np.ndarray, to_magnitude: Callable[[np.ndarray], np.ndarray], hop: int,
                    seconds: float | None = None, n_jobs: int = 2, desc: str = "metrics") -> pd.DataFrame:
    """One row per clip (METRIC_COLUMNS + emb_*, in input order) from latents [N, C, T] through the
    log-mel path: `to_magnitude` maps a chunk of latents to |S| [n, 1 + N_FFT/2, T] (for the
    embedded codec, `MelCodec.latents_to_magnitude`; it must be picklable to run in the workers),
    then `magnitude_metrics` (`seconds`: the clips' length). Parallel as `metrics_table`: 4·n_jobs contiguous chunks on n_jobs loky
    processes, the latents (not the 16× larger spectra) sent to them."""
    latents = np.asarray(latents, dtype=np.float32)
    if n_jobs == 1 or len(latents) <= 1:
        rows = _magnitude_rows(latents, to_magnitude, hop, seconds)
    else:
        chunks = [c for c in np.array_split(np.arange(len(latents)), 4 * n_jobs) if len(c)]
        parts = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_magnitude_rows)(latents[c], to_magnitude, hop, seconds) for c in chunks)
        parts = list(Progress(parts, total=len(chunks), unit="chunk", desc=f"{desc} of {len(latents)} clips"))
        rows = [r for part in parts for r in part]
    return pd.DataFrame(rows, columns=_columns())
