"""A closed-loop load process for interference runs: one model, pinned to one core, no IPC per run.

Driving a fast model through the worker socket costs the driver more CPU than the model itself
(tens of microseconds per round trip against a few for the tiny mlp), and that driver CPU lands
on the neighbour's core and shows up as fake interference. So each side of a pair is this
process: it pins itself like the slice worker, loads the model with the worker's own engine
(runtime.engines.load_engine: ONNX Runtime or PyTorch, on the CPU or its GPU share), and loops
engine.run between two CLOCK_MONOTONIC instants (shared by all processes on Linux) that the
parent sends, so both sides start and stop together.

stdin:  "go START_S END_S MIN_RUNS\\n" (repeatable) | "quit\\n" or EOF
stdout: "ready IO_BYTES\\n" once loaded and warmed up, then one JSON line of samples per "go".
"""

from __future__ import annotations

import os

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelplex-loadgen")
    parser.add_argument("--model", required=True, help="model file (.onnx, .pt, .pt2)")
    parser.add_argument("--provider", default="cpu", choices=["cpu", "cuda"], help="device (cuda: the MPS share in the env)")
    parser.add_argument("--cpu", type=int, required=True, help="the core to pin to (a 1-core slice)")
    parser.add_argument("--inputs", required=True, help='JSON [[name, KServe datatype, [shape]], ...]')
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, [args.cpu])

    import numpy as np

    from modelplex.core.tensors import DataType
    from modelplex.profiling.inputs import random_array
    from modelplex.runtime.engines import env_mem_limit, load_engine

    engine = load_engine(args.model, 1, args.provider, env_mem_limit())
    engine.warm_up()
    names = engine.outputs
    rng = np.random.default_rng(0)
    feeds = {name: random_array(rng, DataType(dt), tuple(shape)) for name, dt, shape in json.loads(args.inputs)}
    outputs = engine.run(feeds, names)
    io_bytes = sum(int(a.nbytes) for a in feeds.values()) + sum(int(np.asarray(o).nbytes) for o in outputs)
    for _ in range(3):
        engine.run(feeds, names)
    print(f"ready {io_bytes}", flush=True)
    for line in sys.stdin:
        parts = line.split()
        if not parts or parts[0] != "go":
            break
        start_s, end_s, min_runs = float(parts[1]), float(parts[2]), int(parts[3])
        while time.monotonic() < start_s:
            time.sleep(min(0.001, max(0.0, start_s - time.monotonic())))
        samples: list[float] = []
        while len(samples) < min_runs or time.monotonic() < end_s:
            t0 = time.perf_counter()
            engine.run(feeds, names)
            samples.append(time.perf_counter() - t0)
        print(json.dumps({"samples_s": samples}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
