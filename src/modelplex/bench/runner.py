"""One `modelplex bench` run: target up, models checked, then each rung of the rate ladder
replayed open-loop (modelplex.bench.openloop), with the server's own counts read around each
rung so the report can show both sides."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
import numpy as np

from modelplex.bench.arrivals import rung as rung_arrivals
from modelplex.bench.config import BenchConfig
from modelplex.bench.http import get_json
from modelplex.bench.openloop import OpenLoop
from modelplex.bench.stats import ModelRung, summarize
from modelplex.bench.target import Target
from modelplex.profiling.progress import Progress

log = logging.getLogger(__name__)
TICK_S = 0.5  # progress redraw interval while a rung runs
PREWARM_CONNECTIONS = 16


@dataclass
class BenchResult:
    rungs: list[list[ModelRung]] = field(default_factory=list)
    server: list[dict[str, dict[str, int]]] = field(default_factory=list)  # per rung: model -> success/fail
    warmup: dict[str, int] = field(default_factory=dict)  # model -> warm-up requests sent (not counted)
    client_s: float = 0.0


def server_counts(target: Target) -> dict[str, dict[str, int]]:
    """GET /v2/models/stats: success and fail counts per model name (all versions)."""
    doc = get_json(f"{target.url}/v2/models/stats")
    out: dict[str, dict[str, int]] = {}
    for s in doc.get("model_stats", []):
        c = out.setdefault(str(s["name"]), {"success": 0, "fail": 0})
        for key in ("success", "fail"):
            c[key] += int(s["inference_stats"][key]["count"])
    return out


def _delta(after: dict[str, dict[str, int]], before: dict[str, dict[str, int]],
           names: Sequence[str]) -> dict[str, dict[str, int]]:
    zero = {"success": 0, "fail": 0}
    return {n: {k: after.get(n, zero)[k] - before.get(n, zero)[k] for k in zero} for n in names if n in after}


async def warm_up(target: Target, config: BenchConfig, requests: Sequence[bytes]) -> dict[str, int]:
    """A few requests per model, close together, before the measured rungs (first loads, caches)."""
    n = config.warmup_requests
    if n == 0:
        return {}
    kinds = np.repeat(np.arange(len(requests)), n)
    times = np.arange(len(kinds)) * 0.01
    loop = OpenLoop(target.host, target.port, requests, config.max_in_flight, config.timeout_s)
    rec = await loop.run(times, kinds, prewarm=2)
    status = np.asarray(rec.status)
    ok = int((status == 200).sum())
    if ok < len(kinds):
        log.warning("warm-up: %d of %d requests answered 200", ok, len(kinds))
    return {m.label: n for m in config.models}


async def run_rungs(target: Target, config: BenchConfig, requests: Sequence[bytes], quiet: bool = False) -> BenchResult:
    result = BenchResult()
    t0 = time.monotonic()
    result.warmup = await warm_up(target, config, requests)
    names = [m.name for m in config.models if not m.is_task]
    ladder = [rung_arrivals(config, i) for i in range(max(config.rungs, 1))]
    total_s = sum(float(t[-1]) if len(t) else 0.0 for t, _ in ladder) or 1.0
    progress = Progress(total_s, "bench", enabled=not quiet, every_s=5.0)
    for i, (times, kinds) in enumerate(ladder):
        before = server_counts(target)
        span = float(times[-1]) if len(times) else 0.0
        duration = max(span, 1e-9) if config.trace is not None else config.duration_s  # a trace: its scaled length
        rates = [m.rates[i] if m.rates else float((kinds == k).sum()) / duration for k, m in enumerate(config.models)]
        note = f"rate {i + 1}/{len(ladder)}: {sum(rates):.0f} req/s"
        loop = OpenLoop(target.host, target.port, requests, config.max_in_flight, config.timeout_s,
                        late_s=config.late_s, keep_messages=True, seed=config.seed)
        rec = await loop.run(times, kinds, side=_ticker(progress, span, note), prewarm=PREWARM_CONNECTIONS)
        result.rungs.append(summarize([m.label for m in config.models], [m.slo_ms for m in config.models], rates,
                                      duration, rec.arrays(), rec.messages))
        result.server.append(_delta(server_counts(target), before, names))
    progress.close(f"{len(ladder)} rate(s)")
    result.client_s = time.monotonic() - t0
    return result


def _ticker(progress: Progress, span_s: float, note: str) -> Callable[[OpenLoop], Awaitable[None]]:
    """A side task of the open loop: advances the bar with the schedule, ends with it."""
    async def tick(loop: OpenLoop) -> None:
        shown = 0.0
        while True:  # bounded: ends once the schedule's last arrival time has passed
            await asyncio.sleep(min(TICK_S, max(0.0, span_s - loop.now()) + 0.001))
            now = min(loop.now(), span_s)
            progress.advance(now - shown, f"{note}, {loop.outstanding} in flight")
            shown = now
            if now >= span_s:
                return

    return tick
