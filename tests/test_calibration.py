"""Calibration of the scorecard's decision rules by simulation (docs/design.md §4).

Model: d[s, p] = δ + a_s + b_p + e_sp, seeds and prompts crossed, with a_s (seed), b_p (prompt) and
e_sp (seed × prompt interaction) of SDs (σa, σb, σe). Two grids of cells (variance structure ×
design × 3 / 5 / 8 seeds), labelled in the table's `grid` column:

- base cells (GRID_BASE): normal components, 12 prompts, plus one-prompt seed-only cells (normal and
  t3 noise);
- robustness cells (GRID_ROBUST), the designs the runs use: 16 prompts, and per structure
  (a) every component Student t with 3 df scaled to the same variance (t3 / √3: heavy tails),
  (b) normal components with 3 of the 16 prompts 3× noisier (interaction SD 3σe: heteroscedastic),
  (c) both, and 2 cells missing (in different prompts: `crossed_table` cuts the table to a
      complete block, here 14 prompts, exactly as paired_verdict does on a real table).

Per cell, from `reps_size` simulated experiments at the null or on a boundary and `reps_power` for
a power (`cell_rates`):

- size        false decisions under δ = 0: 'supported' or 'contradicted' without a sesoi. With a
              sesoi, equivalence-first only moves some of these to 'equivalent' + negligible,
              so {supported, contradicted, negligible} with a sesoi is the same set (checked);
- MDE         E[reported MDE] (mean over the null runs) and the *true* MDE, the δ the rule finds
              with 80 % power: 'supported' ⇔ δ > t·se − (estimate − δ), and se does not depend on
              δ, so the true MDE is the 80 % quantile of t·se − estimate over the null runs;
              spread: 10 / 50 / 90 % quantiles of reported / true;
- power@MDE   rate of 'supported' at δ = E[reported MDE] (fresh runs); 'own MDE': at δ = each
              run's own reported MDE (reported, not tested);
- eq power    'equivalent' at δ = 0 with sesoi = 1.5 × E[MDE] (a design precise for that sesoi);
- eq size     'equivalent' at δ = sesoi (truth on the boundary): TOST's size, ≤ α;
- NI size     `noninferiority` (direction +1) 'supported' at δ = −margin, margin = E[NI MDE];
- NI power    'supported' at δ = 0 with margin = 1.5 × E[NI MDE].

Bounds are the nominal value widened by Z_TOL = 3 Monte-Carlo SEs of a rate at that value from
the replicates used (`mcse`): size ≤ α + 3·MCSE(α); the power at the reported MDE in
[0.70 − 3·MCSE(0.70), 0.90 + 3·MCSE(0.90)]; eq and NI power ≥ 0.80 − 3·MCSE(0.80). 3 rather
than 2 MCSE because there are ~200 size checks, a dozen of them exact tests (seed-only t, the
one-sided tests on their boundary) whose measured rate would exceed α + 2·MCSE by chance with
probability 2.3 % each; at 3·MCSE, 0.13 %. The limit still has teeth: ANOVA + Satterthwaite df
exceeds it (`test_the_limit_catches_a_liberal_rule`).

The simulations run through the vectorised functions paired_verdict and noninferiority use
(`crossed_mean_se`, `verdict_from_se`, `noninferiority_from_se`, `_complete_block`); a separate
test checks that the DataFrame entry points give the same verdicts on the same tables (missing
cells and t3 included). Deterministic (fixed RNG seeds); `pytest -s` prints the table.
benchmarks/bench_calibration.py runs the same code with more replicates
(benchmarks/results/calibration.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from eisbach_lib.stats import (_complete_block, crossed_mean_se, noninferiority, noninferiority_from_se,
                               paired_verdict, verdict_from_se)

ALPHA = 0.05
SEEDS = (3, 5, 8)
STRUCTURES = {  # name: (σa seed, σb prompt, σe interaction)
    "seed-dominated": (1.0, 0.2, 0.3),
    "equal components": (1.0, 1.0, 1.0),
    "prompt + interaction only": (0.0, 1.0, 1.0),
    "iid (interaction only)": (0.0, 0.0, 1.0),
    "seed >> prompt >> interaction": (4.0, 2.0, 1.0),
}
N_PROMPTS_OLD = 12  # prompts of the base cells
N_PROMPTS = 16  # what the runs use (12–16)
#: the `grid` column of the table: normal components at 12 prompts (+ seed-only) / the designs the runs use
GRID_BASE, GRID_ROBUST = "base cells", "robustness cells"
NOISY_PROMPTS = 3  # prompts with a 3× interaction SD in the heteroscedastic cells
NOISY_FACTOR = 3.0
MISSING = ((0, 15), (2, 10))  # (seed, prompt) cells missing in the incomplete cells
REPS = 2000  # replicates of a power run (MCSE of a rate near 0.8: 0.009)
REPS_SIZE = 4000  # replicates of a run at the null or on a boundary (MCSE at 0.05: 0.0034)
Z_TOL = 3.0  # Monte-Carlo tolerance in MCSE (see the module docstring)
POWER_BAND = (0.70, 0.90)  # power at the reported MDE (it must mean "80 % power")
EQ_POWER_MIN = 0.80
SESOI_OVER_MDE = 1.5


@dataclass(frozen=True)
class Design:
    """One simulated design: components' SDs and law, prompts, heteroscedastic prompts, missing cells."""

    name: str
    sds: tuple[float, float, float]
    n_prompts: int
    dist: str = "normal"  # "normal" or "t3" (every component)
    noisy: int = 0  # number of prompts with interaction SD × NOISY_FACTOR
    missing: tuple[tuple[int, int], ...] = ()
    seed_only: bool = False  # one prompt, d[s] = δ + a_s + e_s (sds[0], sds[2])

    @property
    def label(self) -> str:
        bits = [self.dist]
        if self.noisy:
            bits.append(f"{self.noisy} prompts {NOISY_FACTOR:g}× noisier")
        if self.missing:
            bits.append(f"{len(self.missing)} cells missing")
        return f"{self.name} {self.sds}, " + ", ".join(bits) if not self.seed_only else f"{self.name}, {self.dist} noise"


def mcse(reps: int, rate: float = ALPHA) -> float:
    """Monte-Carlo standard error of a rate near `rate` from `reps` replicates: √(rate(1 − rate)/reps)."""
    return float(np.sqrt(rate * (1 - rate) / reps))


def size_limit(reps: int) -> float:
    """α + Z_TOL·MCSE(α): the largest measured false-decision rate a rule of size α passes."""
    return ALPHA + Z_TOL * mcse(reps)


def _component(rng: np.random.Generator, dist: str, shape: tuple[int, ...]) -> np.ndarray:
    """Unit-variance draws: standard normal, or Student t(3)/√3 (Var t_ν = ν/(ν − 2) = 3)."""
    if dist == "normal":
        return rng.standard_normal(shape)
    if dist == "t3":
        return rng.standard_t(3, shape) / np.sqrt(3.0)
    raise ValueError(dist)


def complete_columns(design: Design, n_seeds: int) -> tuple[np.ndarray, np.ndarray]:
    """(seed mask, prompt mask) of the complete block paired_verdict keeps (`_complete_block`)."""
    present = np.ones((n_seeds, design.n_prompts), dtype=bool)
    for s, p in design.missing:
        present[s, p] = False
    return _complete_block(present)


def simulate(rng: np.random.Generator, reps: int, n_seeds: int, design: Design, delta=0.0) -> np.ndarray:
    """reps tables [reps, S, P'] of d = δ + a_s + b_p + e_sp for `design`, already cut to the
    complete block when cells are missing (the cut looks only at which cells exist). delta: a
    scalar or one value per replicate."""
    sa, sb, se = design.sds
    delta = np.reshape(np.asarray(delta, dtype=np.float64), (-1, 1, 1))
    if design.seed_only:
        return delta + sa * _component(rng, "normal", (reps, n_seeds, 1)) + se * _component(rng, design.dist, (reps, n_seeds, 1))
    P = design.n_prompts
    e_sd = np.full(P, se)
    e_sd[:design.noisy] *= NOISY_FACTOR
    y = (delta + sa * _component(rng, design.dist, (reps, n_seeds, 1)) + sb * _component(rng, design.dist, (reps, 1, P))
         + e_sd * _component(rng, design.dist, (reps, n_seeds, P)))
    if design.missing:
        rows, cols = complete_columns(design, n_seeds)
        y = y[:, rows][:, :, cols]
    return y


def cell_rates(design: Design, n_seeds: int, seed: int, reps_power: int = REPS, reps_size: int = REPS_SIZE) -> dict:
    """All rates of one cell (see the module docstring)."""
    rng = np.random.default_rng(seed)
    make = lambda delta, reps: simulate(rng, reps, n_seeds, design, delta)  # noqa: E731

    def run(delta, reps, **kw):
        est, se, df = crossed_mean_se(make(delta, reps))
        return est, se, df, verdict_from_se(est, se, df, alpha=ALPHA, **kw)

    est0, se0, df, null = run(0.0, reps_size)
    out = {"prompts used": int(make(0.0, 1).shape[-1]), "df": int(df)}
    decisive = np.isin(null["verdict"], ("supported", "contradicted"))
    out["size"] = float(decisive.mean())
    mde = null["mde"]
    out["mde"] = float(mde.mean())
    crit = scipy.stats.t.ppf(1 - ALPHA / 2, df)
    true_mde = float(np.quantile(crit * se0 - est0, 0.8))  # 'supported' at δ ⇔ δ > crit·se − (est − δ)
    out["true mde"] = true_mde
    out["mde ratio q10"], out["mde ratio q50"], out["mde ratio q90"] = np.quantile(mde / true_mde, [0.1, 0.5, 0.9])
    out["power@mde"] = float((run(out["mde"], reps_power)[3]["verdict"] == "supported").mean())
    out["power@own mde"] = float((crit * se0 - est0 < mde).mean())  # δ_r = run r's own MDE (se is δ-free)
    sesoi = SESOI_OVER_MDE * out["mde"]
    with_sesoi = verdict_from_se(est0, se0, df, alpha=ALPHA, sesoi=sesoi)  # the null tables, with a sesoi
    claims_effect = np.isin(with_sesoi["verdict"], ("supported", "contradicted")) | with_sesoi["negligible"]
    out["false decisions = size with sesoi"] = bool(np.array_equal(claims_effect, decisive))
    out["negligible@0"] = float(with_sesoi["negligible"].mean())
    out["eq power"] = float((with_sesoi["verdict"] == "equivalent").mean())
    out["eq size"] = float((run(sesoi, reps_size, sesoi=sesoi)[3]["verdict"] == "equivalent").mean())

    def run_ni(delta, margin, reps):
        est, se, df_ = crossed_mean_se(make(delta, reps))
        return noninferiority_from_se(est, se, df_, margin, +1, ALPHA)

    ni_mde = float(noninferiority_from_se(est0, se0, df, 1.0, +1, ALPHA)["mde"].mean())  # margin-free
    out["NI size"] = float((run_ni(-ni_mde, ni_mde, reps_size)["verdict"] == "supported").mean())
    out["NI power"] = float((run_ni(0.0, SESOI_OVER_MDE * ni_mde, reps_power)["verdict"] == "supported").mean())
    return out


def designs() -> list[Design]:
    """The two grids (module docstring), in the order of the table."""
    old = [Design(name, sds, N_PROMPTS_OLD) for name, sds in STRUCTURES.items()]
    old += [Design("seed-only", (1.0, 0.0, 1.0), 1, dist, seed_only=True) for dist in ("normal", "t3")]
    new = []
    for name, sds in STRUCTURES.items():
        new += [Design(name, sds, N_PROMPTS, "t3"),
                Design(name, sds, N_PROMPTS, "normal", noisy=NOISY_PROMPTS),
                Design(name, sds, N_PROMPTS, "t3", noisy=NOISY_PROMPTS, missing=MISSING)]
    return old + new


def calibration_rows(reps_power: int = REPS, reps_size: int = REPS_SIZE, seed: int = 2024) -> pd.DataFrame:
    """Every cell of `designs()` × SEEDS; one row per cell."""
    rows = []
    for i, design in enumerate(designs()):
        for j, s in enumerate(SEEDS):
            rows.append({"design": design.label, "grid": GRID_ROBUST if design.n_prompts == N_PROMPTS else GRID_BASE,
                         "seeds": s, "prompts": design.n_prompts, **cell_rates(design, s, seed + 100 * i + j, reps_power, reps_size)})
    return pd.DataFrame(rows)


def format_table(table: pd.DataFrame) -> str:
    """Markdown table of the rates (MDEs in units of the simulated SDs)."""
    lines = ["| design (σa, σb, σe), components | seeds × prompts (used) | false decisions at δ=0 | E[reported MDE] "
             "| true MDE | reported/true: median [10 %, 90 %] | supported at δ=E[MDE] | at δ=own MDE | "
             "equivalent at δ=0 | equivalent at δ=sesoi | NI supported at δ=−margin | NI supported at δ=0 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        used = f" ({r['prompts used']})" if r["prompts used"] != r["prompts"] else ""
        lines.append(f"| {r['design']} | {r['seeds']} × {r['prompts']}{used} | {r['size']:.3f} | {r['mde']:.3g} | "
                     f"{r['true mde']:.3g} | {r['mde ratio q50']:.2f} [{r['mde ratio q10']:.2f}, {r['mde ratio q90']:.2f}] | "
                     f"{r['power@mde']:.3f} | {r['power@own mde']:.3f} | {r['eq power']:.3f} | {r['eq size']:.3f} | "
                     f"{r['NI size']:.3f} | {r['NI power']:.3f} |")
    return "\n".join(lines)


def check_table(table: pd.DataFrame, reps_power: int, reps_size: int) -> dict[str, list[str]]:
    """Every failed check, by name (empty lists: all pass). The bounds are derived from the
    replicate counts (module docstring), so the benchmark checks its bigger runs the same way."""
    size_lim = size_limit(reps_size)
    lo = POWER_BAND[0] - Z_TOL * mcse(reps_power, POWER_BAND[0])
    hi = POWER_BAND[1] + Z_TOL * mcse(reps_power, POWER_BAND[1])
    pow_min = EQ_POWER_MIN - Z_TOL * mcse(reps_power, EQ_POWER_MIN)

    def fails(col, ok, part=table):
        return [f"{r['design']} {r['seeds']}×{r['prompts']}: {col} = {r[col]:.3f}" for _, r in part.iterrows() if not ok(r[col])]

    return {"size": fails("size", lambda x: x <= size_lim),
            "negligible identity": fails("false decisions = size with sesoi", bool),
            "power@mde": fails("power@mde", lambda x: lo <= x <= hi),
            "eq power": fails("eq power", lambda x: x >= pow_min),
            "eq size": fails("eq size", lambda x: x <= size_lim),
            "NI size": fails("NI size", lambda x: x <= size_lim),
            "NI power": fails("NI power", lambda x: x >= pow_min)}


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    t0 = time.perf_counter()
    out = calibration_rows()
    print(f"\ncalibration: {REPS_SIZE} replicates per size run, {REPS} per power run "
          f"({time.perf_counter() - t0:.1f} s); limit for a size: α + 3·MCSE = {size_limit(REPS_SIZE):.4f}\n" + format_table(out))
    return out


@pytest.fixture(scope="module")
def failures(table) -> dict[str, list[str]]:
    return check_table(table, REPS, REPS_SIZE)


def satterthwaite_mean_se(table: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rejected textbook alternative: se² = (MS_seed + MS_prompt − MS_resid)/(S·P) with
    Satterthwaite df (negative combinations fall back to the larger mean square alone)."""
    S, P = table.shape[-2:]
    grand = table.mean(axis=(-2, -1))
    row, col = table.mean(axis=-1), table.mean(axis=-2)
    ms_s = P * ((row - grand[..., None]) ** 2).sum(-1) / (S - 1)
    ms_p = S * ((col - grand[..., None]) ** 2).sum(-1) / (P - 1)
    resid = table - row[..., :, None] - col[..., None, :] + grand[..., None, None]
    ms_e = (resid**2).sum((-2, -1)) / ((S - 1) * (P - 1))
    v = ms_s + ms_p - ms_e
    den = ms_s**2 / (S - 1) + ms_p**2 / (P - 1) + ms_e**2 / ((S - 1) * (P - 1))
    bad = v <= 0
    v = np.where(bad, np.maximum(ms_s, ms_p), v)
    den = np.where(bad, np.where(ms_s > ms_p, ms_s**2 / (S - 1), ms_p**2 / (P - 1)), den)
    return grand, np.sqrt(v / (S * P)), v**2 / den


def test_the_limit_catches_a_liberal_rule():
    """The size limit has teeth: the ANOVA + Satterthwaite rule exceeds it at 3 seeds when the seed
    variance dominates but the prompt variance is not small (its df grow when MS_seed is small by
    chance), where the rule in stats stays below it on the same tables."""
    reps = 8000
    design = Design("seed >> prompt >> interaction", STRUCTURES["seed >> prompt >> interaction"], N_PROMPTS_OLD)
    tables = simulate(np.random.default_rng(77), reps, 3, design)
    est, se, df = satterthwaite_mean_se(tables)
    liberal = float((np.abs(est / se) > scipy.stats.t.ppf(1 - ALPHA / 2, df)).mean())  # df differs per table
    est, se, df = crossed_mean_se(tables)
    ours = float(np.isin(verdict_from_se(est, se, df)["verdict"], ("supported", "contradicted")).mean())
    print(f"decisive under δ=0, 3 seeds × 12 prompts, (4, 2, 1): Satterthwaite {liberal:.4f}, stats {ours:.4f}")
    assert liberal > size_limit(reps) >= ours


def test_the_grid_covers_what_the_runs_use(table):
    """t3 components, heteroscedastic prompts, missing cells and 16 prompts at 3, 5 and 8 seeds."""
    new = table[table["grid"] == GRID_ROBUST]
    assert set(new["seeds"]) == set(SEEDS) and set(new["prompts"]) == {N_PROMPTS}
    for word in ("t3", "noisier", "missing"):
        assert new["design"].str.contains(word).sum() >= 3 * len(STRUCTURES)
    assert (new.loc[new["design"].str.contains("missing"), "prompts used"] == N_PROMPTS - len(MISSING)).all()


def test_no_more_false_decisions_than_alpha_in_any_cell(failures):
    assert not failures["size"]


def test_negligible_is_a_false_decision_like_any_other(failures):
    """Equivalence-first changes no false-decision rate: under δ = 0 the runs that claim an effect
    with a sesoi (supported, contradicted or negligible) are exactly the decisive runs without one."""
    assert not failures["negligible identity"]


def test_not_trivially_conservative_where_seeds_carry_the_variance(table):
    """Where the seed term dominates with normal components the rule is close to an exact t-test
    over the seeds: its size must not be far below α (a rule that never decides would pass the
    size test). Benchmark (20000 replicates): 0.042–0.050 in these cells."""
    part = table[table["design"].str.startswith(("seed-dominated (1.0, 0.2, 0.3), normal", "seed-only, normal"))]
    assert len(part) == 2 * len(SEEDS) + len(SEEDS)  # 12 prompts, 16 prompts heteroscedastic, seed-only
    assert (part["size"] >= 0.03).all(), part[["design", "seeds", "size"]]


def test_reported_mde_is_detected_with_70_to_90_percent_power(failures, table):
    """At δ = E[reported MDE] the rule says 'supported' 70–90 % of the time (± 3 MCSE), in every
    cell and at 3, 5 and 8 seeds (8 included)."""
    assert not failures["power@mde"]
    assert (table["seeds"] == 8).sum() >= 20


def test_reported_mde_is_unbiased_for_the_true_one_at_8_seeds(table):
    """The reported MDE scatters around the true one (the δ found with 80 % power): the median
    reported/true lies within 0.8–1.05 at 8 seeds (it is a scaled χ-type SE, its median is below
    its mean; heavy tails widen the spread, not the centre)."""
    eight = table[table["seeds"] == 8]
    assert eight["mde ratio q50"].between(0.80, 1.05).all(), eight[["design", "mde ratio q50"]]
    assert (eight["mde ratio q10"] < eight["mde ratio q50"]).all() and (eight["mde ratio q50"] < eight["mde ratio q90"]).all()


def test_equivalence_has_power_and_keeps_its_size(failures):
    assert not failures["eq power"]
    assert not failures["eq size"]


def test_noninferiority_keeps_its_size_and_has_power(failures):
    assert not failures["NI size"]
    assert not failures["NI power"]


@pytest.mark.parametrize("n_seeds,design", [
    (3, Design("equal", (1.0, 1.0, 1.0), 12)),
    (5, Design("equal", (1.0, 1.0, 1.0), 12)),
    (8, Design("equal", (1.0, 1.0, 1.0), 3)),
    (4, Design("seed-only", (1.0, 0.0, 1.0), 1, seed_only=True)),
    (5, Design("t3, noisy, missing", (1.0, 1.0, 1.0), N_PROMPTS, "t3", noisy=NOISY_PROMPTS, missing=MISSING)),
])
def test_dataframe_entry_points_give_the_vectorised_verdicts(n_seeds, design):
    """paired_verdict / noninferiority on long tables = the vectorised path on the same arrays (so
    the calibration above is the calibration of the functions the scorecard calls); with missing
    cells the long table lacks those rows and paired_verdict must make the same cut."""
    rng = np.random.default_rng(n_seeds * 100 + design.n_prompts)
    full = simulate(rng, 20, n_seeds, Design(design.name, design.sds, design.n_prompts, design.dist, design.noisy,
                                             seed_only=design.seed_only), delta=np.linspace(-0.5, 3.0, 20))
    rows, cols = complete_columns(design, n_seeds)
    tables = full[:, rows][:, :, cols]
    est, se, df = crossed_mean_se(tables)
    vec = verdict_from_se(est, se, df, direction=+1, sesoi=1.5)
    ni = noninferiority_from_se(est, se, df, 0.5, +1)
    seeds, prompts = np.meshgrid(np.arange(n_seeds), np.arange(design.n_prompts), indexing="ij")
    keep = np.ones(seeds.shape, dtype=bool)
    for s, p in design.missing:
        keep[s, p] = False
    assert len(set(vec["verdict"])) >= 2  # the comparison sees more than one verdict
    for r in range(full.shape[0]):
        long = pd.DataFrame({"seed": seeds[keep], "prompt_id": prompts[keep], "d": full[r][keep]})
        if design.n_prompts == 1:
            long = long.drop(columns="prompt_id")
        res = paired_verdict(long, direction=+1, sesoi=1.5)
        assert res["verdict"] == vec["verdict"][r] and res["negligible"] == vec["negligible"][r]
        assert res["ci_lo"] == pytest.approx(vec["ci_lo"][r]) and res["mde"] == pytest.approx(vec["mde"][r])
        assert noninferiority(long, 0.5)["verdict"] == ni["verdict"][r]
