"""The listening study in a real browser (Debian's chromium driven by playwright, no `playwright install`).

(a) study.html from a file:// URL: a rater name, a pair played (the audio elements report a
    duration), every pair answered, a reload midway keeps the answers, the CSV saved (download),
    imported, and `study_verdicts` counts exactly the answered votes; a tampered copy is refused
    with file and line named and votes.csv unchanged.
(b) the live notebook: a JupyterLab server started here (127.0.0.1, a free port, a token, bounded
    time, killed at the end) opens a small listening notebook (a tiny kit and the `StudyAB` widget,
    the code notebook 05 runs in a live session, without needing the whole series), runs it, a
    blind A/B choice is clicked, and the vote lands in votes.csv with the hidden arm recorded.

Both use a tiny samples fixture (a few one-second WAVs), so they take seconds, not the series.
Skipped (with the reason) where chromium or playwright is missing; CI installs both.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from eisbach_lib.study import study_verdicts
from eisbach_lib.study_design import StudyError, load_study, trials_of
from eisbach_lib.study_kit import make_kit
from eisbach_lib.study_votes import import_votes, read_votes
from helpers import smoke_at, tiny_samples
from series_run import profile_copy

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pw = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download needed)")
pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium)"),
              pytest.mark.timeout(240), pytest.mark.slow]  # the slow tier: make test-all, CI


@pytest.fixture(scope="module")
def browser():
    with pw.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--autoplay-policy=no-user-gesture-required", "--mute-audio"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def session(browser, tmp_path_factory):
    """Take the whole study in the page once; the tests below read what it produced."""
    t0 = time.time()
    runs = tmp_path_factory.mktemp("runs")
    tiny_samples(runs)
    cfg = smoke_at(runs, {"name": "browser"})
    study_path = make_kit(cfg)
    doc = load_study(study_path)
    n_trials = len(trials_of(doc["pairs"]))
    page_url = (study_path.parent / "study.html").as_uri()

    ctx = browser.new_context(accept_downloads=True)
    page = ctx.new_page()
    page.goto(page_url)
    visible = page.inner_text("body")
    for word in ("eisbach", "anchor", "catch"):
        assert word not in visible
    page.fill("#rater", "tester")
    page.click("#begin")
    page.click("#playA")
    page.wait_for_function("document.getElementById('audioA').duration > 0 && "
                           "document.getElementById('audioB').duration > 0", timeout=15000)
    durations = page.evaluate("[document.getElementById('audioA').duration, document.getElementById('audioB').duration]")
    assert "eisbach" not in page.inner_text("body")

    answers = {}
    for k in range(n_trials):
        assert page.inner_text("#progress") == f"trial {k + 1} of {n_trials}"
        dev_choice = ["A", "B", "tie"][k % 3]
        page.check(f"input[name=q_development][value={dev_choice}]")
        page.check("input[name=q_preference][value=A]")
        answers[k] = dev_choice
        page.click("#next")
        if k == n_trials // 2 - 1:  # reload midway: the answers and the position are kept
            page.reload()
            assert page.input_value("#rater") == "tester"
            page.click("#begin")
            assert page.inner_text("#progress") == f"trial {k + 2} of {n_trials}"
            page.click("#prev")
            assert page.is_checked(f"input[name=q_development][value={dev_choice}]")
            page.click("#next")
    assert page.is_visible("#end")
    # the end screen leads back to the answers: the last trial, then from the first
    page.click("#back")
    assert page.inner_text("#progress") == f"trial {n_trials} of {n_trials}"
    assert page.is_checked(f"input[name=q_development][value={answers[n_trials - 1]}]")
    page.click("#next")
    assert page.is_visible("#end")
    page.click("#review")
    assert page.inner_text("#progress") == f"trial 1 of {n_trials}" and page.is_checked("input[name=q_preference][value=A]")
    for _ in range(n_trials):
        page.click("#next")
    assert page.is_visible("#end")
    with page.expect_download() as dl:
        page.click("#save")
    csv_path = runs / "returned.csv"
    dl.value.save_as(csv_path)
    ctx.close()
    return {"cfg": cfg, "doc": doc, "study": study_path, "csv": csv_path, "n_trials": n_trials,
            "durations": durations, "seconds": time.time() - t0}


def test_page_taken_offline_then_imported_and_counted(session):
    doc, study = session["doc"], session["study"]
    assert all(d > 0.5 for d in session["durations"])  # one-second clips, as MP3
    returned = pd.read_csv(session["csv"], dtype=str, keep_default_na=False)
    assert len(returned) == 2 * session["n_trials"] and set(returned["rater"]) == {"tester"}

    assert import_votes(study, [session["csv"]]) == 2 * session["n_trials"]
    votes = read_votes(study.parent / "votes.csv")
    table = study_verdicts(votes, doc["pairs"])
    trials = trials_of(doc["pairs"])
    n_real = int((~trials["is_catch"]).sum())
    assert table["n_votes"].sum() == 2 * n_real  # exactly the answered votes (catch trials apart)
    assert (table["n_raters"] == 1).all() and (table["verdict"] == "too few votes").all()
    pref = table.set_index("question").loc["preference"]
    assert pref["position_bias"] == 1.0  # this rater always answered "A"
    catch = table.attrs["catch"].set_index("rater")
    assert catch.loc["tester", "n_catch"] == int(trials["is_catch"].sum())

    # positions: arm_a's clip played as A in about half of the real trials (balanced per stratum)
    v = votes[votes["question"] == "preference"].merge(doc["pairs"], on=["pair_id", "question"])
    real = v[~v["is_catch_y"].astype(bool)]
    a_at_a = (real["preferred_arm"] == real["arm_a"]).sum()  # "A" was chosen every time
    assert abs(a_at_a - len(real) / 2) <= 1
    print(f"\nbrowser session (a): {session['seconds']:.1f} s, {session['n_trials']} trials")


def test_tampered_csv_refused_votes_unchanged(session, tmp_path):
    study = session["study"]
    votes_csv = study.parent / "votes.csv"
    import_votes(study, [session["csv"]])
    before = votes_csv.read_bytes()
    lines = session["csv"].read_text().splitlines()
    fields = lines[3].split(",")
    fields[2] = "t99"  # pair_id of the row on line 4
    lines[3] = ",".join(fields)
    bad = tmp_path / "tampered.csv"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(StudyError, match=r"tampered.csv, line 4: unknown pair_id/question 't99'"):
        import_votes(study, [bad])
    assert votes_csv.read_bytes() == before
    out = subprocess.run([sys.executable, "-m", "eisbach_lib.cli", "listen", "import", str(bad),
                          "--profile", str(profile_copy(tmp_path / "profile.yaml", session["cfg"].runs_dir))],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert out.returncode == 2 and "tampered.csv, line 4" in out.stderr
    assert votes_csv.read_bytes() == before


# ----------------------------------------------------------------------------- (b) live JupyterLab


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NOTEBOOK_CELLS = [
    "from pathlib import Path\nfrom eisbach_lib.study_widget import StudyAB\nrater = 'lab tester'\n"
    "ab = StudyAB(Path('{study}'), rater=rater)\nab.widget",
]


def test_live_jupyterlab_vote_lands_in_votes_csv(browser, tmp_path):
    t0 = time.time()
    runs = tmp_path / "runs"
    runs.mkdir()
    tiny_samples(runs)
    study = make_kit(smoke_at(runs, {"name": "lab"}))
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                     "source": c.format(study=study)} for c in NOTEBOOK_CELLS],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "listen.ipynb").write_text(json.dumps(nb))
    port, token = free_port(), "t" + os.urandom(12).hex()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "jcfg"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "jrt"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "jws")}
    log = open(tmp_path / "lab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}", "--ServerApp.open_browser=False",
         *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
         "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        import urllib.request

        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    pytest.fail(f"JupyterLab did not start: {(tmp_path / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        ctx = browser.new_context()
        page = ctx.new_page()
        page.set_default_timeout(60000)
        page.goto(f"http://127.0.0.1:{port}/lab/tree/listen.ipynb?token={token}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90000)
        page.wait_for_function("(document.querySelector('#jp-main-statusbar') || {innerText: ''})"
                               ".innerText.includes('Idle')", timeout=90000)  # the kernel is up
        page.click(".jp-Notebook .jp-Cell .jp-InputArea-editor")
        page.keyboard.press("Shift+Enter")  # run the cell
        button = page.locator(".jp-OutputArea-output .widget-button", has_text="no preference")
        button.wait_for(timeout=90000)
        page.locator(".jp-OutputArea-output").get_by_role("button", name="A", exact=True).click()
        votes_csv = study.parent / "votes.csv"
        deadline = time.time() + 30
        while not (votes_csv.exists() and len(read_votes(votes_csv)) >= 1) and time.time() < deadline:
            time.sleep(0.3)
        votes = read_votes(votes_csv)
        ctx.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    assert len(votes) == 1, (tmp_path / "lab.log").read_text()[-2000:]
    v = votes.iloc[0]
    doc = load_study(study)
    p = doc["pairs"].set_index(["pair_id", "question"]).loc[(v["pair_id"], v["question"])]
    assert v["rater"] == "lab tester" and v["choice"] == "A" and v["question"] == "development"
    assert v["preferred_arm"] in (p["arm_a"], p["arm_b"])  # the hidden arm is recorded
    print(f"\nlive JupyterLab (b): {time.time() - t0:.1f} s")
