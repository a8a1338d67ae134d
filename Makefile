# Eisbach reproduction bundle. `make reproduce` = the main job (cpu profile); `make test` = the tests.
PROFILE ?= cpu
PYTHON  ?= python3
SHARD   ?= 0/1

.PHONY: install reproduce test corpus pretrain grid generate evaluate bench clean-smoke strip

# torch: keep an existing build (e.g. CUDA) untouched; otherwise take the CPU wheel 2.13.0.
install:
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install -q torch==2.13.0
	@$(PYTHON) -c "import ctypes.util, sys; sys.exit(ctypes.util.find_library('fluidsynth') is None)" || \
	  { command -v apt-get >/dev/null && (apt-get update -qq && apt-get install -y -qq libfluidsynth3 >/dev/null) || \
	    echo "FluidSynth is missing: install libfluidsynth3 (Debian) or conda-forge fluidsynth"; }
	$(PYTHON) -m pip install -q -e ".[dev]"

reproduce: install
	eisbach reproduce --profile $(PROFILE)

test: install
	$(PYTHON) -m pytest -q

corpus pretrain generate evaluate: install
	eisbach $@ --profile $(PROFILE)

grid: install
	eisbach grid --profile $(PROFILE) --shard $(SHARD)

bench: install
	$(PYTHON) benchmarks/bench_train.py --rounds 2
	$(PYTHON) benchmarks/bench_decode.py --out benchmarks/results/decode.md
	$(PYTHON) benchmarks/bench_metrics.py
	$(PYTHON) benchmarks/bench_calibration.py

strip:
	nbstripout notebooks/*.ipynb
