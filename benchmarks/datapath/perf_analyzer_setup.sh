#!/usr/bin/env bash
# Triton's perf_analyzer (C++), for benchmarks/datapath/native_client.py --perf-analyzer DIR.
# The binary ships in tritonclient 2.41's wheel (the PyPI package `perf-analyzer` is a placeholder);
# it needs libb64 (Debian: libb64-0d) and libcudart.so.12 (from the nvidia-cuda-runtime-cu12
# wheel), though it never uses a GPU here. Usage: benchmarks/datapath/perf_analyzer_setup.sh [DIR]
# (default ../perf-analyzer). Prints the binary's version line.
set -euo pipefail
DIR="${1:-../perf-analyzer}"
PY="${PYTHON:-python3}"
case "$PY" in */*) PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")" ;; esac  # relative: from here, before the cd
mkdir -p "$DIR"
cd "$DIR"
"$PY" -m pip download -q --no-deps "tritonclient[all]==2.41.0" "nvidia-cuda-runtime-cu12==12.*" -d wheels
"$PY" -m zipfile -e wheels/tritonclient-2.41.0-*.whl tritonclient
"$PY" -m zipfile -e wheels/nvidia_cuda_runtime_cu12-*.whl cudart
mkdir -p bin lib
cp tritonclient/tritonclient-2.41.0.data/data/bin/perf_analyzer bin/
cp cudart/nvidia/cuda_runtime/lib/libcudart.so.12 lib/
chmod +x bin/perf_analyzer
if ! ldconfig -p | grep -q libb64.so.0d; then
    echo "perf_analyzer needs libb64: apt-get install libb64-0d" >&2
    exit 1
fi
LD_LIBRARY_PATH="$PWD/lib" bin/perf_analyzer --version
