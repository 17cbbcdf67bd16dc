"""The server's GPU side at run time: open the GPU shares at start (probe, MPS daemons), and
watch each MPS daemon for a server fault, after which every worker on its GPUs is replaced."""

from __future__ import annotations

import asyncio
import logging

from modelplex.core.errors import InvalidArgumentError
from modelplex.runtime.gpu import GpuShares
from modelplex.runtime.gpu_mps import MpsWatch
from modelplex.serving.slice_set import SliceSet

log = logging.getLogger(__name__)

WATCH_EVERY_S = 1.0  # how often each MPS daemon is asked for its servers


def open_server_gpus() -> GpuShares:
    """This host's GPU shares for `serve --gpus`; InvalidArgumentError (one line) without any."""
    from modelplex.runtime.gpu_probe import format_gpu_status, open_gpu_shares

    shares = open_gpu_shares()
    if shares.targets:
        for line in format_gpu_status(shares.status()):
            log.info("%s", line)
    else:
        shares.close()
        raise InvalidArgumentError(f"--gpus: {shares.report.get('note') or 'no usable GPU device (MIG on, but no instance made)'}")
    return shares


async def watch_mps(shares: GpuShares, slices: SliceSet, every_s: float = WATCH_EVERY_S) -> None:
    """Until cancelled: poll each MPS daemon; after a server fault replace every worker on the
    devices that daemon serves (their CUDA contexts died with the server)."""
    watches = [MpsWatch(d) for d in shares.daemons()]
    while watches:
        for w in watches:
            why = await asyncio.to_thread(w.check)
            if why is not None:
                devices = shares.devices_of(w.daemon)
                n = slices.replace_workers_on(devices, why)
                log.error("%s: replacing %d worker(s) on %s", why, n, ", ".join(devices))
        await asyncio.sleep(every_s)
