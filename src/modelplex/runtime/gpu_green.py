"""CUDA green contexts: a share of one GPU's SMs for a worker process, where MPS is not available.

Two halves:
- `probe_green()` (server side): whether the driver and cuda-python offer green contexts (CUDA
  driver 12.4+, cuGreenCtxCreate) and each device's SM count. It runs in a child process
  (`python -m modelplex.runtime.gpu_green --probe`) so the server never initialises CUDA itself;
  anything missing reads as "not available: <reason>".
- `enter_green_context(sm_count, device_uuid)` (worker side): called once by a worker started
  with MODELPLEX_GREEN_SMS set, on the thread that runs inference; makes a green context of
  that many SMs current there (through torch.cuda.green_contexts when PyTorch has it, else
  through the driver API and a torch ExternalStream / cuCtxSetCurrent).

SM counts are whole groups: Hopper and later split SMs in groups of 8 (at least 8), Ampere in
2s (at least 4); `green_sm_count` rounds a percent share to that.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from modelplex.core.errors import UnavailableError

log = logging.getLogger(__name__)

GREEN_ENV = "MODELPLEX_GREEN_SMS"  # SMs of the worker's green context (set by worker_env)
MIN_DRIVER = 12040  # CUDA 12.4: first driver with green contexts
PROBE_TIMEOUT_S = 60.0
_HELD: list[Any] = []  # green contexts and streams kept alive for the worker's lifetime


@dataclass(frozen=True)
class GreenProbe:
    """Whether green contexts can be made on this host, and each device's SMs (by UUID)."""

    available: bool
    reason: str  # "" when available, else why not (one line)
    driver_version: int = 0  # e.g. 13000
    sm_counts: dict[str, int] = field(default_factory=dict)  # GPU UUID -> SMs

    def describe(self) -> str:
        return "available" if self.available else f"not available: {self.reason}"


def green_sm_count(percent: int, total_sms: int, cc_major: int = 9) -> int:
    """SMs for a `percent` share of a device of `total_sms`, in whole split groups."""
    step, least = (8, 8) if cc_major >= 9 else (2, 4) if cc_major == 8 else (2, 2)
    want = round(total_sms * percent / 100 / step) * step
    return max(least, min(want, total_sms - total_sms % step))


def _driver() -> Any:
    """cuda-python's driver module (new layout first), or UnavailableError saying what is missing."""
    try:
        from cuda.bindings import driver
    except ImportError:
        try:
            from cuda import cuda as driver  # cuda-python < 12.6
        except ImportError:
            raise UnavailableError("cuda-python is not installed") from None
    return driver


def _check(result: Any, call: str) -> Any:
    """cuda-python returns (CUresult, value...): the values, or UnavailableError naming the call."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise UnavailableError(f"{call} failed: {getattr(err, 'name', err)}")
    return values[0] if len(values) == 1 else tuple(values)


def _probe_here() -> GreenProbe:
    """The probe's body (in the child process)."""
    try:
        drv = _driver()
        _check(drv.cuInit(0), "cuInit")
        version = int(_check(drv.cuDriverGetVersion(), "cuDriverGetVersion"))
        if version < MIN_DRIVER:
            return GreenProbe(False, f"CUDA driver {version // 1000}.{version % 1000 // 10} < 12.4", version)
        if not hasattr(drv, "cuGreenCtxCreate"):
            return GreenProbe(False, "this cuda-python has no cuGreenCtxCreate", version)
        counts: dict[str, int] = {}
        for i in range(int(_check(drv.cuDeviceGetCount(), "cuDeviceGetCount"))):
            dev = _check(drv.cuDeviceGet(i), "cuDeviceGet")
            res = _check(drv.cuDeviceGetDevResource(dev, drv.CUdevResourceType.CU_DEV_RESOURCE_TYPE_SM), "cuDeviceGetDevResource")
            raw = _check(drv.cuDeviceGetUuid(dev), "cuDeviceGetUuid")
            counts[_uuid_text(bytes(raw.bytes))] = int(res.sm.smCount)
        return GreenProbe(True, "", version, counts)
    except UnavailableError as exc:
        return GreenProbe(False, exc.message)
    except Exception as exc:  # a child process: a missing libcuda and the like become the reason
        return GreenProbe(False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


def _uuid_text(raw: bytes) -> str:
    h = raw.hex()
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def probe_green(timeout_s: float = PROBE_TIMEOUT_S) -> GreenProbe:
    """Run the probe in a child process; a crash, hang or missing package is one reason line."""
    try:
        done = subprocess.run([sys.executable, "-m", "modelplex.runtime.gpu_green", "--probe"], capture_output=True,
                              text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return GreenProbe(False, f"the green-context probe did not finish in {timeout_s:.0f} s")
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return GreenProbe(False, f"the green-context probe failed: {tail}")
    doc = json.loads(lines[-1])
    return GreenProbe(bool(doc["available"]), str(doc["reason"]), int(doc["driver_version"]),
                      {str(k): int(v) for k, v in doc["sm_counts"].items()})


def enter_green_context(sm_count: int, device_uuid: str) -> str:
    """Make a green context of `sm_count` SMs current on the calling thread, on the worker's
    device (CUDA_VISIBLE_DEVICES names only it, so it is device 0). Call once, on the thread that
    runs inference, before the model is loaded. Returns what was done (for the worker's log);
    raises UnavailableError when it cannot (the worker must then refuse to report ready)."""
    torch = _torch()
    if torch is not None and hasattr(torch.cuda, "green_contexts"):
        gc_mod = torch.cuda.green_contexts
        ctx = gc_mod.GreenContext.create(num_sms=sm_count, device_id=0)
        _HELD.append(ctx)
        if hasattr(ctx, "Stream"):
            stream = ctx.Stream()
            _HELD.append(stream)
            torch.cuda.set_stream(stream)
            how = "torch.cuda.green_contexts stream made current"
        else:
            ctx.set_context()
            how = "torch.cuda.green_contexts context made current"
        log.info("green context of %d SMs on %s: %s", sm_count, device_uuid, how)
        return f"green context: {sm_count} SMs on {device_uuid} ({how})"
    return _enter_with_driver(sm_count, device_uuid, torch)


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch


def _enter_with_driver(sm_count: int, device_uuid: str, torch: Any) -> str:
    drv = _driver()
    _check(drv.cuInit(0), "cuInit")
    dev = _check(drv.cuDeviceGet(0), "cuDeviceGet")
    if torch is not None:
        torch.cuda.init()  # the primary context first: green contexts retain it
    whole = _check(drv.cuDeviceGetDevResource(dev, drv.CUdevResourceType.CU_DEV_RESOURCE_TYPE_SM), "cuDeviceGetDevResource")
    groups, _, _ = _check(drv.cuDevSmResourceSplitByCount(1, whole, 0, sm_count), "cuDevSmResourceSplitByCount")
    desc = _check(drv.cuDevResourceGenerateDesc(groups, 1), "cuDevResourceGenerateDesc")
    gctx = _check(drv.cuGreenCtxCreate(desc, dev, drv.CUgreenCtxCreate_flags.CU_GREEN_CTX_DEFAULT_STREAM), "cuGreenCtxCreate")
    _HELD.append(gctx)
    got = int(groups[0].sm.smCount)
    if torch is not None:
        raw = _check(drv.cuGreenCtxStreamCreate(gctx, drv.CUstream_flags.CU_STREAM_NON_BLOCKING, 0), "cuGreenCtxStreamCreate")
        stream = torch.cuda.ExternalStream(int(raw), device=torch.device("cuda", 0))
        _HELD.extend([raw, stream])
        torch.cuda.set_stream(stream)
        how = "cuda-python green-context stream made torch's current stream"
    else:
        ctx = _check(drv.cuCtxFromGreenCtx(gctx), "cuCtxFromGreenCtx")
        _check(drv.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
        how = "cuda-python green context made the thread's current context"
    log.info("green context of %d SMs (asked %d) on %s: %s", got, sm_count, device_uuid, how)
    return f"green context: {got} SMs on {device_uuid} ({how})"


def enter_from_env() -> str | None:
    """For a worker: enter the green context its environment asks for (None: not asked)."""
    raw = os.environ.get(GREEN_ENV)
    if not raw:
        return None
    return enter_green_context(int(raw), os.environ.get("MODELPLEX_GPU_UUID", os.environ.get("CUDA_VISIBLE_DEVICES", "")))


def _main() -> int:
    probe = _probe_here()
    print(json.dumps({"available": probe.available, "reason": probe.reason, "driver_version": probe.driver_version,
                      "sm_counts": probe.sm_counts}))
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--probe"]:
        sys.exit(_main())
    sys.exit(2)
