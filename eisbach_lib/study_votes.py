"""The listening study's votes: <runs_dir>/listening/votes.csv, one row per (rater, trial, question).

- `import_votes`: merges the CSVs the study page downloads (or votes.csv rows from a colleague's
  notebook) into votes.csv, every row checked against study.json, all or nothing;
- `read_votes`, `append_vote`: votes.csv read as strings, and one vote appended (the widget's).
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path
from typing import Sequence

import pandas as pd

from .files import append_csv_row, atomic_write
from .layout import VOTES
from .study_design import CHOICES, PAGE_COLUMNS, VOTE_COLUMNS, StudyError, load_study


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
    votes_path = Path(votes_path) if votes_path else study_path.parent / VOTES
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
