"""The chamber corpus: determinism, true captions, disjoint splits, re-runs, tempo/articulation,
and texture classes that really differ in temporal flatness (docs/design.md §1.1)."""

import re
import shutil

import librosa
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from eisbach_lib import corpus as C
from helpers import smoke_at

CLIPS = {"base": 16, "finetune": 8, "reference": 8}
#: Parsing pieces with music21 costs more than rendering the 32 clips: 4 clips per piece (the library's
#: default) need 8 pieces, and seed 11's candidate stream starts with small scores (about 2 s to parse
#: its first 10, where seed 3's took 6 s)
SECONDS, SR, SEED, CPP = 6.0, 22050, 11, 4


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def temporal_flatness(y: np.ndarray) -> float:
    """h = −Σ p log p / log T with p = e / Σ e, e = librosa.feature.rms(frame_length=2048, hop_length=512)."""
    e = librosa.feature.rms(y=y, frame_length=2048, hop_length=512)[0].astype(np.float64)
    p = e / e.sum()
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum() / np.log(len(p)))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The corpus rendered in this process (workers=1; `test_two_workers_render_the_same_corpus` builds
    it again in two spawned processes, in the slow tier)."""
    out = tmp_path_factory.mktemp("runs") / "corpus"  # <runs_dir>/corpus, as prepare_corpus lays it out
    manifest = C.build_chamber_corpus(out, CLIPS, SECONDS, SR, seed=SEED, workers=1, progress=False,
                                      clips_per_piece=CPP)
    return out, manifest


def test_manifest_columns_and_files(built):
    out, m = built
    assert list(m.columns) == list(C.MANIFEST_COLUMNS)
    assert len(m) == sum(CLIPS.values()) and m["id"].is_unique
    assert m.groupby("split").size().to_dict() == CLIPS
    assert set(m["texture"]) == set(C.TEXTURES)
    on_disk = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(on_disk, m, check_dtype=False)
    for path in m["path"]:
        y, sr = sf.read(out / path, dtype="float32")
        assert sr == SR and len(y) == int(SECONDS * SR)
        assert 0.5 < np.abs(y).max() <= C.PEAK + 1e-3
        assert np.abs(y[: int(0.05 * SR)]).max() > 1e-3  # leading silence skipped
    assert (m["seconds"] == SECONDS).all()


def test_same_seed_gives_the_same_corpus(built, tmp_path):
    out, m = built
    again = tmp_path / "again"
    again.mkdir()
    shutil.copy(out / "pieces_cache.json.gz", again)  # parsing is seed-free; reuse it to keep the test fast
    m2 = C.build_chamber_corpus(again, CLIPS, SECONDS, SR, seed=SEED, workers=1, progress=False, clips_per_piece=CPP)
    pd.testing.assert_frame_equal(m, m2)
    for path in m["path"]:
        assert (out / path).read_bytes() == (again / path).read_bytes(), path


@pytest.mark.slow  # spawns two worker processes, each parsing pieces with music21
def test_two_workers_render_the_same_corpus(built, tmp_path):
    """Pieces parsed and clips rendered in two spawned processes, from scratch (no piece cache): the
    same manifest and the same bytes as the corpus built in this process."""
    out, m = built
    m2 = C.build_chamber_corpus(tmp_path, CLIPS, SECONDS, SR, seed=SEED, workers=2, progress=False, clips_per_piece=CPP)
    pd.testing.assert_frame_equal(m, m2)
    for path in m["path"]:
        assert (out / path).read_bytes() == (tmp_path / path).read_bytes(), path


def test_other_seed_gives_another_corpus(built, tmp_path):
    out, m = built
    shutil.copy(out / "pieces_cache.json.gz", tmp_path)
    other = 8  # another seed whose first candidates are small scores (seed 12 parses a 40 kB Beethoven movement)
    m2 = C.build_chamber_corpus(tmp_path, {"base": 4}, SECONDS, SR, seed=other, workers=1, progress=False,
                                clips_per_piece=CPP)
    assert list(m2["caption"]) != list(m["caption"][:4])


def test_captions_are_true(built):
    """Base captions (card style) name exactly the instruments playing; finetune and reference
    captions (ambiguous) name none; every caption states the tempo."""
    _, m = built
    for row in m.itertuples():
        named = C.caption_instruments(row.caption)
        if row.split == "base":
            assert named == set(row.instruments.split(";")), (row.caption, row.instruments)
            assert row.caption_style in ("plain", "scene")
        else:
            assert named == set() and row.caption_style == "ambiguous", row.caption
            assert row.key in row.caption, row.caption
        assert re.findall(r"(\d+) BPM", row.caption) == [str(row.tempo_bpm)], row.caption
        assert 60 <= row.tempo_bpm <= 130
    assert set(m.loc[m["split"] == "base", "caption_style"]) == {"plain", "scene"}


def test_split_texture_mixes_are_the_designed_ones(built):
    """Base balanced; finetune and reference skewed to the flat class (corpus.texture_mix)."""
    _, m = built
    for split, n in CLIPS.items():
        got = m[m["split"] == split]["texture"].value_counts().to_dict()
        want = {t: k for t, k in zip(*np.unique(C.split_textures(split, n, np.random.default_rng(0)),
                                                return_counts=True))}
        assert got == {str(t): int(k) for t, k in want.items()}, (split, got)
    assert (m[m["split"] == "base"]["texture"].value_counts() == CLIPS["base"] // 4).all()
    assert m[m["split"] == "finetune"]["texture"].value_counts().idxmax() == C.FLAT_TEXTURE


def test_caption_templates_never_name_an_absent_instrument():
    """Many random captions (all templates) name exactly the instruments given."""
    rng = np.random.default_rng(0)
    names = sorted(C.PALETTE)
    for _ in range(3000):
        texture = str(rng.choice(C.TEXTURES))
        inst = C.draw_instruments(texture, rng)
        source = C.SOURCES[int(rng.integers(len(C.SOURCES)))].name
        key = f"{rng.choice(C.KEY_NAMES)} {rng.choice(['major', 'minor'])}"
        bpm = int(rng.integers(60, 131))
        caption, style = C.make_caption(inst, bpm, key, texture, source, rng)
        assert C.caption_instruments(caption) == set(inst), caption
        assert re.findall(r"(\d+) BPM", caption) == [str(bpm)]
        assert style in ("plain", "scene")
        caption, style = C.make_ambiguous_caption(bpm, key, source, rng)
        assert C.caption_instruments(caption) == set() and style == "ambiguous", caption
        assert re.findall(r"(\d+) BPM", caption) == [str(bpm)] and key in caption
    assert C.caption_instruments("contrabassoon and double bass") == {"contrabassoon", "double bass"}
    assert len(names) >= 20


def test_splits_are_disjoint_by_source_piece(built):
    _, m = built
    pieces = {s: set(g["source_piece"]) for s, g in m.groupby("split")}
    assert not pieces["base"] & pieces["finetune"]
    assert not pieces["base"] & pieces["reference"]
    assert not pieces["finetune"] & pieces["reference"]
    assert m.groupby("split")["source_piece"].nunique().to_dict() == {s: n // CPP for s, n in CLIPS.items()}


def test_rerun_reuses_and_resumes(built, tmp_path, monkeypatch):
    out, m = built
    work = tmp_path / "corpus"
    shutil.copytree(out, work)

    def no_render(*a, **k):
        raise AssertionError("render called on a finished corpus")

    monkeypatch.setattr(C, "render", no_render)
    pd.testing.assert_frame_equal(C.build_chamber_corpus(work, CLIPS, SECONDS, SR, seed=SEED, workers=1,
                                                         progress=False, clips_per_piece=CPP), m)
    # an interrupted run: no manifest, one clip missing -> only that clip is rendered again
    monkeypatch.undo()
    calls = []
    real_render = C.render
    monkeypatch.setattr(C, "render", lambda *a, **k: calls.append(1) or real_render(*a, **k))
    (work / "manifest.csv").unlink()
    (work / m["path"][5]).unlink()
    m2 = C.build_chamber_corpus(work, CLIPS, SECONDS, SR, seed=SEED, workers=1, progress=False, clips_per_piece=CPP)
    pd.testing.assert_frame_equal(m2, m)
    assert len(calls) == 1
    assert (work / m["path"][5]).read_bytes() == (out / m["path"][5]).read_bytes()


def test_texture_classes_differ_in_temporal_flatness(built):
    out, m = built
    m = m.assign(flat=[temporal_flatness(sf.read(out / p, dtype="float32")[0]) for p in m["path"]])
    med = m.groupby("texture")["flat"].median()
    assert med["sustained"] > med["percussive"], med.to_dict()
    assert med["sustained"] > med["plucked"], med.to_dict()


def _scale_piece() -> dict:
    return {"key": "scale", "source": "bach", "work": "scale", "length": 64.0, "tonic_pc": 9, "mode": "minor",
            "parts": [[[float(b), 1.0, 57 + (b % 8)] for b in range(64)]]}


def test_tempo_and_articulation_are_applied():
    piece = _scale_piece()
    for seed in range(5):
        for texture in ("sustained", "percussive"):
            plan = C.plan_clip(piece, texture, 6.0, np.random.default_rng(seed))
            for events in plan.notes.values():
                onsets = np.array(sorted({e[0] for e in events}))
                np.testing.assert_allclose(np.diff(onsets), 60.0 / plan.tempo_bpm, rtol=1e-6)
                lengths = np.array([e[1] - e[0] for e in events]) * plan.tempo_bpm / 60.0  # in beats
                if texture == "sustained":
                    assert plan.articulation == "legato" and lengths.mean() > 0.95
                else:
                    assert plan.articulation == "staccato" and lengths.max() <= 0.31
            assert plan.key.endswith("minor") and plan.key.split()[0] == C.KEY_NAMES[(9 + plan.transpose) % 12]


def test_every_palette_instrument_sounds_in_its_range():
    piece = _scale_piece()
    for name, inst in C.PALETTE.items():
        plan = C.ClipPlan([name], {name: [(0.0, 0.4, (inst.low + inst.high) // 2, 100)]}, 90, 0, "normal", "A minor")
        pm = C.to_pretty_midi(plan)
        assert pm.instruments[0].program == inst.program and pm.instruments[0].name == name
        y = C.render(pm, SR, 1.0)
        assert np.sqrt(np.mean(y**2)) > 0.01, name
    plan = C.plan_clip(piece, "mixed", 6.0, np.random.default_rng(0))
    for name, events in plan.notes.items():
        assert all(C.PALETTE[name].low <= e[2] <= C.PALETTE[name].high for e in events)


def test_prepare_corpus_reuses_the_corpus_and_encodes_it(built):
    """prepare_corpus on a chamber profile: the rendered corpus is found, then pre-encoded with
    MelCodec and MiniLM into <runs_dir>/cache/<hash>/."""
    from eisbach_lib.cache import load_cache
    from eisbach_lib.datasets import prepare_corpus

    out, m = built
    cfg = smoke_at(out.parent, {
        "seed": SEED, "corpus": {"source": "chamber", "clips": CLIPS, "seconds": SECONDS, "sample_rate": SR, "workers": 1,
                                 "clips_per_piece": CPP},
        "codec.griffin_lim_iters": 32, "text.max_tokens": 128})  # chamber captions have up to ~90 tokens; a longer one would raise
    folder = prepare_corpus(cfg, progress=False)
    assert folder.parent == out.parent / "cache"
    pe = load_cache(folder)
    assert pe.latents.shape == (len(m), 64, 1 + int(SECONDS * SR) // 1024)
    assert pe.tokens.shape == (len(m), 128, 384) and pe.frame_mask.all()
    assert list(pe.manifest["id"]) == list(m["id"]) and list(pe.manifest["texture"]) == list(m["texture"])
    assert prepare_corpus(cfg, progress=False) == folder
