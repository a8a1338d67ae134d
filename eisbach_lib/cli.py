"""The `eisbach` command line: the notebooks' steps, one command each.

Every command takes --profile (smoke | cpu | gpu, or a YAML path), shows progress, and is safe to
run again: finished work is found and skipped, interrupted work resumes from its last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path

from .basedir import check_base_for
from .config import REPO, ConfigError, load_profile
from .files import atomic_text
from .layout import Layout, read_done
from .progress import format_seconds

NOTEBOOKS = REPO / "notebooks"


def _load_data(cfg: dict):
    from .datasets import load_corpus  # heavy: torch

    return load_corpus(cfg)


def cmd_corpus(cfg: dict, args: argparse.Namespace) -> None:
    check_base_for(cfg, dit=False)  # fail before any work (and before the heavy imports)
    from .datasets import prepare_corpus  # heavy: torch

    print(f"cache: {prepare_corpus(cfg)}")


def cmd_pretrain(cfg: dict, args: argparse.Namespace) -> None:
    from .train import pretrain  # heavy: torch, diffusers

    if cfg["model"].get("base_dir"):
        print(f"model.base_dir is set ({cfg['model']['base_dir']}): nothing to pretrain")
        return
    print(f"base: {pretrain(cfg, _load_data(cfg))}")


def cmd_train(cfg: dict, args: argparse.Namespace) -> None:
    if args.base and (Path(args.base) / "vae" / "config.json").exists():
        cfg["model"]["base_dir"] = args.base  # a whole SA3 directory: its autoencoder and text encoder encode the data
    check_base_for(cfg, dit=True, base_dir=args.base)  # fail before the corpus is rendered and encoded
    from .train import train_run  # heavy: torch, diffusers

    data = _load_data(cfg).split("finetune")
    out = Path(args.out) if args.out else Layout.of(cfg).adapter_run(args.adapter, args.arm, args.seed)
    print(f"run: {train_run(cfg, data, out, arm=args.arm, seed=args.seed, adapter=args.adapter, steps=args.steps, base_dir=args.base)}")


def cmd_grid(cfg: dict, args: argparse.Namespace) -> None:
    check_base_for(cfg, dit=True)  # fail before the corpus is rendered and encoded
    from .runs import grid_status  # heavy: torch
    from .train import run_grid  # heavy: torch, diffusers

    run_grid(cfg, _load_data(cfg).split("finetune"), shard=args.shard)
    status = grid_status(cfg)  # as notebook 03 writes it
    print(f"grid: {len(status)} runs -> {Layout.of(cfg).grid}")


def cmd_generate(cfg: dict, args: argparse.Namespace) -> None:
    check_base_for(cfg, dit=True)
    from .generate import generate_grid, generate_run  # heavy: torch

    if args.run:
        run = Path(args.run)
        done = read_done(run)
        m = generate_run(cfg, run, name=run.name, meta={k: done[k] for k in ("adapter", "arm", "seed")})
    else:
        m = generate_grid(cfg)
    print(f"{len(m)} clips")


def cmd_anatomy(cfg: dict, args: argparse.Namespace) -> None:
    from .anatomy import barrier_anatomy  # heavy: torch

    for name, df in barrier_anatomy(cfg).items():
        print(f"{name}: {len(df)} rows -> {Layout.of(cfg).anatomy_table(name)}")


def cmd_dynamics(cfg: dict, args: argparse.Namespace) -> None:
    from .anatomy import training_dynamics  # heavy: torch

    for name, df in training_dynamics(cfg).items():
        print(f"{name}: {len(df)} rows -> {Layout.of(cfg).anatomy_table(name)}")


def cmd_evaluate(cfg: dict, args: argparse.Namespace) -> None:
    from .evaluate import evaluate  # heavy: torch

    card = evaluate(cfg)
    print(card[["claim", "role", "estimate", "ci_lo", "ci_hi", "mde", "verdict"]].to_string(index=False))


def cmd_listen(cfg: dict, args: argparse.Namespace) -> None:
    from .study import study_summary  # heavy: scipy
    from .study_design import MAX_CATCH_FAIL, load_study, study_config, trials_of  # heavy: scipy
    from .study_kit import make_kit  # heavy: scipy
    from .study_votes import import_votes  # heavy: scipy

    study_json = Layout.of(cfg).study
    if args.action == "kit":
        path = make_kit(cfg, study_config(cfg, args.study))
        doc = load_study(path)
        trials = trials_of(doc["pairs"])
        print(f"study {doc['study_id']}: {len(trials)} trials ({int(trials['is_catch'].sum())} catch), "
              f"questions {[q['id'] for q in doc['questions']]}")
        print(f"send this page to the raters: {path.parent / 'study.html'}\nstudy: {path}")
    elif args.action == "import":
        if not args.files:
            raise ValueError("listen import: name the CSV files to import")
        n = import_votes(study_json, args.files)
        print(f"{n} new votes imported into {Layout.of(cfg).votes}")
    else:
        table, catch, doc = study_summary(cfg)
        print(f"study {doc['study_id']}")
        print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
        if len(catch):
            print("\ncatch trials per rater (excluded: failed more than "
                  f"{MAX_CATCH_FAIL:.0%}):\n{catch.to_string(index=False)}")


def cmd_pilot(cfg: dict, args: argparse.Namespace) -> None:
    from .pilot import run_pilot  # heavy: scipy

    variants = dict(v.split("=", 1) for v in args.variant)
    out = run_pilot(cfg, seeds=tuple(args.seeds), doses=tuple(args.doses),
                    variants={f"{k}={v}": {k: float(v)} for k, v in variants.items()})
    cols = ["set", "comparison", "estimate", "ci_lo", "ci_hi", "mde", "effect_sesoi", "verdict", "monotone"]
    print(out["pilot"][cols].to_string(index=False, float_format=lambda x: f"{x:+.4f}"))
    print(f"plan inputs: {Layout.of(cfg).plan_inputs} (eisbach plan --profile {args.profile})")


def cmd_plan(cfg: dict, args: argparse.Namespace) -> None:
    from .plan import plan_report  # heavy: scipy

    text, table = plan_report(Layout.of(cfg).plan_inputs, target_mde_sesoi=args.target_mde,
                              budget_minutes=args.budget)
    print(text)
    print(table.groupby("comparison").head(8).to_string(index=False, float_format=lambda x: f"{x:.3g}"))


def cmd_reproduce(cfg: dict, args: argparse.Namespace) -> None:
    if cfg["model"].get("base_dir"):  # real weights: check every part before notebook 00 renders anything
        check_base_for(cfg, dit=True)
    from .report import write_report  # heavy: pandas, bs4

    run_series(args.profile, cfg, first=args.first, last=args.last)
    print(f"report: {write_report(cfg)}", flush=True)


def cmd_report(cfg: dict, args: argparse.Namespace) -> None:
    from .report import write_report  # heavy: pandas, bs4

    print(f"report: {write_report(cfg)}")


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


def run_series(profile: str, cfg: dict, first: int = 0, last: int = 7) -> None:
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


class _AnyOrder(argparse.ArgumentParser):
    """A subcommand's parser that takes its options and positionals in any order, as the README writes
    them: `eisbach listen import --profile P FILE...` as well as `eisbach listen --profile P import FILE...`
    or `... import FILE... --profile P`. Plain argparse stops filling `files` (nargs="*") at the first
    option and then refuses the later FILE as "unrecognized"; parse_known_intermixed_args parses the
    options first and then the positionals from what is left. It calls parse_known_args itself, hence
    the re-entry guard."""

    _intermixed = False

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        if self._intermixed:
            return super().parse_known_args(args, namespace)
        self._intermixed = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixed = False


#: --profile's help, on the top-level parser and on every subcommand
PROFILE_HELP = "smoke | cpu | gpu, or a path to a YAML profile (default: cpu)"


def build_parser() -> argparse.ArgumentParser:
    """The `eisbach` parser. --profile is accepted before the subcommand (`eisbach --profile P corpus`)
    and anywhere after it; the subcommand's value wins (its default is SUPPRESS, so that a subcommand
    without --profile keeps the top-level one, default cpu)."""
    p = argparse.ArgumentParser(prog="eisbach", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="cpu", help=PROFILE_HELP)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_AnyOrder)

    def add(name: str, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help)
        sp.add_argument("--profile", default=argparse.SUPPRESS, help=PROFILE_HELP)
        return sp

    add("corpus", "render and pre-encode the chamber corpus (or pre-encode MusicCaps / an audio folder)")
    add("pretrain", "train the base DiT (embedded default only)")
    t = add("train", "train one adapter run (an arm and a seed)")
    t.add_argument("--arm", required=True)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--adapter", choices=["dora", "lora"], default="dora")
    t.add_argument("--steps", type=int, default=None)
    t.add_argument("--out", default=None, help="run folder (default <runs_dir>/adapters/<adapter>_<arm>_s<seed>)")
    t.add_argument("--base", default=None, help="a base model folder (diffusers layout) instead of the profile's")
    gr = add("grid", "train the profile's paired grid (adapters x arms x seeds), skipping finished runs")
    gr.add_argument("--shard", default="0/1", help="i/n: train only every n-th run starting at i")
    g = add("generate", "the fixed prompt x seed grid for one trained adapter (or all)")
    g.add_argument("--run", default=None, help="one run folder; default: every finished run")
    add("anatomy", "the barrier on the base model before fine-tuning (C1, C2, C4 inputs; notebook 02)")
    add("dynamics", "training logs and checkpoints of the grid (C3, C4, manipulation checks; notebook 04)")
    add("evaluate", "metrics, statistics and the claims scorecard over all runs of the profile")
    ls = add("listen", "a blind listening study: kit (offline page), import FILE..., summary")
    ls.add_argument("action", choices=["kit", "import", "summary"])
    ls.add_argument("files", nargs="*", help="for import: the CSV files the raters sent back")
    ls.add_argument("--study", default=None, help="a study YAML (overrides the profile's `listening:` section)")
    pi = add("pilot", "before a recorded run: none and oracle_texture doses, the texture readout's dose-response, "
                      "variance components and stage times (<runs_dir>/pilot/)")
    pi.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    pi.add_argument("--doses", type=float, nargs="+", default=[0.3, 0.1], help="oracle flat-class weights (1 = none)")
    pi.add_argument("--variant", action="append", default=[], help="a lever KEY=VALUE of finetune (e.g. lr=2e-4); repeatable")
    pl = add("plan", "the seeds x prompts x samples that reach a target MDE on the primary rows, from the pilot")
    pl.add_argument("--target-mde", type=float, default=0.5, help="in units of the readout's sesoi (default 0.5)")
    pl.add_argument("--budget", type=float, default=60.0, help="minutes on this machine (default 60)")
    r = add("reproduce", "papermill: notebooks 00..07 in order, executed copies in runs/<profile>/, then the report")
    r.add_argument("--first", type=int, default=0, help="first notebook number")
    r.add_argument("--last", type=int, default=7, help="last notebook number")
    add("report", "one self-contained HTML page of the executed series: <runs_dir>/report.html")
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        overrides = {}
        cfg = load_profile(args.profile, overrides)
        globals()[f"cmd_{args.command}"](cfg, args)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        print(f"eisbach {args.command}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
