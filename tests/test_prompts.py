"""Evaluation prompts are held out for real and never truncated; the prompt sets
and their CFG scales (docs/design.md §1.5)."""

import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch

from eisbach_lib.generate import CARD_PROMPTS, prompt_set
from eisbach_lib.text import CaptionTooLong, TextEncoder, check_token_lengths, token_counts
from eisbach_lib.config import Profile, load_profile
from helpers import smoke_at

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXTURES = ("sustained", "mixed", "plucked", "percussive")


def fake_corpus(runs: Path, n: int = 8, shared_piece: bool = False, copy_caption: bool = False) -> pd.DataFrame:
    """<runs>/corpus/manifest.csv with n clips per split, each split its own pieces and captions."""
    rows = []
    for split in ("base", "finetune", "reference"):
        for k in range(n):
            rows.append({"id": f"{split}_{k:05d}", "split": split, "texture": TEXTURES[k % 4],
                         "source_piece": f"{split}/piece_{k // 2}", "caption": f"A {split} tune number {k} for strings."})
    m = pd.DataFrame(rows)
    if shared_piece:
        m.loc[m["id"] == "reference_00000", "source_piece"] = "finetune/piece_0"
    if copy_caption:
        m.loc[m["id"] == "reference_00000", "caption"] = m.loc[m["id"] == "finetune_00003", "caption"].item()
    (runs / "corpus").mkdir(parents=True, exist_ok=True)
    m.to_csv(runs / "corpus" / "manifest.csv", index=False)
    return m


def profile(runs: Path, n: int = 4, max_tokens: int = 128, card: bool = True, key: str = "heldout_prompts",
            **generate) -> Profile:
    gen = {"sampler": "pingpong", "steps": 8, "seconds": 4.0, "samples_per_prompt": 2,
           key: n, "card_prompts": card, "cfg": 3.0, **generate}
    return smoke_at(runs, {"text.max_tokens": max_tokens, "generate": gen})


def test_a_prompt_longer_than_max_tokens_fails_naming_it():
    enc = TextEncoder(max_tokens=16)
    long = "a slow chorale for " + "cello and harp and " * 10
    n = token_counts([long])[0]
    assert n > 16
    with pytest.raises(CaptionTooLong, match=rf"has {n} tokens, more than text.max_tokens = 16"):
        enc.encode(["a harp", long])
    with pytest.raises(CaptionTooLong, match="prompt 'Seal Lawyer' has"):
        check_token_lengths(["short", long], 16, names=["ok", "Seal Lawyer"], what="prompt")


def test_a_caption_of_exactly_max_tokens_is_kept_whole():
    enc = TextEncoder(max_tokens=16)
    caption = "word " * 14  # [CLS] + 14 + [SEP]
    assert token_counts([caption]) == [16]
    tokens, mask = enc.encode([caption])
    assert tokens.shape == (1, 16, TextEncoder.dim) and bool(mask.all())


def test_the_card_prompts_fit_the_profiles_limit_and_not_64():
    card = pd.read_csv(CARD_PROMPTS)
    counts = token_counts(list(card["prompt"]))
    assert 64 < min(counts) and max(counts) <= 128, counts
    for name in ("smoke",):  # the profile this helper owns; cpu/gpu are sized by the integrator
        assert load_profile(name).text.max_tokens >= max(counts), name


def test_eval_prompts_come_from_the_reference_split_and_are_disjoint_from_training(tmp_path):
    m = fake_corpus(tmp_path)
    prompts = prompt_set(profile(tmp_path, n=4))
    held = prompts[prompts["set"] == "primary"]
    assert len(held) == 4 and len(prompts) == 4 + 4 + 1 + 4  # primary, primary_cfg, unconditional, card
    assert (held["source"] == "reference").all()
    assert set(held["name"]) <= set(m.loc[m["split"] == "reference", "id"])
    train = set(m.loc[m["split"].isin(["base", "finetune"]), "caption"])
    assert not set(prompts["caption"]) & train
    assert list(prompts[prompts["source"] == "model_card"]["caption"]) == list(pd.read_csv(CARD_PROMPTS)["prompt"])
    again = prompt_set(profile(tmp_path, n=4))
    pd.testing.assert_frame_equal(prompts, again)  # deterministic, read back from prompts.csv


def test_a_profile_whose_limit_cuts_a_card_prompt_fails(tmp_path):
    fake_corpus(tmp_path)
    with pytest.raises(CaptionTooLong, match="prompt 'Little Piglet Prince' has 121 tokens, more than text.max_tokens = 64"):
        prompt_set(profile(tmp_path, max_tokens=64))
    assert len(prompt_set(profile(tmp_path, max_tokens=64, card=False))) == 4 + 4 + 1  # corpus captions alone fit


def test_a_training_caption_is_never_an_eval_prompt(tmp_path):
    m = fake_corpus(tmp_path, copy_caption=True)
    with pytest.warns(UserWarning, match="has 7 usable captions"):
        prompts = prompt_set(profile(tmp_path, n=8, card=False))
    assert "reference_00000" not in set(prompts["name"]) and (prompts["set"] == "primary").sum() == 7
    assert not set(prompts["caption"]) & set(m.loc[m["split"] != "reference", "caption"])


def test_a_reference_piece_shared_with_training_raises(tmp_path):
    fake_corpus(tmp_path, shared_piece=True)
    with pytest.raises(ValueError, match="shares 1 source piece"):
        prompt_set(profile(tmp_path))


def test_the_old_knob_name_is_read_with_a_warning(tmp_path):
    fake_corpus(tmp_path)
    with pytest.warns(FutureWarning, match="heldout_prompts"):
        old = prompt_set(profile(tmp_path, n=3, key="finetune_prompts"))
    assert list(old["source"]) == ["reference"] * 6 + ["unconditional"] + ["model_card"] * 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pd.testing.assert_frame_equal(old, prompt_set(profile(tmp_path, n=3)))
    with pytest.raises(ValueError, match="keep heldout_prompts only"):
        profile(tmp_path, n=3, finetune_prompts=5)


def test_a_stale_prompts_file_is_rewritten(tmp_path):
    fake_corpus(tmp_path)
    pd.DataFrame({"prompt_id": [0], "name": ["finetune_00001"], "caption": ["x"], "source": ["finetune"]}).to_csv(
        tmp_path / "prompts.csv", index=False)
    with pytest.warns(UserWarning, match="rewritten"):
        prompts = prompt_set(profile(tmp_path, n=2))
    assert "finetune" not in set(prompts["source"])
    assert pd.read_csv(tmp_path / "prompts.csv", keep_default_na=False).equals(prompts)


@pytest.mark.slow  # renders a chamber corpus (music21 parsing, FluidSynth); the fast tier has fake_corpus
def test_a_rendered_chamber_corpus_gives_held_out_prompts(tmp_path):
    """On a real (tiny) chamber corpus: reference pieces and captions are disjoint from training."""
    from eisbach_lib.corpus import build_chamber_corpus

    m = build_chamber_corpus(tmp_path / "corpus", {"base": 4, "finetune": 4, "reference": 4}, 1.0, 22050, seed=0,
                             workers=1, progress=False)
    train = m[m["split"] != "reference"]
    ref = m[m["split"] == "reference"]
    assert not set(ref["source_piece"]) & set(train["source_piece"])
    prompts = prompt_set(profile(tmp_path, n=4))
    assert not set(prompts["caption"]) & set(train["caption"])
    assert set(prompts.loc[prompts["source"] == "reference", "name"]) == set(ref["id"])
    assert (ref["caption_style"] == "ambiguous").all()
    assert torch.tensor(token_counts(list(prompts["caption"]))).max() <= 128


def test_the_prompt_sets_and_their_cfg(tmp_path):
    """primary (held-out captions at primary_cfg), primary_cfg (the same captions at cfg),
    unconditional (empty captions, cfg 1), card (at cfg), in that order, ids 0..P-1."""
    fake_corpus(tmp_path)
    prompts = prompt_set(profile(tmp_path, n=3, unconditional_prompts=2))
    assert list(prompts.columns) == ["prompt_id", "name", "caption", "source", "set", "cfg"]
    assert list(prompts["prompt_id"]) == list(range(len(prompts)))
    assert list(prompts["set"]) == ["primary"] * 3 + ["primary_cfg"] * 3 + ["unconditional"] * 2 + ["card"] * 4
    by = {k: g for k, g in prompts.groupby("set")}
    assert (by["primary"]["cfg"] == 1.0).all() and (by["primary_cfg"]["cfg"] == 3.0).all()
    assert list(by["primary"]["caption"]) == list(by["primary_cfg"]["caption"])
    assert list(by["primary"]["name"]) == list(by["primary_cfg"]["name"])
    assert (by["unconditional"]["caption"] == "").all() and (by["unconditional"]["cfg"] == 1.0).all()
    assert (by["unconditional"]["source"] == "unconditional").all()
    assert (by["card"]["cfg"] == 3.0).all() and (by["card"]["source"] == "model_card").all()
    again = pd.read_csv(tmp_path / "prompts.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(prompts, again)  # the empty captions survive the file
    from eisbach_lib.generate import null_prompts, prompt_scales

    assert list(null_prompts(prompts)) == [False] * 6 + [True] * 2 + [False] * 4
    assert prompt_scales(prompts, 7.0).tolist() == [1.0] * 3 + [3.0] * 3 + [1.0] * 2 + [3.0] * 4


def test_no_primary_cfg_rows_when_cfg_is_primary_cfg_and_defaults(tmp_path):
    fake_corpus(tmp_path)
    same = prompt_set(profile(tmp_path, n=2, card=False, cfg=1.0))
    assert list(same["set"]) == ["primary"] * 2 + ["unconditional"]  # defaults: primary_cfg 1, one null row
    with pytest.warns(UserWarning, match="rewritten"):
        none = prompt_set(profile(tmp_path, n=2, card=False, unconditional_prompts=0, primary_cfg=2.0))
    assert list(none["set"]) == ["primary"] * 2 + ["primary_cfg"] * 2 and list(none["cfg"]) == [2.0, 2.0, 3.0, 3.0]
    for bad in ({"unconditional_prompts": -1}, {"unconditional_prompts": 1.5}, {"primary_cfg": "1"}):
        with pytest.raises(ValueError, match="generate." + next(iter(bad))):
            prompt_set(profile(tmp_path, **bad))


def test_only_ambiguous_reference_captions_are_primary_prompts(tmp_path):
    """When the manifest has caption styles, the primary prompts are the ambiguous captions only."""
    m = fake_corpus(tmp_path)
    m["caption_style"] = ["ambiguous" if k % 2 else "plain" for k in range(len(m))]
    m.to_csv(tmp_path / "corpus" / "manifest.csv", index=False)
    with pytest.warns(UserWarning, match="has 4 usable captions"):
        prompts = prompt_set(profile(tmp_path, n=8, card=False, unconditional_prompts=0, cfg=1.0))
    style = m.set_index("id")["caption_style"]
    assert len(prompts) == 4 and (style.loc[list(prompts["name"])] == "ambiguous").all()
