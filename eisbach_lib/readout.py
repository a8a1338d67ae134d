"""The texture readout: the bundle's own classifier of what the model generates (docs/design.md §1.6,
§5), in the role Inception plays for FID and VGGish for FAD.

It reads the log-mel latent z [C, T] (the tensor the DiT outputs and `codec.MelCodec` decodes), so
no Griffin-Lim round trip sits between the model and the readout. It is trained on the `base`
split's pre-encoded latents with the manifest's texture labels (`corpus.TEXTURES`: sustained,
mixed, plucked, percussive; "flat" = `anatomy.FLAT_CLASSES`) and validated on the `reference`
split (never trained on): its accuracy there, and spike-in sets built with a known share of flat
clips that it must read back (`validation_rows`).

Features (`texture_features`, all pooled over time so any clip length reads the same way; `B`
bands of C/B adjacent channels, e_t = mean_c z[c, t] the frame level, Δ the frame difference):

    spectral envelope     mean_t z[c, t], std_t z[c, t]                         (2·C)
    onsets and decays     mean_t max(Δz_b, 0), mean_t max(−Δz_b, 0),
                          share of frames with Δz_b < 0, lag-1 autocorrelation   per band (4·B)
    level dynamics        quantiles 5/25/50/75/95 of e_t, std_t e_t, mean_t |Δe_t|,
                          autocorrelation of e_t at lags 1, 2, 4, 8,
                          temporal flatness of e_t² (normalised entropy, as §2)   (12)
    onset strength        o_t = mean_c max(Δz[c, t], 0): mean, std, max, 90th percentile,
                          share of frames above mean + 2·std                     (5)

Classifier (`train_classifier`): the features standardised on the training set, then a
multinomial logistic regression (`hidden` = 0) or a one-hidden-layer tanh MLP (`hidden` > 0),
fitted full-batch by L-BFGS in float64 with an L2 penalty, initialised from a seeded generator:
the same data and seed give bit-identical weights on the CPU. The default (`DEFAULTS`) is the MLP
with 16 tanh units and L2 1e-2: on the cpu profile's corpus (1,000 base clips) it reads the
reference split's texture right 98.0 % of the time (logistic: 96.7 %) and fits in 12–26 s on one
thread (benchmarks/results/readout.md). `embed` gives the penultimate
representation (the hidden layer; the standardised features for the logistic model) for FD, KID
and Vendi. A family head (`Readout.family_proba`, validated by `family_rows`) reads which
instrument families play (`FAMILIES`: bowed, organ/pad, winds, plucked, struck), one binary
classifier of the same kind per family on the same features.

The flat share of a set of clips (`flat_share`): a classifier's raw count is biased under a shift
of the class mix (Forman 2008, "Quantifying counts and costs via classification"): if it calls a
flat clip flat with probability tpr and a non-flat one flat with probability fpr, the expected
raw count at true share π is fpr + π·(tpr − fpr), pulled towards the training share. The readout
uses the probabilistic adjusted count (PACC; Bella, Ferri, Hernández-Orallo & Ramírez-Quintana
2010, "Quantification via probability estimators"):

    π̂ = (mean_i p_flat(i) − a) / (b − a),
    a = E[p_flat | non-flat],  b = E[p_flat | flat]

with a and b measured out of fold on the base split (group k-fold by source piece, so no piece
is both fitted and measured). Measured on the cpu profile's reference split, PACC reads spike-in
sets of 25 % and 5 % flat clips 2.0 and 2.6 points low (their difference 0.6 points high); the
mean probability reads the levels 1.4 points low and 0.5 high but the difference 1.8 points low
(benchmarks/results/readout.md). Why this one: it removes the prior-shift bias of the mean
probability (PCC) and of classify-and-count, as ACC does, but ACC's hard counts throw away the
probabilities and vary more per clip; and PACC is affine in the mean probability, so the share
of a pooled set is the mean of the shares of equal-sized subsets (per (seed, prompt) shares can
be averaged and paired without bias). It is not clipped to [0, 1] for the same reason (a set of
clips read as more confidently non-flat than the calibration's non-flat clips reads below 0);
clip for display only. Its assumption: the class-conditional distribution of p_flat is the
same in the set read as in the base split (true for the reference split, checked by the
spike-in rows; for generated clips it is the assumption FID makes of Inception).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .anatomy import FLAT_CLASSES
from .cache import load_cache
from .config import Readout as ReadoutSettings
from .config import Profile, config_hash
from .corpus import TEXTURES
from .datasets import load_corpus, prepare_corpus
from .files import atomic_write
from .layout import LATENTS_FILE, MANIFEST, Layout

READOUT_VERSION = 1
N_BANDS = 8
ENERGY_LAGS = (1, 2, 4, 8)
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
DEFAULTS = ReadoutSettings(seed=0)  # the classifier's settings when a caller gives none (config.Readout)
# Instrument families of the chamber palette (corpus.PALETTE): the family head reads which are playing.
FAMILIES: dict[str, tuple[str, ...]] = {
    "bowed": ("violin", "viola", "cello", "double bass", "string ensemble"),
    "organ_pad": ("organ", "warm pad"),
    "winds": ("flute", "clarinet", "bassoon", "contrabassoon", "french horn"),
    "plucked": ("harp", "pizzicato strings", "celesta", "music box"),
    "struck": ("marimba", "xylophone", "glockenspiel", "timpani", "vibraphone"),
}


# --- features ---------------------------------------------------------------------------------

def _autocorr(x: np.ndarray, lag: int) -> np.ndarray:
    """Lag-`lag` autocorrelation along the last axis, per row: Σ (x_t − x̄)(x_{t+lag} − x̄) / Σ (x_t − x̄)²
    (0 for a constant row or a row shorter than the lag)."""
    xc = x - x.mean(axis=-1, keepdims=True)
    den = (xc ** 2).sum(axis=-1)
    if x.shape[-1] <= lag:
        return np.zeros(x.shape[:-1])
    num = (xc[..., :-lag] * xc[..., lag:]).sum(axis=-1)
    return np.where(den > 1e-12, num / np.maximum(den, 1e-12), 0.0)


def _flatness(e2: np.ndarray) -> np.ndarray:
    """Normalised entropy of p_t = e2_t / Σ e2 over the last axis, in [0, 1] (docs/design.md §2)."""
    p = e2 / np.maximum(e2.sum(axis=-1, keepdims=True), 1e-12)
    h = -(p * np.log(np.maximum(p, 1e-300))).sum(axis=-1)
    return h / np.log(max(e2.shape[-1], 2))


def _bands(z: np.ndarray, n_bands: int) -> np.ndarray:
    """[N, C, T] → [N, B, T]: the mean of each of B groups of adjacent channels."""
    edges = np.linspace(0, z.shape[1], n_bands + 1).round().astype(int)
    return np.stack([z[:, lo:hi].mean(axis=1) for lo, hi in zip(edges[:-1], edges[1:])], axis=1)


def texture_features(z: np.ndarray, n_bands: int = N_BANDS) -> np.ndarray:
    """Time-pooled features [N, 2·C + 4·B + 17] of latents z [N, C, T] (module docstring), float64."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 3 or z.shape[-1] < 2:
        raise ValueError(f"texture_features: expected latents [N, C, T] with T >= 2, got {z.shape}")
    bands = _bands(z, n_bands)
    db = np.diff(bands, axis=-1)
    e = z.mean(axis=1)                                     # [N, T] frame level
    de = np.diff(e, axis=-1)
    onset = np.maximum(np.diff(z, axis=-1), 0.0).mean(axis=1)  # [N, T-1]
    o_mu, o_sd = onset.mean(axis=-1), onset.std(axis=-1)
    parts = [
        z.mean(axis=-1), z.std(axis=-1),
        np.maximum(db, 0).mean(axis=-1), np.maximum(-db, 0).mean(axis=-1), (db < 0).mean(axis=-1),
        _autocorr(bands, 1),
        np.quantile(e, QUANTILES, axis=-1).T, e.std(axis=-1)[:, None], np.abs(de).mean(axis=-1)[:, None],
        np.stack([_autocorr(e, k) for k in ENERGY_LAGS], axis=1), _flatness(e ** 2)[:, None],
        np.stack([o_mu, o_sd, onset.max(axis=-1), np.quantile(onset, 0.9, axis=-1),
                  (onset > (o_mu + 2 * o_sd)[:, None]).mean(axis=-1)], axis=1),
    ]
    return np.concatenate(parts, axis=1)


# --- the classifier -----------------------------------------------------------------------------

def _forward(params: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(penultimate representation, logits) of standardised features x [N, F]."""
    h = torch.tanh(x @ params["w1"] + params["b1"]) if "w1" in params else x
    return h, h @ params["w2"] + params["b2"]


def train_classifier(x: np.ndarray, y: np.ndarray, n_classes: int, hidden: int = 0, l2: float = 1e-3,
                     max_iter: int = 200, seed: int = 0) -> dict:
    """Fit the classifier on features x [N, F] and labels y [N] in 0..n_classes−1 (module docstring).

    Minimises mean cross-entropy + l2/2 · Σ‖W‖² (weights, not biases) by full-batch L-BFGS (strong
    Wolfe line search) in float64, from an init drawn from torch.Generator().manual_seed(seed).
    Returns numpy arrays: mean, scale (standardisation), w1, b1 (hidden > 0 only), w2, b2.
    """
    x = np.asarray(x, dtype=np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    xs = torch.from_numpy((x - mean) / scale)
    yt = torch.as_tensor(np.array(y), dtype=torch.long)
    g = torch.Generator().manual_seed(int(seed))
    f = xs.shape[1]
    params: dict[str, torch.Tensor] = {}
    width = f
    if hidden > 0:
        params["w1"] = torch.randn(f, hidden, generator=g, dtype=torch.float64) / np.sqrt(f)
        params["b1"] = torch.zeros(hidden, dtype=torch.float64)
        width = hidden
    params["w2"] = torch.randn(width, n_classes, generator=g, dtype=torch.float64) * (0.01 if hidden == 0 else 1 / np.sqrt(width))
    params["b2"] = torch.zeros(n_classes, dtype=torch.float64)
    for p in params.values():
        p.requires_grad_(True)
    opt = torch.optim.LBFGS(list(params.values()), lr=1.0, max_iter=int(max_iter), tolerance_grad=1e-7,
                            tolerance_change=1e-10, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        _, logits = _forward(params, xs)
        loss = torch.nn.functional.cross_entropy(logits, yt)
        loss = loss + 0.5 * l2 * sum((p ** 2).sum() for k, p in params.items() if k.startswith("w"))
        loss.backward()
        return loss

    opt.step(closure)
    out = {k: v.detach().numpy().copy() for k, v in params.items()}
    return {"mean": mean, "scale": scale, **out}


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def classifier_proba(params: dict, x: np.ndarray) -> np.ndarray:
    """Class probabilities [N, K] of features x [N, F] under fitted `params`."""
    xs = torch.from_numpy((np.asarray(x, dtype=np.float64) - params["mean"]) / params["scale"])
    with torch.no_grad():
        _, logits = _forward({k: torch.from_numpy(v) for k, v in params.items() if k not in ("mean", "scale")}, xs)
    return _softmax(logits.numpy())


def classifier_embed(params: dict, x: np.ndarray) -> np.ndarray:
    """The penultimate representation [N, H] of features x (standardised features when hidden = 0)."""
    xs = torch.from_numpy((np.asarray(x, dtype=np.float64) - params["mean"]) / params["scale"])
    with torch.no_grad():
        h, _ = _forward({k: torch.from_numpy(v) for k, v in params.items() if k not in ("mean", "scale")}, xs)
    return h.numpy()


# --- quantification ---------------------------------------------------------------------------

def classify_and_count(p_flat: np.ndarray) -> float:
    """Raw classify-and-count: the share of clips with p_flat > 1/2 (binary flat vs the rest)."""
    return float((np.asarray(p_flat) > 0.5).mean())


def probabilistic_count(p_flat: np.ndarray) -> float:
    """PCC: the mean flat probability (unadjusted)."""
    return float(np.mean(p_flat))


def adjusted_count(share_read: float, a: float, b: float) -> float:
    """Forman's adjustment of a raw share: (share_read − a) / (b − a), a = the rate at which non-flat
    clips are read flat, b = the rate for flat clips (ACC with hard rates, PACC with mean
    probabilities). Not clipped (module docstring)."""
    if b - a <= 1e-9:
        raise ValueError(f"adjusted_count: the readout does not separate flat clips (b = {b:.4f} <= a = {a:.4f})")
    return float((share_read - a) / (b - a))


def _group_folds(groups: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold index per row: the distinct groups in a seeded random order, dealt round-robin into k folds."""
    uniq = np.array(sorted(set(map(str, groups))))
    order = np.random.default_rng([int(seed), 23]).permutation(len(uniq))
    fold_of = {uniq[j]: r % k for r, j in enumerate(order)}
    return np.array([fold_of[str(g)] for g in groups])


def out_of_fold_proba(x: np.ndarray, y: np.ndarray, groups: np.ndarray, n_classes: int, folds: int = 5,
                      **fit) -> np.ndarray:
    """Probabilities [N, K] of every row from a classifier fitted on the other folds (group k-fold)."""
    fold = _group_folds(groups, folds, fit.get("seed", 0))
    proba = np.zeros((len(y), n_classes))
    for k in range(folds):
        test = fold == k
        if test.any() and (~test).any():
            proba[test] = classifier_proba(train_classifier(x[~test], y[~test], n_classes, **fit), x[test])
    return proba


# --- the fitted readout ---------------------------------------------------------------------------

@dataclass
class Readout:
    """A fitted texture readout: classifier parameters, the classes, the PACC rates a, b of the flat
    class (out of fold on the base split) and what it was fitted on (`info`)."""

    params: dict
    classes: tuple[str, ...] = TEXTURES
    flat_classes: tuple[str, ...] = FLAT_CLASSES
    a: float = 0.0
    b: float = 1.0
    n_bands: int = N_BANDS
    info: dict = field(default_factory=dict)
    family_params: dict = field(default_factory=dict)   # family -> binary classifier params (may be empty)

    @property
    def flat_index(self) -> list[int]:
        return [self.classes.index(c) for c in self.flat_classes]

    def features(self, z: np.ndarray) -> np.ndarray:
        return texture_features(z, self.n_bands)

    def predict_proba(self, z: np.ndarray) -> np.ndarray:
        """Texture probabilities [N, len(classes)] of latents z [N, C, T]."""
        return classifier_proba(self.params, self.features(z))

    def predict(self, z: np.ndarray) -> np.ndarray:
        """The most probable texture name of each clip."""
        return np.array(self.classes)[self.predict_proba(z).argmax(axis=1)]

    def p_flat(self, proba: np.ndarray) -> np.ndarray:
        """The flat probability of each clip: the sum over the flat classes."""
        return np.asarray(proba)[:, self.flat_index].sum(axis=1)

    def flat_share(self, proba: np.ndarray) -> float:
        """The PACC estimate of the share of flat clips in a set (module docstring)."""
        return adjusted_count(probabilistic_count(self.p_flat(proba)), self.a, self.b)

    def clip_shares(self, p_flat: np.ndarray) -> np.ndarray:
        """Each clip's part of the PACC flat share, (p_flat − a)/(b − a): its mean over any set of clips
        is that set's `flat_share`, so paired differences of these values live on the share's scale."""
        return (np.asarray(p_flat, dtype=np.float64) - self.a) / (self.b - self.a)

    def embed(self, z: np.ndarray) -> np.ndarray:
        """The penultimate representation [N, H] of latents z (for FD, KID and Vendi)."""
        return classifier_embed(self.params, self.features(z))

    def family_proba(self, z: np.ndarray) -> pd.DataFrame:
        """P(family plays) per clip (rows) and instrument family (columns, FAMILIES order) from the
        family head: one binary classifier per family on the same features (multi-label)."""
        x = self.features(z)
        return pd.DataFrame({f: classifier_proba(p, x)[:, 1] for f, p in self.family_params.items()})

    def save(self, path: Path) -> Path:
        """One .npz: the parameter arrays and a JSON string of everything else (no pickle)."""
        meta = {"classes": list(self.classes), "flat_classes": list(self.flat_classes), "a": self.a, "b": self.b,
                "n_bands": self.n_bands, "info": self.info}
        arrays = {f"param_{k}": v for k, v in self.params.items()}
        arrays.update({f"family_{f}__{k}": v for f, p in self.family_params.items() for k, v in p.items()})

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, meta=np.array(json.dumps(meta, default=str)), **arrays)

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: Path) -> "Readout":
        with np.load(path, allow_pickle=False) as d:
            meta = json.loads(str(d["meta"]))
            params = {k[len("param_"):]: d[k].copy() for k in d.files if k.startswith("param_")}
            family: dict[str, dict] = {}
            for k in d.files:
                if k.startswith("family_"):
                    f, name = k[len("family_"):].split("__")
                    family.setdefault(f, {})[name] = d[k].copy()
        return cls(params, tuple(meta["classes"]), tuple(meta["flat_classes"]), float(meta["a"]), float(meta["b"]),
                   int(meta["n_bands"]), meta["info"], {f: family[f] for f in FAMILIES if f in family})


def flat_share(proba: np.ndarray, readout: Readout) -> float:
    """The adjusted (PACC) share of flat clips of a set read by `readout` (module docstring)."""
    return readout.flat_share(proba)


def readout_settings(cfg: Profile) -> dict:
    """The classifier's settings (config.Readout: the profile's optional `readout:` section over the
    defaults; the seed defaults to the profile's) as the keyword arguments of `fit`."""
    return dataclasses.asdict(cfg.readout)


def family_labels(instruments) -> pd.DataFrame:
    """0/1 per clip and family: whether any of the clip's instruments (';'-joined palette names, as
    the manifest stores them) belongs to the family."""
    sets = [set(str(s).split(";")) for s in instruments]
    return pd.DataFrame({f: [int(bool(set(members) & names)) for names in sets] for f, members in FAMILIES.items()})


def fit_on(latents: np.ndarray, textures: list[str] | np.ndarray, groups: np.ndarray | None = None,
           classes: tuple[str, ...] = TEXTURES, flat_classes: tuple[str, ...] = FLAT_CLASSES,
           hidden: int = DEFAULTS.hidden, l2: float = DEFAULTS.l2, max_iter: int = DEFAULTS.max_iter,
           folds: int = DEFAULTS.folds, seed: int = 0, n_bands: int = N_BANDS, instruments=None) -> Readout:
    """Fit a readout on latents [N, C, T] with texture labels: the PACC rates a, b from out-of-fold
    probabilities (group k-fold by `groups`, default one group per clip), then the classifier on all
    rows; with `instruments` (the manifest's column), also the family head (`family_labels`; one
    binary classifier per family, families present in every clip or in none are left out). `info`
    records the sizes, the out-of-fold accuracy and the fit time."""
    t0 = time.perf_counter()
    textures = np.asarray(textures).astype(str)
    unknown = sorted(set(textures) - set(classes))
    if unknown:
        raise ValueError(f"fit_on: texture labels {unknown} are not among the classes {classes}")
    y = np.array([classes.index(t) for t in textures])
    x = texture_features(latents, n_bands)
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    fit = {"hidden": int(hidden), "l2": float(l2), "max_iter": int(max_iter), "seed": int(seed)}
    oof = out_of_fold_proba(x, y, groups, len(classes), folds=int(folds), **fit)
    flat_idx = [classes.index(c) for c in flat_classes]
    is_flat = np.isin(y, flat_idx)
    p_flat = oof[:, flat_idx].sum(axis=1)
    a, b = float(p_flat[~is_flat].mean()), float(p_flat[is_flat].mean())
    params = train_classifier(x, y, len(classes), **fit)
    family_params = {}
    if instruments is not None:
        for f, yf in family_labels(instruments).items():
            if 0 < yf.sum() < len(yf):
                family_params[f] = train_classifier(x, yf.to_numpy(), 2, **fit)
    info = {"n_train": int(len(y)), "n_features": int(x.shape[1]), "settings": {**fit, "folds": int(folds)},
            "oof_accuracy": float((oof.argmax(axis=1) == y).mean()),
            "oof_tpr_cc": float((p_flat[is_flat] > 0.5).mean()), "oof_fpr_cc": float((p_flat[~is_flat] > 0.5).mean()),
            "fit_seconds": round(time.perf_counter() - t0, 3)}
    return Readout(params, tuple(classes), tuple(flat_classes), a, b, n_bands, info, family_params)


def _split_arrays(pe, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(latents [N, C, T], textures [N], source pieces [N]) of one split of a PreEncoded corpus."""
    part = pe.split(split)
    m = part.manifest
    if "texture" not in m.columns:
        raise ValueError("readout: the corpus manifest has no `texture` column (the chamber corpus has one)")
    groups = m["source_piece"].astype(str).to_numpy() if "source_piece" in m.columns else m["id"].astype(str).to_numpy()
    return part.latents.numpy(), m["texture"].astype(str).to_numpy(), groups


def readout_key(cache_folder: Path, settings: dict) -> str:
    """The cache key of a fitted readout: the pre-encoded cache's folder name (datasets.cache_meta's
    hash: corpus, codec, manifest, audio), the settings and READOUT_VERSION."""
    return config_hash({"version": READOUT_VERSION, "cache": Path(cache_folder).name, "settings": settings,
                        "n_bands": N_BANDS})


def fit_readout(cfg: Profile, progress: bool = False, refit: bool = False) -> Readout:
    """The profile's readout: fitted on the base split's pre-encoded latents (`fit_on`) and cached in
    Layout.of(cfg).readout_model; reloaded when the cached key (`readout_key`) matches."""
    folder = prepare_corpus(cfg, progress=progress)
    settings = readout_settings(cfg)
    key = readout_key(folder, settings)
    path = Layout.of(cfg).readout_model
    if path.exists() and not refit:
        cached = Readout.load(path)
        if cached.info.get("key") == key:
            return cached
    pe = load_cache(folder)
    z, textures, groups = _split_arrays(pe, "base")
    m = pe.split("base").manifest
    readout = fit_on(z, textures, groups, instruments=m["instruments"] if "instruments" in m.columns else None,
                     **settings)
    readout.info["key"] = key
    path.parent.mkdir(parents=True, exist_ok=True)
    readout.save(path)
    return readout


# --- validation -----------------------------------------------------------------------------------

def spike_in_sets(is_flat: np.ndarray, share: float, draws: int, seed: int) -> list[np.ndarray]:
    """Index sets with a flat share of `share`: each the largest n with round(share·n) flat and
    n − round(share·n) non-flat clips available, drawn without replacement, `draws` times
    (numpy default_rng([seed, draw]))."""
    flat, rest = np.flatnonzero(is_flat), np.flatnonzero(~np.asarray(is_flat))
    n = int(np.floor(min(len(flat) / share if share > 0 else np.inf, len(rest) / (1 - share) if share < 1 else np.inf)))
    k = int(round(share * n))
    if n < 1 or k > len(flat) or n - k > len(rest):
        raise ValueError(f"spike_in_sets: cannot build a {share:.0%} set from {len(flat)} flat and {len(rest)} other clips")
    out = []
    for d in range(draws):
        rng = np.random.default_rng([int(seed), 5, d])
        out.append(np.concatenate([rng.choice(flat, k, replace=False), rng.choice(rest, n - k, replace=False)]))
    return out


def spike_in_rows(readout: Readout, proba: np.ndarray, is_flat: np.ndarray, shares=(0.25, 0.05),
                  tol: float = 0.03, draws: int = 20, seed: int = 0) -> list[dict]:
    """One row per share: the built share (k/n), the mean PACC read-back over `draws` sets, the
    error, the largest |error| of a single set, the raw classify-and-count and PCC read-backs for
    comparison, and pass = |mean error| <= tol and every single set within 2·tol. With two shares,
    a third row: the difference of the two mean read-backs against the difference built (what a
    paired comparison of arms reads; pass = |error| <= tol)."""
    rows, reads = [], []
    for share in shares:
        sets = spike_in_sets(is_flat, share, draws, seed)
        truth = np.array([is_flat[s].mean() for s in sets])
        read = np.array([readout.flat_share(proba[s]) for s in sets])
        cc = np.array([classify_and_count(readout.p_flat(proba[s])) for s in sets])
        pcc = np.array([probabilistic_count(readout.p_flat(proba[s])) for s in sets])
        err = read - truth
        rows.append({"check": f"spike-in {share:.0%} flat", "target": float(truth.mean()), "read_back": float(read.mean()),
                     "error": float(err.mean()), "max_abs_error": float(np.abs(err).max()), "tolerance": tol,
                     "pass": bool(abs(err.mean()) <= tol and np.abs(err).max() <= 2 * tol),
                     "n": int(len(sets[0])), "draws": int(draws),
                     "note": f"raw classify-and-count {cc.mean():.3f}, mean probability {pcc.mean():.3f}"})
        reads.append((truth, read, pcc, len(sets[0])))
    if len(shares) == 2:  # what the gates read: a difference of shares (the level offset a cancels in it)
        (t1, r1, p1, n1), (t2, r2, p2, n2) = reads
        truth, read = t1.mean() - t2.mean(), r1.mean() - r2.mean()
        rows.append({"check": f"spike-in difference {shares[0]:.0%} - {shares[1]:.0%}", "target": float(truth),
                     "read_back": float(read), "error": float(read - truth), "max_abs_error": np.nan, "tolerance": tol,
                     "pass": bool(abs(read - truth) <= tol), "n": int(n1 + n2), "draws": int(draws),
                     "note": f"mean probability reads {p1.mean() - p2.mean():.3f}"})
    return rows


def validation_rows(cfg: Profile, readout: Readout | None = None, min_accuracy: float = 0.90, tol: float = 0.03,
                    shares=(0.25, 0.05), draws: int = 20) -> pd.DataFrame:
    """The readout's validation on the reference split (never trained on), as FID validates Inception:
    texture accuracy (pass: >= min_accuracy), flat-vs-rest accuracy (reported), and spike-in sets
    (`spike_in_rows`). Columns: check, target, read_back, error, max_abs_error, tolerance, pass, n,
    draws, note."""
    readout = readout if readout is not None else fit_readout(cfg)
    z, textures, _ = _split_arrays(load_corpus(cfg), "reference")
    proba = readout.predict_proba(z)
    pred = np.array(readout.classes)[proba.argmax(axis=1)]
    acc = float((pred == textures).mean())
    is_flat = np.isin(textures, readout.flat_classes)
    flat_acc = float(((readout.p_flat(proba) > 0.5) == is_flat).mean())
    rows = [{"check": "texture accuracy (reference)", "target": min_accuracy, "read_back": acc,
             "error": acc - min_accuracy, "max_abs_error": np.nan, "tolerance": np.nan, "pass": acc >= min_accuracy,
             "n": int(len(textures)), "draws": 1, "note": f"{len(readout.classes)} classes, chance {1 / len(readout.classes):.2f}"},
            {"check": "flat vs rest accuracy (reference)", "target": np.nan, "read_back": flat_acc, "error": np.nan,
             "max_abs_error": np.nan, "tolerance": np.nan, "pass": True, "n": int(len(textures)), "draws": 1,
             "note": "reported, not gated"}]
    rows += spike_in_rows(readout, proba, is_flat, shares, tol, draws, int(cfg.seed))
    return pd.DataFrame(rows)


def family_rows(cfg: Profile, readout: Readout | None = None) -> pd.DataFrame:
    """The family head on the reference split (reported, not gated): per family, the share of clips
    playing it, accuracy and balanced accuracy (mean of the rates on clips with and without it)."""
    readout = readout if readout is not None else fit_readout(cfg)
    ref = load_corpus(cfg).split("reference")
    truth = family_labels(ref.manifest["instruments"])
    proba = readout.family_proba(ref.latents.numpy())
    rows = []
    for f in proba.columns:
        y, hit = truth[f].to_numpy().astype(bool), proba[f].to_numpy() > 0.5
        rates = [(hit[y] == 1).mean() if y.any() else np.nan, (hit[~y] == 0).mean() if (~y).any() else np.nan]
        rows.append({"family": f, "share": float(y.mean()), "accuracy": float((hit == y).mean()),
                     "balanced_accuracy": float(np.nanmean(rates)), "n": int(len(y))})
    return pd.DataFrame(rows)


def confusion(readout: Readout, z: np.ndarray, textures) -> pd.DataFrame:
    """Confusion matrix: rows the true texture, columns the predicted one (counts)."""
    pred = readout.predict(z)
    return pd.crosstab(pd.Series(pd.Categorical(np.asarray(textures), readout.classes), name="true"),
                       pd.Series(pd.Categorical(pred, readout.classes), name="predicted"), dropna=False)


# --- generated clips ------------------------------------------------------------------------------

GROUP_KEYS = ("run", "step", "adapter", "arm", "seed", "prompt_id")


def sample_latents_for(cfg: Profile, samples_manifest: pd.DataFrame) -> np.ndarray:
    """The generated latents [N, C, T] of the rows of a samples manifest, in its row order: each row's
    folder (the folder of its `path`, relative to runs_dir) holds latents.npy (float32 [n, C, T]) and
    manifest.csv whose `latent_row` gives the row of each clip (matched by `path`)."""
    runs = Layout.of(cfg).runs
    folders = samples_manifest["path"].map(lambda p: str(Path(p).parent))
    out: list[np.ndarray | None] = [None] * len(samples_manifest)
    pos = {p: i for i, p in enumerate(samples_manifest["path"].astype(str))}
    for folder in folders.unique():
        d = runs / folder
        if not (d / LATENTS_FILE).exists():
            raise FileNotFoundError(f"{d}: no {LATENTS_FILE} (generated before latents were saved; generate again)")
        lat = np.load(d / LATENTS_FILE, mmap_mode="r")
        fm = pd.read_csv(d / MANIFEST, keep_default_na=False)
        if "latent_row" not in fm.columns:
            raise ValueError(f"{d / MANIFEST}: no latent_row column")
        for p, r in zip(fm["path"].astype(str), fm["latent_row"].astype(int)):
            if p in pos:
                out[pos[p]] = np.asarray(lat[r], dtype=np.float32)
    missing = [p for p, o in zip(samples_manifest["path"], out) if o is None]
    if missing:
        raise ValueError(f"sample_latents_for: {len(missing)} clips have no latent row, e.g. {missing[0]}")
    return np.stack(out)


def sample_textures(cfg: Profile, samples_manifest: pd.DataFrame, readout: Readout | None = None) -> pd.DataFrame:
    """One row per generated clip: the manifest's columns, p_<texture> for each class, p_flat and the
    predicted texture."""
    readout = readout if readout is not None else fit_readout(cfg)
    proba = readout.predict_proba(sample_latents_for(cfg, samples_manifest))
    out = samples_manifest.reset_index(drop=True).copy()
    for j, c in enumerate(readout.classes):
        out[f"p_{c}"] = proba[:, j]
    out["p_flat"] = readout.p_flat(proba)
    out["texture_read"] = np.array(readout.classes)[proba.argmax(axis=1)]
    return out


def sample_flat_shares(cfg: Profile, samples_manifest: pd.DataFrame, readout: Readout | None = None,
                       by: tuple[str, ...] = GROUP_KEYS) -> pd.DataFrame:
    """One row per group of generated clips (the columns of `by` present in the manifest; default one
    per run, step, adapter, arm, seed and prompt): n clips, mean p_flat, the PACC flat share
    (`Readout.flat_share`, unclipped: affine in mean p_flat, so group shares average without bias)
    and the raw classify-and-count share."""
    readout = readout if readout is not None else fit_readout(cfg)
    clips = sample_textures(cfg, samples_manifest, readout)
    keys = [k for k in by if k in clips.columns]
    g = clips.groupby(keys, sort=True, dropna=False)["p_flat"]
    out = g.agg(n="size", p_flat="mean").reset_index()
    out["flat_share"] = [adjusted_count(p, readout.a, readout.b) for p in out["p_flat"]]
    out["cc_share"] = g.apply(lambda s: classify_and_count(s.to_numpy())).to_numpy()
    return out
