"""Calibration of the listening study's analysis by simulation, larger than the test.

    python benchmarks/bench_listening.py [--reps 4000] [--reps-power 2000]
                                         [--out benchmarks/results/listening_calibration.md]

The simulated study is the kit's real design for the cpu / gpu profiles: 6 comparisons (eisbach vs
none, minsnr and the controls) × 2 questions = 12 listener rows; per comparison 16 pairs, 2 from
each of 8 training seeds (pairs_per_comparison 12 rounded up to a multiple of the seeds); every
rater answers every trial; catch trials screen raters. The votes come from
`tests/test_listen_study.py::simulate_study` (loaded from the test file, so the benchmark and the
test run the same code): logit = preference + rater + training seed + pair, the seed and rater
effects correlated across comparisons (0.5) and questions (0.7), rater position bias, ties,
random raters. They are analysed with the library's own functions (`study.clustered_win_rate`,
`t_interval`, `t_pvalue`, `family_adjust`, `decide_win_rate`) through the test's `analyse`.

Reported per cell (scenario × seed SD × raters):
- per-row: share of rows whose 95 % CI excludes 0.5 under no preference (the interval's size),
  pooled over the 12 exchangeable rows, with its MCSE from the replicates; the largest single row;
- family-wise: share of studies in which some row is decisive (supported / contradicted) after
  `family_adjust` (primary at α, the rest Holm-corrected and gated on it);
- equivalent: share of rows called 'equivalent' (correct here: no preference);
- old rule: the rule this replaces (clusters rater and pair, no seed, no multiplicity), per row and
  family-wise;
- power: share of studies whose primary row is 'supported' when the population prefers arm_a 70 %
  (logit 0.85) on the primary row only, and on a secondary row when every row has that preference.
Pass: per-row and family-wise ≤ 0.05 + 3·MCSE with MCSE = sqrt(0.05·0.95/reps) (the worst case
for correlated rows; the test uses the same rule). Deterministic (fixed seeds).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from eisbach_lib.study import clustered_win_rate, t_interval  # noqa: E402
from eisbach_lib.study_design import MIN_RATERS  # noqa: E402


def load_test_module():
    spec = importlib.util.spec_from_file_location("test_listen_study", ROOT / "tests" / "test_listen_study.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


T = load_test_module()
CHUNK = 500


def run_cell(reps: int, n_raters: int, seed: int, pref=0.0, **kw) -> dict:
    """Simulate `reps` studies in chunks; the new rule's raw / final decisions and the old rule's."""
    rng = np.random.default_rng(seed)
    raw_all, ver_all, old_all = [], [], []
    for start in range(0, reps, CHUNK):
        n = min(CHUNK, reps - start)
        W, groups = T.simulate_study(n, n_raters, rng, pref=pref, **kw)
        raw, verdict = T.analyse(W, groups)
        r = clustered_win_rate(W)
        lo, hi = t_interval(r["estimate"], r["se"], r["df"], 0.95)
        old = (r["n_raters"] >= MIN_RATERS) & ((lo > 0.5) | (hi < 0.5))
        raw_all.append(raw)
        ver_all.append(verdict)
        old_all.append(old)
    return {"raw": np.concatenate(raw_all), "verdict": np.concatenate(ver_all), "old": np.concatenate(old_all)}


def size_table(reps: int) -> tuple[list[str], bool]:
    bound = 0.05 + 3 * math.sqrt(0.05 * 0.95 / reps)
    lines = [f"## Under no preference ({reps} simulated studies a cell; bound 0.05 + 3·MCSE = {bound:.4f})", "",
             "| scenario | seed SD | raters | per-row decisive (MCSE) | largest row | family-wise | equivalent | "
             "too few raters | old rule per-row | old rule family-wise | pass |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    ok_all = True
    for si, (scenario, kw) in enumerate(T.SCENARIOS.items()):
        for seed_sd in (0.0, 0.5, 1.0):
            for n_raters in (6, 12, 24):
                res = run_cell(reps, n_raters, 20000 + 1000 * si + 100 * int(10 * seed_sd) + n_raters,
                               seed_sd=seed_sd, **kw)
                raw, verdict, old = res["raw"], res["verdict"], res["old"]
                per_rep = raw.mean(axis=1)
                mcse = per_rep.std(ddof=1) / math.sqrt(reps)
                fwer = T.decisive(verdict).any(axis=1).mean()
                ok = raw.mean() <= bound and fwer <= bound
                ok_all &= ok
                lines.append(f"| {scenario} | {seed_sd} | {n_raters} | {raw.mean():.4f} ({mcse:.4f}) | "
                             f"{raw.mean(axis=0).max():.4f} | {fwer:.4f} | {np.mean(verdict == 'equivalent'):.3f} | "
                             f"{np.mean(verdict == 'too few votes'):.3f} | {old.mean():.4f} | "
                             f"{old.any(axis=1).mean():.4f} | {'yes' if ok else 'NO'} |")
                print(lines[-1], flush=True)
    return lines, ok_all


def power_table(reps: int) -> list[str]:
    logit = math.log(0.7 / 0.3)
    rows = T.N_COMPARISONS * T.N_QUESTIONS
    secondary = 3  # the second comparison × preference
    lines = [f"## Power at a 70 % preference (logit {logit:.2f}; {reps} simulated studies a cell, MCSE ≤ "
             f"{math.sqrt(0.25 / reps):.3f})", "",
             "The logit 0.85 is the preference of a typical rater on a typical seed; the population win rate is "
             "lower when the rater and seed SDs are large, and ties pull it towards 0.5 (0.64–0.68 in these cells). "
             "Primary only: the population prefers arm_a on the primary row (eisbach vs none × preference), no "
             "preference elsewhere. All rows: every row has the preference; the secondary column is one "
             "Holm-corrected row gated on the primary (the second comparison × preference).", "",
             "| scenario | seed SD | raters | primary only: supported | all rows: primary supported | "
             "all rows: secondary supported | contradicted (share of rows) |",
             "|---|---|---|---|---|---|---|"]
    for si, (scenario, kw) in enumerate(T.SCENARIOS.items()):
        for seed_sd in (0.0, 0.5, 1.0):
            for n_raters in (6, 12, 24):
                base = 30000 + 1000 * si + 100 * int(10 * seed_sd) + n_raters
                pref = np.zeros(rows)
                pref[T.PRIMARY_ROW] = logit
                one = run_cell(reps, n_raters, base, pref=pref, seed_sd=seed_sd, **kw)["verdict"]
                every = run_cell(reps, n_raters, base + 50, pref=np.full(rows, logit), seed_sd=seed_sd, **kw)["verdict"]
                contra = max(np.mean(one == "contradicted"), np.mean(every == "contradicted"))  # rows × studies
                lines.append(f"| {scenario} | {seed_sd} | {n_raters} | {np.mean(one[:, T.PRIMARY_ROW] == 'supported'):.3f} | "
                             f"{np.mean(every[:, T.PRIMARY_ROW] == 'supported'):.3f} | "
                             f"{np.mean(every[:, secondary] == 'supported'):.3f} | {contra:.4f} |")
                print(lines[-1], flush=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=4000)
    ap.add_argument("--reps-power", type=int, default=2000)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "listening_calibration.md"))
    args = ap.parse_args(argv)
    t0 = time.time()
    size, ok = size_table(args.reps)
    power = power_table(args.reps_power)
    minutes = (time.time() - t0) / 60
    head = [
        "# Listening analysis: calibration by simulation with seed effects",
        "",
        "docs/design.md §5 (listeners). Written by `python benchmarks/bench_listening.py` "
        f"(--reps {args.reps} --reps-power {args.reps_power}; {minutes:.1f} min on {platform.machine()}, "
        f"Python {platform.python_version()}, numpy {np.__version__}). The model and the rule: the script's "
        "docstring, `eisbach_lib/study.py` (`clustered_win_rate`, `family_adjust`, `decide_win_rate`) and "
        "`tests/test_listen_study.py` (`simulate_study`, the fast version of this table).",
        "",
        "Design: 6 comparisons × 2 questions = 12 listener rows; 16 pairs per comparison, 2 from each of 8 "
        "training seeds; every rater answers every trial; catch trials screen raters (rows with fewer than "
        f"{MIN_RATERS} screened raters read 'too few votes' and leave the family). Scenarios: *biased raters* "
        "(rater SD 1.0 on the logit, pair SD 0.5, position bias N(0.5, 0.5), ties up to 20 %, a quarter of "
        "raters answering at random) and *attentive raters* (rater SD 0.3, pair SD 0.3, ties up to 10 %, none "
        "random: the seed effect dominates). Seed SD: the arm preference's SD across training seeds on the "
        "logit scale.",
        "",
        f"All size cells pass: **{'yes' if ok else 'NO'}**.",
        "",
    ]
    Path(args.out).write_text("\n".join(head + size + [""] + power + [""]) + "\n")
    print(f"wrote {args.out} ({minutes:.1f} min)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
