# Two set-up commands (README): `make demo` and `make test`. Both are idempotent: they create
# .venv, install what is missing (apt packages when root), then run.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# constraints.txt pins torch==2.13.0; pip takes the CPU build only where one is offered (a local
# wheel, as on the build machine). Elsewhere PyPI's torch is the CUDA build: pass
# TORCH_INDEX=https://download.pytorch.org/whl/cpu to get 2.13.0+cpu instead.
TORCH_INDEX ?=
export TORCH_INDEX
TORCH_INDEX_ARG := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))

.PHONY: demo test wheel-check bench lint system-deps clean

$(STAMP): pyproject.toml constraints.txt
	@bash .ci/system-deps
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt $(TORCH_INDEX_ARG) -e ".[dev]"
	@touch $(STAMP)

system-deps:
	@bash .ci/system-deps

# the system packages are checked on every run (0.2 s; the stamp only follows the Python side)
demo: $(STAMP)
	@bash .ci/system-deps
	$(BIN)/eegmusic demo $(DEMO_ARGS)

# The default suite: every test but the opt-in `slow` ones and the wheel check, in TEST_WORKERS
# processes (pytest-xdist). The tests that keep real time (markers audio, gui, lsl, unless also marked
# untimed) run one at a time, all in one worker while the other runs the rest (tests/conftest.py, its
# scheduler for --dist load); each worker plays into its own PulseAudio sink and LSL session, and runs
# torch/BLAS on one thread. As root the real-time tests run at nice -5 and the rest at nice 10. Two
# workers: a third saved 1-1.5 minutes of 17, and two of its five runs lost a test to the load
# (README, "make test"). TEST_WORKERS=1: one process.
TEST_WORKERS ?= 2
TEST_PARALLEL := $(if $(filter 1,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist load)
# Bytecode is cached for the run (PYTHONDONTWRITEBYTECODE emptied; __pycache__ is git-ignored): with the
# variable set, as on the machines here, each worker compiled every test module again (collection 10.4 s
# against 5.5 s) and each of the suite's several hundred `eegmusic` child processes every module it loads.
test: $(STAMP)
	@bash .ci/system-deps
	PYTHONDONTWRITEBYTECODE= QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -m "not slow and not wheel" -q \
		$(TEST_PARALLEL) $(TEST_ARGS)

# The wheel check (tests/test_packaging.py, marker `wheel`): the wheel built from this tree, installed
# without -e into a fresh virtualenv (core, then [train]), runs --help of every command, simulate,
# train, evaluate and a 5-s headless decode of a replay. It takes 1.5 minutes on a quiet machine
# and 4-5 under load, so CI runs it as its own step after `make test` (.ci/run).
wheel-check: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -m wheel -q tests/test_packaging.py

bench: $(STAMP)
	$(BIN)/eegmusic bench --quick --out bench.json --overwrite

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache
