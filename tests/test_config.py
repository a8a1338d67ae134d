"""The profile schema (config.py): typed settings with defaults, bad values and unknown keys raise
ConfigError naming the file and key, overrides read again, and no module reads the YAML mapping."""

import ast
import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from eisbach_lib import config
from eisbach_lib.config import CONFIGS, ConfigError, Profile, load_profile, override

REPO = Path(__file__).resolve().parent.parent
SECTION_TYPES = {"corpus": config.Corpus, "codec": config.Codec, "text": config.Text, "model": config.Model,
                 "pretrain": config.Pretrain, "finetune": config.Finetune, "generate": config.Generate,
                 "evaluate": config.Evaluate, "anatomy": config.Anatomy, "readout": config.Readout}


def _write(tmp_path: Path, edit, name: str = "bad.yaml") -> Path:
    cfg = yaml.safe_load((CONFIGS / "smoke.yaml").read_text())
    edit(cfg)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("key, edit", [
    ("finetune.steps", lambda c: c["finetune"].update(steps=0)),
    ("pretrain.batch_size", lambda c: c["pretrain"].update(batch_size=True)),
    ("finetune.lr", lambda c: c["finetune"].update(lr=0)),
    ("finetune.timesteps", lambda c: c["finetune"].update(timesteps="uniformish")),
    ("finetune.cond_dropout", lambda c: c["finetune"].update(cond_dropout=2)),
    ("finetune.lam", lambda c: c["finetune"].update(lam=-1)),
    ("finetune.checkpoints", lambda c: c["finetune"].update(checkpoints=[10, -1])),
    ("finetune.arms", lambda c: c["finetune"].update(arms=["none", "eisbach_typo"])),
    ("finetune.workers", lambda c: c["finetune"].update(workers=1.5)),
    ("finetune.lamda", lambda c: c["finetune"].update(lamda=0.3)),  # a typo is not silently ignored
    ("corpus.source", lambda c: c["corpus"].update(source="radio")),
    ("codec.n_mels", lambda c: c["codec"].pop("n_mels")),           # a key without a default is asked for
    ("generate.sampler", lambda c: c["generate"].update(sampler="heun")),
    ("generate.workers", lambda c: c["generate"].update(workers=0)),
    ("generate.cfg", lambda c: c["generate"].update(cfg=-1)),
    ("generate.checkpoint_arms", lambda c: c["generate"].update(checkpoint_arms=["minsnr"])),
    ("generate.checkpoint_arms", lambda c: c["generate"].update(checkpoint_arms="none")),
    ("anatomy.clips", lambda c: c["anatomy"].update(clips=0)),
    ("device", lambda c: c.update(device="tpu")),
    ("runs_dir", lambda c: c.pop("runs_dir")),
    ("listen", lambda c: c.update(listen={})),
])
def test_a_bad_profile_value_names_file_and_key(tmp_path: Path, key, edit):
    path = _write(tmp_path, edit)
    with pytest.raises(ConfigError) as e:
        load_profile(path)
    assert str(e.value).startswith(f"{path}: {key} ")


def test_the_shipped_profiles_load(tmp_path: Path):
    for p in sorted(CONFIGS.glob("*.yaml")):
        cfg = load_profile(p.stem)
        assert isinstance(cfg, Profile) and cfg.runs_dir.is_absolute() and cfg.path == p
        assert cfg.finetune.adapter == cfg.finetune.adapters[0] and cfg.readout.seed == cfg.seed


def test_the_training_settings_and_their_derived_steps(tmp_path: Path):
    cfg = load_profile(_write(tmp_path, lambda c: c["finetune"].update(lr="5e-5", checkpoints=[10, 30]), "ok.yaml"))
    ft = cfg.finetune
    assert ft.lr == 5e-5 and ft.section == "finetune" and ft.betas == (0.9, 0.95)
    assert ft.checkpoint_steps == [10, 20]  # within the run, and the last step
    pre = cfg.pretrain.with_steps(30)      # no listed checkpoints: checkpoint_count (10) evenly spaced
    assert pre.steps == 30 and pre.warmup_steps == 100 and pre.checkpoint_steps == [3 * k for k in range(1, 11)]
    assert cfg.training(None) is cfg.pretrain and cfg.training("dora") is cfg.finetune
    record = ft.record()  # what a run writes: the training settings, not the grid
    assert record["checkpoints"] == [10, 20] and "arms" not in record and record["rank"] == 16
    with pytest.raises(ConfigError, match=r"finetune.steps must be a positive integer, got 0$"):
        ft.with_steps(0)


def test_overrides_are_read_and_checked_again():
    cfg = load_profile("smoke")
    other = override(cfg, {"finetune.steps": 5, "generate.checkpoint_arms": ["none"]})
    assert other.finetune.steps == 5 and other.finetune.checkpoint_steps == [5] and other.generate.checkpoint_arms == ("none",)
    assert cfg.finetune.steps == 20  # the original is untouched (frozen)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.finetune.steps = 3
    with pytest.raises(ConfigError, match="finetune.arms"):
        override(cfg, {"finetune.arms": []})


def test_the_old_name_of_heldout_prompts_is_read_with_a_warning(tmp_path: Path):
    def rename(c):
        c["generate"]["finetune_prompts"] = c["generate"].pop("heldout_prompts")

    with pytest.warns(FutureWarning, match="heldout_prompts"):
        assert load_profile(_write(tmp_path, rename)).generate.heldout_prompts == 2
    with pytest.raises(ConfigError, match="generate.heldout_prompts"):
        load_profile(_write(tmp_path, lambda c: c["generate"].update(finetune_prompts=5)))


def _defaulted(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING
            or f.default_factory is not dataclasses.MISSING]


def test_a_profile_without_any_defaulted_key_loads_with_the_defaults(tmp_path: Path):
    """Every key that has a default left out, in every shipped profile: it loads, and each left-out
    key reads its dataclass default (no module can fail on it later: none reads the YAML mapping,
    `test_no_module_reads_the_yaml_mapping`; the smoke series runs a profile of this kind)."""
    for p in sorted(CONFIGS.glob("*.yaml")):
        raw = yaml.safe_load(p.read_text())
        for key in ("seed", "device", "anatomy", "readout", "listening"):
            raw.pop(key, None)
        for sec, cls in SECTION_TYPES.items():
            for name in _defaulted(cls):
                raw.get(sec, {}).pop(name, None)
        cfg = config.from_mapping(raw, p)
        for sec, cls in SECTION_TYPES.items():
            defaults = cls(**{f.name: getattr(getattr(cfg, sec), f.name) for f in dataclasses.fields(cls)
                              if f.name not in _defaulted(cls)})
            if sec == "corpus":  # the design constant's default is filled in at load
                defaults = dataclasses.replace(defaults, flat_share=cfg.corpus.flat_share)
            assert getattr(cfg, sec) == defaults, (p.name, sec)


def test_the_smoke_profile_leaves_out_every_key_at_its_default():
    """configs/smoke.yaml writes only what differs from the defaults, so the CI series runs on them."""
    raw = yaml.safe_load((CONFIGS / "smoke.yaml").read_text())
    cfg = load_profile("smoke")
    at_default = []
    for sec, cls in SECTION_TYPES.items():
        for name in _defaulted(cls):
            if name in (raw.get(sec) or {}):
                field = next(f for f in dataclasses.fields(cls) if f.name == name)
                if getattr(getattr(cfg, sec), name) == field.default:
                    at_default.append(f"{sec}.{name}")
    assert not at_default, at_default


def _sources() -> dict[str, str]:
    """The library's modules (config.py aside) and the notebooks' code cells, by name."""
    out = {p.name: p.read_text() for p in sorted((REPO / "eisbach_lib").glob("*.py")) if p.name != "config.py"}
    for nb in sorted((REPO / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        out[nb.name] = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return out


def test_no_module_reads_the_yaml_mapping():
    """Outside config.py no library module or notebook subscripts a profile (`cfg[...]`,
    `cfg.get(...)`): every setting is an attribute of config.Profile."""
    offenders = []
    for name, source in _sources().items():
        for node in ast.walk(ast.parse(source)):
            target = node.value if isinstance(node, ast.Subscript) else (
                node.func.value if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get" else None)
            if isinstance(target, ast.Name) and target.id in ("cfg", "pcfg", "vcfg", "profile"):
                offenders.append(f"{name}:{node.lineno}")
    assert not offenders, offenders
