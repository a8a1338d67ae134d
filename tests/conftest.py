"""Shared fixtures. The autouse `runs_untouched` (tests/runs_guard.py) fails the session if it changed
the user's runs/; `smoke_run` runs the smoke series once, in a temporary runs folder.

What several test modules share lives in modules beside this file, never in a test module: helpers.py
(tiny training data and profiles, a tiny listening study), series_run.py (profile copies, the smoke
series) and runs_guard.py. Test modules import them by name (`from helpers import synth`), as this file
does: tests/ has no __init__.py, so pytest's default "prepend" import mode puts tests/ at the front of
sys.path before it imports this file and each test module. No test module imports another, and no
test file edits sys.path (test_distributed.py's worker script, a separate process, says why it must)."""

import pytest
import torch

from runs_guard import runs_untouched  # noqa: F401  (autouse, session)
from series_run import SmokeRun, smoke_series


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread while a module's tests run (restored after): on a shared 2-core machine,
    two OpenMP threads wait on each other at every small op and make the tests several times slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def sa3_standin(tmp_path_factory):
    """A tiny random Stable Audio 3 directory in the diffusers layout (eisbach_lib.standin), built once."""
    from eisbach_lib.standin import build_standin

    return build_standin(tmp_path_factory.mktemp("sa3_standin") / "sa3", seed=0)


@pytest.fixture
def standin_profile(sa3_standin, tmp_path):
    """make(base_dir=None, overrides={"finetune.steps": 5}) -> path of a smoke-profile copy whose model.base_dir is the
    stand-in (or `base_dir`), with runs_dir under tmp_path."""
    from eisbach_lib.standin import standin_profile as write_profile

    def make(base_dir=None, overrides=None):
        return write_profile(base_dir or sa3_standin, tmp_path / "standin.yaml", tmp_path / "runs", overrides=overrides)

    return make


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> SmokeRun:
    """`eisbach reproduce` on a copy of the smoke profile whose runs_dir and figures_dir lie in a
    session temporary folder (never the user's runs/smoke), run once per session."""
    return smoke_series(tmp_path_factory.mktemp("smoke_series"))
