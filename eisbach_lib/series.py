"""The notebook series, run headless: `run_series` executes notebooks 00..07 with papermill and shows
each notebook's start, end and expected time in the terminal (`eisbach reproduce`).

`EXPECTED_S` holds the measured time per notebook of each shipped profile (the expectation shown
until <runs_dir>/timings.json holds this machine's own times); the pilot reads it to project a
profile's fixed costs. Below cli.py and pilot.py, so neither imports the other.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from pathlib import Path

from .config import REPO, Profile
from .files import atomic_text
from .layout import Layout
from .progress import format_seconds

NOTEBOOKS = REPO / "notebooks"

#: run time per notebook in seconds on a 2-core CPU, first run of a profile: the expectation shown
#: while a notebook runs until runs/<profile>/timings.json holds this machine's own times from the
#: previous run. cpu: measured per notebook on a fresh clone on 2026-12-03, the recorded design (README,
#: results section). smoke: the series' total measured on an idle machine
#: before the prompt sets and the readout (210 s; README: 3.5-3.7 min) split in the proportions
#: measured per notebook on a busy one (1075 s in all).
EXPECTED_S = {
    "cpu": {"00": 210, "01": 982, "02": 178, "03": 838, "04": 54, "05": 480, "06": 323, "07": 12},  # fresh clone, 2026-12-03 (README)
    "smoke": {"00": 11, "01": 34, "02": 40, "03": 54, "04": 13, "05": 49, "06": 6, "07": 3},
}
#: the kernel prints figures inline (ipykernel's own default when MPLBACKEND is unset) even where the
#: caller exported MPLBACKEND=Agg for itself, keeps debugpy's frozen-modules warning quiet, and
#: draws no transformers/huggingface_hub tqdm widget ("Loading weights"), a placeholder once saved
KERNEL_ENV = {"MPLBACKEND": "module://matplotlib_inline.backend_inline", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
              "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
#: the kernel papermill runs the series on, given explicitly (papermill would otherwise take the name in
#: the notebooks' metadata, "eisbach": the kernel `make lab` registers so that JupyterLab opens them with
#: the project's environment, which a fresh machine or CI does not have). "python3" is ipykernel's own
#: kernel, present wherever ipykernel is installed, and jupyter_client starts it with this interpreter
#: (sys.executable), so the series runs in the environment `eisbach reproduce` runs in.
SERIES_KERNEL = "python3"
#: ipykernel >= 7 warns at every start that its local TCP sockets are unencrypted: its own log, not the notebook's
KERNEL_ARGS = ["--IPKernelApp.log_level=ERROR"]


class _Prefixed:
    """A file-like sink for a kernel's stream output: writes whole lines to `stream` with a prefix
    (carriage returns count as line ends), drops a stderr line it already printed in this notebook
    (repeated warnings), and records when it last wrote (for the heartbeat)."""

    def __init__(self, stream, prefix: str = "  | ", dedupe: bool = False) -> None:
        self.stream, self.prefix, self.dedupe = stream, prefix, dedupe
        self.buf, self.seen, self.last = "", set(), time.time()

    def write(self, text: str) -> None:
        self.buf += text.replace("\r\n", "\n").replace("\r", "\n")
        *lines, self.buf = self.buf.split("\n")
        for line in lines:
            if not line.strip() or (self.dedupe and line in self.seen):
                continue
            self.seen.add(line)
            print(self.prefix + line, file=self.stream, flush=True)
            self.last = time.time()

    def flush(self) -> None:
        """Nothing: papermill flushes after every message, mid-line too; close() ends a last partial line."""

    def close(self) -> None:
        if self.buf:
            self.write("\n")


def _expected(profile: str, name: str, previous: dict) -> tuple[float | None, str]:
    """(expected seconds, where the number comes from) for one notebook."""
    if name in previous:
        return float(previous[name]), "previous run"
    table = EXPECTED_S.get(Path(profile).stem, {})
    return (float(table[name[:2]]), "measured table") if name[:2] in table else (None, "")


def run_series(profile: str, cfg: Profile, first: int = 0, last: int = 7) -> None:
    """Execute notebooks 00..07 in order with papermill; executed copies go to <runs_dir>/notebooks/.
    A failing cell stops the series with the notebook and the cell named (exit code 1).

    The terminal shows one line as each notebook starts (expected time) and ends (elapsed), the
    kernel's own output (the loops' progress lines) indented below it, and a heartbeat line after a
    minute without output. Each notebook's time is saved in <runs_dir>/timings.json for the next
    run's expectations."""
    import papermill as pm  # heavy: papermill
    from papermill.exceptions import PapermillExecutionError  # heavy: papermill

    fmt = format_seconds

    layout = Layout.of(cfg)
    out_dir = layout.notebooks
    out_dir.mkdir(parents=True, exist_ok=True)
    # the kernels import this checkout's eisbach_lib even where it is not pip-installed
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    os.environ.update(KERNEL_ENV)
    logging.getLogger("papermill").setLevel(logging.ERROR)  # "Black is not installed" and the like
    books = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))[first:last + 1]
    if not books:
        raise SystemExit(f"no notebooks found in {NOTEBOOKS}")
    tfile = layout.timings
    previous = json.loads(tfile.read_text()) if tfile.exists() else {}
    timings = dict(previous)
    expected = {nb.name: _expected(profile, nb.name, previous)[0] for nb in books}
    t_all = time.time()
    for i, nb in enumerate(books, 1):
        exp, source = _expected(profile, nb.name, previous)
        tag = f"[{i}/{len(books)}] {nb.name} ({Path(profile).stem})"
        print(f"\n{tag}: started {time.strftime('%H:%M:%S')}"
              + (f", expected ~{fmt(exp)} ({source})" if exp else ""), flush=True)
        out, err = _Prefixed(sys.stdout), _Prefixed(sys.stderr, dedupe=True)
        t0, stop = time.time(), threading.Event()

        def heartbeat() -> None:
            while not stop.wait(5):
                if time.time() - max(out.last, err.last, t0) >= 60:
                    print(f"  ... {nb.name}: {fmt(time.time() - t0)} elapsed"
                          + (f" of ~{fmt(exp)} expected" if exp else ""), flush=True)
                    out.last = time.time()

        beat = threading.Thread(target=heartbeat, daemon=True)
        beat.start()
        try:
            pm.execute_notebook(str(nb), str(out_dir / nb.name), parameters={"profile": profile},
                                cwd=str(NOTEBOOKS), progress_bar=False, kernel_name=SERIES_KERNEL,
                                stdout_file=out, stderr_file=err, extra_arguments=KERNEL_ARGS)
        except PapermillExecutionError as e:
            print(f"\nFAILED: {nb.name}, cell {e.exec_count} ({e.ename}: {e.evalue})\n"
                  f"executed copy with the traceback: {out_dir / nb.name}", file=sys.stderr)
            raise SystemExit(1) from None
        finally:
            stop.set()
            out.close(); err.close()
        took = time.time() - t0
        timings[nb.name] = round(took, 1)
        atomic_text(tfile, json.dumps(timings, indent=1))
        done_exp = sum(expected[b.name] or 0 for b in books[:i])
        pace = sum(timings[b.name] for b in books[:i]) / done_exp if done_exp else 1.0
        left = pace * sum(expected[b.name] or 0 for b in books[i:])
        print(f"{tag}: done in {fmt(took)}" + (f" (expected ~{fmt(exp)})" if exp else "")
              + f"; series {fmt(time.time() - t_all)} elapsed"
              + (f", ~{fmt(left)} left at this pace ({pace:.2g}x expected)" if left else ""), flush=True)
    print(f"\nseries done in {fmt(time.time() - t_all)}; executed notebooks in {out_dir}", flush=True)
