# Two commands on a fresh machine; each builds the virtual environment it needs.
#   make reproduce   the main job: verify every VJP, the worked numbers, the experiments
#   make test        the test suite (offline, under 10 minutes on 2 cores)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= quick
# Real datasets: a folder with mnist/ and cifar10/ (the shared folder when it sits beside the clone).
HW_DATA_DIR ?= $(firstword $(wildcard ../shared/data))
export HW_DATA_DIR

.PHONY: reproduce test verify paper bench gpu-check clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $@

# PyTorch's CPU-only wheel comes from its own index (the default index serves the CUDA
# build with gigabytes of NVIDIA packages); TORCH_INDEX overrides it. When that index is
# unreachable, the same pinned version comes from the default index (the CUDA build there).
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_VERSION ?= 2.13.0
$(BIN)/.installed-bench: $(BIN)/.installed
	$(BIN)/pip install -q --index-url $(TORCH_INDEX) torch==$(TORCH_VERSION) \
	  || $(BIN)/pip install -q torch==$(TORCH_VERSION)
	touch $@

reproduce: $(BIN)/.installed
	$(BIN)/hw reproduce --profile $(PROFILE)

test: $(BIN)/.installed
	$(BIN)/python -m pytest -n 2 -q

verify: $(BIN)/.installed
	$(BIN)/hw verify

paper: $(BIN)/.installed
	$(BIN)/hw paper

# The MNIST models and the CIFAR-10 nets (q6_1, q6_2) in one run, one report and chart.
BENCH_MODELS ?= q4_4,q5_3,q5_4,q6_1,q6_2
bench: $(BIN)/.installed-bench
	$(BIN)/python -m benchmarks.run --models $(BENCH_MODELS)

# The prepared GPU check (8 minutes on one GPU): writes docs/results/gpu.md and gpu.json.
gpu-check: $(BIN)/.installed
	$(BIN)/python -m benchmarks.gpu_check

clean:
	rm -rf $(VENV) results
