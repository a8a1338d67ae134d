"""The generation grid's job list: checkpoints only for `generate.checkpoint_arms`, and its knobs'
checks; per-row CFG and the saved latents of `generate_run` (docs/design.md §1.5)."""

import dataclasses
import json
from pathlib import Path

import pytest

from eisbach_lib.config import Generate, Profile, load_profile
from eisbach_lib.generate import generation_jobs
from eisbach_lib.runs import grid_items


def fake_grid(tmp_path: Path, arms: list[str], checkpoint_list=None) -> Profile:
    """A profile whose runs are 'finished' on disk: done.json (8 steps, checkpoints 4 and 8) and the
    checkpoint folders; generation_jobs reads only these records."""
    cfg = load_profile("smoke", {"runs_dir": str(tmp_path), "finetune.arms": arms, "finetune.seeds": [0, 1],
                                 "generate.checkpoint_arms": checkpoint_list})
    for item in grid_items(cfg):
        run = Path(item["run_dir"])
        (run / "ckpt_000004").mkdir(parents=True)
        (run / "ckpt_000008").mkdir()
        (run / "done.json").write_text(json.dumps({"steps": 8, "checkpoints": [4, 8]}))
    return cfg


def test_checkpoints_are_generated_only_for_the_named_arms(tmp_path: Path):
    cfg = fake_grid(tmp_path, ["none", "eisbach", "constant"], ["none", "eisbach"])
    jobs = generation_jobs(cfg)
    assert jobs[0]["name"] == "base" and jobs[0]["final"] == 0
    steps = {}
    for j in jobs[1:]:
        steps.setdefault(j["meta"]["arm"], []).append(j["step"])
        assert j["final"] == 8
    assert steps == {"none": [4, None, 4, None], "eisbach": [4, None, 4, None], "constant": [None, None]}
    assert len(jobs) == 1 + 2 * 2 * 2 + 2
    # an intermediate checkpoint generates the primary set only (C10 reads nothing else); final weights all sets
    assert all(j["sets"] == ("primary",) for j in jobs if j["step"] is not None)
    assert all(j["sets"] is None for j in jobs if j["step"] is None)


def test_without_the_key_every_arm_gets_its_checkpoints(tmp_path: Path):
    cfg = fake_grid(tmp_path, ["none", "constant"])
    assert cfg.generate.checkpoint_arms is None
    assert sum(j["step"] == 4 for j in generation_jobs(cfg)) == 4


def test_unfinished_runs_are_left_out(tmp_path: Path):
    cfg = fake_grid(tmp_path, ["none", "eisbach"], ["eisbach"])
    (Path(grid_items(cfg)[0]["run_dir"]) / "done.json").unlink()
    assert "dora_none_s0" not in {j["name"] for j in generation_jobs(cfg)}


@pytest.mark.parametrize("bad", ["none", ["none", "tmatched_typo"], [1]])
def test_bad_checkpoint_arms_raise_naming_the_key(tmp_path: Path, bad):
    with pytest.raises(ValueError, match="generate.checkpoint_arms"):
        load_profile("smoke", {"runs_dir": str(tmp_path), "generate.checkpoint_arms": bad})


def test_generate_workers_must_be_a_positive_integer(tmp_path: Path):
    assert load_profile("smoke", {"generate.workers": 1}).generate.workers == 1
    for bad in (0, 2.0, True, "2"):
        with pytest.raises(ValueError, match="generate.workers"):
            load_profile("smoke", {"generate.workers": bad})


def tiny_generation_profile(runs: Path, workers: int = 1) -> Profile:
    """A fake corpus manifest, a tiny random base and two 'finished runs' that are bases themselves
    (run.json with adapter null: load_run_model loads the folder as a base), 1-second clips."""
    import pandas as pd

    from eisbach_lib.models import build_base, save_base

    rows = [{"id": f"{split}_{k}", "split": split, "texture": "plucked", "source_piece": f"{split}/p{k}",
             "caption": f"A {split} tune number {k} for strings."} for split in ("base", "finetune", "reference")
            for k in range(3)]
    (runs / "corpus").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(runs / "corpus" / "manifest.csv", index=False)
    model = {"embed_dim": 32, "depth": 1, "num_heads": 2, "ff_mult": 2.0}
    cfg = load_profile("smoke", {
        "runs_dir": str(runs), "device": "cpu", "model": model, "codec.griffin_lim_iters": 4,
        "finetune.arms": ["none", "eisbach"], "finetune.seeds": [0], "finetune.steps": 2, "finetune.checkpoints": [],
        "generate": {"heldout_prompts": 2, "card_prompts": False, "samples_per_prompt": 2, "seconds": 1.0,
                     "sampler": "pingpong", "steps": 2, "cfg": 3.0, "batch_size": 3, "workers": workers}})
    save_base(build_base(cfg.model, 64, 384, seed=0), runs / "base")
    for k, item in enumerate(grid_items(cfg)):
        save_base(build_base(cfg.model, 64, 384, seed=k + 1), item["run_dir"])
        (item["run_dir"] / "run.json").write_text(json.dumps({"adapter": None, "arm": item["arm"], "seed": 0}))
        (item["run_dir"] / "done.json").write_text(json.dumps({"steps": 2, "checkpoints": [2]}))
    return cfg


@pytest.mark.slow  # spawns worker processes
def test_two_generation_workers_write_the_clips_of_one(tmp_path: Path, one_torch_thread):
    import numpy as np
    import pandas as pd

    from eisbach_lib.generate import generate_grid

    cfg1, cfg2 = tiny_generation_profile(tmp_path / "one"), tiny_generation_profile(tmp_path / "two", workers=2)
    m1 = generate_grid(cfg1, progress=False, workers=1)
    m2 = generate_grid(cfg2, progress=False)  # 3 jobs (base + 2 runs) over 2 spawned processes
    assert len(m1) == 3 * 5 * 2  # jobs x prompts (2 primary, 2 primary_cfg, 1 unconditional) x samples
    pd.testing.assert_frame_equal(m1, m2)
    for folder in {str(Path(p).parent) for p in m1["path"]}:
        lat = (tmp_path / "one" / folder / "latents.npy").read_bytes()
        assert lat == (tmp_path / "two" / folder / "latents.npy").read_bytes()
        rows = np.load(tmp_path / "one" / folder / "latents.npy").reshape(10, -1)
        assert len({r.tobytes() for r in rows}) == len(rows)  # every clip differs: byte equality is informative


def test_generate_run_saves_the_latents_and_guides_each_row_at_its_cfg(tmp_path: Path, one_torch_thread):
    """latents.npy holds what the model generated, float32 [N, C, T] in the manifest's order
    (latent_row); no wav is written, and a row decodes on demand (`decode_clip`) from its own phase
    seed to the wav a batch decode of that row gives; a row with cfg 1 is the conditional-only
    sample (the same batch sampled at cfg 1 everywhere gives the same latents on those rows), a
    row with cfg 3 is not."""
    import numpy as np
    import soundfile as sf
    import torch

    from eisbach_lib.datasets import codec_for, text_encoder_for
    from eisbach_lib.generate import (LATENTS_FILE, NOISE_SEED, decode_clip, decode_seed, exact_length, generate_run,
                                      initial_noise, load_latents, prompt_conditions, prompt_set, sample_latents)
    from eisbach_lib.runs import base_model

    cfg = tiny_generation_profile(tmp_path)
    gen = cfg.generate
    model = base_model(cfg)
    m = generate_run(cfg, None, name="base", meta={"adapter": "none", "arm": "base", "seed": -1}, model=model,
                     progress=False)
    prompts = prompt_set(cfg)
    assert list(prompts["set"]) == ["primary", "primary", "primary_cfg", "primary_cfg", "unconditional"]
    folder = tmp_path / Path(m["path"][0]).parent
    lat = np.load(folder / LATENTS_FILE)
    codec = codec_for(cfg)
    assert lat.dtype == np.float32 and lat.shape == (len(m), 64, codec.frames(gen.seconds))
    assert list(m["latent_row"]) == list(range(len(m)))
    assert list(m["cfg"]) == list(prompts.set_index("prompt_id").loc[m["prompt_id"], "cfg"])
    assert list(m["set"]) == list(prompts.set_index("prompt_id").loc[m["prompt_id"], "set"])
    np.testing.assert_array_equal(load_latents(folder, m.iloc[::-1]), lat[::-1])

    # the second batch (batch_size 3): (prompt 1, sample 1) at cfg 1, (prompt 2, samples 0-1) at cfg 3
    rows = m.iloc[3:6]
    assert list(rows["cfg"]) == [1.0, 3.0, 3.0]
    # log-mel path: no audio until a clip is listened to; then each row decodes from its own phase seed
    assert not any((tmp_path / p).exists() for p in m["path"])
    for i, (path, p, s) in enumerate(zip(rows["path"], rows["prompt_id"], rows["sample"])):
        y = codec.decode(torch.from_numpy(lat[3 + i:4 + i]),
                         generator=torch.Generator().manual_seed(decode_seed(p, s)))[0].numpy()
        assert decode_clip(tmp_path / path) == tmp_path / path
        wav, _ = sf.read(tmp_path / path, dtype="float32")
        expect = np.clip(exact_length(y, gen.seconds, codec.sample_rate), -1, 1)
        np.testing.assert_allclose(wav, expect, atol=2e-4)
    assert sum((tmp_path / p).exists() for p in m["path"]) == 3  # only what was asked for
    tokens, mask = prompt_conditions(prompts, text_encoder_for(cfg))
    p_idx = torch.tensor(list(rows["prompt_id"]))
    noise = torch.stack([initial_noise(int(p), int(s), lat.shape[1:]) for p, s in zip(rows["prompt_id"], rows["sample"])])
    ones = sample_latents(model, tokens[p_idx], mask[p_idx], torch.full((3,), gen.seconds), noise, gen,
                          torch.Generator().manual_seed(NOISE_SEED + 3), scale=1.0)
    np.testing.assert_allclose(ones[0].numpy(), lat[3], atol=1e-5)  # the cfg-1 row: conditional only
    assert np.abs(ones[1:].numpy() - lat[4:6]).max() > 1e-3        # the cfg-3 rows were guided
    # the unconditional row: sampled with the all-False mask
    assert not mask[torch.tensor(prompts["set"].eq("unconditional").tolist())].any() and mask[0].any()


def test_generate_run_with_sets_generates_those_prompt_rows_only(tmp_path: Path, one_torch_thread):
    """`sets` keeps the prompt rows of those sets, each sample of each; the clips are the ones the
    full run makes for those rows (the primary rows come first, so each keeps its batch's seed and its
    place in the batch's sampler noise)."""
    import numpy as np

    from eisbach_lib.generate import generate_run, load_latents
    from eisbach_lib.runs import base_model

    cfg = tiny_generation_profile(tmp_path / "all")
    cfg_p = tiny_generation_profile(tmp_path / "primary")
    meta = {"adapter": "none", "arm": "base", "seed": -1}
    full = generate_run(cfg, None, name="base", meta=meta, model=base_model(cfg), progress=False)
    part = generate_run(cfg_p, None, name="base", meta=meta, model=base_model(cfg_p), progress=False, sets=("primary",))
    assert set(part["set"]) == {"primary"} and len(part) == (full["set"] == "primary").sum() == 4
    keep = full[full["set"] == "primary"]
    # equal up to float32 summation order: a batch of another size may block its matmuls differently
    np.testing.assert_allclose(load_latents(tmp_path / "primary" / Path(part["path"][0]).parent, part),
                               load_latents(tmp_path / "all" / Path(keep["path"].iloc[0]).parent, keep), atol=1e-5)


def test_sample_latents_guides_each_row_at_its_own_scale():
    """v = v_u + s·(v_c − v_u) with s per row: a model giving 1 for a real condition and 0 for the
    null one gives v = s (0 for a null row whatever s), so one Euler step from t = 1 returns noise − v.
    Rows at s = 1 get no unconditional half (the model sees B + #rows with s ≠ 1 inputs)."""
    import torch

    from eisbach_lib.generate import sample_latents

    seen = []

    def model(x, t, tokens, mask, seconds):
        seen.append(x.shape[0])
        return mask.any(dim=1).to(x.dtype)[:, None, None].expand_as(x).clone()

    noise = torch.randn(4, 2, 5)
    tokens, seconds = torch.zeros(4, 3, 8), torch.full((4,), 4.0)
    mask = torch.ones(4, 3, dtype=torch.bool)
    mask[3] = False  # a null row
    euler = Generate(sampler="euler", steps=1, cfg=9.0, seconds=4.0, samples_per_prompt=1)
    x = sample_latents(model, tokens, mask, seconds, noise, euler, torch.Generator(), scale=torch.tensor([1.0, 3.0, 0.0, 2.0]))
    torch.testing.assert_close(x, noise - torch.tensor([1.0, 3.0, 0.0, 0.0])[:, None, None])
    assert seen == [4 + 3]
    seen.clear()
    x = sample_latents(model, tokens, mask, seconds, noise, dataclasses.replace(euler, cfg=1.0), torch.Generator())
    torch.testing.assert_close(x, noise - torch.tensor([1.0, 1.0, 1.0, 0.0])[:, None, None])
    assert seen == [4]  # all rows at cfg 1: one conditional pass
