"""Data parallelism is the same loop: `torchrun --nproc_per_node 2` (gloo, CPU) trains the same adapter as
one process, for a batch-coupled arm and for the differentiated one."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from eisbach_lib.train import pretrain, read_log, train_run

sys.path.insert(0, str(Path(__file__).parent))
from test_train import synth, tiny_cfg  # noqa: E402

WORKER = textwrap.dedent("""
    import sys
    sys.path[:0] = [{tests!r}, {repo!r}]
    from test_train import synth, tiny_cfg
    from eisbach_lib.train import train_run
    cfg = tiny_cfg({runs!r})
    train_run(cfg, synth(10, "finetune", seed=2), {out!r}, arm={arm!r}, seed=0, adapter="dora", progress=False)
""")


@pytest.mark.parametrize("arm", ["eisbach_shuffle", "eisbach_grad"])
def test_two_processes_train_the_same_adapter_as_one(tmp_path, arm):
    cfg = tiny_cfg(tmp_path / "runs")
    pretrain(cfg, synth(10, "base", seed=1), progress=False)
    one = train_run(cfg, synth(10, "finetune", seed=2), tmp_path / "one", arm=arm, seed=0, progress=False)

    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(Path(__file__).parent), runs=str(tmp_path / "runs"),
                                    out=str(tmp_path / "two"), arm=arm,
                                    repo=str(Path(__file__).parent.parent)))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]

    a, b = load_file(str(one / "adapter_model.safetensors")), load_file(str(tmp_path / "two" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    assert any(k.endswith("lora_B.weight") and a[k].abs().max() > 0 for k in a)  # the adapter did train
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5, msg=k)
    la, lb = read_log(one, "samples"), read_log(tmp_path / "two", "samples")
    assert la[["step", "id", "t", "noise_sum"]].equals(lb[["step", "id", "t", "noise_sum"]])  # the same batches
    torch.testing.assert_close(torch.tensor(lb["w"].to_numpy()), torch.tensor(la["w"].to_numpy()), rtol=1e-3, atol=1e-5)
