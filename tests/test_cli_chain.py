"""The command line alone gives the notebooks' scorecard: `eisbach corpus`, `pretrain`, `train` (each
arm and seed of the grid), `generate`, `anatomy`, `dynamics` and `evaluate` (which reads the anatomy
tables and no longer computes them itself) on the smoke profile, into a folder of their own, write
a scorecard.csv byte-identical to the one `eisbach reproduce --profile smoke` (the notebook series)
writes."""

import subprocess
import sys
from pathlib import Path

import pytest

from eisbach_lib.config import load_profile
from series_run import assert_ok, profile_copy

pytestmark = pytest.mark.slow  # the slow tier: make test-all, CI


def _eisbach(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "eisbach_lib.cli", *args], capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, f"eisbach {' '.join(args)}:\n{proc.stdout[-3000:]}{proc.stderr[-5000:]}"


def test_cli_chain_writes_the_series_scorecard(tmp_path, smoke_run):
    assert_ok(smoke_run.proc)  # the notebook series (shared with test_series.py), in its own temporary folder
    profile = profile_copy(tmp_path / "smoke.yaml", tmp_path / "runs")
    cfg = load_profile(str(profile))
    assert cfg.runs_dir == tmp_path / "runs" and cfg.name == "smoke"

    _eisbach("corpus", "--profile", str(profile))
    _eisbach("pretrain", "--profile", str(profile))
    for adapter in cfg.finetune.adapters:
        for seed in cfg.finetune.seeds:
            for arm in cfg.finetune.arms:
                _eisbach("train", "--profile", str(profile), "--adapter", adapter, "--arm", arm, "--seed", str(seed))
    _eisbach("generate", "--profile", str(profile))
    _eisbach("anatomy", "--profile", str(profile))
    _eisbach("dynamics", "--profile", str(profile))
    _eisbach("evaluate", "--profile", str(profile))

    chain = tmp_path / "runs" / "figures" / "scorecard.csv"
    notebooks = Path(smoke_run.cfg.figures_dir) / "scorecard.csv"
    assert chain.read_bytes() == notebooks.read_bytes()
