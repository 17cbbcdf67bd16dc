"""Input checking and the per-model latency tables every policy plans from."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from modelplex.core.demand import Demand
from modelplex.core.devices import DeviceKind, DeviceSpec
from modelplex.core.errors import InvalidArgumentError
from modelplex.core.profile import Profile
from modelplex.planning.config import PlannerConfig
from modelplex.planning.menus import default_max_slices, slice_menu
from modelplex.planning.mig import slice_memory_mb
from modelplex.planning.rules import SaturatedConfig, p_eff, raised_rate, saturated

Profiles = Sequence[Profile] | Mapping[str, Profile]

# profile slice unit per device kind, to reuse a profile measured with the other GPU sharing mode
GPU_CONTEXT_MB = 1230.0  # CUDA context + framework per GPU worker process (gpu-let's released code)
_UNIT_PER_WHOLE = {DeviceKind.GPU_MPS.value: 100.0, DeviceKind.GPU_MIG.value: 7.0}


class Curve:
    """One quantile of a profile's latency, as the policies look it up (core.profile rules)."""

    def __init__(self, profile: Profile, quantile: str, processes: int = 1) -> None:
        self.profile = profile
        self._table = profile.table(quantile, processes)
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
    sat: dict[int, SaturatedConfig | None]  # slice size -> best SLO/2-rule config alone (alpha 1, memory checked)
    peff: int  # most cost-effective slice size
    proc_curves: dict[int, dict[int, list[float]]] = field(default_factory=dict)  # processes k > 1 -> curves
    memory_mb: float = 0.0  # device memory of the model in one worker (weights, workspace)
    act_mb: float = 0.0  # device memory per sample of a batch
    context_mb: float = 0.0  # device memory per worker process (CUDA context)

    def fastest_sat(self) -> SaturatedConfig | None:
        return self.sat[max(self.sat)]

    def curve(self, size: int, processes: int = 1) -> list[float]:
        return self.curves[size] if processes == 1 else self.proc_curves[processes][size]

    def worker_mb(self, batch: int, processes: int = 1) -> float:
        """Device memory of `processes` workers holding this model alone at `batch`."""
        return processes * (self.context_mb + self.memory_mb + batch * self.act_mb)

    def batch_cap(self, cap_mb: float, processes: int = 1) -> int:
        """Largest batch whose workers fit in `cap_mb` (the curve's length when memory allows)."""
        top = len(self.curves[next(iter(self.curves))])
        if math.isinf(cap_mb) or self.worker_mb(top, processes) <= cap_mb:
            return top
        spare = cap_mb / processes - self.context_mb - self.memory_mb
        if spare < self.act_mb or spare < 0:
            return 0
        return min(top, int(spare / self.act_mb)) if self.act_mb > 0 else top

    def saturated_on(self, size: int, cap_mb: float, alpha: float = 1.0) -> SaturatedConfig | None:
        """The SLO/2-rule config with the most throughput over process counts, within memory."""
        best: SaturatedConfig | None = None
        for k in (1, *sorted(self.proc_curves)):
            bmax = self.batch_cap(cap_mb, k)
            cfg = saturated(self.curve(size, k)[:bmax], self.slo_ms, alpha) if bmax > 0 else None
            if cfg is None:
                continue
            cfg = replace(cfg, processes=k, throughput_rps=cfg.throughput_rps * k)
            if best is None or cfg.throughput_rps > best.throughput_rps * (1 + 1e-9):
                best = cfg
        return best


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


def slice_cap_mb(device: DeviceSpec, size: int) -> float:
    """Device memory one slice of `size` may use: a MIG instance's own memory; else the device's
    (its other slices are checked by the device total); inf when the device states none."""
    if device.kind is DeviceKind.GPU_MIG:
        return slice_memory_mb(device, size) or (device.memory_mb or math.inf)
    return float(device.memory_mb) if device.memory_mb > 0 else math.inf


def default_context_mb(kind: DeviceKind, config: PlannerConfig) -> float:
    """Device memory per worker process: the config's, else ~1.2 GB of CUDA context on a GPU."""
    if config.context_mb is not None:
        return config.context_mb
    return 0.0 if kind is DeviceKind.CPU else GPU_CONTEXT_MB


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
        info = model_info(dm, prof, unit, sizes, devices[0], config)
        if dm.rate_rps == 0:
            idle.append(name)
            continue
        models.append(info)
    return PlanningContext(list(devices), kind, sizes, models, idle, config)


def _curves(prof: Profile, unit: float, sizes: Sequence[int], processes: int, top: int, config: PlannerConfig) -> dict[int, list[float]]:
    curve = Curve(prof, config.latency_quantile, processes)
    return {s: [curve.latency_ms(s * unit, b) * config.safety_factor for b in range(1, top + 1)] for s in sizes}


def model_info(dm: Demand, prof: Profile, unit: float, sizes: Sequence[int], device: DeviceSpec, config: PlannerConfig) -> ModelInfo:
    """One model's tables; raises InvalidArgumentError when no slice can ever meet its SLO or
    hold it in memory."""
    name, kind = dm.model, device.kind
    top = min(config.max_batch, prof.max_batch) if prof.max_batch > 0 else config.max_batch
    curves = _curves(prof, unit, sizes, 1, top, config)
    ks = [k for k in prof.process_counts() if 1 < k <= config.max_processes]
    proc_curves = {k: _curves(prof, unit, sizes, k, top, config) for k in ks}
    full = max(sizes)
    fastest = curves[full][0]
    where = f"batch 1 on a whole {kind.value} device, x{config.safety_factor:g} safety"
    if fastest > dm.slo_ms:
        raise InvalidArgumentError(f"model {name}: SLO {dm.slo_ms:g} ms is below its fastest possible latency {fastest:.2f} ms ({where})")
    if 2 * fastest > dm.slo_ms:
        raise InvalidArgumentError(f"model {name}: SLO {dm.slo_ms:g} ms leaves no time to queue: needs at least 2 x {fastest:.2f} ms ({where})")
    info = ModelInfo(
        name=name,
        demand_rps=float(dm.rate_rps),
        rate_rps=raised_rate(float(dm.rate_rps), config.rate_quantile, config.rate_window_s),
        slo_ms=float(dm.slo_ms),
        curves=curves,
        features=dict(prof.features),
        sat={},
        peff=full,
        proc_curves=proc_curves,
        memory_mb=prof.memory_mb,
        act_mb=prof.activation_mb_per_item,
        context_mb=default_context_mb(kind, config),
    )
    whole_mb = slice_cap_mb(device, full)
    if info.batch_cap(whole_mb) < 1:
        raise InvalidArgumentError(
            f"model {name}: needs {info.worker_mb(1):.0f} MB at batch 1 (with {info.context_mb:.0f} MB of process context); "
            f"a whole {device.name or kind.value} holds {whole_mb:.0f} MB"
        )
    info.sat = {s: info.saturated_on(s, slice_cap_mb(device, s)) for s in sizes}
    peff = p_eff([(s, c.throughput_rps if c else 0.0) for s, c in info.sat.items()], config.min_step_gain)
    info.peff = peff if peff is not None else full
    return info
