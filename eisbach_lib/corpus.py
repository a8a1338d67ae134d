"""The chamber corpus: captioned clips rendered from real compositions (docs/design.md §1.1).

Sources: the `music21` corpus — Bach chorales, Palestrina mass movements, Monteverdi madrigals,
folk tunes (the opus collections essenFolksong / ryansMammoth / oneills1850, one tune per
piece) and Haydn / Mozart / Beethoven quartet movements. Each piece's notes are read from
music21 (parts, onsets and durations in quarter notes, ties merged), and every clip is rendered
from a MIDI file built with pretty_midi and synthesised by FluidSynth with the General MIDI
soundfont shipped inside the pretty_midi wheel (TimGM6mb.sf2).

How a corpus is built (`build_chamber_corpus`), all deterministic from `seed`:

1. Candidate pieces: every usable file of the sources (files over `MAX_FILE_BYTES` are left out
   to bound parse time — a Beethoven quartet movement takes ≈ 2.5 s to parse, a chorale ≈ 0.15 s;
   opus files are split into their tunes by their `X:` numbers), shuffled per source and
   interleaved by the source weights of `SOURCES`.
2. Splits are disjoint by source piece (and by work: the movements of one quartet stay in one
   split). Each split needs ceil(clips / clips_per_piece) pieces; candidates are parsed in
   stream order (in parallel) and each usable one goes to the split with the largest remaining
   need, so every split gets the same mix of sources. Parsed pieces are cached in
   `out_dir/pieces_cache.json.gz` (independent of the seed).
3. Clip k of a split uses piece k mod n_pieces; its texture comes from a shuffled list of
   `TEXTURES` in the split's mix (`split_textures`: balanced in base, skewed to the flat class in
   finetune and reference). Everything else is drawn from `numpy.random.default_rng([seed, clip index])`:
   the instruments (by texture, `TEXTURE_INSTRUMENTS`), the articulation (a duration factor,
   `ARTICULATIONS`), the tempo (60–130 BPM: note times are quarter notes × 60 / BPM, the score's
   own tempo marks are ignored), the transposition (−5..+6 semitones), the excerpt start (a note
   onset, so the clip starts on sound; a piece shorter than the excerpt is looped), velocities
   and the caption (`clip_caption`: card style in base, ambiguous elsewhere).
4. Parts are ordered by median pitch and given to the instruments ordered by register (several
   parts per instrument, or one part doubled by several instruments for a single-line tune);
   each instrument's line is moved by octaves into its range. An instrument with no note in the
   excerpt is dropped, so the instruments listed (and named in the caption) are exactly those
   playing.
5. The MIDI is written to `midi/<id>.mid` and rendered (`synthesize`: one FluidSynth pass over
   all instruments, a fresh synth per clip so the audio is deterministic); leading silence (below
   −60 dB of the peak) is skipped, the audio is cut/padded to `seconds`, peak-normalised to
   `PEAK` and written as 16-bit PCM WAV to `audio/<id>.wav` (atomically: an interrupted run
   never leaves a partial file).

Speed: the cpu profile (1,500 six-second clips from 378 pieces) takes ≈ 230 s of CPU time, i.e.
about 2 minutes on 2 free cores (notebook 00 of the cpu series: 1:51 in the 2026-12-01 recording,
2:03 on 2026-12-02's fresh clone, README); most of it is FluidSynth (≈ 0.1 s a clip) and music21
parsing (≈ 0.2 s a piece).

Splits differ in what the fine-tune must learn (docs/design.md §1.1):

- `base` (pretraining): a balanced texture mix and card-style captions, chosen per clip: `plain`
  (MusicCaps-like sentences) and `scene` (the model card's literary prompts: a character, a scene,
  instruments, a mood, an arc, "NN BPM"). Both name the clip's instruments by their palette names,
  a texture phrase, and its tempo as "NN BPM", and no other palette name (`caption_instruments`
  finds them; the tests check every clip).
- `finetune` and `reference`: `ambiguous` captions (`make_ambiguous_caption`), a style the base
  never saw: the source, tempo, key and mood, no instrument and no texture or articulation phrase.
  Every fact they state is drawn independently of the texture (the tempo, transposition and
  excerpt are drawn per clip whatever the texture, the mood from the key's mode and the tempo, the
  source piece by position, the texture from a shuffled list), so the conditional target of such a
  caption is a mixture of textures, and a per-sample loss weight shifts that mixture; with the
  card captions the caption fixed the texture and a per-sample weight could not change the target.
  Their texture mix is skewed to the flat class (`texture_mix`: `sustained` = `flat_share`, 70 %
  by default, the three others sharing the rest), for two reasons: the fine-tune then has a mix to
  learn that the balanced base does not produce (the manipulation check M1 can move), and a
  reweighting of flat clips has room to act (the oracle's 0.1 on sustained takes the weighted share
  from 70 % to 19 %, 51 points, where a balanced mix gives 25 % → 4 %). 70 %, not 40 %: the base
  reads 0.11 flat on the primary prompts and the readout's sesoi is about 0.1, so at 40 % a fine-tune
  that learned the whole mix moves M1 by at most (0.40 − 0.11)/0.106 = 2.7 sesoi, short of its
  3-sesoi gate (benchmarks/results/pilot.md).

The base split's clips (audio and captions) are the ones corpus version 2 rendered: its texture
list and the draws of every base clip are unchanged, so a base pretrained on version 2 stays valid.
"""

from __future__ import annotations

import gzip
import json
import math
import multiprocessing
import re
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from .progress import Progress
from .files import atomic_write
from .layout import CORPUS_PARAMS, MANIFEST

CORPUS_VERSION = 3          # bump when the rendering or captions change, so old corpora are rebuilt
                            # (3: finetune/reference get ambiguous captions and a skewed texture mix)
PEAK = 0.9                  # peak level of every clip after normalisation
MAX_FILE_BYTES = 60_000     # single-piece files larger than this are skipped (parse time)
SILENCE_DB = -60.0          # leading samples below this (re the clip's peak) are skipped
MIN_NOTES = 16              # a usable piece has at least this many notes ...
MIN_BEATS = 8.0             # ... and lasts at least this many quarter notes
SPLIT_ORDER = ("base", "finetune", "reference")
TEXTURES = ("sustained", "mixed", "plucked", "percussive")
FLAT_TEXTURE = "sustained"  # the temporally flat class (barrier.ORACLE_WEIGHTS, anatomy.FLAT_CLASSES)
FLAT_SHARE = 0.7            # share of FLAT_TEXTURE clips in finetune and reference (module docstring)
CARD_CAPTION_SPLITS = ("base",)  # splits captioned in the card's style; every other split: ambiguous
MANIFEST_COLUMNS = ("id", "split", "source_piece", "composer", "instruments", "tempo_bpm", "key", "transpose",
                    "articulation", "texture", "caption", "caption_style", "path", "seconds")


# --- sources --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    """A music21 corpus collection: composer label, share of the pieces, caption description."""

    name: str
    composer: str
    weight: float
    description: str
    opus: bool = False  # files hold many tunes (X: numbers)


SOURCES: tuple[Source, ...] = (
    Source("bach", "Bach", 0.30, "a Bach chorale"),
    Source("palestrina", "Palestrina", 0.15, "a Palestrina mass movement"),
    Source("monteverdi", "Monteverdi", 0.07, "a Monteverdi madrigal"),
    Source("essenFolksong", "traditional", 0.13, "a European folk song", opus=True),
    Source("ryansMammoth", "traditional", 0.10, "an old fiddle tune"),
    Source("oneills1850", "traditional", 0.10, "an Irish folk tune", opus=True),
    Source("haydn", "Haydn", 0.06, "a Haydn quartet movement"),
    Source("mozart", "Mozart", 0.06, "a classical movement by Mozart"),
    Source("beethoven", "Beethoven", 0.03, "a Beethoven quartet movement"),
)
SCORE_EXTENSIONS = (".mxl", ".xml", ".musicxml", ".krn", ".abc")


# --- the instrument palette ------------------------------------------------------------------

@dataclass(frozen=True)
class Instrument:
    """A palette instrument: General MIDI program (0-based) and playing range (MIDI pitches)."""

    name: str
    program: int
    low: int
    high: int

    @property
    def center(self) -> float:
        return (self.low + self.high) / 2


# The model card's palette as General MIDI programs. General MIDI has no toy piano, so the card's
# "toy piano / glockenspiel" is the glockenspiel only; the card's "sustained pads" are GM "warm pad".
PALETTE: dict[str, Instrument] = {i.name: i for i in (
    Instrument("celesta", 8, 60, 96),
    Instrument("glockenspiel", 9, 72, 105),
    Instrument("music box", 10, 60, 96),
    Instrument("vibraphone", 11, 53, 89),
    Instrument("marimba", 12, 45, 96),
    Instrument("xylophone", 13, 65, 103),
    Instrument("organ", 19, 36, 84),               # GM church organ
    Instrument("violin", 40, 55, 96),
    Instrument("viola", 41, 48, 84),
    Instrument("cello", 42, 36, 72),
    Instrument("double bass", 43, 28, 55),
    Instrument("pizzicato strings", 45, 36, 84),
    Instrument("harp", 46, 36, 96),
    Instrument("timpani", 47, 40, 55),
    Instrument("string ensemble", 48, 43, 84),
    Instrument("french horn", 60, 41, 77),
    Instrument("bassoon", 70, 34, 70),
    Instrument("contrabassoon", 70, 22, 50),       # the bassoon program an octave lower
    Instrument("clarinet", 71, 50, 89),
    Instrument("flute", 73, 60, 96),
    Instrument("warm pad", 89, 43, 84),            # GM pad 2 (warm)
)}

HELD = ("organ", "warm pad", "string ensemble", "violin", "viola", "cello", "double bass")
WINDS = ("flute", "clarinet", "bassoon", "contrabassoon", "french horn")
PLUCKED = ("harp", "pizzicato strings", "celesta", "music box")
STRUCK = ("marimba", "xylophone", "glockenspiel", "timpani")
TEXTURE_INSTRUMENTS: dict[str, tuple[str, ...]] = {
    "sustained": HELD,                                              # organ, pads, bowed strings
    "plucked": PLUCKED,
    "percussive": STRUCK,
    "mixed": WINDS + HELD[3:] + PLUCKED + ("marimba", "vibraphone"),  # held lines against attacks
}
# label -> range of the note-duration factor (sounding length = written length × factor)
ARTICULATIONS: dict[str, tuple[float, float]] = {
    "legato": (1.0, 1.25), "normal": (0.75, 0.95), "detached": (0.45, 0.7), "staccato": (0.12, 0.3),
}
TEXTURE_ARTICULATIONS = {"sustained": ("legato",), "plucked": ("detached", "normal"),
                         "percussive": ("staccato",), "mixed": ("normal", "detached", "legato")}
KEY_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def soundfont_path() -> Path:
    """The General MIDI soundfont inside the pretty_midi package (TimGM6mb.sf2)."""
    import pretty_midi  # heavy: pretty_midi

    path = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    if not path.exists():
        raise FileNotFoundError(f"chamber corpus: soundfont {path} not found (it ships with the pretty_midi wheel; "
                                "reinstall pretty_midi)")
    return path


# --- candidate pieces ------------------------------------------------------------------------

def list_candidates(seed: int = 0) -> list[dict]:
    """All usable corpus entries, shuffled per source and interleaved by source weight.

    Each entry: key (corpus path without extension, `#n` for a tune of an opus file), source,
    path (for music21.corpus.parse), number (the tune's X: number or None), work (the split
    group: the folder of a multi-movement work, else the key).
    """
    from music21 import common, corpus  # heavy: music21

    root = Path(common.getCorpusFilePath())
    per_source: list[list[dict]] = []
    for k, src in enumerate(SOURCES):
        entries: dict[str, dict] = {}
        for p in sorted(Path(str(x)) for x in corpus.getComposer(src.name)):
            if p.suffix not in SCORE_EXTENSIONS or p.stem.startswith("test"):
                continue
            rel = p.relative_to(root).as_posix()
            stem = rel.rsplit(".", 1)[0]
            if src.opus:
                for n in _abc_numbers(p):
                    key = f"{stem}#{n}"
                    entries[key] = {"key": key, "source": src.name, "path": rel, "number": n, "work": key}
                continue
            if p.stat().st_size > MAX_FILE_BYTES or (stem in entries and p.suffix != ".mxl"):
                continue  # too slow to parse, or a second encoding of the same piece (keep .mxl)
            work = str(Path(stem).parent) if "movement" in p.name else stem
            entries[stem] = {"key": stem, "source": src.name, "path": rel, "number": None, "work": work}
        order = np.random.default_rng([seed, 1000 + k]).permutation(len(entries))
        values = list(entries.values())
        per_source.append([values[i] for i in order])
    return _interleave(per_source, np.array([s.weight for s in SOURCES]), np.random.default_rng([seed, 999]))


def _abc_numbers(path: Path) -> list[int]:
    """The X: reference numbers of the tunes in an ABC file."""
    text = path.read_text(encoding="latin-1")
    return [int(m) for m in re.findall(r"^X:\s*(\d+)", text, flags=re.MULTILINE)]


def _interleave(lists: list[list[dict]], weights: np.ndarray, rng: np.random.Generator) -> list[dict]:
    """One stream from several lists: each next item comes from a list drawn by weight (renormalised
    over the lists not yet exhausted)."""
    pos = [0] * len(lists)
    out: list[dict] = []
    while True:
        live = np.array([pos[i] < len(lists[i]) for i in range(len(lists))])
        if not live.any():
            return out
        w = np.where(live, weights, 0.0)
        i = int(rng.choice(len(lists), p=w / w.sum()))
        out.append(lists[i][pos[i]])
        pos[i] += 1


def parse_piece(candidate: dict) -> dict | None:
    """Notes of one candidate, or None when it cannot be parsed or is too small.

    Returns {key, source, work, parts: [[[onset, duration, midi_pitch], ...] per part] in quarter
    notes (ties merged, grace notes and unpitched notes dropped), length (quarter notes),
    tonic_pc, mode} (key from `estimate_key`). Parsed from source with music21's converter
    without writing music21's own pickle cache (writing and re-reading it doubles the parse time).
    """
    from music21 import common, converter  # heavy: music21

    warnings.filterwarnings("ignore")
    try:
        path = Path(common.getCorpusFilePath()) / candidate["path"]
        score = converter.parse(path, number=candidate["number"], forceSource=True, storePickle=False)
        if score is None or not hasattr(score, "parts"):
            return None
        parts = [_part_notes(part) for part in score.parts]
        parts = [p for p in parts if p]
        n_notes = sum(len(p) for p in parts)
        length = max((n[0] + n[1] for p in parts for n in p), default=0.0)
        if n_notes < MIN_NOTES or length < MIN_BEATS:
            return None
        tonic_pc, mode = estimate_key(parts)
        return {"key": candidate["key"], "source": candidate["source"], "work": candidate["work"], "parts": parts,
                "length": float(length), "tonic_pc": tonic_pc, "mode": mode}
    except Exception:  # noqa: BLE001 - one unreadable score never stops the corpus
        return None


def estimate_key(parts: list[list[list[float]]]) -> tuple[int, str]:
    """(tonic pitch class, 'major'|'minor'): the key profile (music21's AardenEssen weights, the
    method of `Stream.analyze('key')`) best correlated (Pearson) with the duration-weighted
    pitch-class histogram of the notes."""
    from music21.analysis.discrete import AardenEssen  # heavy: music21

    hist = np.zeros(12)
    for part in parts:
        for _, dur, pitch in part:
            hist[int(pitch) % 12] += dur
    best = (-2.0, 0, "major")
    for mode in ("major", "minor"):
        weights = np.asarray(AardenEssen().getWeights(mode), dtype=float)
        for tonic in range(12):
            r = float(np.corrcoef(hist, np.roll(weights, tonic))[0, 1])
            if r > best[0]:
                best = (r, tonic, mode)
    return best[1], best[2]


def _part_notes(part) -> list[list[float]]:
    """[[onset, duration, pitch], ...] of a music21 part, ties merged into one note."""
    notes: list[list[float]] = []
    open_ties: dict[int, int] = {}
    for el in part.flatten().notes:
        dur = float(el.quarterLength)
        if dur <= 0 or el.duration.isGrace:
            continue
        onset = float(el.offset)
        for n in (el.notes if el.isChord else [el]):
            if not hasattr(n, "pitch"):
                continue  # unpitched percussion
            midi, tie = int(n.pitch.midi), (n.tie.type if n.tie is not None else None)
            if tie in ("continue", "stop") and midi in open_ties:
                first = notes[open_ties[midi]]
                first[1] = onset + dur - first[0]
                if tie == "stop":
                    del open_ties[midi]
                continue
            notes.append([onset, dur, midi])
            if tie == "start":
                open_ties[midi] = len(notes) - 1
    notes.sort(key=lambda n: (n[0], n[2]))
    return notes


# --- one clip --------------------------------------------------------------------------------

@dataclass
class ClipPlan:
    """What one clip plays: instruments (palette names, high to low), their notes
    [(start_s, end_s, pitch, velocity)], and the manifest facts."""

    instruments: list[str]
    notes: dict[str, list[tuple[float, float, int, int]]]
    tempo_bpm: int
    transpose: int
    articulation: str
    key: str


def draw_instruments(texture: str, rng: np.random.Generator) -> list[str]:
    """Instruments for a texture: sustained 1–4 of HELD; plucked 1–3 of PLUCKED; percussive 1–3 of
    STRUCK (timpani never alone); mixed 1–2 held/wind lines plus 1–2 plucked/struck instruments."""
    def pick(pool: tuple[str, ...], lo: int, hi: int) -> list[str]:
        n = int(rng.integers(lo, min(hi, len(pool)) + 1))
        return [pool[i] for i in rng.choice(len(pool), size=n, replace=False)]

    if texture == "sustained":
        names = pick(HELD, 1, 4)
    elif texture == "plucked":
        names = pick(PLUCKED, 1, 3)
    elif texture == "percussive":
        names = pick(STRUCK, 1, 3)
        if names == ["timpani"]:
            names.append("marimba")
    elif texture == "mixed":
        names = pick(WINDS + HELD[3:], 1, 2) + pick(PLUCKED + ("marimba", "vibraphone"), 1, 2)
    else:
        raise ValueError(f"unknown texture {texture!r}; known: {', '.join(TEXTURES)}")
    return sorted(names, key=lambda n: (-PALETTE[n].center, n))


def _excerpt(piece: dict, beats: float, rng: np.random.Generator,
             start: float | None = None) -> list[list[tuple[float, float, int]]]:
    """Notes of each part starting in a window of `beats` quarter notes, times relative to the
    window start (a note onset, drawn from `rng`, or `start` when given: the bar-aligned excerpts of
    `validation`). A piece shorter than the window is looped from its first onset."""
    parts = piece["parts"]
    onsets = sorted({n[0] for p in parts for n in p})
    first, length = onsets[0], piece["length"]
    if start is not None:
        return [[(n[0] - start, n[1], int(n[2])) for n in p if start <= n[0] < start + beats] for p in parts]
    if length - first >= beats:
        choices = [o for o in onsets if o <= length - beats]
        start = float(choices[int(rng.integers(len(choices)))])
        return [[(n[0] - start, n[1], int(n[2])) for n in p if start <= n[0] < start + beats] for p in parts]
    period = length - first
    reps = int(math.ceil(beats / period)) + 1
    out = []
    for p in parts:
        notes = [(n[0] - first + r * period, n[1], int(n[2])) for r in range(reps) for n in p]
        out.append([n for n in notes if 0 <= n[0] < beats])
    return out


def plan_clip(piece: dict, texture: str, seconds: float, rng: np.random.Generator,
              start: float | None = None) -> ClipPlan:
    """Draw a clip's instruments, articulation, tempo, transposition and excerpt (module docstring, 3–4).
    `start` (quarter notes) fixes the excerpt's start instead of drawing it."""
    instruments = draw_instruments(texture, rng)
    articulation = str(rng.choice(TEXTURE_ARTICULATIONS[texture]))
    factor = float(rng.uniform(*ARTICULATIONS[articulation]))
    tempo = int(rng.integers(60, 131))
    transpose = int(rng.integers(-5, 7))
    beats = seconds * tempo / 60.0
    sec_per_beat = 60.0 / tempo
    for _ in range(8):  # a window where every part rests is redrawn
        parts = [p for p in _excerpt(piece, beats, rng, start) if p]
        if parts:
            break
    else:
        raise RuntimeError(f"chamber corpus: no notes found in piece {piece['key']}")
    parts.sort(key=lambda p: -float(np.median([n[2] for n in p])))
    n_i, n_p = len(instruments), len(parts)
    accent = texture in ("percussive", "plucked")
    notes: dict[str, list[tuple[float, float, int, int]]] = {}
    for j, name in enumerate(instruments):
        inst = PALETTE[name]
        if n_i <= n_p:
            mine = [n for p in parts[j * n_p // n_i:(j + 1) * n_p // n_i] for n in p]
        else:
            mine = list(parts[j * n_p // n_i])
        base_velocity = int(rng.integers(72, 101))
        shift = 12 * round((inst.center - float(np.median([n[2] for n in mine])) - transpose) / 12)
        events = []
        for onset, dur, pitch in sorted(mine):
            p = pitch + transpose + shift
            while p < inst.low:
                p += 12
            while p > inst.high:
                p -= 12
            v = base_velocity + int(rng.integers(-6, 7)) + (10 if accent and float(onset).is_integer() else 0)
            start = onset * sec_per_beat
            events.append((start, start + max(0.06, dur * sec_per_beat * factor), int(p), int(np.clip(v, 1, 127))))
        events = [e for e in _no_overlap_same_pitch(events) if e[0] < seconds - 0.25]
        if events:
            notes[name] = events
    kept = [n for n in instruments if n in notes]
    key = f"{KEY_NAMES[(piece['tonic_pc'] + transpose) % 12]} {piece['mode']}"
    return ClipPlan(kept, notes, tempo, transpose, articulation, key)


def _no_overlap_same_pitch(events: list[tuple[float, float, int, int]]) -> list[tuple[float, float, int, int]]:
    """End each note no later than the next onset of the same pitch (a MIDI note-off would
    otherwise cut the repeated note), dropping exact duplicates."""
    events = sorted(set(events))
    out = []
    for i, (s, e, p, v) in enumerate(events):
        nxt = next((x[0] for x in events[i + 1:] if x[2] == p and x[0] > s), None)
        if any(x[0] == s and x[2] == p for x in out):
            continue
        out.append((s, min(e, nxt) if nxt is not None else e, p, v))
    return out


def to_pretty_midi(plan: ClipPlan):
    """The clip as a pretty_midi.PrettyMIDI: one instrument per palette name, tempo = plan tempo."""
    import pretty_midi  # heavy: pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=float(plan.tempo_bpm))
    for name in plan.instruments:
        inst = pretty_midi.Instrument(program=PALETTE[name].program, name=name)
        inst.notes = [pretty_midi.Note(velocity=v, pitch=p, start=s, end=e) for s, e, p, v in plan.notes[name]]
        pm.instruments.append(inst)
    return pm


def synthesize(pm, sample_rate: int, seconds: float, gain: float = 0.2) -> np.ndarray:
    """The first `seconds` of `pm` through FluidSynth (TimGM6mb.sf2), float32 in [−1, 1).

    One pass with every instrument on its own MIDI channel (9, the drum channel, skipped): the
    same synthesis as `pretty_midi.PrettyMIDI.fluidsynth`, which renders each instrument in a
    separate pass to its last note + 1 s, ≈ 3× faster for a three-instrument clip. A fresh synth
    per call makes the result deterministic. Left channel, as pretty_midi. If the int16 output
    clips, the gain is halved and the clip rendered again.
    """
    import fluidsynth  # optional: fluidsynth (loads the system's libfluidsynth; only rendering needs it)

    n_total = int(round(seconds * sample_rate))
    channels = [c for c in range(16) if c != 9]
    if len(pm.instruments) > len(channels):
        raise ValueError(f"chamber corpus: at most {len(channels)} instruments per clip, got {len(pm.instruments)}")
    out = np.zeros(n_total, dtype=np.int16)
    for _ in range(6):
        synth = fluidsynth.Synth(gain=gain, samplerate=float(sample_rate))
        try:
            sfid = synth.sfload(str(soundfont_path()))
            for ch, inst in zip(channels, pm.instruments):
                synth.program_select(ch, sfid, 0, inst.program)
            pos = 0
            for t, on, ch, pitch, velocity in _note_events(pm, channels):
                target = min(n_total, int(round(t * sample_rate)))
                if target > pos:
                    out[pos:target] = synth.get_samples(target - pos)[::2]
                    pos = target
                if pos >= n_total:
                    break
                if on:
                    synth.noteon(ch, pitch, velocity)
                else:
                    synth.noteoff(ch, pitch)
            if pos < n_total:
                out[pos:] = synth.get_samples(n_total - pos)[::2]
        finally:
            synth.delete()
        if int(np.abs(out.astype(np.int32)).max()) < 32767:
            break
        gain /= 2
    return out.astype(np.float32) / 32768.0


def _note_events(pm, channels: list[int]) -> list[tuple[float, int, int, int, int]]:
    """(time, on, channel, pitch, velocity) of every note on/off, offs first at equal times."""
    events = []
    for ch, inst in zip(channels, pm.instruments):
        for note in inst.notes:
            events.append((float(note.start), 1, ch, int(note.pitch), int(note.velocity)))
            events.append((float(note.end), 0, ch, int(note.pitch), 0))
    return sorted(events)


def render(pm, sample_rate: int, seconds: float) -> np.ndarray:
    """The clip's audio: `synthesize` `seconds` + 0.5 s, skip leading silence (< SILENCE_DB re
    peak), cut/pad to `seconds`, peak-normalise to PEAK. float32 [round(seconds · sr)]."""
    y = synthesize(pm, sample_rate, seconds + 0.5)
    n = int(round(seconds * sample_rate))
    peak = float(np.abs(y).max()) if y.size else 0.0
    if peak <= 1e-6:
        raise RuntimeError("chamber corpus: FluidSynth rendered silence")
    start = int(np.argmax(np.abs(y) > peak * 10 ** (SILENCE_DB / 20)))
    y = y[start:start + n]
    y = np.pad(y, (0, n - len(y)))
    return (y * (PEAK / float(np.abs(y).max()))).astype(np.float32)


# --- captions --------------------------------------------------------------------------------

_PALETTE_RE = re.compile(r"\b(" + "|".join(re.escape(n) for n in sorted(PALETTE, key=len, reverse=True)) + r")\b",
                         flags=re.IGNORECASE)


def caption_instruments(caption: str) -> set[str]:
    """The palette names mentioned in a caption (whole words, longest name first)."""
    return {m.lower() for m in _PALETTE_RE.findall(caption)}


def _join(names: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _article(name: str) -> str:
    """'a harp', 'an organ'; plural names ('pizzicato strings', 'timpani') take none."""
    if name.endswith("s") or name == "timpani":
        return name
    return ("an " if name[0] in "aeiou" else "a ") + name


_TEMPO_WORDS = ((76, "slow"), (100, "moderate"), (116, "lively"), (999, "fast"))
_PLAIN_OPEN = ("This is an instrumental chamber arrangement of {src}.",
               "An instrumental piece based on {src}.",
               "This {tempo} instrumental music is a rendition of {src}.",
               "This is a short instrumental recording of {src}.")
_PLAIN_TEXTURE = {
    "sustained": ("The sound is smooth and sustained, with long legato lines and soft attacks.",
                  "The notes are held and connected, giving a calm and even texture."),
    "plucked": ("The notes are plucked and ring out before fading quickly.",
                "Light plucked notes sparkle and decay between the beats."),
    "percussive": ("Short struck notes give the piece crisp, clearly separated attacks.",
                   "The notes are struck and very short, with strong rhythmic accents."),
    "mixed": ("Held notes are set against short plucked or struck accents.",
              "The texture mixes sustained lines with crisp attacks."),
}
_MOODS = {("major", False): ("calm and tender", "peaceful and warm", "gentle and sweet"),
          ("major", True): ("cheerful and bright", "playful and light", "joyful and energetic"),
          ("minor", False): ("melancholic and solemn", "wistful and sad", "dark and reflective"),
          ("minor", True): ("restless and dramatic", "urgent and mysterious", "tense and lively")}
_PLAIN_CLOSE = ("There are no vocals.", "It could be used as background music for a period drama.",
                "The recording is clean, with a little room reverb.", "This music would suit a quiet evening.")

_CHARACTERS = ("Sleepy Hedgehog Librarian", "Otter Lighthouse Keeper", "Old Tortoise Astronomer", "Fox Clockmaker",
               "Little Owl Postmistress", "Badger Baker", "Heron Ballet Teacher", "Mole Cartographer",
               "Penguin Stationmaster", "Rabbit Gardener", "Bear Ferryman", "Mouse Tailor", "Crow Detective",
               "Beaver Architect", "Snail Poet", "Goat Mountaineer", "Duckling Sailor", "Wolf Night Watchman",
               "Hare Messenger", "Moth Lamplighter", "Frog Choir Director", "Lynx Ice Skater")
_PORTRAITS = ("chamber character portrait", "chamber fairy-tale portrait", "chamber storybook scene",
              "chamber miniature")
_SCENES = ("wandering through a moonlit garden", "crossing a frozen river at dawn",
           "sorting old letters by lantern light", "climbing a spiral staircase in a tower of clocks",
           "rowing across a misty lake", "walking through a snowy village market",
           "reading maps in an attic full of dusty books", "watching the first stars over a quiet harbour",
           "tending a greenhouse in the rain", "hurrying along cobbled streets before the bells ring",
           "dancing alone in an empty ballroom", "waiting for a train on a foggy platform")
_MELODY = {
    "sustained": ("long breathing phrases", "slow singing lines", "warm sustained chords"),
    "plucked": ("delicate plucked figures", "light sparkling patterns", "glittering broken chords"),
    "percussive": ("crisp tapping rhythms", "dry staccato patterns", "precise clockwork rhythms"),
    "mixed": ("singing lines over crisp accents", "a dialogue between held notes and short taps",
              "smooth phrases punctuated by bright attacks"),
}
_ARCS = ("peaceful ending", "clear motif development, peaceful ending", "slow build to a bright climax, soft resolution",
         "quiet opening, growing warmth, gentle close", "playful middle section, calm return",
         "clear structural development from question to answer")


def tempo_word(bpm: int) -> str:
    """slow (< 76), moderate (< 100), lively (< 116), fast."""
    return next(w for limit, w in _TEMPO_WORDS if bpm < limit)


def make_caption(instruments: list[str], tempo_bpm: int, key: str, texture: str, source: str,
                 rng: np.random.Generator) -> tuple[str, str]:
    """(caption, style): a `plain` MusicCaps-like description or a `scene` prompt in the model
    card's style. Names exactly `instruments` and states "`tempo_bpm` BPM"."""
    src = next(s for s in SOURCES if s.name == source)
    mode = "minor" if key.endswith("minor") else "major"
    mood = str(rng.choice(_MOODS[(mode, tempo_bpm >= 100)]))
    order = [str(x) for x in rng.permutation(instruments)]
    if rng.random() < 0.5:
        opener = str(rng.choice(_PLAIN_OPEN)).format(src=src.description, tempo=tempo_word(tempo_bpm))
        if len(order) == 1:
            players = str(rng.choice(("It is played by {a} alone.", "A single instrument plays: {a}."))).format(
                a=_article(order[0]))
        else:
            players = str(rng.choice(("It is played by {all}.", "The melody is carried by the {a}, accompanied by {rest}.",
                                      "The ensemble consists of {all}."))).format(
                all=_join([_article(n) for n in order]), a=order[0], rest=_join([_article(n) for n in order[1:]]))
        tempo = str(rng.choice(("The tempo is {w} at {bpm} BPM, in {key}.", "It moves at {bpm} BPM in {key}."))).format(
            w=tempo_word(tempo_bpm), bpm=tempo_bpm, key=key)
        texture_s = str(rng.choice(_PLAIN_TEXTURE[texture]))
        parts = [opener, players, texture_s, tempo, f"The mood is {mood}.", str(rng.choice(_PLAIN_CLOSE))]
        return " ".join(parts), "plain"
    character = str(rng.choice(_CHARACTERS))
    scene = f"{_article(character.lower())} {rng.choice(_SCENES)}"
    fields = [f"{character} {rng.choice(_PORTRAITS)}", ", ".join(order), scene,
              f"{mood} mood, {rng.choice(_MELODY[texture])}", "delicate reverb", str(rng.choice(_ARCS)),
              f"{tempo_bpm} BPM", "no vocals"]
    return ", ".join(fields) + ".", "scene"


# Source descriptions that name an instrument are replaced in ambiguous captions (the base split's
# captions keep Source.description, so the base clips stay as they were).
_AMBIG_SOURCE = {"ryansMammoth": "an old dance tune"}
_AMBIG_OPEN = ("This is an instrumental chamber arrangement of {src}.", "An instrumental piece based on {src}.",
               "This is a short instrumental recording of {src}.", "A chamber rendition of {src}.")
_AMBIG_TEMPO = ("It is in {key} at {bpm} BPM, a {w} tempo.", "The tempo is {w} at {bpm} BPM, in {key}.",
                "It moves at {bpm} BPM in {key}.")


def make_ambiguous_caption(tempo_bpm: int, key: str, source: str, rng: np.random.Generator) -> tuple[str, str]:
    """(caption, "ambiguous"): the source, tempo ("NN BPM" and its word), key and mood of a clip,
    and nothing about its instruments, texture or articulation (module docstring). Takes no
    texture and no instruments, so it cannot leak them; the mood comes from the key's mode and the
    tempo, as in `make_caption`. Half of the captions are sentences (MusicCaps-like), half the
    card's literary form (a character, a scene, the mood, an arc, "NN BPM"), both without the
    instrument list and the texture phrase the base split's captions carry."""
    src = next(s for s in SOURCES if s.name == source)
    described = _AMBIG_SOURCE.get(source, src.description)
    mode = "minor" if key.endswith("minor") else "major"
    mood = str(rng.choice(_MOODS[(mode, tempo_bpm >= 100)]))
    if rng.random() < 0.5:
        parts = [str(rng.choice(_AMBIG_OPEN)).format(src=described),
                 str(rng.choice(_AMBIG_TEMPO)).format(key=key, bpm=tempo_bpm, w=tempo_word(tempo_bpm)),
                 f"The mood is {mood}."]
        if rng.random() < 0.5:
            parts.append(str(rng.choice(_PLAIN_CLOSE)))
        return " ".join(parts), "ambiguous"
    character = str(rng.choice(_CHARACTERS))
    scene = f"{_article(character.lower())} {rng.choice(_SCENES)}"
    fields = [f"{character} {rng.choice(_PORTRAITS)}", scene, described, f"{mood} mood", f"in {key}",
              str(rng.choice(_ARCS)), f"{tempo_bpm} BPM", "no vocals"]
    return ", ".join(fields) + ".", "ambiguous"


def clip_caption(split: str, plan: ClipPlan, texture: str, source: str, rng: np.random.Generator) -> tuple[str, str]:
    """(caption, style) of a clip of `split`: the card's styles (`make_caption`, naming the
    instruments and the texture) in CARD_CAPTION_SPLITS, else `make_ambiguous_caption`."""
    if split in CARD_CAPTION_SPLITS:
        return make_caption(plan.instruments, plan.tempo_bpm, plan.key, texture, source, rng)
    return make_ambiguous_caption(plan.tempo_bpm, plan.key, source, rng)


# --- the corpus ------------------------------------------------------------------------------

def texture_mix(split: str, flat_share: float = FLAT_SHARE) -> dict[str, float]:
    """The texture shares of a split: balanced in CARD_CAPTION_SPLITS (the base split), else
    FLAT_TEXTURE at `flat_share` and the other textures sharing the rest equally."""
    if split in CARD_CAPTION_SPLITS:
        return {t: 1 / len(TEXTURES) for t in TEXTURES}
    if not 0.0 <= flat_share <= 1.0:
        raise ValueError(f"chamber corpus: flat_share must be in [0, 1], got {flat_share!r}")
    rest = (1.0 - flat_share) / (len(TEXTURES) - 1)
    return {t: (flat_share if t == FLAT_TEXTURE else rest) for t in TEXTURES}


def split_textures(split: str, n: int, rng: np.random.Generator, flat_share: float = FLAT_SHARE) -> list[str]:
    """The textures of a split's `n` clips, shuffled by `rng`: for the base split the cycled,
    permuted TEXTURES of corpus version 2 (so the base clips stay the same), else counts from
    `texture_mix` by largest remainder (they sum to n), permuted."""
    if split in CARD_CAPTION_SPLITS:
        return [str(t) for t in rng.permutation(np.resize(np.array(TEXTURES), n))]
    shares = texture_mix(split, flat_share)
    raw = np.array([shares[t] * n for t in TEXTURES])
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: n - int(counts.sum())]:
        counts[i] += 1
    return [str(t) for t in rng.permutation(np.repeat(np.array(TEXTURES), counts))]


def split_jobs(split: str, k_split: int, n: int, pieces: list[dict], seed: int, first_index: int, seconds: float,
               sample_rate: int, out_dir: str, flat_share: float = FLAT_SHARE) -> list[dict]:
    """The `make_clip` jobs of one split (module docstring, 3): clip k plays piece k mod len(pieces),
    its texture from `split_textures` (generator seeded (seed, 2000 + k_split)), its draws from
    (seed, first_index + k)."""
    textures = split_textures(split, n, np.random.default_rng([seed, 2000 + k_split]), flat_share)
    return [{"index": first_index + k, "id": f"{split}_{k:05d}", "split": split, "texture": textures[k],
             "piece": pieces[k % len(pieces)], "seed": int(seed), "seconds": float(seconds),
             "sample_rate": int(sample_rate), "out_dir": str(out_dir)} for k in range(n)]


def plan_and_caption(job: dict) -> tuple[ClipPlan, str, str]:
    """(plan, caption, style) of a `make_clip` job, without rendering: the clip's draws come from
    numpy.random.default_rng([seed, index]), plan first, then the caption (`clip_caption`)."""
    rng = np.random.default_rng([job["seed"], job["index"]])
    plan = plan_clip(job["piece"], job["texture"], job["seconds"], rng)
    caption, style = clip_caption(job["split"], plan, job["texture"], job["piece"]["source"], rng)
    return plan, caption, style


def make_clip(job: dict) -> dict:
    """Plan, caption and (unless its WAV exists) render one clip; returns its manifest row.

    Top-level so process pools can run it. Deterministic from (seed, index, piece, texture, split).
    """
    piece = job["piece"]
    plan, caption, style = plan_and_caption(job)
    out = Path(job["out_dir"])
    wav = out / "audio" / f"{job['id']}.wav"
    if not wav.exists():
        pm = to_pretty_midi(plan)
        midi = out / "midi" / f"{job['id']}.mid"
        atomic_write(midi, lambda tmp: pm.write(str(tmp)))
        y = render(pm, job["sample_rate"], job["seconds"])
        atomic_write(wav, lambda tmp: sf.write(str(tmp), y, job["sample_rate"], subtype="PCM_16"))
    src = next(s for s in SOURCES if s.name == piece["source"])
    return {"id": job["id"], "split": job["split"], "source_piece": piece["key"], "composer": src.composer,
            "instruments": ";".join(plan.instruments), "tempo_bpm": plan.tempo_bpm, "key": plan.key,
            "transpose": plan.transpose, "articulation": plan.articulation, "texture": job["texture"],
            "caption": caption, "caption_style": style, "path": f"audio/{job['id']}.wav",
            "seconds": float(job["seconds"])}


def _pool(workers: int) -> ProcessPoolExecutor | None:
    """A spawn-context process pool (None for workers <= 1: run in this process)."""
    if workers <= 1:
        return None
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def _map(pool: ProcessPoolExecutor | None, fn, items: list, desc: str, progress: bool, chunksize: int = 1) -> list:
    it = map(fn, items) if pool is None else pool.map(fn, items, chunksize=chunksize)
    return list(Progress(it, total=len(items), desc=desc, disable=not progress or not items))


def _load_piece_cache(path: Path) -> dict[str, dict | None]:
    if not path.exists():
        return {}
    try:
        with gzip.open(path, "rt") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}  # a damaged cache is rebuilt


def _save_piece_cache(path: Path, cache: dict[str, dict | None]) -> None:
    def write(tmp: Path) -> None:
        with gzip.open(tmp, "wt") as f:
            json.dump(cache, f)

    atomic_write(path, write)


def choose_pieces(need: dict[str, int], seed: int, pool, cache: dict[str, dict | None],
                  progress: bool = True) -> dict[str, list[dict]]:
    """Usable pieces per split (module docstring, 2): walk the candidate stream in order, parse
    what is not cached (in parallel, in batches), give each usable piece to its work's split or
    else to the split with the largest remaining need, until every split has `need[s]` pieces."""
    stream = list_candidates(seed)
    chosen: dict[str, list[dict]] = {s: [] for s in need}
    work_split: dict[str, str] = {}
    pos = 0
    while any(len(chosen[s]) < need[s] for s in need):
        if pos >= len(stream):
            have = {s: len(v) for s, v in chosen.items()}
            raise RuntimeError(f"chamber corpus: the music21 corpus has too few usable pieces (need {need}, found {have})")
        missing = sum(need[s] - len(chosen[s]) for s in need)
        batch = stream[pos:pos + missing + 2]  # few candidates fail, so little is parsed in vain
        pos += len(batch)
        todo = [c for c in batch if c["key"] not in cache]
        for c, piece in zip(todo, _map(pool, parse_piece, todo, "parse pieces", progress)):
            cache[c["key"]] = piece
        for c in batch:
            piece = cache[c["key"]]
            if piece is None:
                continue
            split = work_split.get(c["work"])
            if split is None:
                open_ = [s for s in need if len(chosen[s]) < need[s]]
                if not open_:
                    break
                split = max(open_, key=lambda s: (need[s] - len(chosen[s])) / need[s])
                work_split[c["work"]] = split
            if len(chosen[split]) < need[split]:
                chosen[split].append(piece)
    return chosen


def corpus_params(clips: dict[str, int], seconds: float, sample_rate: int, seed: int, clips_per_piece: int,
                  flat_share: float = FLAT_SHARE) -> dict:
    """The parameters that define a corpus (stored in corpus.json)."""
    return {"clips": {k: int(v) for k, v in clips.items()}, "seconds": float(seconds), "sample_rate": int(sample_rate),
            "seed": int(seed), "clips_per_piece": int(clips_per_piece), "flat_share": float(flat_share),
            "version": CORPUS_VERSION}


def build_chamber_corpus(out_dir: str | Path, clips: dict[str, int], seconds: float, sample_rate: int, seed: int = 0,
                         workers: int = 2, progress: bool = True, clips_per_piece: int = 4,
                         flat_share: float = FLAT_SHARE) -> pd.DataFrame:
    """Render the chamber corpus into `out_dir` and return its manifest (module docstring).

    `clips` maps split name (base / finetune / reference) to a number of clips; `flat_share` is
    the share of the flat texture in the splits other than base (`texture_mix`). Writes
    out_dir/audio/<id>.wav, out_dir/midi/<id>.mid, out_dir/manifest.csv (columns
    MANIFEST_COLUMNS, path relative to out_dir), out_dir/corpus.json (the parameters) and
    out_dir/pieces_cache.json.gz. Safe to re-run: an existing corpus with the same parameters is
    returned as is; after an interruption, rendered WAVs are reused; different parameters clear
    the old audio first. `workers` processes render in parallel (1 = in this process).
    """
    out = Path(out_dir)
    params = corpus_params(clips, seconds, sample_rate, seed, clips_per_piece, flat_share)
    meta_path, manifest_path = out / CORPUS_PARAMS, out / MANIFEST
    old = json.loads(meta_path.read_text()) if meta_path.exists() else None
    if old == params and manifest_path.exists():
        manifest = pd.read_csv(manifest_path, keep_default_na=False)
        if len(manifest) == sum(params["clips"].values()) and all((out / p).exists() for p in manifest["path"]):
            if progress:
                print(f"chamber corpus: reusing {len(manifest)} clips in {out}")
            return manifest
    if old is not None and old != params:
        if progress:
            print(f"chamber corpus: parameters changed, clearing {out / 'audio'} and {out / 'midi'}")
        for sub in ("audio", "midi"):
            for f in (out / sub).glob("*"):
                f.unlink()
        manifest_path.unlink(missing_ok=True)
    for sub in ("audio", "midi"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    meta_path.write_text(json.dumps(params, indent=2, sort_keys=True))

    splits = [s for s in SPLIT_ORDER if params["clips"].get(s, 0) > 0]
    splits += sorted(s for s in params["clips"] if s not in SPLIT_ORDER and params["clips"][s] > 0)
    need = {s: max(1, math.ceil(params["clips"][s] / clips_per_piece)) for s in splits}
    cache_path = out / "pieces_cache.json.gz"
    cache = _load_piece_cache(cache_path)
    n_cached = len(cache)
    pool = _pool(workers)
    try:
        pieces = choose_pieces(need, seed, pool, cache, progress)
        if len(cache) > n_cached:
            _save_piece_cache(cache_path, cache)
        jobs: list[dict] = []
        for k_split, split in enumerate(splits):
            jobs += split_jobs(split, k_split, params["clips"][split], pieces[split], seed, len(jobs), seconds,
                               sample_rate, str(out), flat_share)
        rows = _map(pool, make_clip, jobs, "render clips", progress, chunksize=4)
    finally:
        if pool is not None:
            pool.shutdown()
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    atomic_write(manifest_path, lambda tmp: manifest.to_csv(tmp, index=False))
    return manifest
