"""A blind listening study: defined as data, taken offline in a browser, analysed with clustered intervals.

The parts, in the order a study runs:

- `study_config`     the study definition: defaults, then the profile's ``listening:`` section,
                     then an optional YAML file (comparisons, questions, prompts, seeds, sizes);
- `draw_trials`      the clip pairs from the samples manifest: same prompt, seed, sample (hence the
                     same initial noise) and step within a pair, prompts spread evenly, plus catch
                     trials (a clip against a degraded copy of itself, MUSHRA's low anchor);
- `make_kit`         writes ``<runs_dir>/listening/study.json``, the anchors and ``study.html`` (one
                     self-contained page, audio embedded as MP3, nothing fetched; see `build_page`);
- `import_votes`     merges the CSVs the page downloads into ``<runs_dir>/listening/votes.csv``,
                     every row checked against study.json, all or nothing;
- `study_verdicts`   one row per (comparison, question): win rate, 95 % and 90 % intervals
                     clustered by rater and by training seed, position bias, a multiplicity-
                     adjusted p and a verdict; raters failing catch trials are excluded
                     (`screen_raters`);
- `listener_rows`    the scorecard's "listeners" rows (when votes exist);
- `bradley_terry`    an exploratory ranking of all arms, intervals resampling raters;
- `StudyAB`          the same study as an ipywidgets widget in a live notebook (writes votes.csv).

Where they live: `study_config` and `draw_trials` in study_design.py (the study as data, with
study.json read back: `load_study`, `trials_of`); `make_kit` and the page in study_kit.py;
`import_votes` in study_votes.py; `StudyAB` in study_widget.py; this module holds the statistics
below, `study_verdicts`, `bradley_terry`, `listener_rows` and the summary that the command line,
the report and notebook 05 show (`study_summary`, `plot_study`).

Two hidden-arm rules hold everywhere: pair ids are opaque (``t01``, ``t02``, ... in a random
order), and the page holds no arm name at all: its clips are numbered in a random order and a
trial only names its two clip numbers; study.json maps them back to arms at import.

The statistics (see `clustered_win_rate`, `family_adjust`, `decide_win_rate`): a vote scores
w = 1 when arm_a is preferred, 0 when arm_b is, 0.5 for "no preference"; the win rate is the mean
of w. Votes of one rater are correlated (the rater's leaning), and so are votes on clips of one
training seed (a seed can train a better or a worse adapter: the arm's preference varies by seed),
so the variance is the two-way cluster-robust one of Cameron, Gelbach & Miller (2011) with raters
and training seeds as clusters (pairs are nested in seeds): V = V_rater + V_seed − V_rater∩seed,
each a one-way CR1 variance with the G/(G−1) factor, floored at max(V_rater, V_seed); the interval
is win_rate ± t_{df}·√V with df = min(raters, seeds) − 1. The kit draws every seed equally often
per comparison. One comparison × question is pre-declared primary in study.json; it is tested at
α = 0.05, the other rows are Holm-corrected among themselves and gated on the primary (serial
gatekeeping), so the family-wise rate of false decisive verdicts across the listener rows is ≤ 5 %.
The verdict checks equivalence first (90 % CI inside 0.5 ± 0.10), then the 95 % CI with the
adjusted p. Calibrated by simulation with rater and seed effects in tests/test_listen_study.py
(fast) and benchmarks/bench_listening.py (benchmarks/results/listening_calibration.md).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from .config import Profile
from .layout import Layout
from .study_design import CONTROL_ARMS, MAX_CATCH_FAIL, MIN_RATERS, SESOI, STRUCTURE_NOTE, StudyError, load_study
from .study_votes import read_votes

# ----------------------------------------------------------------------------- statistics


def _onehot(groups: Sequence | np.ndarray | None, n: int) -> np.ndarray:
    """[n, G] indicator of each pair's cluster (its training seed); None: every pair its own cluster."""
    if groups is None:
        return np.eye(n)
    g = np.asarray(groups)
    if g.shape != (n,):
        raise ValueError(f"groups must have one label per pair ({n}), got shape {g.shape}")
    _, idx = np.unique(g, return_inverse=True)
    H = np.zeros((n, int(idx.max()) + 1 if n else 0))
    H[np.arange(n), idx] = 1.0
    return H


def clustered_win_rate(W: np.ndarray, groups: Sequence | np.ndarray | None = None) -> dict:
    """Win rate and its two-way (rater × training seed) cluster-robust standard error, batched
    over leading axes.

    `W` [..., R, P]: the score of rater r's vote on pair p (1 arm_a, 0 arm_b, 0.5 tie), NaN where
    there is no vote; `groups` [P]: the training seed of each pair (None: each pair its own
    cluster, i.e. clustering by rater and pair). Pairs are nested in seeds, so a seed cluster
    holds every pair of that seed and clustering by seed covers the correlation of votes on one
    pair too.

    Why two-way: votes of one rater share the rater's leaning (u_r), votes on clips of one
    training seed share that seed's quality (s_k: a seed can simply train a better or worse
    adapter), and the claim is about the arm, i.e. about a new rater *and* a new seed. With
    e = w − ŵ over the N votes, C_rk = Σ_{votes of rater r on seed k} e, and the one-way cluster
    ("sandwich") variance V_G = G/(G−1) · Σ_g (Σ_{i∈g} e_i)² / N² (CR1: G clusters with a vote,
    G/(G−1) the small-sample factor), the variance of ŵ is Cameron, Gelbach & Miller's (2011,
    J. Bus. Econ. Stat. 29:238, eq. 2.11) two-way estimator

        V = V_rater + V_seed − V_rater∩seed,  floored at max(V_rater, V_seed)

    (the rater×seed cells are counted in both one-way terms, so they are taken out once; the floor
    keeps V positive and never below either one-way variance). In a balanced design (every rater
    on every pair, the same number of pairs per seed) V_seed is s²(seed means)/S and V_rater
    s²(rater means)/R, the textbook variances of a mean over S seeds and R raters, so a t
    reference with S − 1 (R − 1) degrees of freedom is exact under normal effects when one of the
    two dominates. Neither dominance is known, so df = min(R, S) − 1: the conservative end of
    Satterthwaite's range (Cameron & Miller 2015, §VI.C recommend G − 1 with the smaller G). With
    few seeds this gives wide intervals on purpose: the seed count, not the number of raters,
    bounds what a study can show when arms differ by seed. Calibrated by simulation with rater
    and seed effects in tests/test_listen_study.py and benchmarks/bench_listening.py.

    Returns arrays ``estimate, se, df, n_votes, n_raters, n_seeds`` (NaN where there are no
    votes; ``n_seeds`` counts the clusters of `groups`, pairs when it is None) and ``n_pairs``.
    """
    W = np.asarray(W, dtype=np.float64)
    M = np.isfinite(W)
    X = np.where(M, W, 0.0)
    H = _onehot(groups, W.shape[-1])
    N = M.sum(axis=(-2, -1)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        est = X.sum(axis=(-2, -1)) / N
        E = np.where(M, X - est[..., None, None], 0.0)
        C = E @ H                                   # [..., R, S]: residual sums per rater × seed cell
        K = M.astype(np.float64) @ H                # votes per cell
        nr = (K > 0).any(axis=-1).sum(axis=-1)
        ns = (K > 0).any(axis=-2).sum(axis=-1)
        ncell = (K > 0).sum(axis=(-2, -1))
        npr = M.any(axis=-2).sum(axis=-1)

        def one_way(sums: np.ndarray, g: np.ndarray) -> np.ndarray:
            return (sums**2).sum(axis=-1) / N**2 * g / np.maximum(g - 1, 1)

        v_r = one_way(C.sum(axis=-1), nr)
        v_s = one_way(C.sum(axis=-2), ns)
        v_rs = one_way(C.reshape(*C.shape[:-2], -1), ncell)
        var = np.maximum(np.maximum(v_r + v_s - v_rs, v_r), v_s)
    return {"estimate": est, "se": np.sqrt(var), "df": np.minimum(nr, ns) - 1, "n_votes": N.astype(int),
            "n_raters": nr, "n_seeds": ns, "n_pairs": npr}


def t_interval(estimate, se, df, level: float):
    """estimate ± t_{(1+level)/2, df}·se (NaN where df < 1)."""
    df = np.asarray(df, dtype=np.float64)
    q = np.where(df >= 1, sps.t.ppf((1 + level) / 2, np.maximum(df, 1)), np.nan)
    return np.asarray(estimate) - q * se, np.asarray(estimate) + q * se


def t_pvalue(estimate, se, df, null: float = 0.5):
    """Two-sided p of H0: win rate = `null`, 2·P(T_df > |ŵ − null|/se); vectorised. se = 0 gives
    p = 0 (all votes alike, ŵ ≠ null) or 1 (ŵ = null); df < 1 or NaN gives NaN. p < α exactly
    when the (1 − α) `t_interval` excludes `null`."""
    est, se, df = (np.asarray(x, dtype=np.float64) for x in (estimate, se, df))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.abs(est - null) / se
        p = np.where(se > 0, 2 * sps.t.sf(z, np.maximum(df, 1)), np.where(est == null, 1.0, 0.0))
    return np.where((df >= 1) & np.isfinite(est) & np.isfinite(se), p, np.nan)


def holm_adjust(p: np.ndarray) -> np.ndarray:
    """Holm (1979) adjusted p-values along the last axis, batched; NaN stays NaN and does not count
    towards m. Sorted p_(1) ≤ … ≤ p_(m): p̃_(i) = max_{j ≤ i} min(1, (m − j + 1)·p_(j)) (the same as
    `stats.holm`, vectorised for the simulations)."""
    p = np.asarray(p, dtype=np.float64)
    ok = np.isfinite(p)
    m = ok.sum(axis=-1, keepdims=True)
    order = np.argsort(np.where(ok, p, np.inf), axis=-1, kind="stable")
    ps = np.take_along_axis(np.where(ok, p, np.inf), order, axis=-1)
    rank = np.arange(p.shape[-1])
    with np.errstate(invalid="ignore"):
        scaled = np.minimum(1.0, (m - rank) * ps)
    scaled = np.where(np.isfinite(ps), scaled, np.nan)
    adj_sorted = np.fmax.accumulate(scaled, axis=-1)
    adj_sorted = np.where(np.isfinite(ps), adj_sorted, np.nan)
    out = np.empty_like(adj_sorted)
    np.put_along_axis(out, order, adj_sorted, axis=-1)
    return out


def family_adjust(p: np.ndarray, primary: np.ndarray | int | None) -> np.ndarray:
    """Multiplicity-adjusted p over the study's listener rows (last axis), batched.

    With a pre-declared primary row (its index, or a boolean mask with one True): serial
    gatekeeping (Dmitrienko & Tamhane 2007, Stat. Med. 26:2465). The primary is tested alone at α
    (p̃ = p); the other rows are Holm-adjusted among themselves and can only be decisive once the
    primary is: p̃ = max(p_primary, p_Holm). The family-wise error rate is ≤ α: if the primary's
    null is true, any false decision needs the primary rejected first (probability ≤ α); if it is
    false, false decisions can only come from the other rows, and Holm holds them at α. Without
    a primary (or when it has no p): plain Holm over all rows. NaN p (a row with too few votes)
    does not count towards the family.
    """
    p = np.asarray(p, dtype=np.float64)
    if primary is None:
        return holm_adjust(p)
    mask = np.zeros(p.shape[-1], dtype=bool)
    mask[primary] = True
    if mask.sum() != 1:
        raise ValueError(f"exactly one primary row, got {int(mask.sum())}")
    p_primary = p[..., mask]                                   # [..., 1]
    rest = holm_adjust(np.where(mask, np.nan, p))
    gated = np.where(np.isfinite(p_primary), np.fmax(rest, p_primary), np.nan)
    gated = np.where(np.isfinite(rest), gated, np.nan)
    out = np.where(mask, p, gated)
    no_primary = ~np.isfinite(p_primary[..., 0])
    if np.any(no_primary):                                     # no primary verdict: Holm over all rows
        out = np.where(no_primary[..., None], holm_adjust(p), out)
    return out


def decide_win_rate(ci_low, ci_high, eq_low, eq_high, n_raters, sesoi: float = SESOI,
                    min_raters: int = MIN_RATERS, p_adj=None, alpha: float = 0.05):
    """The listening verdict on a win rate (null 0.5); vectorised. Lakens, Scheel & Isager's (2018)
    four outcomes, equivalence checked first (as `stats.decide`):

    - 'too few votes' below `min_raters` screened raters;
    - 'equivalent'   the 90 % CI [eq_low, eq_high] lies inside 0.5 ± sesoi (two one-sided tests
                     at 5 %, Schuirmann 1987): a preference, if any, is negligible — whatever the
                     95 % CI says (when it also excludes 0.5 the difference is real but negligible);
    - 'supported'    else the 95 % CI [ci_low, ci_high] lies above 0.5 (arm_a preferred) and,
                     when `p_adj` is given, the multiplicity-adjusted p < `alpha`;
    - 'contradicted' the same below 0.5;
    - 'inconclusive' otherwise, including a NaN interval.
    """
    lo, hi = np.asarray(ci_low, dtype=float), np.asarray(ci_high, dtype=float)
    elo, ehi = np.asarray(eq_low, dtype=float), np.asarray(eq_high, dtype=float)
    ok = np.isfinite(lo) & np.isfinite(hi)
    eq = np.isfinite(elo) & np.isfinite(ehi) & (elo > 0.5 - sesoi) & (ehi < 0.5 + sesoi)
    passes = np.ones(np.broadcast(lo, hi).shape, dtype=bool)
    if p_adj is not None:
        passes = np.asarray(p_adj, dtype=float) < alpha      # NaN: False
    sup = ok & (lo > 0.5) & passes
    con = ok & (hi < 0.5) & passes
    verdict = np.select([eq, sup, con], ["equivalent", "supported", "contradicted"], "inconclusive")
    out = np.where(np.asarray(n_raters) < min_raters, "too few votes", verdict)
    return str(out) if out.ndim == 0 else out


def screen_raters(n_failed, n_catch, max_fail: float = MAX_CATCH_FAIL):
    """True where a rater is excluded: failed share of catch trials above `max_fail` (a catch trial
    is failed unless the original clip is preferred to its degraded copy; a tie fails). A rater
    with no catch trial answered is kept (and reported as unscreened by `catch_table`)."""
    n_failed, n_catch = np.asarray(n_failed, dtype=float), np.asarray(n_catch, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (n_catch > 0) & (n_failed / np.maximum(n_catch, 1) > max_fail)


def latest_votes(votes: pd.DataFrame) -> pd.DataFrame:
    """One vote per (rater, pair_id, question): the latest by timestamp (a changed answer replaces
    the earlier one)."""
    if votes.empty:
        return votes
    v = votes.assign(_t=pd.to_datetime(votes["timestamp"], utc=True, errors="coerce", format="ISO8601"))
    return v.sort_values("_t", kind="stable").drop_duplicates(["rater", "pair_id", "question"], keep="last").drop(columns="_t")


def catch_table(votes: pd.DataFrame, pairs: pd.DataFrame, catch_question: str = "preference",
                max_fail: float = MAX_CATCH_FAIL) -> pd.DataFrame:
    """Per rater: ``rater, n_catch, n_failed, pass_rate, excluded`` over the catch trials'
    `catch_question` (every rater who voted appears; n_catch 0 = unscreened)."""
    v = latest_votes(votes)
    raters = sorted(set(v["rater"])) if len(v) else []
    c = v.merge(pairs[pairs["is_catch"].astype(bool)][["pair_id", "question", "arm_a"]], on=["pair_id", "question"])
    c = c[c["question"] == catch_question]
    failed = (c["preferred_arm"] != c["arm_a"]).groupby(c["rater"]).agg(["size", "sum"])
    t = pd.DataFrame({"rater": raters})
    t["n_catch"] = t["rater"].map(failed["size"]).fillna(0).astype(int)
    t["n_failed"] = t["rater"].map(failed["sum"]).fillna(0).astype(int)
    with np.errstate(invalid="ignore", divide="ignore"):
        t["pass_rate"] = 1 - t["n_failed"] / t["n_catch"].where(t["n_catch"] > 0)
    t["excluded"] = screen_raters(t["n_failed"], t["n_catch"], max_fail)
    return t


VERDICT_COLUMNS = ["arm_a", "arm_b", "question", "n_votes", "n_raters", "win_rate", "ci_low", "ci_high",
                   "position_bias", "verdict", "basis", "n_seeds", "ci90_low", "ci90_high", "p", "p_adj", "role", "note"]


def _basis(verdict: str, lo: float, hi: float, elo: float, ehi: float, p_adj: float, sesoi: float) -> str:
    """The interval (and test) the verdict was read from, labelled, for printing beside it."""
    ci95 = f"95 % CI [{lo:.3f}, {hi:.3f}]"
    ci90 = f"90 % CI [{elo:.3f}, {ehi:.3f}]"
    if verdict == "equivalent":
        neg = "; 95 % CI excludes 0.5: real but negligible" if (lo > 0.5 or hi < 0.5) else ""
        return f"{ci90} inside 0.5 ± {sesoi:g}{neg}"
    if verdict in ("supported", "contradicted"):
        return f"{ci95} excludes 0.5, p_adj {p_adj:.3g}"
    if verdict == "too few votes":
        return "too few screened raters"
    if np.isfinite(lo) and (lo > 0.5 or hi < 0.5):
        return f"{ci95} excludes 0.5 but p_adj {p_adj:.3g} ≥ 0.05 (multiplicity)"
    return f"{ci95} holds 0.5; {ci90} not inside 0.5 ± {sesoi:g}" if np.isfinite(lo) else "no interval (one seed or one rater)"


def primary_of(pairs: pd.DataFrame) -> tuple[str, str, str] | None:
    """(arm_a, arm_b, question) of the pre-declared primary row: the pairs flagged ``primary`` in
    study.json (see `draw_trials`/`study_pairs`), None for a study without one."""
    if "primary" not in pairs.columns:
        return None
    hit = pairs[pairs["primary"].fillna(False).astype(bool) & ~pairs["is_catch"].astype(bool)]
    keys = set(zip(hit["arm_a"], hit["arm_b"], hit["question"]))
    if len(keys) > 1:
        raise StudyError(f"study pairs declare more than one primary comparison × question: {sorted(keys)}")
    return next(iter(keys)) if keys else None


def study_verdicts(votes: pd.DataFrame, pairs: pd.DataFrame, catch_question: str = "preference",
                   min_raters: int = MIN_RATERS, max_catch_fail: float = MAX_CATCH_FAIL,
                   sesoi: float = SESOI, alpha: float = 0.05, notes: dict | None = None) -> pd.DataFrame:
    """One row per (arm_a, arm_b, question) of the study's non-catch pairs.

    `votes`: votes.csv's rows; `pairs`: study.json's pairs (with ``seed`` and, for a study made
    since the seed-clustered analysis, ``primary``). The latest vote per (rater, pair, question)
    counts; raters failing more than `max_catch_fail` of their catch trials are excluded
    (`catch_table`, kept in ``.attrs["catch"]`` and ``.attrs["excluded"]``). Columns:

    - ``arm_a, arm_b, question, n_votes, n_raters, win_rate`` (mean score for arm_a, a tie = ½);
    - ``ci_low, ci_high``: the 95 % interval, `clustered_win_rate` with raters and training seeds
      as clusters, t with min(raters, seeds) − 1 df; ``ci90_low, ci90_high`` the 90 % one (the
      equivalence test's); ``n_seeds`` the seeds behind the pairs;
    - ``p`` (two-sided, null 0.5) and ``p_adj``: `family_adjust` over the rows that reach an
      interval — the primary row (``role`` "primary", flagged in study.json) alone at `alpha`, the
      others Holm-corrected and gated on the primary (``role`` "secondary"), so the family-wise
      rate of false decisive verdicts over all rows is ≤ `alpha`;
    - ``position_bias`` (share of "A" among the A/B choices), ``verdict`` (`decide_win_rate`,
      equivalence first), ``basis`` (the labelled interval the verdict was read from) and ``note``
      (`notes[question]`, e.g. the development question's caveat).
    """
    catch = catch_table(votes, pairs, catch_question, max_catch_fail)
    excluded = set(catch.loc[catch["excluded"], "rater"])
    v = latest_votes(votes)
    v = v[~v["rater"].isin(excluded)] if len(v) else v
    real = pairs[~pairs["is_catch"].astype(bool)]
    primary = primary_of(pairs)
    notes = notes or {}
    rows = []
    for (arm_a, arm_b, question), grp in real.groupby(["arm_a", "arm_b", "question"], sort=False):
        vv = v.merge(grp[["pair_id", "question", "seed"]], on=["pair_id", "question"]) if len(v) else v
        row = {"arm_a": arm_a, "arm_b": arm_b, "question": question}
        if len(vv) == 0:
            r = {"estimate": np.nan, "se": np.nan, "df": 0, "n_votes": 0, "n_raters": 0, "n_seeds": 0}
            pos = np.nan
        else:
            score = np.where(vv["choice"] == "tie", 0.5, (vv["preferred_arm"] == arm_a).astype(float))
            raters = sorted(set(vv["rater"]))
            pids = sorted(set(vv["pair_id"]))
            seed_of = dict(zip(grp["pair_id"], grp["seed"]))
            W = np.full((len(raters), len(pids)), np.nan)
            W[[raters.index(x) for x in vv["rater"]], [pids.index(x) for x in vv["pair_id"]]] = score
            r = {k: (v_.item() if hasattr(v_, "item") else v_)
                 for k, v_ in clustered_win_rate(W, [seed_of[p] for p in pids]).items()}
            ab = vv[vv["choice"].isin(["A", "B"])]
            pos = float((ab["choice"] == "A").mean()) if len(ab) else np.nan
        lo, hi = t_interval(r["estimate"], r["se"], r["df"], 0.95)
        elo, ehi = t_interval(r["estimate"], r["se"], r["df"], 1 - 2 * alpha)
        p = t_pvalue(r["estimate"], r["se"], r["df"]) if r["n_raters"] >= min_raters else np.nan
        row.update(n_votes=int(r["n_votes"]), n_raters=int(r["n_raters"]), win_rate=float(r["estimate"]),
                   ci_low=float(lo), ci_high=float(hi), position_bias=pos, n_seeds=int(r["n_seeds"]),
                   ci90_low=float(elo), ci90_high=float(ehi), p=float(p),
                   role="primary" if (arm_a, arm_b, question) == primary else "secondary",
                   note=str(notes.get(question, "")))
        rows.append(row)
    out = pd.DataFrame(rows, columns=VERDICT_COLUMNS)
    is_primary = (out["role"] == "primary").to_numpy()
    out["p_adj"] = (family_adjust(out["p"].to_numpy(dtype=float), is_primary if is_primary.any() else None)
                    if len(out) else [])
    if len(out) and not is_primary.any():
        out["role"] = "holm"  # no primary declared (or none drawn): Holm over every row
    out["verdict"] = (decide_win_rate(out["ci_low"], out["ci_high"], out["ci90_low"], out["ci90_high"],
                                      out["n_raters"], sesoi, min_raters, out["p_adj"], alpha) if len(out) else [])
    out["basis"] = [_basis(r.verdict, r.ci_low, r.ci_high, r.ci90_low, r.ci90_high, r.p_adj, sesoi)
                    for r in out.itertuples()]
    arm_rank = {a: i for i, a in enumerate(("none", "minsnr", *CONTROL_ARMS))}
    q_rank = {q: i for i, q in enumerate(dict.fromkeys(pairs["question"]))}
    out["_arm"] = [arm_rank.get(a, len(arm_rank)) for a in out["arm_b"]]  # none, minsnr, controls, others
    out["_q"] = [q_rank[q] for q in out["question"]]                       # the study's question order
    out = out.sort_values(["arm_a", "_arm", "arm_b", "_q"]).drop(columns=["_arm", "_q"]).reset_index(drop=True)
    out.attrs["catch"] = catch
    out.attrs["excluded"] = sorted(excluded)
    out.attrs["primary"] = primary
    return out


def bt_strengths(wins: np.ndarray, prior: float = 0.5, iters: int = 500, tol: float = 1e-10) -> np.ndarray:
    """Bradley–Terry log-strengths from a wins matrix (wins[i, j] = times i was preferred to j,
    a tie counting ½ to each), batched over leading axes; centred to mean 0.

    P(i beats j) = p_i / (p_i + p_j); fitted by Hunter's (2004) MM iteration
    p_i ← W_i / Σ_j n_ij / (p_i + p_j) with W_i the wins of i and n_ij the games between i and j.
    `prior` pseudo-wins are added both ways to every pair that met (a weak prior towards equal
    strength), so an arm that won every vote still gets a finite strength."""
    wins = np.asarray(wins, dtype=np.float64)
    met = (wins + np.swapaxes(wins, -1, -2)) > 0
    wins = wins + prior * met
    games = wins + np.swapaxes(wins, -1, -2)
    total = wins.sum(axis=-1)
    p = np.ones(wins.shape[:-1])
    for _ in range(iters):
        denom = (games / (p[..., :, None] + p[..., None, :])).sum(axis=-1)
        new = np.where(denom > 0, total / np.where(denom > 0, denom, 1), p)
        new = new / np.exp(np.mean(np.log(new), axis=-1, keepdims=True))
        if np.max(np.abs(new - p)) < tol:
            p = new
            break
        p = new
    return np.log(p)


def bradley_terry(votes: pd.DataFrame, pairs: pd.DataFrame, question: str, n_boot: int = 1000,
                  seed: int = 0) -> pd.DataFrame:
    """A Bradley–Terry ranking of the arms on one question (catch trials and excluded raters left
    out), with 95 % percentile intervals from resampling raters (`n_boot` bootstrap draws, seeded).

    Returns ``arm, strength, ci_low, ci_high`` (log-strength, mean 0 over the arms; a difference
    of 1 between two arms means odds e ≈ 2.7 : 1 that the first is preferred), sorted strongest
    first. Exploratory: with every comparison against one arm, it orders what the pairwise win
    rates already show; the verdicts come from `study_verdicts`."""
    catch = catch_table(votes, pairs)
    v = latest_votes(votes)
    v = v[~v["rater"].isin(set(catch.loc[catch["excluded"], "rater"]))] if len(v) else v
    real = pairs[~pairs["is_catch"].astype(bool) & (pairs["question"] == question)]
    v = v.merge(real[["pair_id", "question", "arm_a", "arm_b"]], on=["pair_id", "question"]) if len(v) else v
    arms = sorted(set(real["arm_a"]) | set(real["arm_b"]))
    if len(v) == 0 or len(arms) < 2:
        return pd.DataFrame(columns=["arm", "strength", "ci_low", "ci_high"])
    idx = {a: i for i, a in enumerate(arms)}
    raters = sorted(set(v["rater"]))
    per_rater = np.zeros((len(raters), len(arms), len(arms)))
    for r in v.itertuples():
        k, a, b = raters.index(r.rater), idx[r.arm_a], idx[r.arm_b]
        if r.choice == "tie":
            per_rater[k, a, b] += 0.5
            per_rater[k, b, a] += 0.5
        elif r.preferred_arm == r.arm_a:
            per_rater[k, a, b] += 1
        else:
            per_rater[k, b, a] += 1
    est = bt_strengths(per_rater.sum(axis=0))
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(raters), np.full(len(raters), 1 / len(raters)), size=n_boot)
    boot = bt_strengths(np.einsum("br,rij->bij", counts, per_rater))
    out = pd.DataFrame({"arm": arms, "strength": est, "ci_low": np.percentile(boot, 2.5, axis=0),
                        "ci_high": np.percentile(boot, 97.5, axis=0)})
    return out.sort_values("strength", ascending=False).reset_index(drop=True)


def question_notes(doc: dict) -> dict:
    """Each question's note (study.json's ``note``; the development question gets `STRUCTURE_NOTE`
    also in a study file written before notes existed)."""
    notes = {q["id"]: q.get("note", "") for q in doc["questions"]}
    if "development" in notes and not notes["development"]:
        notes["development"] = STRUCTURE_NOTE
    return notes


def study_summary(cfg: Profile) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(verdicts, catch table, study doc) for a profile's listening folder (votes.csv may be absent)."""
    layout = Layout.of(cfg)
    doc = load_study(layout.study)
    votes = read_votes(layout.votes)
    votes = votes[votes["study_id"] == doc["study_id"]] if len(votes) else votes
    table = study_verdicts(votes, doc["pairs"], doc.get("catch_question", "preference"), notes=question_notes(doc))
    return table, table.attrs["catch"], doc


LISTENER_COLUMNS = ["claim", "role", "statement", "evidence", "direction", "estimate", "ci_lo", "ci_hi", "p", "p_holm",
                    "n", "verdict", "note"]


def listener_rows(cfg: Profile) -> pd.DataFrame:
    """The scorecard's "listeners" rows, one per (comparison, question), only when the profile has
    a study and votes (else an empty frame): the scorecard's columns with ``claim`` "listeners",
    the question's text and its claim tag as ``statement``, the win rate of arm_a as ``estimate``
    (null 0.5, not 0) with its 95 % interval clustered by rater and training seed, ``p`` and
    ``p_holm`` (`family_adjust`: the primary alone, the rest Holm-corrected and gated on it),
    ``n`` the votes, the study's verdict, ``role`` "listeners (primary)" or "listeners" and a
    note naming the family and, for the verdict, the interval it used (90 % for "equivalent").
    Kept apart from the metric-based claims (they are people's judgements, not metrics)."""
    layout = Layout.of(cfg)
    if not layout.study.exists() or not layout.votes.exists():
        return pd.DataFrame(columns=LISTENER_COLUMNS)
    table, catch, doc = study_summary(cfg)
    if table["n_votes"].sum() == 0:
        return pd.DataFrame(columns=LISTENER_COLUMNS)
    text = {q["id"]: f"{q['text']} [{q.get('claim', '')}]" for q in doc["questions"]}
    n_family = int(np.isfinite(table["p"]).sum())
    family = (f"family: {n_family} listener rows, the primary at α = 0.05, the rest Holm-corrected and gated on it"
              if (table["role"] == "primary").any() else f"family: {n_family} listener rows, Holm")
    rows = []
    for r in table.itertuples():
        note = (f"{'PRIMARY (pre-declared in study.json); ' if r.role == 'primary' else ''}study {doc['study_id']}; "
                f"{r.basis}; {family}; {r.n_seeds} training seeds; {len(table.attrs['excluded'])} raters excluded by "
                f"catch trials; position bias {r.position_bias:.2f}" + (f"; {r.note}" if r.note else ""))
        rows.append({"claim": "listeners", "role": "listeners (primary)" if r.role == "primary" else "listeners",
                     "statement": text.get(r.question, r.question),
                     "evidence": f"{r.arm_a} vs {r.arm_b}: win rate of {r.arm_a} (0.5 = no preference), "
                                 f"{r.n_raters} raters, CI clustered by rater and training seed",
                     "direction": "+", "estimate": r.win_rate, "ci_lo": r.ci_low, "ci_hi": r.ci_high, "p": r.p,
                     "p_holm": r.p_adj, "n": r.n_votes, "verdict": r.verdict, "note": note})
    return pd.DataFrame(rows, columns=LISTENER_COLUMNS)


def plot_study(table: pd.DataFrame, catch: pd.DataFrame, sesoi: float = SESOI):
    """Figure: win rate with its 95 % interval per comparison and question (0.5 = no preference,
    the shaded band 0.5 ± sesoi), and the catch-trial pass rate per rater (excluded in red)."""
    import matplotlib.pyplot as plt  # heavy: matplotlib

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 0.6 * max(3, len(table)) + 1.5),
                                   gridspec_kw={"width_ratios": [3, 2]})
    labels = [f"{r.arm_a} vs {r.arm_b}\n{r.question}" for r in table.itertuples()]
    y = np.arange(len(table))
    ax1.axvspan(0.5 - sesoi, 0.5 + sesoi, color="0.9")
    ax1.axvline(0.5, color="0.4", lw=1)
    if len(table):
        err = np.vstack([table["win_rate"] - table["ci_low"], table["ci_high"] - table["win_rate"]])
        ax1.errorbar(table["win_rate"], y, xerr=np.nan_to_num(err), fmt="o", capsize=4)
        for yi, r in zip(y, table.itertuples()):
            ax1.annotate(f"{r.verdict} (n={r.n_votes}, {r.n_raters} raters)", (0.02, yi), xycoords=("axes fraction", "data"),
                         fontsize=8, va="bottom")
    ax1.set_yticks(y, labels)
    ax1.set_xlim(0, 1)
    ax1.set_ylim(len(table) - 0.5, -0.5)
    ax1.set_xlabel("win rate of arm_a (95 % CI, clustered by rater and training seed)")
    if len(catch):
        colors = ["tab:red" if e else "tab:green" for e in catch["excluded"]]
        names = [f"{r} (excluded)" if e else str(r) for r, e in zip(catch["rater"], catch["excluded"])]
        ax2.barh(names, catch["pass_rate"].fillna(0), color=colors)
        ax2.axvline(1 - MAX_CATCH_FAIL, color="0.4", ls="--", lw=1)
        ax2.invert_yaxis()
    else:
        ax2.text(0.5, 0.5, "no votes yet", ha="center", va="center", transform=ax2.transAxes)
    ax2.set_xlim(0, 1)
    ax2.set_xlabel("catch-trial pass rate (red: excluded)")
    fig.tight_layout()
    return fig
