"""The real-scale path on a tiny random Stable Audio 3 stand-in (eisbach_lib.standin): the directory
checks, the cache key, generation from each run's own record, exact durations, and the whole chain
corpus -> train -> generate -> evaluate (plus, slow, the notebook series) through the command line."""

import contextlib
import io
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from eisbach_lib import cli
from eisbach_lib.config import load_profile
from eisbach_lib.models import BaseDirError, SA3Codec, SA3TextEncoder, check_base_dir
from series_run import profile_copy

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run_cli(*argv: str) -> tuple[int, str, str]:
    """cli.main in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main(list(argv))
        except SystemExit as e:
            code = int(e.code or 0)
    return code, out.getvalue(), err.getvalue()


def copy_standin(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, copy_function=shutil.copy2)
    return dst


# --- the stand-in and the directory check ----------------------------------------------------

def test_standin_is_a_complete_sa3_directory(sa3_standin):
    widths = check_base_dir(sa3_standin)
    assert widths["duration_embedder.output_dim"] == widths["transformer.cond_token_dim"] == \
        widths["transformer.global_cond_dim"] == widths["text_encoder.hidden_size"] == 16
    assert widths["vae.latent_dim"] == widths["transformer.io_channels"] == 8
    index = json.loads((sa3_standin / "model_index.json").read_text())
    assert index["_class_name"] == "StableAudio3Pipeline"
    assert {"transformer", "duration_embedder", "vae", "text_encoder", "tokenizer"} <= set(index)


@pytest.mark.parametrize("command, removed", [
    (["train", "--arm", "none", "--steps", "2"], "transformer/diffusion_pytorch_model.safetensors"),
    (["grid"], "duration_embedder/config.json"),
    (["corpus"], "vae/diffusion_pytorch_model.safetensors"),
    (["generate"], "tokenizer/tokenizer.json"),
])
def test_missing_part_fails_before_any_work(sa3_standin, standin_profile, tmp_path, command, removed):
    base = copy_standin(sa3_standin, tmp_path / "broken_sa3")
    (base / removed).unlink()
    profile = standin_profile(base)
    runs = Path(load_profile(profile).runs_dir)
    t0 = time.perf_counter()
    code, _, err = run_cli(command[0], "--profile", str(profile), *command[1:])
    elapsed = time.perf_counter() - t0
    assert code == 2
    assert str(base) in err and f"missing {removed}" in err
    assert "looked for: transformer/config.json" in err and "tokenizer/tokenizer.json or tokenizer/tokenizer.model" in err
    assert "fix: copy the missing or broken files" in err and str(profile) in err
    assert "pretrain" not in err                      # with model.base_dir set there is nothing to pretrain
    assert not runs.exists()                          # nothing was rendered, encoded or trained
    assert elapsed < 5.0, elapsed


def test_embedded_base_missing_suggests_pretrain(tmp_path):
    prof = profile_copy(tmp_path / "p.yaml", tmp_path / "runs")
    code, _, err = run_cli("train", "--profile", str(prof), "--arm", "none")
    assert code == 2 and "the embedded base DiT" in err and str(tmp_path / "runs" / "base") in err
    assert f"`eisbach pretrain --profile {prof}`" in err
    assert not (tmp_path / "runs" / "corpus").exists()


def test_widths_that_do_not_fit_are_named(sa3_standin, tmp_path):
    base = copy_standin(sa3_standin, tmp_path / "wide")
    cfg_path = base / "duration_embedder" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["output_dim"] = 24
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(BaseDirError, match=r"conditioning widths differ: .*duration_embedder.output_dim = 24"):
        check_base_dir(base)
    (base / "vae" / "config.json").write_text("{not json")
    with pytest.raises(BaseDirError, match=r"config.json in vae/ is not readable JSON"):
        check_base_dir(base, ("codec",))
    # a git-lfs pointer in place of the weights
    (base / "text_encoder" / "model.safetensors").write_text("version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(BaseDirError, match=r"text_encoder/model.safetensors is not a readable safetensors file \(a git-lfs"):
        check_base_dir(base, ("text",))


# --- the cache key -----------------------------------------------------------------------------

def _audio_folder(root: Path, n: int = 4) -> Path:
    root.mkdir(parents=True)
    rows = []
    for i in range(n):
        t = np.arange(22050) / 22050
        sf.write(root / f"c{i}.wav", (0.3 * np.sin(2 * np.pi * (220 + 55 * i) * t)).astype(np.float32), 22050)
        rows.append({"file_name": f"c{i}.wav", "caption": f"a calm cello {i}", "split": "finetune"})
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    return root


def test_cache_key_covers_the_weights(sa3_standin, standin_profile, tmp_path):
    from eisbach_lib.cache import load_cache
    from eisbach_lib.datasets import prepare_corpus
    from eisbach_lib.standin import build_standin

    folder = _audio_folder(tmp_path / "clips")
    over = {"corpus.source": "folder", "corpus.audio_dir": str(folder), "corpus.seconds": 1.0}
    other = build_standin(tmp_path / "sa3_seed1", seed=1)
    cfg_a = load_profile(standin_profile(sa3_standin, over))
    cache_a = prepare_corpus(cfg_a, progress=False)
    cfg_b = load_profile(standin_profile(other, over))
    cache_b = prepare_corpus(cfg_b, progress=False)
    assert cache_a != cache_b                         # another checkpoint: another cache, not "reusing"
    a, b = load_cache(cache_a), load_cache(cache_b)
    assert (a.latents - b.latents).abs().max() > 1e-3 and (a.tokens - b.tokens).abs().max() > 1e-3
    assert prepare_corpus(cfg_a, progress=False) == cache_a   # unchanged inputs: reused

    # a changed weight (same file size) changes the codec's and the text encoder's keys
    codec_key, text_key = SA3Codec(other).cache_key, SA3TextEncoder(other).cache_key
    from safetensors.torch import load_file, save_file
    for rel in ("vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        w = load_file(str(other / rel))
        name = sorted(w)[0]
        w[name] = w[name] + 0.5
        size = (other / rel).stat().st_size
        save_file(w, str(other / rel), metadata={"format": "pt"})
        assert (other / rel).stat().st_size == size
    assert SA3Codec(other).cache_key != codec_key and SA3TextEncoder(other).cache_key != text_key
    assert prepare_corpus(cfg_b, progress=False) != cache_b

    # the clip length and a changed source clip change the key too
    cfg_c = load_profile(standin_profile(sa3_standin, {**over, "corpus.seconds": 0.9}))
    assert prepare_corpus(cfg_c, progress=False) != cache_a
    time.sleep(0.01)
    sf.write(folder / "c0.wav", np.zeros(22050, dtype=np.float32) + 0.1, 22050)
    assert prepare_corpus(cfg_a, progress=False) != cache_a


def test_run_steps_come_from_the_run_record(tmp_path):
    """A run's own done.json and checkpoint folders decide its generation steps, not the profile."""
    from eisbach_lib.runs import run_steps

    run = tmp_path / "dora_none_s0"
    for step in (3, 5):
        (run / f"ckpt_{step:06d}").mkdir(parents=True)
    (run / "ckpt_000004.tmp").mkdir()                   # an interrupted checkpoint is not a checkpoint
    (run / "done.json").write_text(json.dumps({"steps": 5, "checkpoints": [3, 5]}))
    assert run_steps(run) == ([3], 5)
    (run / "done.json").write_text(json.dumps({"steps": 5, "checkpoints": [5]}))
    assert run_steps(run) == ([], 5)


def test_generated_audio_has_exactly_the_requested_duration():
    from eisbach_lib.generate import exact_length

    y = np.ones((2, 180224), dtype=np.float32)        # 44 SA3 latent frames x 4096 = 4.087 s
    assert exact_length(y, 4.0, 44100).shape == (2, 176400)
    assert exact_length(np.ones(100), 0.01, 44100).shape == (441,)   # padded when short
    assert exact_length(np.ones(100), 0.01, 44100)[100:].sum() == 0


def assert_full_scorecard(cfg: dict) -> None:
    """Every claim has a row, C1-C4 found their inputs (the library computes them, not notebook
    cells), and the trained runs were read at their own final step."""
    card = pd.read_csv(Path(cfg.figures_dir) / "scorecard.csv", keep_default_na=False)
    claims = card[card["role"].isin(["primary", "exploratory"])].set_index("claim")
    assert list(claims.index) == [f"C{i}" for i in range(1, 11)]
    for c in ("C1", "C2", "C3", "C4"):
        assert "missing" not in claims.loc[c, "note"], (c, claims.loc[c, "note"])
    assert "arm eisbach not generated" not in claims.loc["C7", "note"]


# --- the chain -----------------------------------------------------------------------------------

@pytest.mark.slow
def test_standin_chain_corpus_train_generate_evaluate(standin_profile):
    """`eisbach corpus -> train (2 arms x 2 seeds, --steps 5) -> generate -> anatomy -> dynamics ->
    evaluate` on the stand-in, under a profile whose checkpoints lie at or beyond step 5 (smoke: [5, 10,
    20]): generate takes each run's steps from its record, not from the profile."""
    profile = standin_profile(overrides={"corpus.clips": {"base": 8, "finetune": 8, "reference": 8}})
    cfg = load_profile(profile)
    assert min(cfg.finetune.checkpoints) >= 5 and cfg.finetune.steps == 20
    runs = Path(cfg.runs_dir)
    code, out, err = run_cli("corpus", "--profile", str(profile))
    assert code == 0, err
    meta = json.loads((Path(out.rsplit("cache: ", 1)[1].strip()) / "meta.json").read_text())
    assert meta["codec"].startswith("SA3Codec:") and meta["text"].startswith("SA3TextEncoder:")
    assert meta["codec_sample_rate"] == 44100
    for arm in ("none", "eisbach"):
        for seed in (0, 1):
            code, _, err = run_cli("train", "--profile", str(profile), "--arm", arm, "--seed", str(seed), "--steps", "5")
            assert code == 0, err
    code, out, err = run_cli("generate", "--profile", str(profile))
    assert code == 0, err
    samples = pd.read_csv(runs / "samples" / "manifest.csv")
    trained = samples[samples["arm"] != "base"]
    assert set(trained["step"]) == {5} and set(samples.loc[samples["arm"] == "base", "step"]) == {0}
    assert len(trained) == 4 * 9 * 2 and trained.groupby(["arm", "seed"]).size().tolist() == [18] * 4
    for rel in samples["path"].head(3):
        info = sf.info(str(runs / rel))
        assert info.samplerate == 44100 and info.frames == 176400   # exactly generate.seconds = 4.0 s
    clips = [sf.read(str(runs / rel))[0] for rel in samples["path"].head(2)]
    assert np.abs(clips[0] - clips[1]).max() > 1e-3                 # two prompts' latents decode to different audio
    for command in ("anatomy", "dynamics"):  # evaluate reads their tables and never computes them
        code, _, err = run_cli(command, "--profile", str(profile))
        assert code == 0, err
    code, out, err = run_cli("evaluate", "--profile", str(profile))
    assert code == 0, err
    assert_full_scorecard(cfg)




@pytest.mark.slow
def test_standin_notebook_series(standin_profile):
    """The notebook series under papermill on the stand-in profile (smoke sizes, real-scale code path),
    without the primary captions' second pass at the profile's CFG (the cpu profile's setting; the smoke
    series runs that set)."""
    profile = standin_profile(overrides={"generate.primary_at_cfg": False})
    cfg = load_profile(profile)
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "eisbach_lib.cli", "reproduce", "--profile", str(profile)],
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    print(f"stand-in series: {time.time() - t0:.0f} s")
    runs = Path(cfg.runs_dir)
    assert [p.name[:2] for p in sorted((runs / "notebooks").glob("0*.ipynb"))] == [f"0{i}" for i in range(8)]
    assert_full_scorecard(cfg)
    assert not (runs / "base").exists()               # real-scale path: nothing pretrained
