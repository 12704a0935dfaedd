# Two commands do everything (see README):  make lab   and   make test
# Both create .venv on first use and install the project into it; later runs reuse it.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: lab test test-portable bench bench-quick setup clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-test.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt -r requirements-test.txt
	# The book's own package, for the side-by-side benchmarks; --no-deps, as it would pull TensorFlow.
	$(BIN)/python -m pip install --no-deps llms-from-scratch==1.0.19
	$(BIN)/python -m pip install --no-deps -e .
	touch $(STAMP)

# Jupyter refuses to run as root unless told; containers often run as root.
LAB_ARGS ?= $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

lab: setup
	$(BIN)/jupyter lab $(LAB_ARGS) notebooks/

# The whole suite: unit tests, widget tests and every notebook under nbval, in the smoke profile.
test: setup
	LLM_PROFILE=$${LLM_PROFILE:-smoke} $(BIN)/python -m pytest

# The notebooks once more on another arithmetic path: ATen's scalar kernels instead of AVX2/AVX-512,
# MKL's reproducible mode, one thread. Each changes the last bits of float32 results, as another
# CPU would; a checked output that depends on them fails here rather than on a student's laptop.
PORTABLE_ENV = ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE OMP_NUM_THREADS=1

# Not rerun, to keep CI under its 20 minutes: notebooks whose checked cells print no float
# from torch's kernels (01 and 08 print ids, counts and text; 09 prints pandas statistics and
# one cross-entropy of three two-logit rows to four digits, which no arithmetic path changes).
PORTABLE_SKIP = --ignore=notebooks/01_tokenizing.ipynb \
	--ignore=notebooks/08_finetuning_for_classification.ipynb \
	--ignore=notebooks/09_finetuning_to_follow_instructions.ipynb

test-portable: setup
	$(PORTABLE_ENV) LLM_PROFILE=$${LLM_PROFILE:-smoke} $(BIN)/python -m pytest notebooks/ $(PORTABLE_SKIP)

# Side-by-side benchmarks against the book's code and transformers (see benchmarks/).
bench: setup
	$(BIN)/python benchmarks/run_all.py --output benchmarks/results.md

bench-quick: setup
	$(BIN)/python benchmarks/run_all.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
