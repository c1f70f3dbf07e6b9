# densekit: `make demo` and `make test` do all the set-up on a fresh machine.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.densekit-installed
TASK    ?= all

.PHONY: demo test test-all lint bench clean-venv

$(STAMP): pyproject.toml tools/setup_env.sh
	VENV=$(VENV) bash tools/setup_env.sh
	@touch $@

demo: $(STAMP)
	$(VENV)/bin/densekit demo --task $(TASK)

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m "slow or not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) tools/benchmark.py all

clean-venv:
	rm -rf $(VENV)
