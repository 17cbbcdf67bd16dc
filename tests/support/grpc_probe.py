"""modelplex's own gRPC stubs as a client, in their own process (tritonclient's stubs register the
same `inference.*` messages, so the two cannot share one); prints a JSON report:
  python grpc_probe.py HOST:PORT MODEL  ->  {"protobuf": version, "server": name, ...}
"""

from __future__ import annotations

import json
import sys

import grpc
import numpy as np
from google.protobuf import __version__ as protobuf_version

from modelplex.serving.grpc_gen import grpc_service_pb2 as pb
from modelplex.serving.grpc_gen import grpc_service_pb2_grpc as pb_grpc


def main(url: str, model: str) -> dict[str, object]:
    with grpc.insecure_channel(url) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        meta = stub.ModelMetadata(pb.ModelMetadataRequest(name=model), timeout=30)
        config = stub.ModelConfig(pb.ModelConfigRequest(name=model), timeout=30).config
        x = np.arange(meta.inputs[0].shape[-1], dtype=np.float32).reshape(1, -1)
        request = pb.ModelInferRequest(model_name=model, raw_input_contents=[x.tobytes()])
        request.inputs.add(name=meta.inputs[0].name, datatype="FP32", shape=list(x.shape))
        request.parameters["ratio"].double_param = 0.25
        request.parameters["count"].uint64_param = 3
        response = stub.ModelInfer(request, timeout=30)
        y = np.frombuffer(response.raw_output_contents[0], dtype=np.float32)
        return {
            "protobuf": protobuf_version,
            "server": stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=30).name,
            "config_name": config.name,
            "echo": y.tolist() == x.ravel().tolist(),
        }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
