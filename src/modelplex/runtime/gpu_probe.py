"""Probe the GPU sharing mechanisms at start and open this server's GPU shares.

For each GPU: MPS (nvidia-cuda-mps-control installed, and a daemon that answers once started),
CUDA green contexts (driver 12.4+ through cuda-python, probed in a child process), MIG mode and
the MIG devices that exist. The choice per GPU: MIG instances when MIG is on (one device per
instance by MIG UUID; MPS inside each instance when MPS is installed, ParvaGPU's "segments"),
else MPS, else green contexts, else the whole GPU only. modelplex never changes MIG mode or
layout. A host without driver or nvidia-smi gives one line (`GpuShares.report["note"]`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from modelplex.core.errors import ModelplexError
from modelplex.planning.mig import model_key_for
from modelplex.runtime.gpu import GREEN, MIG, MIG_MPS, MPS, WHOLE, GpuShares, GpuTarget
from modelplex.runtime.gpu_green import GreenProbe, probe_green
from modelplex.runtime.gpu_mps import CONTROL, MpsDaemon
from modelplex.runtime.gpu_smi import GpuInfo, MigDevice, Runner, list_mig_devices, query_gpus, run_command

log = logging.getLogger(__name__)


def mps_installed(runner: Runner) -> str:
    """"" when nvidia-cuda-mps-control can run here, else why not."""
    res = runner([CONTROL, "-h"], None, 5.0, None)
    return res.why() if res.returncode in (126, 127) else ""


def choose(gpu: GpuInfo, migs: list[MigDevice], mps_why: str, green: GreenProbe) -> list[tuple[str, str, str, str, int]]:
    """Pure: the devices one GPU offers as (device id, uuid, name, mechanism, memory MiB)."""
    if gpu.mig_enabled:
        mine = [m for m in migs if m.gpu_index == gpu.index]
        mech = MIG if mps_why else MIG_MPS
        return [(f"gpu{gpu.index}-mig{m.device}", m.uuid, f"{gpu.name} MIG {m.profile}", mech, int(m.memory_gb * 1024))
                for m in mine]
    if not mps_why:
        mech = MPS
    elif green.available and green.sm_counts.get(gpu.uuid, 0) > 0:
        mech = GREEN
    else:
        mech = WHOLE
    return [(f"gpu{gpu.index}", gpu.uuid, gpu.name, mech, gpu.memory_mb)]


def open_gpu_shares(runner: Runner = run_command, green_probe: Callable[[], GreenProbe] = probe_green,
                    start_mps: bool = True, daemon_factory: Callable[[str], MpsDaemon] | None = None) -> GpuShares:
    """Probe this host and, with `start_mps`, start the MPS daemons the chosen mechanisms need
    (private pipe directories; stopped by `GpuShares.close`). Never raises for a host without
    GPUs: `report["note"]` then says why in one line and there are no targets."""
    gpus, note = query_gpus(runner)
    if not gpus:
        return GpuShares({}, {"note": note, "gpus": [], "mps": "-", "green": "-"})
    migs = list_mig_devices(runner) if any(g.mig_enabled for g in gpus) else []
    mps_why = mps_installed(runner)
    green = green_probe()
    make = daemon_factory or (lambda visible: MpsDaemon.private(runner, visible))
    shared: MpsDaemon | None = None
    targets: dict[str, GpuTarget] = {}
    for g in gpus:
        for device_id, uuid, name, mech, mem in choose(g, migs, mps_why, green):
            daemon = None
            if mech == MPS:
                shared = shared or make("")
                daemon = shared
            elif mech == MIG_MPS:
                daemon = make(uuid)  # one daemon per MIG instance
            targets[device_id] = GpuTarget(device_id, uuid, name, mech, mem, green.sm_counts.get(g.uuid, 0),
                                           model_key_for(g.name, g.memory_mb), daemon)
    mps_note = f"not available: {mps_why}" if mps_why else "installed"
    if start_mps:
        targets, mps_note = _start_daemons(targets, green, mps_note)
    report = {"note": "", "mps": mps_note, "green": green.describe(), "driver_version": green.driver_version,
              "gpus": [_gpu_json(g, migs, targets) for g in gpus]}
    return GpuShares(targets, report)


def _start_daemons(targets: dict[str, GpuTarget], green: GreenProbe, note: str) -> tuple[dict[str, GpuTarget], str]:
    """Start each daemon; a device whose daemon cannot start falls back to green or whole."""
    out: dict[str, GpuTarget] = {}
    failed: dict[int, str] = {}
    for device_id, t in targets.items():
        d = t.daemon
        if d is not None and id(d) not in failed:
            try:
                started = d.ensure_running()
                note = f"available: daemon answers in {d.pipe_dir} ({'started by this server' if started else 'found running'})"
            except ModelplexError as exc:
                failed[id(d)] = exc.message
                log.warning("MPS for %s: %s", t.uuid, exc.message)
        if d is not None and id(d) in failed:
            sms = t.sm_count if green.available else 0
            mech = MIG if t.mechanism == MIG_MPS else GREEN if sms > 0 else WHOLE
            t = GpuTarget(t.device_id, t.uuid, t.name, mech, t.memory_mb, t.sm_count, t.gpu_model, None)
            note = f"not available: {failed[id(d)]}"
        out[device_id] = t
    return out, note


def _gpu_json(g: GpuInfo, migs: list[MigDevice], targets: dict[str, GpuTarget]) -> dict[str, Any]:
    mine = [t for t in targets.values() if t.device_id == f"gpu{g.index}" or t.device_id.startswith(f"gpu{g.index}-")]
    return {
        "index": g.index, "uuid": g.uuid, "name": g.name, "memory_mb": g.memory_mb, "mig_mode": g.mig_mode,
        "mig_devices": [{"uuid": m.uuid, "profile": m.profile, "device": m.device} for m in migs if m.gpu_index == g.index],
        "mechanism": ", ".join(sorted({t.mechanism for t in mine})) or "none",
    }


def format_gpu_status(doc: dict[str, Any]) -> list[str]:
    """Lines for `modelplex status` from GpuShares.status()."""
    if not doc:
        return []
    if doc.get("note"):
        return [f"GPUs: {doc['note']}"]
    lines = [f"GPU sharing: MPS {doc.get('mps', '-')}; green contexts {doc.get('green', '-')}"]
    for g in doc.get("gpus", []):
        mig = f", MIG {g['mig_mode']}" + (f" ({', '.join(m['profile'] for m in g['mig_devices'])})" if g["mig_devices"] else "")
        lines.append(f"  GPU {g['index']} {g['name']} {g['uuid']} {g['memory_mb']} MiB{mig}: {g['mechanism']}")
    for d in doc.get("devices", []):
        if d["device_id"].count("-mig"):
            lines.append(f"    {d['device_id']} {d['uuid']} {d['memory_mb']} MiB: {d['mechanism']}")
    return lines
