# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export ORT_DISABLE_TELEMETRY := 1

.PHONY: run test venv examples bench clean lock

# pyproject.toml declares compatible ranges; constraints.txt pins the tested set, so set-up is
# reproducible. `make lock` re-resolves the newest versions in the ranges and rewrites it.
# EXTRAS: cpu (onnxruntime) or gpu (onnxruntime-gpu), never both. The tests need torch (dev):
# constraints.txt pins the CPU build our machines carry (a newer torch from PyPI brings GBs of CUDA).
EXTRAS ?= cpu,dev
TORCH_PIN ?= torch==2.13.0
PIP_INSTALL = $(PY) -m pip install -q
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PIP_INSTALL) -c constraints.txt -e '.[$(EXTRAS)]'
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

lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q '$(TORCH_PIN)' && .lock-venv/bin/pip install -q '$(TORCH_PIN)' -e '.[cpu,dev]'
	{ sed -n 1,2p constraints.txt; .lock-venv/bin/pip freeze --exclude-editable | grep -v '^#' | sed 's/+cpu$$//'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .lock-venv

clean:
	rm -rf $(VENV) state examples/models
