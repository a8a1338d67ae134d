"""A blind listening study: defined as data, taken offline in a browser, analysed with clustered intervals.

The parts, in the order a study runs:

- `study_config`     the study definition: defaults, then the profile's ``listening:`` section,
                     then an optional YAML file (comparisons, questions, prompts, seeds, sizes);
- `draw_trials`      the clip pairs from the samples manifest: same prompt, seed, sample (hence the
                     same initial noise) and step within a pair, prompts spread evenly, plus catch
                     trials (a clip against a degraded copy of itself, MUSHRA's low anchor);
- `make_kit`         writes ``<runs_dir>/listening/study.json``, the anchors and ``study.html`` (one
                     self-contained page, audio embedded as MP3, nothing fetched; see `build_page`);
- `import_votes`     merges the CSVs the page downloads into ``<runs_dir>/listening/votes.csv``,
                     every row checked against study.json, all or nothing;
- `study_verdicts`   one row per (comparison, question): win rate, 95 % and 90 % intervals
                     clustered by rater and by training seed, position bias, a multiplicity-
                     adjusted p and a verdict; raters failing catch trials are excluded
                     (`screen_raters`);
- `listener_rows`    the scorecard's "listeners" rows (when votes exist);
- `bradley_terry`    an exploratory ranking of all arms, intervals resampling raters;
- `StudyAB`          the same study as an ipywidgets widget in a live notebook (writes votes.csv).

Two hidden-arm rules hold everywhere: pair ids are opaque (``t01``, ``t02``, ... in a random
order), and the page holds no arm name at all: its clips are numbered in a random order and a
trial only names its two clip numbers; study.json maps them back to arms at import.

The statistics (see `clustered_win_rate`, `family_adjust`, `decide_win_rate`): a vote scores
w = 1 when arm_a is preferred, 0 when arm_b is, 0.5 for "no preference"; the win rate is the mean
of w. Votes of one rater are correlated (the rater's leaning), and so are votes on clips of one
training seed (a seed can train a better or a worse adapter: the arm's preference varies by seed),
so the variance is the two-way cluster-robust one of Cameron, Gelbach & Miller (2011) with raters
and training seeds as clusters (pairs are nested in seeds): V = V_rater + V_seed − V_rater∩seed,
each a one-way CR1 variance with the G/(G−1) factor, floored at max(V_rater, V_seed); the interval
is win_rate ± t_{df}·√V with df = min(raters, seeds) − 1. The kit draws every seed equally often
per comparison. One comparison × question is pre-declared primary in study.json; it is tested at
α = 0.05, the other rows are Holm-corrected among themselves and gated on the primary (serial
gatekeeping), so the family-wise rate of false decisive verdicts across the listener rows is ≤ 5 %.
The verdict checks equivalence first (90 % CI inside 0.5 ± 0.10), then the 95 % CI with the
adjusted p. Calibrated by simulation with rater and seed effects in tests/test_listen_study.py
(fast) and benchmarks/bench_listening.py (benchmarks/results/listening_calibration.md).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
from datetime import datetime, timezone
from math import gcd
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import soundfile as sf
import yaml
from scipy import stats as sps
from scipy.signal import butter, resample_poly, sosfiltfilt

from .files import append_csv_row, atomic_write
from .layout import Layout
from .listen import audio_player, choice_buttons, final_steps, load_clip, loudness_match

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
ANCHOR_CUTOFF_HZ = 3500.0   # MUSHRA's low anchor (ITU-R BS.1534): low-passed at 3.5 kHz ...
ANCHOR_SNR_DB = 12.0        # ... plus white noise 12 dB below the clip
MIN_RATERS = 5              # fewer screened raters than this: "too few votes"
MAX_CATCH_FAIL = 0.25       # a rater failing more than this share of catch trials is excluded
SESOI = 0.10                # equivalence: the 90 % CI of the win rate inside 0.5 ± 0.10
VOTE_COLUMNS = ("study_id", "rater", "pair_id", "question", "choice", "preferred_arm", "is_catch", "timestamp")
PAGE_COLUMNS = ("study_id", "rater", "pair_id", "question", "choice", "clip_at_a", "timestamp")
CHOICES = ("A", "B", "tie")
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


def plural(n: int, word: str) -> str:
    """"1 vote", "0 votes", "2 votes" (English plural by -s)."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class StudyError(ValueError):
    """A study file, samples manifest or votes file that cannot be used; the message names it."""


def study_config(cfg: dict, path: str | Path | None = None) -> dict:
    """The study definition: `DEFAULT_STUDY`, updated by the profile's ``listening:`` section, then
    by the YAML file at `path`. Unknown keys are refused (naming the key and where it came from)."""
    study = {k: (list(v) if isinstance(v, list) else v) for k, v in DEFAULT_STUDY.items()}
    sources = [("profile section 'listening'", cfg.get("listening") or {})]
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
    df = final_steps(df[df["adapter"] == adapter])
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


# ----------------------------------------------------------------------------- audio for the kit


def degrade(y: np.ndarray, sr: int, seed: int = 0, cutoff_hz: float = ANCHOR_CUTOFF_HZ,
            snr_db: float = ANCHOR_SNR_DB) -> np.ndarray:
    """The catch trials' low anchor: `y` low-passed at `cutoff_hz` (8th-order Butterworth, zero
    phase, skipped when the Nyquist frequency is below it), plus white noise `snr_db` below the
    filtered clip's RMS (seeded). MUSHRA's (ITU-R BS.1534) low anchor is the 3.5 kHz low-pass; the
    noise makes the copy clearly worse even for band-limited material."""
    y = np.asarray(y, dtype=np.float64)
    if sr / 2 > cutoff_hz * 1.05:
        y = sosfiltfilt(butter(8, cutoff_hz, btype="low", fs=sr, output="sos"), y)
    rms = float(np.sqrt(np.mean(y**2))) if y.size else 0.0
    noise = np.random.default_rng(seed).standard_normal(y.size) * max(rms, 1e-3) * 10 ** (-snr_db / 20)
    return (y + noise).astype(np.float32)


def encode_mp3(y: np.ndarray, sr: int) -> bytes:
    """`y` (mono float) as MP3 bytes (libsndfile's LAME encoder, through soundfile); a rate MP3
    cannot carry is resampled to 22 050 Hz first (polyphase)."""
    if sr not in MP3_RATES:
        g = gcd(int(sr), 22050)
        y, sr = resample_poly(y, 22050 // g, int(sr) // g), 22050
    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(y, dtype=np.float32), -1, 1), int(sr), format="MP3")
    return buf.getvalue()


def clip_data_uri(path: str | Path, target_dbfs: float = -20.0, max_seconds: float | None = 10.0) -> str:
    """A WAV file as a loudness-matched MP3 ``data:`` URI (cut to `max_seconds`, ≤ 22 050 Hz)."""
    y, sr = load_clip(path, max_seconds=max_seconds, max_sr=22050)
    data = encode_mp3(loudness_match(y, target_dbfs), sr)
    return "data:audio/mpeg;base64," + base64.b64encode(data).decode("ascii")


def static_players(samples: pd.DataFrame, runs_dir: str | Path, max_clips: int = 36, sample: int = 0,
                   target_dbfs: float = -20.0, max_seconds: float | None = 10.0) -> str:
    """HTML: a table of plain ``<audio controls>`` players (MP3 embedded), one per clip of each
    run's final step, labelled by arm, seed and prompt — audible in a saved notebook or a static
    page without a kernel. Rows are (prompt, seed), columns arms (``none`` first); at most
    `max_clips` players (a note says how many were left out)."""
    df = samples[(samples["sample"] == sample) & (samples["arm"] != "base")]
    df = final_steps(df)
    arms = (["none"] if "none" in set(df["arm"]) else []) + sorted(set(df["arm"]) - {"none"})
    keys = df[["prompt_id", "seed"]].drop_duplicates().sort_values(["prompt_id", "seed"])
    n_rows = max(1, max_clips // max(1, len(arms)))
    shown = keys.head(n_rows)
    head = "".join(f"<th>{html.escape(a)}</th>" for a in arms)
    body = []
    for prompt_id, seed in shown.itertuples(index=False):
        cell = df[(df["prompt_id"] == prompt_id) & (df["seed"] == seed)]
        tds = []
        for arm in arms:
            hit = cell[cell["arm"] == arm]
            if len(hit):
                uri = clip_data_uri(Path(runs_dir) / hit["path"].iloc[0], target_dbfs, max_seconds)
                label = f"{arm} · seed {seed} · prompt {prompt_id}"
                tds.append(f'<td><audio controls preload="metadata" src="{uri}" title="{html.escape(label)}"></audio>'
                           f"<br><small>{html.escape(label)}</small></td>")
            else:
                tds.append("<td>—</td>")
        caption = html.escape(str(cell["caption"].iloc[0]))[:120]
        body.append(f"<tr><td><b>prompt {prompt_id} · seed {seed}</b><br><small>{caption}</small></td>{''.join(tds)}</tr>")
    note = (f"<p><i>{len(shown) * len(arms)} clips shown of {len(keys) * len(arms)} (max_clips={max_clips}); "
            f"loudness-matched to {target_dbfs:g} dBFS, MP3.</i></p>")
    return f"<table><tr><th></th>{head}</tr>{''.join(body)}</table>{note}"


# ----------------------------------------------------------------------------- the kit


def listening_dir(cfg: dict) -> Path:
    """``<runs_dir>/listening``."""
    return Layout.of(cfg).listening


def load_samples(cfg: dict) -> pd.DataFrame:
    """The samples manifest ``<runs_dir>/samples/manifest.csv`` (written by `generate_grid`)."""
    path = Layout.of(cfg).samples_manifest
    if not path.exists():
        raise FileNotFoundError(f"{path}: no samples manifest; generate the samples first "
                                f"(notebook 05 or `eisbach generate --profile {cfg.get('name', 'P')}`)")
    return pd.read_csv(path, keep_default_na=False)


def make_kit(cfg: dict, study: dict | None = None, samples: pd.DataFrame | None = None) -> Path:
    """Draw the trials, write the anchors, ``study.json`` and the self-contained ``study.html``
    under ``<runs_dir>/listening/``; returns the path of study.json. Deterministic: the same
    samples and study give the same files (and the same study id)."""
    study = study or study_config(cfg)
    runs = Layout.of(cfg).runs
    samples = load_samples(cfg) if samples is None else samples
    trials = draw_trials(samples, study)
    out = listening_dir(cfg)
    (out / "anchors").mkdir(parents=True, exist_ok=True)
    for t in trials[trials["is_catch"]].itertuples():
        y, sr = load_clip(runs / t.clip_a, max_seconds=study["max_seconds"], max_sr=None)
        seed = int(hashlib.sha256(t.pair_id.encode()).hexdigest()[:8], 16)
        sf.write(runs / t.clip_b, degrade(y, sr, seed=seed), sr, subtype="FLOAT")
    digest = hashlib.sha1(trials.to_json(orient="records").encode()).hexdigest()[:8]
    study_id = study["study_id"] or f"{cfg.get('name', 'study')}-{digest}"
    primary = resolve_primary(trials, study)
    pairs = study_pairs(trials, study["questions"], primary)
    doc = {"study_id": study_id, "created_for_profile": cfg.get("name"), "questions": study["questions"],
           "catch_question": study["catch_question"], "min_raters": MIN_RATERS, "max_catch_fail": MAX_CATCH_FAIL,
           "sesoi": SESOI, "primary": {"arm_a": primary[0], "arm_b": primary[1], "question": primary[2]},
           "analysis": "win rate per comparison x question; 95 % CI clustered by rater and training seed "
                       "(Cameron-Gelbach-Miller), t with min(raters, seeds) - 1 df; the primary row at alpha 0.05, "
                       "the others Holm-corrected and gated on the primary (study.family_adjust)",
           "settings": {k: v for k, v in study.items() if k not in ("questions",)},
           "pairs": json.loads(pairs.to_json(orient="records"))}
    (out / "study.json").write_text(json.dumps(doc, indent=1))
    (out / "study.html").write_text(build_page(doc, runs, study["target_dbfs"], study["max_seconds"]), encoding="utf-8")
    return out / "study.json"


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


def build_page(doc: dict, runs_dir: str | Path, target_dbfs: float = -20.0, max_seconds: float | None = 10.0) -> str:
    """The self-contained study page: `PAGE_TEMPLATE` with the study's data inlined.

    The page carries the study id, the questions, each trial's caption and its two clip numbers
    (clip 1 is arm_a's clip when ``page_first`` is "a") and a stratum number per (comparison,
    page_first) — no arm name, no catch flag. The clips are numbered in a random order, each a
    loudness-matched MP3 data URI."""
    trials = trials_of(doc["pairs"] if isinstance(doc["pairs"], pd.DataFrame) else pd.DataFrame(doc["pairs"]))
    paths = sorted(set(trials["clip_a"]) | set(trials["clip_b"]))
    rng = np.random.default_rng(int(hashlib.sha256(doc["study_id"].encode()).hexdigest()[:8], 16))
    number = {p: i for i, p in enumerate(rng.permutation(paths).tolist())}
    strata = sorted({(c, f) for c, f in zip(trials["comparison"], trials["page_first"])})
    stratum = {s: i for i, s in enumerate(rng.permutation(len(strata)).tolist())}
    stratum = {s: stratum[i] for i, s in enumerate(strata)}
    page_trials = []
    for t in trials.itertuples():
        first, second = (t.clip_a, t.clip_b) if t.page_first == "a" else (t.clip_b, t.clip_a)
        page_trials.append({"id": t.pair_id, "caption": str(t.caption), "clips": [number[first], number[second]],
                            "g": stratum[(t.comparison, t.page_first)]})
    clips = [""] * len(paths)
    for p, i in number.items():
        clips[i] = clip_data_uri(Path(runs_dir) / p, target_dbfs, max_seconds)
    data = {"study_id": doc["study_id"], "questions": [{"id": q["id"], "text": q["text"]} for q in doc["questions"]],
            "trials": page_trials, "clips": clips, "columns": list(PAGE_COLUMNS)}
    blob = json.dumps(data).replace("</", "<\\/")
    return PAGE_TEMPLATE.replace("__STUDY_ID__", html.escape(doc["study_id"])).replace("__DATA__", blob)


# ----------------------------------------------------------------------------- votes


def read_votes(path: str | Path) -> pd.DataFrame:
    """votes.csv as strings (empty with the right columns when missing)."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=list(VOTE_COLUMNS))
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _parse_rows(path: Path, doc: dict) -> list[dict]:
    """The rows of one returned CSV as votes (VOTE_COLUMNS), or StudyError naming file and line.

    Accepted layouts: the page's download (PAGE_COLUMNS: ``clip_at_a`` says which clip, 1 or 2,
    played as A) and votes.csv's own (VOTE_COLUMNS, e.g. from a colleague's notebook). Every row:
    this study's id, a known pair_id and question, a choice among A/B/tie, a non-empty rater, an
    ISO timestamp; in the votes layout the preferred arm and catch flag must match study.json."""
    pairs = doc["pairs"]
    by_key = {(r["pair_id"], r["question"]): r for r in pairs.to_dict("records")}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise StudyError(f"{path}: cannot read ({e})") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise StudyError(f"{path}, line 1: empty file (expected a header {list(PAGE_COLUMNS)})")
    header = [h.strip() for h in header]
    if set(header) == set(PAGE_COLUMNS) and len(header) == len(PAGE_COLUMNS):
        layout = "page"
    elif set(header) == set(VOTE_COLUMNS) and len(header) == len(VOTE_COLUMNS):
        layout = "votes"
    else:
        raise StudyError(f"{path}, line 1: unexpected header {header}; expected {list(PAGE_COLUMNS)} "
                         f"(the study page's download) or {list(VOTE_COLUMNS)}")
    out = []
    for line, values in enumerate(reader, start=2):
        if not values or all(not v.strip() for v in values):
            continue
        where = f"{path}, line {line}"
        if len(values) != len(header):
            raise StudyError(f"{where}: {len(values)} fields, expected {len(header)}")
        r = {k: v.strip() for k, v in zip(header, values)}
        if r["study_id"] != doc["study_id"]:
            raise StudyError(f"{where}: study_id {r['study_id']!r} is not this study's ({doc['study_id']!r})")
        if not r["rater"]:
            raise StudyError(f"{where}: empty rater")
        p = by_key.get((r["pair_id"], r["question"]))
        if p is None:
            raise StudyError(f"{where}: unknown pair_id/question {r['pair_id']!r}/{r['question']!r} for this study")
        if r["choice"] not in CHOICES:
            raise StudyError(f"{where}: choice {r['choice']!r} is not one of {CHOICES}")
        try:
            datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00"))
        except ValueError:
            raise StudyError(f"{where}: timestamp {r['timestamp']!r} is not an ISO date-time") from None
        first, second = (p["arm_a"], p["arm_b"]) if p["page_first"] == "a" else (p["arm_b"], p["arm_a"])
        if layout == "page":
            if r["clip_at_a"] not in ("1", "2"):
                raise StudyError(f"{where}: clip_at_a {r['clip_at_a']!r} is not 1 or 2")
            at_a, at_b = (first, second) if r["clip_at_a"] == "1" else (second, first)
            preferred = {"A": at_a, "B": at_b, "tie": ""}[r["choice"]]
        else:
            preferred = r["preferred_arm"]
            ok = preferred in (p["arm_a"], p["arm_b"]) if r["choice"] != "tie" else preferred == ""
            if not ok:
                raise StudyError(f"{where}: preferred_arm {preferred!r} does not fit choice {r['choice']!r} "
                                 f"of pair {r['pair_id']} ({p['arm_a']} vs {p['arm_b']})")
            if r["is_catch"] not in ("True", "False") or (r["is_catch"] == "True") != bool(p["is_catch"]):
                raise StudyError(f"{where}: is_catch {r['is_catch']!r} does not match study.json ({p['is_catch']})")
        out.append({"study_id": r["study_id"], "rater": r["rater"], "pair_id": r["pair_id"], "question": r["question"],
                    "choice": r["choice"], "preferred_arm": preferred, "is_catch": str(bool(p["is_catch"])),
                    "timestamp": r["timestamp"]})
    return out


def import_votes(study_path: str | Path, files: Sequence[str | Path], votes_path: str | Path | None = None) -> int:
    """Merge returned CSVs into votes.csv (default: next to study.json); returns the rows added.

    All or nothing: every row of every file is checked first (`_parse_rows`); the first bad row
    raises StudyError naming the file and the line, and votes.csv is left as it was. Rows already
    in votes.csv (identical in every column) are not added again, so importing a file twice adds
    nothing. A row with the same (study, rater, pair, question, timestamp) as one already in
    votes.csv or earlier in the files, but another answer, is a conflict — one answer cannot have
    been given twice at the same instant, so one of the copies was edited — and is refused
    (StudyError naming the file, the rater and the pair). A changed answer given later has a later
    timestamp and is imported (the latest counts: `latest_votes`). The file is rewritten through a
    temporary file and an atomic rename."""
    study_path = Path(study_path)
    doc = load_study(study_path)
    votes_path = Path(votes_path) if votes_path else study_path.parent / "votes.csv"
    new = []
    for f in files:
        if not Path(f).exists():
            raise FileNotFoundError(f"{f}: no such file")
        new.extend((Path(f), r) for r in _parse_rows(Path(f), doc))
    old = read_votes(votes_path)
    seen = set(map(tuple, old[list(VOTE_COLUMNS)].astype(str).to_numpy().tolist())) if len(old) else set()
    when = ("study_id", "rater", "pair_id", "question", "timestamp")
    answer_at = {tuple(r[c] for c in when): (r["choice"], r["preferred_arm"], str(votes_path))
                 for r in old.to_dict("records")} if len(old) else {}
    added = []
    for f, r in new:
        at = tuple(r[c] for c in when)
        if at in answer_at and answer_at[at][:2] != (r["choice"], r["preferred_arm"]):
            choice, preferred, where = answer_at[at]
            raise StudyError(f"{f}: rater {r['rater']!r}, pair {r['pair_id']} ({r['question']}) at {r['timestamp']}: "
                             f"answer {r['choice']!r} ({r['preferred_arm'] or 'no preference'}) conflicts with "
                             f"{choice!r} ({preferred or 'no preference'}) with the same timestamp in {where}; one of "
                             f"the two copies was changed. Nothing was imported; remove the wrong copy and import again")
        answer_at[at] = (r["choice"], r["preferred_arm"], str(f))
        key = tuple(r[c] for c in VOTE_COLUMNS)
        if key not in seen:
            seen.add(key)
            added.append(r)
    if added:
        merged = pd.concat([old, pd.DataFrame(added, columns=list(VOTE_COLUMNS))], ignore_index=True)
        atomic_write(votes_path, lambda tmp: merged[list(VOTE_COLUMNS)].to_csv(tmp, index=False))
    return len(added)


def append_vote(votes_path: str | Path, row: dict) -> None:
    """Append one vote (VOTE_COLUMNS) to votes.csv, writing the header when the file is new."""
    append_csv_row(votes_path, row, VOTE_COLUMNS)


# ----------------------------------------------------------------------------- statistics


def _onehot(groups: Sequence | np.ndarray | None, n: int) -> np.ndarray:
    """[n, G] indicator of each pair's cluster (its training seed); None: every pair its own cluster."""
    if groups is None:
        return np.eye(n)
    g = np.asarray(groups)
    if g.shape != (n,):
        raise ValueError(f"groups must have one label per pair ({n}), got shape {g.shape}")
    _, idx = np.unique(g, return_inverse=True)
    H = np.zeros((n, int(idx.max()) + 1 if n else 0))
    H[np.arange(n), idx] = 1.0
    return H


def clustered_win_rate(W: np.ndarray, groups: Sequence | np.ndarray | None = None) -> dict:
    """Win rate and its two-way (rater × training seed) cluster-robust standard error, batched
    over leading axes.

    `W` [..., R, P]: the score of rater r's vote on pair p (1 arm_a, 0 arm_b, 0.5 tie), NaN where
    there is no vote; `groups` [P]: the training seed of each pair (None: each pair its own
    cluster, i.e. clustering by rater and pair). Pairs are nested in seeds, so a seed cluster
    holds every pair of that seed and clustering by seed covers the correlation of votes on one
    pair too.

    Why two-way: votes of one rater share the rater's leaning (u_r), votes on clips of one
    training seed share that seed's quality (s_k: a seed can simply train a better or worse
    adapter), and the claim is about the arm, i.e. about a new rater *and* a new seed. With
    e = w − ŵ over the N votes, C_rk = Σ_{votes of rater r on seed k} e, and the one-way cluster
    ("sandwich") variance V_G = G/(G−1) · Σ_g (Σ_{i∈g} e_i)² / N² (CR1: G clusters with a vote,
    G/(G−1) the small-sample factor), the variance of ŵ is Cameron, Gelbach & Miller's (2011,
    J. Bus. Econ. Stat. 29:238, eq. 2.11) two-way estimator

        V = V_rater + V_seed − V_rater∩seed,  floored at max(V_rater, V_seed)

    (the rater×seed cells are counted in both one-way terms, so they are taken out once; the floor
    keeps V positive and never below either one-way variance). In a balanced design (every rater
    on every pair, the same number of pairs per seed) V_seed is s²(seed means)/S and V_rater
    s²(rater means)/R, the textbook variances of a mean over S seeds and R raters, so a t
    reference with S − 1 (R − 1) degrees of freedom is exact under normal effects when one of the
    two dominates. Neither dominance is known, so df = min(R, S) − 1: the conservative end of
    Satterthwaite's range (Cameron & Miller 2015, §VI.C recommend G − 1 with the smaller G). With
    few seeds this gives wide intervals on purpose: the seed count, not the number of raters,
    bounds what a study can show when arms differ by seed. Calibrated by simulation with rater
    and seed effects in tests/test_listen_study.py and benchmarks/bench_listening.py.

    Returns arrays ``estimate, se, df, n_votes, n_raters, n_seeds`` (NaN where there are no
    votes; ``n_seeds`` counts the clusters of `groups`, pairs when it is None) and ``n_pairs``.
    """
    W = np.asarray(W, dtype=np.float64)
    M = np.isfinite(W)
    X = np.where(M, W, 0.0)
    H = _onehot(groups, W.shape[-1])
    N = M.sum(axis=(-2, -1)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        est = X.sum(axis=(-2, -1)) / N
        E = np.where(M, X - est[..., None, None], 0.0)
        C = E @ H                                   # [..., R, S]: residual sums per rater × seed cell
        K = M.astype(np.float64) @ H                # votes per cell
        nr = (K > 0).any(axis=-1).sum(axis=-1)
        ns = (K > 0).any(axis=-2).sum(axis=-1)
        ncell = (K > 0).sum(axis=(-2, -1))
        npr = M.any(axis=-2).sum(axis=-1)

        def one_way(sums: np.ndarray, g: np.ndarray) -> np.ndarray:
            return (sums**2).sum(axis=-1) / N**2 * g / np.maximum(g - 1, 1)

        v_r = one_way(C.sum(axis=-1), nr)
        v_s = one_way(C.sum(axis=-2), ns)
        v_rs = one_way(C.reshape(*C.shape[:-2], -1), ncell)
        var = np.maximum(np.maximum(v_r + v_s - v_rs, v_r), v_s)
    return {"estimate": est, "se": np.sqrt(var), "df": np.minimum(nr, ns) - 1, "n_votes": N.astype(int),
            "n_raters": nr, "n_seeds": ns, "n_pairs": npr}


def t_interval(estimate, se, df, level: float):
    """estimate ± t_{(1+level)/2, df}·se (NaN where df < 1)."""
    df = np.asarray(df, dtype=np.float64)
    q = np.where(df >= 1, sps.t.ppf((1 + level) / 2, np.maximum(df, 1)), np.nan)
    return np.asarray(estimate) - q * se, np.asarray(estimate) + q * se


def t_pvalue(estimate, se, df, null: float = 0.5):
    """Two-sided p of H0: win rate = `null`, 2·P(T_df > |ŵ − null|/se); vectorised. se = 0 gives
    p = 0 (all votes alike, ŵ ≠ null) or 1 (ŵ = null); df < 1 or NaN gives NaN. p < α exactly
    when the (1 − α) `t_interval` excludes `null`."""
    est, se, df = (np.asarray(x, dtype=np.float64) for x in (estimate, se, df))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.abs(est - null) / se
        p = np.where(se > 0, 2 * sps.t.sf(z, np.maximum(df, 1)), np.where(est == null, 1.0, 0.0))
    return np.where((df >= 1) & np.isfinite(est) & np.isfinite(se), p, np.nan)


def holm_adjust(p: np.ndarray) -> np.ndarray:
    """Holm (1979) adjusted p-values along the last axis, batched; NaN stays NaN and does not count
    towards m. Sorted p_(1) ≤ … ≤ p_(m): p̃_(i) = max_{j ≤ i} min(1, (m − j + 1)·p_(j)) (the same as
    `stats.holm`, vectorised for the simulations)."""
    p = np.asarray(p, dtype=np.float64)
    ok = np.isfinite(p)
    m = ok.sum(axis=-1, keepdims=True)
    order = np.argsort(np.where(ok, p, np.inf), axis=-1, kind="stable")
    ps = np.take_along_axis(np.where(ok, p, np.inf), order, axis=-1)
    rank = np.arange(p.shape[-1])
    with np.errstate(invalid="ignore"):
        scaled = np.minimum(1.0, (m - rank) * ps)
    scaled = np.where(np.isfinite(ps), scaled, np.nan)
    adj_sorted = np.fmax.accumulate(scaled, axis=-1)
    adj_sorted = np.where(np.isfinite(ps), adj_sorted, np.nan)
    out = np.empty_like(adj_sorted)
    np.put_along_axis(out, order, adj_sorted, axis=-1)
    return out


def family_adjust(p: np.ndarray, primary: np.ndarray | int | None) -> np.ndarray:
    """Multiplicity-adjusted p over the study's listener rows (last axis), batched.

    With a pre-declared primary row (its index, or a boolean mask with one True): serial
    gatekeeping (Dmitrienko & Tamhane 2007, Stat. Med. 26:2465). The primary is tested alone at α
    (p̃ = p); the other rows are Holm-adjusted among themselves and can only be decisive once the
    primary is: p̃ = max(p_primary, p_Holm). The family-wise error rate is ≤ α: if the primary's
    null is true, any false decision needs the primary rejected first (probability ≤ α); if it is
    false, false decisions can only come from the other rows, and Holm holds them at α. Without
    a primary (or when it has no p): plain Holm over all rows. NaN p (a row with too few votes)
    does not count towards the family.
    """
    p = np.asarray(p, dtype=np.float64)
    if primary is None:
        return holm_adjust(p)
    mask = np.zeros(p.shape[-1], dtype=bool)
    mask[primary] = True
    if mask.sum() != 1:
        raise ValueError(f"exactly one primary row, got {int(mask.sum())}")
    p_primary = p[..., mask]                                   # [..., 1]
    rest = holm_adjust(np.where(mask, np.nan, p))
    gated = np.where(np.isfinite(p_primary), np.fmax(rest, p_primary), np.nan)
    gated = np.where(np.isfinite(rest), gated, np.nan)
    out = np.where(mask, p, gated)
    no_primary = ~np.isfinite(p_primary[..., 0])
    if np.any(no_primary):                                     # no primary verdict: Holm over all rows
        out = np.where(no_primary[..., None], holm_adjust(p), out)
    return out


def decide_win_rate(ci_low, ci_high, eq_low, eq_high, n_raters, sesoi: float = SESOI,
                    min_raters: int = MIN_RATERS, p_adj=None, alpha: float = 0.05):
    """The listening verdict on a win rate (null 0.5); vectorised. Lakens, Scheel & Isager's (2018)
    four outcomes, equivalence checked first (as `stats.decide`):

    - 'too few votes' below `min_raters` screened raters;
    - 'equivalent'   the 90 % CI [eq_low, eq_high] lies inside 0.5 ± sesoi (two one-sided tests
                     at 5 %, Schuirmann 1987): a preference, if any, is negligible — whatever the
                     95 % CI says (when it also excludes 0.5 the difference is real but negligible);
    - 'supported'    else the 95 % CI [ci_low, ci_high] lies above 0.5 (arm_a preferred) and,
                     when `p_adj` is given, the multiplicity-adjusted p < `alpha`;
    - 'contradicted' the same below 0.5;
    - 'inconclusive' otherwise, including a NaN interval.
    """
    lo, hi = np.asarray(ci_low, dtype=float), np.asarray(ci_high, dtype=float)
    elo, ehi = np.asarray(eq_low, dtype=float), np.asarray(eq_high, dtype=float)
    ok = np.isfinite(lo) & np.isfinite(hi)
    eq = np.isfinite(elo) & np.isfinite(ehi) & (elo > 0.5 - sesoi) & (ehi < 0.5 + sesoi)
    passes = np.ones(np.broadcast(lo, hi).shape, dtype=bool)
    if p_adj is not None:
        passes = np.asarray(p_adj, dtype=float) < alpha      # NaN: False
    sup = ok & (lo > 0.5) & passes
    con = ok & (hi < 0.5) & passes
    verdict = np.select([eq, sup, con], ["equivalent", "supported", "contradicted"], "inconclusive")
    out = np.where(np.asarray(n_raters) < min_raters, "too few votes", verdict)
    return str(out) if out.ndim == 0 else out


def screen_raters(n_failed, n_catch, max_fail: float = MAX_CATCH_FAIL):
    """True where a rater is excluded: failed share of catch trials above `max_fail` (a catch trial
    is failed unless the original clip is preferred to its degraded copy; a tie fails). A rater
    with no catch trial answered is kept (and reported as unscreened by `catch_table`)."""
    n_failed, n_catch = np.asarray(n_failed, dtype=float), np.asarray(n_catch, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (n_catch > 0) & (n_failed / np.maximum(n_catch, 1) > max_fail)


def latest_votes(votes: pd.DataFrame) -> pd.DataFrame:
    """One vote per (rater, pair_id, question): the latest by timestamp (a changed answer replaces
    the earlier one)."""
    if votes.empty:
        return votes
    v = votes.assign(_t=pd.to_datetime(votes["timestamp"], utc=True, errors="coerce", format="ISO8601"))
    return v.sort_values("_t", kind="stable").drop_duplicates(["rater", "pair_id", "question"], keep="last").drop(columns="_t")


def catch_table(votes: pd.DataFrame, pairs: pd.DataFrame, catch_question: str = "preference",
                max_fail: float = MAX_CATCH_FAIL) -> pd.DataFrame:
    """Per rater: ``rater, n_catch, n_failed, pass_rate, excluded`` over the catch trials'
    `catch_question` (every rater who voted appears; n_catch 0 = unscreened)."""
    v = latest_votes(votes)
    raters = sorted(set(v["rater"])) if len(v) else []
    c = v.merge(pairs[pairs["is_catch"].astype(bool)][["pair_id", "question", "arm_a"]], on=["pair_id", "question"])
    c = c[c["question"] == catch_question]
    failed = (c["preferred_arm"] != c["arm_a"]).groupby(c["rater"]).agg(["size", "sum"])
    t = pd.DataFrame({"rater": raters})
    t["n_catch"] = t["rater"].map(failed["size"]).fillna(0).astype(int)
    t["n_failed"] = t["rater"].map(failed["sum"]).fillna(0).astype(int)
    with np.errstate(invalid="ignore", divide="ignore"):
        t["pass_rate"] = 1 - t["n_failed"] / t["n_catch"].where(t["n_catch"] > 0)
    t["excluded"] = screen_raters(t["n_failed"], t["n_catch"], max_fail)
    return t


VERDICT_COLUMNS = ["arm_a", "arm_b", "question", "n_votes", "n_raters", "win_rate", "ci_low", "ci_high",
                   "position_bias", "verdict", "basis", "n_seeds", "ci90_low", "ci90_high", "p", "p_adj", "role", "note"]


def _basis(verdict: str, lo: float, hi: float, elo: float, ehi: float, p_adj: float, sesoi: float) -> str:
    """The interval (and test) the verdict was read from, labelled, for printing beside it."""
    ci95 = f"95 % CI [{lo:.3f}, {hi:.3f}]"
    ci90 = f"90 % CI [{elo:.3f}, {ehi:.3f}]"
    if verdict == "equivalent":
        neg = "; 95 % CI excludes 0.5: real but negligible" if (lo > 0.5 or hi < 0.5) else ""
        return f"{ci90} inside 0.5 ± {sesoi:g}{neg}"
    if verdict in ("supported", "contradicted"):
        return f"{ci95} excludes 0.5, p_adj {p_adj:.3g}"
    if verdict == "too few votes":
        return "too few screened raters"
    if np.isfinite(lo) and (lo > 0.5 or hi < 0.5):
        return f"{ci95} excludes 0.5 but p_adj {p_adj:.3g} ≥ 0.05 (multiplicity)"
    return f"{ci95} holds 0.5; {ci90} not inside 0.5 ± {sesoi:g}" if np.isfinite(lo) else "no interval (one seed or one rater)"


def primary_of(pairs: pd.DataFrame) -> tuple[str, str, str] | None:
    """(arm_a, arm_b, question) of the pre-declared primary row: the pairs flagged ``primary`` in
    study.json (see `draw_trials`/`study_pairs`), None for a study without one."""
    if "primary" not in pairs.columns:
        return None
    hit = pairs[pairs["primary"].fillna(False).astype(bool) & ~pairs["is_catch"].astype(bool)]
    keys = set(zip(hit["arm_a"], hit["arm_b"], hit["question"]))
    if len(keys) > 1:
        raise StudyError(f"study pairs declare more than one primary comparison × question: {sorted(keys)}")
    return next(iter(keys)) if keys else None


def study_verdicts(votes: pd.DataFrame, pairs: pd.DataFrame, catch_question: str = "preference",
                   min_raters: int = MIN_RATERS, max_catch_fail: float = MAX_CATCH_FAIL,
                   sesoi: float = SESOI, alpha: float = 0.05, notes: dict | None = None) -> pd.DataFrame:
    """One row per (arm_a, arm_b, question) of the study's non-catch pairs.

    `votes`: votes.csv's rows; `pairs`: study.json's pairs (with ``seed`` and, for a study made
    since the seed-clustered analysis, ``primary``). The latest vote per (rater, pair, question)
    counts; raters failing more than `max_catch_fail` of their catch trials are excluded
    (`catch_table`, kept in ``.attrs["catch"]`` and ``.attrs["excluded"]``). Columns:

    - ``arm_a, arm_b, question, n_votes, n_raters, win_rate`` (mean score for arm_a, a tie = ½);
    - ``ci_low, ci_high``: the 95 % interval, `clustered_win_rate` with raters and training seeds
      as clusters, t with min(raters, seeds) − 1 df; ``ci90_low, ci90_high`` the 90 % one (the
      equivalence test's); ``n_seeds`` the seeds behind the pairs;
    - ``p`` (two-sided, null 0.5) and ``p_adj``: `family_adjust` over the rows that reach an
      interval — the primary row (``role`` "primary", flagged in study.json) alone at `alpha`, the
      others Holm-corrected and gated on the primary (``role`` "secondary"), so the family-wise
      rate of false decisive verdicts over all rows is ≤ `alpha`;
    - ``position_bias`` (share of "A" among the A/B choices), ``verdict`` (`decide_win_rate`,
      equivalence first), ``basis`` (the labelled interval the verdict was read from) and ``note``
      (`notes[question]`, e.g. the development question's caveat).
    """
    catch = catch_table(votes, pairs, catch_question, max_catch_fail)
    excluded = set(catch.loc[catch["excluded"], "rater"])
    v = latest_votes(votes)
    v = v[~v["rater"].isin(excluded)] if len(v) else v
    real = pairs[~pairs["is_catch"].astype(bool)]
    primary = primary_of(pairs)
    notes = notes or {}
    rows = []
    for (arm_a, arm_b, question), grp in real.groupby(["arm_a", "arm_b", "question"], sort=False):
        vv = v.merge(grp[["pair_id", "question", "seed"]], on=["pair_id", "question"]) if len(v) else v
        row = {"arm_a": arm_a, "arm_b": arm_b, "question": question}
        if len(vv) == 0:
            r = {"estimate": np.nan, "se": np.nan, "df": 0, "n_votes": 0, "n_raters": 0, "n_seeds": 0}
            pos = np.nan
        else:
            score = np.where(vv["choice"] == "tie", 0.5, (vv["preferred_arm"] == arm_a).astype(float))
            raters = sorted(set(vv["rater"]))
            pids = sorted(set(vv["pair_id"]))
            seed_of = dict(zip(grp["pair_id"], grp["seed"]))
            W = np.full((len(raters), len(pids)), np.nan)
            W[[raters.index(x) for x in vv["rater"]], [pids.index(x) for x in vv["pair_id"]]] = score
            r = {k: (v_.item() if hasattr(v_, "item") else v_)
                 for k, v_ in clustered_win_rate(W, [seed_of[p] for p in pids]).items()}
            ab = vv[vv["choice"].isin(["A", "B"])]
            pos = float((ab["choice"] == "A").mean()) if len(ab) else np.nan
        lo, hi = t_interval(r["estimate"], r["se"], r["df"], 0.95)
        elo, ehi = t_interval(r["estimate"], r["se"], r["df"], 1 - 2 * alpha)
        p = t_pvalue(r["estimate"], r["se"], r["df"]) if r["n_raters"] >= min_raters else np.nan
        row.update(n_votes=int(r["n_votes"]), n_raters=int(r["n_raters"]), win_rate=float(r["estimate"]),
                   ci_low=float(lo), ci_high=float(hi), position_bias=pos, n_seeds=int(r["n_seeds"]),
                   ci90_low=float(elo), ci90_high=float(ehi), p=float(p),
                   role="primary" if (arm_a, arm_b, question) == primary else "secondary",
                   note=str(notes.get(question, "")))
        rows.append(row)
    out = pd.DataFrame(rows, columns=VERDICT_COLUMNS)
    is_primary = (out["role"] == "primary").to_numpy()
    out["p_adj"] = (family_adjust(out["p"].to_numpy(dtype=float), is_primary if is_primary.any() else None)
                    if len(out) else [])
    if len(out) and not is_primary.any():
        out["role"] = "holm"  # no primary declared (or none drawn): Holm over every row
    out["verdict"] = (decide_win_rate(out["ci_low"], out["ci_high"], out["ci90_low"], out["ci90_high"],
                                      out["n_raters"], sesoi, min_raters, out["p_adj"], alpha) if len(out) else [])
    out["basis"] = [_basis(r.verdict, r.ci_low, r.ci_high, r.ci90_low, r.ci90_high, r.p_adj, sesoi)
                    for r in out.itertuples()]
    arm_rank = {a: i for i, a in enumerate(("none", "minsnr", *CONTROL_ARMS))}
    q_rank = {q: i for i, q in enumerate(dict.fromkeys(pairs["question"]))}
    out["_arm"] = [arm_rank.get(a, len(arm_rank)) for a in out["arm_b"]]  # none, minsnr, controls, others
    out["_q"] = [q_rank[q] for q in out["question"]]                       # the study's question order
    out = out.sort_values(["arm_a", "_arm", "arm_b", "_q"]).drop(columns=["_arm", "_q"]).reset_index(drop=True)
    out.attrs["catch"] = catch
    out.attrs["excluded"] = sorted(excluded)
    out.attrs["primary"] = primary
    return out


def bt_strengths(wins: np.ndarray, prior: float = 0.5, iters: int = 500, tol: float = 1e-10) -> np.ndarray:
    """Bradley–Terry log-strengths from a wins matrix (wins[i, j] = times i was preferred to j,
    a tie counting ½ to each), batched over leading axes; centred to mean 0.

    P(i beats j) = p_i / (p_i + p_j); fitted by Hunter's (2004) MM iteration
    p_i ← W_i / Σ_j n_ij / (p_i + p_j) with W_i the wins of i and n_ij the games between i and j.
    `prior` pseudo-wins are added both ways to every pair that met (a weak prior towards equal
    strength), so an arm that won every vote still gets a finite strength."""
    wins = np.asarray(wins, dtype=np.float64)
    met = (wins + np.swapaxes(wins, -1, -2)) > 0
    wins = wins + prior * met
    games = wins + np.swapaxes(wins, -1, -2)
    total = wins.sum(axis=-1)
    p = np.ones(wins.shape[:-1])
    for _ in range(iters):
        denom = (games / (p[..., :, None] + p[..., None, :])).sum(axis=-1)
        new = np.where(denom > 0, total / np.where(denom > 0, denom, 1), p)
        new = new / np.exp(np.mean(np.log(new), axis=-1, keepdims=True))
        if np.max(np.abs(new - p)) < tol:
            p = new
            break
        p = new
    return np.log(p)


def bradley_terry(votes: pd.DataFrame, pairs: pd.DataFrame, question: str, n_boot: int = 1000,
                  seed: int = 0) -> pd.DataFrame:
    """A Bradley–Terry ranking of the arms on one question (catch trials and excluded raters left
    out), with 95 % percentile intervals from resampling raters (`n_boot` bootstrap draws, seeded).

    Returns ``arm, strength, ci_low, ci_high`` (log-strength, mean 0 over the arms; a difference
    of 1 between two arms means odds e ≈ 2.7 : 1 that the first is preferred), sorted strongest
    first. Exploratory: with every comparison against one arm, it orders what the pairwise win
    rates already show; the verdicts come from `study_verdicts`."""
    catch = catch_table(votes, pairs)
    v = latest_votes(votes)
    v = v[~v["rater"].isin(set(catch.loc[catch["excluded"], "rater"]))] if len(v) else v
    real = pairs[~pairs["is_catch"].astype(bool) & (pairs["question"] == question)]
    v = v.merge(real[["pair_id", "question", "arm_a", "arm_b"]], on=["pair_id", "question"]) if len(v) else v
    arms = sorted(set(real["arm_a"]) | set(real["arm_b"]))
    if len(v) == 0 or len(arms) < 2:
        return pd.DataFrame(columns=["arm", "strength", "ci_low", "ci_high"])
    idx = {a: i for i, a in enumerate(arms)}
    raters = sorted(set(v["rater"]))
    per_rater = np.zeros((len(raters), len(arms), len(arms)))
    for r in v.itertuples():
        k, a, b = raters.index(r.rater), idx[r.arm_a], idx[r.arm_b]
        if r.choice == "tie":
            per_rater[k, a, b] += 0.5
            per_rater[k, b, a] += 0.5
        elif r.preferred_arm == r.arm_a:
            per_rater[k, a, b] += 1
        else:
            per_rater[k, b, a] += 1
    est = bt_strengths(per_rater.sum(axis=0))
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(raters), np.full(len(raters), 1 / len(raters)), size=n_boot)
    boot = bt_strengths(np.einsum("br,rij->bij", counts, per_rater))
    out = pd.DataFrame({"arm": arms, "strength": est, "ci_low": np.percentile(boot, 2.5, axis=0),
                        "ci_high": np.percentile(boot, 97.5, axis=0)})
    return out.sort_values("strength", ascending=False).reset_index(drop=True)


def question_notes(doc: dict) -> dict:
    """Each question's note (study.json's ``note``; the development question gets `STRUCTURE_NOTE`
    also in a study file written before notes existed)."""
    notes = {q["id"]: q.get("note", "") for q in doc["questions"]}
    if "development" in notes and not notes["development"]:
        notes["development"] = STRUCTURE_NOTE
    return notes


def study_summary(cfg: dict) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(verdicts, catch table, study doc) for a profile's listening folder (votes.csv may be absent)."""
    doc = load_study(listening_dir(cfg) / "study.json")
    votes = read_votes(listening_dir(cfg) / "votes.csv")
    votes = votes[votes["study_id"] == doc["study_id"]] if len(votes) else votes
    table = study_verdicts(votes, doc["pairs"], doc.get("catch_question", "preference"), notes=question_notes(doc))
    return table, table.attrs["catch"], doc


LISTENER_COLUMNS = ["claim", "role", "statement", "evidence", "direction", "estimate", "ci_lo", "ci_hi", "p", "p_holm",
                    "n", "verdict", "note"]


def listener_rows(cfg: dict) -> pd.DataFrame:
    """The scorecard's "listeners" rows, one per (comparison, question), only when the profile has
    a study and votes (else an empty frame): the scorecard's columns with ``claim`` "listeners",
    the question's text and its claim tag as ``statement``, the win rate of arm_a as ``estimate``
    (null 0.5, not 0) with its 95 % interval clustered by rater and training seed, ``p`` and
    ``p_holm`` (`family_adjust`: the primary alone, the rest Holm-corrected and gated on it),
    ``n`` the votes, the study's verdict, ``role`` "listeners (primary)" or "listeners" and a
    note naming the family and, for the verdict, the interval it used (90 % for "equivalent").
    Kept apart from the metric-based claims (they are people's judgements, not metrics)."""
    if not (listening_dir(cfg) / "study.json").exists() or not (listening_dir(cfg) / "votes.csv").exists():
        return pd.DataFrame(columns=LISTENER_COLUMNS)
    table, catch, doc = study_summary(cfg)
    if table["n_votes"].sum() == 0:
        return pd.DataFrame(columns=LISTENER_COLUMNS)
    text = {q["id"]: f"{q['text']} [{q.get('claim', '')}]" for q in doc["questions"]}
    n_family = int(np.isfinite(table["p"]).sum())
    family = (f"family: {n_family} listener rows, the primary at α = 0.05, the rest Holm-corrected and gated on it"
              if (table["role"] == "primary").any() else f"family: {n_family} listener rows, Holm")
    rows = []
    for r in table.itertuples():
        note = (f"{'PRIMARY (pre-declared in study.json); ' if r.role == 'primary' else ''}study {doc['study_id']}; "
                f"{r.basis}; {family}; {r.n_seeds} training seeds; {len(table.attrs['excluded'])} raters excluded by "
                f"catch trials; position bias {r.position_bias:.2f}" + (f"; {r.note}" if r.note else ""))
        rows.append({"claim": "listeners", "role": "listeners (primary)" if r.role == "primary" else "listeners",
                     "statement": text.get(r.question, r.question),
                     "evidence": f"{r.arm_a} vs {r.arm_b}: win rate of {r.arm_a} (0.5 = no preference), "
                                 f"{r.n_raters} raters, CI clustered by rater and training seed",
                     "direction": "+", "estimate": r.win_rate, "ci_lo": r.ci_low, "ci_hi": r.ci_high, "p": r.p,
                     "p_holm": r.p_adj, "n": r.n_votes, "verdict": r.verdict, "note": note})
    return pd.DataFrame(rows, columns=LISTENER_COLUMNS)


def plot_study(table: pd.DataFrame, catch: pd.DataFrame, sesoi: float = SESOI):
    """Figure: win rate with its 95 % interval per comparison and question (0.5 = no preference,
    the shaded band 0.5 ± sesoi), and the catch-trial pass rate per rater (excluded in red)."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 0.6 * max(3, len(table)) + 1.5),
                                   gridspec_kw={"width_ratios": [3, 2]})
    labels = [f"{r.arm_a} vs {r.arm_b}\n{r.question}" for r in table.itertuples()]
    y = np.arange(len(table))
    ax1.axvspan(0.5 - sesoi, 0.5 + sesoi, color="0.9")
    ax1.axvline(0.5, color="0.4", lw=1)
    if len(table):
        err = np.vstack([table["win_rate"] - table["ci_low"], table["ci_high"] - table["win_rate"]])
        ax1.errorbar(table["win_rate"], y, xerr=np.nan_to_num(err), fmt="o", capsize=4)
        for yi, r in zip(y, table.itertuples()):
            ax1.annotate(f"{r.verdict} (n={r.n_votes}, {r.n_raters} raters)", (0.02, yi), xycoords=("axes fraction", "data"),
                         fontsize=8, va="bottom")
    ax1.set_yticks(y, labels)
    ax1.set_xlim(0, 1)
    ax1.set_ylim(len(table) - 0.5, -0.5)
    ax1.set_xlabel("win rate of arm_a (95 % CI, clustered by rater and training seed)")
    if len(catch):
        colors = ["tab:red" if e else "tab:green" for e in catch["excluded"]]
        names = [f"{r} (excluded)" if e else str(r) for r, e in zip(catch["rater"], catch["excluded"])]
        ax2.barh(names, catch["pass_rate"].fillna(0), color=colors)
        ax2.axvline(1 - MAX_CATCH_FAIL, color="0.4", ls="--", lw=1)
        ax2.invert_yaxis()
    else:
        ax2.text(0.5, 0.5, "no votes yet", ha="center", va="center", transform=ax2.transAxes)
    ax2.set_xlim(0, 1)
    ax2.set_xlabel("catch-trial pass rate (red: excluded)")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- the live widget


def rater_plan(trials: pd.DataFrame, study_id: str, rater: str) -> pd.DataFrame:
    """This rater's order and positions: the trials shuffled, and ``a_is`` ("a" or "b": whose clip
    plays as A) balanced within each comparison (⌊n/2⌋ or ⌈n/2⌉ with arm_a's clip as A), from a
    generator seeded by sha256(study_id, rater) — the same plan every time this rater opens it."""
    seed = int(hashlib.sha256(f"{study_id}\x00{rater}".encode()).hexdigest()[:16], 16)
    rng = np.random.default_rng(seed)
    t = trials.iloc[rng.permutation(len(trials))].reset_index(drop=True)
    t["a_is"] = ""
    for _, idx in t.groupby("comparison").groups.items():
        idx = list(idx)
        n_a = len(idx) // 2 + int(len(idx) % 2 == 1 and rng.random() < 0.5)
        t.loc[idx, "a_is"] = np.where(rng.permutation(len(idx)) < n_a, "a", "b")
    return t


class StudyAB:
    """The study in a live notebook: one trial at a time (players A and B, loudness-matched), each
    question with the buttons "A", "B", "no preference"; every click appends a vote to votes.csv
    (`append_vote`, with the hidden arm in ``preferred_arm``) and refreshes the summary line.

    `rater` names the person (required; votes of different raters are analysed as different
    people); trials this rater already answered in votes.csv are skipped. Arms stay hidden; at the
    end the study table (`study_verdicts` over all votes) is shown. ``choose(answer)`` is the
    buttons' handler, so tests can vote without a front end."""

    def __init__(self, study_path: str | Path, rater: str, runs_dir: str | Path | None = None,
                 votes_path: str | Path | None = None, target_dbfs: float = -20.0) -> None:
        import ipywidgets as widgets

        if not str(rater).strip():
            raise ValueError("rater is empty: set `rater = \"your name\"` in the parameters cell")
        self.study_path = Path(study_path)
        self.doc = load_study(self.study_path)
        self.runs_dir = Path(runs_dir) if runs_dir else self.study_path.parent.parent
        self.votes_path = Path(votes_path) if votes_path else self.study_path.parent / "votes.csv"
        self.rater = str(rater).strip()
        self.target_dbfs = target_dbfs
        self.questions = self.doc["questions"]
        plan = rater_plan(trials_of(self.doc["pairs"]), self.doc["study_id"], self.rater)
        done = read_votes(self.votes_path)
        done = done[(done["rater"] == self.rater) & (done["study_id"] == self.doc["study_id"])]
        answered = done.groupby("pair_id")["question"].nunique() if len(done) else pd.Series(dtype=int)
        full = set(answered[answered >= len(self.questions)].index)
        self.n_total = len(plan)
        self.plan = plan[~plan["pair_id"].isin(full)].reset_index(drop=True)
        self.index, self.qindex = 0, 0

        self.progress = widgets.Label()
        self.caption = widgets.HTML()
        self.player_a, self.player_b = widgets.VBox(), widgets.VBox()
        self.question = widgets.HTML()
        self.button_a, self.button_b, self.button_tie = choice_buttons(self.choose)
        self.summary = widgets.HTML()
        self.result = widgets.Output()
        self.widget = widgets.VBox([
            self.progress, self.caption,
            widgets.HBox([widgets.VBox([widgets.HTML("<b>A</b>"), self.player_a]),
                          widgets.VBox([widgets.HTML("<b>B</b>"), self.player_b])]),
            self.question, widgets.HBox([self.button_a, self.button_b, self.button_tie]),
            self.summary, self.result])
        self._show_trial()
        self._refresh_summary()

    @property
    def done(self) -> bool:
        """True once every trial of this session is answered."""
        return self.index >= len(self.plan)

    def _show_trial(self) -> None:
        if self.done:
            self._finish()
            return
        t = self.plan.iloc[self.index]
        self.progress.value = f"trial {self.n_total - len(self.plan) + self.index + 1} / {self.n_total}"
        self.caption.value = f"<p>{html.escape(str(t['caption']))}</p>"
        a_clip = t["clip_a"] if t["a_is"] == "a" else t["clip_b"]
        b_clip = t["clip_b"] if t["a_is"] == "a" else t["clip_a"]
        self.player_a.children = [audio_player(self.runs_dir / a_clip, self.target_dbfs)]
        self.player_b.children = [audio_player(self.runs_dir / b_clip, self.target_dbfs)]
        self._show_question()

    def _show_question(self) -> None:
        q = self.questions[self.qindex]
        self.question.value = f"<b>{html.escape(q['text'])}</b>"

    def _refresh_summary(self) -> None:
        votes = read_votes(self.votes_path)
        votes = votes[votes["study_id"] == self.doc["study_id"]] if len(votes) else votes
        mine = int((votes["rater"] == self.rater).sum()) if len(votes) else 0
        n_raters = votes["rater"].nunique() if len(votes) else 0
        self.summary.value = (f"<small>{html.escape(self.rater)}: {plural(mine, 'vote')} saved · votes.csv: "
                              f"{plural(len(votes), 'vote')} from {plural(n_raters, 'rater')} "
                              f"({html.escape(str(self.votes_path))})</small>")

    def choose(self, answer: str) -> None:
        """Record `answer` ("A", "B" or "tie") to the current question; next question or trial."""
        if answer not in CHOICES:
            raise ValueError(f"answer must be one of {CHOICES}, got {answer!r}")
        if self.done:
            return
        t = self.plan.iloc[self.index]
        at_a = t["arm_a"] if t["a_is"] == "a" else t["arm_b"]
        at_b = t["arm_b"] if t["a_is"] == "a" else t["arm_a"]
        append_vote(self.votes_path, {
            "study_id": self.doc["study_id"], "rater": self.rater, "pair_id": t["pair_id"],
            "question": self.questions[self.qindex]["id"], "choice": answer,
            "preferred_arm": {"A": at_a, "B": at_b, "tie": ""}[answer], "is_catch": str(bool(t["is_catch"])),
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds")})
        self.qindex += 1
        if self.qindex >= len(self.questions):
            self.qindex = 0
            self.index += 1
            self._show_trial()
        else:
            self._show_question()
        self._refresh_summary()

    def _finish(self) -> None:
        for b in (self.button_a, self.button_b, self.button_tie):
            b.disabled = True
        self.player_a.children, self.player_b.children = [], []
        self.caption.value = self.question.value = ""
        self.progress.value = f"{self.n_total} / {self.n_total} done"
        votes = read_votes(self.votes_path)
        table = study_verdicts(votes[votes["study_id"] == self.doc["study_id"]] if len(votes) else votes,
                               self.doc["pairs"], self.doc.get("catch_question", "preference"))
        self.result.outputs = ({"output_type": "display_data", "data": {"text/html": table.to_html(index=False),
                                "text/plain": table.to_string(index=False)}, "metadata": {}},)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


# ----------------------------------------------------------------------------- the page

PAGE_TEMPLATE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Listening study __STUDY_ID__</title>
<style>
body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.4}
.players{display:flex;gap:2rem;margin:1rem 0}.players div{flex:1}
audio{width:100%}.q{margin:.8rem 0;padding:.5rem;border:1px solid #ccc;border-radius:6px}
.q label{margin-right:1.2rem}button{margin:.2rem .3rem .2rem 0;padding:.35rem .8rem}
#progress{font-weight:bold}.hidden{display:none}small{color:#555}
</style></head><body>
<h1>Listening study</h1>
<p><small>study __STUDY_ID__ · works offline; your answers stay in this browser until you save them.</small></p>
<section id="start">
<p>Each trial plays two short clips, <b>A</b> and <b>B</b>, made from the same text prompt. Listen to both
(use headphones if you can), then answer every question. There are no right answers; “no preference” is fine.
When you are done, press <b>save results</b> and send the downloaded file back.</p>
<label>Your name: <input id="rater" autocomplete="off" maxlength="64"></label>
<button id="begin">start</button> <span id="namemsg"></span>
</section>
<section id="trial" class="hidden">
<p id="progress"></p><p id="caption"></p>
<div class="players">
<div><b>A</b><br><audio id="audioA" controls preload="auto"></audio><br><button id="playA">play A</button></div>
<div><b>B</b><br><audio id="audioB" controls preload="auto"></audio><br><button id="playB">play B</button></div>
</div>
<button id="replay">replay both (A then B)</button>
<div id="questions"></div>
<button id="prev">previous</button><button id="next" disabled>next</button>
</section>
<section id="end" class="hidden"><p><b>All trials answered. Thank you!</b> Press “save results” and send the file.</p>
<p>To check or change an answer: <button id="back">back to the last trial</button>
<button id="review">review from the first trial</button></p></section>
<p><button id="save" disabled>save results</button> <span id="saved"></span></p>
<script id="study-data" type="application/json">__DATA__</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("study-data").textContent);
const $ = (id) => document.getElementById(id);
let S = null;  // {rater, order:[trial index], atA:{id:1|2}, answers:{id:{q:{choice,ts}}}, pos}
function fnv1a(s){let h=0x811c9dc5;for(const c of new TextEncoder().encode(s)){h^=c;h=Math.imul(h,0x01000193)>>>0;}return h;}
function mulberry32(a){return function(){a|=0;a=a+0x6D2B79F5|0;let t=Math.imul(a^a>>>15,1|a);t=t+Math.imul(t^t>>>7,61|t)^t;return((t^t>>>14)>>>0)/4294967296;};}
function shuffle(xs,rnd){for(let i=xs.length-1;i>0;i--){const j=Math.floor(rnd()*(i+1));[xs[i],xs[j]]=[xs[j],xs[i]];}return xs;}
function plan(rater){
  // order shuffled per rater; within each stratum, half the trials (the odd one at random) play clip 1 as A
  const rnd = mulberry32(fnv1a(D.study_id + "\u0000" + rater));
  const order = shuffle(D.trials.map((_, i) => i), rnd);
  const atA = {}; const groups = {};
  D.trials.forEach((t) => { (groups[t.g] = groups[t.g] || []).push(t.id); });
  Object.keys(groups).sort((a,b)=>a-b).forEach((g) => {
    const ids = shuffle(groups[g].slice(), rnd); const n = ids.length;
    const k = Math.floor(n / 2) + ((n % 2 === 1 && rnd() < 0.5) ? 1 : 0);
    ids.forEach((id, i) => { atA[id] = i < k ? 1 : 2; });
  });
  return {order, atA};
}
const key = (r) => "listening-study:" + D.study_id + ":" + r;
function store(){ localStorage.setItem(key(S.rater), JSON.stringify(S)); }
function nAnswered(){ let n=0; for(const id in S.answers) n += Object.keys(S.answers[id]).length; return n; }
function begin(){
  const r = $("rater").value.trim().replace(/\s+/g, " ");
  if (!r || /[,"\n\r\t]/.test(r)) { $("namemsg").textContent = "please enter a name (no commas or quotes)"; return; }
  const saved = localStorage.getItem(key(r));
  S = saved ? JSON.parse(saved) : Object.assign({rater: r, answers: {}, pos: 0}, plan(r));
  localStorage.setItem("listening-study:" + D.study_id + ":last", r);
  store(); $("start").classList.add("hidden"); show();
}
function show(){
  $("save").disabled = nAnswered() === 0;
  $("saved").textContent = nAnswered() + " answers";
  if (S.pos >= S.order.length) { $("trial").classList.add("hidden"); $("end").classList.remove("hidden"); return; }
  $("end").classList.add("hidden"); $("trial").classList.remove("hidden");
  const t = D.trials[S.order[S.pos]];
  const a = S.atA[t.id] === 1 ? t.clips[0] : t.clips[1], b = S.atA[t.id] === 1 ? t.clips[1] : t.clips[0];
  $("progress").textContent = "trial " + (S.pos + 1) + " of " + S.order.length;
  $("caption").textContent = "Prompt: " + t.caption;
  $("audioA").src = D.clips[a]; $("audioB").src = D.clips[b];
  const box = $("questions"); box.innerHTML = "";
  const ans = S.answers[t.id] || {};
  D.questions.forEach((q) => {
    const div = document.createElement("div"); div.className = "q";
    const p = document.createElement("p"); p.textContent = q.text; div.appendChild(p);
    [["A","A"],["B","B"],["tie","no preference"]].forEach(([v, text]) => {
      const lab = document.createElement("label"); const inp = document.createElement("input");
      inp.type = "radio"; inp.name = "q_" + q.id; inp.value = v; inp.checked = ans[q.id] && ans[q.id].choice === v;
      inp.addEventListener("change", () => answer(t.id, q.id, v));
      lab.appendChild(inp); lab.appendChild(document.createTextNode(" " + text)); div.appendChild(lab);
    });
    box.appendChild(div);
  });
  $("prev").disabled = S.pos === 0;
  $("next").disabled = !D.questions.every((q) => ans[q.id]);
}
function answer(id, q, v){
  S.answers[id] = S.answers[id] || {};
  S.answers[id][q] = {choice: v, ts: new Date().toISOString()};
  store(); const ans = S.answers[id];
  $("next").disabled = !D.questions.every((qq) => ans[qq.id]);
  $("save").disabled = false; $("saved").textContent = nAnswered() + " answers";
}
function csvField(x){ x = String(x); return /[",\n\r]/.test(x) ? '"' + x.replace(/"/g, '""') + '"' : x; }
function save(){
  const lines = [D.columns.join(",")];
  S.order.forEach((i) => { const t = D.trials[i]; const ans = S.answers[t.id] || {};
    D.questions.forEach((q) => { if (ans[q.id]) {
      const row = {study_id: D.study_id, rater: S.rater, pair_id: t.id, question: q.id, choice: ans[q.id].choice,
                   clip_at_a: S.atA[t.id], timestamp: ans[q.id].ts};
      lines.push(D.columns.map((c) => csvField(row[c])).join(","));
    }});
  });
  const blob = new Blob([lines.join("\n") + "\n"], {type: "text/csv"});
  const a = document.createElement("a"); a.href = URL.createObjectURL(blob);
  a.download = "votes_" + D.study_id + "_" + S.rater.replace(/[^A-Za-z0-9_.-]/g, "_") + ".csv";
  document.body.appendChild(a); a.click(); a.remove();
  $("saved").textContent = (lines.length - 1) + " answers saved to " + a.download;
}
function play(which){ const x = $("audio" + which), y = $("audio" + (which === "A" ? "B" : "A"));
  y.pause(); x.currentTime = 0; x.play(); }
$("begin").addEventListener("click", begin);
$("rater").addEventListener("keydown", (e) => { if (e.key === "Enter") begin(); });
$("playA").addEventListener("click", () => play("A"));
$("playB").addEventListener("click", () => play("B"));
$("replay").addEventListener("click", () => { play("A"); $("audioA").onended = () => { $("audioA").onended = null; play("B"); }; });
$("next").addEventListener("click", () => { S.pos += 1; store(); show(); });
$("prev").addEventListener("click", () => { S.pos = Math.max(0, S.pos - 1); store(); show(); });
$("save").addEventListener("click", save);
$("back").addEventListener("click", () => { S.pos = S.order.length - 1; store(); show(); });
$("review").addEventListener("click", () => { S.pos = 0; store(); show(); });
const last = localStorage.getItem("listening-study:" + D.study_id + ":last");
if (last) { $("rater").value = last; }
</script></body></html>
"""
