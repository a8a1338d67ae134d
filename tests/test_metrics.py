"""Per-clip and set metrics against cases whose answer is known (docs/design.md §1.6, §4).

All audio is made here: numpy additive synthesis, or notes rendered with pretty_midi + FluidSynth
through the General MIDI soundfont that ships inside the pretty_midi wheel (TimGM6mb.sf2).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pandas as pd
import pytest

from eisbach_lib import metrics as M
from eisbach_lib.config import Profile
from helpers import smoke_at

SR = 22050


# ----------------------------------------------------------------------------- audio helpers


def midi_hz(m: float) -> float:
    return 440.0 * 2.0 ** ((m - 69) / 12)


def tone(f: float, dur: float, harmonics: int = 6, decay: float | None = None, sr: int = SR) -> np.ndarray:
    """Harmonic tone (partials at 0.6^k), 10 ms attack, optional exponential decay, 20 ms release."""
    t = np.arange(int(dur * sr)) / sr
    x = sum(0.6**k * np.sin(2 * np.pi * f * (k + 1) * t) for k in range(harmonics))
    env = np.minimum(1.0, t / 0.01) * np.minimum(1.0, (dur - t) / 0.02)
    if decay is not None:
        env = env * np.exp(-t / decay)
    return (0.2 * x * env).astype(np.float32)


def melody(pitches, note_dur: float, **kw) -> np.ndarray:
    return np.concatenate([tone(midi_hz(p), note_dur, **kw) for p in pitches])


def _soundfont() -> str:
    pretty_midi = pytest.importorskip("pretty_midi")
    pytest.importorskip("fluidsynth")
    return os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2")


def render(notes, program: int) -> np.ndarray:
    """notes: (midi pitch, start s, end s) on one General MIDI program, rendered at SR."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=program)
    inst.notes = [pretty_midi.Note(velocity=100, pitch=int(p), start=float(s), end=float(e)) for p, s, e in notes]
    pm.instruments.append(inst)
    return pm.fluidsynth(fs=SR, synthesizer=_soundfont()).astype(np.float32)


def line(pitches, t0: float, step: float, legato: float = 0.95):
    return [(p, t0 + i * step, t0 + (i + legato) * step) for i, p in enumerate(pitches)]


def mix(*ys: np.ndarray) -> np.ndarray:
    out = np.zeros(max(len(y) for y in ys), np.float32)
    for y in ys:
        out[: len(y)] += y
    return out


# ----------------------------------------------------------------------------- motif recurrence

MOTIF = [60, 64, 67, 72, 71, 67]  # 6 notes × 0.25 s = 1.5 s


def test_repeated_motif_recurs_more_than_same_notes_shuffled():
    repeated = M.motif_recurrence(melody(MOTIF * 4, 0.25, decay=0.3), SR)
    shuffled = [M.motif_recurrence(melody(list(np.random.default_rng(s).permutation(MOTIF * 4)), 0.25, decay=0.3), SR)
                for s in range(5)]
    print("motif ×4:", repeated, "shuffled:", np.round(shuffled, 3))
    assert 0.0 <= min(shuffled) and repeated <= 1.0
    assert repeated > 0.8
    assert repeated > max(shuffled) + 0.2


def test_recurrence_is_low_for_drone_noise_and_zero_for_silence():
    drone = tone(110.0, 6.0)
    noise = (0.1 * np.random.default_rng(0).standard_normal(6 * SR)).astype(np.float32)
    values = [M.motif_recurrence(y, SR) for y in (drone, noise, np.zeros(6 * SR, np.float32))]
    print("drone, noise, silence:", values)
    assert values[0] < 0.1 and values[1] < 0.1 and values[2] == 0.0


def _folk_tune_measures(name: str = "ryansMammoth/HasteToTheWeddingJig.abc"):
    """(duration in quarters, [(midi, offset in bar, quarters)]) per bar, with the repeats played."""
    corpus = pytest.importorskip("music21.corpus")
    score = corpus.parse(name)
    played = score.expandRepeats()
    written_bars = len(score.parts[0].getElementsByClass("Measure"))
    bars = []
    for m in played.parts[0].getElementsByClass("Measure"):
        notes = [(p.midi, float(n.offset), float(n.quarterLength)) for n in m.notes for p in n.pitches]
        bars.append((float(m.duration.quarterLength), notes))
    return bars, written_bars


def _render_bars(bars, order, sec_per_quarter: float = 0.3, program: int = 73) -> np.ndarray:
    notes, t = [], 0.0
    for i in order:
        dur, bar_notes = bars[i]
        notes += [(p, (t + o) * sec_per_quarter, (t + o + q) * sec_per_quarter) for p, o, q in bar_notes]
        t += dur
    return render(notes, program)


def test_real_folk_tune_recurs_more_than_its_bars_shuffled():
    """Haste to the Wedding (Ryan's Mammoth Collection, music21 corpus): two strains, each played
    twice (AABB), on a GM flute. Shuffling the bars keeps every note but breaks the repeats."""
    bars, written = _folk_tune_measures()
    assert len(bars) == 2 * written  # the premise: both strains are repeated
    tune = M.motif_recurrence(_render_bars(bars, range(len(bars))), SR)
    shuffled = [M.motif_recurrence(_render_bars(bars, np.random.default_rng(s).permutation(len(bars))), SR)
                for s in range(3)]
    print("folk tune:", tune, "bars shuffled:", np.round(shuffled, 3))
    assert tune > max(shuffled) + 0.2


# ----------------------------------------------------------------------------- novelty sections


def _aba(section_s: float = 2.0) -> np.ndarray:
    """A: celesta arpeggio in C, high; B: low cello line in another key; then A again."""
    a_notes = [72, 76, 79, 84, 79, 76, 74, 77] * int(section_s / 2)
    a1 = render(line(a_notes, 0.0, 0.25), program=8)
    b = render(line([36, 43, 39, 46] * int(section_s / 2), section_s, 0.5, legato=1.0), program=42)
    a2 = render(line(a_notes, 2 * section_s, 0.25), program=8)
    return mix(a1, b, a2)[: int(3 * section_s * SR)]


def test_aba_sections_give_more_novelty_sections_than_one_texture():
    aba = M.novelty_sections(_aba(2.0), SR)
    steady = M.novelty_sections(render(line([72, 76, 79, 84, 79, 76, 74, 77] * 3, 0.0, 0.25), program=8)[: 6 * SR], SR)
    drone = M.novelty_sections(render([(48, 0, 6), (55, 0, 6)], program=19)[: 6 * SR], SR)
    print("sections/min  ABA:", aba, "steady celesta:", steady, "organ drone:", drone)
    assert aba > steady and aba > drone
    assert aba == pytest.approx(30.0, rel=0.01)  # 3 sections in 6 s: both boundaries found
    assert steady == pytest.approx(10.0, rel=0.01) and drone == pytest.approx(10.0, rel=0.01)


def test_novelty_sections_on_synthesised_aba_and_silence():
    a = melody([72, 76, 79, 84] * 2, 0.25, decay=0.3)
    b = melody([40, 47, 43, 45], 0.5, harmonics=12)
    aba = M.novelty_sections(np.concatenate([a, b, a]), SR)
    silent = M.novelty_sections(np.zeros(6 * SR, np.float32), SR)
    print("synth ABA:", aba, "silence:", silent)
    assert aba > silent and np.isfinite(silent)


# ----------------------------------------------------------------------------- spectral contrast


def test_harmonic_tones_have_more_contrast_than_noise_of_same_rms():
    chord = sum(tone(midi_hz(m), 6.0) for m in (48, 55, 64))
    noise = np.random.default_rng(0).standard_normal(chord.size).astype(np.float32)
    noise *= np.sqrt(np.mean(chord**2) / np.mean(noise**2))
    c_chord, c_noise = M.spectral_contrast(chord, SR), M.spectral_contrast(noise, SR)
    print("contrast dB  chord:", c_chord, "noise:", c_noise)
    assert c_chord > c_noise + 5.0
    assert np.isfinite(M.spectral_contrast(np.zeros(SR, np.float32), SR))


def test_contrast_uses_a_fixed_analysis_rate():
    """The same chord at 44.1 kHz and at 22.05 kHz gives nearly the same contrast (resampled)."""
    chord22 = sum(tone(midi_hz(m), 4.0) for m in (48, 55, 64))
    chord44 = sum(tone(midi_hz(m), 4.0, sr=44100) for m in (48, 55, 64))
    assert M.spectral_contrast(chord44, 44100) == pytest.approx(M.spectral_contrast(chord22, SR), abs=1.5)


# ----------------------------------------------------------------------------- temporal flatness


def test_staccato_is_less_flat_than_a_drone_and_silence_is_finite():
    staccato = melody([60, 64, 67, 72] * 6, 0.25, decay=0.03)
    drone = tone(110.0, 6.0)
    silence = np.zeros(6 * SR, np.float32)
    values = [M.temporal_flatness(y, SR) for y in (staccato, drone, silence)]
    print("flatness  staccato, drone, silence:", values)
    assert values[0] < values[1] - 0.05
    assert all(0.0 <= v <= 1.0 for v in values)
    assert values[2] == 1.0


def test_temporal_flatness_is_the_normalised_entropy_of_frame_rms():
    import librosa

    y = melody([60, 62, 64], 0.4, decay=0.1)
    e = librosa.feature.rms(y=y, frame_length=2048, hop_length=512)[0].astype(np.float64)
    p = e / e.sum()
    expected = -(p[p > 0] * np.log(p[p > 0])).sum() / np.log(e.size)
    assert M.temporal_flatness(y, SR) == pytest.approx(expected, rel=1e-6)
    click = np.zeros(6 * SR, np.float32)
    click[3 * SR] = 1.0  # energy in one or two frames
    assert M.temporal_flatness(click, SR) < 0.3


# ----------------------------------------------------------------------------- embedding and set metrics


def test_embedding_shape_finite_and_standardizer():
    clips = [melody([60 + k, 64 + k, 67 + k], 0.5, decay=0.2 + 0.1 * k) for k in range(4)]
    X = np.stack([M.clip_embedding(y, SR) for y in clips] + [M.clip_embedding(np.zeros(SR, np.float32), SR)])
    assert X.shape == (5, M.EMBEDDING_DIM) == (5, len(M.EMBEDDING_NAMES))
    assert np.isfinite(X).all()
    mean, std = M.fit_standardizer(X)
    Z = M.standardize(X, mean, std)
    assert np.allclose(Z.mean(axis=0), 0.0, atol=1e-8)
    assert np.allclose(Z.std(axis=0)[X.std(axis=0) > 0], 1.0)
    assert np.allclose(M.EmbeddingStandardizer().fit(X).transform(X), Z)


def test_vendi_is_one_for_copies_and_n_for_far_apart_points():
    e = M.clip_embedding(melody(MOTIF, 0.25, decay=0.3), SR)
    assert M.vendi_score(np.tile(e, (8, 1))) == pytest.approx(1.0, abs=1e-6)
    assert M.vendi_score(np.tile(e, (8, 1)), bandwidth=0.01) == pytest.approx(1.0, abs=1e-6)
    for n in (2, 5, 16):
        assert M.vendi_score(100.0 * np.eye(n), bandwidth=1.0) == pytest.approx(float(n), rel=1e-9)
    # two distinct far-apart points, each repeated 4 times → 2 effective items
    assert M.vendi_score(np.repeat(50.0 * np.eye(2), 4, axis=0), bandwidth=1.0) == pytest.approx(2.0, rel=1e-9)
    # two points at distance d: K = [[1, k], [k, 1]], k = exp(−d²/2σ²), eigenvalues (1 ± k)/2
    k = np.exp(-1.0 / 2.0)
    lam = np.array([(1 + k) / 2, (1 - k) / 2])
    assert M.vendi_score(np.array([[0.0, 0.0], [1.0, 0.0]]), bandwidth=1.0) == pytest.approx(
        float(np.exp(-(lam * np.log(lam)).sum())), rel=1e-9)


def test_vendi_is_translation_invariant_bounded_and_monotone_in_spread():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 73))
    u = rng.standard_normal(73)
    u /= np.linalg.norm(u)
    base = M.vendi_score(X)
    shifted = [M.vendi_score(X + s * u) for s in (5.0, 50.0, 500.0)]
    print("vendi of 8 random 73-d points:", base, "shifted by 5, 50, 500:", shifted)
    assert shifted == pytest.approx([base] * 3, rel=1e-9)
    rot, _ = np.linalg.qr(rng.standard_normal((73, 73)))
    assert M.vendi_score(X @ rot) == pytest.approx(base, rel=1e-9)
    scales = [0.01, 0.1, 0.3, 1.0, 3.0, 10.0]
    values = [M.vendi_score(c * X) for c in scales]
    print("vendi at scales", scales, ":", np.round(values, 4))
    assert all(a < b for a, b in zip(values, values[1:]))
    assert 1.0 <= values[0] < 1.01 and 7.99 < values[-1] <= 8.0
    for n in (1, 3, 10, 40):
        for c in (0.01, 1.0, 100.0):
            v = M.vendi_score(c * rng.standard_normal((n, 5)), bandwidth=1.0)
            assert 1.0 - 1e-9 <= v <= n + 1e-9
    with pytest.raises(ValueError):
        M.vendi_score(X, bandwidth=0.0)


def test_vendi_bandwidth_is_the_median_reference_distance():
    rng = np.random.default_rng(1)
    Z = rng.standard_normal((400, 73))
    sigma = M.fit_vendi_bandwidth(Z)
    assert sigma == pytest.approx(np.sqrt(2 * 73), rel=0.03)  # E||x − y||² = 2D for N(0, I)
    assert M.default_bandwidth(73) == pytest.approx(np.sqrt(146))
    assert M.fit_vendi_bandwidth(Z + 7.0) == pytest.approx(sigma)
    with pytest.raises(ValueError):
        M.fit_vendi_bandwidth(np.ones((5, 3)))


def test_vendi_grows_with_spread_of_real_clip_embeddings():
    clips_same = [melody(MOTIF, 0.25, decay=0.3)] * 6
    clips_varied = [melody(MOTIF, 0.25, decay=0.3), tone(110.0, 1.5),
                    (0.1 * np.random.default_rng(0).standard_normal(int(1.5 * SR))).astype(np.float32),
                    melody([40, 45, 47, 52], 0.375, harmonics=12), melody(MOTIF[::-1], 0.25, decay=0.05),
                    tone(880.0, 1.5, harmonics=1)]
    X_same = np.stack([M.clip_embedding(y, SR) for y in clips_same])
    X_varied = np.stack([M.clip_embedding(y, SR) for y in clips_varied])
    mean, std = M.fit_standardizer(np.vstack([X_same, X_varied]))
    v_same, v_varied = M.vendi_score(M.standardize(X_same, mean, std)), M.vendi_score(M.standardize(X_varied, mean, std))
    print("vendi same:", v_same, "varied:", v_varied)
    assert v_same == pytest.approx(1.0, abs=1e-6) and v_varied > 2.0


def test_frechet_zero_for_itself_and_monotone_in_mean_shift():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 6))
    assert M.frechet_distance(X, X) == pytest.approx(0.0, abs=1e-6)
    shifts = [0.0, 0.5, 1.0, 2.0, 4.0]
    fds = [M.frechet_distance(X, X + s) for s in shifts]
    print("FD for shifts", shifts, ":", np.round(fds, 4))
    assert all(a < b for a, b in zip(fds, fds[1:]))
    assert fds[-1] == pytest.approx(6 * 4.0**2, rel=1e-6)  # same covariance: FD = ||Δμ||²
    # two independent samples of the same Gaussian: small; of N(0, I) vs N(0, 4I): Tr = 6·(1 + 4 − 2·2) = 6
    Y = rng.standard_normal((4000, 6))
    Z = rng.standard_normal((4000, 6))
    assert M.frechet_distance(Y, Z) < 0.05
    assert M.frechet_distance(Y, 2.0 * Z) == pytest.approx(6.0, rel=0.1)


def test_kid_known_answers():
    """Unbiased: mean over random splits of one distribution ≈ 0 (while FD is biased upwards by
    tens at 48 vs 48 in 73 dimensions); a mean shift gives KID > 0, growing with the shift; two
    point masses give the closed form (|a|²/D + 1)³ + (|b|²/D + 1)³ − 2(aᵀb/D + 1)³."""
    rng = np.random.default_rng(0)
    pool = rng.standard_normal((4000, 73))
    same = []
    for _ in range(200):
        idx = rng.permutation(len(pool))[:96]
        same.append(M.kid(pool[idx[:48]], pool[idx[48:]]))
    same = np.array(same)
    se = same.std(ddof=1) / np.sqrt(len(same))
    fd_same = M.frechet_distance(pool[:48], pool[48:96])
    shifted = [np.mean([M.kid(rng.standard_normal((48, 73)), rng.standard_normal((48, 73)) + s) for _ in range(20)])
               for s in (0.25, 0.5, 1.0)]
    print(f"KID same distribution: mean {same.mean():.4f} ± {se:.4f} (sd {same.std():.4f}); FD same: {fd_same:.1f}; "
          f"KID shifted by 0.25, 0.5, 1 per dim: {np.round(shifted, 3)}")
    assert abs(same.mean()) < 3 * se + 1e-3
    assert fd_same > 20 * abs(same.mean()) + 1.0
    assert 0 < shifted[0] < shifted[1] < shifted[2]
    assert shifted[0] > 3 * same.std()
    a, b = rng.standard_normal(6), rng.standard_normal(6)
    closed = (a @ a / 6 + 1) ** 3 + (b @ b / 6 + 1) ** 3 - 2 * (a @ b / 6 + 1) ** 3
    assert M.kid(np.tile(a, (4, 1)), np.tile(b, (7, 1))) == pytest.approx(closed, rel=1e-9)
    assert M.kid(np.tile(a, (4, 1)), np.tile(a, (3, 1))) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError):
        M.kid(pool[:1], pool[:5])


def test_frechet_handles_fewer_clips_than_dimensions():
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((8, M.EMBEDDING_DIM)), rng.standard_normal((8, M.EMBEDDING_DIM))
    fd = M.frechet_distance(X, Y)
    assert np.isfinite(fd) and fd > 0
    assert M.frechet_distance(X, X) == pytest.approx(0.0, abs=1e-3)


# ----------------------------------------------------------------------------- one pass and the table


def test_clip_metrics_match_single_functions():
    y = melody(MOTIF * 4, 0.25, decay=0.3)
    m = M.clip_metrics(y, SR)
    assert m["motif_recurrence"] == pytest.approx(M.motif_recurrence(y, SR))
    assert m["novelty_sections"] == pytest.approx(M.novelty_sections(y, SR))
    assert m["spectral_contrast"] == pytest.approx(M.spectral_contrast(y, SR))
    assert m["temporal_flatness"] == pytest.approx(M.temporal_flatness(y, SR))
    assert np.allclose(m["embedding"], M.clip_embedding(y, SR))


@pytest.mark.slow  # spawns loky worker processes (4–6 s)
def test_metrics_table_parallel_equals_serial_and_reads_files(tmp_path):
    import soundfile as sf

    clips = [melody(MOTIF * 2, 0.25, decay=0.1 * (k + 1)) for k in range(5)]
    path = tmp_path / "clip.wav"
    sf.write(path, clips[0], SR, subtype="FLOAT")
    serial = M.metrics_table(clips, SR, n_jobs=1)
    parallel = M.metrics_table(clips, SR, n_jobs=2)
    from_file = M.metrics_table([path], SR, n_jobs=1)
    native = M.metrics_table([path], None, n_jobs=1)  # sr=None: each file at its own rate
    with pytest.raises(ValueError):
        M.metrics_table(clips[:1], None, n_jobs=1)
    assert list(serial.columns) == list(M.METRIC_COLUMNS) + [f"emb_{i}" for i in range(M.EMBEDDING_DIM)]
    assert len(serial) == 5
    pd.testing.assert_frame_equal(serial, parallel)
    pd.testing.assert_frame_equal(from_file, serial.iloc[:1])
    pd.testing.assert_frame_equal(native, serial.iloc[:1])


# ----------------------------------------------------------------------------- structural validation


def _structured_tune(transpose: int, bar_s: float = 0.8, n_bars: int = 10):
    """A B C A B C ... : three different 4-note bars in a fixed cycle (period 3 bars), so the tune
    recurs at a lag of 3 bars; its bar-shuffles keep every bar but not the cycle."""
    bars = [[60, 64, 67, 72], [62, 65, 69, 74], [59, 62, 67, 71]]
    notes = [p + transpose for k in range(n_bars) for p in bars[k % 3]]
    y = melody(notes, bar_s / 4, decay=0.3)
    return {"key": f"synthetic+{transpose}", "texture": "plucked", "tempo_bpm": 300, "audio": y,
            "bar_times": np.arange(n_bars) * bar_s}


def test_bar_shuffle_permutes_whole_bars():
    from eisbach_lib import validation as V

    sr = 1000
    y = np.arange(5 * sr, dtype=np.float32)  # a ramp: every sample says where it came from
    bars = [0.0, 1.0, 2.0, 3.0, 4.0]
    out = V.bar_shuffle(y, bars, sr, np.random.default_rng(0), fade_s=0.0)
    assert len(out) == len(y) and not np.array_equal(out, y)
    starts = out[:: sr]
    assert sorted(starts) == [0, 1000, 2000, 3000, 4000]
    for k, s in enumerate(starts):  # each second is one whole original bar
        assert np.array_equal(out[k * sr:(k + 1) * sr], y[int(s):int(s) + sr])
    faded = V.bar_shuffle(y, bars, sr, np.random.default_rng(0))
    assert len(faded) == len(y) and np.allclose(faded[:990], out[:990])
    assert V.segments(len(y), [0.0, 2.5], sr) == [(0, 2500), (2500, 5000)]
    with pytest.raises(ValueError):
        V.bar_shuffle(y, [0.0], sr, np.random.default_rng(0))


def test_validation_machinery_ranks_a_structured_tune_above_its_shuffles():
    from eisbach_lib import validation as V

    tunes = [_structured_tune(t) for t in (0, 3, -2)]
    values = V.structure_values(tunes, [8.0], SR, n_shuffles=5, metrics={"motif_recurrence": M.motif_recurrence})
    assert len(values) == 3 * 6 and set(values["shuffle"]) == {-1, 0, 1, 2, 3, 4}
    table = V.win_rates(values, {"motif_recurrence": +1})
    print(values.groupby("shuffle")["motif_recurrence"].mean().round(3).to_dict(), table.to_dict("records"))
    row = table.iloc[0]
    assert row["n_tunes"] == 3 and row["n_pairs"] == 15
    assert row["win_rate"] >= 0.8 and row["valid"] and row["mean_tune"] > row["mean_shuffle"] + 0.2
    # the rule itself: a metric blind to the order (the clip's length) ties every pair: win rate ½
    blind = V.structure_values(tunes, [8.0], SR, n_shuffles=5, metrics={"length": lambda y, sr: float(len(y))})
    flat = V.win_rates(blind, {"length": +1}).iloc[0]
    assert flat["win_rate"] == pytest.approx(0.5) and not flat["valid"]


def test_bar_aligned_tune_from_the_corpus_has_bar_lines_at_its_measures():
    pytest.importorskip("music21")
    _soundfont()
    from eisbach_lib import corpus as C
    from eisbach_lib import validation as V

    cand = {"key": "ryansMammoth/HasteToTheWeddingJig", "source": "ryansMammoth",
            "path": "ryansMammoth/HasteToTheWeddingJig.abc", "number": None, "work": "x"}
    piece = V.parse_tune(cand)
    assert piece is not None and len(piece["bars"]) > 8
    bar_q = np.diff(piece["bars"])
    plan, bars = V.plan_tune(piece, "plucked", 6.0, np.random.default_rng(0))
    spb = 60.0 / plan.tempo_bpm
    assert bars[0] == 0.0 and np.all(np.diff(bars) > 0) and bars[-1] < 6.0
    assert np.allclose(np.diff(bars) / spb, np.median(bar_q))  # 6/8 jig: 3 quarters per bar
    first = min(n[0] for notes in plan.notes.values() for n in notes)
    assert first == pytest.approx(0.0)  # the excerpt starts on the bar line
    y = V.render_tune(plan, SR, 6.0)
    assert len(y) == 6 * SR and np.abs(y).max() == pytest.approx(C.PEAK, rel=1e-4)


# ----------------------------------------------------------------------------- evaluate: caches, round trip, ceilings


def _tiny_runs(tmp_path, n_ref: int = 6, seconds: float = 2.0) -> Profile:
    """A runs_dir with a corpus manifest of `n_ref` synthetic reference clips (and one base clip)."""
    import soundfile as sf

    corpus = tmp_path / "corpus"
    (corpus / "audio").mkdir(parents=True)
    rows = []
    for k in range(n_ref + 1):
        y = melody([60 + k, 64 + k, 67 + k, 72 + k] * 2, seconds / 8, decay=0.05 + 0.05 * k)
        path = f"audio/c{k}.wav"
        sf.write(corpus / path, y, SR, subtype="FLOAT")
        rows.append({"id": f"c{k}", "split": "reference" if k else "base", "source_piece": f"piece{k // 2}",
                     "path": path, "seconds": seconds, "caption": "x"})
    pd.DataFrame(rows).to_csv(corpus / "manifest.csv", index=False)
    return smoke_at(tmp_path, {"corpus.sample_rate": SR, "codec.griffin_lim_iters": 4, "generate.seconds": seconds})


class AudioOnly:
    """A MelCodec seen as an audio codec (no `latents_to_magnitude`): the metrics decode its clips and
    read the waveform, as they do for the SA3 autoencoder."""

    def __init__(self, **settings) -> None:
        from eisbach_lib.codec import MelCodec

        self.inner = MelCodec(sample_rate=SR, **settings)
        self.sample_rate, self.cache_key = self.inner.sample_rate, "audio-only " + self.inner.cache_key

    def encode(self, audio):
        return self.inner.encode(audio)

    def decode(self, latents, generator=None):
        return self.inner.decode(latents, generator=generator)


def test_reference_round_trip_is_cached_by_version_and_codec(tmp_path, one_torch_thread):
    from eisbach_lib import evaluate as E

    cfg = _tiny_runs(tmp_path)
    codec = AudioOnly(**dataclasses.asdict(cfg.codec))
    assert M.analysis_of(codec) == M.AUDIO
    rt = E.reference_metrics(cfg, n_jobs=1, codec=codec)
    raw = E.reference_metrics(cfg, n_jobs=1, roundtrip=False)
    assert len(rt) == len(raw) == 6 and set(rt["audio"]) == {"audio"} and set(raw["audio"]) == {"raw"}
    assert (rt["metrics_version"] == M.METRICS_VERSION).all() and rt["codec"].iloc[0].startswith("audio-only MelCodec(")
    assert not np.allclose(rt["spectral_contrast"], raw["spectral_contrast"])  # the codec changes the audio
    out = tmp_path / "metrics" / "reference_roundtrip.parquet"
    stamp = out.stat().st_mtime_ns
    again = E.reference_metrics(cfg, n_jobs=1, codec=codec)
    assert out.stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(again, rt)
    other_codec = AudioOnly(**{**dataclasses.asdict(cfg.codec), "griffin_lim_iters": 2})  # another codec: not the cached round trip
    other = E.reference_metrics(cfg, n_jobs=1, codec=other_codec)
    assert other["codec"].iloc[0] != rt["codec"].iloc[0] and out.stat().st_mtime_ns != stamp
    old = pd.read_parquet(out).drop(columns=["metrics_version"])  # a file from before versions existed
    old.to_parquet(out, index=False)
    assert (E.reference_metrics(cfg, n_jobs=1, codec=other_codec)["metrics_version"] == M.METRICS_VERSION).all()


def test_clip_cache_recomputes_rows_of_another_metrics_version(tmp_path):
    import soundfile as sf

    from eisbach_lib import evaluate as E

    cfg = smoke_at(tmp_path)
    (tmp_path / "samples").mkdir()
    paths = []
    for k in range(2):
        sf.write(tmp_path / "samples" / f"p{k}.wav", melody(MOTIF, 0.25, decay=0.1 * (k + 1)), SR, subtype="FLOAT")
        paths.append(f"samples/p{k}.wav")
    samples = pd.DataFrame({"path": paths, "run": "r", "prompt_id": [0, 1]})
    codec = AudioOnly(n_mels=64, n_fft=2048, hop_length=1024, griffin_lim_iters=4)
    first = E.clip_metrics(cfg, samples, n_jobs=1, codec=codec)
    assert set(first["analysis"]) == {M.AUDIO}
    stale = pd.read_parquet(tmp_path / "metrics" / "clips.parquet")
    stale.loc[0, "motif_recurrence"] = 99.0
    stale.drop(columns=["metrics_version"]).to_parquet(tmp_path / "metrics" / "clips.parquet", index=False)
    again = E.clip_metrics(cfg, samples, n_jobs=1, codec=codec)
    assert again.loc[0, "motif_recurrence"] == pytest.approx(first.loc[0, "motif_recurrence"])
    assert (again["metrics_version"] == M.METRICS_VERSION).all()


def _fake_reference(n: int, shift: float, contrast: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.standard_normal((n, 10)) + shift, columns=[f"emb_{i}" for i in range(10)])
    df["spectral_contrast"] = contrast + 0.1 * np.arange(n)
    df["temporal_flatness"] = 0.9
    df["source_piece"] = [f"piece{k // 2}" for k in range(n)]
    return df


def test_ceiling_rows_known_answers():
    from eisbach_lib import evaluate as E

    raw = _fake_reference(80, shift=0.0, contrast=20.0, seed=0)
    rt = raw.copy()
    emb = [c for c in raw.columns if c.startswith("emb_")]
    rt[emb] = raw[emb].to_numpy() + 1.0 + 0.3 * np.random.default_rng(1).standard_normal((80, 10))
    rt["spectral_contrast"] = raw["spectral_contrast"] + 5.6
    rows = E.ceiling_rows(raw, rt, n_splits=10).set_index("comparison")
    print(rows[["n_a", "n_b", "fd", "kid", "vendi_a", "vendi_b", "contrast_diff_db"]].round(3))
    half = rows.loc["reference A vs B (codec)"]
    codec = rows.loc["raw vs codec reference"]
    assert half["n_a"] + half["n_b"] == 80 and half["n_a"] == 40  # split by piece: 2 clips per piece
    assert abs(half["kid"]) < 0.1 * codec["kid"] and codec["kid"] > 0
    assert codec["fd"] > half["fd"]
    assert codec["contrast_diff_db"] == pytest.approx(5.6)
    assert 1.0 <= half["vendi_a"] <= 40 and 1.0 <= codec["vendi_a"] <= 80
    with pytest.raises(ValueError):
        E.ceiling_rows(raw, rt.iloc[:10])


def test_set_metrics_reports_fd_and_kid_to_the_reference():
    from eisbach_lib import evaluate as E

    ref = _fake_reference(60, 0.0, 20.0, seed=2)
    near = _fake_reference(24, 0.0, 20.0, seed=3)
    far = _fake_reference(24, 2.0, 20.0, seed=4)
    clips = pd.concat([near.assign(run="near", arm="none"), far.assign(run="far", arm="eisbach")], ignore_index=True)
    clips = clips.assign(adapter="dora", seed=0, step=10, prompt_id=np.tile(np.repeat(np.arange(6), 4), 2))
    intra, runs = E.set_metrics(clips, ref)
    runs = runs.set_index("run")
    assert list(intra.columns) == ["run", "adapter", "arm", "seed", "step", "prompt_id", "vendi_intra"]
    assert len(intra) == 12 and intra["vendi_intra"].between(1.0, 4.0).all()
    assert runs.loc["far", "kid_ref"] > 10 * abs(runs.loc["near", "kid_ref"]) and runs.loc["far", "fd_ref"] > runs.loc["near", "fd_ref"]
    assert runs.loc["near", "n_clips"] == 24
    emb = [c for c in ref.columns if c.startswith("emb_")]
    moved = clips.copy()
    moved[emb] = clips[emb] + 5.0  # translating generations AND reference changes nothing
    ref_moved = ref.copy()
    ref_moved[emb] = ref[emb] + 5.0
    _, runs2 = E.set_metrics(moved, ref_moved)
    pd.testing.assert_frame_equal(runs2.set_index("run"), runs)


# ----------------------------------------------------------------------------- evaluate -> scorecard: one contract


def _tiny_grid(tmp_path, cfg: Profile) -> None:
    """Two runs (none, eisbach) × 2 prompts × 2 samples as WAVs in their sample folders, the samples
    manifest and the prompt table, as `eisbach generate` leaves them (audio codec: the WAVs exist)."""
    import soundfile as sf

    from eisbach_lib.layout import Layout

    layout = Layout.of(cfg)
    rows = []
    for arm in ("none", "eisbach"):
        folder = layout.sample_dir(f"dora_{arm}_s0")
        folder.mkdir(parents=True)
        for p in range(2):
            for s in range(2):
                path = folder / f"p{p:02d}_s{s}.wav"
                y = melody([60 + p, 64 + s, 67 + (arm == "none"), 72] * 2, cfg.generate.seconds / 8, decay=0.1 + 0.05 * s)
                sf.write(path, y, SR, subtype="FLOAT")
                rows.append({"run": f"dora_{arm}_s0", "adapter": "dora", "arm": arm, "seed": 0, "step": -1, "prompt_id": p,
                             "sample": s, "set": "primary", "path": str(path.relative_to(layout.runs))})
    pd.DataFrame(rows).to_csv(layout.samples_manifest, index=False)
    pd.DataFrame({"prompt_id": [0, 1], "name": ["a", "b"], "set": "primary", "caption": ["x", "y"]}).to_csv(
        layout.prompts, index=False)


@pytest.mark.filterwarnings("ignore:Matrix is singular")  # FD on 4-6 clips of a 73-d embedding
def test_write_metrics_writes_exactly_the_files_tables_reads_back(tmp_path, one_torch_thread, monkeypatch):
    """Layout names every file the evaluate stage hands the scorecard: `write_metrics` on a tiny runs
    folder writes the files of `Tables.paths` (every metrics one; prompts.csv is generate's) and nothing
    else under metrics/, and `Tables.read` reads back the tables it returned. The texture readout and the
    structure validation need a rendered corpus: stand-ins give their tables (the validation's written
    where the real one caches it)."""
    from eisbach_lib import evaluate as E
    from eisbach_lib.layout import Layout
    from eisbach_lib.tables import Tables

    cfg = _tiny_runs(tmp_path)
    layout = Layout.of(cfg)
    _tiny_grid(tmp_path, cfg)
    structure = pd.DataFrame({"metric": ["motif_recurrence", "novelty_sections"], "seconds": 2.0, "win_rate": [0.9, 0.6]})

    def structure_validation(c):
        structure.to_csv(Layout.of(c).metrics_table("structure"), index=False)
        return structure

    def readout_columns(c, samples, reference):
        return (pd.Series(np.linspace(0.0, 1.0, len(samples)), index=samples["path"].to_numpy()),
                pd.Series(np.linspace(1.0, 0.0, len(reference)), index=reference.index),
                pd.DataFrame([{"check": "texture accuracy (reference split)", "target": 0.9, "read_back": 0.95,
                               "pass": True, "n": 6, "note": "stand-in"}]))

    monkeypatch.setattr(E, "structure_validation", structure_validation)
    monkeypatch.setattr(E, "readout_columns", readout_columns)
    tables = E.write_metrics(cfg, n_jobs=1, codec=AudioOnly(**dataclasses.asdict(cfg.codec)))
    assert isinstance(tables, Tables)
    assert tables.present() == [f.name for f in dataclasses.fields(Tables)]  # every table, the bandwidth too
    assert E.READOUT in tables.clips and E.READOUT in tables.reference and set(tables.intra["set"]) == {"primary"}
    paths = Tables.paths(layout)
    assert {p for p in layout.metrics.iterdir()} == {p for name, p in paths.items() if name != "prompts"}
    back = Tables.read(layout)
    assert back.present() == tables.present() and back.bandwidth == tables.bandwidth
    for f in dataclasses.fields(Tables):
        if f.name != "bandwidth":
            pd.testing.assert_frame_equal(getattr(back, f.name), getattr(tables, f.name), check_dtype=False, obj=f.name)


def test_evaluate_names_the_command_that_makes_a_missing_upstream_table(tmp_path):
    """`evaluate` never recomputes the anatomy (it would load the base model and every checkpoint): a
    missing table stops it before any metric, naming the file and the command that writes it."""
    from eisbach_lib import evaluate as E
    from eisbach_lib.layout import ANATOMY_TABLES, Layout

    cfg = smoke_at(tmp_path, {"name": "smoke"})
    layout = Layout.of(cfg)
    with pytest.raises(FileNotFoundError) as e:
        E.evaluate(cfg)
    msg = str(e.value)
    for command in ("generate", "anatomy", "dynamics"):
        assert f"`eisbach {command} --profile smoke`" in msg, msg
    assert str(layout.samples_manifest) in msg and str(layout.anatomy_table("entropy_vs_t")) in msg
    assert msg.index("generate") < msg.index("eisbach anatomy") < msg.index("eisbach dynamics")
    layout.samples.mkdir(parents=True)
    layout.samples_manifest.write_text("path\n")
    layout.anatomy.mkdir()
    for name, command in ANATOMY_TABLES.items():
        if command == "anatomy":
            layout.anatomy_table(name).write_text("x\n")
    with pytest.raises(FileNotFoundError) as e:
        E.evaluate(cfg)
    msg = str(e.value)
    assert "`eisbach dynamics --profile smoke`" in msg and "weight_mix.csv" in msg and "output_distances.csv" in msg
    assert "eisbach anatomy" not in msg and "update_cosines" not in msg and "generate" not in msg
    assert not layout.metrics.exists()  # nothing computed before the check
