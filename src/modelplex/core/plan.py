"""The plan: which model runs on which slice, at what batch, with how much traffic. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field

from modelplex.core.devices import DeviceKind, DeviceSpec, SliceSpec


@dataclass(frozen=True)
class ModelAssignment:
    """One model's share of work on one slice."""

    model: str  # model name
    batch: int  # batch size the slice runs this model at
    rate_rps: float  # traffic this slice serves for the model
    share: float  # fraction (0..1] of the model's total traffic routed to this slice
    latency_ms: float  # predicted latency of one batch on this slice (interference included)


@dataclass(frozen=True)
class SlicePlan:
    """One slice and what runs on it. With `processes` k > 1 (one model only) k workers run on
    the slice at once (MPS inside the slice), each serving 1/k of the slice's rate in batches of
    `batch` that take `latency_ms` each while all k run (the profile's k-process point)."""

    slice_id: str  # stable id within the plan, e.g. "gpu0/s0"
    slice: SliceSpec  # the device share
    assignments: tuple[ModelAssignment, ...]  # models taking turns here
    duty_cycle_ms: float  # length of one round of turns (0 = one model, run back to back)
    utilisation: float  # predicted busy fraction of the slice (0..1)
    processes: int = 1  # worker processes the slice runs, each serving batches concurrently (MPS in the slice)
    memory_mb: float = 0.0  # planned device memory of the slice's workers (0 = not planned)


@dataclass(frozen=True)
class Plan:
    """The whole assignment of models to slices across devices."""

    policy: str  # name of the policy that made it
    devices: tuple[DeviceSpec, ...]  # devices the plan uses
    slices: tuple[SlicePlan, ...]  # slices cut and their work
    unserved: dict[str, float] = field(default_factory=dict)  # model -> rate the plan cannot serve

    def slices_of(self, model: str) -> list[SlicePlan]:
        return [s for s in self.slices if any(a.model == model for a in s.assignments)]

    def served_rate_rps(self, model: str) -> float:
        return sum(a.rate_rps for s in self.slices for a in s.assignments if a.model == model)

    def to_json(self) -> dict[str, object]:
        return {
            "policy": self.policy,
            "devices": [
                {
                    "device_id": d.device_id,
                    "kind": d.kind.value,
                    "capacity": d.capacity,
                    "name": d.name,
                    "memory_mb": d.memory_mb,
                    "gpu_model": d.gpu_model,
                }
                for d in self.devices
            ],
            "slices": [
                {
                    "slice_id": s.slice_id,
                    "device_id": s.slice.device_id,
                    "size": s.slice.size,
                    "cpus": list(s.slice.cpus),
                    "mig_start": s.slice.mig_start,
                    "processes": s.processes,
                    "memory_mb": s.memory_mb,
                    "duty_cycle_ms": s.duty_cycle_ms,
                    "utilisation": s.utilisation,
                    "assignments": [
                        {
                            "model": a.model,
                            "batch": a.batch,
                            "rate_rps": a.rate_rps,
                            "share": a.share,
                            "latency_ms": a.latency_ms,
                        }
                        for a in s.assignments
                    ],
                }
                for s in self.slices
            ],
            "unserved": dict(self.unserved),
        }

    @staticmethod
    def from_json(data: object) -> "Plan":
        """The plan `to_json` wrote; InvalidArgumentError naming the first malformed field."""
        from modelplex.core.plan_json import plan_from_json  # it builds these classes

        return plan_from_json(data)
