# Two set-up-free entry points: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-quick lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/syncd demo

# promtool for the alert rules' test, from Debian's package (monitoring/get-promtool)
$(BIN)/promtool: | $(STAMP)
	sh monitoring/get-promtool $(BIN) || echo "promtool unavailable: tests/unit/test_monitoring.py skips its promtool test outside CI"

# Four xdist workers on two cores: most of the suite waits (sockets, daemons in subprocesses,
# real-time windows), so more workers than cores fill the gaps. One file per worker at a time
# (module fixtures such as the demo story run once); tests/conftest.py puts the long runs first.
PARALLEL := -n 4 --dist loadfile --no-loadscope-reorder

test: $(STAMP) $(BIN)/promtool
	.ci/install-postgresql
	$(BIN)/ruff check syncd tests bench
	$(BIN)/python -m pytest -q $(PARALLEL)

test-quick: $(STAMP)
	.ci/install-postgresql
	$(BIN)/python -m pytest -q $(PARALLEL) -m 'not crash and not slow'

lint: $(STAMP)
	$(BIN)/ruff check syncd tests bench

bench: $(STAMP)
	$(BIN)/python bench/daemon_scale.py
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/api_calls.py
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/webhook_latency.py
	$(BIN)/python bench/retention.py
	$(BIN)/python bench/replay.py
	$(BIN)/python bench/failover.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
