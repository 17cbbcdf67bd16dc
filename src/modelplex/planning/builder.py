"""A plan under construction: devices opened from the pool, slices cut on them, and the pure
re-evaluation of a device whenever its slices change (batches, duty cycles, interference)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from modelplex.core.devices import DeviceKind, DeviceSpec, SliceSpec
from modelplex.core.plan import ModelAssignment, Plan, SlicePlan
from modelplex.planning.context import ModelInfo, PlanningContext, slice_cap_mb
from modelplex.planning.interference import NoInterference
from modelplex.planning.menus import largest_fitting, layout_ok, slice_menu
from modelplex.planning.mig import device_model, mig_placement
from modelplex.planning.neighbours import MIN_KEPT, Work, batch_dependent, slice_alphas
from modelplex.planning.rules import EPS, residue, saturated, timeshare


@dataclass(frozen=True)
class Entry:
    """One model's work on a slice under construction."""

    model: ModelInfo  # the model
    rate_rps: float  # traffic routed to this slice
    batch: int  # batch size it runs at
    latency_ms: float  # predicted latency of one batch (safety and interference included)


@dataclass(frozen=True)
class SliceState:
    """A slice under construction (replaced, never mutated)."""

    size: int  # slice size in the device kind's unit
    entries: tuple[Entry, ...]  # models on it
    duty_ms: float  # duty cycle; 0 = one model in saturated (SLO/2) mode
    alpha: float  # interference slowdown applied to its latencies
    processes: int = 1  # worker processes running the (single) model's batches at once

    @property
    def utilisation(self) -> float:
        if self.duty_ms > 0:
            return min(1.0, sum(e.latency_ms for e in self.entries) / self.duty_ms)
        e = self.entries[0]
        return min(1.0, e.rate_rps * e.latency_ms / (1000.0 * e.batch * self.processes))

    @property
    def memory_mb(self) -> float:
        """Device memory of the slice's workers: one process per model set, times processes."""
        first = self.entries[0].model
        if len(self.entries) == 1:
            return first.worker_mb(self.entries[0].batch, self.processes)
        return first.context_mb + sum(e.model.memory_mb + e.batch * e.model.act_mb for e in self.entries)

    def rates(self) -> list[tuple[ModelInfo, float]]:
        return [(e.model, e.rate_rps) for e in self.entries]


Layout = list[tuple[int, list[tuple[ModelInfo, float]]]]  # (size, [(model, rate)]) per slice


def configure(size: int, work: Sequence[tuple[ModelInfo, float]], alpha: float, cap_mb: float = math.inf) -> SliceState | None:
    """Batches, processes and duty cycle for models sharing a slice of `size` whose workers may
    use `cap_mb` of device memory; None when infeasible. One model: the fewest processes whose
    SLO/2-rule throughput carries the rate, else the residue rule in one process."""
    if len(work) == 1:
        m, rate = work[0]
        for k in (1, *sorted(m.proc_curves)):
            bmax = m.batch_cap(cap_mb, k)
            sat = saturated(m.curve(size, k)[:bmax], m.slo_ms, alpha) if bmax > 0 else None
            if sat is not None and rate <= k * sat.throughput_rps * (1 + 1e-9):
                return SliceState(size, (Entry(m, rate, sat.batch, sat.latency_ms),), 0.0, alpha, k)
        bmax = m.batch_cap(cap_mb)
        res = residue(m.curves[size][:bmax], m.slo_ms, rate, alpha) if bmax > 0 else None
        if res is None:
            return None
        return SliceState(size, (Entry(m, rate, res.batches[0], res.latencies_ms[0]),), res.duty_ms, alpha)
    turn = timeshare([m.curves[size] for m, _ in work], [m.slo_ms for m, _ in work], [r for _, r in work], [alpha] * len(work))
    if turn is None:
        return None
    entries = tuple(Entry(m, r, b, lat) for (m, r), b, lat in zip(work, turn.batches, turn.latencies_ms))
    state = SliceState(size, entries, turn.duty_ms, alpha)
    return state if state.memory_mb <= cap_mb else None


def _room(state: SliceState, m: ModelInfo, rate_rps: float) -> bool:
    """Whether `m` at any part of its rate could join the slice: each model's busy share is at
    least its rate / its best throughput on the slice (a necessary condition, cheap to test)."""
    busy = 0.0
    for e in state.entries:
        sat = e.model.sat.get(state.size)
        busy += e.rate_rps / sat.throughput_rps if sat is not None and sat.throughput_rps > 0 else 1.0
    own = m.sat.get(state.size)
    return own is not None and busy + min(rate_rps, own.throughput_rps) * 1e-3 / own.throughput_rps < 1.0


def capacity_rps(m: ModelInfo, size: int, alpha: float = 1.0, cap_mb: float | None = None) -> float:
    """Most traffic of `m` one slice of `size` serves alone (memory cap: the context's device's)."""
    if alpha == 1.0 and cap_mb is None:
        sat = m.sat[size]
    else:
        sat = m.saturated_on(size, math.inf if cap_mb is None else cap_mb, alpha)
    return sat.throughput_rps if sat is not None else 0.0


class Builder:
    """Devices opened so far and their slices."""

    def __init__(self, ctx: PlanningContext) -> None:
        self.ctx = ctx
        self.slices: dict[int, list[SliceState]] = {}  # device index -> slices, for open devices
        self._next = 0  # next pool device to open
        self.unserved: dict[str, float] = {}  # model -> planned rate left unplaced
        self._no_interference = isinstance(ctx.config.interference, NoInterference)
        self.spill: Work = []  # traffic trimmed from neighbours, not yet placed again
        self.trim_neighbours = ctx.config.trim_neighbours  # cut neighbours under interference (else reject)

    # ---- devices -------------------------------------------------------------------------
    def device(self, dev: int) -> DeviceSpec:
        return self.ctx.devices[dev]

    def open_device(self) -> int | None:
        """Take the next device from the pool (auto-scaling); None when the pool is used up."""
        if self._next >= len(self.ctx.devices):
            return None
        dev = self._next
        self._next += 1
        self.slices[dev] = []
        return dev

    def open_devices(self) -> list[int]:
        return list(self.slices)

    def close_pool(self) -> None:
        """Open no further devices (a repack must fit the devices already open)."""
        self._next = len(self.ctx.devices)

    def snapshot(self) -> tuple[dict[int, list[SliceState]], dict[str, float]]:
        return {d: list(s) for d, s in self.slices.items()}, dict(self.unserved)

    def restore(self, snap: tuple[dict[int, list[SliceState]], dict[str, float]]) -> None:
        self.slices = {d: list(s) for d, s in snap[0].items()}
        self.unserved = dict(snap[1])
        self.spill = []

    def sizes_on(self, dev: int) -> list[int]:
        return [s.size for s in self.slices[dev]]

    def free(self, dev: int) -> int:
        return self.device(dev).capacity - sum(self.sizes_on(dev))

    def fits(self, dev: int, sizes: Sequence[int]) -> bool:
        return layout_ok(self.device(dev), sizes, self.ctx.max_slices(self.device(dev)))

    # ---- evaluation ----------------------------------------------------------------------
    def _alphas(self, dev: int, layout: Layout, batches: Sequence[Sequence[int]] | None = None) -> list[float]:
        if self._no_interference or len(layout) < 2:
            return [1.0] * len(layout)
        return slice_alphas(self.ctx.config.interference, self.device(dev), layout, batches)

    def evaluate(self, dev: int, layout: Layout) -> list[SliceState] | None:
        """Configure every slice of a proposed device layout; None when any would miss its SLO.
        With batch-dependent interference features, the slowdowns are computed once more at the
        batches the first pass configured (see planning/neighbours.py)."""
        if not self.fits(dev, [size for size, _ in layout]):
            return None
        alphas = self._alphas(dev, layout)
        out = self._configure_all(dev, layout, alphas)
        if out is not None and not self._no_interference and batch_dependent(layout):
            again = self._alphas(dev, layout, [[e.batch for e in st.entries] for st in out])
            second = self._configure_all(dev, layout, again) if again != alphas else None
            if second is not None:  # kept only if its own batches cause no more than it assumed
                check = self._alphas(dev, layout, [[e.batch for e in st.entries] for st in second])
                if all(c <= a * (1 + 1e-9) for c, a in zip(check, again)):
                    out = second
        return out

    def _configure_all(self, dev: int, layout: Layout, alphas: Sequence[float]) -> list[SliceState] | None:
        old = {(s.size, tuple((e.model.name, e.rate_rps) for e in s.entries), s.alpha): s for s in self.slices.get(dev, [])}
        device = self.device(dev)
        out: list[SliceState] = []
        for (size, work), alpha in zip(layout, alphas):
            key = (size, tuple((m.name, r) for m, r in work), alpha)
            state = old.get(key) or configure(size, work, alpha, slice_cap_mb(device, size))
            if state is None:
                return None
            out.append(state)
        if device.memory_mb > 0 and sum(s.memory_mb for s in out) > device.memory_mb:
            return None
        return out

    def trimmed(self, dev: int, layout: Layout) -> tuple[Layout, Work] | None:
        """The layout with each slice that cannot carry its rate at its new slowdown cut to the
        largest share it still serves (batch and duty cycle recomputed), and the traffic spilled;
        None when a slice keeps less than MIN_KEPT of its rate (or the last, new one fails)."""
        alphas = self._alphas(dev, layout)
        device = self.device(dev)
        out: Layout = []
        spill: Work = []
        for i, ((size, work), alpha) in enumerate(zip(layout, alphas)):
            cap = slice_cap_mb(device, size)
            if configure(size, work, alpha, cap) is not None:
                out.append((size, work))
                continue
            lo, hi = 0.0, 1.0
            for _ in range(12):
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if configure(size, [(m, r * mid) for m, r in work], alpha, cap) is not None else (lo, mid)
            if lo < MIN_KEPT or i == len(layout) - 1:
                return None
            out.append((size, [(m, r * lo) for m, r in work]))
            spill += [(m, r * (1 - lo)) for m, r in work]
        return out, spill

    def layout(self, dev: int) -> Layout:
        return [(s.size, s.rates()) for s in self.slices[dev]]

    def commit(self, dev: int, layout: Layout) -> bool:
        states = self.evaluate(dev, layout)
        if states is None:
            return False
        self.slices[dev] = states
        return True

    # ---- placement primitives ------------------------------------------------------------
    def place(self, dev: int, size: int, m: ModelInfo, rate_rps: float) -> float:
        """Cut a slice of `size` (grown to the rest of the device when it is the last allowed) on
        `dev` for up to `rate_rps` of `m`; returns the rate placed (0 = did not fit)."""
        sizes = self.sizes_on(dev)
        if not self.fits(dev, [*sizes, size]):
            return 0.0
        device = self.device(dev)
        if len(sizes) + 1 >= self.ctx.max_slices(device):
            grown = largest_fitting(device, sizes, self.ctx.max_slices(device))
            size = max(size, grown)
        base = self.layout(dev)
        alpha = self._alphas(dev, [*base, (size, [(m, rate_rps)])])[-1]
        rate = min(rate_rps, capacity_rps(m, size, alpha, slice_cap_mb(device, size)))
        if rate <= EPS:
            return 0.0
        if self.commit(dev, [*base, (size, [(m, rate)])]):
            return rate
        if self._no_interference or not self.trim_neighbours:
            return 0.0
        cut = self.trimmed(dev, [*base, (size, [(m, rate)])])
        if cut is None or not self.commit(dev, cut[0]):
            return 0.0
        self.spill += cut[1]
        return rate

    def take_spill(self) -> Work:
        """Traffic cut from neighbours by `place` (to be placed again by the policy)."""
        out, self.spill = self.spill, []
        return out

    def best_fit(self, size: int, m: ModelInfo, rate_rps: float) -> float:
        """Place on the open device the slice fits most tightly; 0 when none takes it."""
        cands = [d for d in self.slices if self.fits(d, [*self.sizes_on(d), size])]
        cands.sort(key=lambda d: (self.free(d) - size, d))
        for dev in cands:
            got = self.place(dev, size, m, rate_rps)
            if got > 0:
                return got
        return 0.0

    def into_free(self, m: ModelInfo, rate_rps: float) -> float:
        """Readjust: use the largest free region left on any open device."""
        cands: list[tuple[int, int]] = []
        for dev in self.slices:
            device = self.device(dev)
            q = largest_fitting(device, self.sizes_on(dev), self.ctx.max_slices(device))
            if q > 0 and m.sat.get(q) is not None:
                cands.append((q, dev))
        cands.sort(key=lambda t: (-t[0], t[1]))
        for q, dev in cands:
            got = self.place(dev, q, m, rate_rps)
            if got > 0:
                return got
        return 0.0

    def timeshare_into(self, m: ModelInfo, rate_rps: float, max_models: int) -> float:
        """Add `m` to an existing slice's duty cycle: the slice left busiest that takes it all,
        else the slice that takes the most. Returns the rate placed."""
        cands: list[tuple[int, int]] = []
        for dev, states in self.slices.items():
            for i, s in enumerate(states):
                if len(s.entries) < max_models and all(e.model.name != m.name for e in s.entries) and _room(s, m, rate_rps):
                    cands.append((dev, i))
        best: tuple[float, int, int] | None = None
        for dev, i in cands:
            trial = self.evaluate(dev, self._with_added(dev, i, m, rate_rps))
            if trial is not None:
                util = trial[i].utilisation
                if best is None or util > best[0]:
                    best = (util, dev, i)
        if best is not None:
            self.commit(best[1], self._with_added(best[1], best[2], m, rate_rps))
            return rate_rps
        # nothing takes it all: take what the least busy slices can absorb
        cands.sort(key=lambda t: self.slices[t[0]][t[1]].utilisation)
        best_part: tuple[float, int, int] | None = None
        for dev, i in cands[:4]:
            lo, hi = 0.0, rate_rps
            for _ in range(12):
                mid = (lo + hi) / 2
                if self.evaluate(dev, self._with_added(dev, i, m, mid)) is not None:
                    lo = mid
                else:
                    hi = mid
            if lo > EPS and (best_part is None or lo > best_part[0]):
                best_part = (lo, dev, i)
        if best_part is None:
            return 0.0
        got, dev, i = best_part
        self.commit(dev, self._with_added(dev, i, m, got))
        return got

    def _with_added(self, dev: int, i: int, m: ModelInfo, rate_rps: float) -> Layout:
        lay = self.layout(dev)
        size, work = lay[i]
        lay[i] = (size, [*work, (m, rate_rps)])
        return lay

    def expand(self) -> None:
        """Grow slices into capacity nobody uses (lower latency, more headroom)."""
        for dev in list(self.slices):
            device = self.device(dev)
            for i in range(len(self.slices[dev])):
                lay = self.layout(dev)
                others = [s for j, (s, _) in enumerate(lay) if j != i]
                menu = [q for q in slice_menu(device) if q > lay[i][0] and layout_ok(device, [*others, q], self.ctx.max_slices(device))]
                for q in reversed(menu):
                    lay2 = list(lay)
                    lay2[i] = (q, lay[i][1])
                    if self.commit(dev, lay2):
                        break

    # ---- result --------------------------------------------------------------------------
    def _mig_starts(self, dev: int) -> list[int]:
        """Where each slice's MIG instance starts (-1 for every slice of a non-MIG device)."""
        device = self.device(dev)
        sizes = self.sizes_on(dev)
        if device.kind is not DeviceKind.GPU_MIG:
            return [-1] * len(sizes)
        starts = mig_placement(device_model(device), sizes)
        if starts is None:  # every commit checked the layout: this is a bug, not bad input
            raise ValueError(f"device {device.device_id}: MIG layout {sizes} has no placement")
        return list(starts)

    def add_unserved(self, m: ModelInfo, rate_rps: float) -> None:
        if rate_rps > 1e-6:
            self.unserved[m.name] = self.unserved.get(m.name, 0.0) + rate_rps

    def to_plan(self, policy: str) -> Plan:
        totals: dict[str, float] = {}
        for states in self.slices.values():
            for s in states:
                for e in s.entries:
                    totals[e.model.name] = totals.get(e.model.name, 0.0) + e.rate_rps
        used = [dev for dev in sorted(self.slices) if self.slices[dev]]
        slice_plans: list[SlicePlan] = []
        for dev in used:
            device = self.device(dev)
            offset = 0
            starts = self._mig_starts(dev)
            for j, s in enumerate(self.slices[dev]):
                cpus = tuple(range(offset, offset + s.size)) if device.kind is DeviceKind.CPU else ()
                offset += s.size
                slice_plans.append(
                    SlicePlan(
                        slice_id=f"{device.device_id}/s{j}",
                        slice=SliceSpec(device.device_id, s.size, cpus, starts[j]),
                        assignments=tuple(
                            ModelAssignment(e.model.name, e.batch, e.rate_rps, e.rate_rps / totals[e.model.name], e.latency_ms)
                            for e in s.entries
                        ),
                        duty_cycle_ms=s.duty_ms,
                        utilisation=s.utilisation,
                        processes=s.processes,
                        memory_mb=round(s.memory_mb, 1),
                    )
                )
        return Plan(policy, tuple(self.device(d) for d in used), tuple(slice_plans), dict(self.unserved))
