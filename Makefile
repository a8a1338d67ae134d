# Eisbach reproduction bundle. `make reproduce` = the main job (cpu profile); `make test` = the tests.
PROFILE ?= cpu
PYTHON  ?= python3
SHARD   ?= 0/1
VENV    ?= .venv

# The Python environment. An active virtualenv (VIRTUAL_ENV) or conda env (CONDA_PREFIX, e.g. from
# environment.yml) is used as it is, through $(PYTHON). Otherwise the project venv $(VENV) is made
# from $(PYTHON) and used; Debian's system python3 (PEP 668, externally managed) needs exactly this.
# torch: when $(PYTHON) already imports torch (a CUDA build, say), the venv is made with
# --system-site-packages so that torch is seen and kept, never replaced; otherwise the venv gets
# torch==2.13.0, the CPU wheel. NO_VENV=1 installs into $(PYTHON) itself (a container's python).
ifneq ($(strip $(VIRTUAL_ENV)$(CONDA_PREFIX)$(NO_VENV)),)
  PY       := $(PYTHON)
  ENV_DIR  := $(or $(VIRTUAL_ENV),$(CONDA_PREFIX),.)
  ENV_NAME := $(notdir $(or $(VIRTUAL_ENV),$(CONDA_PREFIX),$(PYTHON)))
  MAKE_ENV :=
else
  PY       := $(VENV)/bin/python
  ENV_DIR  := $(VENV)
  ENV_NAME := $(VENV)
  MAKE_ENV := $(VENV)/bin/python
endif
# `make install` does its work again only when pyproject.toml changed (or the stamp is removed)
STAMP := $(ENV_DIR)/.eisbach-installed

# Debian packages: FluidSynth (renders the corpus), the venv module (Debian splits it off), and
# Chromium + its driver (the browser tests). Installed with apt-get when run as root; otherwise the
# exact command is printed.
APT_BROWSER := chromium chromium-driver

.PHONY: install apt browser-deps reproduce report test test-all lab corpus pretrain grid generate anatomy dynamics evaluate bench clean-smoke strip

install: $(STAMP)

$(STAMP): pyproject.toml | $(MAKE_ENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	@$(PY) -c "import ctypes.util, sys; sys.exit(ctypes.util.find_library('fluidsynth') is None)" || \
	  $(MAKE) --no-print-directory apt PKGS=libfluidsynth3 WHY="FluidSynth renders the chamber corpus"
	$(PY) -m pip install -q -e ".[dev]"
	@# a --system-site-packages venv sees the base Python's widget package but not its JupyterLab
	@# extension (data files live under the base prefix): without it widgets do not render in `make lab`
	@$(PY) -c "import sys, pathlib; sys.exit(not pathlib.Path(sys.prefix, 'share/jupyter/labextensions/@jupyter-widgets/jupyterlab-manager').exists())" || \
	  $(PY) -m pip install -q --force-reinstall --no-deps jupyterlab_widgets
	@$(PY) -c "import torch; print(f'environment ready: $(ENV_NAME), python', __import__('sys').version.split()[0], ', torch', torch.__version__)"
	@touch $@

$(VENV)/bin/python:
	@$(PYTHON) -c "import sys; sys.exit(sys.version_info < (3, 10))" || { echo "$(PYTHON) is older than 3.10: pass PYTHON=python3.11 (or newer)"; exit 1; }
	@$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || \
	  $(MAKE) --no-print-directory apt PKGS="$$($(PYTHON) -c 'import sys; print(f"python3.{sys.version_info[1]}-venv")')" WHY="$(PYTHON) -m venv needs it"
	@if $(PYTHON) -c "import torch" 2>/dev/null; then \
	  echo "$(PYTHON) has torch $$($(PYTHON) -c 'import torch; print(torch.__version__)'): making $(VENV) with --system-site-packages to keep it"; \
	  $(PYTHON) -m venv --system-site-packages $(VENV); \
	else \
	  echo "making $(VENV) from $(PYTHON) (no torch there: the venv gets torch 2.13.0, CPU)"; \
	  $(PYTHON) -m venv $(VENV); \
	fi

# make apt PKGS="a b" WHY="...": install the Debian packages (root) or say how, and fail
apt:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "apt-get install $(PKGS) ($(WHY))"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(PKGS) >/dev/null; \
	else \
	  echo "missing: $(PKGS) ($(WHY)). Install it with:  sudo apt-get install -y $(PKGS)"; \
	  echo "(conda: conda install -c conda-forge fluidsynth for FluidSynth)"; exit 1; \
	fi

browser-deps:
	@command -v chromium >/dev/null || $(MAKE) --no-print-directory apt PKGS="$(APT_BROWSER)" WHY="the browser tests" || \
	  echo "without chromium the browser tests are skipped (they fail under CI=true)"

reproduce: install
	$(PY) -m eisbach_lib.cli reproduce --profile $(PROFILE)

report: install
	$(PY) -m eisbach_lib.cli report --profile $(PROFILE)

# two tiers: `make test` the fast one (every unit and known-answer test, under 2 minutes on 2 cores:
# TEST_WORKERS pytest-xdist processes, one test module each at a time, since most of a module's time is
# one process's imports and its module fixtures); `make test-all` adds the slow tier (the papermill
# series, the CLI chain, the two-process run, the browser tests: tests marked `slow`) in one process,
# as CI runs it (.ci/run): those tests time themselves and start worker processes of their own
TEST_WORKERS ?= 2
test: install
	$(PY) -m pytest -q -m "not slow" -n $(TEST_WORKERS) --dist loadfile

test-all: install browser-deps
	$(PY) -m pytest -q --durations=15

# JupyterLab on 127.0.0.1 with the project's kernel, registered as KERNEL ("Eisbach ($(ENV_NAME))") in the
# environment: the notebooks' metadata name that kernel, so JupyterLab starts it without asking
# (`eisbach reproduce` runs them on ipykernel's python3 instead: a fresh machine has no "eisbach")
KERNEL := eisbach
lab: install
	@$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Eisbach ($(ENV_NAME))"
	@echo "registered Jupyter kernel '$(KERNEL)' (\"Eisbach ($(ENV_NAME))\", $$($(PY) -c 'import sys; print(sys.executable)')): the notebooks open with it"
	$(PY) -m jupyterlab --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=$(CURDIR) $$([ "$$(id -u)" = 0 ] && echo --allow-root) notebooks/00_corpus.ipynb

corpus pretrain generate anatomy dynamics evaluate: install
	$(PY) -m eisbach_lib.cli $@ --profile $(PROFILE)

grid: install
	$(PY) -m eisbach_lib.cli grid --profile $(PROFILE) --shard $(SHARD)

bench: install
	$(PY) benchmarks/bench_train.py --rounds 2
	$(PY) benchmarks/bench_decode.py --out benchmarks/results/decode.md
	$(PY) benchmarks/bench_metrics.py
	$(PY) benchmarks/bench_calibration.py

clean-smoke:
	rm -rf runs/smoke

strip: install
	$(PY) -m nbstripout notebooks/*.ipynb
