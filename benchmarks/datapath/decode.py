"""Decoding one JSON infer request of the data path benchmark (1x3x32x32 FP32, about 60 KB) in
this process, µs per request: `flat` data, as the load generator sends it, and `nested` lists of
the tensor's shape (the same numbers).

    .venv/bin/python benchmarks/datapath/decode.py [--repeat 3000]
    PYTHONPATH=../before/src .venv/bin/python benchmarks/datapath/decode.py   # another checkout's codec
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import orjson

import modelplex  # noqa: E402
from modelplex.serving.http_codec import decode_request  # noqa: E402


def per_call_us(body: bytes, repeat: int) -> float:
    for _ in range(50):
        decode_request("m", None, body, None)
    t0 = time.perf_counter()
    for _ in range(repeat):
        decode_request("m", None, body, None)
    return (time.perf_counter() - t0) / repeat * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3000)
    args = ap.parse_args()
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    doc = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()}],
           "parameters": {"binary_data_output": False}}  # what benchmarks/loadgen.py sends
    flat = orjson.dumps(doc)
    doc["inputs"][0]["data"] = x.tolist()
    nested = orjson.dumps(doc)
    for body in (flat, nested):
        if not np.array_equal(decode_request("m", None, body, None).inputs[0].array, x):
            print("a body decodes to another tensor", file=sys.stderr)
            return 1
    print(f"modelplex from {Path(modelplex.__file__).parent}; {x.size} numbers")
    for name, body in (("flat", flat), ("nested", nested)):
        print(f"{name} ({len(body)} bytes): {per_call_us(body, args.repeat):.1f} µs per request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
