"""The training loop: exact resume, pairing across arms, skipping, the grid, and clear errors (tiny sizes, CPU)."""

import json
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from eisbach_lib.cache import PreEncoded
from eisbach_lib.config import Profile, override
from eisbach_lib.models import adapter_state_dict, load_base
from eisbach_lib.anatomy import training_mix
from eisbach_lib.probes import base_fingerprint, constant_weight
from eisbach_lib.runs import grid_items, load_run_model, read_log
from eisbach_lib.train import BatchOrder, pretrain, run_grid, shard_items, stream_seed, train_run
from helpers import C, D, synth, tiny_cfg


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A profile in a temp runs_dir with a pretrained tiny base, and the fine-tuning data."""
    root = tmp_path_factory.mktemp("runs")
    cfg = tiny_cfg(root)
    base = pretrain(cfg, synth(10, "base", seed=1), progress=False)
    return cfg, synth(10, "finetune", seed=2), base


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run_dir / "adapter_model.safetensors"))


def test_pretrain_writes_a_loadable_base_and_is_skipped(world):
    cfg, _, base = world
    assert base == Path(cfg.runs_dir) / "base"
    assert (base / "done.json").exists() and (base / "transformer" / "diffusion_pytorch_model.safetensors").exists()
    model = load_base(base)
    assert model.io_channels == C and model.text_dim == D
    steps = read_log(base, "steps")
    assert steps["step"].tolist() == list(range(1, 7))
    assert (base / "ckpt_000003" / "transformer" / "config.json").exists()  # intermediate base checkpoints load too
    load_run_model(cfg, base, step=3)
    t0 = time.time()
    assert pretrain(cfg, synth(10, "base", seed=1), progress=False) == base
    assert time.time() - t0 < 1.0


@pytest.mark.parametrize("arm", ["eisbach_shuffle", "eisbach_tmatched", "oracle_texture", "constant"])
def test_resume_equals_uninterrupted_bit_exact(world, tmp_path: Path, arm: str):
    cfg, data, _ = world
    full = train_run(cfg, data, tmp_path / "full", arm=arm, seed=1, progress=False)
    part = tmp_path / "part"
    train_run(cfg, data, part, arm=arm, seed=1, progress=False, stop_after=5)  # "killed" between ckpts 3 and 6
    assert not (part / "done.json").exists() and (part / "ckpt_000003").exists() and not (part / "ckpt_000006").exists()
    first = {p: p.stat().st_mtime_ns for p in (part / "ckpt_000003").rglob("*.safetensors")}
    train_run(cfg, data, part, arm=arm, seed=1, progress=False, stop_after=7)  # resumes at 3, killed again after 7
    assert {p: p.stat().st_mtime_ns for p in first} == first  # resumed, not restarted: steps 1-3 not redone
    train_run(cfg, data, part, arm=arm, seed=1, progress=False)  # resumes at 6, finishes
    a, b = final_weights(full), final_weights(part)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    la, lb = read_log(full), read_log(part)
    cols = ["step", "id", "t", "h", "w", "loss", "dropped", "noise_sum"]
    pd.testing.assert_frame_equal(la[cols], lb[cols])  # no step lost or logged twice
    # only the newest checkpoint keeps the training state
    assert not (part / "ckpt_000003" / "state.pt").exists() and (part / "ckpt_000008" / "state.pt").exists()


def test_base_resume_equals_uninterrupted_bit_exact(tmp_path: Path):
    cfg = tiny_cfg(tmp_path)
    data = synth(9, "base", seed=3)
    full = train_run(cfg, data, tmp_path / "full", adapter=None, seed=0, progress=False)
    part = tmp_path / "part"
    train_run(cfg, data, part, adapter=None, seed=0, progress=False, stop_after=4)
    train_run(cfg, data, part, adapter=None, seed=0, progress=False)
    a, b = load_base(full).state_dict(), load_base(part).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_pairing_same_batches_timesteps_noise_across_arms(world, tmp_path: Path):
    cfg, data, _ = world
    logs = {arm: read_log(train_run(cfg, data, tmp_path / arm, arm=arm, seed=0, progress=False))
            for arm in ("none", "eisbach", "eisbach_shuffle", "minsnr")}
    ref = logs["none"]
    for arm, log in logs.items():
        for col in ("step", "id", "t", "noise_sum", "dropped"):
            assert log[col].tolist() == ref[col].tolist(), (arm, col)
    assert not ref["w"].equals(logs["eisbach"]["w"])  # the arms differ in their weights only
    assert ref["dropped"].any()  # condition dropout happened (p = 0.3)
    # adapter init is shared: the step-0 adapters of two arms are identical, another seed's differ
    from eisbach_lib.models import add_adapter
    inits = [adapter_state_dict(add_adapter(load_base(world[2]), "dora", 4, 4, seed=stream_seed(s, "adapter")))
             for s in (0, 0, 1)]
    assert all(torch.equal(inits[0][k], inits[1][k]) for k in inits[0])
    assert any(not torch.equal(inits[0][k], inits[2][k]) for k in inits[0])
    other = read_log(train_run(cfg, data, tmp_path / "seed1", arm="none", seed=1, progress=False))
    assert other["t"].tolist() != ref["t"].tolist()


def test_intermediate_checkpoint_loads_as_the_shorter_run(world, tmp_path: Path):
    """Checkpoint k of a long run = the final model of a k-step run (C10 evaluates checkpoints)."""
    cfg, data, _ = world
    long = train_run(cfg, data, tmp_path / "long", arm="eisbach", seed=0, progress=False)
    short = train_run(cfg, data, tmp_path / "short", arm="eisbach", seed=0, steps=3, progress=False)
    a = adapter_state_dict(load_run_model(cfg, long, step=3))
    b = adapter_state_dict(load_run_model(cfg, short))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not load_run_model(cfg, long).training
    with pytest.raises(FileNotFoundError, match="no checkpoint at step 5"):
        load_run_model(cfg, long, step=5)


def test_finished_run_is_skipped(world, tmp_path: Path):
    cfg, data, _ = world
    run = train_run(cfg, data, tmp_path / "r", arm="eisbach", seed=0, progress=False)
    summary = json.loads((run / "done.json").read_text())
    assert summary["steps"] == 8 and summary["arm"] == "eisbach" and "final_loss" in summary
    mtimes = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    t0 = time.time()
    assert train_run(cfg, data, run, arm="eisbach", seed=0, progress=False) == run
    assert time.time() - t0 < 0.5
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == mtimes


def test_shards_partition_the_grid(world):
    cfg = override(world[0], {"finetune.adapters": ["dora", "lora"]})
    items = grid_items(cfg)
    assert len(items) == 2 * 3 * 2
    assert items[0]["run_dir"] == Path(cfg.runs_dir) / "adapters" / "dora_none_s0"
    names = [i["run_dir"].name for i in items]
    assert len(set(names)) == len(names)
    for n in (1, 2, 3, 5):
        shards = [shard_items(items, f"{i}/{n}") for i in range(n)]
        flat = [i["run_dir"].name for s in shards for i in s]
        assert sorted(flat) == sorted(names) and len(flat) == len(names)
    for bad in ("2/2", "x", "1/0"):
        with pytest.raises(ValueError, match="shard"):
            shard_items(items, bad)


def test_run_grid_trains_its_shard(world):
    cfg = override(world[0], {"finetune.steps": 2, "finetune.checkpoints": [], "finetune.arms": ["none", "eisbach"],
                              "finetune.seeds": [0]})
    mixed = PreEncoded(**{f: torch.cat([getattr(world[1], f), getattr(synth(4, "reference"), f)])
                          for f in ("latents", "frame_mask", "tokens", "token_mask", "seconds")},
                       manifest=pd.concat([world[1].manifest, synth(4, "reference").manifest], ignore_index=True))
    runs = run_grid(cfg, mixed, shard="1/2", progress=False)
    assert [r.name for r in runs] == ["dora_eisbach_s0"] and (runs[0] / "done.json").exists()
    assert set(read_log(runs[0])["id"].str.startswith("finetune")) == {True}  # only the finetune split
    cfg = override(cfg, {"model.base_dir": str(Path(cfg.runs_dir) / "missing_base")})
    with pytest.raises(FileNotFoundError, match="missing_base"):
        run_grid(cfg, mixed, shard="0/2", progress=False)


def test_bad_values_raise_with_their_name(world, tmp_path: Path):
    cfg, data, _ = world
    with pytest.raises(ValueError, match="unknown arm 'eisbachh'"):
        train_run(cfg, data, tmp_path / "x", arm="eisbachh", progress=False)
    with pytest.raises(ValueError, match=r"finetune.steps must be a positive integer, got 0"):
        train_run(cfg, data, tmp_path / "x", arm="none", steps=0, progress=False)
    with pytest.raises(ValueError, match="unknown adapter 'ia3'"):
        train_run(cfg, data, tmp_path / "x", arm="none", adapter="ia3", progress=False)
    with pytest.raises(ValueError, match="finetune.batch_size"):
        override(cfg, {"finetune.batch_size": -1})
    with pytest.raises(ValueError, match="finetune.timesteps"):
        override(cfg, {"finetune.timesteps": "gauss"})
    with pytest.raises(ValueError, match="empty"):
        train_run(cfg, data.select([]), tmp_path / "x", arm="none", progress=False)
    with pytest.raises(ValueError, match="no clips in split 'base'"):
        pretrain(override(cfg, {"runs_dir": str(tmp_path)}), data, progress=False)
    with pytest.raises(FileNotFoundError, match="eisbach pretrain"):
        train_run(cfg, data, tmp_path / "y", arm="none", base_dir=tmp_path / "nowhere", progress=False)
    # a folder that holds another run is not silently mixed
    train_run(cfg, data, tmp_path / "z", arm="none", steps=1, progress=False, stop_after=0)
    with pytest.raises(ValueError, match="different run"):
        train_run(cfg, data, tmp_path / "z", arm="eisbach", steps=1, progress=False)


def test_batch_order_covers_each_epoch_once():
    order = BatchOrder(10, torch.Generator().manual_seed(0))
    seen = torch.cat([order.next(4) for _ in range(5)])  # 20 = two epochs
    assert sorted(seen[:10].tolist()) == list(range(10)) and sorted(seen[10:].tolist()) == list(range(10))


# -- the control arms ------------------------------------------------------------------------


def test_oracle_arm_logs_the_label_weights(world, tmp_path: Path):
    from eisbach_lib.barrier import ORACLE_WEIGHTS

    cfg, data, _ = world
    run = train_run(cfg, data, tmp_path / "oracle", arm="oracle_texture", seed=0, progress=False)
    log = read_log(run)
    assert log["w"].tolist() == pytest.approx([ORACLE_WEIGHTS[x] for x in log["texture"]])
    assert json.loads((run / "run.json").read_text())["arm_config"]["oracle_weights"] == ORACLE_WEIGHTS
    mix = training_mix(log).set_index("texture")
    assert mix.loc["sustained", "weighted_share"] < mix.loc["sustained", "share"]
    assert mix.loc["percussive", "weighted_share"] > mix.loc["percussive", "share"]
    assert mix["weighted_share"].sum() == pytest.approx(1.0) and mix["share"].sum() == pytest.approx(1.0)


def test_constant_arm_uses_the_cached_split_mean_for_every_sample(world, tmp_path: Path, monkeypatch):
    from eisbach_lib import probes

    cfg, data, base = world
    run = train_run(cfg, data, tmp_path / "constant", arm="constant", seed=0, progress=False)
    cache = Path(cfg.runs_dir) / "anatomy" / "constant_weight.json"
    entry = json.loads((run / "run.json").read_text())["arm_config"]
    assert cache.exists() and json.loads(cache.read_text())[entry["key"]] == entry
    # the weight is the finetune split's mean eisbach weight under the base model
    direct = probes.weights_by_clip(load_base(base).eval(), data, n_t=8, lam=0.5, seed=0)
    assert entry["weight"] == pytest.approx(float(direct["w"].mean()), rel=1e-6) and entry["n_clips"] == len(data)
    log = read_log(run)
    assert (log["w"] == entry["weight"]).all()  # identical for every sample and step
    mix = training_mix(log)
    assert mix["weighted_share"].tolist() == pytest.approx(mix["share"].tolist())
    # read from the cache afterwards (no recomputation), and deterministic
    monkeypatch.setattr(probes, "weights_by_clip", lambda *a, **k: pytest.fail("recomputed despite the cache"))
    assert constant_weight(cfg, data, base, lam=0.5) == entry
    # other data content (same ids and shapes) gets its own entry
    other = PreEncoded(data.latents + 1.0, data.frame_mask, data.tokens, data.token_mask, data.seconds, data.manifest)
    monkeypatch.undo()
    assert constant_weight(cfg, other, base, lam=0.5)["key"] != entry["key"]
    assert len(json.loads(cache.read_text())) >= 2


def test_control_arms_need_their_inputs(world, tmp_path: Path):
    cfg, data, _ = world
    with pytest.raises(ValueError, match="needs a base model"):
        train_run(cfg, synth(6, "base"), tmp_path / "c", arm="constant", adapter=None, progress=False)
    plain = PreEncoded(data.latents, data.frame_mask, data.tokens, data.token_mask, data.seconds,
                       data.manifest.drop(columns="texture"))
    with pytest.raises(ValueError, match="texture"):
        train_run(cfg, plain, tmp_path / "o", arm="oracle_texture", progress=False)
    odd = PreEncoded(data.latents, data.frame_mask, data.tokens, data.token_mask, data.seconds,
                     data.manifest.assign(texture="drone"))
    with pytest.raises(ValueError, match="'drone'"):
        train_run(cfg, odd, tmp_path / "o2", arm="oracle_texture", progress=False)


def test_base_fingerprint_follows_the_weights_only(world, tmp_path: Path):
    import shutil

    base = world[2]
    a = base_fingerprint(base)
    copy = tmp_path / "b"
    for sub in ("transformer", "duration_embedder"):
        shutil.copytree(base / sub, copy / sub)
    assert base_fingerprint(copy) == a  # the same weights elsewhere, without the run's checkpoints and logs
    f = copy / "transformer" / "diffusion_pytorch_model.safetensors"
    raw = bytearray(f.read_bytes())
    raw[-1] ^= 1
    f.write_bytes(bytes(raw))
    assert base_fingerprint(copy) != a


def _grid_cfg(world, runs_dir: Path) -> Profile:
    """The world's profile in its own runs_dir (a copy of the base), a 4-run grid of 4 steps."""
    import shutil

    shutil.copytree(world[2], runs_dir / "base")
    return override(world[0], {"runs_dir": str(runs_dir), "finetune.steps": 4, "finetune.checkpoints": [2],
                               "finetune.arms": ["none", "eisbach_shuffle"], "finetune.seeds": [0, 1]})


@pytest.mark.slow  # spawns worker processes
def test_two_grid_workers_train_the_same_adapters_as_one(world, tmp_path: Path, one_torch_thread):
    one, two = _grid_cfg(world, tmp_path / "one"), _grid_cfg(world, tmp_path / "two")
    runs1 = run_grid(one, world[1], progress=False, workers=1)
    two = override(two, {"finetune.workers": 2})
    runs2 = run_grid(two, world[1], progress=False)  # the profile key: 2 spawned one-thread processes
    assert [r.name for r in runs1] == [r.name for r in runs2] == [i["run_dir"].name for i in grid_items(one)]
    for r1, r2 in zip(runs1, runs2):
        w1, w2 = final_weights(r1), final_weights(r2)
        assert w1.keys() == w2.keys() and all(torch.equal(w1[k], w2[k]) for k in w1), r1.name
        pd.testing.assert_frame_equal(read_log(r1, "samples").drop(columns="run"), read_log(r2, "samples").drop(columns="run"))
    w_none, w_shuffle = final_weights(runs1[0]), final_weights(runs1[1])
    assert any(not torch.equal(w_none[k], w_shuffle[k]) for k in w_none)  # the arms differ: equality is informative
    mtimes = {p: p.stat().st_mtime_ns for r in runs2 for p in r.rglob("*")}
    run_grid(two, world[1], progress=False)  # all finished: skipped, nothing rewritten
    assert {p: p.stat().st_mtime_ns for r in runs2 for p in r.rglob("*")} == mtimes


@pytest.mark.slow  # spawns worker processes
def test_a_failing_grid_worker_raises_naming_it_and_keeps_the_others(world, tmp_path: Path, one_torch_thread):
    cfg = override(_grid_cfg(world, tmp_path), {"finetune.workers": 2})
    items = grid_items(cfg)
    bad = items[1]["run_dir"]
    bad.mkdir(parents=True)
    (bad / "run.json").write_text(json.dumps({"arm": "eisbach", "seed": 99}))  # another run's folder: train_run refuses
    with pytest.raises(RuntimeError, match=r"worker grid 1/2 \(exit code 1\)"):
        run_grid(cfg, world[1], progress=False)
    assert (items[0]["run_dir"] / "done.json").exists() and (items[2]["run_dir"] / "done.json").exists()


def test_grid_workers_must_be_a_positive_integer(world):
    assert world[0].finetune.workers == 1
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="finetune.workers"):
            override(world[0], {"finetune.workers": bad})
