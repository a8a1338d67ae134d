"""The smoke series' report in a real browser (Debian's chromium driven by playwright through its
executable_path; no browser is downloaded): it opens from file:// with the network cut off and
every request to anything but file:/data: refused, every figure has a non-zero rendered size,
every audio element loads a non-zero duration, the scorecard's verdict table starts on the first
screen and before the first notebook, and the page names no absolute path of the runs folder."""

import os
import shutil
from pathlib import Path

import pytest

from eisbach_lib.report import external_refs, names_folder
from series_run import assert_ok

pytestmark = pytest.mark.slow  # the slow tier: make test-all, CI

# Playwright waits on every media element's metadata together
AUDIO_DURATIONS_JS = """
async () => Promise.all([...document.querySelectorAll('audio')].map(a => new Promise(resolve => {
  const done = () => resolve(a.duration);
  if (a.readyState >= 1) return done();
  a.addEventListener('loadedmetadata', done, {once: true});
  a.addEventListener('error', () => resolve(-1), {once: true});
  a.preload = 'metadata';
  a.load();
})))
"""
IMAGE_SIZES_JS = """
async () => {
  const imgs = [...document.images];
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = r; i.onerror = r; })));
  return imgs.map(i => { const b = i.getBoundingClientRect();
    return {w: b.width, h: b.height, nw: i.naturalWidth, nh: i.naturalHeight, src: i.src.slice(0, 40)}; });
}
"""


def _chromium() -> str:
    path = os.environ.get("EISBACH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        msg = "no chromium: apt-get install chromium chromium-driver (make test-all does it as root)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def test_report_opens_offline_with_figures_and_audio(tmp_path, smoke_run):
    chromium = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (in .[dev])")
    assert_ok(smoke_run.proc)
    runs = Path(smoke_run.cfg.runs_dir)
    report = runs.resolve() / "report.html"
    page_text = report.read_text(encoding="utf-8")
    assert external_refs(page_text) == []
    assert names_folder(page_text, runs) == [], "the report names the machine's runs folder"
    assert page_text.index('id="verdicts"') < page_text.index('id="checks"') < page_text.index('class="eisbach-notebook"')
    n_img, n_audio = page_text.count("<img"), page_text.count("<audio")
    assert n_img >= 8 and n_audio >= 4, (n_img, n_audio)  # 00-06 draw figures; 00 and 01 play clips

    refused = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True)
        context = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})

        def guard(route):
            url = route.request.url
            if url.startswith(("file:", "data:", "blob:")):
                route.continue_()
            else:
                refused.append(url)
                route.abort()

        context.route("**/*", guard)
        page = context.new_page()
        page.goto(report.as_uri(), wait_until="load")
        verdicts_top = page.evaluate("document.getElementById('verdicts').getBoundingClientRect().top")
        images = page.evaluate(IMAGE_SIZES_JS)
        durations = page.evaluate(AUDIO_DURATIONS_JS)
        page.screenshot(path=str(tmp_path / "report_top.png"))
        browser.close()

    assert refused == [], f"the report fetched from the network: {refused[:5]}"
    assert 0 < verdicts_top < 900, f"the verdict table starts at {verdicts_top} px, below the first screen"
    assert len(images) == n_img
    bad = [i for i in images if not (i["w"] > 0 and i["h"] > 0 and i["nw"] > 0 and i["nh"] > 0)]
    assert not bad, f"{len(bad)} of {len(images)} images have no rendered size: {bad[:3]}"
    assert len(durations) == n_audio
    assert all(d is not None and d > 0 for d in durations), durations
