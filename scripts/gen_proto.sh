#!/usr/bin/env bash
# Regenerate the KServe v2 / Triton gRPC Python stubs from the published protos.
#
# The protos in src/modelplex/serving/grpc_gen/proto/ are verbatim copies of
# triton-inference-server/common protobuf/{grpc_service,model_config}.proto (BSD-3, NVIDIA).
# The generated modules are committed so that runtime needs only grpcio + protobuf, not
# grpcio-tools; rerun this script (needs grpcio-tools, a dev dependency) after updating the protos.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/src/modelplex/serving/grpc_gen"
PROTO_DIR="$OUT/proto"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3

"$PYTHON" -m grpc_tools.protoc \
  -I "$PROTO_DIR" \
  --python_out="$OUT" \
  --pyi_out="$OUT" \
  --grpc_python_out="$OUT" \
  "$PROTO_DIR/model_config.proto" \
  "$PROTO_DIR/grpc_service.proto"

# protoc emits top-level imports ("import model_config_pb2"), which only work with the output
# folder on sys.path; rewrite them to package-relative imports so the stubs live in our package.
for f in "$OUT"/grpc_service_pb2.py "$OUT"/grpc_service_pb2.pyi "$OUT"/grpc_service_pb2_grpc.py; do
  sed -i -E 's/^import (model_config_pb2|grpc_service_pb2) as /from . import \1 as /' "$f"
done

# model_config.proto declares no service, so its _grpc module would be empty.
rm -f "$OUT/model_config_pb2_grpc.py"

echo "generated: $(cd "$OUT" && ls ./*_pb2*.py* | tr '\n' ' ')"
