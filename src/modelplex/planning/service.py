"""What the simulated executor needs: service times per (slice, model, batch) from profiles, the
interference slowdown the plan's layout predicts, and worker start times from measured load
times. The simulator draws lognormal service times around the profile's p50 (its p99 as 99th
percentile); the fake executor of the runtime takes the p50 (`latency_s`) for parity runs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from modelplex.core.devices import SliceSpec
from modelplex.core.errors import InvalidArgumentError
from modelplex.core.plan import Plan, SlicePlan
from modelplex.core.profile import Profile
from modelplex.planning.context import Curve, Profiles, find_profile, index_profiles
from modelplex.planning.interference import NO_INTERFERENCE, InterferenceModel, features_at, merged_features

Z99 = 2.3263478740408408  # standard normal 99th percentile


@dataclass(frozen=True)
class ServiceTable:
    """Service time of one model on one slice, per batch size."""

    p50_s: tuple[float, ...]  # median latency of batch b at [b] ([0] unused)
    sigma: tuple[float, ...]  # lognormal sigma of batch b at [b]

    def time_s(self, rows: int, noise: float) -> float:
        """A service time for `rows` given one draw `noise` = exp(N(0,1)) (1.0: the median)."""
        b = min(max(rows, 1), len(self.p50_s) - 1)
        p50 = self.p50_s[b] * (rows / b if rows > b else 1.0)
        sig = self.sigma[b]
        return p50 * noise**sig if sig > 0 else p50

    def median_s(self, rows: int) -> float:
        """The median service time of `rows` (a latency estimator's prior)."""
        return self.time_s(rows, 1.0)


class ServiceModel:
    """Service and start times of the models of a set of profiles on any plan's slices."""

    def __init__(self, profiles: Profiles, interference: InterferenceModel = NO_INTERFERENCE, spread: bool = True) -> None:
        self._index = index_profiles(profiles)
        self.interference = interference  # slowdown between slices of one device
        self.spread = spread  # draw around p50 (False: always p50)

    def tables(self, plan: Plan) -> dict[tuple[str, str], ServiceTable]:
        """(slice id, model) -> service table, for every assignment of `plan`."""
        alphas = self._alphas(plan)
        kinds = {d.device_id: d.kind for d in plan.devices}
        out: dict[tuple[str, str], ServiceTable] = {}
        for s in plan.slices:
            if s.slice.device_id not in kinds:
                raise InvalidArgumentError(f"simulate: slice {s.slice_id} is on an unknown device")
            for a in s.assignments:
                found = find_profile(self._index, a.model, kinds[s.slice.device_id])
                if found is None:
                    raise InvalidArgumentError(f"simulate: model {a.model}: no profile for {kinds[s.slice.device_id].value}")
                prof, unit = found
                out[(s.slice_id, a.model)] = self._table(prof, s.slice.size * unit, a.batch, alphas[s.slice_id], s.processes)
        return out

    def latency_s(self, spec: SliceSpec, model: str, kind_value: str, rows: int) -> float:
        """Median latency of a batch of `rows` alone on a slice (no interference)."""
        prof = self._index.get((model, kind_value))
        if prof is None:
            raise InvalidArgumentError(f"model {model}: no profile for {kind_value}")
        return Curve(prof, "p50").latency_ms(spec.size, max(1, rows)) / 1e3

    def start_s(self, models: Sequence[str], kind_value: str) -> float:
        """Time to start a worker and load `models` one after another (measured load times)."""
        return sum(p.load_s for m in models if (p := self._index.get((m, kind_value))) is not None)

    def _table(self, prof: Profile, size: float, batch: int, alpha: float, processes: int = 1) -> ServiceTable:
        """Per batch: the latency of one batch while all `processes` of the slice run (their
        measured points), times the interference slowdown."""
        k = processes if processes in prof.process_counts() else 1
        c50, c99 = Curve(prof, "p50", k), Curve(prof, "p99", k)
        top = max(1, batch)
        p50 = [0.0] + [c50.latency_ms(size, b) * alpha / 1e3 for b in range(1, top + 1)]
        p99 = [0.0] + [c99.latency_ms(size, b) * alpha / 1e3 for b in range(1, top + 1)]
        sigma = [0.0] + [
            math.log(max(p99[b], p50[b]) / p50[b]) / Z99 if self.spread and p50[b] > 0 else 0.0 for b in range(1, top + 1)
        ]
        return ServiceTable(tuple(p50), tuple(sigma))

    def _alphas(self, plan: Plan) -> dict[str, float]:
        feats: Mapping[str, Mapping[str, float]] = {m: dict(p.features) for (m, _), p in self._index.items()}
        caps = {d.device_id: d.capacity for d in plan.devices}

        def load(s: SlicePlan) -> tuple[dict[str, float], float]:
            per_model = [features_at(feats.get(a.model, {}), a.batch) for a in s.assignments]
            return merged_features(per_model), s.slice.size / max(1, caps.get(s.slice.device_id, 1))

        loads = {s.slice_id: load(s) for s in plan.slices}
        out: dict[str, float] = {}
        for s in plan.slices:
            nb = [loads[o.slice_id] for o in plan.slices if o is not s and o.slice.device_id == s.slice.device_id]
            out[s.slice_id] = self.interference.alpha(loads[s.slice_id], nb)
        return out
