#!/usr/bin/env bash
# GPU validation of modelplex on one GPU, under 8 minutes, nothing fetched.
#   bash benchmarks/gpu/run.sh --probe-only     # short first device call: the sharing mechanisms
#   bash benchmarks/gpu/run.sh                  # everything (see benchmarks/gpu/gpu_validate.py)
#   bash benchmarks/gpu/run.sh --dry-run-cpu    # the same steps on a CPU with tiny models
# Results: $OUT/gpu_validation.json (OUT defaults to ./gpu_out). Wheels the host lacks go in
# benchmarks/gpu/wheels/ (installed with --no-index; at most 64 MB in all).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
export OUT=${OUT:-$PWD/gpu_out}
export ORT_DISABLE_TELEMETRY=1 PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"  # modelplex from this working tree, not installed
mkdir -p "$OUT"
if compgen -G "benchmarks/gpu/wheels/*.whl" > /dev/null; then
  echo "installing local wheels: $(ls benchmarks/gpu/wheels | tr '\n' ' ')"
  "$PY" -m pip install --quiet --no-index --no-deps benchmarks/gpu/wheels/*.whl \
    || echo "local wheels not installed (built for another Python?); the import check below names what is missing"
fi
"$PY" -c "import sys; print('python', sys.version.split()[0])"
command -v nvidia-smi > /dev/null && nvidia-smi -L || echo "nvidia-smi: not found"
timeout 470 "$PY" benchmarks/gpu/gpu_validate.py "$@" 2>&1 | tee "$OUT/run.log"
