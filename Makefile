# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export ORT_DISABLE_TELEMETRY := 1

.PHONY: run test venv examples bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

examples: $(STAMP)
	$(PY) -m modelplex.cli examples --out examples/models --state-dir state

# Serves the examples under the elastic policy: the first start writes them and profiles them
# (quick preset, stored in ./state); later starts reuse both (`make examples` rewrites them).
run: $(STAMP)
	test -f examples/models/mlp/config.yaml || $(MAKE) examples
	$(PY) -m modelplex.cli serve --repository examples/models --state-dir state --policy elastic $(SERVE_ARGS)

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/run_serving.py

clean:
	rm -rf $(VENV) state examples/models
