"""Calibration of the scorecard's decision rules, larger than the test, with the old rules for comparison.

    python benchmarks/bench_calibration.py [--reps-power 20000] [--reps-size 20000] [--reps-old 1000]
                                           [--out benchmarks/results/calibration.md]

About 3 minutes of CPU on one core (OMP_NUM_THREADS=1).

1. The new rules (stats.paired_verdict / noninferiority through their vectorised pieces, verdicts
   equivalence first) on the grids of tests/test_calibration.py (same code, same cells and checks,
   more replicates): false decisions under no effect, the reported MDE against the true one and
   the power at it, TOST size and power, non-inferiority size and power. Exits non-zero when a
   check fails (the report is written first).
2. The rules they replace, under no effect (δ = 0), measured with the library's own functions:
   - old C8: one number per seed per metric, `stats.bootstrap_ci` (percentile, 2000 resamples,
     seed 0 as in the scorecard), "contradicted" when the CI lies wholly on the worse side; for one
     metric, and for the scorecard's two metrics (inter-prompt Vendi or FD, independent);
   - old C5–C7: two-level bootstrap CI (`bootstrap_ci(groups=seed)`, 2000 resamples) excluding 0,
     Wilcoxon signed-rank on the 12 seed-averaged prompts (p < 0.05), and both together (the
     scorecard's verdict for one claim: a decisive CI is demoted when its Holm p ≥ α; Holm over one
     claim is the raw p);
   - the textbook alternative that was *not* adopted: two-way ANOVA variance
     (MS_seed + MS_prompt − MS_resid)/(S·P) with Satterthwaite df.
Deterministic (fixed seeds). Writes a markdown report.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eisbach_lib.stats import bootstrap_ci  # noqa: E402


def _load_calibration_module():
    """tests/test_calibration.py as a module (the simulation and the grid live there, once)."""
    spec = importlib.util.spec_from_file_location("calibration_grid", ROOT / "tests" / "test_calibration.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def old_c8_rates(seeds: tuple[int, ...], reps: int, n_boot: int = 2000, seed: int = 11) -> list[dict]:
    """P(old C8 'contradicted') under no difference: per-seed values N(0, 1), percentile bootstrap."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in seeds:
        one = two = 0
        for _ in range(reps):
            v, f = rng.standard_normal(s), rng.standard_normal(s)
            _, _, v_hi = bootstrap_ci(v, n_boot=n_boot, seed=0)
            _, f_lo, _ = bootstrap_ci(f, n_boot=n_boot, seed=0)
            one += v_hi < 0
            two += (v_hi < 0) or (f_lo > 0)
        rows.append({"seeds": s, "one metric": one / reps, "two metrics (Vendi or FD)": two / reps})
    return rows


def old_c5_rates(mod, reps: int, n_boot: int = 2000, seed: int = 12) -> list[dict]:
    """Old C5–C7 rule and the Satterthwaite alternative under δ = 0, per crossed cell of the base
    cells (normal components, 12 prompts)."""
    rows = []
    for i, (name, sds) in enumerate(mod.STRUCTURES.items()):
        design = mod.Design(name, sds, mod.N_PROMPTS_OLD)
        for j, s in enumerate(mod.SEEDS):
            rng = np.random.default_rng(seed + 100 * i + j)
            tables = mod.simulate(rng, reps, s, design)
            labels = np.repeat(np.arange(s), mod.N_PROMPTS_OLD)
            ci_excl = np.zeros(reps, dtype=bool)
            for r in range(reps):
                _, lo, hi = bootstrap_ci(tables[r].ravel(), n_boot=n_boot, seed=0, groups=labels)
                ci_excl[r] = lo > 0 or hi < 0
            p_w = scipy.stats.wilcoxon(tables.mean(axis=1), axis=1).pvalue
            big = mod.simulate(rng, 20 * reps, s, design)  # the cheap rule gets more replicates
            est, se, df = mod.satterthwaite_mean_se(big)
            satt = float((np.abs(est / se) > scipy.stats.t.ppf(0.975, df)).mean())
            rows.append({"design": design.label, "seeds": s, "bootstrap CI excludes 0": float(ci_excl.mean()),
                         "Wilcoxon p < 0.05": float((p_w < 0.05).mean()),
                         "both (old verdict)": float((ci_excl & (p_w < 0.05)).mean()),
                         "ANOVA + Satterthwaite": satt, "reps": reps, "reps Satterthwaite": 20 * reps})
    return rows


def markdown(table: pd.DataFrame, cols: list[str], fmt: str = "{:.3f}") -> str:
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    for _, r in table.astype(object).iterrows():
        lines.append("| " + " | ".join(fmt.format(r[c]) if c in cols else str(r[c]) for c in table.columns) + " |")
    return "\n".join(lines)


def _range(x: pd.Series, fmt: str = "{:.3f}") -> str:
    return f"{fmt.format(x.min())}–{fmt.format(x.max())}"


def reading(new: pd.DataFrame, failures: dict[str, list[str]], size_lim: float) -> str:
    """The key numbers of the new rule, in words."""
    worst = new.loc[new["size"].idxmax()]
    eight, three = new[new["seeds"] == 8], new[new["seeds"] == 3]
    failed = {k: v for k, v in failures.items() if v}
    verdict = ("Every check passes." if not failed else
               "FAILED checks: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in failed.items()))
    return (f"- False decisions under no effect (supported or contradicted; with a sesoi also 'negligible'): "
            f"at most {worst['size']:.3f} ({worst['design']}, {worst['seeds']} seeds; limit α + 3·MCSE = {size_lim:.4f}).\n"
            f"- Power at δ = E[reported MDE]: {_range(eight['power@mde'])} at 8 seeds, {_range(new['power@mde'])} over "
            f"all cells (band 0.70–0.90); at δ = each run's own reported MDE {_range(new['power@own mde'])}.\n"
            f"- Reported / true MDE (true: the δ found with 80 % power): median {_range(eight['mde ratio q50'], '{:.2f}')} "
            f"at 8 seeds, 10–90 % quantiles as wide as {eight['mde ratio q10'].min():.2f}–{eight['mde ratio q90'].max():.2f}; "
            f"at 3 seeds median {_range(three['mde ratio q50'], '{:.2f}')}, quantiles as wide as "
            f"{three['mde ratio q10'].min():.2f}–{three['mde ratio q90'].max():.2f}. One run's MDE is a rough guide at 3 seeds.\n"
            f"- Equivalence (sesoi = 1.5 × E[MDE]): TOST size (equivalent at δ = sesoi) at most {new['eq size'].max():.3f}; "
            f"equivalent at δ = 0 {_range(new['eq power'])}.\n"
            f"- Non-inferiority: size at most {new['NI size'].max():.3f}, power at δ = 0 {_range(new['NI power'])}.\n"
            f"- {verdict}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps-power", type=int, default=20000)
    ap.add_argument("--reps-size", type=int, default=20000)
    ap.add_argument("--reps-old", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "calibration.md")
    args = ap.parse_args()
    mod = _load_calibration_module()

    t0, c0 = time.perf_counter(), time.process_time()
    new = mod.calibration_rows(args.reps_power, args.reps_size, seed=7)
    t_new, c_new = time.perf_counter() - t0, time.process_time() - c0
    print(mod.format_table(new), flush=True)
    failures = mod.check_table(new, args.reps_power, args.reps_size)
    t0, c0 = time.perf_counter(), time.process_time()
    c8 = pd.DataFrame(old_c8_rates(mod.SEEDS, 2 * args.reps_old))
    print(c8, flush=True)
    c5 = pd.DataFrame(old_c5_rates(mod, args.reps_old))
    print(c5, flush=True)
    t_old, c_old = time.perf_counter() - t0, time.process_time() - c0

    size_lim = mod.size_limit(args.reps_size)
    lo = mod.POWER_BAND[0] - mod.Z_TOL * mod.mcse(args.reps_power, mod.POWER_BAND[0])
    hi = mod.POWER_BAND[1] + mod.Z_TOL * mod.mcse(args.reps_power, mod.POWER_BAND[1])
    new_sizes = new[new["grid"] == mod.GRID_BASE].set_index(["design", "seeds"])["size"]
    c5 = c5.merge(new_sizes.rename("new rule").reset_index(), on=["design", "seeds"])
    c5 = c5[["design", "seeds", "bootstrap CI excludes 0", "Wilcoxon p < 0.05", "both (old verdict)",
             "ANOVA + Satterthwaite", "new rule"]]
    worst_old = c5.loc[c5["both (old verdict)"].idxmax()]
    worst_satt = c5.loc[c5["ANOVA + Satterthwaite"].idxmax()]
    old_reading = (f"Old C5–C7 verdict up to {worst_old['both (old verdict)']:.3f} ({worst_old['design']}, "
                   f"{worst_old['seeds']} seeds); ANOVA + Satterthwaite up to {worst_satt['ANOVA + Satterthwaite']:.3f} "
                   f"({worst_satt['design']}, {worst_satt['seeds']} seeds); old C8 'contradicted' "
                   f"{c8['two metrics (Vendi or FD)'].max():.3f} at {int(c8['seeds'].min())} seeds.")
    text = f"""# Calibration of the scorecard's decision rules

`python benchmarks/bench_calibration.py` (the grid and simulation of `tests/test_calibration.py`,
more replicates). Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()};
new rules {t_new:.0f} s wall / {c_new:.0f} s CPU, old rules {t_old:.0f} s wall / {c_old:.0f} s CPU.

Model: d[s, p] = δ + a_s + b_p + e_sp, seed, prompt and seed × prompt components of SDs (σa, σb, σe),
seeds crossed with prompts. Base cells: normal components, 12 prompts (seed-only rows: one
prompt, one value per seed). Robustness cells, the designs the runs use: 16 prompts, and per variance
structure (a) every component t3 (Student t, 3 df, scaled to the same variance), (b) normal with 3
of the 16 prompts 3× noisier, (c) t3 with the 3 noisy prompts and 2 cells missing (the table is cut
to a complete block as `paired_verdict` does: 14 prompts used).
The rule (`stats.crossed_mean_se`): se² = [MS_seed + max(MS_prompt − MS_resid, 0)]/(S·P), t with
S − 1 df (the scarcer factor's), MDE from the noncentral t; verdicts by `stats.decide`,
equivalence first (Lakens et al. 2018).

## Reading

{reading(new, failures, size_lim)}

{old_reading}

## New rules: `paired_verdict` and `noninferiority`

{args.reps_size} replicates per run at the null or on a boundary (MCSE at 0.05 = {mod.mcse(args.reps_size):.4f};
limit α + 3·MCSE = {size_lim:.4f}), {args.reps_power} per power run (band for the power at the reported
MDE with 3·MCSE: {lo:.3f}–{hi:.3f}). MDEs in units of the simulated SDs. Columns:

- *false decisions at δ=0*: supported or contradicted without a sesoi (with one, the runs that read
  supported, contradicted or equivalent-and-negligible are the same runs: checked);
- *E[reported MDE]*: mean of the MDE paired_verdict reported on the null runs; *true MDE*: the δ
  found with 80 % power (the 80 % quantile of t·se − estimate on the null runs, se being free of δ);
  *reported/true*: median and 10 / 90 % quantiles of one run's reported MDE over the true one;
- *supported at δ=E[MDE]*: power at the expected reported MDE (fresh runs); *at δ=own MDE*: each run
  shifted by its own reported MDE;
- *equivalent at δ=0 / at δ=sesoi*: with sesoi = 1.5 × E[MDE]; the second is TOST's size;
- NI: margin = E[NI MDE] for its size (δ = −margin), 1.5 × E[NI MDE] for its power (δ = 0).

### Base cells (normal components, 12 prompts; seed-only)

{mod.format_table(new[new["grid"] == mod.GRID_BASE])}

### Robustness cells (16 prompts: t3, heteroscedastic prompts, missing cells)

{mod.format_table(new[new["grid"] == mod.GRID_ROBUST])}

## Old rules under no effect (rate of decisive verdicts / of "contradicted")

Old C8 (one number per seed, percentile bootstrap of the seeds, "contradicted" when the CI lies on
the worse side), {2 * args.reps_old} replicates:

{markdown(c8, ["one metric", "two metrics (Vendi or FD)"])}

Old C5–C7 (two-level bootstrap over seeds then rows, Wilcoxon over the 12 seed-averaged prompts),
{args.reps_old} replicates (MCSE at 0.05 = {np.sqrt(0.05 * 0.95 / args.reps_old):.4f}); the
ANOVA + Satterthwaite alternative with {20 * args.reps_old} replicates; the new rule's rate from
the table above:

{markdown(c5, ["bootstrap CI excludes 0", "Wilcoxon p < 0.05", "both (old verdict)", "ANOVA + Satterthwaite", "new rule"])}
"""
    args.out.write_text(text)
    print(f"wrote {args.out}")
    if any(failures.values()):
        raise SystemExit(f"calibration checks failed: {failures}")


if __name__ == "__main__":
    main()
