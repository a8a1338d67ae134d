"""Calibration of the scorecard's decision rules, larger than the test, with the old rules for comparison.

    python benchmarks/bench_calibration.py [--reps-power 4000] [--reps-size 20000] [--reps-old 1000]
                                           [--out benchmarks/results/calibration.md]

1. The new rules (stats.paired_verdict / noninferiority through their vectorised pieces) on the
   grid of tests/test_calibration.py (same code, same cells, more replicates): rate of decisive
   verdicts under no effect, power at the reported MDE, TOST size and power, non-inferiority size
   and power.
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
    """Old C5–C7 rule and the Satterthwaite alternative under δ = 0, per crossed cell."""
    rows = []
    for i, (name, sds) in enumerate(mod.STRUCTURES.items()):
        for j, s in enumerate(mod.SEEDS):
            rng = np.random.default_rng(seed + 100 * i + j)
            tables = mod.simulate(rng, reps, s, mod.N_PROMPTS, sds)
            labels = np.repeat(np.arange(s), mod.N_PROMPTS)
            ci_excl = np.zeros(reps, dtype=bool)
            for r in range(reps):
                _, lo, hi = bootstrap_ci(tables[r].ravel(), n_boot=n_boot, seed=0, groups=labels)
                ci_excl[r] = lo > 0 or hi < 0
            p_w = scipy.stats.wilcoxon(tables.mean(axis=1), axis=1).pvalue
            est, se, df = mod.satterthwaite_mean_se(tables)
            big = mod.simulate(rng, 20 * reps, s, mod.N_PROMPTS, sds)  # the cheap rule gets more replicates
            est, se, df = mod.satterthwaite_mean_se(big)
            satt = float((np.abs(est / se) > scipy.stats.t.ppf(0.975, df)).mean())
            rows.append({"design": name, "seeds": s, "bootstrap CI excludes 0": float(ci_excl.mean()),
                         "Wilcoxon p < 0.05": float((p_w < 0.05).mean()),
                         "both (old verdict)": float((ci_excl & (p_w < 0.05)).mean()),
                         "ANOVA + Satterthwaite": satt, "reps": reps, "reps Satterthwaite": 20 * reps})
    return rows


def markdown(table: pd.DataFrame, cols: list[str], fmt: str = "{:.3f}") -> str:
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    for _, r in table.astype(object).iterrows():
        lines.append("| " + " | ".join(fmt.format(r[c]) if c in cols else str(r[c]) for c in table.columns) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps-power", type=int, default=4000)
    ap.add_argument("--reps-size", type=int, default=20000)
    ap.add_argument("--reps-old", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "calibration.md")
    args = ap.parse_args()
    mod = _load_calibration_module()

    t0 = time.perf_counter()
    new = mod.calibration_rows(args.reps_power, args.reps_size, seed=7)
    t_new = time.perf_counter() - t0
    print(mod.format_table(new), flush=True)
    t0 = time.perf_counter()
    c8 = pd.DataFrame(old_c8_rates(mod.SEEDS, 2 * args.reps_old))
    print(c8, flush=True)
    c5 = pd.DataFrame(old_c5_rates(mod, args.reps_old))
    print(c5, flush=True)
    t_old = time.perf_counter() - t0

    mcse = float(np.sqrt(0.05 * 0.95 / args.reps_size))
    new_sizes = new[new["prompts"] > 1].set_index(["design", "seeds"])["size"]
    c5 = c5.merge(new_sizes.rename("new rule").reset_index(), on=["design", "seeds"])
    c5 = c5[["design", "seeds", "bootstrap CI excludes 0", "Wilcoxon p < 0.05", "both (old verdict)",
             "ANOVA + Satterthwaite", "new rule"]]
    worst_new = new.loc[new["size"].idxmax()]
    worst_old = c5.loc[c5["both (old verdict)"].idxmax()]
    worst_satt = c5.loc[c5["ANOVA + Satterthwaite"].idxmax()]
    reading = (f"Largest rate of decisive verdicts under no effect: new rule {worst_new['size']:.3f} "
               f"({worst_new['design']}, {worst_new['seeds']} seeds); old C5–C7 verdict {worst_old['both (old verdict)']:.3f} "
               f"({worst_old['design']}, {worst_old['seeds']} seeds); ANOVA + Satterthwaite "
               f"{worst_satt['ANOVA + Satterthwaite']:.3f} ({worst_satt['design']}, {worst_satt['seeds']} seeds); "
               f"old C8 'contradicted' {c8['two metrics (Vendi or FD)'].max():.3f} at {int(c8['seeds'].min())} seeds. "
               f"Power at the reported MDE: {new['power@mde'].min():.2f}–{new['power@mde'].max():.2f}.")
    text = f"""# Calibration of the scorecard's decision rules

`python benchmarks/bench_calibration.py` (the grid and simulation of `tests/test_calibration.py`,
more replicates). Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()};
new rules {t_new:.0f} s, old rules {t_old:.0f} s.

Model: d[s, p] = δ + a_s + b_p + e_sp, a ~ N(0, σa²) per seed, b ~ N(0, σb²) per prompt, e ~ N(0, σe²)
per cell; seeds crossed with 12 prompts (seed-only rows: one prompt, one value per seed).
The rule (`stats.crossed_mean_se`): se² = [MS_seed + max(MS_prompt − MS_resid, 0)]/(S·P), t with
S − 1 df (the scarcer factor's), MDE from the noncentral t.

{reading}

## New rules: `paired_verdict` and `noninferiority`

{args.reps_size} replicates per run at the null or on a boundary (MCSE at 0.05 = {mcse:.4f};
0.05 + 2·MCSE = {0.05 + 2 * mcse:.4f}), {args.reps_power} per power run. MDE in units of the simulated SDs
(the median that paired_verdict reported on the null runs). sesoi = 1.5 × MDE for the equivalence
columns; NI margin = the NI MDE for its size, 1.5 × NI MDE for its power.

{mod.format_table(new)}

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


if __name__ == "__main__":
    main()
