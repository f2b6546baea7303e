# seedtune: `make demo` and `make test` on a fresh machine; each installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.seedtune-installed
PYTEST_ARGS ?=

.PHONY: setup demo demo-sim test test-fast bench lint clean

# Chromium for tests/test_card_page.py (the card page in a real browser): installed when
# absent and we are root with apt-get; never fatal (the test skips without it).
setup: $(STAMP)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	{ apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }; }; \
	} || echo "chromium not installed: tests/test_card_page.py will skip (apt-get install chromium)"

# torch first: the pinned wheel (CPU here), so nothing below pulls several GB of CUDA wheels.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

demo: setup
	$(VENV)/bin/seedtune demo

# the demo workspace's simulator again (its ports and keys), to keep working in .cache/demo
demo-sim: setup
	$(VENV)/bin/seedtune sim --workspace .cache/demo

# Everything, slow end-to-end DVC tests included. pytest exits 5 when a selection
# (PYTEST_ARGS="-k ...") matches no test: say so instead of failing obscurely.
test: setup
	@set +e; PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests for PYTEST_ARGS='$(PYTEST_ARGS)'"; \
	exit 1; fi; exit $$rc

test-fast: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

# BENCH: which benchmarks (default all), e.g. BENCH=scale; BENCH_SCALE: the scale bench's
# sizes in questions (default 200,800), e.g. make bench BENCH=scale BENCH_SCALE=1000,10000
BENCH ?=
BENCH_SCALE ?=
bench: setup
	BENCH_SCALE="$(BENCH_SCALE)" PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/run.py $(BENCH)

# ruff with line length 100 (pyproject.toml); CI runs it before the tests
lint: setup
	$(VENV)/bin/ruff check src stages tests bench

clean:
	rm -rf .cache .pytest_cache .ruff_cache bench/results.json
