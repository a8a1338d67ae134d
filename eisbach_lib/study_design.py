"""The listening study as data: its definition, the trials drawn for it, and study.json read back.

- `study_config`: the study definition: `DEFAULT_STUDY`, then the profile's ``listening:`` section,
  then an optional YAML file (comparisons, questions, prompts, seeds, sizes);
- `draw_trials`: the clip pairs from the samples manifest (same prompt, seed, sample and step
  within a pair, seeds balanced, prompts spread, catch trials), with `resolve_primary` and
  `study_pairs` (study.json's per-question pairs, the primary flagged);
- `listening_dir`, `load_study`, `trials_of`: <runs_dir>/listening and the study.json `make_kit`
  (study_kit.py) wrote.

The constants below are the study's pre-registered settings (questions, catch share, rater
screening, the equivalence margin) and the columns of votes.csv and of the page's download; make_kit
writes them into study.json, and study_votes.py, study.py and study_widget.py read them. The
study's parts and its statistics: study.py's docstring.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import yaml

from .config import Profile
from .layout import Layout
from .tables import last_step_rows

# ----------------------------------------------------------------------------- the study as data

STRUCTURE_NOTE = ("C6: at 6-20 s clips the structure metrics fail their validation "
                  "(benchmarks/results/structure_validation.md), so no metric backs or checks this judgement")
DEFAULT_QUESTIONS = [
    {"id": "development", "claim": "C6 thematic development", "note": STRUCTURE_NOTE,
     "text": "Which clip develops more over its length (ideas that return changed, sections that differ)?"},
    {"id": "preference", "claim": "overall preference",
     "text": "Which clip do you prefer overall?"},
]
CONTROL_ARMS = ("eisbach_norm", "eisbach_shuffle", "eisbach_tmatched", "eisbach_grad", "oracle_texture", "constant")
DEFAULT_STUDY = {
    "study_id": None,            # None: "<profile>-" + the first 8 hex digits of the trials' sha1
    "arm_a": "eisbach",
    "comparisons": None,         # None: arm_a vs none, vs minsnr, vs each control arm present
    "primary": None,             # the pre-declared primary [arm_a, arm_b, question]; None: the first
                                 # comparison (arm_a vs none when present) on the catch question
    "questions": DEFAULT_QUESTIONS,
    "catch_question": "preference",
    "adapter": None,             # None: dora when present, else the first adapter
    "prompts": None,             # prompt ids drawn from (None: all)
    "seeds": None,               # training seeds drawn from (None: all)
    "pairs_per_comparison": 12,  # rounded up to a multiple of the seeds (each seed equally often): 16 at
                                 # 8 seeds; calibrated in tests/test_listen_study.py, bench_listening.py
    "catch_share": 0.125,        # about one trial in eight is a catch trial (at least MIN_CATCH)
    "seed": 0,
    "max_seconds": 10.0,
    "target_dbfs": -20.0,
}
MIN_CATCH = 2
MIN_RATERS = 5              # fewer screened raters than this: "too few votes"
MAX_CATCH_FAIL = 0.25       # a rater failing more than this share of catch trials is excluded
SESOI = 0.10                # equivalence: the 90 % CI of the win rate inside 0.5 ± 0.10
VOTE_COLUMNS = ("study_id", "rater", "pair_id", "question", "choice", "preferred_arm", "is_catch", "timestamp")
PAGE_COLUMNS = ("study_id", "rater", "pair_id", "question", "choice", "clip_at_a", "timestamp")
CHOICES = ("A", "B", "tie")


class StudyError(ValueError):
    """A study file, samples manifest or votes file that cannot be used; the message names it."""


def study_config(cfg: Profile, path: str | Path | None = None) -> dict:
    """The study definition: `DEFAULT_STUDY`, updated by the profile's ``listening:`` section, then
    by the YAML file at `path`. Unknown keys are refused (naming the key and where it came from)."""
    study = {k: (list(v) if isinstance(v, list) else v) for k, v in DEFAULT_STUDY.items()}
    sources = [("profile section 'listening'", cfg.listening)]
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"{p}: study file not found")
        sources.append((str(p), yaml.safe_load(p.read_text()) or {}))
    for where, part in sources:
        if not isinstance(part, dict):
            raise StudyError(f"{where}: a study must be a mapping, got {type(part).__name__}")
        unknown = sorted(set(part) - set(DEFAULT_STUDY))
        if unknown:
            raise StudyError(f"{where}: unknown study key(s) {unknown}; known: {sorted(DEFAULT_STUDY)}")
        study.update(part)
    qids = [q.get("id") for q in study["questions"]]
    if len(set(qids)) != len(qids) or not all(qids) or not all(q.get("text") for q in study["questions"]):
        raise StudyError(f"questions need a unique 'id' and a 'text' each, got {study['questions']}")
    if study["catch_question"] not in qids:
        raise StudyError(f"catch_question {study['catch_question']!r} is not one of the questions {qids}")
    prim = study.get("primary")
    if prim is not None and (not isinstance(prim, (list, tuple)) or len(prim) != 3 or prim[2] not in qids):
        raise StudyError(f"primary must be [arm_a, arm_b, question] with a question among {qids}, got {prim!r}")
    return study


def default_comparisons(arms_present: Iterable[str], arm_a: str = "eisbach") -> list[tuple[str, str]]:
    """`arm_a` vs ``none``, vs ``minsnr`` and vs each control arm (`CONTROL_ARMS`), keeping only
    the arms present in the samples (and none at all without `arm_a`)."""
    present = set(arms_present)
    if arm_a not in present:
        return []
    return [(arm_a, b) for b in ("none", "minsnr", *CONTROL_ARMS) if b in present and b != arm_a]


# ----------------------------------------------------------------------------- drawing the trials

PAIR_ON = ["adapter", "seed", "prompt_id", "sample", "step"]


def _balanced_draw(keys: pd.DataFrame, per_seed: int, rng: np.random.Generator) -> pd.DataFrame:
    """`per_seed` rows of `keys` for every training seed in it (so each seed equally often), the
    prompts spread: seeds in a random order, each taking, one at a time, a random row among those
    whose prompt has been used least so far in this comparison. With at least as many prompts as
    rows every prompt appears at most once, so a prompt's effect stays inside one seed's cluster."""
    keys = keys.iloc[rng.permutation(len(keys))].reset_index(drop=True)
    used: dict = {}
    picked = []
    for seed in rng.permutation(sorted(keys["seed"].unique())):
        cand = keys[keys["seed"] == seed]
        taken: set = set()
        for _ in range(per_seed):
            free = cand[~cand.index.isin(taken)]
            usage = free["prompt_id"].map(lambda q: used.get(q, 0)).to_numpy()
            i = free.index[int(np.argmin(usage))]  # first of the least used: random, keys are shuffled
            taken.add(i)
            used[keys.at[i, "prompt_id"]] = used.get(keys.at[i, "prompt_id"], 0) + 1
            picked.append(i)
    return keys.loc[picked]


def draw_trials(samples: pd.DataFrame, study: dict) -> pd.DataFrame:
    """The study's clip pairs, one row per trial (a pair of clips, asked every question).

    From the samples manifest (``run, adapter, arm, seed, step, prompt_id, caption, sample, path``,
    paths relative to runs_dir): each run's final checkpoint, one adapter (`study['adapter']`), the
    base model left out. For each comparison (arm_a, arm_b) whose two arms are both present, the
    clips of the two arms that share (adapter, seed, prompt_id, sample, step) are partners (same
    prompt and same initial noise). Balanced over training seeds: with S seeds present in both arms,
    each seed gives k = ⌈pairs_per_comparison / S⌉ pairs (fewer, the same for every seed, when a
    seed has fewer partners), so a comparison has k·S pairs, the prompts spread within that
    (`_balanced_draw`). The analysis clusters by seed (`clustered_win_rate`); balance keeps every
    seed's weight equal.
    Catch trials: max(MIN_CATCH, round(n·share/(1 − share))) clips drawn from the real pairs, each
    against its degraded copy (``arm_b = "anchor"``; the anchor file is written by `make_kit`).

    Returns columns ``pair_id, comparison, arm_a, arm_b, prompt, caption, seed, sample, step,
    adapter, clip_a, clip_b, page_first, is_catch``. ``pair_id`` is opaque (t01, t02, ... over the
    shuffled trials); ``page_first`` ("a" or "b") says which clip is the page's clip 1 — balanced
    within each comparison so that the page can balance positions without knowing the arms.
    Deterministic for `study['seed']`.
    """
    rng = np.random.default_rng(int(study["seed"]))
    df = samples[samples["arm"] != "base"].copy()
    if df.empty:
        raise StudyError("the samples manifest has no adapter clips (only the base model or nothing)")
    df["adapter"] = df["adapter"].fillna("").astype(str)
    adapters = sorted(df["adapter"].unique())
    adapter = study["adapter"] or ("dora" if "dora" in adapters else adapters[0])
    df = last_step_rows(df[df["adapter"] == adapter])
    if study["prompts"] is not None:
        df = df[df["prompt_id"].isin(list(study["prompts"]))]
    if study["seeds"] is not None:
        df = df[df["seed"].isin(list(study["seeds"]))]
    comparisons = study["comparisons"] or default_comparisons(df["arm"].unique(), study["arm_a"])
    comparisons = [tuple(c) for c in comparisons if set(c) <= set(df["arm"].unique())]
    if not comparisons:
        raise StudyError(f"no comparison has both arms in the samples (arms present: {sorted(df['arm'].unique())})")

    parts = []
    for arm_a, arm_b in comparisons:
        a = df.loc[df["arm"] == arm_a, PAIR_ON + ["caption", "path"]]
        b = df.loc[df["arm"] == arm_b, PAIR_ON + ["path"]]
        m = a.merge(b, on=PAIR_ON, suffixes=("_a", "_b")).sort_values(PAIR_ON).reset_index(drop=True)
        counts = m.groupby("seed").size()
        if counts.empty:
            raise StudyError(f"{arm_a} vs {arm_b}: no clips of the two arms share adapter, seed, prompt, sample, step")
        per_seed = min(-(-int(study["pairs_per_comparison"]) // len(counts)), int(counts.min()))
        m = _balanced_draw(m, per_seed, rng)
        parts.append(m.assign(comparison=f"{arm_a} vs {arm_b}", arm_a=arm_a, arm_b=arm_b, is_catch=False))
    real = pd.concat(parts, ignore_index=True)
    share = float(study["catch_share"])
    n_catch = max(MIN_CATCH, int(round(len(real) * share / (1.0 - share))))
    src = real.iloc[rng.choice(len(real), size=min(n_catch, len(real)), replace=False)].copy()
    use_b = rng.random(len(src)) < 0.5
    src["arm_a"] = np.where(use_b, src["arm_b"], src["arm_a"])
    src["path_a"] = np.where(use_b, src["path_b"], src["path_a"])
    catch = src.assign(arm_b="anchor", path_b="", comparison="catch", is_catch=True)
    trials = pd.concat([real, catch], ignore_index=True)

    trials["page_first"] = ""
    for _, idx in trials.groupby("comparison").groups.items():
        idx = list(idx)
        n_a = len(idx) // 2 + int(len(idx) % 2 == 1 and rng.random() < 0.5)
        trials.loc[idx, "page_first"] = np.where(rng.permutation(len(idx)) < n_a, "a", "b")
    trials = trials.iloc[rng.permutation(len(trials))].reset_index(drop=True)
    width = max(2, len(str(len(trials))))
    trials.insert(0, "pair_id", [f"t{i + 1:0{width}d}" for i in range(len(trials))])
    trials = trials.rename(columns={"prompt_id": "prompt", "path_a": "clip_a", "path_b": "clip_b"})
    trials.loc[trials["is_catch"], "clip_b"] = [f"listening/anchors/{p}.wav" for p in trials.loc[trials["is_catch"], "pair_id"]]
    cols = ["pair_id", "comparison", "arm_a", "arm_b", "prompt", "caption", "seed", "sample", "step", "adapter",
            "clip_a", "clip_b", "page_first", "is_catch"]
    return trials[cols]


def resolve_primary(trials: pd.DataFrame, study: dict) -> tuple[str, str, str]:
    """The pre-declared primary (arm_a, arm_b, question): `study['primary']` when given (it must be a
    drawn comparison), else the first comparison drawn (arm_a vs none when present) on the
    catch question ("preference")."""
    real = trials[~trials["is_catch"].astype(bool)]
    drawn = list(dict.fromkeys(zip(real["arm_a"], real["arm_b"])))
    if study.get("primary") is not None:
        a, b, q = study["primary"]
        if (a, b) not in drawn:
            raise StudyError(f"primary comparison {a} vs {b} is not among the drawn comparisons {drawn}")
        return str(a), str(b), str(q)
    return drawn[0][0], drawn[0][1], study["catch_question"]


def study_pairs(trials: pd.DataFrame, questions: Sequence[dict], primary: tuple[str, str, str] | None = None
                ) -> pd.DataFrame:
    """study.json's ``pairs``: one row per (trial, question), the trial's columns plus ``question``
    and ``primary`` (True on the pre-declared primary comparison × question's rows)."""
    rows = [dict(t, question=q["id"]) for t in trials.to_dict("records") for q in questions]
    out = pd.DataFrame(rows)
    out["primary"] = False
    if primary is not None:
        out["primary"] = ((out["arm_a"] == primary[0]) & (out["arm_b"] == primary[1]) & (out["question"] == primary[2])
                          & ~out["is_catch"].astype(bool))
    return out


# ----------------------------------------------------------------------------- study.json read back


def listening_dir(cfg: Profile) -> Path:
    """``<runs_dir>/listening``."""
    return Layout.of(cfg).listening


def load_study(path: str | Path) -> dict:
    """study.json as a dict, with ``pairs`` as a DataFrame."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no study; make the kit first (`eisbach listen kit --profile P`)")
    doc = json.loads(path.read_text())
    doc["pairs"] = pd.DataFrame(doc["pairs"])
    return doc


def trials_of(pairs: pd.DataFrame) -> pd.DataFrame:
    """One row per trial (pair_id) from study.json's per-question pairs."""
    return pairs.drop(columns="question").drop_duplicates("pair_id").reset_index(drop=True)
