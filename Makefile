# densekit: `make demo` and `make test` do all the set-up on a fresh machine.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.densekit-installed
TASK    ?= all

.PHONY: demo test test-avx2 test-all lint bench clean-venv

$(STAMP): pyproject.toml setup.py tools/setup_env.sh
	VENV=$(VENV) bash tools/setup_env.sh
	@touch $@

demo: $(STAMP)
	$(VENV)/bin/densekit demo --task $(TASK)

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

# The numeric tests once more on the AVX2 kernels of oneDNN and ATen: tolerances must hold for
# every kernel family, not only for the CPU the suite was written on.
NUMERIC_TESTS := tests/layers/test_layers.py tests/necks/test_aspp.py tests/necks/test_jpu.py \
	tests/necks/test_fpn.py tests/necks/test_3d.py tests/heads/test_seg_heads.py tests/accel/test_policy.py \
	tests/test_registry_walk.py tests/windowed/test_engine.py tests/windowed/test_layouts.py

test-avx2: $(STAMP)
	ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 $(PY) -m pytest -q $(NUMERIC_TESTS)

test-all: $(STAMP)
	$(PY) -m pytest -q -m "slow or not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) tools/benchmark.py all

clean-venv:
	rm -rf $(VENV)
