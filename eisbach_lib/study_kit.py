"""The listening kit: what `eisbach listen kit` writes under <runs_dir>/listening/ for the raters.

- `make_kit`: draws the trials (study_design.py), writes the catch trials' anchors (`degrade`:
  MUSHRA's low anchor), ``study.json`` and ``study.html``;
- `build_page`: ``study.html``, one self-contained page (`PAGE_TEMPLATE`) with every clip embedded
  as a loudness-matched MP3 ``data:`` URI (`encode_mp3`, `clip_data_uri`), nothing fetched; the page
  holds no arm name (the hidden-arm rules: study.py's docstring);
- `static_players`: plain ``<audio>`` players for a saved notebook or a static page.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
from math import gcd
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from scipy.signal import butter, resample_poly, sosfiltfilt

from .config import Profile
from .layout import STUDY, STUDY_PAGE, Layout
from .listen import load_clip, loudness_match
from .tables import last_step_rows
from .study_design import (MAX_CATCH_FAIL, MIN_RATERS, PAGE_COLUMNS, SESOI, draw_trials, listening_dir,
                           resolve_primary, study_config, study_pairs, trials_of)

ANCHOR_CUTOFF_HZ = 3500.0   # MUSHRA's low anchor (ITU-R BS.1534): low-passed at 3.5 kHz ...
ANCHOR_SNR_DB = 12.0        # ... plus white noise 12 dB below the clip
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


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
    df = last_step_rows(df)
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


def load_samples(cfg: Profile) -> pd.DataFrame:
    """The samples manifest ``<runs_dir>/samples/manifest.csv`` (written by `generate_grid`)."""
    path = Layout.of(cfg).samples_manifest
    if not path.exists():
        raise FileNotFoundError(f"{path}: no samples manifest; generate the samples first "
                                f"(notebook 05 or `eisbach generate --profile {cfg.name}`)")
    return pd.read_csv(path, keep_default_na=False)


def make_kit(cfg: Profile, study: dict | None = None, samples: pd.DataFrame | None = None) -> Path:
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
    study_id = study["study_id"] or f"{cfg.name}-{digest}"
    primary = resolve_primary(trials, study)
    pairs = study_pairs(trials, study["questions"], primary)
    doc = {"study_id": study_id, "created_for_profile": cfg.name, "questions": study["questions"],
           "catch_question": study["catch_question"], "min_raters": MIN_RATERS, "max_catch_fail": MAX_CATCH_FAIL,
           "sesoi": SESOI, "primary": {"arm_a": primary[0], "arm_b": primary[1], "question": primary[2]},
           "analysis": "win rate per comparison x question; 95 % CI clustered by rater and training seed "
                       "(Cameron-Gelbach-Miller), t with min(raters, seeds) - 1 df; the primary row at alpha 0.05, "
                       "the others Holm-corrected and gated on the primary (study.family_adjust)",
           "settings": {k: v for k, v in study.items() if k not in ("questions",)},
           "pairs": json.loads(pairs.to_json(orient="records"))}
    (out / STUDY).write_text(json.dumps(doc, indent=1))
    (out / STUDY_PAGE).write_text(build_page(doc, runs, study["target_dbfs"], study["max_seconds"]), encoding="utf-8")
    return out / STUDY


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
