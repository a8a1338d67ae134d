"""The generation grid's job list: checkpoints only for `generate.checkpoint_arms`, and its knobs' checks."""

import json
from pathlib import Path

import pytest

from eisbach_lib.generate import checkpoint_arms, generate_workers, generation_jobs
from eisbach_lib.train import grid_items


def fake_grid(tmp_path: Path, arms: list[str], checkpoint_list=None) -> dict:
    """A profile whose runs are 'finished' on disk: done.json (8 steps, checkpoints 4 and 8) and the
    checkpoint folders; generation_jobs reads only these records."""
    cfg = {"runs_dir": str(tmp_path), "finetune": {"arms": arms, "seeds": [0, 1], "adapters": ["dora"]},
           "generate": {}}
    if checkpoint_list is not None:
        cfg["generate"]["checkpoint_arms"] = checkpoint_list
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


def test_without_the_key_every_arm_gets_its_checkpoints(tmp_path: Path):
    cfg = fake_grid(tmp_path, ["none", "constant"])
    assert checkpoint_arms(cfg) is None
    assert sum(j["step"] == 4 for j in generation_jobs(cfg)) == 4


def test_unfinished_runs_are_left_out(tmp_path: Path):
    cfg = fake_grid(tmp_path, ["none", "eisbach"], ["eisbach"])
    (Path(grid_items(cfg)[0]["run_dir"]) / "done.json").unlink()
    assert "dora_none_s0" not in {j["name"] for j in generation_jobs(cfg)}


@pytest.mark.parametrize("bad", ["none", ["none", "tmatched_typo"], [1]])
def test_bad_checkpoint_arms_raise_naming_the_key(tmp_path: Path, bad):
    cfg = {"runs_dir": str(tmp_path), "finetune": {"arms": ["none", "eisbach"], "seeds": [0]},
           "generate": {"checkpoint_arms": bad}}
    with pytest.raises(ValueError, match="generate.checkpoint_arms"):
        checkpoint_arms(cfg)


def test_generate_workers_must_be_a_positive_integer():
    assert generate_workers({"generate": {}}) == 1
    assert generate_workers({"generate": {"workers": 2}}) == 2
    for bad in (0, 2.0, True, "2"):
        with pytest.raises(ValueError, match="generate.workers"):
            generate_workers({"generate": {"workers": bad}})
