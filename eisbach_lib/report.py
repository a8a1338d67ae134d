"""One self-contained HTML page of an executed notebook series: `runs/<profile>/report.html`.

The page leads with the answer (`lead_html`): the scorecard's verdict table (one row per claim),
the controls and checks (every other row of scorecard.csv: sanity, PC, NC, M1-M3, ceilings,
listeners), the listening study when there is one, and the key figures; then a table of contents
with each notebook's run time, then each notebook. A reader who stops after the first screen has
the verdicts; the notebooks are the evidence behind them.

No absolute path of the machine appears in the page (`relative_paths`): the notebooks print the
profile's folders as absolute paths, so the runs folder becomes a path relative to itself (the
folder that holds report.html, so the paths still resolve from the page), the figures folder and
the repository become paths relative to it (`<figures>`, `<repository>` where only "/" is common
to both), the folder of a profile given as a YAML path `<profile folder>` (papermill writes the
path into each notebook's parameters), the Python installation `<python>` and the home folder `~`. `build_report` refuses a page that still names the runs folder.

The executed copies that `eisbach reproduce` leaves in `<runs_dir>/notebooks/` are rendered with
nbconvert's `lab` template, in order, into one page. Their figures are already inline (PNG data
URIs in the cell outputs) and so is their audio (IPython's `Audio` writes WAV data URIs); what the
template adds from the network is removed: every `<script>` (require.js, MathJax, mermaid and the
widget manager all come from CDNs, and nothing in a saved output needs a script) and every
`<link>` to another file. The page therefore fetches nothing and opens offline from file://;
`external_refs` lists anything that would still be fetched (the build fails if there is any).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import os
import re
import site
import sys
from pathlib import Path

import pandas as pd
from bs4 import BeautifulSoup

from .config import REPO, Profile
from .files import atomic_text
from .layout import Layout

#: attributes through which a browser fetches a resource (an <a href> is navigation, not a fetch)
FETCH_ATTRS = ("src", "srcset", "poster", "data", "background")
_REMOTE = re.compile(r"^\s*(https?:)?//", re.I)
_CSS_REMOTE_URL = re.compile(r"""url\(\s*['"]?\s*(https?:)?//""", re.I)
_DATA_URI = re.compile(r"(data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+)")
_CSS_IMPORT = re.compile(r"""@import\s+(url\()?\s*['"]?\s*(https?:)?//""", re.I)

REPORT_CSS = """
body { margin: 0 auto; max-width: 1200px; padding: 1em 2em; }
.eisbach-report-header { border-bottom: 2px solid #888; margin-bottom: 1em;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
.eisbach-report-header table { border-collapse: collapse; }
.eisbach-report-header td, .eisbach-report-header th { padding: 2px 12px 2px 0; text-align: left; }
.eisbach-lead { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
.eisbach-lead table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.92em; }
.eisbach-lead td, .eisbach-lead th { border-bottom: 1px solid #ddd; padding: 3px 10px 3px 0; text-align: left;
  vertical-align: top; }
.eisbach-lead .verdict { font-weight: bold; white-space: nowrap; }
.eisbach-lead figure { margin: 1em 0 2em; }
.eisbach-lead figure img { max-width: 100%; }
.eisbach-lead figcaption { font-size: 0.9em; color: #555; }
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


def _path_forms(path: Path) -> list[str]:
    """The spellings of an absolute folder a page may hold: as given and resolved (symlinks)."""
    forms = {os.path.normpath(str(path)), os.path.normpath(str(Path(path).resolve()))}
    return [f for f in forms if f not in ("/", ".")]


def _relative_to(folder: Path, runs: Path, label: str) -> str:
    """`folder` relative to `runs`, or `label` when the two share nothing below the filesystem root
    (then "../../.." climbs to "/" and the rest is the absolute path again)."""
    folder, runs = folder.resolve(), runs.resolve()
    if os.path.commonpath([folder, runs]) == os.path.sep:
        return label
    return os.path.relpath(folder, runs)


def relative_paths(text: str, runs: Path, figures: Path | None = None,
                   others: dict[Path, str] | None = None) -> str:
    """HTML `text` with every absolute path of this machine that the series prints rewritten (module
    docstring): the runs folder and what is under it relative to the runs folder (the folder itself
    is "."), the figures folder and the repository relative to it (`<figures>`, `<repository>` when
    only the filesystem root is common to both), sys.prefix/base_prefix as `<python>`, the home
    folder as `~`, each folder of `others` as its label. Longer folders are rewritten first (the
    runs folder before the repository that holds it); a folder matches only whole (…/runs/smoke
    does not match …/runs/smoke2)."""
    runs = Path(runs)
    subs: dict[str, str] = {}
    for f in _path_forms(runs):
        subs[f] = "."
    for root, label in ((figures, "<figures>"), (REPO, "<repository>")):
        if root is not None:
            for f in _path_forms(Path(root)):
                subs.setdefault(f, _relative_to(Path(root), runs, label))
    for folder, label in (others or {}).items():
        for f in _path_forms(Path(folder)):
            subs.setdefault(f, label)
    for prefix in dict.fromkeys([sys.prefix, sys.base_prefix, sys.exec_prefix]):
        for f in _path_forms(Path(prefix)):
            subs.setdefault(f, "<python>")
    for f in _path_forms(Path.home()):
        subs.setdefault(f, "~")
    order = sorted(subs, key=len, reverse=True)
    parts = _DATA_URI.split(text)  # odd items are base64 data URIs: a short folder name could occur in one by chance
    for i in range(0, len(parts), 2):
        for absolute in order:
            rel = html.escape(subs[absolute])  # the page is HTML: a bare "<python>" would read as a tag
            # "<abs>/x" -> "<rel>/x" ("x" alone when rel is "."); "<abs>" at a word's end -> "<rel>"
            under = "" if rel == "." else rel + "/"
            parts[i] = re.sub(re.escape(absolute) + "/", lambda m: under, parts[i])
            parts[i] = re.sub(re.escape(absolute) + r"(?![\w.-])", lambda m: rel, parts[i])
    return "".join(parts)


def names_folder(text: str, folder: Path) -> list[str]:
    """The spellings of `folder` (`_path_forms`) that `text` names as a whole folder, outside data URIs."""
    plain = _DATA_URI.sub("", text)
    return [f for f in _path_forms(folder) if re.search(re.escape(f) + r"(?![\w.-])", plain)]


#: the figures the report shows first (files in the figures folder, when present), with what each answers
KEY_FIGURES = (
    ("07_effects_in_sesoi.png", "C5-C7 and the controls in units of their smallest effect of interest (notebook 07)"),
    ("06_paired_differences.png", "eisbach − none per prompt and seed, the outcome metrics (notebook 06)"),
    ("02_update_cosines.png", "C1: cosine of the weighted vs the unweighted AdamW update (notebook 02)"),
    ("02_weight_by_texture.png", "C2: the weight by texture class and against flatness (notebook 02)"),
    ("04_gradient_mass_by_texture.png", "C3: each texture's share of the gradient mass over training (notebook 04)"),
)
#: scorecard roles that answer a claim (the verdict table); every other role is a control or a check
CLAIM_ROLES = ("primary", "exploratory")


def _num(x: object) -> str:
    """A scorecard number, 4 significant digits ('' for a missing one)."""
    return "" if x is None or (isinstance(x, float) and x != x) or x == "" else f"{float(x):.4g}"


def _estimate(r: pd.Series) -> str:
    """'estimate [ci_lo, ci_hi]', or the estimate alone when the row has no CI."""
    ci = f" [{_num(r.get('ci_lo'))}, {_num(r.get('ci_hi'))}]" if _num(r.get("ci_lo")) else ""
    return _num(r.get("estimate")) + ci


def _table(rows: pd.DataFrame, columns: list[tuple[str, object]], css_id: str) -> str:
    """An HTML table of `rows`; each column is (header, field name or function of the row); the
    field "verdict" is set in bold."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h, _ in columns)
    body = []
    for _, r in rows.iterrows():
        cells = []
        for _, f in columns:
            value = f(r) if callable(f) else r.get(f, "")
            value = "" if value is None or (isinstance(value, float) and value != value) else str(value)
            cls = ' class="verdict"' if f == "verdict" else ""
            cells.append(f"<td{cls}>{html.escape(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table id="{css_id}"><tr>{head}</tr>{"".join(body)}</table>'


def scorecard_html(card: pd.DataFrame | None) -> str:
    """The verdict table (rows whose role is in CLAIM_ROLES) and the controls-and-checks table (every
    other row) of a scorecard, or a line saying there is none yet."""
    if card is None or card.empty:
        return ('<section id="scorecard"><h2>The answer: the claims scorecard</h2><p>No scorecard yet: '
                "notebook 07 (<code>eisbach evaluate</code>) writes scorecard.csv to the figures folder.</p></section>")
    card = card.fillna("")
    claims = card[card["role"].isin(CLAIM_ROLES)]
    checks = card[~card["role"].isin(CLAIM_ROLES)]
    counts = claims.drop_duplicates("claim")["verdict"].value_counts()
    summary = ", ".join(f"{v or 'no verdict'}: {n}" for v, n in counts.items())
    claim_cols = [("claim", "claim"), ("role", "role"), ("statement", "statement"), ("evidence", "evidence"),
                  ("estimate [95% CI]", _estimate), ("MDE", lambda r: _num(r.get("mde"))),
                  ("sesoi", lambda r: _num(r.get("sesoi"))), ("n", "n"), ("verdict", "verdict"), ("note", "note")]
    check_cols = [("check", "claim"), ("role", "role"), ("evidence", "evidence"), ("estimate [95% CI]", _estimate),
                  ("n", "n"), ("verdict", "verdict"), ("note", "note")]
    return ('<section id="scorecard"><h2>The answer: the claims scorecard</h2>'
            f"<p>{html.escape(summary or 'no claim rows')} (claims C1-C10; the rules: docs/design.md §4, "
            "notebook 07).</p>" + _table(claims, claim_cols, "verdicts") +
            '</section><section id="controls"><h2>Controls and checks</h2>'
            "<p>PC: the positive control must move; NC: the negative control must come out equivalent; "
            "MIX: what each weighting arm does to the generated texture mix (arm − none on the texture "
            "readout; read beside the claims, not one of them); "
            "M1-M3: the fine-tune, the adapters and the training mix must differ; CEIL: what the "
            "metrics read without a model; listeners: the blind listening study (docs/design.md §5).</p>"
            + _table(checks, check_cols, "checks") + "</section>")


def key_figures_html(figures: Path) -> str:
    """The KEY_FIGURES present in `figures`, embedded as PNG data URIs with their captions."""
    parts = []
    for name, caption in KEY_FIGURES:
        path = Path(figures) / name
        if path.exists():
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            parts.append(f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{html.escape(name)}: {html.escape(caption)}</figcaption></figure>")
    return '<section id="key-figures"><h2>Key figures</h2>' + "".join(parts) + "</section>" if parts else ""


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
    from nbconvert import HTMLExporter  # heavy: nbconvert

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
                 extra_html: str = "", lead_html: str = "", runs: Path | None = None,
                 figures: Path | None = None, others: dict[Path, str] | None = None) -> Path:
    """Write one HTML file `out`: `lead_html` (the answer: scorecard, controls, key figures) first,
    `extra_html` under it, then a table of contents with each notebook's run time when `timings` has
    it, then the notebooks in the order given. Every absolute path of `runs` (default: the folder
    of `out`), `figures` and the repository is rewritten relative to `runs` (`relative_paths`).
    Raises ValueError naming what would be fetched if the page is not self-contained, or if it
    still names the runs folder."""
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
    runs = Path(runs) if runs is not None else Path(out).parent
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title>\n{head}\n</head>\n"
            f'<body class="jp-Notebook" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">\n'
            f'<header class="eisbach-report-header"><h1>{html.escape(title)}</h1>'
            f"<p>Written {when} from the executed notebooks in <code>notebooks/</code>. Paths are relative to "
            f"the folder that holds this page (the profile's runs folder). Figures and audio are embedded; "
            f"the page fetches nothing.</p></header>\n"
            f'<div class="eisbach-lead">{lead_html}{extra_html}'
            f'<section id="notebooks"><h2>The notebooks</h2><table><tr><th>notebook</th><th>run time</th></tr>'
            f"{''.join(toc)}</table></section></div>\n"
            + "\n".join(sections) + "\n</body></html>\n")
    page = relative_paths(page, runs, figures, others)
    remote = external_refs(page)
    if remote:
        raise ValueError(f"{out}: the report would fetch {len(remote)} remote resource(s), e.g. {remote[:3]}")
    left = names_folder(page, runs)
    if left:
        raise ValueError(f"{out}: the page still names the runs folder {left[0]} (relative_paths missed a spelling)")
    return atomic_text(out, page, encoding="utf-8")


def write_report(cfg: Profile) -> Path:
    """`<runs_dir>/report.html` from the executed notebooks in `<runs_dir>/notebooks/` (run times
    from `<runs_dir>/timings.json` when the series wrote one), led by the scorecard in the figures
    folder (`scorecard_html`) and the key figures (`key_figures_html`)."""
    layout = Layout.of(cfg)
    books = sorted(layout.notebooks.glob("[0-9][0-9]_*.ipynb"))
    if not books:
        raise FileNotFoundError(f"{layout.notebooks}: no executed notebooks (run `eisbach reproduce --profile {cfg.name}` first)")
    tfile = layout.timings
    timings = json.loads(tfile.read_text()) if tfile.exists() else {}
    card_csv = layout.scorecard_csv
    card = pd.read_csv(card_csv, keep_default_na=False) if card_csv.exists() else None
    return build_report(books, layout.report, f"Eisbach reproduction: executed series, profile {cfg.name}", timings,
                        listening_html(cfg), lead_html=scorecard_html(card) + key_figures_html(layout.figures),
                        runs=layout.runs, figures=layout.figures,
                        others={Path(cfg.path).parent: "<profile folder>"})


def listening_html(cfg: Profile) -> str:
    """The listening study's place in the report: a link to the offline page for raters (relative, so
    it works wherever runs/<profile>/ is copied) and, once votes are imported, the verdict table."""
    from .study import study_summary  # heavy: scipy

    layout = Layout.of(cfg)
    if not layout.study_page.exists():
        return ""
    rel = layout.study_page.relative_to(layout.runs)
    out = (f'<h2>Listening study</h2><p>The page to send to raters: <a href="{html.escape(str(rel))}">'
           f"{html.escape(str(rel))}</a> (one offline file; import the CSVs it saves with "
           f"<code>eisbach listen import --profile {html.escape(cfg.name)} FILE...</code>).</p>")
    if layout.votes.exists():
        table, _, _ = study_summary(cfg)
        out += table.to_html(index=False, float_format=lambda x: f"{x:.3g}", border=0)
    else:
        out += "<p>No votes imported yet.</p>"
    return out


__all__ = ["write_report", "build_report", "external_refs", "relative_paths", "scorecard_html", "key_figures_html"]
