"""One smoke run of the notebook series per pytest session, shared by test_series.py and
test_report_browser.py (whichever asks first runs it; the other reads the same result)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from eisbach_lib.config import load_profile

_RESULT: subprocess.CompletedProcess | None = None


def smoke_series() -> subprocess.CompletedProcess:
    """`eisbach reproduce --profile smoke` (notebooks 00-07, then the report), run once.
    EISBACH_REUSE_SMOKE=1 (a developer's shortcut, never CI's) tests the last run's output instead."""
    global _RESULT
    if _RESULT is None and os.environ.get("EISBACH_REUSE_SMOKE") == "1" and not os.environ.get("CI"):
        log = Path(load_profile("smoke")["runs_dir"]) / "reproduce.log"
        if log.exists():
            _RESULT = subprocess.CompletedProcess([], 0, log.read_text(), "")
    if _RESULT is None:
        _RESULT = subprocess.run([sys.executable, "-m", "eisbach_lib.cli", "reproduce", "--profile", "smoke"],
                                 capture_output=True, text=True, timeout=1500)
        if _RESULT.returncode == 0:
            log = Path(load_profile("smoke")["runs_dir"]) / "reproduce.log"
            log.write_text(_RESULT.stdout)
    return _RESULT


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
