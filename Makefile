# RecIS developer commands. Every target sets up .venv on first use.
#   make demo   train a small model on generated data
#   make test   lint + the whole test suite (CPU; tests/gpu on the host stand-in for CuPy)
#   make test-gpu  tests/gpu on a real GPU (GPU_EXTRAS=cuda12 or cuda13)
#   make bench  benchmarks (JSON on stdout)
#
# torch is installed from TORCH_SPEC. The default is the CPU build that ships on our CI machines;
# for a CUDA build pass e.g.  make test TORCH_SPEC="torch==2.13.0 --index-url <your CUDA wheel index>"

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= test,jax,bench,monitor,examples
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(EXTRAS)

.PHONY: demo test test-gpu lint format bench bench-deps clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

# DeepFM on 500k generated Criteo-shaped rows, two passes, on CPU (a fresh run each time)
demo: $(STAMP)
	rm -rf runs/demo
	$(BIN)/python -m examples.deepfm.train --output_dir runs/demo --rows 500000 --steps 250 --log_steps 25

# tests/gpu runs in a process of its own, on the host stand-in for CuPy (tests/cupy_standin)
test: $(STAMP) lint
	$(BIN)/python -m pytest --doctest-modules recis tests -q --ignore=tests/gpu
	$(BIN)/python -m pytest tests/gpu -q --cupy-standin

# the GPU tests on real CuPy and a GPU; needs only a CuPy extra and pytest (the torch and JAX
# tests skip, saying so, where those frameworks or their CUDA builds are missing)
GPU_EXTRAS ?= cuda12
GPU_STAMP := $(VENV)/.installed-gpu-$(GPU_EXTRAS)
$(GPU_STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[$(GPU_EXTRAS)]" "pytest>=8"
	touch $(GPU_STAMP)

test-gpu: $(GPU_STAMP)
	$(BIN)/python -m pytest tests/gpu -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: bench-deps
	$(BIN)/python benchmarks/hashtable.py
	$(BIN)/python benchmarks/features.py
	$(BIN)/python benchmarks/io.py
	$(BIN)/python benchmarks/train_cpu.py
	$(BIN)/python benchmarks/distributed.py
	$(BIN)/python -m benchmarks.export

# TorchRec's CPU build for the training benchmark (its default dependency is a CUDA build)
bench-deps: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps torchrec==1.8.0 fbgemm-gpu-cpu==1.8.0
	$(BIN)/python -m pip install --quiet pyre-extensions tensordict torchmetrics tqdm

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
