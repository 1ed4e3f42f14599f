# The README's two commands:   make bench   |   make test
# Both create .venv (once), install the pinned CPU torch and the dev tools, build convkit._C with
# --no-build-isolation against that torch, then run the main benchmark / the test suite.
# Idempotent: a second run reuses .venv and rebuilds only when csrc/ or setup.py changed.
#   make test SYSTEM_TORCH=1   reuse the torch already installed for $(PYTHON) instead of installing one
#   make test PYTHON=python3.12 VENV=.venv312
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
SYSTEM_TORCH ?= 0
PY := $(VENV)/bin/python
export MAX_JOBS ?= 2
CSRC := $(wildcard csrc/*.cpp csrc/*.h csrc/cpu/*.cpp csrc/cpu/*.h csrc/cuda/*.cu csrc/cuda/*.cuh)

.PHONY: setup build test bench clean
setup: $(VENV)/.deps
build: $(VENV)/.built

$(VENV)/.deps: requirements-dev.txt
ifeq ($(SYSTEM_TORCH),1)
	$(PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -c "import torch; print('using the existing torch', torch.__version__)"
else
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH_SPEC)"
endif
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

$(VENV)/.built: $(VENV)/.deps setup.py pyproject.toml $(CSRC)
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .
	$(PY) -m convkit info
	touch $@

test: build
	@$(PY) -m pytest tests -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the suite is missing, treating as failure"; exit 1; fi; \
	exit $$rc

bench: build
	$(PY) -m convkit bench

clean:
	rm -rf build convkit/_C*.so *.egg-info $(VENV)
