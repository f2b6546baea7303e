# seedtune: `make demo` and `make test` on a fresh machine; each installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.seedtune-installed
SERVERS_STAMP := $(VENV)/.seedtune-servers-installed
PYTEST_ARGS ?=

.PHONY: setup servers demo demo-sim test test-fast bench lint deps deps-check clean

# Chromium for tests/test_card_page.py (the card page in a real browser): installed when
# absent and we are root with apt-get; never fatal (the test skips without it).
setup: $(STAMP)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	{ apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }; }; \
	} || echo "chromium not installed: tests/test_card_page.py will skip (apt-get install chromium)"

# torch first: the pinned wheel (CPU here), so nothing below pulls several GB of CUDA wheels.
$(STAMP): pyproject.toml sandbox/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]" -e ./sandbox
	@touch $(STAMP)

# The real OpenAI-compatible servers of tests/test_real_servers.py, all from PyPI (see
# tests/realservers.py): llama-cpp-python's server (pip builds llama.cpp from source once,
# ~10 min on 2 cores, then reuses its cached wheel), transformers serve, llama.cpp's own
# llama-server (built with cmake into ~/.cache/seedtune once per version) and a litellm
# proxy (a venv of its own there). cmake and g++ come from apt-get when absent and we are root.
servers: $(SERVERS_STAMP)

$(SERVERS_STAMP): $(STAMP) tests/realservers.py
	@{ command -v cmake >/dev/null && command -v g++ >/dev/null; } || \
	{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	{ apt-get install -y -q cmake g++ || { apt-get update -q && apt-get install -y -q cmake g++; }; }; \
	} || echo "cmake/g++ not installed: llama-server cannot be built (apt-get install cmake g++)"
	$(PY) -m pip install -q "$(TORCH)" -e ".[dev,servers]" -e ./sandbox
	$(PY) tests/realservers.py build
	@touch $@

demo: setup
	$(VENV)/bin/seedtune demo

# the demo workspace's simulator again (its ports and keys), to keep working in .cache/demo
demo-sim: setup
	$(VENV)/bin/seedtune sim --workspace .cache/demo

# Everything, slow end-to-end DVC tests and the real servers included. The servers are built
# first; a build that fails (no compiler, a registry hiccup) is reported and their tests skip
# with the reason, so one toolchain problem does not hide the rest of the suite; once built,
# a server that cannot be started fails its tests. pytest exits 5 when a selection
# (PYTEST_ARGS="-k ...") matches no test: say so instead of failing obscurely.
test: setup
	@$(MAKE) --no-print-directory servers || echo "make servers failed: the real-server tests skip (see above)"
	@set +e; if [ -f $(SERVERS_STAMP) ]; then export SEEDTUNE_REAL_SERVERS=require; fi; \
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests for PYTEST_ARGS='$(PYTEST_ARGS)'"; \
	exit 1; fi; exit $$rc

test-fast: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

# BENCH: which benchmarks (default all), e.g. BENCH=scale; BENCH_SCALE: the scale bench's
# sizes in questions (default 100,400), e.g. make bench BENCH=scale BENCH_SCALE=1000,10000
BENCH ?=
BENCH_SCALE ?=
bench: setup
	BENCH_SCALE="$(BENCH_SCALE)" PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/run.py $(BENCH)

# What CI checks before the tests (the same hooks as .pre-commit-config.yaml): ruff's
# lint and format (line length 100, pyproject.toml), mypy over core and llm, and that
# dvc.yaml's generated code deps are current (make deps rewrites them).
LINT_PATHS := src stages tests bench sandbox tools
lint: setup
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy
	$(PY) tools/pipeline_deps.py --check

# dvc.yaml's generated parts (each stage's code deps: its import closure and prompt
# templates; the card's params; the summary's sources): rewrite them, or check them (exit 1
# with a one-line summary when stale; tests/test_layout.py runs the check)
deps: setup
	$(PY) tools/pipeline_deps.py

deps-check: setup
	$(PY) tools/pipeline_deps.py --check

clean:
	rm -rf .cache .pytest_cache .ruff_cache bench/results.json
