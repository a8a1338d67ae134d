"""Measure the texture readout (eisbach_lib/readout.py) on a profile's corpus: fit time (cold and
cached), reference accuracy and confusion, the validation rows, the family head, the two
estimators' spike-in read-backs, the reference-sampling spread of the read-back, and the
logistic (hidden = 0) alternative. Results: benchmarks/results/readout.md.

    python benchmarks/bench_readout.py PROFILE.yaml [out.json]

Use a copy of configs/cpu.yaml with runs_dir under /tmp (the corpus is rendered when missing).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pandas as pd
import torch

from eisbach_lib import readout as R
from eisbach_lib.config import load_profile
from eisbach_lib.datasets import load_corpus


def oof_flat(ro: R.Readout, zb: np.ndarray, tb: np.ndarray, gb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The base split's out-of-fold flat probabilities under the readout's settings: (flat clips, the rest)."""
    s = ro.info["settings"]
    y = np.array([ro.classes.index(t) for t in tb])
    oof = R.out_of_fold_proba(R.texture_features(zb), y, gb, len(ro.classes), folds=s["folds"], hidden=s["hidden"],
                              l2=s["l2"], max_iter=s["max_iter"], seed=s["seed"])
    pf = oof[:, ro.flat_index].sum(axis=1)
    is_flat = np.isin(tb, ro.flat_classes)
    return pf[is_flat], pf[~is_flat]


def reference_spread(flat: np.ndarray, rest: np.ndarray, n_flat: int, n_rest: int, share: float, a_ref: float,
                     draws: int = 4000, seed: int = 0) -> dict:
    """How far the PACC read-back of a `share` spike-in set can land from the truth by the luck of a
    reference of this size alone: sets of round(share·n) flat and n − that non-flat clips drawn
    (with replacement) from the base split's out-of-fold flat probabilities, read with those clips'
    own rates a, b (unbiased: only the draw varies). Also the SD of a over draws of `n_rest`
    non-flat clips and the share of draws with a at or below the reference's a."""
    rng = np.random.default_rng(seed)
    n = int(np.floor(min(n_flat / share, n_rest / (1 - share))))
    k = int(round(share * n))
    errors = [R.adjusted_count((rng.choice(flat, k).sum() + rng.choice(rest, n - k).sum()) / n, rest.mean(), flat.mean())
              - k / n for _ in range(draws)]
    a_draws = np.array([rng.choice(rest, n_rest).mean() for _ in range(draws)])
    return {"sd_error": float(np.std(errors)), "sd_a": float(a_draws.std()), "a_oof": float(rest.mean()),
            "p_a_at_or_below_reference": float((a_draws <= a_ref).mean())}


def main(profile: str, out: str | None = None) -> dict:
    torch.set_num_threads(1)
    cfg = load_profile(profile)
    t0 = time.perf_counter()
    ro = R.fit_readout(cfg, refit=True)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    R.fit_readout(cfg)
    warm = time.perf_counter() - t0
    pe = load_corpus(cfg)
    zr, tr, _ = R._split_arrays(pe, "reference")
    t0 = time.perf_counter()
    proba = ro.predict_proba(zr)
    predict = time.perf_counter() - t0
    is_flat = np.isin(tr, ro.flat_classes)
    pf = ro.p_flat(proba)
    rows = R.validation_rows(cfg, ro)
    zb, tb, gb = R._split_arrays(pe, "base")
    a_ref = float(pf[~is_flat].mean())
    oof = oof_flat(ro, zb, tb, gb)
    t0 = time.perf_counter()
    logistic = R.fit_on(zb, tb, gb, hidden=0, l2=1e-3)
    logistic_s = time.perf_counter() - t0
    result = {
        "fit_readout_cold_s": round(cold, 1), "fit_seconds": ro.info["fit_seconds"], "cached_reload_s": round(warm, 2),
        "predict_s_per_150": round(predict, 3), "info": ro.info, "a": ro.a, "b": ro.b,
        "reference_rates": {"a": a_ref, "b": float(pf[is_flat].mean())},
        "validation": rows.to_dict("records"),
        "confusion": R.confusion(ro, zr, tr).to_dict(),
        "family": R.family_rows(cfg, ro).to_dict("records"),
        "reference_spread": {s: reference_spread(*oof, int(is_flat.sum()), int((~is_flat).sum()), s, a_ref)
                             for s in (0.25, 0.05)},
        "logistic": {"fit_s": round(logistic_s, 1), "oof_accuracy": logistic.info["oof_accuracy"],
                     "reference_accuracy": float((logistic.predict(zr) == tr).mean()),
                     "validation": R.spike_in_rows(logistic, logistic.predict_proba(zr), is_flat)},
    }
    pd.set_option("display.width", 250)
    print(rows.to_string())
    print(R.confusion(ro, zr, tr))
    print(json.dumps({k: v for k, v in result.items() if k not in ("validation", "confusion")}, indent=1, default=str))
    if out:
        with open(out, "w") as fh:
            json.dump(result, fh, indent=1, default=str)
    return result


if __name__ == "__main__":
    main(*sys.argv[1:])
