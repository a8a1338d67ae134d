"""The notebooks open with the project's kernel, and papermill still runs them anywhere.

JupyterLab starts the kernel a notebook's metadata names when that kernel exists, without asking;
`make lab` registers exactly that name ("eisbach") in the environment. `eisbach reproduce` runs the
notebooks headless on ipykernel's own "python3" (series.SERIES_KERNEL) instead, given to papermill
explicitly: a fresh machine or CI has no "eisbach" kernel. The notebooks stay committed without
outputs."""

import json
import os
import re
import sys
from pathlib import Path

import pytest

from eisbach_lib import series
from eisbach_lib.config import load_profile
from series_run import profile_copy

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _makefile_kernel() -> str:
    """The kernel name `make lab` registers (KERNEL := ... in the Makefile, used by its lab target)."""
    text = (REPO / "Makefile").read_text()
    name = re.search(r"^KERNEL\s*:?=\s*(\S+)", text, re.M).group(1)
    lab = re.search(r"^lab:.*?(?=^\S)", text, re.M | re.S).group(0)
    assert "ipykernel install --sys-prefix --name $(KERNEL)" in lab  # registered in the environment
    assert re.search(r"echo \"registered Jupyter kernel '\$\(KERNEL\)'", lab)  # and says so
    return name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_names_the_project_kernel_and_has_no_outputs(path):
    nb = json.loads(path.read_text())
    spec = nb["metadata"]["kernelspec"]
    assert spec["name"] == _makefile_kernel() and spec["language"] == "python"
    assert spec["display_name"] == "Eisbach (.venv)"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)


def test_series_kernel_is_not_the_notebooks_and_exists_here():
    """papermill gets a kernel that every environment with ipykernel has, started with this Python."""
    from jupyter_client.kernelspec import KernelSpecManager

    assert series.SERIES_KERNEL != _makefile_kernel()
    spec = KernelSpecManager().get_kernel_spec(series.SERIES_KERNEL)
    # jupyter_client replaces a bare "python" with sys.executable when it starts the kernel
    assert spec.argv[0] in ("python", f"python{sys.version_info[0]}", sys.executable), spec.argv


def test_reproduce_passes_the_series_kernel_to_papermill(tmp_path, monkeypatch):
    import papermill

    calls = []
    for key in (*series.KERNEL_ENV, "PYTHONPATH"):  # run_series sets them for its kernels: restored after
        monkeypatch.setenv(key, os.environ.get(key, ""))
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **kw: calls.append(kw))
    profile = profile_copy(tmp_path / "smoke.yaml", tmp_path / "runs")
    series.run_series(str(profile), load_profile(str(profile)), first=0, last=1)
    assert [c["kernel_name"] for c in calls] == [series.SERIES_KERNEL] * 2
    assert all(c["parameters"] == {"profile": str(profile)} for c in calls)
