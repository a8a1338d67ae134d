"""The listening study in a live notebook: `StudyAB`, an ipywidgets widget (ipywidgets is imported
when one is made) that plays one trial at a time and appends each answer to votes.csv, and
`rater_plan`, a rater's own order and positions of the trials.
"""

from __future__ import annotations

import hashlib
import html
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from .layout import VOTES
from .listen import audio_player, choice_buttons
from .study import study_verdicts
from .study_design import CHOICES, load_study, trials_of
from .study_votes import append_vote, read_votes


def plural(n: int, word: str) -> str:
    """"1 vote", "0 votes", "2 votes" (English plural by -s)."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


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
        import ipywidgets as widgets  # heavy: ipywidgets

        if not str(rater).strip():
            raise ValueError("rater is empty: set `rater = \"your name\"` in the parameters cell")
        self.study_path = Path(study_path)
        self.doc = load_study(self.study_path)
        self.runs_dir = Path(runs_dir) if runs_dir else self.study_path.parent.parent
        self.votes_path = Path(votes_path) if votes_path else self.study_path.parent / VOTES
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
