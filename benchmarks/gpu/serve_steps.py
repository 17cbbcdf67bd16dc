"""Steps 4 and 5 of the GPU validation: each policy's SLO-meeting peak served live beside the
simulator's prediction (plan_experiment's measures, on the probed device), and a worker killed
under load. Used by gpu_validate.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
import urllib.request
from typing import Any

import numpy as np

from plan_experiment import live_summary, post_plan  # benchmarks/e2e
from server import RunningServer  # tests/support

from modelplex.core.demand import Demand
from modelplex.core.devices import DeviceSpec
from modelplex.core.errors import ModelplexError
from modelplex.core.model import BatchingConfig
from modelplex.core.plan import Plan
from modelplex.core.profile import Profile
from modelplex.planning import plan as make_plan
from modelplex.sim.arrivals import TraceSpec, generate
from modelplex.sim.engine import SimConfig, Simulator

WARMUP_S = 1.0
STEP_COST_S = 12.0  # what one rate costs beyond its measured seconds (plan change, workers, connections)


class Load:
    """What a live measurement needs: the server, each model's request, the device, the mix."""

    def __init__(self, srv: RunningServer, bodies: dict[str, bytes], device: DeviceSpec, slo_ms: dict[str, float],
                 profiles: list[Profile], batching: dict[str, BatchingConfig], conns: int, seed: int) -> None:
        self.srv, self.bodies, self.device, self.slo_ms = srv, bodies, device, slo_ms
        self.profiles, self.batching, self.conns, self.seed = profiles, batching, conns, seed
        self.models = sorted(slo_ms)

    def plan(self, policy: str, total_rps: float) -> Plan:
        per = total_rps / len(self.models)
        return make_plan([Demand(m, per, self.slo_ms[m]) for m in self.models], self.profiles, [self.device], policy=policy)

    def trace(self, total_rps: float, span_s: float) -> tuple[Any, Any]:
        per = [total_rps / len(self.models)] * len(self.models)
        return generate(TraceSpec("poisson"), per, WARMUP_S + span_s, np.random.default_rng(self.seed))

    def run(self, times: Any, idx: Any) -> Any:
        return asyncio.run(_trace(self.srv.http_port, self.bodies, self.models, times, idx, self.conns))


def request_bytes(port: int, model: str, gpu: bool) -> bytes:
    import loadgen

    if gpu:
        arr, name = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32), "INPUT__0"
    else:
        from modelplex.repository.examples import example_inputs

        ((name, arr),) = example_inputs(model, 1).items()
    body, hlen = loadgen.infer_body_binary(name, arr, "FP32")
    return loadgen.http_request("127.0.0.1", port, f"/v2/models/{model}/infer", body, hlen)


async def _trace(port: int, bodies: dict[str, bytes], models: list[str], times: Any, idx: Any, conns: int) -> Any:
    import loadgen

    calls = [await loadgen.status_callers("127.0.0.1", port, bodies[m], conns) for m in models]
    return await loadgen.open_loop_trace(calls, times, idx)


def peak_search(load: Load, policy: str, rates: list[float], span_s: float, budget: Any) -> dict[str, Any]:
    """Rising rates until two in a row miss 99 % in SLO (or the budget says stop)."""
    points: list[dict[str, Any]] = []
    peak, sim_peak, misses, skipped = 0.0, 0.0, 0, []
    for total in rates:
        if budget.left() < span_s + STEP_COST_S:
            skipped = [r for r in rates if r >= total]
            budget.say(f"  {policy}: time is short, skipping rates {', '.join(f'{r:.0f}' for r in skipped)}")
            break
        try:
            plan = load.plan(policy, total)
        except ModelplexError as exc:
            points.append({"rate_rps": total, "error": exc.message})
            budget.say(f"  {policy} {total:7.1f} req/s: cannot plan ({exc.message})")
            break
        post_plan(load.srv, plan)
        times, idx = load.trace(total, span_s)
        res = load.run(times, idx)
        live = live_summary(res, load.models, load.slo_ms, WARMUP_S, WARMUP_S + span_s)
        sim = Simulator(plan, load.profiles, load.slo_ms, SimConfig(seed=load.seed, warmup_s=WARMUP_S), load.batching).run(
            (times, idx), WARMUP_S + span_s).total
        points.append({"rate_rps": total, "live": live, "sim": {"attainment": sim.attainment, "p99_ms": sim.p99_ms},
                       "slices": len(plan.slices), "unserved_rps": sum(plan.unserved.values())})
        budget.say(f"  {policy} {total:7.1f} req/s: live {live['attainment']:.2%} in SLO (p99 {live['p99_ms']:.1f} ms), "
                   f"sim {sim.attainment:.2%}, {len(plan.slices)} slices")
        if sim.attainment >= 0.99 and not plan.unserved:
            sim_peak = max(sim_peak, total)
        if live["attainment"] >= 0.99:
            peak, misses = total, 0
        else:
            misses += 1
            if misses == 2:
                break
    return {"policy": policy, "peak_rps": peak, "sim_peak_rps": sim_peak, "points": points, "skipped_rates": skipped}


def _slices(srv: RunningServer) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"http://{srv.http_url}/v2/status", timeout=10) as r:
        return list(json.loads(r.read())["slices"])


def kill_under_load(load: Load, total_rps: float, span_s: float, budget: Any) -> dict[str, Any]:
    """Serve the elastic plan at `total_rps`, kill one worker 1 s into the measured window, and
    see every accepted request answered and the slice back (a new live worker) within 5 s."""
    post_plan(load.srv, load.plan("elastic", total_rps))
    times, idx = load.trace(total_rps, span_s)
    result: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: result.update(res=load.run(times, idx)))
    runner.start()
    time.sleep(WARMUP_S + 1.0)
    victim = next(s for s in _slices(load.srv) if s["worker"]["pid"])
    old_pid = victim["worker"]["pid"]
    killed_at = time.monotonic()
    os.kill(old_pid, signal.SIGKILL)
    back_s = None
    while time.monotonic() - killed_at < 30:
        now = next((s for s in _slices(load.srv) if s["slice_id"] == victim["slice_id"]), None)
        if now is not None and now["worker"]["alive"] and now["worker"]["pid"] not in (None, old_pid):
            back_s = time.monotonic() - killed_at
            break
        time.sleep(0.05)
    runner.join()
    res = result["res"]
    status = np.array(res.status)
    out = {"rate_rps": total_rps, "slice": victim["slice_id"], "killed_pid": old_pid, "back_s": back_s,
           "requests": int(len(status)), "unanswered": int((status == 0).sum()),
           "answered_ok": int((status == 200).sum()), "answered_error": int(((status != 200) & (status != 0)).sum())}
    out["passed"] = out["unanswered"] == 0 and back_s is not None and back_s <= 5.0
    budget.say(f"kill test: slice {victim['slice_id']} back in {back_s if back_s is None else round(back_s, 2)} s; "
               f"{out['requests']} requests, {out['unanswered']} unanswered, {out['answered_error']} answered with an error "
               f"-> {'PASS' if out['passed'] else 'FAIL'}")
    return out
