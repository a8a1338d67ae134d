"""Numbers README.md states that can be checked without running anything slow.

(a) The test count: README's line "Tests in the suite: **N**" must equal what `pytest --collect-only -q`
    collects (the same interpreter, run in the repository root as `make test` runs pytest; collection
    only, no test runs). When tests are added or deleted, the failure message gives the line to write.
(b) The cpu profile's recorded wall times: every total README quotes in a phrase of QUOTES must equal
    the one in benchmarks/results/README.md's row "cpu notebook series" (the results file that
    records them). The per-notebook times of a recording are in no file under benchmarks/results/
    (only in README and `series.EXPECTED_S`), so they are not checked here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
RESULTS = REPO / "benchmarks" / "results" / "README.md"

#: README's line that states the number of tests (write it exactly so: the test reads it)
COUNT_LINE = "Tests in the suite: **{n}**"
COUNT = re.compile(r"Tests in the suite: \*\*(\d+)\*\*")
#: pytest -q --collect-only's last line: "487 tests collected in 25.8s" (or "487/500 tests collected (13 deselected) ...")
COLLECTED = re.compile(r"^(\d+)(?:/\d+)? tests? collected", re.M)

DATE = r"(\d{4}-\d\d-\d\d)"
CLOCK = r"(\d+:\d\d)"


# ------------------------------------------------------------------------------------------ (a) the test count


def readme_count(text: str) -> int:
    """The number README states in its COUNT_LINE; AssertionError when the line is missing or repeated."""
    found = COUNT.findall(text)
    assert len(found) == 1, (f"README.md must state the number of tests once, as the line "
                             f"'{COUNT_LINE.format(n='N')}' ({len(found)} found)")
    return int(found[0])


def count_message(text: str, collected: int) -> str | None:
    """None when README states `collected` tests, else what to write."""
    stated = readme_count(text)
    if stated == collected:
        return None
    return (f"README.md says the suite has {stated} tests, `pytest --collect-only -q` collects {collected}: "
            f"write '{COUNT_LINE.format(n=collected)}' in README.md (section 'Two commands')")


@pytest.fixture(scope="module")
def collected() -> int:
    """The number of tests `pytest --collect-only -q` collects in the repository (no test runs)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode == 0, f"pytest --collect-only failed (exit {proc.returncode}):\n{tail}"
    m = COLLECTED.findall(proc.stdout)
    assert m, f"no 'N tests collected' line in pytest's output:\n{tail}"
    return int(m[-1])


@pytest.mark.slow  # collects the whole suite in a subprocess
def test_the_readme_states_the_number_of_tests_pytest_collects(collected):
    msg = count_message(README.read_text(encoding="utf-8"), collected)
    assert msg is None, msg


def test_a_wrong_count_fails_and_says_what_to_write():
    """The check has teeth: a README copy whose count is one off fails, naming the line to write."""
    text = README.read_text(encoding="utf-8")
    stated = readme_count(text)
    assert count_message(text, stated) is None
    wrong = text.replace(COUNT_LINE.format(n=stated), COUNT_LINE.format(n=stated + 1))
    msg = count_message(wrong, stated)
    assert msg is not None and f"write '{COUNT_LINE.format(n=stated)}'" in msg
    with pytest.raises(AssertionError, match="must state the number of tests once"):
        readme_count(text.replace(COUNT_LINE.format(n=stated), "Tests: many"))


def test_collected_reads_pytests_last_line():
    assert COLLECTED.findall("a.py::t\n\n487 tests collected in 25.82s\n") == ["487"]
    assert COLLECTED.findall("487/500 tests collected (13 deselected) in 3.1s") == ["487"]
    assert COLLECTED.findall("1 test collected in 0.1s") == ["1"]


# ------------------------------------------------------------------------- (b) the cpu profile's recorded times


def seconds(clock: str) -> int:
    """'51:09' -> 3069."""
    m, s = clock.split(":")
    return int(m) * 60 + int(s)


def recorded_cpu_run(results: str) -> dict:
    """The totals of benchmarks/results/README.md's row "cpu notebook series": {"total", "series",
    "install", "date"} of the fresh-clone recording and {"earlier", "earlier_date"} of the one before."""
    rows = [line for line in results.splitlines() if line.startswith("| cpu notebook series")]
    assert len(rows) == 1, f"{RESULTS}: expected one row '| cpu notebook series ...', found {len(rows)}"
    row = rows[0]
    m = re.search(rf"fresh clone {CLOCK} \(series {CLOCK}, install {CLOCK}; {DATE}", row)
    e = re.search(rf"{CLOCK} on {DATE}'s machine", row)
    assert m and e, f"{RESULTS}: the cpu notebook series row no longer reads as this test expects:\n{row}"
    return {"total": m[1], "series": m[2], "install": m[3], "date": m[4], "earlier": e[1], "earlier_date": e[2]}


#: README phrases that quote a recorded cpu run's wall time: (pattern on README's text with its
#: whitespace collapsed, the keys of `recorded_cpu_run` its groups must equal, in order). A group
#: written "N min" is compared with the recorded M:SS rounded to the minute.
QUOTES = [
    (rf"took (\d+) min on a fresh clone \({DATE}\)", ("total", "date")),
    (rf"on a fresh clone \(2 cores, {DATE}\): \*\*(\d+ min \d+ s)\*\* in all, of which the venv and install "
     rf"{CLOCK} and the series {CLOCK}", ("date", "total", "install", "series")),
    (rf"one made on {DATE} \({CLOCK} there\)", ("earlier_date", "earlier")),
    (rf"in the {DATE} recording of the previous assay \([^)]*?{CLOCK} in all", ("earlier_date", "earlier")),
]


def _same(quoted: str, recorded: str) -> bool:
    """A quoted time (M:SS, "N min N s" or "N" minutes) against a recorded M:SS or date."""
    if re.fullmatch(DATE, recorded):
        return quoted == recorded
    if re.fullmatch(r"\d+", quoted):
        return int(quoted) == round(seconds(recorded) / 60)
    mm = re.fullmatch(r"(\d+) min (\d+) s", quoted)
    if mm:
        quoted = f"{mm[1]}:{int(mm[2]):02d}"
    return seconds(quoted) == seconds(recorded)


def quote_mismatches(readme: str, results: str) -> tuple[int, list[str]]:
    """(number of quotes found, the ones that disagree with the results file)."""
    rec = recorded_cpu_run(results)
    flat = " ".join(readme.split())
    found, bad = 0, []
    for pattern, keys in QUOTES:
        for m in re.finditer(pattern, flat):
            found += 1
            for quoted, key in zip(m.groups(), keys):
                if not _same(quoted, rec[key]):
                    bad.append(f"README.md '{m[0]}': {quoted} where {RESULTS.relative_to(REPO)} records "
                               f"{key} = {rec[key]}")
    return found, bad


def test_the_readme_quotes_the_recorded_cpu_wall_times_of_the_results_file():
    found, bad = quote_mismatches(README.read_text(encoding="utf-8"), RESULTS.read_text(encoding="utf-8"))
    assert found, ("README.md quotes no recorded cpu wall time in a phrase this test knows: "
                   "update QUOTES in tests/test_docs_numbers.py to the README's wording")
    assert not bad, "\n".join(bad)


def test_a_wrong_wall_time_fails():
    """The check has teeth: a README copy that quotes a minute more than the results file fails."""
    readme, results = README.read_text(encoding="utf-8"), RESULTS.read_text(encoding="utf-8")
    rec = recorded_cpu_run(results)
    flat = " ".join(readme.split())
    minutes = round(seconds(rec["total"]) / 60)
    phrase = f"took {minutes} min on a fresh clone ({rec['date']})"
    assert phrase in flat
    found, bad = quote_mismatches(flat.replace(phrase, f"took {minutes + 1} min on a fresh clone ({rec['date']})"), results)
    assert found and len(bad) == 1 and f"took {minutes + 1} min" in bad[0]
