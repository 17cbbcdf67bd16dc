#!/usr/bin/env bash
# MLServer in its own virtual environment, for benchmarks/datapath/run.py --mlserver VENV.
# MLServer 1.7.1 with ONNX Runtime (a custom runtime, mlserver_model.py) and uvloop 0.21 for its
# parallel inference workers. Usage: benchmarks/datapath/mlserver_setup.sh [VENV] (default .venv-mlserver)
set -euo pipefail
VENV="${1:-.venv-mlserver}"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "mlserver==1.7.1" "uvloop==0.21.*" "onnxruntime>=1.18,<2" "numpy<2.3"
"$VENV/bin/python" -c "import mlserver, onnxruntime, uvloop; print('mlserver', mlserver.__version__, 'uvloop', uvloop.__version__)"
