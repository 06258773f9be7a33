# Two commands on a fresh machine:  make demo  (see it work)   make test  (prove it works)
VENV   ?= .venv
PYTHON ?= python3
BIN     = $(VENV)/bin

.PHONY: demo test lint unit install system-deps clean bench

# Two stamps: the demo needs only the package (seconds to install), the tests need the dev extra too
# (moto, selenium, mypy...). Each is redone when pyproject.toml changes.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed-base: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed-base
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed-dev

demo: $(VENV)/.installed-base
	$(BIN)/ordernotify demo

system-deps:
	bash scripts/system-deps.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -m "not integration"

test: install system-deps lint
	$(BIN)/pytest -n 3 --dist loadfile  # mostly waiting on brokers and servers: 3 workers, ~7 min

# Throughput/latency benchmark (bench/README.md): full run ~15 min; BENCH_ARGS=--quick for ~3 min.
bench: install system-deps
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) outbox preview *.egg-info
