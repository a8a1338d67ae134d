"""The primary prompts do not name their texture (docs/design.md §1.1).

A TF-IDF + logistic-regression text classifier trained on the finetune captions must not read the
texture of the primary prompts' captions better than their majority share + 0.15. The captions are
made by the corpus's own code path without rendering audio: `corpus.split_jobs` (the split's
texture list and piece assignment, as `build_chamber_corpus` makes them) and
`corpus.plan_and_caption` (the clip's draws and its caption, as `make_clip` makes them), on
synthetic pieces of every source, keys and modes; the primary prompts are chosen from that
manifest by `generate.prompt_set`. The same classifier on base-style captions reads the texture
almost always: the test has the power to fail.
"""

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from eisbach_lib import corpus as C
from eisbach_lib.generate import prompt_set
from helpers import smoke_at

SEED = 5
N = {"base": 800, "finetune": 1600, "reference": 400}
TEXTURE_WORDS = ("sustain", "legato", "pluck", "pizzicato", "struck", "staccato", "crisp", "attack", "held ",
                 "percuss", "tapping", "sparkl", "glitter", "ring out", "detached", "smooth")


def fake_pieces(split: str, n: int = 18) -> list[dict]:
    """`n` synthetic pieces of one split: every source, tonic and mode, two parts (a melody and a bass)."""
    out = []
    for i in range(n):
        src = C.SOURCES[i % len(C.SOURCES)].name
        melody = [[float(b) / 2, 0.5, 60 + (3 * b + i) % 12] for b in range(96)]
        bass = [[float(b), 2.0, 43 + (b + i) % 7] for b in range(0, 48, 2)]
        out.append({"key": f"{split}/piece_{i}", "source": src, "work": f"{split}/piece_{i}", "length": 48.0,
                    "tonic_pc": (5 * i) % 12, "mode": ("major", "minor")[(i // 3) % 2], "parts": [melody, bass]})
    return out


def caption_manifest(sizes: dict[str, int] = N, seed: int = SEED) -> pd.DataFrame:
    """The manifest rows `build_chamber_corpus` would write for `sizes`, without the audio."""
    rows, first = [], 0
    for k_split, (split, n) in enumerate(sizes.items()):
        jobs = C.split_jobs(split, k_split, n, fake_pieces(split), seed, first, 4.0, 22050, "unused")
        first += n
        for job in jobs:
            plan, caption, style = C.plan_and_caption(job)
            rows.append({"id": job["id"], "split": split, "source_piece": job["piece"]["key"],
                         "instruments": ";".join(plan.instruments), "tempo_bpm": plan.tempo_bpm, "key": plan.key,
                         "articulation": plan.articulation, "texture": job["texture"], "caption": caption,
                         "caption_style": style})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def manifest() -> pd.DataFrame:
    return caption_manifest()


def text_classifier():
    return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                         LogisticRegression(max_iter=3000, C=10.0))


def test_the_primary_prompts_do_not_name_their_texture(manifest, tmp_path: Path):
    (tmp_path / "corpus").mkdir()
    manifest.to_csv(tmp_path / "corpus" / "manifest.csv", index=False)
    cfg = smoke_at(tmp_path, {"generate.heldout_prompts": 300, "generate.card_prompts": False})
    prompts = prompt_set(cfg)
    primary = prompts[prompts["set"] == "primary"]
    assert len(primary) == 300 and (primary["source"] == "reference").all()
    truth = manifest.set_index("id").loc[list(primary["name"]), "texture"].to_numpy()
    ft = manifest[manifest["split"] == "finetune"]
    clf = text_classifier().fit(ft["caption"], ft["texture"])
    accuracy = float((clf.predict(primary["caption"]) == truth).mean())
    majority = max(Counter(truth).values()) / len(truth)
    print(f"text classifier on the primary prompts: accuracy {accuracy:.3f}, majority share {majority:.3f}")
    assert accuracy <= majority + 0.15, (accuracy, majority)


def test_the_same_classifier_reads_base_style_captions(manifest):
    """The power check: on card-style captions (instruments and a texture phrase) the classifier
    reads the texture of held-out captions nearly always, far above majority + 0.15."""
    base = manifest[manifest["split"] == "base"]
    other = caption_manifest({"base": 300}, seed=SEED + 1)
    clf = text_classifier().fit(base["caption"], base["texture"])
    accuracy = float((clf.predict(other["caption"]) == other["texture"]).mean())
    assert accuracy > 0.9, accuracy


def test_ambiguous_captions_name_no_instrument_and_no_texture(manifest):
    for split, g in manifest.groupby("split"):
        for row in g.itertuples():
            assert f"{row.tempo_bpm} BPM" in row.caption, row.caption
            if split == "base":  # card style: every instrument playing, a texture phrase
                assert row.caption_style in ("plain", "scene")
                assert C.caption_instruments(row.caption) == set(row.instruments.split(";")), row.caption
            else:
                assert row.caption_style == "ambiguous" and row.key in row.caption, row.caption
                assert C.caption_instruments(row.caption) == set(), row.caption
                low = row.caption.lower()
                assert not any(w in low for w in TEXTURE_WORDS + ("fiddle",)), row.caption
    base = manifest[manifest["split"] == "base"]
    said = base["caption"].str.lower().map(lambda c: any(w in c for w in TEXTURE_WORDS))
    assert said.mean() > 0.75  # the base captions do carry a texture phrase (the word list is not empty talk)


def test_split_texture_mixes(manifest):
    counts = manifest.groupby(["split", "texture"]).size().unstack(fill_value=0)
    assert (counts.loc["base"] == N["base"] // 4).all()
    for split in ("finetune", "reference"):
        want = {t: round(share * N[split]) for t, share in C.texture_mix(split).items()}
        assert counts.loc[split].to_dict() == want
        assert counts.loc[split, C.FLAT_TEXTURE] == round(C.FLAT_SHARE * N[split])
    assert C.texture_mix("finetune", 0.25) == {t: 0.25 for t in C.TEXTURES}
    odd = C.split_textures("finetune", 7, np.random.default_rng(0), 0.4)
    assert len(odd) == 7 and Counter(odd)[C.FLAT_TEXTURE] == 3  # largest remainder: 2.8 -> 3
    with pytest.raises(ValueError, match="flat_share"):
        C.texture_mix("finetune", 1.5)


def test_no_other_manifest_fact_tracks_the_texture_in_finetune(manifest):
    """Tempo, key mode and source piece are drawn whatever the texture: their per-texture
    distributions in finetune agree (the articulation does follow the texture, but no ambiguous
    caption states it)."""
    ft = manifest[manifest["split"] == "finetune"]
    tempo = ft.groupby("texture")["tempo_bpm"].mean()
    assert tempo.max() - tempo.min() < 6, tempo.to_dict()  # uniform 60-130: sd ≈ 20, se per class < 1.2
    minor = ft.assign(minor=ft["key"].str.endswith("minor")).groupby("texture")["minor"].mean()
    assert minor.max() - minor.min() < 0.12, minor.to_dict()
    source = pd.crosstab(ft["texture"], ft["source_piece"].str.split("/").str[1], normalize="index")
    assert float(source.max().max()) < 0.2 and float((source.max() - source.min()).max()) < 0.1
