"""modelplex: serve many ML models on shared accelerators under latency SLOs."""

from __future__ import annotations

import os

# ONNX Runtime's Linux wheel looks up a telemetry host shortly after a session starts unless
# this is set; every modelplex process imports this package before onnxruntime.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
# Workers are started with fork+exec while gRPC threads run; the child never uses gRPC, so its
# fork handlers are not needed (and would log a line per started worker).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

__version__ = "0.1.0"
