"""Input checking and the per-model latency tables every policy plans from."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from modelplex.core.demand import Demand
from modelplex.core.devices import DeviceKind, DeviceSpec
from modelplex.core.errors import InvalidArgumentError
from modelplex.core.profile import Profile
from modelplex.planning.config import PlannerConfig
from modelplex.planning.menus import default_max_slices, slice_menu
from modelplex.planning.rules import SaturatedConfig, p_eff, raised_rate, saturated

Profiles = Sequence[Profile] | Mapping[str, Profile]

# profile slice unit per device kind, to reuse a profile measured with the other GPU sharing mode
_UNIT_PER_WHOLE = {DeviceKind.GPU_MPS.value: 100.0, DeviceKind.GPU_MIG.value: 7.0}


class Curve:
    """One quantile of a profile's latency, as the policies look it up (core.profile rules)."""

    def __init__(self, profile: Profile, quantile: str) -> None:
        self.profile = profile
        self._table = profile.table(quantile)
        self.sizes = self._table.sizes

    def latency_ms(self, size: float, batch: int) -> float:
        if not self.sizes:
            raise InvalidArgumentError(f"model {self.profile.model}: profile has no points")
        return self._table.latency_ms(size, batch)


@dataclass
class ModelInfo:
    """One model as the planners see it."""

    name: str  # model name
    demand_rps: float  # mean rate asked for
    rate_rps: float  # rate planned for (raised to the Poisson quantile)
    slo_ms: float  # latency objective
    curves: dict[int, list[float]]  # slice size -> latency (ms, safety included) of batch b at [b-1]
    features: dict[str, float]  # solo-run interference features of the profile
    sat: dict[int, SaturatedConfig | None]  # slice size -> SLO/2-rule config alone (alpha 1)
    peff: int  # most cost-effective slice size

    def fastest_sat(self) -> SaturatedConfig | None:
        return self.sat[max(self.sat)]


@dataclass
class PlanningContext:
    """Checked inputs: devices of one kind, models with their tables."""

    devices: list[DeviceSpec]  # the pool, in the order given
    kind: DeviceKind  # the kind every device has
    sizes: list[int]  # union of the devices' slice menus
    models: list[ModelInfo]  # models with a positive rate, in demand order
    idle: list[str]  # models asked for at rate 0 (planned nowhere)
    config: PlannerConfig  # planner settings

    def max_slices(self, device: DeviceSpec) -> int:
        m = self.config.max_slices_per_device
        return default_max_slices(device) if m is None else m


def index_profiles(profiles: Profiles) -> dict[tuple[str, str], Profile]:
    items = profiles.values() if isinstance(profiles, Mapping) else profiles
    return {(p.model, p.device_kind): p for p in items}


def find_profile(index: Mapping[tuple[str, str], Profile], model: str, kind: DeviceKind) -> tuple[Profile, float] | None:
    """The model's profile for a device kind and the factor from device units to profile units."""
    prof = index.get((model, kind.value))
    if prof is not None:
        return prof, 1.0
    if kind.value in _UNIT_PER_WHOLE:
        for other, whole in _UNIT_PER_WHOLE.items():
            prof = index.get((model, other))
            if prof is not None:
                return prof, whole / _UNIT_PER_WHOLE[kind.value]
    return None


def build_context(
    demands: Sequence[Demand], profiles: Profiles, devices: Sequence[DeviceSpec], config: PlannerConfig
) -> PlanningContext:
    """Check every input and build the tables; raises InvalidArgumentError naming the culprit."""
    if not devices:
        raise InvalidArgumentError("no devices to plan on")
    kinds = {d.kind for d in devices}
    if len(kinds) > 1:
        raise InvalidArgumentError(f"devices must be of one kind, got {sorted(k.value for k in kinds)}")
    ids = [d.device_id for d in devices]
    if len(set(ids)) != len(ids):
        raise InvalidArgumentError("device ids must be unique")
    kind = devices[0].kind
    for d in devices:
        if d.capacity <= 0:
            raise InvalidArgumentError(f"device {d.device_id}: capacity must be positive")
    if config.safety_factor <= 0 or config.max_batch < 1:
        raise InvalidArgumentError("safety_factor must be > 0 and max_batch >= 1")
    sizes = sorted({s for d in devices for s in slice_menu(d)})
    full = max(d.capacity for d in devices)
    index = index_profiles(profiles)
    known = sorted({m for m, _ in index})
    models: list[ModelInfo] = []
    idle: list[str] = []
    seen: set[str] = set()
    for dm in demands:
        name = dm.model
        if name in seen:
            raise InvalidArgumentError(f"model {name}: listed twice in the demand")
        seen.add(name)
        if not isinstance(dm.rate_rps, (int, float)) or not math.isfinite(dm.rate_rps) or dm.rate_rps < 0:
            raise InvalidArgumentError(f"model {name}: rate_rps must be a finite number >= 0, got {dm.rate_rps!r}")
        if not isinstance(dm.slo_ms, (int, float)) or not math.isfinite(dm.slo_ms) or dm.slo_ms <= 0:
            raise InvalidArgumentError(f"model {name}: slo_ms must be a finite number > 0, got {dm.slo_ms!r}")
        found = find_profile(index, name, kind)
        if found is None:
            if not any(m == name for m, _ in index):
                raise InvalidArgumentError(f"model {name}: unknown model, no profile for it (profiles: {', '.join(known) or 'none'})")
            raise InvalidArgumentError(f"model {name}: no profile measured on a {kind.value} device")
        prof, unit = found
        curve = Curve(prof, config.latency_quantile)
        curves = {
            s: [curve.latency_ms(s * unit, b) * config.safety_factor for b in range(1, config.max_batch + 1)]
            for s in sizes
        }
        fastest = curves[full][0]
        if fastest > dm.slo_ms:
            raise InvalidArgumentError(
                f"model {name}: SLO {dm.slo_ms:g} ms is below its fastest possible latency "
                f"{fastest:.2f} ms (batch 1 on a whole {kind.value} device, x{config.safety_factor:g} safety)"
            )
        if 2 * fastest > dm.slo_ms:
            raise InvalidArgumentError(
                f"model {name}: SLO {dm.slo_ms:g} ms leaves no time to queue: needs at least "
                f"2 x {fastest:.2f} ms (batch 1 on a whole {kind.value} device, x{config.safety_factor:g} safety)"
            )
        if dm.rate_rps == 0:
            idle.append(name)
            continue
        sat = {s: saturated(curves[s], dm.slo_ms) for s in sizes}
        peff = p_eff([(s, c.throughput_rps if c else 0.0) for s, c in sat.items()], config.min_step_gain)
        assert peff is not None  # the whole device meets the SLO/2 rule, checked above
        models.append(
            ModelInfo(
                name=name,
                demand_rps=float(dm.rate_rps),
                rate_rps=raised_rate(float(dm.rate_rps), config.rate_quantile, config.rate_window_s),
                slo_ms=float(dm.slo_ms),
                curves=curves,
                features=dict(prof.features),
                sat=sat,
                peff=peff,
            )
        )
    return PlanningContext(list(devices), kind, sizes, models, idle, config)
