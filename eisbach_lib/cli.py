"""The `eisbach` command line: the notebooks' steps, one command each.

Every command takes --profile (smoke | cpu | gpu, or a YAML path), shows progress, and is safe to
run again: finished work is found and skipped, interrupted work resumes from its last checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .basedir import check_base_for
from .config import ConfigError, Profile, load_profile, override
from .layout import Layout, read_done
from .series import run_series

def _load_data(cfg: Profile):
    from .datasets import load_corpus  # heavy: torch

    return load_corpus(cfg)


def cmd_corpus(cfg: Profile, args: argparse.Namespace) -> None:
    check_base_for(cfg, dit=False)  # fail before any work (and before the heavy imports)
    from .datasets import prepare_corpus  # heavy: torch

    print(f"cache: {prepare_corpus(cfg)}")


def cmd_pretrain(cfg: Profile, args: argparse.Namespace) -> None:
    from .train import pretrain  # heavy: torch, diffusers

    if cfg.model.base_dir:
        print(f"model.base_dir is set ({cfg.model.base_dir}): nothing to pretrain")
        return
    print(f"base: {pretrain(cfg, _load_data(cfg))}")


def cmd_train(cfg: Profile, args: argparse.Namespace) -> None:
    if args.base and (Path(args.base) / "vae" / "config.json").exists():
        cfg = override(cfg, {"model.base_dir": args.base})  # a whole SA3 directory: its autoencoder and text encoder encode the data
    check_base_for(cfg, dit=True, base_dir=args.base)  # fail before the corpus is rendered and encoded
    from .train import train_run  # heavy: torch, diffusers

    data = _load_data(cfg).split("finetune")
    out = Path(args.out) if args.out else Layout.of(cfg).adapter_run(args.adapter, args.arm, args.seed)
    print(f"run: {train_run(cfg, data, out, arm=args.arm, seed=args.seed, adapter=args.adapter, steps=args.steps, base_dir=args.base)}")


def cmd_grid(cfg: Profile, args: argparse.Namespace) -> None:
    check_base_for(cfg, dit=True)  # fail before the corpus is rendered and encoded
    from .runs import grid_status  # heavy: torch
    from .train import run_grid  # heavy: torch, diffusers

    run_grid(cfg, _load_data(cfg).split("finetune"), shard=args.shard)
    status = grid_status(cfg)  # as notebook 03 writes it
    print(f"grid: {len(status)} runs -> {Layout.of(cfg).grid}")


def cmd_generate(cfg: Profile, args: argparse.Namespace) -> None:
    check_base_for(cfg, dit=True)
    from .generate import generate_grid, generate_run  # heavy: torch

    if args.run:
        run = Path(args.run)
        done = read_done(run)
        m = generate_run(cfg, run, name=run.name, meta={k: done[k] for k in ("adapter", "arm", "seed")})
    else:
        m = generate_grid(cfg)
    print(f"{len(m)} clips")


def cmd_anatomy(cfg: Profile, args: argparse.Namespace) -> None:
    from .anatomy import barrier_anatomy  # heavy: torch

    for name, df in barrier_anatomy(cfg).items():
        print(f"{name}: {len(df)} rows -> {Layout.of(cfg).anatomy_table(name)}")


def cmd_dynamics(cfg: Profile, args: argparse.Namespace) -> None:
    from .anatomy import training_dynamics  # heavy: torch

    for name, df in training_dynamics(cfg).items():
        print(f"{name}: {len(df)} rows -> {Layout.of(cfg).anatomy_table(name)}")


def cmd_evaluate(cfg: Profile, args: argparse.Namespace) -> None:
    from .evaluate import evaluate  # heavy: torch

    card = evaluate(cfg)
    print(card[["claim", "role", "estimate", "ci_lo", "ci_hi", "mde", "verdict"]].to_string(index=False))


def cmd_listen(cfg: Profile, args: argparse.Namespace) -> None:
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


def cmd_pilot(cfg: Profile, args: argparse.Namespace) -> None:
    from .pilot import run_pilot  # heavy: scipy

    variants = dict(v.split("=", 1) for v in args.variant)
    out = run_pilot(cfg, seeds=tuple(args.seeds), doses=tuple(args.doses),
                    variants={f"{k}={v}": {k: float(v)} for k, v in variants.items()})
    cols = ["set", "comparison", "estimate", "ci_lo", "ci_hi", "mde", "effect_sesoi", "verdict", "monotone"]
    print(out["pilot"][cols].to_string(index=False, float_format=lambda x: f"{x:+.4f}"))
    print(f"plan inputs: {Layout.of(cfg).plan_inputs} (eisbach plan --profile {args.profile})")


def cmd_plan(cfg: Profile, args: argparse.Namespace) -> None:
    from .plan import plan_report  # heavy: scipy

    text, table = plan_report(Layout.of(cfg).plan_inputs, target_mde_sesoi=args.target_mde,
                              budget_minutes=args.budget)
    print(text)
    print(table.groupby("comparison").head(8).to_string(index=False, float_format=lambda x: f"{x:.3g}"))


def cmd_reproduce(cfg: Profile, args: argparse.Namespace) -> None:
    if cfg.model.base_dir:  # real weights: check every part before notebook 00 renders anything
        check_base_for(cfg, dit=True)
    from .report import write_report  # heavy: pandas, bs4

    run_series(args.profile, cfg, first=args.first, last=args.last)
    print(f"report: {write_report(cfg)}", flush=True)


def cmd_report(cfg: Profile, args: argparse.Namespace) -> None:
    from .report import write_report  # heavy: pandas, bs4

    print(f"report: {write_report(cfg)}")


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
