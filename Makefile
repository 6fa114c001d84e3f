# The two commands of the README: `make demo` (set up, then replay a drifting benchmark) and `make test`.
#
# torch is installed first, pinned, from PyTorch's CPU wheel index (PyPI's Linux build is the multi-GB CUDA one):
#   make setup                                                   CPU build (the default)
#   make setup TORCH_INDEX=https://download.pytorch.org/whl/cu128  a CUDA build from PyTorch's index
#   make setup TORCH_INDEX=                                      PyPI's own build (CUDA on Linux)
#   make setup PYTHON=python3.13                                 another interpreter (3.11 to 3.13)
# The index is an extra one, asked for torch alone (its dependencies come with the package's, from PyPI): the local
# version 2.13.0+cpu ranks above PyPI's 2.13.0, so pip takes the CPU wheel; where that index cannot be reached, pip
# warns and takes torch from the indexes and wheel folders it is configured with.
PYTHON ?= $(firstword $(foreach p,python3.11 python3.12 python3.13,$(if $(shell command -v $(p)),$(p))) python3)
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
BIN := $(VENV)/bin

.PHONY: setup demo test test-all

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-deps torch==$(TORCH_VERSION) $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: setup
	$(BIN)/stream-moe replay --stream sea_g --n 100000 --out results/demo

test: setup
	$(BIN)/python -m pytest

test-all: setup
	$(BIN)/python -m pytest -m ''
