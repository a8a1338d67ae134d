"""Profiles: a profile is data (a YAML file in configs/), loaded into a plain nested dict.

`load_profile("smoke")` reads configs/smoke.yaml; any other argument is a path to a YAML file.
Values are checked once, here, so a bad value fails at once with the file and key named
(`<file>: <key> ...`). This module is the profile's one schema: the defaults of optional keys
(SECTION_DEFAULTS, ANATOMY_DEFAULTS) and the readers the other modules call for a checked value
(`training_settings`, `workers`, `device_name`, `checkpoint_arms`, `heldout_prompts`,
`anatomy_settings`).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
SECTIONS = ("corpus", "codec", "text", "model", "pretrain", "finetune", "generate", "evaluate")
# Defaults for keys a profile may leave out, per training section. Pretraining from scratch at lr 1e-3
# gets a short linear warm-up; fine-tuning follows the model card (constant lr, betas (0.9, 0.95)).
SECTION_DEFAULTS = {
    "pretrain": {"betas": [0.9, 0.95], "weight_decay": 0.0, "warmup_steps": 100, "grad_clip": None, "lam": 0.5,
                 "timesteps": "trunc_logit_normal", "ot": "exact", "cond_dropout": 0.1, "checkpoints": None,
                 "checkpoint_count": 10, "log_every": 1, "compile": False, "grad_checkpointing": False},
    "finetune": {"betas": [0.9, 0.95], "weight_decay": 0.0, "warmup_steps": 0, "grad_clip": None, "lam": 0.5,
                 "timesteps": "trunc_logit_normal", "ot": "exact", "cond_dropout": 0.1, "checkpoints": None,
                 "checkpoint_count": 1, "log_every": 1, "compile": False, "grad_checkpointing": False,
                 "rank": 16, "alpha": 16, "oracle_factor": 0.1},
    # The evaluation prompts (generate.prompt_set): the held-out captions at primary_cfg (1: the model's
    # conditional, the primary readout) and again at `cfg`; unconditional_prompts rows of the null
    # condition; the card's four prompts (a secondary set) unless card_prompts is false.
    # primary_at_cfg false leaves out the `primary_cfg` set (the cpu profile: its pilot read the flat share at
    # the floor there for every arm, so the set costs half the generation and shows nothing).
    "generate": {"primary_cfg": 1.0, "primary_at_cfg": True, "unconditional_prompts": 1, "card_prompts": True},
}
# How much of the model and corpus each anatomy measurement looks at (a profile's `anatomy:` section overrides).
ANATOMY_DEFAULTS = {
    "clips": 64,          # clips of the finetune split for entropy against t (C4)
    "t_points": 10,       # noise levels on [0.05, 0.95] (C4)
    "weight_draws": 8,    # training-distribution timesteps per clip for each clip's mean weight (C2)
    "grad_batches": 6,    # batches for the per-sample / batch gradient cosines (C1)
    "update_seqs": 3,     # batch sequences for the AdamW update cosines (C1), each with an independent second one (the noise floor)
    "update_inits": 3,    # adapter inits, crossed with the batch sequences (C1)
    "update_steps": 10,   # AdamW steps per sequence (C1)
    "distance_clips": 16, # held-out inputs for the adapters' output distances (manipulation check)
}


class ConfigError(ValueError):
    """A profile file is missing, unreadable or holds a bad value."""


def profile_path(profile: str | Path) -> Path:
    """configs/<name>.yaml for a bare name, else the path itself."""
    p = Path(profile)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    return CONFIGS / f"{profile}.yaml"


def load_profile(profile: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load and validate a profile; `overrides` maps dotted keys ("finetune.steps") to values."""
    path = profile_path(profile)
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in CONFIGS.glob("*.yaml")))
        raise ConfigError(f"profile {profile!r}: no file {path} (known profiles: {known})")
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    for key, value in (overrides or {}).items():
        set_dotted(cfg, key, value)
    validate(cfg, path)
    cfg["_path"] = str(path)
    for key in ("runs_dir", "figures_dir"):
        if not Path(cfg[key]).is_absolute():
            cfg[key] = str(REPO / cfg[key])
    return cfg


def set_dotted(cfg: dict[str, Any], key: str, value: Any) -> None:
    """cfg["a"]["b"] = value for key "a.b"."""
    *parents, leaf = key.split(".")
    node = cfg
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value


def _where(cfg: dict[str, Any]) -> str:
    """The profile file a loaded cfg came from (for messages)."""
    return str(cfg.get("_path", "profile"))


def _need(cond: bool, path: str | Path, key: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{path}: {key} {msg}")


def positive_int(value: Any, key: str, where: str | Path = "profile") -> int:
    """`value` when it is an int > 0 (not a bool); else ConfigError naming `where` and `key`."""
    _need(not isinstance(value, bool) and isinstance(value, int) and value > 0, where, key,
          f"must be a positive integer, got {value!r}")
    return value


def training_settings(cfg: dict[str, Any], section: str, steps: int | None = None,
                      where: str | Path | None = None) -> dict[str, Any]:
    """The flat, checked settings of `section` (pretrain | finetune) completed from SECTION_DEFAULTS,
    `steps` overriding the profile; `section` and the checkpoint steps (`checkpoint_steps`) added."""
    from .flow import TIMESTEP_KINDS  # heavy: torch

    where = _where(cfg) if where is None else where
    _need(section in cfg, where, section, "missing (the profile has no such section)")
    merged = {**SECTION_DEFAULTS[section], **cfg[section]}
    hp = {k: merged.get(k) for k in ("steps", "batch_size", "lr", *SECTION_DEFAULTS[section])}
    hp["section"] = section
    if steps is not None:
        hp["steps"] = steps
    for key in ("steps", "batch_size"):
        positive_int(hp.get(key), f"{section}.{key}", where)
    _need(float(hp.get("lr") or 0) > 0, where, f"{section}.lr", f"must be > 0, got {hp.get('lr')!r}")
    hp["lr"] = float(hp["lr"])
    hp["betas"] = [float(b) for b in hp["betas"]]
    _need(hp["timesteps"] in TIMESTEP_KINDS, where, f"{section}.timesteps",
          f"must be one of {', '.join(TIMESTEP_KINDS)}, got {hp['timesteps']!r}")
    _need(hp["ot"] in ("exact", "sinkhorn", None, "none"), where, f"{section}.ot",
          f"must be exact, sinkhorn or null, got {hp['ot']!r}")
    hp["ot"] = None if hp["ot"] == "none" else hp["ot"]
    _need(0.0 <= float(hp["cond_dropout"]) <= 1.0, where, f"{section}.cond_dropout",
          f"must be in [0, 1], got {hp['cond_dropout']!r}")
    _need(float(hp["lam"]) >= 0, where, f"{section}.lam", f"must be >= 0, got {hp['lam']!r}")
    _need(int(hp["log_every"]) > 0, where, f"{section}.log_every", f"must be a positive integer, got {hp['log_every']!r}")
    hp["checkpoints"] = checkpoint_steps(hp, where)
    return hp


def checkpoint_steps(hp: dict[str, Any], where: str | Path = "profile") -> list[int]:
    """The steps at which a checkpoint is written: the profile's `checkpoints` that fall within the run
    (else `checkpoint_count` evenly spaced ones), always including the last step."""
    steps = int(hp["steps"])
    listed = hp.get("checkpoints")
    if listed:
        bad = [s for s in listed if isinstance(s, bool) or not isinstance(s, int) or s <= 0]
        _need(not bad, where, f"{hp['section']}.checkpoints", f"must hold positive integers, got {bad}")
        chosen = {int(s) for s in listed if int(s) <= steps}
    else:
        n = max(1, int(hp.get("checkpoint_count", 1)))
        chosen = {max(1, round(steps * k / n)) for k in range(1, n + 1)}
    return sorted(chosen | {steps})


def workers(cfg: dict[str, Any], section: str) -> int:
    """`<section>.workers` (default 1), a positive integer."""
    return positive_int(cfg[section].get("workers", 1), f"{section}.workers", _where(cfg))


def device_name(cfg: dict[str, Any]) -> str:
    """`device` (default auto): auto | cpu | cuda[:i]."""
    want = str(cfg.get("device", "auto"))
    _need(want in ("auto", "cpu") or want.startswith("cuda"), _where(cfg), "device",
          f"must be auto, cpu or cuda, got {want!r}")
    return want


def checkpoint_arms(cfg: dict[str, Any]) -> list[str] | None:
    """`generate.checkpoint_arms`: a list of arms of finetune.arms, or None (absent or null: every arm)."""
    arms = cfg["generate"].get("checkpoint_arms")
    if arms is None:
        return None
    where = _where(cfg)
    _need(not isinstance(arms, str) and all(isinstance(a, str) for a in arms), where, "generate.checkpoint_arms",
          f"must be a list of arm names or null, got {arms!r}")
    unknown = sorted(set(arms) - set(cfg["finetune"]["arms"]))
    _need(not unknown, where, "generate.checkpoint_arms",
          f"names {unknown}, which are not in finetune.arms {cfg['finetune']['arms']}")
    return list(arms)


def heldout_prompts(cfg: dict[str, Any]) -> int:
    """`generate.heldout_prompts` (default 0). Its old name `finetune_prompts` is read with a
    FutureWarning; both set to different values is an error."""
    gen = cfg["generate"]
    if "finetune_prompts" in gen:
        _need("heldout_prompts" not in gen or int(gen["heldout_prompts"]) == int(gen["finetune_prompts"]),
              _where(cfg), "generate.heldout_prompts",
              "and its old name finetune_prompts are both set, with different values; keep heldout_prompts only")
        warnings.warn("generate.finetune_prompts is renamed generate.heldout_prompts; its captions now come from the "
                      "reference split (held out from training), not finetune", FutureWarning, stacklevel=3)
    return int(gen.get("heldout_prompts", gen.get("finetune_prompts", 0)))


def anatomy_settings(cfg: dict[str, Any]) -> dict[str, Any]:
    """ANATOMY_DEFAULTS overridden by the profile's optional `anatomy:` section."""
    return {**ANATOMY_DEFAULTS, **(cfg.get("anatomy") or {})}


def validate(cfg: dict[str, Any], path: Path) -> None:
    """Check the keys and values the library relies on; raise ConfigError naming file and key."""
    from .barrier import ARMS  # heavy: torch

    for key in ("name", "runs_dir", "figures_dir", *SECTIONS):
        _need(key in cfg, path, key, "is missing")
    for sec in SECTIONS:
        _need(isinstance(cfg[sec], dict), path, sec, "must be a mapping")
    c, ft, g = cfg["corpus"], cfg["finetune"], cfg["generate"]
    _need(c.get("source") in ("chamber", "musiccaps", "folder"), path, "corpus.source",
          f"must be chamber, musiccaps or folder, got {c.get('source')!r}")
    _need(float(c.get("seconds", 0)) > 0, path, "corpus.seconds", "must be > 0")
    for arm in ft.get("arms", []):
        _need(arm in ARMS, path, "finetune.arms", f"has an unknown arm {arm!r}; known: {', '.join(ARMS)}")
    _need(len(ft.get("arms", [])) > 0, path, "finetune.arms", "must list at least one arm")
    for a in ft.get("adapters", []):
        _need(a in ("lora", "dora"), path, "finetune.adapters", f"has an unknown adapter {a!r}; use lora or dora")
    for sec in ("pretrain", "finetune"):
        training_settings(cfg, sec, where=path)
    _need(g.get("sampler") in ("pingpong", "euler"), path, "generate.sampler", "must be pingpong or euler")
    _need(int(g.get("steps", 0)) > 0, path, "generate.steps", "must be > 0")


def config_hash(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable config parts (for cache keys)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
