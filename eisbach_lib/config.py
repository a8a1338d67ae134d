"""Profiles: a profile is data (a YAML file in configs/), read once into typed settings.

`load_profile("smoke")` reads configs/smoke.yaml (any other argument is a path to a YAML file) into
a `Profile`: one frozen dataclass per section, every left-out key given its default, every value
checked, and the derived values computed once (each training section's checkpoint steps, the
fine-tune's comparison adapter, the readout's seed). A bad value or an unknown key fails here, at
once, naming the file and the key (`<file>: <key> ...`). The rest of the library reads attributes
(`cfg.finetune.lam`), never the YAML mapping; this module is the profile's one schema, and each
default is written once: in the field of its dataclass below (or, for the two constants that belong
to the experiment's design, `corpus.FLAT_SHARE` and `barrier.ORACLE_FACTOR`, there).

Overrides: `load_profile(p, {"finetune.steps": 5})` or `override(cfg, {...})` (dotted keys, as the
`eisbach` flags give them): the YAML mapping with the overrides is read again, checked the same way.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
SECTIONS = ("corpus", "codec", "text", "model", "pretrain", "finetune", "generate", "evaluate")
OPTIONAL_SECTIONS = ("anatomy", "readout", "listening")
TOP_LEVEL = ("name", "seed", "runs_dir", "figures_dir", "device")


class ConfigError(ValueError):
    """A profile file is missing, unreadable or holds a bad value."""


# --------------------------------------------------------------------------------------------
# the sections


@dataclass(frozen=True, kw_only=True)
class Corpus:
    """`corpus:` what the data is and how it is rendered or read (datasets.prepare_corpus)."""

    source: str                       # chamber | musiccaps | folder
    seconds: float
    sample_rate: int
    clips: dict[str, int] = field(default_factory=dict)   # chamber: clips per split (base, finetune, reference)
    flat_share: float                 # the sustained share of finetune and reference (default corpus.FLAT_SHARE)
    workers: int = 2                  # render processes
    clips_per_piece: int = 4
    encode_batch_size: int = 32
    musiccaps_csv: str | None = None  # source musiccaps
    audio_dir: str | None = None      # source musiccaps | folder


@dataclass(frozen=True, kw_only=True)
class Codec:
    """`codec:` the embedded mel codec's settings (MelCodec's keyword arguments; every key required)."""

    n_mels: int
    n_fft: int
    hop_length: int
    griffin_lim_iters: int


@dataclass(frozen=True, kw_only=True)
class Text:
    """`text:` the text encoder's token limit (a longer caption raises, never truncates)."""

    max_tokens: int


@dataclass(frozen=True, kw_only=True)
class Model:
    """`model:` the embedded DiT's shape (models.dit_config), or a Stable Audio 3 directory (base_dir)."""

    base_dir: str | None = None
    embed_dim: int
    depth: int
    num_heads: int
    ff_mult: float = 4.0
    num_memory_tokens: int = 0
    patch_size: int = 1
    timestep_features_dim: int = 64
    duration_fourier_dim: int = 64


@dataclass(frozen=True, kw_only=True)
class Training:
    """The settings one training run reads (`pretrain:` trains the base, `finetune:` the adapters).
    Pretraining from scratch at lr 1e-3 gets a short linear warm-up; fine-tuning follows the model
    card (constant lr, betas (0.9, 0.95)). `checkpoints` lists the steps the profile names (None:
    `checkpoint_count` evenly spaced ones); `checkpoint_steps` is what the run writes."""

    section: str
    steps: int
    batch_size: int
    lr: float
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float | None = None
    lam: float = 0.5                  # the barrier's λ: w = 1 − λ·log(H/H_max) (barrier.py)
    timesteps: str = "trunc_logit_normal"
    ot: str | None = "exact"          # exact | sinkhorn | None
    cond_dropout: float = 0.1
    checkpoints: tuple[int, ...] | None = None
    checkpoint_count: int = 1
    log_every: int = 1
    compile: bool = False
    grad_checkpointing: bool = False

    @property
    def checkpoint_steps(self) -> list[int]:
        """The steps at which a checkpoint is written: the listed `checkpoints` that fall within the
        run (else `checkpoint_count` evenly spaced ones), always including the last step."""
        if self.checkpoints:
            chosen = {s for s in self.checkpoints if s <= self.steps}
        else:
            n = max(1, self.checkpoint_count)
            chosen = {max(1, round(self.steps * k / n)) for k in range(1, n + 1)}
        return sorted(chosen | {self.steps})

    def with_steps(self, steps: int | None) -> "Training":
        """These settings for a run of `steps` steps (None: as they are)."""
        return self if steps is None else dataclasses.replace(self, steps=positive_int(steps, f"{self.section}.steps"))

    def record(self) -> dict[str, Any]:
        """What a run writes into its run.json ("hyperparameters"): every training setting, the
        checkpoint steps resolved; the fine-tune's grid (arms, seeds, adapters, ...) left out."""
        keep = {f.name for f in dataclasses.fields(Training)} | set(ADAPTER_KEYS)
        out = {k: v for k, v in dataclasses.asdict(self).items() if k in keep}
        out["checkpoints"] = self.checkpoint_steps
        out["betas"] = list(self.betas)
        return out


ADAPTER_KEYS = ("rank", "alpha", "oracle_factor")  # the fine-tune's adapter settings a run records


@dataclass(frozen=True, kw_only=True)
class Pretrain(Training):
    """`pretrain:` the embedded base DiT, trained from scratch."""

    section: str = "pretrain"
    warmup_steps: int = 100
    checkpoint_count: int = 10


@dataclass(frozen=True, kw_only=True)
class Finetune(Training):
    """`finetune:` the paired grid of adapter runs (adapters × seeds × arms) and their settings."""

    section: str = "finetune"
    arms: tuple[str, ...]
    seeds: tuple[int, ...]
    adapters: tuple[str, ...] = ("dora",)
    rank: int = 16
    alpha: int = 16
    oracle_factor: float               # default barrier.ORACLE_FACTOR
    sweet_spot: int | None = None      # the checkpoint claim C10 names
    # one-thread processes training the grid (train.run_grid): a DoRA step at batch 4 gains nothing from
    # a second thread (108 vs 120 ms, benchmarks/results/train_cpu.md), so on 2 cores two workers train
    # about twice the runs per second (levers.md); on CUDA the grid stays in one process (shard by GPU)
    workers: int = 1

    @property
    def adapter(self) -> str:
        """The adapter the claims compare arms on: the first of `adapters`."""
        return self.adapters[0]


@dataclass(frozen=True, kw_only=True)
class Generate:
    """`generate:` the evaluation prompts (generate.prompt_set) and the sampler. The held-out captions
    are sampled at primary_cfg (1: the model's conditional, the primary readout) and again at `cfg`
    unless primary_at_cfg is false (the cpu profile: its pilot read the flat share at the floor
    there for every arm, so the set costs half the generation and shows nothing);
    unconditional_prompts rows of the null condition; the card's four prompts (a secondary set)
    unless card_prompts is false. checkpoint_arms: the arms whose intermediate checkpoints are
    generated (None: every arm)."""

    sampler: str                      # pingpong | euler
    steps: int
    cfg: float
    seconds: float
    samples_per_prompt: int
    batch_size: int = 16
    workers: int = 1                  # one-thread processes generating at once (generate.generate_grid)
    heldout_prompts: int = 0
    primary_cfg: float = 1.0
    primary_at_cfg: bool = True
    unconditional_prompts: int = 1
    card_prompts: bool = True
    checkpoint_arms: tuple[str, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class Evaluate:
    """`evaluate:` the statistics (stats.py) and the bar-shuffle validation of the structural metrics
    (validation.py: a floor of 20 tunes)."""

    alpha: float = 0.05
    n_boot: int = 2000
    validation_tunes: int = 20
    validation_shuffles: int = 10


@dataclass(frozen=True, kw_only=True)
class Anatomy:
    """`anatomy:` how much of the model and corpus each anatomy measurement looks at (anatomy.py)."""

    clips: int = 64          # clips of the finetune split for entropy against t (C4)
    t_points: int = 10       # noise levels on [0.05, 0.95] (C4)
    weight_draws: int = 8    # training-distribution timesteps per clip for each clip's mean weight (C2)
    grad_batches: int = 6    # batches for the per-sample / batch gradient cosines (C1)
    update_seqs: int = 3     # batch sequences for the AdamW update cosines (C1), each with an independent second one (the noise floor)
    update_inits: int = 3    # adapter inits, crossed with the batch sequences (C1)
    update_steps: int = 10   # AdamW steps per sequence (C1)
    distance_clips: int = 16 # held-out inputs for the adapters' output distances (manipulation check)


@dataclass(frozen=True, kw_only=True)
class Readout:
    """`readout:` the texture classifier (readout.fit); `seed` defaults to the profile's."""

    hidden: int = 16
    l2: float = 1e-2
    max_iter: int = 200
    folds: int = 5
    seed: int


@dataclass(frozen=True, kw_only=True)
class Profile:
    """A loaded profile. `listening` is the optional study section, checked where it is layered with
    a study file (study_design.study_config); `source` is the YAML mapping as read (with overrides),
    kept so that `override` can read it again."""

    name: str
    seed: int = 0
    runs_dir: Path
    figures_dir: Path
    device: str = "auto"              # auto | cpu | cuda[:i]
    path: Path
    corpus: Corpus
    codec: Codec
    text: Text
    model: Model
    pretrain: Pretrain
    finetune: Finetune
    generate: Generate
    evaluate: Evaluate
    anatomy: Anatomy
    readout: Readout
    listening: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def training(self, adapter: str | None) -> Training:
        """The settings of a run: `finetune` for an adapter run, `pretrain` for the base (adapter None)."""
        return self.pretrain if adapter is None else self.finetune


# --------------------------------------------------------------------------------------------
# loading


def profile_path(profile: str | Path) -> Path:
    """configs/<name>.yaml for a bare name, else the path itself."""
    p = Path(profile)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    return CONFIGS / f"{profile}.yaml"


def load_profile(profile: str | Path, overrides: dict[str, Any] | None = None) -> Profile:
    """Load and check a profile; `overrides` maps dotted keys ("finetune.steps") to values."""
    path = profile_path(profile)
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in CONFIGS.glob("*.yaml")))
        raise ConfigError(f"profile {profile!r}: no file {path} (known profiles: {known})")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return from_mapping(raw, path, overrides)


def override(cfg: Profile, overrides: dict[str, Any]) -> Profile:
    """`cfg` with dotted keys set ({"finetune.steps": 5, "runs_dir": "/tmp/r"}), read and checked again."""
    return from_mapping(cfg.source, cfg.path, overrides)


def set_dotted(mapping: dict[str, Any], key: str, value: Any) -> None:
    """mapping["a"]["b"] = value for key "a.b"."""
    *parents, leaf = key.split(".")
    node = mapping
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value


def from_mapping(raw: dict[str, Any], path: str | Path, overrides: dict[str, Any] | None = None) -> Profile:
    """A `Profile` from a profile's YAML mapping (copied; `overrides` applied first); `path` names the
    file in messages. Relative runs_dir / figures_dir are taken from the repository root."""
    raw = copy.deepcopy(raw)
    for key, value in (overrides or {}).items():
        set_dotted(raw, key, value)
    path = Path(path)
    for key in ("name", "runs_dir", "figures_dir", *SECTIONS):
        _need(key in raw, path, key, "is missing")
    _known(raw, (*TOP_LEVEL, *SECTIONS, *OPTIONAL_SECTIONS), path, "")
    for sec in (*SECTIONS, *OPTIONAL_SECTIONS):
        _need(isinstance(raw.get(sec) or {}, dict), path, sec, "must be a mapping")
    seed = _int(raw["seed"], "seed", path) if "seed" in raw else Profile.seed
    device = _device(raw["device"], path) if "device" in raw else Profile.device
    finetune = _finetune(raw["finetune"], path)
    return Profile(
        name=str(raw["name"]), seed=seed, runs_dir=_repo_path(raw["runs_dir"]),
        figures_dir=_repo_path(raw["figures_dir"]), device=device, path=path,
        corpus=_corpus(raw["corpus"], path), codec=_section(Codec, raw["codec"], path, "codec"),
        text=_section(Text, raw["text"], path, "text"), model=_section(Model, raw["model"], path, "model"),
        pretrain=_training(Pretrain, raw["pretrain"], path), finetune=finetune,
        generate=_generate(raw["generate"], finetune, path),
        evaluate=_section(Evaluate, raw["evaluate"], path, "evaluate"),
        anatomy=_section(Anatomy, raw.get("anatomy") or {}, path, "anatomy", positive=True),
        readout=_section(Readout, {"seed": seed, **(raw.get("readout") or {})}, path, "readout"),
        listening=dict(raw.get("listening") or {}), source=raw)


def _repo_path(value: Any) -> Path:
    p = Path(str(value))
    return p if p.is_absolute() else REPO / p


def _need(cond: bool, path: str | Path, key: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{path}: {key} {msg}")


def _known(section: dict[str, Any], known: tuple[str, ...], path: Path, prefix: str) -> None:
    """An unknown key is an error (a typo would otherwise leave a default in place silently)."""
    for key in section:
        _need(key in known, path, f"{prefix}{key}", f"is not a setting (known: {', '.join(known)})")


def positive_int(value: Any, key: str, where: str | Path = "profile") -> int:
    """`value` when it is an int > 0 (not a bool); else ConfigError naming `where` and `key`."""
    return _int(value, key, where, minimum=1)


def _int(value: Any, key: str, where: str | Path, minimum: int = 0) -> int:
    word = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    _need(not isinstance(value, bool) and isinstance(value, int) and value >= minimum, where, key,
          f"must be {word}, got {value!r}")
    return value


def _number(value: Any, key: str, where: str | Path, minimum: float = 0.0) -> float:
    _need(not isinstance(value, bool) and isinstance(value, (int, float)) and value >= minimum, where, key,
          f"must be a number >= {minimum:g}, got {value!r}")
    return float(value)


def _section(cls: type, section: dict[str, Any], path: Path, name: str, positive: bool = False):
    """`cls(**section)`: unknown keys refused, required ones asked for by name; `positive` checks that
    every value is a positive integer (the anatomy's sizes)."""
    names = [f.name for f in dataclasses.fields(cls)]
    _known(section, tuple(names), path, f"{name}.")
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        _need(not required or f.name in section, path, f"{name}.{f.name}", "is missing")
        if positive and f.name in section:
            positive_int(section[f.name], f"{name}.{f.name}", path)
    return cls(**section)


def _corpus(c: dict[str, Any], path: Path) -> Corpus:
    """The corpus section: a known source, seconds > 0, positive sample rate and workers."""
    from .corpus import FLAT_SHARE  # heavy: pandas, soundfile (.corpus imports them); the constant's one definition

    c = {"flat_share": FLAT_SHARE, **c}
    corpus = _section(Corpus, {**c, "clips": dict(c.get("clips") or {})}, path, "corpus")
    _need(corpus.source in ("chamber", "musiccaps", "folder"), path, "corpus.source",
          f"must be chamber, musiccaps or folder, got {corpus.source!r}")
    _number(corpus.seconds, "corpus.seconds", path, minimum=1e-9)
    _number(corpus.flat_share, "corpus.flat_share", path)
    for key in ("sample_rate", "workers", "clips_per_piece", "encode_batch_size"):
        positive_int(getattr(corpus, key), f"corpus.{key}", path)
    return dataclasses.replace(corpus, seconds=float(corpus.seconds), flat_share=float(corpus.flat_share))


def _device(want: Any, path: Path) -> str:
    want = str(want)
    _need(want in ("auto", "cpu") or want.startswith("cuda"), path, "device", f"must be auto, cpu or cuda, got {want!r}")
    return want


def _training(cls: type, section: dict[str, Any], path: Path, **extra: Any) -> Training:
    """A training section, checked: steps and batch_size positive integers, lr > 0, a known timestep
    sampler and OT coupling ("none" reads as null), cond_dropout in [0, 1], lam and weight_decay
    numbers >= 0, log_every and the listed checkpoints positive integers."""
    from .flow import TIMESTEP_KINDS  # heavy: torch

    name = cls.section
    _need("section" not in section, path, f"{name}.section", "is not a setting")
    hp = {**section, **extra}
    if isinstance(hp.get("lr"), str):  # YAML reads 5e-5 (no decimal point) as a string
        try:
            hp["lr"] = float(hp["lr"])
        except ValueError:
            pass
    if "betas" in hp:
        hp["betas"] = tuple(hp["betas"])
    if "checkpoints" in hp:
        hp["checkpoints"] = tuple(hp["checkpoints"] or ()) or None
    if hp.get("ot") == "none":
        hp["ot"] = None
    t = _section(cls, hp, path, name)
    for key in ("steps", "batch_size", "log_every", "checkpoint_count"):
        positive_int(getattr(t, key), f"{name}.{key}", path)
    _int(t.warmup_steps, f"{name}.warmup_steps", path)
    _need(not isinstance(t.lr, bool) and isinstance(t.lr, (int, float)) and t.lr > 0, path, f"{name}.lr",
          f"must be a number > 0, got {t.lr!r}")
    _need(t.timesteps in TIMESTEP_KINDS, path, f"{name}.timesteps",
          f"must be one of {', '.join(TIMESTEP_KINDS)}, got {t.timesteps!r}")
    _need(t.ot in ("exact", "sinkhorn", None), path, f"{name}.ot", f"must be exact, sinkhorn or null, got {t.ot!r}")
    numbers = {key: _number(getattr(t, key), f"{name}.{key}", path) for key in ("lr", "lam", "cond_dropout", "weight_decay")}
    _need(numbers["cond_dropout"] <= 1.0, path, f"{name}.cond_dropout", f"must be in [0, 1], got {t.cond_dropout!r}")
    _need(len(t.betas) == 2, path, f"{name}.betas", f"must be two numbers, got {list(t.betas)!r}")
    bad = [s for s in t.checkpoints or () if isinstance(s, bool) or not isinstance(s, int) or s <= 0]
    _need(not bad, path, f"{name}.checkpoints", f"must hold positive integers, got {bad}")
    betas = tuple(_number(b, f"{name}.betas", path) for b in t.betas)
    return dataclasses.replace(t, betas=betas, **numbers)


def _finetune(ft: dict[str, Any], path: Path) -> Finetune:
    """The fine-tune section: a training section plus its grid (known arms and adapters, at least one
    arm and one seed, a positive number of workers)."""
    from .barrier import ARMS, ORACLE_FACTOR  # heavy: torch

    ft = {"oracle_factor": ORACLE_FACTOR, **ft}
    for key in ("arms", "seeds", "adapters"):
        if key in ft:
            _need(isinstance(ft[key], (list, tuple)) and len(ft[key]) > 0, path, f"finetune.{key}",
                  f"must list at least one, got {ft[key]!r}")
            ft[key] = tuple(ft[key])
    t = _training(Finetune, ft, path)
    for arm in t.arms:
        _need(arm in ARMS, path, "finetune.arms", f"has an unknown arm {arm!r}; known: {', '.join(ARMS)}")
    for a in t.adapters:
        _need(a in ("lora", "dora"), path, "finetune.adapters", f"has an unknown adapter {a!r}; use lora or dora")
    for s in t.seeds:
        _int(s, "finetune.seeds", path)
    for key in ("workers", "rank", "alpha"):
        positive_int(getattr(t, key), f"finetune.{key}", path)
    return dataclasses.replace(t, oracle_factor=_number(t.oracle_factor, "finetune.oracle_factor", path))


def _generate(g: dict[str, Any], ft: Finetune, path: Path) -> Generate:
    """The generate section, checked: a known sampler; steps, batch_size, samples_per_prompt and
    workers positive integers; cfg and primary_cfg numbers >= 0; the prompt counts integers >= 0;
    checkpoint_arms a list of arms of finetune.arms (or null). Its old key finetune_prompts is read as
    heldout_prompts with a FutureWarning."""
    g = dict(g)
    if "finetune_prompts" in g:
        old = g.pop("finetune_prompts")
        _need("heldout_prompts" not in g or g["heldout_prompts"] == old, path, "generate.heldout_prompts",
              "and its old name finetune_prompts are both set, with different values; keep heldout_prompts only")
        warnings.warn(f"{path}: generate.finetune_prompts is renamed generate.heldout_prompts; its captions now come "
                      "from the reference split (held out from training), not finetune", FutureWarning, stacklevel=4)
        g["heldout_prompts"] = old
    arms = g.get("checkpoint_arms")
    if arms is not None:
        _need(isinstance(arms, (list, tuple)) and all(isinstance(a, str) for a in arms), path,
              "generate.checkpoint_arms", f"must be a list of arm names or null, got {arms!r}")
        g["checkpoint_arms"] = tuple(arms)
    gen = _section(Generate, g, path, "generate")
    _need(gen.sampler in ("pingpong", "euler"), path, "generate.sampler", "must be pingpong or euler")
    for key in ("steps", "batch_size", "samples_per_prompt", "workers"):
        positive_int(getattr(gen, key), f"generate.{key}", path)
    for key in ("unconditional_prompts", "heldout_prompts"):
        _int(getattr(gen, key), f"generate.{key}", path)
    unknown = sorted(set(gen.checkpoint_arms or ()) - set(ft.arms))
    _need(not unknown, path, "generate.checkpoint_arms", f"names {unknown}, which are not in finetune.arms {list(ft.arms)}")
    return dataclasses.replace(gen, cfg=_number(gen.cfg, "generate.cfg", path),
                               primary_cfg=_number(gen.primary_cfg, "generate.primary_cfg", path),
                               seconds=_number(gen.seconds, "generate.seconds", path, minimum=1e-9))


def config_hash(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable config parts (for cache keys)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
