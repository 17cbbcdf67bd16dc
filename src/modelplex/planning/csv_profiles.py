"""Profile tables from CSV, to plan from measurements made elsewhere (parsing only: the caller
reads the file). One row per measured point; a header names the columns, in any order:

    model,slice_size,batch,processes,throughput_rps,latency_ms
    resnet50,3g.40gb,32,2,2900,22.1
    resnet50,7,64,1,5100,12.5

required: `model`, `slice_size`, `batch`, and `latency_ms` or `throughput_rps` (one is derived
from the other: throughput = processes x batch / latency). Optional: `processes` (default 1),
`p99_ms` (default: latency_ms), `device_kind` (cpu, gpu-mps, gpu-mig; default: the caller's),
`memory_mb` and `activation_mb_per_item` (per model: the largest given), `max_batch`.
`slice_size` is in the device kind's unit (cores, % of SMs, MIG compute sevenths) or, on MIG, a
profile name such as `3g.40gb` or `3g`. A bad cell raises InvalidArgumentError naming its line.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field

from modelplex.core.devices import DeviceKind
from modelplex.core.errors import InvalidArgumentError
from modelplex.core.profile import Profile, ProfilePoint

REQUIRED = ("model", "slice_size", "batch")
KNOWN = {*REQUIRED, "processes", "throughput_rps", "latency_ms", "p99_ms", "device_kind", "memory_mb", "activation_mb_per_item", "max_batch", "hardware"}
_MIG_NAME = re.compile(r"^(\d)g(?:\.\d+gb)?$")


@dataclass
class _Acc:
    """Points and per-model facts gathered for one (model, device kind)."""

    points: list[ProfilePoint] = field(default_factory=list)  # rows read so far
    memory_mb: float = 0.0  # largest memory_mb given
    act_mb: float = 0.0  # largest activation_mb_per_item given
    max_batch: int = 0  # largest max_batch given (0 = none)
    hardware: str = ""  # first hardware given


def parse_profiles_csv(text: str, default_kind: DeviceKind = DeviceKind.GPU_MIG, source: str = "profiles CSV") -> list[Profile]:
    """Profiles from CSV text (module doc); InvalidArgumentError names the line of a bad row."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise InvalidArgumentError(f"{source}: empty file, expected a header line ({', '.join(REQUIRED)}, latency_ms ...)")
    missing = [c for c in REQUIRED if c not in header]
    if missing or not {"latency_ms", "throughput_rps"} & set(header):
        need = missing + ([] if {"latency_ms", "throughput_rps"} & set(header) else ["latency_ms or throughput_rps"])
        raise InvalidArgumentError(f"{source}: missing column(s) {', '.join(need)} (header: {', '.join(header)})")
    unknown = [c for c in header if c not in KNOWN]
    if unknown:
        raise InvalidArgumentError(f"{source}: unknown column(s) {', '.join(unknown)}")
    acc: dict[tuple[str, str], _Acc] = {}
    for line, raw in enumerate(reader, start=2):
        row = {str(k).strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(row.values()):
            continue
        _read_row(row, line, default_kind, source, acc)
    if not acc:
        raise InvalidArgumentError(f"{source}: no rows after the header")
    return [
        Profile(model, kind, a.hardware or "imported CSV", tuple(a.points), a.memory_mb, 0.0, {}, a.act_mb, a.max_batch)
        for (model, kind), a in acc.items()
    ]


def _read_row(row: dict[str, str], line: int, default_kind: DeviceKind, source: str, acc: dict[tuple[str, str], _Acc]) -> None:
    where = f"{source} line {line}"
    model = row.get("model", "")
    if not model:
        raise InvalidArgumentError(f"{where}: empty model")
    kind_text = row.get("device_kind") or default_kind.value
    try:
        kind = DeviceKind(kind_text)
    except ValueError:
        raise InvalidArgumentError(f"{where}: device_kind {kind_text!r} is not one of cpu, gpu-mps, gpu-mig") from None
    size = _slice_size(row["slice_size"], kind, where)
    batch = _int(row["batch"], "batch", where)
    procs = _int(row.get("processes") or "1", "processes", where)
    lat = _num(row.get("latency_ms", ""), "latency_ms", where)
    thr = _num(row.get("throughput_rps", ""), "throughput_rps", where)
    if lat is None and thr is None:
        raise InvalidArgumentError(f"{where}: needs latency_ms or throughput_rps")
    lat_ms = lat if lat is not None else 1000.0 * procs * batch / (thr or 1.0)
    p99 = _num(row.get("p99_ms", ""), "p99_ms", where) or lat_ms
    a = acc.setdefault((model, kind.value), _Acc())
    a.points.append(ProfilePoint(size, batch, lat_ms, max(p99, lat_ms), thr if thr is not None else 1000.0 * procs * batch / lat_ms, 0, procs))
    a.memory_mb = max(a.memory_mb, _num(row.get("memory_mb", ""), "memory_mb", where, zero_ok=True) or 0.0)
    a.act_mb = max(a.act_mb, _num(row.get("activation_mb_per_item", ""), "activation_mb_per_item", where, zero_ok=True) or 0.0)
    if row.get("max_batch"):
        a.max_batch = max(a.max_batch, _int(row["max_batch"], "max_batch", where))
    a.hardware = a.hardware or row.get("hardware", "")


def _slice_size(text: str, kind: DeviceKind, where: str) -> int:
    match = _MIG_NAME.match(text.lower())
    if match and kind is DeviceKind.GPU_MIG:
        text = match.group(1)
    return _int(text, "slice_size", where)


def _int(text: str, what: str, where: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InvalidArgumentError(f"{where}: {what} must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise InvalidArgumentError(f"{where}: {what} must be an integer >= 1, got {text!r}")
    return value


def _num(text: str, what: str, where: str, zero_ok: bool = False) -> float | None:
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        raise InvalidArgumentError(f"{where}: {what} must be a number {'>= 0' if zero_ok else '> 0'}, got {text!r}")
    return value
