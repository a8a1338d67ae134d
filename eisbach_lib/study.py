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
- `study_verdicts`   one row per (comparison, question): win rate, a 95 % interval clustered by
                     rater and by pair, position bias and a verdict; raters failing catch trials
                     are excluded (`screen_raters`);
- `listener_rows`    the scorecard's "listeners" rows (when votes exist);
- `bradley_terry`    an exploratory ranking of all arms, intervals resampling raters;
- `StudyAB`          the same study as an ipywidgets widget in a live notebook (writes votes.csv).

Two hidden-arm rules hold everywhere: pair ids are opaque (``t01``, ``t02``, ... in a random
order), and the page holds no arm name at all: its clips are numbered in a random order and a
trial only names its two clip numbers; study.json maps them back to arms at import.

The statistics (see `clustered_win_rate`): a vote scores w = 1 when arm_a is preferred, 0 when
arm_b is, 0.5 for "no preference"; the win rate is the mean of w. Votes of one rater, and votes
about one pair, are correlated, so the variance is the two-way cluster-robust one of Cameron,
Gelbach & Miller (2011): V = V_rater + V_pair − V_vote, each a one-way cluster ("sandwich")
variance with the G/(G−1) small-sample factor, floored at max(V_rater, V_pair); that is the
variance a bootstrap resampling raters and pairs estimates, computed in closed form so that it is
deterministic and can be calibrated by simulation in seconds. The interval is
win_rate ± t_{df}·√V with df = min(raters, pairs) − 1. Calibrated in tests/test_listen_study.py.
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

DEFAULT_QUESTIONS = [
    {"id": "development", "claim": "C6 thematic development",
     "text": "Which clip develops more over its length (ideas that return changed, sections that differ)?"},
    {"id": "preference", "claim": "overall preference",
     "text": "Which clip do you prefer overall?"},
]
CONTROL_ARMS = ("eisbach_norm", "eisbach_shuffle", "eisbach_tmatched", "eisbach_grad", "oracle_texture", "constant")
DEFAULT_STUDY = {
    "study_id": None,            # None: "<profile>-" + the first 8 hex digits of the trials' sha1
    "arm_a": "eisbach",
    "comparisons": None,         # None: arm_a vs none, vs minsnr, vs each control arm present
    "questions": DEFAULT_QUESTIONS,
    "catch_question": "preference",
    "adapter": None,             # None: dora when present, else the first adapter
    "prompts": None,             # prompt ids drawn from (None: all)
    "seeds": None,               # training seeds drawn from (None: all)
    "pairs_per_comparison": 12,  # calibrated for 12 pairs: see tests/test_listen_study.py
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


def _spread_draw(keys: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """`n` rows of `keys` at random, spread over prompts: shuffle, then take every prompt's first
    row before any prompt's second (round robin), so the prompts' counts differ by at most one."""
    keys = keys.iloc[rng.permutation(len(keys))].reset_index(drop=True)
    keys["_rank"] = keys.groupby("prompt_id").cumcount()
    keys["_tie"] = rng.permutation(len(keys))
    return keys.sort_values(["_rank", "_tie"]).head(n).drop(columns=["_rank", "_tie"])


def draw_trials(samples: pd.DataFrame, study: dict) -> pd.DataFrame:
    """The study's clip pairs, one row per trial (a pair of clips, asked every question).

    From the samples manifest (``run, adapter, arm, seed, step, prompt_id, caption, sample, path``,
    paths relative to runs_dir): each run's final checkpoint, one adapter (`study['adapter']`), the
    base model left out. For each comparison (arm_a, arm_b) whose two arms are both present, the
    clips of the two arms that share (adapter, seed, prompt_id, sample, step) are partners (same
    prompt and same initial noise); `pairs_per_comparison` of them are drawn, spread over prompts.
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
        m = _spread_draw(m, int(study["pairs_per_comparison"]), rng)
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


def study_pairs(trials: pd.DataFrame, questions: Sequence[dict]) -> pd.DataFrame:
    """study.json's ``pairs``: one row per (trial, question), the trial's columns plus ``question``."""
    rows = [dict(t, question=q["id"]) for t in trials.to_dict("records") for q in questions]
    return pd.DataFrame(rows)


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
    pairs = study_pairs(trials, study["questions"])
    doc = {"study_id": study_id, "created_for_profile": cfg.get("name"), "questions": study["questions"],
           "catch_question": study["catch_question"], "min_raters": MIN_RATERS, "max_catch_fail": MAX_CATCH_FAIL,
           "sesoi": SESOI, "settings": {k: v for k, v in study.items() if k not in ("questions",)},
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
    nothing. The file is rewritten through a temporary file and an atomic rename."""
    study_path = Path(study_path)
    doc = load_study(study_path)
    votes_path = Path(votes_path) if votes_path else study_path.parent / "votes.csv"
    new = []
    for f in files:
        if not Path(f).exists():
            raise FileNotFoundError(f"{f}: no such file")
        new.extend(_parse_rows(Path(f), doc))
    old = read_votes(votes_path)
    seen = set(map(tuple, old[list(VOTE_COLUMNS)].astype(str).to_numpy().tolist())) if len(old) else set()
    added = []
    for r in new:
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


def clustered_win_rate(W: np.ndarray) -> dict:
    """Win rate and its two-way clustered standard error, batched over leading axes.

    `W` [..., R, P]: the score of rater r's vote on pair p (1 arm_a, 0 arm_b, 0.5 tie), NaN where
    there is no vote. With e = w − ŵ over the N votes and the one-way cluster variance
    V_G = G/(G−1) · Σ_g (Σ_{i∈g} e_i)² / N² (G clusters), the variance of ŵ is
    V = max(V_R + V_P − V_RP, V_R, V_P) (Cameron, Gelbach & Miller 2011; the vote-level term V_RP
    is counted in both one-way terms, so it is taken out once; the floor keeps V positive).
    df = min(R, P) − 1, R and P counting raters and pairs with at least one vote.
    Returns arrays ``estimate, se, df, n_votes, n_raters, n_pairs`` (NaN where there are no votes).
    """
    W = np.asarray(W, dtype=np.float64)
    M = np.isfinite(W)
    X = np.where(M, W, 0.0)
    N = M.sum(axis=(-2, -1)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        est = X.sum(axis=(-2, -1)) / N
        E = np.where(M, X - est[..., None, None], 0.0)
        nr = M.any(axis=-1).sum(axis=-1)
        npr = M.any(axis=-2).sum(axis=-1)

        def one_way(sums: np.ndarray, g: np.ndarray) -> np.ndarray:
            return (sums**2).sum(axis=-1) / N**2 * g / np.maximum(g - 1, 1)

        v_r = one_way(E.sum(axis=-1), nr)
        v_p = one_way(E.sum(axis=-2), npr)
        v_rp = (E**2).sum(axis=(-2, -1)) / N**2 * N / np.maximum(N - 1, 1)
        var = np.maximum(np.maximum(v_r + v_p - v_rp, v_r), v_p)
    return {"estimate": est, "se": np.sqrt(var), "df": np.minimum(nr, npr) - 1, "n_votes": N.astype(int),
            "n_raters": nr, "n_pairs": npr}


def t_interval(estimate, se, df, level: float):
    """estimate ± t_{(1+level)/2, df}·se (NaN where df < 1)."""
    df = np.asarray(df, dtype=np.float64)
    q = np.where(df >= 1, sps.t.ppf((1 + level) / 2, np.maximum(df, 1)), np.nan)
    return np.asarray(estimate) - q * se, np.asarray(estimate) + q * se


def decide_win_rate(ci_low, ci_high, eq_low, eq_high, n_raters, sesoi: float = SESOI,
                    min_raters: int = MIN_RATERS):
    """The scorecard's verdict rule on a win rate (null 0.5); vectorised.

    'too few votes' below `min_raters` raters; else 'supported' when the 95 % CI [ci_low, ci_high]
    lies above 0.5 (arm_a preferred), 'contradicted' when below, 'equivalent' when the 90 % CI
    [eq_low, eq_high] lies inside 0.5 ± sesoi (two one-sided tests at 5 %), else 'inconclusive'.
    This is `stats.decide` on the win rate minus 0.5, plus the rater minimum."""
    from .stats import decide

    verdict = np.asarray(decide(np.asarray(ci_low, dtype=float) - 0.5, np.asarray(ci_high, dtype=float) - 0.5, +1,
                                np.asarray(eq_low, dtype=float) - 0.5, np.asarray(eq_high, dtype=float) - 0.5, sesoi))
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
                   "position_bias", "verdict"]


def study_verdicts(votes: pd.DataFrame, pairs: pd.DataFrame, catch_question: str = "preference",
                   min_raters: int = MIN_RATERS, max_catch_fail: float = MAX_CATCH_FAIL,
                   sesoi: float = SESOI) -> pd.DataFrame:
    """One row per (arm_a, arm_b, question) of the study's non-catch pairs.

    `votes`: votes.csv's rows; `pairs`: study.json's pairs. The latest vote per (rater, pair,
    question) counts; raters failing more than `max_catch_fail` of their catch trials are excluded
    (`catch_table`, kept in ``.attrs["catch"]`` and ``.attrs["excluded"]``). Columns:
    ``arm_a, arm_b, question, n_votes, n_raters, win_rate`` (mean score for arm_a, a tie = ½),
    ``ci_low, ci_high`` (95 %, `clustered_win_rate`: raters and pairs as clusters),
    ``position_bias`` (share of "A" among the A/B choices) and ``verdict`` (`decide_win_rate`).
    """
    catch = catch_table(votes, pairs, catch_question, max_catch_fail)
    excluded = set(catch.loc[catch["excluded"], "rater"])
    v = latest_votes(votes)
    v = v[~v["rater"].isin(excluded)] if len(v) else v
    real = pairs[~pairs["is_catch"].astype(bool)]
    rows = []
    for (arm_a, arm_b, question), grp in real.groupby(["arm_a", "arm_b", "question"], sort=False):
        vv = v.merge(grp[["pair_id", "question"]], on=["pair_id", "question"]) if len(v) else v
        row = {"arm_a": arm_a, "arm_b": arm_b, "question": question}
        if len(vv) == 0:
            r = {"estimate": np.nan, "se": np.nan, "df": 0, "n_votes": 0, "n_raters": 0}
            pos = np.nan
        else:
            score = np.where(vv["choice"] == "tie", 0.5, (vv["preferred_arm"] == arm_a).astype(float))
            raters = sorted(set(vv["rater"]))
            pids = sorted(set(vv["pair_id"]))
            W = np.full((len(raters), len(pids)), np.nan)
            W[[raters.index(x) for x in vv["rater"]], [pids.index(x) for x in vv["pair_id"]]] = score
            r = {k: (v_.item() if hasattr(v_, "item") else v_) for k, v_ in clustered_win_rate(W).items()}
            ab = vv[vv["choice"].isin(["A", "B"])]
            pos = float((ab["choice"] == "A").mean()) if len(ab) else np.nan
        lo, hi = t_interval(r["estimate"], r["se"], r["df"], 0.95)
        elo, ehi = t_interval(r["estimate"], r["se"], r["df"], 0.90)
        row.update(n_votes=int(r["n_votes"]), n_raters=int(r["n_raters"]), win_rate=float(r["estimate"]),
                   ci_low=float(lo), ci_high=float(hi), position_bias=pos,
                   verdict=decide_win_rate(lo, hi, elo, ehi, r["n_raters"], sesoi, min_raters))
        rows.append(row)
    out = pd.DataFrame(rows, columns=VERDICT_COLUMNS)
    arm_rank = {a: i for i, a in enumerate(("none", "minsnr", *CONTROL_ARMS))}
    q_rank = {q: i for i, q in enumerate(dict.fromkeys(pairs["question"]))}
    out["_arm"] = [arm_rank.get(a, len(arm_rank)) for a in out["arm_b"]]  # none, minsnr, controls, others
    out["_q"] = [q_rank[q] for q in out["question"]]                       # the study's question order
    out = out.sort_values(["arm_a", "_arm", "arm_b", "_q"]).drop(columns=["_arm", "_q"]).reset_index(drop=True)
    out.attrs["catch"] = catch
    out.attrs["excluded"] = sorted(excluded)
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


def study_summary(cfg: dict) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(verdicts, catch table, study doc) for a profile's listening folder (votes.csv may be absent)."""
    doc = load_study(listening_dir(cfg) / "study.json")
    votes = read_votes(listening_dir(cfg) / "votes.csv")
    votes = votes[votes["study_id"] == doc["study_id"]] if len(votes) else votes
    table = study_verdicts(votes, doc["pairs"], doc.get("catch_question", "preference"))
    return table, table.attrs["catch"], doc


def listener_rows(cfg: dict) -> pd.DataFrame:
    """The scorecard's "listeners" rows, one per (comparison, question), only when the profile has
    a study and votes (else an empty frame): the scorecard's columns with ``claim`` "listeners",
    the question's text and its claim tag as ``statement``, the win rate of arm_a as ``estimate``
    (null 0.5, not 0) with its clustered 95 % interval, ``n`` the votes, and the study's verdict.
    Kept apart from the metric-based claims (they are people's judgements, not metrics)."""
    cols = ["claim", "statement", "evidence", "direction", "estimate", "ci_lo", "ci_hi", "p", "p_holm", "n",
            "verdict", "note"]
    if not (listening_dir(cfg) / "study.json").exists() or not (listening_dir(cfg) / "votes.csv").exists():
        return pd.DataFrame(columns=cols)
    table, catch, doc = study_summary(cfg)
    if table["n_votes"].sum() == 0:
        return pd.DataFrame(columns=cols)
    text = {q["id"]: f"{q['text']} [{q.get('claim', '')}]" for q in doc["questions"]}
    rows = [{"claim": "listeners", "statement": text.get(r.question, r.question),
             "evidence": f"{r.arm_a} vs {r.arm_b}: win rate of {r.arm_a} (0.5 = no preference), "
                         f"{r.n_raters} raters, CI clustered by rater and pair",
             "direction": "+", "estimate": r.win_rate, "ci_lo": r.ci_low, "ci_hi": r.ci_high, "p": np.nan,
             "p_holm": np.nan, "n": r.n_votes, "verdict": r.verdict,
             "note": f"study {doc['study_id']}; {len(table.attrs['excluded'])} raters excluded by catch trials; "
                     f"position bias {r.position_bias:.2f}"} for r in table.itertuples()]
    return pd.DataFrame(rows, columns=cols)


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
    ax1.set_xlabel("win rate of arm_a (95 % CI, clustered by rater and pair)")
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
        self.summary.value = (f"<small>{html.escape(self.rater)}: {mine} votes saved · votes.csv: {len(votes)} votes "
                              f"from {n_raters} raters ({html.escape(str(self.votes_path))})</small>")

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
<section id="end" class="hidden"><p><b>All trials answered. Thank you!</b> Press “save results” and send the file.</p></section>
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
const last = localStorage.getItem("listening-study:" + D.study_id + ":last");
if (last) { $("rater").value = last; }
</script></body></html>
"""
