"""The hop to a worker alone: batches of one image of the small CNN sent to one real worker process
(`WorkerHandle.run`, on core 0) from an asyncio loop, one at a time, no HTTP. Prints the round
trip, the worker's own compute time, the rest (the hop: framing, the socket, two wake-ups, the
loop) and the frontend's CPU per trip; compare with wakeup.py's bare round trip between two
processes.

    .venv/bin/python benchmarks/datapath/hop.py [--trips 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import uvloop  # noqa: E402

import small_cnn  # noqa: E402
from modelplex.core.devices import SliceSpec  # noqa: E402
from modelplex.runtime.worker_handle import WorkerHandle  # noqa: E402


async def trips(n: int) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        model = small_cnn.build(Path(tmp) / "model.onnx")
        handle = WorkerHandle("hop", str(model), SliceSpec("cpu0", 1, (0,)), stall_timeout_s=0)
        await handle.start()
        x = np.zeros((1, 3, 32, 32), np.float32)
        try:
            for _ in range(200):
                await handle.run([("input", x)], None)
            compute = 0.0
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(n):
                _, compute_s = await handle.run([("input", x)], None)
                compute += compute_s
            wall_us = (time.perf_counter() - t0) / n * 1e6
            cpu_us = (time.process_time() - c0) / n * 1e6
        finally:
            await handle.stop()
    compute_us = compute / n * 1e6
    return (f"round trip {wall_us:.0f} µs: worker compute {compute_us:.0f} µs, hop {wall_us - compute_us:.0f} µs; "
            f"frontend CPU {cpu_us:.0f} µs per trip\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trips", type=int, default=2000)
    sys.stdout.write(uvloop.run(trips(ap.parse_args().trips)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
