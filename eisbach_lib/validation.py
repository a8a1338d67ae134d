"""Known-answer validation of the structural metrics at a clip length (docs/design.md §1.6 and gate 2 of §4).

A structural metric (motif_recurrence, novelty_sections) claims to measure musical structure
(C6: "stronger thematic development"). Its known-answer check: a real tune must score higher
than the same audio with its bars put in a random order (a bar-shuffle keeps every sound, the
instruments, tempo and texture; it breaks only the order of the music). A metric that does not
rank real tunes above their bar-shuffles at a clip length cannot read structure at that length,
so its claim is "not testable at this profile" there.

How the tunes are made (deterministic from `seed`):

1. Pieces: the chamber corpus's candidate stream (`corpus.list_candidates(seed)`), the pieces
   of the corpus's `reference` split first when its manifest exists; each parsed with music21
   (notes as in `corpus.parse_piece`, plus the start of every bar of the first part: the score's
   measures, pickup bars included). A piece is used if it lasts at least the excerpt.
2. Tune k: texture TEXTURES[k mod 4]; instruments, articulation, tempo (60–130 BPM),
   transposition and velocities drawn as the corpus does (`corpus.plan_clip`), but the excerpt
   starts on a bar line (a random bar among those leaving room for the excerpt), so bar lines
   fall at known times: (bar offset − start) · 60 / BPM seconds.
3. Rendered once at the longest clip length with FluidSynth (`corpus.synthesize`), peak-
   normalised to corpus.PEAK; a clip of L seconds is its first L seconds.
4. Bar-shuffles: the L-second clip is cut at its bar lines into segments (the last one may be a
   partial bar) and the segments are permuted (a uniformly random permutation other than the
   identity), joined with 10 ms linear cross-fades at each cut. A tune with fewer than 2
   segments at the shortest length cannot be shuffled and is replaced by the next piece.

Win rate of a metric at length L: over all (tune, shuffle) pairs, the share where the metric
ranks the tune higher (in the direction the scorecard reads it, +1: more = more structure), ties
counting one half. `tune_win_rate` is the share of tunes that beat the median of their own
shuffles. The metric is valid at L when win_rate ≥ WIN_RATE_MIN (0.8), gate 2 of docs/design.md §4.
"""

from __future__ import annotations

import json
import warnings
from functools import partial
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import corpus as C
from . import metrics as M
from .config import Evaluate, Profile
from .layout import Layout

VALIDATION_VERSION = 2
WIN_RATE_MIN = 0.8
FADE_S = 0.01
STRUCTURE_METRICS: dict[str, int] = {"motif_recurrence": +1, "novelty_sections": +1}  # metric → claimed direction


# ----------------------------------------------------------------------------- tunes with bar lines


def parse_tune(candidate: dict) -> dict | None:
    """corpus.parse_piece's piece dict plus `bars`: the start of every measure of the first part
    (quarter notes, ascending), or None when the piece cannot be parsed, is too small or has no
    measures. Parsed once with music21 (no pickle cache)."""
    from music21 import common, converter  # heavy: music21

    warnings.filterwarnings("ignore")
    try:
        path = Path(common.getCorpusFilePath()) / candidate["path"]
        score = converter.parse(path, number=candidate["number"], forceSource=True, storePickle=False)
        if score is None or not hasattr(score, "parts") or not len(score.parts):
            return None
        bars = sorted({float(m.offset) for m in score.parts[0].getElementsByClass("Measure")})
        parts = [p for p in (C._part_notes(part) for part in score.parts) if p]
        n_notes = sum(len(p) for p in parts)
        length = max((n[0] + n[1] for p in parts for n in p), default=0.0)
        if len(bars) < 2 or n_notes < C.MIN_NOTES or length < C.MIN_BEATS:
            return None
        tonic_pc, mode = C.estimate_key(parts)
        return {"key": candidate["key"], "source": candidate["source"], "work": candidate["work"], "parts": parts,
                "length": float(length), "tonic_pc": tonic_pc, "mode": mode, "bars": bars}
    except Exception:  # noqa: BLE001 - an unreadable score is skipped, like in the corpus
        return None


def plan_tune(piece: dict, texture: str, seconds: float, rng: np.random.Generator) -> tuple[C.ClipPlan, np.ndarray] | None:
    """A corpus clip plan (`corpus.plan_clip`, excerpt start fixed) that starts on a bar line,
    and the bar-line times in seconds (0 first, all < `seconds`). The start is a random bar where a
    note sounds and that leaves room for the excerpt at the fastest tempo (130 BPM); None when the
    piece has no such bar."""
    onsets = {n[0] for p in piece["parts"] for n in p}
    beats_max = seconds * 130 / 60.0
    starts = [b for b in piece["bars"] if b in onsets and b + beats_max <= piece["length"]]
    if not starts:
        return None
    start = float(starts[int(rng.integers(len(starts)))])
    plan = C.plan_clip(piece, texture, seconds, rng, start=start)
    spb = 60.0 / plan.tempo_bpm
    bars = np.array([(b - start) * spb for b in piece["bars"] if b >= start and (b - start) * spb < seconds])
    return plan, bars


def render_tune(plan: C.ClipPlan, sample_rate: int, seconds: float) -> np.ndarray:
    """FluidSynth audio of a plan, from t = 0 (no silence skipped: the bar lines keep their times),
    `seconds` long, peak-normalised to corpus.PEAK."""
    y = C.synthesize(C.to_pretty_midi(plan), sample_rate, seconds)
    peak = float(np.abs(y).max())
    if peak <= 1e-6:
        raise RuntimeError("validation: FluidSynth rendered silence")
    return (y * (C.PEAK / peak)).astype(np.float32)


def reference_tunes(n_tunes: int, seconds: float, sample_rate: int, seed: int = 0,
                    manifest: str | Path | None = None, shortest: float | None = None) -> list[dict]:
    """`n_tunes` rendered tunes of `seconds` with their bar lines (module docstring, 1–3).

    Each: {key, texture, tempo_bpm, audio (float32), bar_times (s)}. The pieces of the corpus
    reference split (from `manifest`, a corpus manifest.csv, when given and present) come first.
    A tune whose first `shortest` seconds (default `seconds`) hold fewer than 2 bar segments (a
    slow tune in a short clip) cannot be shuffled there and is replaced by the next piece, so every
    length gets `n_tunes` tunes.
    """
    stream = C.list_candidates(seed)
    if manifest is not None and Path(manifest).exists():
        man = pd.read_csv(manifest, keep_default_na=False)
        ref = set(man.loc[man["split"] == "reference", "source_piece"])
        stream = [c for c in stream if c["key"] in ref] + [c for c in stream if c["key"] not in ref]
    tunes: list[dict] = []
    for cand in stream:
        if len(tunes) >= n_tunes:
            break
        piece = parse_tune(cand)
        if piece is None:
            continue
        k = len(tunes)
        rng = np.random.default_rng([seed, 7000 + k])
        texture = C.TEXTURES[k % len(C.TEXTURES)]
        planned = plan_tune(piece, texture, seconds, rng)
        if planned is None or not planned[0].instruments:
            continue
        plan, bars = planned
        n_short = int(round((shortest or seconds) * sample_rate))
        if len(segments(n_short, [t for t in bars if t < (shortest or seconds)], sample_rate)) < 2:
            continue
        tunes.append({"key": piece["key"], "texture": texture, "tempo_bpm": plan.tempo_bpm,
                      "audio": render_tune(plan, sample_rate, seconds), "bar_times": bars})
    if len(tunes) < n_tunes:
        raise RuntimeError(f"validation: only {len(tunes)} usable tunes of {seconds} s found, {n_tunes} requested")
    return tunes


# ----------------------------------------------------------------------------- bar-shuffles


def segments(n_samples: int, bar_times: Sequence[float], sample_rate: int) -> list[tuple[int, int]]:
    """[start, end) sample ranges between consecutive bar lines (and the clip's end)."""
    cuts = sorted({int(round(t * sample_rate)) for t in bar_times if 0 < t * sample_rate < n_samples})
    edges = [0] + cuts + [n_samples]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def bar_shuffle(y: np.ndarray, bar_times: Sequence[float], sample_rate: int, rng: np.random.Generator,
                fade_s: float = FADE_S) -> np.ndarray:
    """The clip with its bar segments in a random order other than the original (module docstring, 4).

    Segments are joined by linear cross-fades of `fade_s` (each join overlaps the next segment's
    first samples with the previous one's continuation past its cut, so the length is unchanged and
    no click is added). Raises ValueError for fewer than 2 segments."""
    segs = segments(len(y), bar_times, sample_rate)
    if len(segs) < 2:
        raise ValueError("bar_shuffle: fewer than 2 bar segments, nothing to shuffle")
    order = np.arange(len(segs))
    while np.array_equal(order, np.arange(len(segs))):
        order = rng.permutation(len(segs))
    fade = int(round(fade_s * sample_rate))
    out = np.zeros_like(y)
    pos = 0
    for j, i in enumerate(order):
        a, b = segs[i]
        piece = y[a:b].copy()
        if j > 0 and fade > 0:  # fade in over the first samples, and overlap the previous segment's tail
            n = min(fade, len(piece), pos)
            ramp = np.linspace(0.0, 1.0, n, endpoint=False, dtype=np.float32)
            piece[:n] *= ramp
            prev_a, prev_b = segs[order[j - 1]]
            tail = y[prev_b:prev_b + n] if prev_b + n <= len(y) else np.zeros(n, np.float32)
            tail = np.pad(tail, (0, n - len(tail)))
            piece[:n] += tail * (1.0 - ramp)
        out[pos:pos + len(piece)] = piece
        pos += len(piece)
    return out


# ----------------------------------------------------------------------------- the validation


def _metric_values(y: np.ndarray, sr: int, metrics: Mapping[str, Callable[[np.ndarray, int], float]]) -> dict:
    return {name: float(fn(y, sr)) for name, fn in metrics.items()}


def win_rates(values: pd.DataFrame, directions: Mapping[str, int]) -> pd.DataFrame:
    """Per metric (and clip length): win_rate over (tune, shuffle) pairs (ties ½), tune_win_rate
    (tunes beating their shuffles' median), mean of tunes and of shuffles, a 95 % CI of win_rate
    from a bootstrap over tunes (2000 draws, seed 0), and valid = win_rate ≥ WIN_RATE_MIN.

    `values`: one row per clip with columns seconds, tune, shuffle (−1 for the tune itself) and
    one column per metric."""
    rows = []
    for (sec, name), sign in [((s, m), directions[m]) for s in sorted(values["seconds"].unique()) for m in directions]:
        v = values[values["seconds"] == sec]
        real = v[v["shuffle"] < 0].set_index("tune")[name]
        shuf = v[v["shuffle"] >= 0]
        per_tune = []
        for t, g in shuf.groupby("tune"):
            d = sign * (real[t] - g[name].to_numpy())
            per_tune.append((np.mean((d > 0) + 0.5 * (d == 0)), float(sign * (real[t] - g[name].median()) > 0)))
        if not per_tune:
            continue
        wins = np.array([p[0] for p in per_tune])
        boot = np.random.default_rng(0).choice(wins, size=(2000, len(wins))).mean(axis=1)
        rate = float(wins.mean())
        rows.append({"seconds": float(sec), "metric": name, "direction": sign, "n_tunes": len(wins),
                     "n_pairs": len(shuf), "win_rate": rate, "ci_lo": float(np.quantile(boot, 0.025)),
                     "ci_hi": float(np.quantile(boot, 0.975)), "tune_win_rate": float(np.mean([p[1] for p in per_tune])),
                     "mean_tune": float(real.loc[list(shuf["tune"].unique())].mean()),
                     "mean_shuffle": float(shuf[name].mean()), "valid": bool(rate >= WIN_RATE_MIN)})
    return pd.DataFrame(rows)


def _codec_metric(y: np.ndarray, sr: int, codec, name: str) -> float:
    """Structural metric `name` of audio `y` read the way the generations are read on the log-mel
    path: encoded by `codec` (at its rate), its log-mel turned to |S| (`latents_to_magnitude`), then
    `metrics.features_from_magnitude`. The validation then checks the metric where it is used."""
    import torch  # heavy: torch, only on the log-mel path

    if sr != codec.sample_rate:
        raise ValueError(f"through_codec: audio at {sr} Hz, codec at {codec.sample_rate} Hz")
    with torch.no_grad():
        mag = codec.latents_to_magnitude(codec.encode(torch.from_numpy(np.asarray(y, np.float32))))[0].numpy()
    f = M.features_from_magnitude(mag, int(codec.hop_length), len(y) / sr)
    return float(M.FROM_FEATURES[name](f))


def structure_values(tunes: list[dict], seconds: Sequence[float], sample_rate: int, n_shuffles: int = 10,
                     metrics: Mapping[str, Callable[[np.ndarray, int], float]] | None = None,
                     seed: int = 0) -> pd.DataFrame:
    """Metric values of every tune cut to each length in `seconds`, and of `n_shuffles` bar-shuffles
    of it (rng [seed, 8000 + tune, length index]). One row per clip: seconds, tune, key, texture,
    tempo_bpm, n_segments, shuffle (−1 = the tune), one column per metric. Clips with < 2 bar
    segments are left out."""
    metrics = metrics or {name: getattr(M, name) for name in STRUCTURE_METRICS}
    rows = []
    for k, tune in enumerate(tunes):
        for j, sec in enumerate(seconds):
            n = int(round(sec * sample_rate))
            y = tune["audio"][:n]
            if len(y) < n:
                raise ValueError(f"validation: tune {tune['key']} is {len(tune['audio']) / sample_rate:.1f} s, "
                                 f"shorter than {sec} s")
            bars = [t for t in tune["bar_times"] if t < sec]
            n_seg = len(segments(n, bars, sample_rate))
            if n_seg < 2:
                continue
            info = {"seconds": float(sec), "tune": k, "key": tune["key"], "texture": tune["texture"],
                    "tempo_bpm": tune["tempo_bpm"], "n_segments": n_seg}
            rows.append({**info, "shuffle": -1, **_metric_values(y, sample_rate, metrics)})
            rng = np.random.default_rng([seed, 8000 + k, j])
            for s in range(n_shuffles):
                rows.append({**info, "shuffle": s,
                             **_metric_values(bar_shuffle(y, bars, sample_rate, rng), sample_rate, metrics)})
    return pd.DataFrame(rows)


def structure_validation(source: Profile | tuple, n_tunes: int | None = None, n_shuffles: int | None = None,
                         seconds: Sequence[float] | None = None,
                         metrics: Mapping[str, Callable[[np.ndarray, int], float]] | None = None,
                         directions: Mapping[str, int] | None = None, seed: int = 0,
                         cache: str | Path | None = "auto") -> pd.DataFrame:
    """Win rate of each structural metric against bar-shuffles, per clip length.

    `source`: a loaded profile (clip length = generate.seconds, rate = corpus.sample_rate, the
    corpus manifest under runs_dir/corpus puts its reference pieces first) or a tuple
    (seconds, sample_rate). n_tunes / n_shuffles: default the profile's evaluate.validation_tunes /
    validation_shuffles, else 20 / 10 (a floor of 20 tunes). `seconds` overrides the
    lengths (e.g. [6, 8, 10, 12]). `metrics`:
    name → fn(y, sr) (default the two of STRUCTURE_METRICS, read in `directions`, default +1; with a
    profile, read as its generations are read: through the codec's log-mel when
    `metrics.analysis_of` says so, `_codec_metric`).
    Returns `win_rates(...)` (one row per length × metric: win_rate, ci_lo, ci_hi, tune_win_rate,
    mean_tune, mean_shuffle, n_tunes, n_pairs, valid).

    With a config and cache="auto", the table is cached in
    <runs_dir>/metrics/structure_validation.csv next to a .json of its parameters (the default
    metrics only); a cache whose parameters differ is recomputed. Costs ≈ n_tunes × (1 + n_shuffles)
    metric evaluations per length (≈ 30 ms each for 6 s) plus parsing and rendering the tunes.
    """
    profile = isinstance(source, Profile)
    ev = source.evaluate if profile else Evaluate()
    n_tunes = ev.validation_tunes if n_tunes is None else int(n_tunes)
    n_shuffles = ev.validation_shuffles if n_shuffles is None else int(n_shuffles)
    if profile:
        lengths = [source.generate.seconds] if seconds is None else [float(s) for s in seconds]
        sr = source.corpus.sample_rate
        layout = Layout.of(source)
        manifest = layout.corpus_manifest
        cache_path = layout.metrics_table("structure") \
            if cache == "auto" and metrics is None else (Path(cache) if cache not in (None, "auto") else None)
    else:
        clip_s, sr = source
        lengths = [float(clip_s)] if seconds is None else [float(s) for s in seconds]
        sr, manifest = int(sr), None
        cache_path = Path(cache) if cache not in (None, "auto") else None
    analysis = M.AUDIO
    if profile and metrics is None:  # the metrics as the profile's generations are read
        from .datasets import codec_for  # heavy: torch (the codec)

        codec = codec_for(source)
        analysis = M.analysis_of(codec)
        if analysis == M.LOG_MEL:
            metrics = {name: partial(_codec_metric, codec=codec, name=name) for name in STRUCTURE_METRICS}
    directions = dict(directions or {name: STRUCTURE_METRICS.get(name, +1) for name in (metrics or STRUCTURE_METRICS)})
    params = {"version": VALIDATION_VERSION, "metrics_version": M.METRICS_VERSION, "analysis": analysis,
              "seconds": lengths, "sample_rate": sr, "n_tunes": n_tunes, "n_shuffles": n_shuffles, "seed": seed,
              "metrics": sorted(directions), "win_rate_min": WIN_RATE_MIN}
    if cache_path is not None and cache_path.exists() and cache_path.with_suffix(".json").exists():
        if json.loads(cache_path.with_suffix(".json").read_text()) == params:
            return pd.read_csv(cache_path)
    tunes = reference_tunes(n_tunes, max(lengths), sr, seed=seed, manifest=manifest, shortest=min(lengths))
    values = structure_values(tunes, lengths, sr, n_shuffles=n_shuffles, metrics=metrics, seed=seed)
    table = win_rates(values, directions)
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(cache_path, index=False)
        cache_path.with_suffix(".json").write_text(json.dumps(params, indent=2))
    return table
