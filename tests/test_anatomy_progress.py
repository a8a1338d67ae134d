"""The barrier anatomy's plumbing: it runs with one torch thread and restores the
caller's setting, and its one progress counter shows step/total, rate and time left and ends exactly
at the total `anatomy_steps` announced (a part whose loop forgets to count, or counts what
`anatomy_steps` does not, fails here). Tiny sizes on the CPU: a pretrained 1-block DiT, 10 clips."""

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from eisbach_lib import anatomy, probes
from eisbach_lib.progress import Progress
from eisbach_lib.train import pretrain
from eisbach_lib.workers import one_thread
from helpers import synth, tiny_cfg

SETTINGS = {"clips": 6, "t_points": 3, "weight_draws": 2, "grad_batches": 1, "update_seqs": 1, "update_steps": 2}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny profile with a pretrained base, 10 finetune clips and a WAV for each (clip_flatness reads them)."""
    root = tmp_path_factory.mktemp("runs")
    cfg = tiny_cfg(root, {"anatomy": SETTINGS})
    pretrain(cfg, synth(10, "base", seed=1), progress=False)
    data = synth(10, "finetune", seed=2)
    audio = root / "corpus" / "audio"
    audio.mkdir(parents=True)
    rng = np.random.default_rng(0)
    paths = []
    for cid in data.manifest["id"]:
        sf.write(audio / f"{cid}.wav", (0.1 * rng.standard_normal(8000)).astype("float32"), 8000)
        paths.append(f"audio/{cid}.wav")
    data.manifest["path"] = paths
    return cfg, data


def test_one_thread_sets_and_restores_torch_threads():
    before = torch.get_num_threads()
    with one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), one_thread():
        raise RuntimeError("a failing cell")
    assert torch.get_num_threads() == before


def test_barrier_anatomy_runs_on_one_thread_and_counts_every_step(world, monkeypatch):
    cfg, data = world
    monkeypatch.setattr(anatomy, "_split_data", lambda cfg, split="finetune": data)
    threads, bars = [], []
    forward = anatomy._forward
    monkeypatch.setattr(anatomy, "_forward", lambda *a, **k: threads.append(torch.get_num_threads()) or forward(*a, **k))
    monkeypatch.setattr(probes, "_forward", anatomy._forward)  # the same spy on weights_by_clip's passes (probes.py)
    stream = io.StringIO()

    class Recorded(Progress):  # every line to `stream`, with a first line due at once
        def __init__(self, *a, **k):
            super().__init__(*a, **{**k, "stream": stream, "first_s": 0.0, "min_gap_s": 0.0})
            bars.append(self)

    monkeypatch.setattr(anatomy, "Progress", Recorded)
    caller = torch.get_num_threads()
    torch.set_num_threads(2)  # torch's default on a 2-core machine, what the anatomy used to run with
    try:
        out = anatomy.barrier_anatomy(cfg)
        assert torch.get_num_threads() == 2  # the caller's setting is back
    finally:
        torch.set_num_threads(caller)
    assert set(threads) == {1}, set(threads)
    steps = anatomy.anatomy_steps(cfg.anatomy, len(data), cfg.finetune.batch_size)
    (bar,) = bars
    assert bar.total == sum(steps.values()) and bar.n == bar.total, (bar.n, steps)
    lines = stream.getvalue().splitlines()
    assert re.search(r"^barrier anatomy: \d+/%d \(\d+%%\) \| .*/s.* \| elapsed \d+:\d\d \| left ~\d+:\d\d" % bar.total,
                     lines[0]), lines[0]
    assert lines[-1].endswith("done") and f"{bar.total}/{bar.total}" in lines[-1]
    inits = cfg.anatomy.update_inits  # each arm and the noise floor, per init and sequence
    assert len(out["update_cosines"]) == inits * SETTINGS["update_seqs"] * (len(anatomy.UPDATE_ARMS) + 1) * SETTINGS["update_steps"]
    assert (Path(cfg.runs_dir) / "anatomy" / "grad_cosines.csv").exists()
    assert isinstance(out["weights_by_clip"]["flatness"], pd.Series) and out["weights_by_clip"]["flatness"].notna().all()


def test_progress_false_prints_nothing(world, monkeypatch, capsys):
    cfg, data = world
    monkeypatch.setattr(anatomy, "_split_data", lambda cfg, split="finetune": data)
    anatomy.barrier_anatomy(cfg, progress=False)
    assert capsys.readouterr().out == ""
