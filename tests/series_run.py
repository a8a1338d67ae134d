"""Profile copies for tests, and the session's one smoke run of the notebook series.

Tests never write into the user's runs/ (tests/runs_guard.py checks it): whatever runs a profile gets
a copy of it whose runs_dir and figures_dir point into a temporary folder. The smoke series runs
once per pytest session (the `smoke_run` fixture in conftest.py), shared by test_series.py,
test_cli_chain.py and test_report_browser.py."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from eisbach_lib.config import CONFIGS, Profile, load_profile, set_dotted


def profile_copy(path: Path, runs: Path, figures: Path | None = None, source: str = "smoke",
                 changes: dict | None = None) -> Path:
    """configs/<source>.yaml loaded as YAML with runs_dir = `runs`, figures_dir = `figures` (default
    <runs>/figures) and the dotted `changes` ({"finetune.steps": 5}) set, written to `path` (whose stem
    becomes the profile's label: name it <source>.yaml to keep the series' "(smoke)" lines and its
    expected times). Keys are set, never found by text replacement, so a reworded profile cannot
    leave runs_dir pointing at the user's runs/."""
    raw = yaml.safe_load((CONFIGS / f"{source}.yaml").read_text())
    where = {"runs_dir": str(runs), "figures_dir": str(figures if figures is not None else Path(runs) / "figures")}
    for key, value in {**where, **(changes or {})}.items():
        set_dotted(raw, key, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@dataclass
class SmokeRun:
    """The session's smoke series: the `eisbach reproduce` process, the profile copy it ran with, and
    that profile loaded (runs_dir and figures_dir in a temporary folder)."""

    proc: subprocess.CompletedProcess
    profile: Path
    cfg: Profile


def smoke_series(root: Path) -> SmokeRun:
    """`eisbach reproduce --profile <root>/smoke.yaml` (notebooks 00-07, then the report) with the
    runs in <root>/runs; the terminal output is kept in <runs>/reproduce.log.
    EISBACH_REUSE_SMOKE=<folder> (a developer's shortcut, never CI's) tests the series an earlier
    session left in that folder (the `root` it printed with -s; pytest keeps the folders of its last
    three sessions) instead of running it again."""
    reuse = os.environ.get("EISBACH_REUSE_SMOKE")
    if reuse and not os.environ.get("CI") and (Path(reuse) / "runs" / "reproduce.log").exists():
        profile = Path(reuse) / "smoke.yaml"
        cfg = load_profile(str(profile))
        log = (Path(cfg.runs_dir) / "reproduce.log").read_text()
        return SmokeRun(subprocess.CompletedProcess([], 0, log, ""), profile, cfg)
    profile = profile_copy(root / "smoke.yaml", root / "runs")
    cfg = load_profile(str(profile))
    print(f"\nsmoke series in {root}", flush=True)
    proc = subprocess.run([sys.executable, "-m", "eisbach_lib.cli", "reproduce", "--profile", str(profile)],
                          capture_output=True, text=True, timeout=1500)
    if proc.returncode == 0:
        (Path(cfg.runs_dir) / "reproduce.log").write_text(proc.stdout)
    return SmokeRun(proc, profile, cfg)


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
