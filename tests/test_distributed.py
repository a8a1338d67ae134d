"""Data parallelism is the same loop: `torchrun --nproc_per_node 2` (gloo, CPU) trains the same adapter as
one process, for a batch-coupled arm and for the differentiated one, up to a float32 reduction-order
tolerance derived below (never one machine's measured difference); a rank that drops its shard fails
the same comparison.

Why the two runs are not bit-identical, and how far apart they may be
---------------------------------------------------------------------
Both runs draw the same batches (checked exactly) and compute the same sums, in another order: one
process sums a weight gradient over all K = batch × frames rows in one matrix product; two processes
each sum their half, and the all-reduce adds the halves. A sum of K float32 terms a_k is exact to
γ_K·Σ|a_k| with γ_K ≈ K·u, u = 2⁻²⁴ (Higham, Accuracy and Stability of Numerical Algorithms, §4.2),
whatever the order; so two orders differ by at most about that. For terms of mixed sign the errors
add like a random walk (√K·u·Σ|a_k|) while Σ|a_k| ≈ √K·|Σa_k|: relative to the gradient the error is
about K·u either way.

The barrier arms amplify one more rounding: w = (1 − h + 1e−6)^λ, so δw/w = λ·δh/(1 − h). The
entropy h sums F frames, δh ≤ F·u, and on flat clips 1 − h can be small: the per-sample weight and
with it the gradient then carry a relative error λ·F·u/(1 − h). The test reads the smallest 1 − h
of the run's own log, so the tolerance follows the data the run saw.

AdamW's update lr·m̂/(√v̂ + ε) is invariant to the gradient's scale: to first order its relative error
is the gradient's. Over T steps the errors add, at most T times the per-step error relative to the
total movement ‖θ_T − θ_0‖ (T covers updates that partly cancel and the feedback of a parameter
difference into later gradients, which is second order at these learning rates). So

    ‖θ_2proc − θ_1proc‖ ≤ ρ·‖θ_1proc − θ_0‖,   ρ = T·(K·u + λ·F·u / min(1 − h))

compared as norms over all adapter weights: an element whose gradient is itself at its rounding
floor can flip the sign of its first Adam step (a step of ±lr), which an element-wise tolerance would
have to allow for every element, hiding real differences; in the norm it is one element of thousands.

A real bug moves the adapter by the order of the movement itself: a rank that drops its shard trains
on half of each batch, ‖Δθ‖/‖θ − θ_0‖ = O(1). The bound must stay far below that (asserted), and
`test_a_rank_that_drops_its_shard_fails_the_comparison` shows that such a run fails it.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from eisbach_lib.models import adapter_state_dict, add_adapter, load_base
from eisbach_lib.runs import read_log
from eisbach_lib.train import pretrain, stream_seed, train_run
from helpers import T as FRAMES, synth, tiny_cfg

pytestmark = pytest.mark.slow  # the slow tier: make test-all, CI

#: float32 unit roundoff (half the machine epsilon)
U32 = torch.finfo(torch.float32).eps / 2
#: the derived bound must stay this far below the O(1) movement a real bug causes (a dropped shard
#: removes half of each batch's gradient), else the comparison could not see one
DETECTABLE = 0.25

#: one rank of two; DROP_SHARD=True simulates a bug: rank 1 weighs its shard's samples by 0 (its
#: gradient is zero; the all-reduce averages rank 0's half-batch gradient with nothing).
#: The worker is a plain script that torchrun starts from a temporary folder: its sys.path[0] is that
#: folder, and pytest's insertion of tests/ does not reach a child process. So the script itself puts
#: tests/ (for helpers.py) and this checkout (its eisbach_lib, not whichever one the venv installed)
#: in front; it is the one place in the tests that sets sys.path.
WORKER = textwrap.dedent("""
    import os, sys
    sys.path[:0] = [{tests!r}, {repo!r}]
    import torch
    import eisbach_lib.train as train
    from helpers import synth, tiny_cfg
    if {drop_shard!r} and os.environ["RANK"] == "1":
        weighted_loss = train.weighted_loss
        train.weighted_loss = lambda w, per_sample: weighted_loss(torch.zeros_like(w), per_sample)
    cfg = tiny_cfg({runs!r})
    train.train_run(cfg, synth(10, "finetune", seed=2), {out!r}, arm={arm!r}, seed=0, adapter="dora", progress=False)
""")


def reduction_tolerance(steps: int, batch: int, frames: int, lam: float, min_gap: float | None) -> float:
    """ρ = T·(K·u + λ·F·u / min(1 − h)), K = batch × frames: the largest ‖Δθ‖ / ‖θ − θ_0‖ that a change
    of float32 summation order can explain after `steps` AdamW steps (module docstring). `min_gap` is
    the smallest 1 − h the run logged (None: the arm has no barrier)."""
    per_step = batch * frames * U32
    if min_gap is not None:
        per_step += lam * frames * U32 / (min_gap + 1e-6)  # the barrier's own +1e-6 floor
    return steps * per_step


def relative_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor],
                        init: dict[str, torch.Tensor]) -> float:
    """‖b − a‖ / ‖a − init‖ over all adapter tensors together."""
    assert a.keys() == b.keys() == init.keys()
    diff = torch.cat([(b[k] - a[k]).flatten() for k in a])
    moved = torch.cat([(a[k] - init[k]).flatten() for k in a])
    assert moved.norm() > 0, "the adapter did not move"
    return float(diff.norm() / moved.norm())


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny pretrained base (shared by every case), the profile, the fine-tuning data and θ_0, the
    adapter as train_run initialises it (add_adapter with the run seed's "adapter" stream)."""
    root = tmp_path_factory.mktemp("distributed")
    cfg = tiny_cfg(root / "runs")
    base = pretrain(cfg, synth(10, "base", seed=1), progress=False)
    hp = cfg.finetune
    init = adapter_state_dict(add_adapter(load_base(base), "dora", hp.rank, hp.alpha, seed=stream_seed(0, "adapter")))
    return root, cfg, hp, init


def _one_process(world, arm: str) -> Path:
    root, cfg, _, _ = world
    return train_run(cfg, synth(10, "finetune", seed=2), root / f"one_{arm}", arm=arm, seed=0, progress=False)


def _two_processes(world, arm: str, drop_shard: bool = False) -> Path:
    root = world[0]
    out = root / f"two_{arm}{'_dropped' if drop_shard else ''}"
    script = root / f"{out.name}.py"
    script.write_text(WORKER.format(tests=str(Path(__file__).parent), repo=str(Path(__file__).parent.parent),
                                    runs=str(root / "runs"), out=str(out), arm=arm, drop_shard=drop_shard))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def _compare(world, one: Path, two: Path, arm: str) -> tuple[float, float]:
    """(‖Δθ‖ / ‖θ − θ_0‖, its derived tolerance ρ) of a two-process run against the one-process run,
    after checking that both drew the same batches."""
    _, _, hp, init = world
    la, lb = read_log(one, "samples"), read_log(two, "samples")
    assert la[["step", "id", "t", "noise_sum"]].equals(lb[["step", "id", "t", "noise_sum"]])  # the same batches
    min_gap = None if arm == "none" else float((1 - la["h"]).min())
    rho = reduction_tolerance(int(hp.steps), int(hp.batch_size), FRAMES, float(hp.lam), min_gap)
    assert rho < DETECTABLE, f"the derived tolerance {rho:.3g} could not tell a dropped shard from rounding"
    a = load_file(str(one / "adapter_model.safetensors"))
    b = load_file(str(two / "adapter_model.safetensors"))
    return relative_difference(a, b, init), rho


@pytest.mark.parametrize("arm", ["eisbach_shuffle", "eisbach_grad"])
def test_two_processes_train_the_same_adapter_as_one(world, arm):
    one, two = _one_process(world, arm), _two_processes(world, arm)
    a = load_file(str(one / "adapter_model.safetensors"))
    assert any(k.endswith("lora_B.weight") and a[k].abs().max() > 0 for k in a)  # the adapter did train
    diff, rho = _compare(world, one, two, arm)
    assert diff <= rho, f"{arm}: ‖θ_2 − θ_1‖ / ‖θ_1 − θ_0‖ = {diff:.3g} > the float32 reduction bound {rho:.3g}"
    # the logged weights: each is a function of the parameters, whose relative error ρ bounds; plus the
    # step's own barrier rounding, already a term of ρ
    wa = torch.tensor(read_log(one, "samples")["w"].to_numpy())
    wb = torch.tensor(read_log(two, "samples")["w"].to_numpy())
    torch.testing.assert_close(wb, wa, rtol=rho, atol=0.0)


def test_a_rank_that_drops_its_shard_fails_the_comparison(world):
    """The check can fail: rank 1 weighs its half of every batch by 0 (a lost shard). Done on
    eisbach_grad, the arm whose derived tolerance is the loosest."""
    arm = "eisbach_grad"
    one, bad = _one_process(world, arm), _two_processes(world, arm, drop_shard=True)
    diff, rho = _compare(world, one, bad, arm)
    assert diff > rho, f"a dropped shard went unseen: {diff:.3g} <= {rho:.3g}"
