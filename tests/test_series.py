"""The whole chain: `eisbach reproduce --profile smoke` runs notebooks 00-07 under papermill and
leaves executed notebooks, figures and a scorecard with one row per claim."""

import json
import re
import subprocess
from pathlib import Path
import sys

import pandas as pd
import pytest

from eisbach_lib.scorecard import VERDICTS
from series_run import assert_ok, profile_copy

pytestmark = pytest.mark.slow  # the slow tier: make test-all, CI

REPO = Path(__file__).resolve().parent.parent

#: notebooks whose live widgets are meant to stay (the listening grid and blind A/B)
LIVE_WIDGETS = {"05_samples.ipynb"}
#: notebooks allowed a widget progress bar (none: every long loop prints plain lines)
TQDM_LEFT: set[str] = set()


def test_smoke_series_end_to_end(smoke_run):
    cfg, proc = smoke_run.cfg, smoke_run.proc
    assert_ok(proc)

    runs, figs = Path(cfg.runs_dir), Path(cfg.figures_dir)
    executed = sorted((runs / "notebooks").glob("0*.ipynb"))
    assert [p.name[:2] for p in executed] == [f"0{i}" for i in range(8)]
    # the series ran on the profile copy: papermill handed its path to every notebook's parameters
    # cell, and each notebook's setup() says it runs in the temporary folder, not the user's runs/
    assert not runs.is_relative_to(REPO / "runs")
    for p in executed:
        cells = json.loads(p.read_text())["cells"]
        injected = [c for c in cells if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(injected) == 1, p.name
        given: dict = {}
        exec("".join(injected[0]["source"]), given)  # papermill's injected cell: `profile = "..."`
        assert given["profile"] == str(smoke_run.profile), p.name
        text = "".join(o.get("text", "") if isinstance(o.get("text", ""), str) else "".join(o["text"])
                       for c in cells for o in c.get("outputs", []))
        assert f"runs in {runs}," in text, p.name
    for fig in ("02_entropy_weight_vs_t.png", "06_metrics_by_arm.png", "04_gradient_mass_by_texture.png"):
        assert (figs / fig).stat().st_size > 5_000, fig
    card = pd.read_csv(figs / "scorecard.csv", keep_default_na=False)
    claims = card[card["role"].isin(["primary", "exploratory"])]
    assert list(claims["claim"]) == [f"C{i}" for i in range(1, 11)]
    assert set(card["verdict"]) <= set(VERDICTS)
    # the per-sample identity of C1 (detached weights keep each sample's direction) must show
    assert card[(card["claim"] == "C1") & (card["role"] == "sanity")]["verdict"].tolist() == ["supported"]
    # smoke trains 2 seeds: no verdict on trained or generated runs, and the reason is given
    for c in ("C5", "C6", "C7"):
        row = claims.set_index("claim").loc[c]
        assert row["verdict"] == "not testable" and row["note"], (c, row.to_dict())
    # the committed reference figures are untouched by a smoke run
    assert str(figs).startswith(str(runs))
    # the terminal: one start and one end line per notebook, no kernel start-up warnings
    for p in executed:
        assert re.search(rf"\] {p.name} \(smoke\): started .*expected", proc.stdout), p.name
        assert re.search(rf"\] {p.name} \(smoke\): done in \d+:\d\d", proc.stdout), p.name
    assert "[IPKernelApp] WARNING" not in proc.stdout + proc.stderr and "frozen modules" not in proc.stderr
    timings = json.loads((runs / "timings.json").read_text())
    assert all(timings[p.name] > 0 for p in executed)
    assert (runs / "report.html").exists() and f"report: {runs / 'report.html'}" in proc.stdout


def test_executed_notebooks_show_every_saved_figure_inline_and_no_progress_widgets(smoke_run):
    """Each executed notebook holds at least as many inline PNGs as its code saves figures, and
    no widget placeholders (progress prints plain lines) except the live listening widgets."""
    assert_ok(smoke_run.proc)
    runs = Path(smoke_run.cfg.runs_dir)
    tables = {}
    for path in sorted((runs / "notebooks").glob("0*.ipynb")):
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        sources = ["".join(c["source"]) for c in code]
        saved = sum(src.count(".savefig(") + src.count("save_png(") for src in sources)  # plots.save_png
        outputs = [o for c in code for o in c.get("outputs", [])]
        images = sum("image/png" in o.get("data", {}) for o in outputs)
        assert images >= saved, f"{path.name}: {images} inline images for {saved} saved figures"
        widgets = sum("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
        if path.name not in LIVE_WIDGETS | TQDM_LEFT:
            assert widgets == 0, f"{path.name}: {widgets} widget outputs (a progress bar drawn as a widget?)"
        tables[path.name] = sum("<table" in "".join(o.get("data", {}).get("text/html", "")) for o in outputs)
    # pandas frames render as HTML tables (00 shows the manifest, 03 the grid, 06 the metrics)
    assert all(tables[n] > 0 for n in ("00_corpus.ipynb", "03_train_grid.ipynb", "06_metrics.ipynb")), tables


def test_bad_profile_value_names_the_key(tmp_path):
    bad = profile_copy(tmp_path / "bad.yaml", tmp_path / "runs", changes={"finetune.arms": ["none", "eisbach_typo"]})
    proc = subprocess.run([sys.executable, "-m", "eisbach_lib.cli", "grid", "--profile", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "finetune.arms" in proc.stderr and "eisbach_typo" in proc.stderr and str(bad) in proc.stderr


def test_missing_profile_lists_the_known_ones():
    proc = subprocess.run([sys.executable, "-m", "eisbach_lib.cli", "corpus", "--profile", "nope"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "smoke" in proc.stderr and "nope" in proc.stderr


def test_help_lists_the_design_commands():
    out = subprocess.run([sys.executable, "-m", "eisbach_lib.cli", "--help"], capture_output=True, text=True).stdout
    for cmd in ("corpus", "pretrain", "train", "generate", "evaluate", "reproduce"):
        assert cmd in out



