"""Listening: loudness-matched side-by-side players and a blind A/B test (notebook 05).

Everything here starts from a samples manifest, a DataFrame with the columns
``run, adapter, arm, seed, step, prompt_id, caption, sample, path`` where ``path`` is a WAV file
(mono float32 at any rate; a multi-channel file is averaged to mono).

- `loudness_match`   scale a clip to a target RMS level in dBFS, peak-limited (no clipping);
- `audio_player`     one loudness-matched clip as an ``ipywidgets.Output`` holding an
                     ``IPython.display.Audio`` player (base64 WAV embedded in the notebook);
- `listen_grid`      one row per (prompt, seed), the arms side by side;
- `ab_pairs`         blind pairs of two arms' clips with the same (adapter, seed, prompt, sample,
                     step), a balanced seeded left/right order and a seeded presentation order;
- `BlindAB`          the A/B widget: players "A" and "B", three buttons, one CSV row per choice;
- `summarise_ab`     counts and a two-sided exact binomial test over a choices CSV (one rater, a
                     quick look; a study with several raters goes through `study_verdicts`);
- `study_verdicts`   the listening study's clustered verdicts (`eisbach_lib.study`).

Conventions chosen here
-----------------------
- dBFS is ``20·log10(RMS)`` of the float signal, i.e. a full-scale square wave is 0 dBFS and a
  full-scale sine is −3.01 dBFS. The default target, −20 dBFS, leaves 20 dB of headroom, so
  the peak limit rarely bites on music.
- Audio players embed 16-bit WAV as base64 in the notebook: ~1.2 MB per 10 s at 44.1 kHz. The
  players therefore cut each clip to `max_seconds` (10 s) and resample anything above `max_sr`
  (22 050 Hz) down to it (~0.6 MB a player); `listen_grid` shows at most `max_rows` rows.
- The A/B choices CSV has the columns ``pair_id, choice, preferred_arm, rater, timestamp``;
  ``choice`` is ``"A"`` (left player), ``"B"`` (right player) or ``"tie"`` (no preference —
  not ``"none"``, which is the baseline arm's name); ``preferred_arm`` is the arm behind the
  chosen player and empty for a tie. Each choice is appended and flushed at once, so a session
  that is interrupted keeps what was judged; the file is never truncated.
"""

from __future__ import annotations

import html
import math
from datetime import datetime, timezone
from math import gcd
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import soundfile as sf
from scipy.signal import resample_poly
from scipy.stats import binomtest

from .files import append_csv_row
from .layout import Layout

SILENCE_RMS = 1e-5  # below this RMS (−100 dBFS) a clip counts as silent and is never amplified
PEAK_LIMIT = 0.99   # loudness_match never lets |y| exceed this
AB_COLUMNS = ("pair_id", "choice", "preferred_arm", "rater", "timestamp")
CHOICES = ("A", "B", "tie")
PAIR_KEYS = ["adapter", "seed", "prompt_id", "sample", "step"]


# ----------------------------------------------------------------------------- audio


def loudness_match(y: np.ndarray, target_dbfs: float = -20.0, peak_limit: float = PEAK_LIMIT) -> np.ndarray:
    """Scale `y` so that its RMS is `target_dbfs` (dBFS = 20·log10 RMS), returned as float32.

    - Non-finite samples are set to 0 first.
    - Silence stays silence: a clip whose RMS is below `SILENCE_RMS` (−100 dBFS), including an
      all-zero or empty clip, is returned unscaled (a copy), never amplified into noise.
    - Peak limit: if the scaled clip would exceed `peak_limit` (0.99) in absolute value, the
      whole clip is scaled down until its peak is exactly `peak_limit` — a plain gain change,
      no compression — so the clip never clips; its RMS is then below the target (only very
      peaky clips, crest factor above ~20 dB at the default −20 dBFS target, are affected).
    """
    y = np.nan_to_num(np.asarray(y, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if y.size == 0:
        return y.astype(np.float32)
    rms = float(np.sqrt(np.mean(y**2)))
    if rms < SILENCE_RMS:
        return y.astype(np.float32)
    gain = 10.0 ** (target_dbfs / 20.0) / rms
    peak = float(np.max(np.abs(y))) * gain
    if peak > peak_limit:
        gain *= peak_limit / peak
    return (y * gain).astype(np.float32)


def rms_dbfs(y: np.ndarray) -> float:
    """RMS level of `y` in dBFS (20·log10 RMS); −inf for silence."""
    y = np.asarray(y, dtype=np.float64)
    rms = float(np.sqrt(np.mean(y**2))) if y.size else 0.0
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


def load_clip(path: str | Path, max_seconds: float | None = 10.0, max_sr: int | None = 22050) -> tuple[np.ndarray, int]:
    """Read a WAV as mono float32 (channels averaged), cut to `max_seconds`, and resample down to
    `max_sr` when its rate is higher (polyphase, scipy). Returns (y, sr)."""
    y, sr = sf.read(str(path), dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    if max_seconds is not None:
        y = y[: int(round(max_seconds * sr))]
    if max_sr is not None and sr > max_sr:
        g = gcd(int(sr), int(max_sr))
        y = resample_poly(y, int(max_sr) // g, int(sr) // g).astype(np.float32)
        sr = int(max_sr)
    return y, int(sr)


def choice_buttons(choose, label_a: str = "A", label_b: str = "B"):
    """The three answer buttons of a paired comparison: `label_a`, `label_b` and "no preference",
    calling `choose("A")`, `choose("B")` and `choose("tie")` when clicked."""
    import ipywidgets as widgets

    buttons = []
    for label, answer in ((label_a, "A"), (label_b, "B"), ("no preference", "tie")):
        button = widgets.Button(description=label)
        button.on_click(lambda _, answer=answer: choose(answer))
        buttons.append(button)
    return tuple(buttons)


def audio_player(path: str | Path, target_dbfs: float = -20.0, max_seconds: float | None = 10.0,
                 max_sr: int | None = 22050):
    """One loudness-matched clip as an ``ipywidgets.Output`` holding an ``IPython.display.Audio``
    player (``normalize=False``, so the loudness matching is what one hears).

    The player's HTML is put into the Output's ``outputs`` directly, so it is built without a
    kernel (tests, papermill) and shows in any live notebook. A missing or unreadable file gives
    an ``ipywidgets.HTML`` note instead of a player."""
    import ipywidgets as widgets
    from IPython.display import Audio

    try:
        y, sr = load_clip(path, max_seconds=max_seconds, max_sr=max_sr)
    except (OSError, RuntimeError) as err:  # soundfile's errors are RuntimeErrors
        return widgets.HTML(f"<i>unreadable: {html.escape(Path(path).name)} ({html.escape(type(err).__name__)})</i>")
    y = loudness_match(y, target_dbfs)
    if y.size == 0:
        return widgets.HTML(f"<i>empty: {html.escape(Path(path).name)}</i>")
    audio = Audio(data=y, rate=sr, normalize=False)
    out = widgets.Output()
    out.outputs = ({"output_type": "display_data",
                    "data": {"text/html": audio._repr_html_(), "text/plain": f"<Audio {sr} Hz, {y.size / sr:.1f} s>"},
                    "metadata": {}},)
    return out


# ----------------------------------------------------------------------------- side by side


def _arm_order(arms_present: Sequence[str], arms: Sequence[str] | None) -> list[str]:
    """The arms to show: `arms` as given (those present), else ``none`` first, then the rest sorted."""
    if arms is not None:
        return [a for a in arms if a in set(arms_present)]
    rest = sorted(a for a in set(arms_present) if a != "none")
    return (["none"] if "none" in set(arms_present) else []) + rest


def final_steps(samples: pd.DataFrame) -> pd.DataFrame:
    """The rows of each run's last checkpoint (largest `step` per `run`)."""
    last = samples.groupby("run")["step"].transform("max")
    return samples[samples["step"] == last]


def listen_grid(samples: pd.DataFrame, prompt_ids: Sequence | None = None, seeds: Sequence | None = None,
                arms: Sequence[str] | None = None, sample: int = 0, max_rows: int = 8, step: int | None = None,
                target_dbfs: float = -20.0, max_seconds: float | None = 10.0, max_sr: int | None = 22050):
    """The arms side by side: one row per (prompt, seed) with its caption and one loudness-matched
    player per arm. Returns an ``ipywidgets.VBox`` (display it, or leave it as a cell's last line).

    Selection: `prompt_ids`, `seeds` and `arms` filter (None = all; the arms' column order is
    `arms` as given, else ``none`` first and the rest sorted); `sample` picks the sample index;
    `step` picks a checkpoint, and None uses each run's final checkpoint. Rows are ordered by
    prompt (in the order of `prompt_ids` when given) then seed, and cut to `max_rows` (a note
    says how many were left out): every player embeds its audio in the notebook. When one arm
    appears with more than one adapter its columns are labelled ``arm (adapter)``. Should
    several runs still share a cell (same arm, adapter, seed, prompt), the first is shown.
    """
    import ipywidgets as widgets

    df = samples[samples["sample"] == sample]
    df = final_steps(df) if step is None else df[df["step"] == step]
    if prompt_ids is not None:
        df = df[df["prompt_id"].isin(list(prompt_ids))]
    if seeds is not None:
        df = df[df["seed"].isin(list(seeds))]
    arm_list = _arm_order(list(df["arm"].unique()), arms)
    df = df[df["arm"].isin(arm_list)].copy()
    df["adapter"] = df["adapter"].fillna("").astype(str)

    n_adapters = df.groupby("arm")["adapter"].nunique()
    columns = [(a, ad) for a in arm_list for ad in sorted(df.loc[df["arm"] == a, "adapter"].unique())]

    def label(arm: str, adapter: str) -> str:
        return f"{arm} ({adapter})" if n_adapters.get(arm, 1) > 1 else arm

    keys = df[["prompt_id", "seed"]].drop_duplicates()
    if prompt_ids is not None:
        order = {p: i for i, p in enumerate(prompt_ids)}
        keys = keys.assign(_o=keys["prompt_id"].map(order)).sort_values(["_o", "seed"]).drop(columns="_o")
    else:
        keys = keys.sort_values(["prompt_id", "seed"])
    n_rows = len(keys)
    keys = keys.head(max_rows)

    rows = []
    for prompt_id, seed in keys.itertuples(index=False):
        cell_rows = df[(df["prompt_id"] == prompt_id) & (df["seed"] == seed)]
        caption = str(cell_rows["caption"].iloc[0])
        head = widgets.HTML(f"<b>prompt {html.escape(str(prompt_id))} · seed {html.escape(str(seed))}</b><br>"
                            f"{html.escape(caption)}", layout=widgets.Layout(width="260px"))
        cells = [head]
        for arm, adapter in columns:
            hit = cell_rows[(cell_rows["arm"] == arm) & (cell_rows["adapter"] == adapter)]
            player = (audio_player(hit["path"].iloc[0], target_dbfs, max_seconds, max_sr) if len(hit)
                      else widgets.HTML("<i>—</i>"))
            cells.append(widgets.VBox([widgets.HTML(f"<b>{html.escape(label(arm, adapter))}</b>"), player]))
        rows.append(widgets.HBox(cells))
    footer = []
    if n_rows > len(keys):
        footer = [widgets.HTML(f"<i>showing {len(keys)} of {n_rows} rows (max_rows={max_rows})</i>")]
    if not rows:
        footer = [widgets.HTML("<i>no clips match the selection</i>")]
    return widgets.VBox(rows + footer)


# ----------------------------------------------------------------------------- blind A/B


def ab_pairs(samples: pd.DataFrame, arm_a: str = "eisbach", arm_b: str = "none", seed: int = 0) -> pd.DataFrame:
    """Blind pairs of `arm_a` and `arm_b` clips that share (adapter, seed, prompt_id, sample, step).

    Clips without a partner in the other arm are dropped; the adapter is part of the key so that
    a LoRA clip is never paired with a DoRA one (filter the manifest first to pair fewer steps or
    one adapter). Two clips of one arm under the same key is ambiguous and raises ValueError.

    Randomisation, all from ``numpy.random.default_rng(seed)`` (deterministic for a seed):
    the presentation order of the pairs is shuffled (so ``pairs.head(n)`` is a random subset),
    and the left/right order is counterbalanced — exactly ⌊n/2⌋ or ⌈n/2⌉ pairs, at random, have
    `arm_a` on the left.

    Returns columns ``pair_id, path_left, path_right, arm_left, arm_right, caption`` plus the key
    columns. ``pair_id`` is built from the key (``adapter|s<seed>|p<prompt>|n<sample>|k<step>``),
    so it names the same pair in every session. The arm columns are for scoring; `BlindAB`
    never shows them before the end.
    """
    cols = PAIR_KEYS + ["caption", "path"]
    a = samples.loc[samples["arm"] == arm_a, cols].copy()
    b = samples.loc[samples["arm"] == arm_b, cols].copy()
    for side, name in ((a, arm_a), (b, arm_b)):
        side["adapter"] = side["adapter"].fillna("").astype(str)
        dup = side.duplicated(PAIR_KEYS, keep=False)
        if dup.any():
            raise ValueError(f"arm {name!r} has {int(dup.sum())} clips sharing (adapter, seed, prompt_id, "
                             f"sample, step) with another clip of the same arm; filter the manifest first")
    m = a.merge(b.drop(columns="caption"), on=PAIR_KEYS, suffixes=("_a", "_b"))
    m = m.sort_values(PAIR_KEYS).reset_index(drop=True)
    n = len(m)
    rng = np.random.default_rng(seed)
    m = m.iloc[rng.permutation(n)].reset_index(drop=True)
    n_left = n // 2 + int(n % 2 == 1 and rng.random() < 0.5)  # arm_a on the left in exactly n_left pairs
    a_left = rng.permutation(n) < n_left
    out = pd.DataFrame({
        "pair_id": [f"{r.adapter}|s{r.seed}|p{r.prompt_id}|n{r.sample}|k{r.step}" for r in m.itertuples()],
        "path_left": np.where(a_left, m["path_a"], m["path_b"]),
        "path_right": np.where(a_left, m["path_b"], m["path_a"]),
        "arm_left": np.where(a_left, arm_a, arm_b),
        "arm_right": np.where(a_left, arm_b, arm_a),
        "caption": m["caption"].to_numpy(),
    })
    for k in PAIR_KEYS:
        out[k] = m[k].to_numpy()
    return out


def append_choice(csv_path: str | Path, row: dict) -> None:
    """Append one choice row to the CSV (header written only when the file is missing or empty);
    flushed at once. Never truncates the file."""
    append_csv_row(csv_path, row, AB_COLUMNS)


def read_choices(csv_path: str | Path) -> pd.DataFrame:
    """The choices CSV as a DataFrame (empty with the right columns if missing or empty)."""
    csv_path = Path(csv_path)
    if not csv_path.exists() or csv_path.stat().st_size == 0:
        return pd.DataFrame(columns=list(AB_COLUMNS))
    try:
        df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=list(AB_COLUMNS))
    return df


def _summarise(choices: pd.DataFrame, arm_a: str) -> dict:
    """Counts and the exact binomial test over a choices table (see `summarise_ab`)."""
    n = int(len(choices))
    decided = choices[choices["choice"].isin(["A", "B"])]
    wins_a = int((decided["preferred_arm"] == arm_a).sum())
    wins_b = int(len(decided)) - wins_a
    ties = n - wins_a - wins_b
    k = wins_a + wins_b
    share_a = wins_a / k if k else float("nan")
    p = float(binomtest(wins_a, k, 0.5, alternative="two-sided").pvalue) if k else float("nan")
    return {"n": n, "wins_a": wins_a, "wins_b": wins_b, "ties": ties, "share_a": share_a, "p_binomial": p}


def summarise_ab(csv_path: str | Path, arm_a: str = "eisbach") -> dict:
    """Summarise a blind A/B choices CSV: ``dict(n, wins_a, wins_b, ties, share_a, p_binomial)``.

    ``n`` counts every row (every judgement, all raters and sessions); ``wins_a`` the A/B choices
    whose preferred arm is `arm_a`, ``wins_b`` the other A/B choices, ``ties`` the rest
    ("no preference"). ``share_a = wins_a / (wins_a + wins_b)`` and ``p_binomial`` is the
    two-sided exact binomial test (scipy.stats.binomtest, p = 0.5) of wins_a out of the non-tie
    choices. A missing or empty file, or one with no non-tie choice, gives NaN share and p
    (and n = 0 when there are no rows), without an exception.
    """
    return _summarise(read_choices(csv_path), arm_a)


class BlindAB:
    """A blind A/B listening widget over `pairs` (from `ab_pairs`), writing to `csv_path`.

    Shows the caption, two loudness-matched players labelled only "A" (the pair's left clip)
    and "B" (right), the buttons "A is better" / "B is better" / "no preference", and the
    progress "k / n". Each click appends one row to the CSV (`append_choice`; columns
    ``pair_id, choice, preferred_arm, rater, timestamp``) and moves to the next pair. The arms
    are never shown until every pair is judged; then the buttons are disabled and this
    session's summary (arm names, counts, binomial p) is shown.

    `resume=True` skips pairs this `rater` has already judged in the CSV. The widget is
    ``self.widget``; the buttons are ``button_a``, ``button_b``, ``button_tie`` and ``choose``
    is their handler, so tests can click without a front end. Building it needs no kernel, but
    listening does: notebooks build it only when ``interactive`` is True (papermill skips it).
    """

    def __init__(self, pairs: pd.DataFrame, csv_path: str | Path, rater: str = "anonymous",
                 arm_a: str = "eisbach", resume: bool = False, target_dbfs: float = -20.0,
                 max_seconds: float | None = 10.0, max_sr: int | None = 22050) -> None:
        import ipywidgets as widgets

        self.csv_path = Path(csv_path)
        self.rater = str(rater)
        self.arm_a = arm_a
        self.player_kwargs = {"target_dbfs": target_dbfs, "max_seconds": max_seconds, "max_sr": max_sr}
        pairs = pairs.reset_index(drop=True)
        if resume:
            done = read_choices(self.csv_path)
            done_ids = set(done.loc[done["rater"] == self.rater, "pair_id"])
            pairs = pairs[~pairs["pair_id"].isin(done_ids)].reset_index(drop=True)
        self.pairs = pairs
        self.index = 0
        self.records: list[dict] = []

        self.caption = widgets.HTML()
        self.progress = widgets.Label()
        self.player_left = widgets.VBox()
        self.player_right = widgets.VBox()
        self.button_a, self.button_b, self.button_tie = choice_buttons(self.choose, "A is better", "B is better")
        self.summary = widgets.HTML()
        self.widget = widgets.VBox([
            self.progress, self.caption,
            widgets.HBox([widgets.VBox([widgets.HTML("<b>A</b>"), self.player_left]),
                          widgets.VBox([widgets.HTML("<b>B</b>"), self.player_right])]),
            widgets.HBox([self.button_a, self.button_b, self.button_tie]),
            self.summary,
        ])
        self._show()

    @property
    def n(self) -> int:
        """Number of pairs in this session."""
        return len(self.pairs)

    @property
    def done(self) -> bool:
        """True once every pair of this session is judged."""
        return self.index >= self.n

    def _show(self) -> None:
        """Show the current pair (or, when done, the summary)."""
        if self.done:
            self._finish()
            return
        row = self.pairs.iloc[self.index]
        self.progress.value = f"{self.index + 1} / {self.n}"
        self.caption.value = f"<p>{html.escape(str(row['caption']))}</p>"
        self.player_left.children = [audio_player(row["path_left"], **self.player_kwargs)]
        self.player_right.children = [audio_player(row["path_right"], **self.player_kwargs)]

    def choose(self, choice: str) -> None:
        """Record `choice` ("A", "B" or "tie") for the current pair, append it to the CSV and
        move on. Ignored once all pairs are done."""
        if choice not in CHOICES:
            raise ValueError(f"choice must be one of {CHOICES}, got {choice!r}")
        if self.done:
            return
        row = self.pairs.iloc[self.index]
        preferred = {"A": row["arm_left"], "B": row["arm_right"], "tie": ""}[choice]
        record = {"pair_id": row["pair_id"], "choice": choice, "preferred_arm": preferred,
                  "rater": self.rater, "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        append_choice(self.csv_path, record)
        self.records.append(record)
        self.index += 1
        self._show()

    def session_summary(self) -> dict:
        """`summarise_ab`'s dict over this session's choices only."""
        return _summarise(pd.DataFrame(self.records, columns=list(AB_COLUMNS)), self.arm_a)

    def _finish(self) -> None:
        """Disable the buttons, clear the players and reveal the arms with this session's summary."""
        for b in (self.button_a, self.button_b, self.button_tie):
            b.disabled = True
        self.player_left.children = []
        self.player_right.children = []
        self.caption.value = ""
        self.progress.value = f"{self.n} / {self.n} done"
        s = self.session_summary()
        arms = sorted(set(self.pairs["arm_left"]) | set(self.pairs["arm_right"])) if self.n else []
        other = ", ".join(html.escape(a) for a in arms if a != self.arm_a) or "the other arm"
        share = "n/a" if math.isnan(s["share_a"]) else f"{s['share_a']:.0%}"
        p = "n/a" if math.isnan(s["p_binomial"]) else f"{s['p_binomial']:.3g}"
        self.summary.value = (
            f"<b>Session done ({s['n']} judgement{'' if s['n'] == 1 else 's'}, saved to "
            f"{html.escape(str(self.csv_path))}).</b><br>"
            f"{html.escape(self.arm_a)} preferred {s['wins_a']} times, {other} {s['wins_b']} times, "
            f"no preference {s['ties']}; share {html.escape(self.arm_a)} = {share}, "
            f"two-sided exact binomial p = {p}.")

    def _repr_mimebundle_(self, **kwargs):
        """Display as the widget."""
        return self.widget._repr_mimebundle_(**kwargs)


# ----------------------------------------------------------------------------- the study


def study_verdicts(votes: pd.DataFrame, pairs: pd.DataFrame, **kwargs) -> pd.DataFrame:
    """The listening study's verdicts: see `eisbach_lib.study.study_verdicts` (the study — kit,
    page, import, clustered analysis, widget — lives in `eisbach_lib.study`)."""
    from .study import study_verdicts as _study_verdicts

    return _study_verdicts(votes, pairs, **kwargs)


def first_seed_view(samples: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    """The clips `listen_grid` shows side by side: each arm's first seed at the final step
    (finetune.steps) plus the base model (labelled with that seed), paths made absolute under <runs_dir>."""
    runs = Layout.of(cfg).runs
    final = samples[(samples["step"] == cfg["finetune"]["steps"]) | (samples["arm"] == "base")].copy()
    final["path"] = [str(runs / p) for p in final["path"]]
    first_seed = cfg["finetune"]["seeds"][0]
    return final[(final["seed"] == first_seed) | (final["arm"] == "base")].assign(seed=first_seed)
