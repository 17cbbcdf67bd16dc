#!/usr/bin/env bash
# Wheels the GPU validation host lacks (it has Python 3.12, PyTorch, torchvision, onnx, numpy,
# grpcio, cuda-python and CPU onnxruntime, and reaches no network): fetched here, on a machine
# that reaches PyPI, at the versions constraints.txt pins, into benchmarks/gpu/wheels/ (ignored
# by git; the device tool carries it). About 7 MB; run.sh installs them with --no-index.
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=benchmarks/gpu/wheels
PKGS="uvicorn starlette httptools uvloop orjson pysimdjson prometheus-client pyyaml psutil anyio sniffio h11 click idna typing-extensions"
pins=()
for p in $PKGS; do
  pin=$(grep -iE "^${p//-/[-_]}==" constraints.txt || true)
  pins+=("${pin:-$p}")
done
rm -rf "$DEST" && mkdir -p "$DEST"
"${PYTHON:-python3}" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 -d "$DEST" "${pins[@]}"
du -sh "$DEST"
