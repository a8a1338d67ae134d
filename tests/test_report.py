"""report.html leads with the answer and names no folder of the machine, on two
small executed notebooks written here (no series run): the scorecard's verdict table, the controls
and the key figures come before the first notebook section, and no absolute path of the runs
folder, the figures folder or the repository is left in the page, though the notebooks print them."""

import base64
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from bs4 import BeautifulSoup

from eisbach_lib.config import REPO
from eisbach_lib.report import external_refs, names_folder, relative_paths, write_report
from helpers import smoke_at

# a 1x1 PNG
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def _notebook(path: Path, lines: list[str]) -> None:
    """An 'executed' notebook: one code cell whose stream output prints `lines`."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(paths)", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="\n".join(lines) + "\n")]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"), cell]
    nbformat.write(nb, str(path))


@pytest.fixture
def series(tmp_path):
    """A profile whose runs folder holds two executed notebooks that print absolute paths, a
    scorecard with claim, control and manipulation rows, and one key figure."""
    runs, figures = tmp_path / "runs" / "smoke", tmp_path / "figures"
    (runs / "notebooks").mkdir(parents=True)
    figures.mkdir()
    _notebook(runs / "notebooks" / "00_corpus.ipynb",
              [f"profile smoke: runs in {runs}, figures in {figures}", f"cache {runs}/cache/abc123",
               f"library {REPO}/eisbach_lib/anatomy.py", f"sibling {runs}2/x stays",
               f"profile = {tmp_path}/profiles/mine.yaml"])
    _notebook(runs / "notebooks" / "07_scorecard.ipynb", [f"written: {figures}/scorecard.md and scorecard.csv"])
    card = pd.DataFrame([
        {"claim": "C1", "role": "primary", "statement": "direction kept", "evidence": "update cosine", "estimate": -0.05,
         "ci_lo": -0.07, "ci_hi": -0.03, "mde": 0.02, "sesoi": None, "n": 6, "verdict": "contradicted", "note": ""},
        {"claim": "C5", "role": "primary", "statement": "more diverse", "evidence": "intra-prompt Vendi",
         "estimate": 0.1, "ci_lo": None, "ci_hi": None, "n": 4, "verdict": "not testable", "note": "2 seeds < 3"},
        {"claim": "PC", "role": "control", "statement": "", "evidence": "oracle_texture − none, temporal_flatness",
         "estimate": -0.2, "ci_lo": -0.3, "ci_hi": -0.1, "n": 12, "verdict": "supported", "note": ""},
        {"claim": "M1", "role": "manipulation", "statement": "", "evidence": "none − base, spectral_contrast",
         "estimate": 1.5, "ci_lo": 0.5, "ci_hi": 2.5, "n": 12, "verdict": "supported", "note": ""},
    ])
    card.to_csv(figures / "scorecard.csv", index=False)
    (figures / "07_effects_in_sesoi.png").write_bytes(PNG)
    (runs / "timings.json").write_text('{"00_corpus.ipynb": 12.5, "07_scorecard.ipynb": 3.0}')
    return smoke_at(runs, {"figures_dir": str(figures)}, path=tmp_path / "profiles" / "mine.yaml")


def test_report_opens_with_the_scorecard_controls_and_key_figures(series):
    page = write_report(series).read_text(encoding="utf-8")
    first_notebook = page.index('<section class="eisbach-notebook"')
    verdicts, controls, figures = page.index('id="verdicts"'), page.index('id="checks"'), page.index('id="key-figures"')
    assert verdicts < controls < figures < page.index('id="notebooks"') < first_notebook
    lead = page[:first_notebook]
    assert "contradicted" in lead and "2 seeds &lt; 3" in lead  # the claims' verdicts and reasons
    soup = BeautifulSoup(lead, "html.parser")
    first_cells = {t: [tr.find("td").get_text() for tr in soup.find(id=t).find_all("tr")[1:]] for t in ("verdicts", "checks")}
    assert first_cells == {"verdicts": ["C1", "C5"], "checks": ["PC", "M1"]}  # claims, then controls in their own table
    assert "07_effects_in_sesoi.png" in lead[figures:] and "data:image/png;base64," in lead[figures:]
    assert "0:12" in lead[page.index('id="notebooks"'):]  # the run times are still there, after the answer
    assert external_refs(page) == []


def test_report_holds_no_absolute_path_of_the_machine(series):
    runs, figures = series.runs_dir, series.figures_dir
    page = write_report(series).read_text(encoding="utf-8")
    for folder in (runs, runs.resolve(), figures, REPO):
        assert names_folder(page, folder) == [], folder
    assert str(REPO) not in page and str(figures) not in page
    # what the notebooks printed now reads relative to the runs folder, where report.html lies
    assert "runs in ., figures in ../../figures" in page
    assert "cache cache/abc123" in page and "written: ../../figures/scorecard.md" in page
    assert f"sibling {runs}2/x stays" in page  # another folder that merely starts the same is left alone
    assert "profile = &lt;profile folder&gt;/mine.yaml" in page  # a profile given as a YAML path


def test_relative_paths_leaves_data_uris_alone():
    runs = Path("/srv/runs/smoke")  # only base64 characters, so it could occur inside an image's data
    uri = "data:image/png;base64,AAAA" + str(runs) + "/BBBB"
    text = f'<img src="{uri}"> {runs}/notebooks'
    out = relative_paths(text, runs)
    assert uri in out and out.endswith(" notebooks")
