"""The texture readout (eisbach_lib/readout.py, docs/design.md §5): the adjusted
flat-share estimator against raw classify-and-count under a known confusion, spike-in read-back,
determinism, a wrong-label control that must fall to chance, and one fit on a small real corpus."""

import numpy as np
import pandas as pd
import pytest

from eisbach_lib import readout as R
from eisbach_lib.config import override
from eisbach_lib.corpus import TEXTURES
from helpers import smoke_at

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPIKE_TOL = 0.03  # the readout's spike-in tolerance (docs/design.md §5: ± 3 points)


# --- synthetic class-conditional latents: the truth is known --------------------------------------

def synth_latents(texture: str, rng: np.random.Generator, channels: int = 16, frames: int = 64,
                  noise: float = 0.3) -> np.ndarray:
    """One [C, T] latent of a texture: a random spectral envelope times a level curve — sustained:
    long notes with slow attacks; plucked: notes every 4-8 frames decaying at 0.25/frame;
    percussive: every 2-4 frames decaying at 0.7/frame; mixed: a held line plus plucked notes —
    plus Gaussian noise of std `noise` (larger noise, more confusion)."""
    env = 1.0 + rng.uniform(0, 1, channels)[:, None]
    t = np.arange(frames)

    def hits(lo, hi, decay):
        level = np.zeros(frames)
        k = int(rng.integers(0, lo))
        while k < frames:
            level[k:] = np.maximum(level[k:], np.exp(-decay * (t[k:] - k)))
            k += int(rng.integers(lo, hi + 1))
        return level

    def held():
        level = np.zeros(frames)
        k = 0
        while k < frames:
            d = int(rng.integers(16, 33))
            level[k:k + d] = 1 - np.exp(-(t[k:k + d] - k) / 3.0)
            k += d
        return 0.3 + 0.7 * level

    level = {"sustained": held, "plucked": lambda: hits(4, 8, 0.25), "percussive": lambda: hits(2, 4, 0.7),
             "mixed": lambda: 0.5 * held() + 0.5 * hits(4, 8, 0.25)}[texture]()
    return (2.0 * env * level[None, :] + noise * rng.standard_normal((channels, frames))).astype(np.float32)


def synth_set(n_per_class: int, seed: int, noise: float = 0.3, shares: dict | None = None):
    """(latents [N, C, T], textures [N]): n_per_class of each texture, or n_per_class·4·shares[texture]."""
    rng = np.random.default_rng(seed)
    counts = {t: n_per_class if shares is None else int(round(4 * n_per_class * shares[t])) for t in TEXTURES}
    labels = [t for t in TEXTURES for _ in range(counts[t])]
    return np.stack([synth_latents(t, rng, noise=noise) for t in labels]), np.array(labels)


SYNTH_INSTRUMENTS = {"sustained": "violin", "mixed": "flute;harp", "plucked": "harp", "percussive": "marimba"}


@pytest.fixture(scope="module")
def synth_readout():
    z, y = synth_set(60, seed=1)
    return R.fit_on(z, y, folds=5, seed=0, instruments=[SYNTH_INSTRUMENTS[t] for t in y])


# --- the estimator ----------------------------------------------------------------------------------

def test_adjusted_count_beats_classify_and_count_under_a_known_confusion(tol=0.01):
    """A classifier that calls flat clips flat with tpr 0.81 and others flat with fpr 0.19 (p_flat
    drawn from Beta(4, 2) and Beta(2, 4)): at true shares 5 % and 40 % the raw count is pulled
    towards fpr + π(tpr − fpr); Forman's adjustment (ACC) and PACC, with rates from a calibration
    sample, read the truth back within `tol`; the raw counts are off by more than 3·tol."""
    rng = np.random.default_rng(0)

    def draw(n_flat, n_rest):
        return np.concatenate([rng.beta(4, 2, n_flat), rng.beta(2, 4, n_rest)]), np.r_[np.ones(n_flat, bool), np.zeros(n_rest, bool)]

    cal, is_flat = draw(20000, 20000)
    a_p, b_p = cal[~is_flat].mean(), cal[is_flat].mean()
    fpr, tpr = (cal[~is_flat] > 0.5).mean(), (cal[is_flat] > 0.5).mean()
    assert 0.05 < fpr < 0.3 and 0.6 < tpr < 0.95  # a real confusion
    for share in (0.05, 0.40):
        p, _ = draw(int(share * 40000), int((1 - share) * 40000))
        cc, pcc = R.classify_and_count(p), R.probabilistic_count(p)
        acc, pacc = R.adjusted_count(cc, fpr, tpr), R.adjusted_count(pcc, a_p, b_p)
        assert abs(acc - share) < tol and abs(pacc - share) < tol
        assert abs(cc - share) > 3 * tol and abs(pcc - share) > 3 * tol


def test_adjusted_count_refuses_a_readout_that_does_not_separate():
    with pytest.raises(ValueError, match="does not separate"):
        R.adjusted_count(0.3, 0.5, 0.5)


def test_pacc_is_affine_so_group_shares_average_to_the_pooled_share(synth_readout):
    z, _ = synth_set(8, seed=7)
    proba = synth_readout.predict_proba(z)
    halves = [proba[::2], proba[1::2]]
    assert np.isclose(np.mean([synth_readout.flat_share(h) for h in halves]), synth_readout.flat_share(proba))


# --- synthetic fits ---------------------------------------------------------------------------------

def test_synthetic_accuracy_and_spike_in(synth_readout, min_accuracy=0.9, tol=SPIKE_TOL):
    """On held-out synthetic clips the readout is accurate and reads spike-in sets of 25 % and 5 %
    flat clips back within `tol` (mean over draws)."""
    z, y = synth_set(60, seed=2)
    proba = synth_readout.predict_proba(z)
    assert (np.array(TEXTURES)[proba.argmax(1)] == y).mean() >= min_accuracy
    rows = R.spike_in_rows(synth_readout, proba, y == "sustained", shares=(0.25, 0.05), tol=tol, draws=10)
    for row in rows:
        assert abs(row["error"]) <= tol, row


def test_embedding_is_the_penultimate_layer_and_separates_textures(synth_readout, min_accuracy=0.9):
    """embed(z) is the 16-unit hidden layer (the default MLP); on held-out clips the nearest
    texture centroid of the training clips' embeddings reads the texture (an embedding for FD/KID/Vendi
    that carries what the readout reads)."""
    z, y = synth_set(60, seed=1)
    zt, yt = synth_set(30, seed=12)
    e, et = synth_readout.embed(z), synth_readout.embed(zt)
    assert e.shape == (len(z), R.DEFAULTS.hidden) and np.isfinite(e).all()
    centroids = np.stack([e[y == t].mean(axis=0) for t in TEXTURES])
    nearest = np.array(TEXTURES)[((et[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)]
    assert (nearest == yt).mean() >= min_accuracy


def test_spike_in_sets_have_the_share_they_claim():
    is_flat = np.r_[np.ones(30, bool), np.zeros(90, bool)]
    for share in (0.25, 0.05):
        sets = R.spike_in_sets(is_flat, share, draws=3, seed=0)
        for s in sets:
            assert len(set(s)) == len(s)
            assert abs(is_flat[s].mean() - share) <= 0.5 / len(s) + 1e-12
    with pytest.raises(ValueError):
        R.spike_in_sets(np.zeros(10, bool), 0.25, draws=1, seed=0)


def test_same_seed_gives_identical_probabilities():
    z, y = synth_set(20, seed=3)
    a = R.fit_on(z, y, seed=4, folds=3)
    b = R.fit_on(z, y, seed=4, folds=3)
    np.testing.assert_array_equal(a.predict_proba(z), b.predict_proba(z))
    assert (a.a, a.b) == (b.a, b.b)
    mlp = [R.fit_on(z, y, seed=4, folds=3, hidden=8) for _ in range(2)]
    np.testing.assert_array_equal(mlp[0].predict_proba(z), mlp[1].predict_proba(z))
    assert mlp[0].embed(z).shape == (len(z), 8)


def test_shuffled_labels_fall_to_chance(chance_margin=0.12):
    """The wrong-label control: trained on permuted labels, held-out accuracy is chance (1/4) within
    `chance_margin`, while the same data with true labels is far above it."""
    z, y = synth_set(40, seed=5)
    zt, yt = synth_set(40, seed=6)
    shuffled = R.fit_on(z, np.random.default_rng(0).permutation(y), folds=3)
    true = R.fit_on(z, y, folds=3)
    acc = lambda ro: (ro.predict(zt) == yt).mean()
    assert abs(acc(shuffled) - 0.25) <= chance_margin
    assert acc(true) >= 0.25 + 3 * chance_margin


def test_features_do_not_depend_on_clip_length_or_batch():
    z, _ = synth_set(2, seed=8)
    f = R.texture_features(z)
    assert f.shape == (len(z), 2 * z.shape[1] + 4 * R.N_BANDS + 17) and np.isfinite(f).all()
    np.testing.assert_allclose(R.texture_features(z[:1]), f[:1])
    longer = np.concatenate([z, z], axis=-1)
    assert R.texture_features(longer).shape == f.shape


def test_save_load_roundtrip(synth_readout, tmp_path):
    path = synth_readout.save(tmp_path / "r.npz")
    back = R.Readout.load(path)
    z, _ = synth_set(4, seed=9)
    np.testing.assert_array_equal(back.predict_proba(z), synth_readout.predict_proba(z))
    assert (back.a, back.b, back.classes) == (synth_readout.a, synth_readout.b, synth_readout.classes)
    pd.testing.assert_frame_equal(back.family_proba(z), synth_readout.family_proba(z))


def test_family_head_reads_the_families_that_play(synth_readout):
    """Families absent from every training clip get no head; the others are read on held-out clips."""
    assert list(synth_readout.family_params) == ["bowed", "winds", "plucked", "struck"]
    labels = R.family_labels(["violin;harp", "warm pad", "marimba;vibraphone"])
    assert labels.to_dict("list") == {"bowed": [1, 0, 0], "organ_pad": [0, 1, 0], "winds": [0, 0, 0],
                                      "plucked": [1, 0, 0], "struck": [0, 0, 1]}
    z, y = synth_set(20, seed=11)
    truth = R.family_labels([SYNTH_INSTRUMENTS[t] for t in y])
    hits = synth_readout.family_proba(z) > 0.5
    for f in hits.columns:
        assert (hits[f].to_numpy() == truth[f].to_numpy().astype(bool)).mean() >= 0.9, f


def test_sample_flat_shares_reads_the_latents_generate_writes(synth_readout, tmp_path):
    """Two sample folders laid out as generate.generate_run writes them (latents.npy in the folder,
    manifest.csv with latent_row, rows in another order than the latents): per-group shares come
    from the right clips."""
    cfg = smoke_at(tmp_path)
    rows, rng = [], np.random.default_rng(0)
    for run, texture in (("none_s0", "sustained"), ("oracle_s0", "percussive")):
        folder = tmp_path / "samples" / run / "step_final"
        folder.mkdir(parents=True)
        lat = np.stack([synth_latents(texture, rng) for _ in range(4)])
        np.save(folder / "latents.npy", lat)
        part = pd.DataFrame({"run": run, "arm": run[:-3], "seed": 0, "step": -1, "prompt_id": [0, 0, 1, 1],
                             "sample": [0, 1, 0, 1], "latent_row": [3, 2, 1, 0],
                             "path": [f"samples/{run}/step_final/p{p:02d}_s{s}.wav" for p, s in ((0, 0), (0, 1), (1, 0), (1, 1))]})
        part.to_csv(folder / "manifest.csv", index=False)
        rows.append(part.drop(columns="latent_row"))
    manifest = pd.concat(rows, ignore_index=True)
    clips = R.sample_textures(cfg, manifest, synth_readout)
    assert list(clips["texture_read"][:4]) == ["sustained"] * 4 and list(clips["texture_read"][4:]) == ["percussive"] * 4
    shares = R.sample_flat_shares(cfg, manifest, synth_readout)
    assert len(shares) == 4 and set(shares["n"]) == {2}
    assert (shares.set_index("arm").loc["none", "flat_share"] > 0.7).all()
    assert (shares.set_index("arm").loc["oracle", "flat_share"] < 0.3).all()
    (tmp_path / "samples" / "none_s0" / "step_final" / "latents.npy").unlink()
    with pytest.raises(FileNotFoundError, match="latents.npy"):
        R.sample_flat_shares(cfg, manifest, synth_readout)


# --- a small real corpus ---------------------------------------------------------------------------

REAL_CLIPS = {"base": 96, "finetune": 4, "reference": 32}


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """A chamber corpus of 96 base / 32 reference clips of 4 s (8 clips per piece: few pieces to
    parse), rendered and pre-encoded once, and the profile's readout (fit_readout)."""
    runs = tmp_path_factory.mktemp("readout_runs")
    cfg = smoke_at(runs, {
        "corpus": {"source": "chamber", "clips": REAL_CLIPS, "seconds": 4.0, "sample_rate": 22050, "workers": 2,
                   "clips_per_piece": 8},
        "codec.griffin_lim_iters": 32})
    return cfg, R.fit_readout(cfg)


@pytest.mark.slow  # renders and encodes a chamber corpus
def test_real_corpus_validation_rows(real, min_accuracy=0.6, tol=SPIKE_TOL):
    """On the small real corpus (96 training clips): reference accuracy well above chance (the
    cpu-profile corpus, 1,000 training clips, reaches the 90 % target and the spike-in read-back:
    benchmarks/results/readout.md; at this size the spike-in reads ~8 points high, so it is checked
    here only as rows whose `pass` follows their own criterion, and on synthetic data above)."""
    cfg, ro = real
    rows = R.validation_rows(cfg, ro, min_accuracy=0.9, tol=tol, draws=5).set_index("check")
    assert list(rows.index) == ["texture accuracy (reference)", "flat vs rest accuracy (reference)",
                                "spike-in 25% flat", "spike-in 5% flat", "spike-in difference 25% - 5%"]
    acc = rows.loc["texture accuracy (reference)"]
    assert acc["read_back"] >= min_accuracy and acc["n"] == REAL_CLIPS["reference"]
    assert acc["pass"] == (acc["read_back"] >= 0.9)
    fam = R.family_rows(cfg, ro)
    assert list(fam["family"]) == list(R.FAMILIES) and fam["balanced_accuracy"].mean() >= 0.6
    for share in ("25%", "5%"):
        row = rows.loc[f"spike-in {share} flat"]
        assert row["pass"] == (abs(row["error"]) <= tol and row["max_abs_error"] <= 2 * tol)
        assert abs(row["target"] - float(share[:-1]) / 100) <= 0.5 / row["n"] + 1e-9


@pytest.mark.slow  # renders and encodes a chamber corpus
def test_real_corpus_cache_is_reused_and_keyed(real):
    cfg, ro = real
    from eisbach_lib.layout import Layout

    path = Layout.of(cfg).readout_model
    stamp = path.stat().st_mtime_ns
    again = R.fit_readout(cfg)
    assert path.stat().st_mtime_ns == stamp and again.info["key"] == ro.info["key"]
    changed = R.fit_readout(override(cfg, {"readout.l2": 0.05}))
    assert changed.info["key"] != ro.info["key"]


@pytest.mark.slow  # renders and encodes a chamber corpus
def test_real_corpus_shuffled_labels_fall_to_chance(real, chance_margin=0.2):
    """The wrong-label control on real latents: base labels permuted, reference accuracy is chance."""
    cfg, ro = real
    from eisbach_lib.datasets import load_corpus

    pe = load_corpus(cfg)
    zb, tb, gb = R._split_arrays(pe, "base")
    zr, tr, _ = R._split_arrays(pe, "reference")
    shuffled = R.fit_on(zb, np.random.default_rng(1).permutation(tb), gb, folds=3)
    assert abs((shuffled.predict(zr) == tr).mean() - 0.25) <= chance_margin
    assert (ro.predict(zr) == tr).mean() >= 0.25 + 1.5 * chance_margin
