"""The profile schema (config.py): defaults filled, bad values raise ConfigError naming the file and key."""

from pathlib import Path

import pytest
import yaml

from eisbach_lib.config import (ANATOMY_DEFAULTS, CONFIGS, SECTION_DEFAULTS, ConfigError, anatomy_settings,
                                checkpoint_arms, device_name, heldout_prompts, load_profile, training_settings,
                                workers)


def _write(tmp_path: Path, edit) -> Path:
    cfg = yaml.safe_load((CONFIGS / "smoke.yaml").read_text())
    edit(cfg)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("key, edit", [
    ("finetune.steps", lambda c: c["finetune"].update(steps=0)),
    ("pretrain.batch_size", lambda c: c["pretrain"].update(batch_size=True)),
    ("finetune.lr", lambda c: c["finetune"].update(lr=0)),
    ("finetune.timesteps", lambda c: c["finetune"].update(timesteps="uniformish")),
    ("finetune.cond_dropout", lambda c: c["finetune"].update(cond_dropout=2)),
    ("finetune.checkpoints", lambda c: c["finetune"].update(checkpoints=[10, -1])),
    ("finetune.arms", lambda c: c["finetune"].update(arms=["none", "eisbach_typo"])),
    ("corpus.source", lambda c: c["corpus"].update(source="radio")),
    ("generate.sampler", lambda c: c["generate"].update(sampler="heun")),
    ("runs_dir", lambda c: c.pop("runs_dir")),
])
def test_a_bad_profile_value_names_file_and_key(tmp_path: Path, key, edit):
    path = _write(tmp_path, edit)
    with pytest.raises(ConfigError) as e:
        load_profile(path)
    assert str(e.value).startswith(f"{path}: {key} ")


def test_the_shipped_profiles_load(tmp_path: Path):
    for p in sorted(CONFIGS.glob("*.yaml")):
        cfg = load_profile(p.stem)
        assert Path(cfg["runs_dir"]).is_absolute() and cfg["_path"] == str(p)


def test_training_settings_fill_the_section_defaults():
    cfg = {"finetune": {"steps": 20, "batch_size": 4, "lr": "5e-5", "checkpoints": [10, 30]}}
    hp = training_settings(cfg, "finetune")
    for key, value in SECTION_DEFAULTS["finetune"].items():
        if key != "checkpoints":
            assert hp[key] == value, key
    assert hp["lr"] == 5e-5 and hp["section"] == "finetune"
    assert hp["checkpoints"] == [10, 20]  # within the run, and the last step
    hp = training_settings({"pretrain": {"steps": 60, "batch_size": 8, "lr": 1e-3}}, "pretrain", steps=30)
    assert hp["steps"] == 30 and hp["warmup_steps"] == 100 and hp["checkpoints"] == [3 * k for k in range(1, 11)]
    with pytest.raises(ConfigError, match=r"^my.yaml: finetune.steps must be a positive integer, got 0$"):
        training_settings({"_path": "my.yaml", "finetune": {**cfg["finetune"], "steps": 0}}, "finetune")


def test_the_small_readers():
    cfg = {"_path": "p.yaml", "finetune": {"arms": ["none", "eisbach"]}, "generate": {}}
    assert workers(cfg, "generate") == 1 and device_name(cfg) == "auto" and checkpoint_arms(cfg) is None
    assert heldout_prompts(cfg) == 0
    assert anatomy_settings(cfg) == ANATOMY_DEFAULTS
    assert anatomy_settings({"anatomy": {"clips": 3}}) == {**ANATOMY_DEFAULTS, "clips": 3}
    cfg["generate"] = {"workers": 0, "checkpoint_arms": ["minsnr"], "finetune_prompts": 3}
    with pytest.raises(ConfigError, match=r"^p.yaml: generate.workers "):
        workers(cfg, "generate")
    with pytest.raises(ConfigError, match=r"^p.yaml: generate.checkpoint_arms "):
        checkpoint_arms(cfg)
    with pytest.warns(FutureWarning, match="heldout_prompts"):
        assert heldout_prompts(cfg) == 3
    with pytest.raises(ConfigError, match=r"^p.yaml: device "):
        device_name({**cfg, "device": "tpu"})
