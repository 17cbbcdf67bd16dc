"""Cutting the host CPU into slices (sets of cores) for worker processes."""

from __future__ import annotations

import os

from modelplex.core.devices import SliceSpec
from modelplex.core.errors import InvalidArgumentError


def parse_cpus(spec: str | None) -> list[int]:
    """'0-3,6' -> [0, 1, 2, 3, 6]; None -> the cores this process may use."""
    if not spec:
        return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    cpus: set[int] = set()
    try:
        for part in spec.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = part.split("-", 1)
                cpus.update(range(int(lo), int(hi) + 1))
            elif part:
                cpus.add(int(part))
    except ValueError:
        raise InvalidArgumentError(f"--cpus {spec!r} is not a core list like 0-3,6") from None
    available = set(parse_cpus(None))
    missing = sorted(cpus - available)
    if missing:
        raise InvalidArgumentError(f"--cpus names cores {missing} that this host does not have (available: {sorted(available)})")
    if not cpus:
        raise InvalidArgumentError("--cpus is empty")
    return sorted(cpus)


FRONTEND_CORES = 1  # cores left to the server's own process by default (its busy thread runs on one)


def model_cpus(spec: str | None, keep_frontend_core: bool = True) -> tuple[list[int], list[int]]:
    """The cores cut into slices, and those left to the frontend: `--cpus` exactly as given;
    by default every core but the first, which the frontend (one Python process) keeps, so that
    inference never competes with the process that parses, batches and answers its requests
    (on one core, the frontend shares it). Without `keep_frontend_core` (a plan cuts the
    cores for planned rates), every core."""
    if spec:
        return parse_cpus(spec), []
    every = parse_cpus(None)
    if not keep_frontend_core or len(every) <= FRONTEND_CORES:
        return every, []
    return every[FRONTEND_CORES:], every[:FRONTEND_CORES]


def divide(cpus: list[int], count: int, device_id: str = "cpu0") -> list[SliceSpec]:
    """Cut the cores into `count` slices: equal disjoint blocks when there are enough cores,
    otherwise one core each, round-robin (instances beyond the core count share cores)."""
    if count <= 0:
        return []
    if count <= len(cpus):
        base, extra = divmod(len(cpus), count)
        out: list[SliceSpec] = []
        pos = 0
        for i in range(count):
            n = base + (1 if i < extra else 0)
            block = tuple(cpus[pos : pos + n])
            pos += n
            out.append(SliceSpec(device_id, len(block), block))
        return out
    return [SliceSpec(device_id, 1, (cpus[i % len(cpus)],)) for i in range(count)]
