"""Listening: loudness-matched side-by-side players (notebook 05).

Everything here starts from a samples manifest, a DataFrame with the columns
``run, adapter, arm, seed, step, prompt_id, caption, sample, path`` where ``path`` is a WAV file
(mono float32 at any rate; a multi-channel file is averaged to mono).

- `loudness_match`   scale a clip to a target RMS level in dBFS, peak-limited (no clipping);
- `audio_player`     one loudness-matched clip as an ``ipywidgets.Output`` holding an
                     ``IPython.display.Audio`` player (base64 WAV embedded in the notebook);
- `choice_buttons`   the three answer buttons of a paired comparison (used by `study_widget.StudyAB`);
- `listen_grid`      one row per (prompt, seed), the arms side by side;
- `first_seed_view`  the clips `listen_grid` shows in notebook 05 (each arm's first seed, final step).

The blind listening study — kit, page, import, clustered verdicts, widget — lives in
`eisbach_lib.study` and its parts (study.py's docstring).

Conventions chosen here
-----------------------
- dBFS is ``20·log10(RMS)`` of the float signal, i.e. a full-scale square wave is 0 dBFS and a
  full-scale sine is −3.01 dBFS. The default target, −20 dBFS, leaves 20 dB of headroom, so
  the peak limit rarely bites on music.
- Audio players embed 16-bit WAV as base64 in the notebook: ~1.2 MB per 10 s at 44.1 kHz. The
  players therefore cut each clip to `max_seconds` (10 s) and resample anything above `max_sr`
  (22 050 Hz) down to it (~0.6 MB a player); `listen_grid` shows at most `max_rows` rows.
"""

from __future__ import annotations

import html
import math
from math import gcd
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import soundfile as sf
from scipy.signal import resample_poly

from .config import Profile
from .layout import Layout
from .tables import final_rows, last_step_rows

SILENCE_RMS = 1e-5  # below this RMS (−100 dBFS) a clip counts as silent and is never amplified
PEAK_LIMIT = 0.99   # loudness_match never lets |y| exceed this


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
    `max_sr` when its rate is higher (polyphase, scipy). Returns (y, sr). A generated clip whose WAV
    is not written yet (the log-mel path decodes only what is listened to) is decoded first
    (`generate.decode_clip`)."""
    if not Path(path).exists():
        from .generate import decode_clip  # heavy: torch and the codec, only for clips not decoded yet

        decode_clip(path)
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
    import ipywidgets as widgets  # heavy: ipywidgets

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
    import ipywidgets as widgets  # heavy: ipywidgets
    from IPython.display import Audio  # heavy: IPython

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
    import ipywidgets as widgets  # heavy: ipywidgets

    df = samples[samples["sample"] == sample]
    df = last_step_rows(df) if step is None else df[df["step"] == step]
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


def first_seed_view(samples: pd.DataFrame, cfg: Profile) -> pd.DataFrame:
    """The clips `listen_grid` shows side by side: each arm's first seed at its run's final step
    (`tables.final_rows`) plus the base model (labelled with that seed), paths made absolute under <runs_dir>."""
    runs = Layout.of(cfg).runs
    final = final_rows(samples, cfg.finetune.adapter).copy()
    final["path"] = [str(runs / p) for p in final["path"]]
    first_seed = cfg.finetune.seeds[0]
    return final[(final["seed"] == first_seed) | (final["arm"] == "base")].assign(seed=first_seed)


def study_verdicts(votes: pd.DataFrame, pairs: pd.DataFrame, **kwargs) -> pd.DataFrame:
    """The listening study's verdicts, where the outside contract (DESIGN.md, `eisbach_lib/listen.py`)
    names them: `study.study_verdicts(votes, pairs, **kwargs)`, which holds the clustered statistics
    (one row per (arm_a, arm_b, question); its docstring gives the rule)."""
    from .study import study_verdicts as verdicts  # heavy: scipy (study's statistics); study imports listen

    return verdicts(votes, pairs, **kwargs)
