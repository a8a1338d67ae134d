"""notebook.setup and the library functions the notebooks call instead of computing inline."""

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from eisbach_lib import anatomy, datasets, evaluate, generate, listen, runs, scorecard
from eisbach_lib.layout import Layout
from eisbach_lib.notebook import setup
from eisbach_lib.tables import Tables
from series_run import profile_copy

@pytest.fixture
def profile(tmp_path):
    """The smoke profile with runs_dir and figures_dir under tmp_path."""
    return profile_copy(tmp_path / "p.yaml", tmp_path / "runs", tmp_path / "runs" / "figs")


def test_setup_loads_the_profile_seeds_torch_and_says_where(profile, tmp_path, capsys):
    import matplotlib as mpl
    import torch

    with warnings.catch_warnings():
        cfg, paths = setup(str(profile))
        assert any(f[0] == "ignore" and f[2] is FutureWarning for f in warnings.filters)
    assert cfg.name == "smoke" and paths == Layout.of(cfg)
    assert paths.runs == tmp_path / "runs" and paths.figures == tmp_path / "runs" / "figs"
    assert paths.figures.is_dir()
    first = torch.rand(3)
    torch.manual_seed(cfg.seed)
    assert torch.equal(first, torch.rand(3))  # setup seeded torch with the profile's seed
    assert mpl.rcParams["axes.grid"] and mpl.rcParams["axes.facecolor"] == "white"  # seaborn whitegrid
    out = capsys.readouterr().out
    assert out == f"profile smoke: runs in {tmp_path / 'runs'}, figures in {tmp_path / 'runs' / 'figs'}\n"


def test_loss_by_step_means_per_step_and_smooths_within_groups():
    log = pd.DataFrame({"arm": ["a"] * 4 + ["b"] * 4, "seed": 0, "step": [0, 0, 1, 1] * 2,
                        "loss": [1.0, 3.0, 4.0, 6.0, 10.0, 10.0, 20.0, 20.0]})
    one = anatomy.loss_by_step(log)
    assert list(one["step"]) == [0, 1] and list(one["loss"]) == [6.0, 12.5]
    assert list(one["loss_smooth"]) == [6.0, 12.5]  # 2 steps: window 1
    per = anatomy.loss_by_step(log, by=["arm", "seed"])
    assert list(per["loss"]) == [2.0, 5.0, 10.0, 20.0]
    long = pd.DataFrame({"step": np.arange(40), "loss": np.arange(40, dtype=float)})
    s = anatomy.loss_by_step(long)["loss_smooth"]  # window 40 // 20 = 2
    assert s.iloc[0] == 0.0 and s.iloc[1] == 0.5 and s.iloc[39] == 38.5


def test_texture_tables():
    df = pd.DataFrame({"texture": ["plucked", "sustained", "sustained", "mixed"], "flatness": [0.2, 0.9, 0.7, 0.5],
                       "w": [1.0, 0.5, 0.7, 0.8]})
    assert anatomy.texture_order(df) == ["sustained", "mixed", "plucked"]
    med = anatomy.flatness_medians(df)
    assert list(med.columns) == ["median flatness"] and med.loc["sustained", "median flatness"] == pytest.approx(0.8)
    t = anatomy.texture_weight_table(df)
    assert t.loc["sustained", "mean_w"] == 0.6 and t.loc["sustained", "clips"] == 2 and t.loc["plucked", "mean_flatness"] == 0.2


def test_cosine_and_mix_tables():
    gc = pd.DataFrame({"arm": ["e", "e", "e"], "kind": ["batch", "batch", "sample"], "cos": [0.9, 0.95, 1.0]})
    t = anatomy.cosine_table(gc)
    assert t.loc["e", ("min", "batch")] == 0.9 and t.loc["e", ("mean", "batch")] == 0.925 and t.loc["e", ("max", "sample")] == 1.0
    mix = pd.DataFrame({"arm": ["e", "e", "none"], "texture": ["s", "s", "s"], "shift": [-0.1, -0.3, 0.0]})
    m = anatomy.mix_table(mix)
    assert m.loc[("e", "s"), "mean"] == -0.2 and m.loc[("e", "s"), "count"] == 2 and m.loc[("none", "s"), "mean"] == 0.0


def test_training_phase_and_flat_share():
    log = pd.DataFrame({"step": np.arange(10), "arm": "e"})
    assert list(anatomy.training_phase(log)["phase"]) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert list(anatomy.training_phase(log.head(3))["phase"]) == [0, 1, 2]  # fewer steps than phases
    mass = pd.DataFrame({"run": "r", "arm": "e", "seed": 0, "phase": [0, 0, 1], "texture": ["sustained", "plucked", "sustained"],
                         "share": [0.3, 0.7, 0.6]})
    f = anatomy.flat_share(mass)
    assert list(f["phase"]) == [0, 1] and list(f["share"]) == [0.3, 0.6]


def test_distance_matrix_is_symmetric_with_zero_diagonal():
    dist = pd.DataFrame({"a": ["x", "x"], "b": ["y", "z"], "distance": [0.5, 0.25]})
    m = anatomy.distance_matrix(dist)
    assert list(m.index) == ["x", "y", "z"] and m.loc["y", "x"] == 0.5 and m.loc["z", "x"] == 0.25
    assert m.loc["y", "z"] == 0.0 and (np.diag(m.to_numpy()) == 0).all()


def _wav(path: Path, y: np.ndarray, sr: int = 8000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y.astype(np.float32), sr)


def test_corpus_tables_and_flatness(profile, tmp_path):
    from eisbach_lib.config import load_profile

    cfg = load_profile(str(profile))
    corpus = tmp_path / "runs" / "corpus"
    t = np.arange(16000) / 8000
    drone = 0.3 * np.sin(2 * np.pi * 220 * t)
    bursts = drone * (np.sin(2 * np.pi * 2 * t) > 0.95)
    _wav(corpus / "audio" / "a.wav", drone)
    _wav(corpus / "audio" / "b.wav", bursts)
    man = pd.DataFrame({"id": ["a", "b"], "split": ["base", "finetune"], "texture": ["sustained", "percussive"],
                        "path": ["audio/a.wav", "audio/b.wav"], "instruments": ["violin;cello", "violin"],
                        "caption_style": ["card", "musiccaps"], "caption": ["A drone.", "Bursts."]})
    man.to_csv(corpus / "manifest.csv", index=False)
    assert datasets.read_manifest(cfg).equals(man)
    assert datasets.instrument_counts(man).to_dict() == {"violin": 2, "cello": 1}
    counts = datasets.split_texture_counts(man)
    assert counts.loc["All", "All"] == 2 and counts.loc["base", "sustained"] == 1
    assert datasets.caption_examples(man, n=1) == {"card": ["A drone."], "musiccaps": ["Bursts."]}
    ex = datasets.texture_examples(man, corpus, ["percussive"])
    assert ex[0]["caption"] == "Bursts." and ex[0]["sample_rate"] == 8000 and np.allclose(ex[0]["audio"], bursts, atol=1e-4)
    flat = anatomy.corpus_flatness(cfg, man)
    assert "flatness" not in man and flat.loc[0, "flatness"] > flat.loc[1, "flatness"]  # the drone is flatter
    written = pd.read_csv(corpus / "flatness.csv")
    assert list(written.columns) == ["id", "split", "texture", "flatness"]
    assert np.allclose(written["flatness"], flat["flatness"])


def test_grid_status_lists_every_run_and_writes_grid_csv(profile):
    from eisbach_lib.config import load_profile

    cfg = load_profile(str(profile))
    items = runs.grid_items(cfg)
    Path(items[0]["run_dir"]).mkdir(parents=True)
    (Path(items[0]["run_dir"]) / "done.json").write_text(json.dumps({"steps": 20, "loss": 0.5}))
    status = runs.grid_status(cfg)
    assert len(status) == len(items) == 4
    assert status.loc[0, "steps"] == 20 and status.loc[0, "loss"] == 0.5
    assert list(status["status"].iloc[1:]) == ["missing"] * 3
    assert pd.read_csv(Path(cfg.runs_dir) / "adapters" / "grid.csv").shape == status.shape
    assert runs.pretrain_log(Path(cfg.runs_dir) / "base").empty  # no run record: no log


def test_entropy_stages_puts_the_base_first(profile):
    from eisbach_lib.config import load_profile

    cfg = load_profile(str(profile))
    adir = Path(cfg.runs_dir) / "anatomy"
    adir.mkdir(parents=True)
    pd.DataFrame({"t": [0.1], "h": [0.9], "stage": ["base"]}).to_csv(adir / "entropy_vs_t.csv", index=False)
    ck = pd.DataFrame({"t": [0.1, 0.1], "h": [0.8, 0.7], "stage": ["step 10", "step 20"]})
    e = anatomy.entropy_stages(cfg, ck)
    assert list(e["stage"]) == ["base", "step 10", "step 20"] and list(e["h"]) == [0.9, 0.8, 0.7]


def _samples() -> pd.DataFrame:
    rows = [{"run": "base", "adapter": "none", "arm": "base", "seed": 0, "step": 0, "prompt_id": 0,
             "path": "samples/base/x.wav"}]
    for arm in ("none", "eisbach"):
        for seed in (0, 1):
            for step in (10, 20):
                rows.append({"run": f"dora_{arm}_s{seed}", "adapter": "dora", "arm": arm, "seed": seed, "step": step, "prompt_id": 0,
                             "path": f"samples/{arm}{seed}/{step}.wav"})
    return pd.DataFrame(rows)


def test_first_seed_view_and_sample_counts(profile):
    from eisbach_lib.config import load_profile

    cfg = load_profile(str(profile))
    s = _samples()
    v = listen.first_seed_view(s, cfg)
    assert sorted(v["arm"]) == ["base", "eisbach", "none"] and set(v["seed"]) == {0} and set(v["step"]) == {0, 20}
    assert all(p.startswith(str(cfg.runs_dir)) for p in v["path"])
    c = generate.sample_counts(s)
    assert c.loc["none", 10] == 2 and c.loc["base", 0] == 1 and np.isnan(c.loc["base", 20])


def _metric_tables(cfg: dict) -> Tables:
    rng = np.random.default_rng(0)
    rows = []
    for arm, shift in (("none", 0.0), ("eisbach", 1.0)):
        for seed in (0, 1, 2):
            for p in range(4):
                rows.append({"run": f"dora_{arm}_s{seed}", "adapter": "dora", "arm": arm, "seed": seed, "step": 20,
                             "prompt_id": p, **{m: shift + rng.normal() for m in evaluate.PER_CLIP}})
    clips = pd.DataFrame(rows)
    clips = pd.concat([clips, clips.assign(step=10, adapter="dora")], ignore_index=True)
    intra = clips[["run", "adapter", "arm", "seed", "step", "prompt_id"]].assign(vendi_intra=1.0 + clips["arm"].eq("eisbach"))
    ref = pd.DataFrame({**{m: rng.normal(size=12) for m in evaluate.PER_CLIP}, **{f"emb_{i}": rng.normal(size=12) for i in range(3)}})
    return Tables(clips=clips, intra=intra, reference=ref)


def test_arm_means_differences_and_vendi_by_step(profile):
    from eisbach_lib.config import load_profile

    cfg = load_profile(str(profile))
    t = _metric_tables(cfg)
    fc, fi = evaluate.final_tables(cfg, t)
    assert set(fc["step"]) == {20} and len(fc) == 24 and len(fi) == 24
    keep = lambda v: v[(v["run"] != "dora_none_s0") | (v["step"] == 10)]  # noqa: E731
    short = Tables(clips=keep(t.clips), intra=keep(t.intra))
    fc_short, _ = evaluate.final_tables(cfg, short)  # a run trained with --steps 10 ends at its own last step
    assert set(fc_short.loc[fc_short["run"] == "dora_none_s0", "step"]) == {10}
    summary = evaluate.arm_means(cfg, t)
    assert len(summary) == 2 * (len(evaluate.PER_CLIP) + 1)
    v = summary[summary["metric"] == "vendi_intra"].set_index("arm")
    assert v.loc["eisbach", "mean"] == pytest.approx(2.0) and v.loc["none", "mean"] == pytest.approx(1.0)
    m = summary[summary["metric"] == "motif_recurrence"].set_index("arm")
    assert m.loc["eisbach", "mean"] == pytest.approx(fc[fc["arm"] == "eisbach"]["motif_recurrence"].mean())
    assert (summary["seeds"] == 3).all() and (summary["lo"] <= summary["mean"]).all()
    mdir = Path(cfg.runs_dir) / "metrics"
    assert pd.read_csv(mdir / "arm_summary.csv").shape == summary.shape
    diffs = evaluate.differences_to_none(cfg, dataclasses.replace(t, bandwidth=2.0))
    assert list(diffs["arm"].unique()) == ["eisbach"] and len(diffs) == len(evaluate.PER_CLIP) + 1
    dv = diffs.set_index("metric").loc["vendi_intra"]
    assert dv["diff"] == pytest.approx(1.0) and dv["prompts"] == 4 and dv["seeds"] == 3
    assert pd.read_csv(mdir / "paired_differences.csv").shape == diffs.shape
    by = evaluate.vendi_by_step(t.intra)
    assert len(by) == 2 * 3 * 2 and by.set_index(["arm", "seed", "step"]).loc[("eisbach", 0, 10), "vendi_intra"] == 2.0


def test_effects_in_sesoi_and_verdict_counts():
    card = pd.DataFrame({"claim": ["C5", "C6", "C7", "C1", "C1"], "role": ["primary", "primary", "exploratory", "primary", "sanity"],
                         "evidence": ["vendi, x", "motif", "contrast", "cos", "cos"], "verdict": ["inconclusive", "supported", "inconclusive", "supported", "supported"],
                         "estimate": [1.0, 2.0, 0.5, 1.0, 1.0], "ci_lo": [0.0, 1.0, np.nan, 0.9, 1.0], "ci_hi": [3.0, 4.0, np.nan, 1.0, 1.0],
                         "mde": [2.0, 1.0, 1.0, np.nan, np.nan], "sesoi": [2.0, 0.5, 1.0, np.nan, np.nan]})
    e = scorecard.effects_in_sesoi(card)
    assert list(e["label"]) == ["C5 vendi: inconclusive", "C6 motif: supported"]
    assert list(e["effect"]) == [0.5, 4.0] and list(e["err_lo"]) == [0.5, 2.0] and list(e["err_hi"]) == [1.0, 4.0]
    assert list(e["mde"]) == [1.0, 2.0]
    assert scorecard.verdict_counts(card).to_dict() == {"inconclusive": 2, "supported": 2}
