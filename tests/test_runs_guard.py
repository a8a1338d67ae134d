"""The guard that keeps the user's runs/ theirs (tests/runs_guard.py) sees a write, and fails the session.

Every session carries the guard (autouse in conftest.py): at its end, runs/ (runs/smoke byte for
byte) must be as at its start, else the session errors. Here a small pytest session of its own, with
the guard pointed at a folder of this test, shows that a test writing into <runs>/smoke fails it, and
that one writing elsewhere does not."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from runs_guard import changes, tree_state

TESTS = Path(__file__).resolve().parent


def _user_runs(root: Path) -> Path:
    """A runs folder as a user has it: a smoke series and a cpu one."""
    runs = root / "runs"
    (runs / "smoke" / "notebooks").mkdir(parents=True)
    (runs / "smoke" / "report.html").write_text("<html>the user's report</html>")
    (runs / "smoke" / "listening").mkdir()
    (runs / "smoke" / "listening" / "votes.csv").write_text("study_id,rater\ns,alice\n")
    (runs / "cpu").mkdir()
    (runs / "cpu" / "timings.json").write_text("{}")
    return runs


def test_tree_state_sees_every_kind_of_change(tmp_path):
    runs = _user_runs(tmp_path)
    before = tree_state(runs)
    assert changes(before, tree_state(runs)) == []
    votes = runs / "smoke" / "listening" / "votes.csv"
    st = votes.stat()
    votes.write_text("study_id,rater\ns,carol\n")  # same size; the old modification time put back
    os.utime(votes, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert changes(before, tree_state(runs)) == ["changed smoke/listening/votes.csv"]  # the bytes differ
    (runs / "test-123").mkdir()
    (runs / "smoke" / "report.html").unlink()
    (runs / "cpu" / "timings.json").write_text('{"00": 1}')
    assert changes(before, tree_state(runs)) == ["added test-123", "removed smoke/report.html",
                                                 "changed cpu/timings.json", "changed smoke/listening/votes.csv"]
    assert tree_state(tmp_path / "absent") == {}


INNER_CONFTEST = "from runs_guard import runs_untouched  # noqa: F401\n"
INNER_TESTS = textwrap.dedent("""
    import os
    from pathlib import Path

    def test_reads_only():
        assert (Path(os.environ["EISBACH_GUARDED_RUNS"]) / "smoke" / "report.html").exists()

    def test_writes(tmp_path):
        target = Path(os.environ["EISBACH_GUARDED_RUNS"]) / "smoke" / "report.html" if os.environ["WRITE_USER_RUNS"] == "1" \\
            else tmp_path / "report.html"
        target.write_text("<html>the test's report</html>")
""")


def _inner_session(tmp_path: Path, write_user_runs: bool) -> subprocess.CompletedProcess:
    runs = _user_runs(tmp_path / "user")
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(INNER_CONFTEST)
    (suite / "test_inner.py").write_text(INNER_TESTS)
    env = {**os.environ, "EISBACH_GUARDED_RUNS": str(runs), "WRITE_USER_RUNS": "1" if write_user_runs else "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(suite),
                           str(suite)], capture_output=True, text=True, env=env, cwd=suite, timeout=120)


def test_a_session_that_writes_into_runs_smoke_fails(tmp_path):
    proc = _inner_session(tmp_path, write_user_runs=True)
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "2 passed, 1 error" in proc.stdout, proc.stdout[-2000:]
    assert "which belongs to the user" in proc.stdout and "changed smoke/report.html" in proc.stdout


def test_a_session_that_leaves_runs_alone_passes(tmp_path):
    proc = _inner_session(tmp_path, write_user_runs=False)
    assert proc.returncode == 0, proc.stdout[-2000:]
