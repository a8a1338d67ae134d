"""The pilot: can this design see an effect, and how big must the recorded run be? (`eisbach pilot`)

Before any `eisbach` outcome is looked at, the pilot trains only `none` and the positive control
`oracle_texture` at several doses (the flat-class weight `finetune.oracle_factor`: 1 is `none`, then
0.3, 0.1) for a few seeds, generates the primary prompt sets from each and from the base model, and
reads the texture of every generated clip with the bundle's classifier (`readout.py`). It reports

- the dose-response: oracle(f) − none on the flat share, per prompt set (primary at CFG 1, the same
  captions at the profile's CFG, unconditional), in units of the readout's sesoi, with `paired_verdict`;
  the readout must move monotonically with the dose (checked, not assumed);
- M1: none − base on the same readout (did the fine-tune learn the new conditional?);
- the variance components of oracle − none and the measured stage times, written to
  <runs_dir>/pilot/plan_inputs.json, from which `eisbach plan` sizes the recorded run.

`variants` repeats the none/oracle pair under other fine-tune settings (a "lever": e.g. {"lr": 2e-4}),
so the levers tried are measured on the same readout. The pilot lives in <runs_dir>/pilot/ (its own
adapters, prompts, samples), sharing the profile's corpus, cache and base model through links, so a
later `eisbach reproduce` of the same profile reuses them and never sees the pilot's runs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import stats
from .config import Profile, override
from .layout import Layout, is_finished
from .metrics import metrics_table
from .plan import Costs, shape_of, variance_components, write_plan_inputs
from .scorecard import SESOI_FRACTION
from .series import EXPECTED_S

DOSES = (0.3, 0.1)          # oracle flat-class factors besides 1 (= none)
PILOT_SEEDS = (0, 1)
SHARED = ("corpus", "cache", "base")  # the parent profile's folders the pilot links to


def pilot_config(cfg: Profile) -> Profile:
    """The profile with runs_dir → <runs_dir>/pilot, whose corpus/, cache/ and base/ link to the
    profile's own (created empty first, so the pilot renders and pretrains them for both)."""
    parent = Layout.of(cfg)
    pcfg = override(cfg, {"runs_dir": str(parent.pilot), "figures_dir": str(parent.pilot / "figures")})
    parent.pilot.mkdir(parents=True, exist_ok=True)
    for name in SHARED:
        (parent.runs / name).mkdir(parents=True, exist_ok=True)
        link = parent.pilot / name
        if not link.exists() and not link.is_symlink():
            link.symlink_to(Path("..") / name, target_is_directory=True)
    return pcfg


def arm_label(arm: str, factor: float, variant: str) -> str:
    """A pilot run's label: 'none', 'oracle0.1', with '@variant' for a lever other than the recipe."""
    core = "none" if arm == "none" else f"oracle{factor:g}"
    return core if variant == "recipe" else f"{core}@{variant}"


def _timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


def clip_readout(cfg: Profile, manifest: pd.DataFrame, readout) -> pd.DataFrame:
    """`manifest` (generated clips) with `flat_share`: each clip's part of the readout's PACC flat share,
    (p_flat − a)/(b − a), read from its folder's latents.npy (`readout.sample_textures`)."""
    from .readout import sample_textures  # heavy: torch

    gen = sample_textures(cfg, manifest.reset_index(drop=True), readout)
    return manifest.reset_index(drop=True).assign(flat_share=readout.clip_shares(gen["p_flat"]))


def run_pilot(cfg: Profile, seeds=PILOT_SEEDS, doses=DOSES, variants: dict[str, dict] | None = None,
              progress: bool = True) -> dict[str, pd.DataFrame]:
    """Train, generate and read the pilot (module docstring); writes <runs_dir>/pilot/pilot.csv (one row
    per comparison × prompt set), clips.parquet, plan_inputs.json and timings.json. Safe to re-run:
    finished runs and generations are reused (their times are then read back from timings.json)."""
    from .datasets import load_corpus  # heavy: torch
    from .generate import generate_run, prompt_set  # heavy: torch
    from .readout import fit_readout  # heavy: torch
    from .runs import base_model  # heavy: torch
    from .train import pretrain, train_run  # heavy: torch, diffusers

    variants = {"recipe": {}, **(variants or {})}
    pcfg = pilot_config(cfg)
    layout, parent = Layout.of(pcfg), Layout.of(cfg)
    tfile = parent.pilot_timings
    times = json.loads(tfile.read_text()) if tfile.exists() else {}
    data, t_corpus = _timed(load_corpus, pcfg)
    pretrained = is_finished(layout.base)
    _, t_pre = _timed(pretrain, pcfg, data.split("base"), progress=progress)
    if not pretrained:  # a base pretrained before (the profile's own) says nothing of the pretraining's cost
        times.setdefault("corpus_pretrain_s", t_corpus + t_pre)
    adapter = pcfg.finetune.adapter
    prompts = prompt_set(pcfg)
    jobs = [("none", 1.0)] + [("oracle_texture", f) for f in doses]
    manifests = []
    base_m, t_gen = _timed(generate_run, pcfg, None, name="pilot_base", meta={"adapter": "none", "arm": "base", "seed": -1},
                           model=base_model(pcfg), progress=progress)
    times.setdefault("generate pilot_base", t_gen)
    manifests.append(base_m.assign(label="base", variant=""))
    for variant, overrides in variants.items():
        for seed in seeds:
            for arm, factor in jobs:
                label = arm_label(arm, factor, variant)
                vcfg = override(pcfg, {**{f"finetune.{k}": v for k, v in overrides.items()},
                                       "finetune.oracle_factor": factor})
                run_dir = layout.adapter_run(adapter, label, seed)
                _, t = _timed(train_run, vcfg, data.split("finetune"), run_dir, arm=arm, seed=seed, adapter=adapter,
                              progress=progress)
                times.setdefault(f"train {run_dir.name}", t)
                name = f"pilot_{label}_s{seed}"
                m, t = _timed(generate_run, vcfg, run_dir, name=name, meta={"adapter": adapter, "arm": arm, "seed": seed},
                              progress=progress)
                times.setdefault(f"generate {name}", t)
                manifests.append(m.assign(label=label, variant=variant))
    tfile.write_text(json.dumps(times, indent=2))
    readout = fit_readout(pcfg)
    clips = clip_readout(pcfg, pd.concat(manifests, ignore_index=True), readout)
    if "set" not in clips:
        clips = clips.merge(prompts[["prompt_id", "set"]], on="prompt_id", how="left")
    clips.to_parquet(parent.pilot_clips, index=False)
    sesoi = readout_sesoi(pcfg, readout)
    table = dose_response(clips, sesoi, alpha=cfg.evaluate.alpha)
    table.to_csv(parent.pilot_table, index=False)
    n_clips = len(clips)
    gen_s = sum(v for k, v in times.items() if k.startswith("generate"))
    train_s = [v for k, v in times.items() if k.startswith("train")]
    # the pilot trains and generates in one one-thread process; the grid and the generation grid run
    # `workers` such processes side by side, so a run or a clip costs 1/workers of that in wall time
    costs = Costs(fixed_s=fixed_seconds(cfg, times.get("corpus_pretrain_s", 0.0)),
                  train_run_s=float(np.median(train_s)) / cfg.finetune.workers,
                  generate_clip_s=gen_s / max(n_clips, 1) / cfg.generate.workers,
                  evaluate_clip_s=_metric_seconds_per_clip(layout.runs, clips) / 2)
    comps = {f"{arm_label('oracle_texture', doses[-1], v)} − {arm_label('none', 1.0, v)} (primary)":
             variance_components(paired_rows(clips, arm_label("oracle_texture", doses[-1], v), arm_label("none", 1.0, v),
                                             "primary"))
             for v in variants if "primary" in set(clips["set"])}
    n_arms = len(cfg.finetune.arms)
    write_plan_inputs(parent.plan_inputs, comps, costs, sesoi, n_arms, shape_of(cfg))
    return {"pilot": table, "clips": clips}


def fixed_seconds(cfg: Profile, measured: float) -> float:
    """The stages whose cost does not grow with the design (corpus, pretraining, anatomy, dynamics,
    scorecard: notebooks 00, 01, 02, 04, 07): the pilot's own measurement of corpus + pretraining when it
    pretrained the base itself (`measured` ≥ 60 s; 0 when it found the base finished) plus the profile's
    expected times of 02, 04 and 07, else the profile's expected times of all five (`series.EXPECTED_S`,
    measured on a fresh clone)."""
    exp = EXPECTED_S.get(cfg.name, {})
    rest = sum(exp.get(k, 0) for k in ("02", "04", "07"))
    return measured + rest if measured >= 60 or not exp else exp.get("00", 0) + exp.get("01", 0) + rest


def readout_sesoi(cfg: Profile, readout) -> float:
    """The readout's sesoi: SESOI_FRACTION × the SD of the per-clip flat share over the reference split
    (the same rule as every other metric's sesoi, `scorecard.reference_sesoi`)."""
    from .datasets import load_corpus  # heavy: torch

    z = load_corpus(cfg).split("reference").latents.numpy()
    values = readout.clip_shares(readout.p_flat(readout.predict_proba(z)))
    return SESOI_FRACTION * float(np.std(values, ddof=1))


def paired_rows(clips: pd.DataFrame, arm: str, baseline: str, prompt_set: str) -> pd.DataFrame:
    """d = flat_share(arm) − flat_share(baseline) per (seed, prompt, sample) on one prompt set; the
    baseline 'base' (generated once) pairs with every seed by prompt and sample (the same noise)."""
    c = clips[clips["set"] == prompt_set]
    a = c[c["label"] == arm].set_index(["seed", "prompt_id", "sample"])["flat_share"]
    if baseline == "base":
        b = c[c["label"] == "base"].set_index(["prompt_id", "sample"])["flat_share"]
        j = a.reset_index().merge(b.rename("b").reset_index(), on=["prompt_id", "sample"])
    else:
        b = c[c["label"] == baseline].set_index(["seed", "prompt_id", "sample"])["flat_share"]
        j = a.rename("flat_share").reset_index().merge(b.rename("b").reset_index(), on=["seed", "prompt_id", "sample"])
    return j.assign(d=j["flat_share"] - j["b"])[["seed", "prompt_id", "sample", "d"]]


def dose_response(clips: pd.DataFrame, sesoi: float, alpha: float = 0.05) -> pd.DataFrame:
    """One row per comparison (every pilot label − none, and none − base) × prompt set: estimate, CI,
    p, MDE (paired_verdict over seeds × prompts), the effect in sesoi, and for the oracle doses of one
    variant whether the readout falls monotonically with the dose (`monotone`: 1.0 yes, 0.0 no, nan
    for other rows): 0 > effect(weakest dose) > … > effect(strongest dose)."""
    rows = []
    labels = [lb for lb in dict.fromkeys(clips["label"]) if lb not in ("base",)]
    for s in [x for x in ("primary", "primary_cfg", "unconditional", "card") if x in set(clips["set"])]:
        pairs = [(lb, "none" if "@" not in lb else "none@" + lb.split("@")[1]) for lb in labels if not lb.startswith("none")]
        pairs += [(lb, "base") for lb in labels if lb.startswith("none")]
        for arm, base in pairs:
            d = paired_rows(clips, arm, base, s)
            if d.empty:
                continue
            cells = d.groupby(["seed", "prompt_id"], as_index=False)["d"].mean()
            res = stats.paired_verdict(cells, direction=-1, sesoi=sesoi, alpha=alpha)
            rows.append({"set": s, "comparison": f"{arm} − {base}", "estimate": res["estimate"], "ci_lo": res["ci_lo"],
                         "ci_hi": res["ci_hi"], "p": res["p"], "mde": res["mde"], "effect_sesoi": res["estimate"] / sesoi,
                         "sesoi": sesoi, "n_seeds": res["n_seeds"], "n_prompts": res["n_prompts"], "verdict": res["verdict"]})
    table = pd.DataFrame(rows)
    table["monotone"] = np.nan
    parts = table["comparison"].str.extract(r"^oracle([0-9.]+)(@\S+)? − none")
    for (s, v), g in table.assign(_f=parts[0], _v=parts[1].fillna("")).groupby(["set", "_v"]):
        dose = g[g["_f"].notna()]
        if len(dose) >= 2:
            f = dose["_f"].astype(float)
            order = dose.assign(f=f.to_numpy()).sort_values("f", ascending=False)  # weaker dose first
            table.loc[dose.index, "monotone"] = float(np.all(np.diff(np.r_[0.0, order["estimate"].to_numpy()]) < 0))
    return table


def _metric_seconds_per_clip(runs: Path, clips: pd.DataFrame, n: int = 24) -> float:
    """Seconds per clip of the audio metric suite in one warm process (`metrics.metrics_table`, n_jobs=1:
    a first call on 2 clips compiles what numba compiles, then `n` clips are timed); `evaluate` runs
    2 workers, hence the caller's / 2."""
    paths = [str(runs / p) for p in clips["path"].head(n + 2)]
    metrics_table(paths[:2], None, n_jobs=1)
    _, t = _timed(metrics_table, paths[2:], None, n_jobs=1)
    return t / max(len(paths) - 2, 1)
