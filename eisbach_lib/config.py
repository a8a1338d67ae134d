"""Profiles: a profile is data (a YAML file in configs/), loaded into a plain nested dict.

`load_profile("smoke")` reads configs/smoke.yaml; any other argument is a path to a YAML file.
Values are checked once, here, so a bad value fails at once with the file and key named.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
SECTIONS = ("corpus", "codec", "text", "model", "pretrain", "finetune", "generate", "evaluate")


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


def _need(cond: bool, path: Path, key: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{path}: {key}: {msg}")


def validate(cfg: dict[str, Any], path: Path) -> None:
    """Check the keys and values the library relies on; raise ConfigError naming file and key."""
    from .barrier import ARMS
    from .flow import TIMESTEP_KINDS

    for key in ("name", "runs_dir", "figures_dir", *SECTIONS):
        _need(key in cfg, path, key, "missing")
    for sec in SECTIONS:
        _need(isinstance(cfg[sec], dict), path, sec, "must be a mapping")
    c, ft, g = cfg["corpus"], cfg["finetune"], cfg["generate"]
    _need(c.get("source") in ("chamber", "musiccaps", "folder"), path, "corpus.source",
          f"must be chamber, musiccaps or folder, got {c.get('source')!r}")
    _need(float(c.get("seconds", 0)) > 0, path, "corpus.seconds", "must be > 0")
    for arm in ft.get("arms", []):
        _need(arm in ARMS, path, "finetune.arms", f"unknown arm {arm!r}; known: {', '.join(ARMS)}")
    _need(len(ft.get("arms", [])) > 0, path, "finetune.arms", "must list at least one arm")
    for a in ft.get("adapters", []):
        _need(a in ("lora", "dora"), path, "finetune.adapters", f"unknown adapter {a!r}; use lora or dora")
    _need(ft.get("timesteps") in TIMESTEP_KINDS, path, "finetune.timesteps",
          f"must be one of {', '.join(TIMESTEP_KINDS)}")
    _need(ft.get("ot") in ("exact", "sinkhorn", None), path, "finetune.ot", "must be exact, sinkhorn or null")
    for sec in ("pretrain", "finetune"):
        for key in ("steps", "batch_size"):
            v = cfg[sec].get(key)
            _need(isinstance(v, int) and v > 0, path, f"{sec}.{key}", f"must be a positive integer, got {v!r}")
        _need(float(cfg[sec].get("lr", 0)) > 0, path, f"{sec}.lr", "must be > 0")
    _need(float(ft.get("lam", -1)) >= 0, path, "finetune.lam", "must be >= 0")
    _need(g.get("sampler") in ("pingpong", "euler"), path, "generate.sampler", "must be pingpong or euler")
    _need(int(g.get("steps", 0)) > 0, path, "generate.steps", "must be > 0")


def config_hash(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable config parts (for cache keys)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
