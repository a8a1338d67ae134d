"""One self-contained HTML page of an executed notebook series: `runs/<profile>/report.html`.

The executed copies that `eisbach reproduce` leaves in `<runs_dir>/notebooks/` are rendered with
nbconvert's `lab` template, in order, into one page. Their figures are already inline (PNG data
URIs in the cell outputs) and so is their audio (IPython's `Audio` writes WAV data URIs); what the
template adds from the network is removed: every `<script>` (require.js, MathJax, mermaid and the
widget manager all come from CDNs, and nothing in a saved output needs a script) and every
`<link>` to another file. The page therefore fetches nothing and opens offline from file://;
`external_refs` lists anything that would still be fetched (the build fails if there is any).
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import re
import site
import sys
from pathlib import Path

from bs4 import BeautifulSoup
from .files import atomic_text
from .layout import Layout

#: attributes through which a browser fetches a resource (an <a href> is navigation, not a fetch)
FETCH_ATTRS = ("src", "srcset", "poster", "data", "background")
_REMOTE = re.compile(r"^\s*(https?:)?//", re.I)
_CSS_REMOTE_URL = re.compile(r"""url\(\s*['"]?\s*(https?:)?//""", re.I)
_CSS_IMPORT = re.compile(r"""@import\s+(url\()?\s*['"]?\s*(https?:)?//""", re.I)

REPORT_CSS = """
body { margin: 0 auto; max-width: 1200px; padding: 1em 2em; }
.eisbach-report-header { border-bottom: 2px solid #888; margin-bottom: 1em;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
.eisbach-report-header table { border-collapse: collapse; }
.eisbach-report-header td, .eisbach-report-header th { padding: 2px 12px 2px 0; text-align: left; }
.eisbach-notebook { border-top: 4px solid #4a6fa5; margin-top: 2.5em; padding-top: 0.5em; }
.eisbach-notebook > .eisbach-notebook-title { font-family: monospace; color: #4a6fa5; font-size: 0.95em; }
"""


def external_refs(page: str) -> list[str]:
    """Everything in an HTML page a browser would fetch from elsewhere: remote (http, https or
    protocol-relative) values of FETCH_ATTRS on any element, of `href` on any element but <a>,
    and remote `url(...)`/`@import` in inline CSS. An empty list means the page is self-contained."""
    soup = BeautifulSoup(page, "html.parser")
    found = []
    for tag in soup.find_all(True):
        for attr in FETCH_ATTRS + (("href",) if tag.name != "a" else ()):
            value = tag.get(attr)
            if isinstance(value, str) and _REMOTE.match(value):
                found.append(f"<{tag.name} {attr}={value[:120]}>")
    for style in soup.find_all("style"):
        text = style.get_text()
        if _CSS_REMOTE_URL.search(text) or _CSS_IMPORT.search(text):
            found.append("<style> with a remote url()/@import")
    for tag in soup.find_all(style=True):
        if _CSS_REMOTE_URL.search(tag["style"]):
            found.append(f"<{tag.name} style=...remote url()>")
    return found


def _template_dirs() -> list[str]:
    """nbconvert's template folders under every prefix Python may have installed it in. In a venv
    made with --system-site-packages (as `make` does to keep an existing torch) nbconvert is the
    base interpreter's, but Jupyter searches only the venv's share/jupyter for its templates."""
    prefixes = dict.fromkeys([sys.prefix, sys.base_prefix, sys.exec_prefix, site.getuserbase()])
    dirs = [Path(p) / "share" / "jupyter" / "nbconvert" / "templates" for p in prefixes]
    return [str(d) for d in dirs if d.is_dir()]


def render_notebook(path: Path) -> tuple[list[str], str]:
    """(the template's CSS blocks, the notebook's cells as HTML) for one executed notebook, with
    every <script> and <link> removed (see the module docstring)."""
    from nbconvert import HTMLExporter

    dirs = _template_dirs()  # templates/lab, templates/base, and templates itself for "base/null.j2"
    exporter = HTMLExporter(template_name="lab", embed_images=True, extra_template_basedirs=dirs, extra_template_paths=dirs)
    page, _ = exporter.from_filename(str(path))
    soup = BeautifulSoup(page, "html.parser")
    for tag in soup.find_all(["script", "link"]):
        tag.decompose()
    styles = [s.get_text() for s in soup.find_all("style")]
    main = soup.find("main") or soup.body
    return styles, main.decode_contents() if main else ""


def _fmt_s(s: float | None) -> str:
    if s is None:
        return ""
    m, sec = divmod(int(round(s)), 60)
    return f"{m}:{sec:02d}"


def build_report(notebooks: list[Path], out: Path, title: str, timings: dict[str, float] | None = None,
                 extra_html: str = "") -> Path:
    """Write the notebooks, in the order given, into one HTML file `out` with a table of contents
    (and each notebook's run time when `timings` has it; `extra_html` goes under it). Raises ValueError naming what would be
    fetched if the page is not self-contained."""
    if not notebooks:
        raise ValueError(f"no executed notebooks to put in {out}")
    timings = timings or {}
    css: list[str] = []
    sections, toc = [], []
    for nb in notebooks:
        styles, body = render_notebook(nb)
        css = css or styles  # the template's CSS is the same for every notebook
        anchor = "nb-" + nb.stem
        t = timings.get(nb.name)
        toc.append(f'<tr><td><a href="#{anchor}">{html.escape(nb.name)}</a></td><td>{_fmt_s(t)}</td></tr>')
        sections.append(f'<section class="eisbach-notebook" id="{anchor}">'
                        f'<div class="eisbach-notebook-title">{html.escape(nb.name)}'
                        f'{" · " + _fmt_s(t) if t is not None else ""}</div>\n{body}\n</section>')
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    head = "\n".join(f"<style>{c}</style>" for c in css) + f"<style>{REPORT_CSS}</style>"
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title>\n{head}\n</head>\n"
            f'<body class="jp-Notebook" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">\n'
            f'<header class="eisbach-report-header"><h1>{html.escape(title)}</h1>'
            f"<p>Written {when} from the executed notebooks in <code>{html.escape(str(notebooks[0].parent))}</code>. "
            f"Figures and audio are embedded; the page fetches nothing.</p>"
            f"<table><tr><th>notebook</th><th>run time</th></tr>{''.join(toc)}</table>{extra_html}</header>\n"
            + "\n".join(sections) + "\n</body></html>\n")
    remote = external_refs(page)
    if remote:
        raise ValueError(f"{out}: the report would fetch {len(remote)} remote resource(s), e.g. {remote[:3]}")
    return atomic_text(out, page, encoding="utf-8")


def write_report(cfg: dict) -> Path:
    """`<runs_dir>/report.html` from the executed notebooks in `<runs_dir>/notebooks/` (run times
    from `<runs_dir>/timings.json` when the series wrote one)."""
    layout = Layout.of(cfg)
    books = sorted(layout.notebooks.glob("[0-9][0-9]_*.ipynb"))
    if not books:
        raise FileNotFoundError(f"{layout.notebooks}: no executed notebooks (run `eisbach reproduce --profile {cfg['name']}` first)")
    tfile = layout.timings
    timings = json.loads(tfile.read_text()) if tfile.exists() else {}
    return build_report(books, layout.report, f"Eisbach reproduction: executed series, profile {cfg['name']}", timings,
                        listening_html(cfg))


def listening_html(cfg: dict) -> str:
    """The listening study's place in the report: a link to the offline page for raters (relative, so
    it works wherever runs/<profile>/ is copied) and, once votes are imported, the verdict table."""
    from .study import listening_dir, study_summary

    ldir = listening_dir(cfg)
    if not (ldir / "study.html").exists():
        return ""
    rel = (ldir / "study.html").relative_to(Layout.of(cfg).runs)
    out = (f'<h2>Listening study</h2><p>The page to send to raters: <a href="{html.escape(str(rel))}">'
           f"{html.escape(str(rel))}</a> (one offline file; import the CSVs it saves with "
           f"<code>eisbach listen import --profile {html.escape(cfg['name'])} FILE...</code>).</p>")
    if (ldir / "votes.csv").exists():
        table, _, _ = study_summary(cfg)
        out += table.to_html(index=False, float_format=lambda x: f"{x:.3g}", border=0)
    else:
        out += "<p>No votes imported yet.</p>"
    return out


__all__ = ["write_report", "external_refs"]
