"""The frontend's handle on one slice worker process (asyncio side of runtime.worker)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import sys
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import orjson

from modelplex.core.devices import SliceSpec
from modelplex.core.errors import DeviceError, InvalidArgumentError, ModelplexError, UnavailableError, WorkerLostError
from modelplex.runtime import wire
from modelplex.runtime.arena import Arena
from modelplex.runtime.loop_poll import poll_of

Arrays = list[tuple[str, np.ndarray]]

log = logging.getLogger(__name__)

STALL_TIMEOUT_S = 2.0  # a worker silent this long (no result, no heartbeat) is stalled
# glibc in the worker: a batch's buffers come from the heap, not fresh mmaps faulted in on every run
# (the worker runs ONNX Runtime without its arena), and the heap is not trimmed during a burst --
# the idle worker trims it (runtime.heap) once the burst is over.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(256 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(2**30)}
_WATCH_S = 0.25  # how often the watchdog looks
# Shared memory for batch inputs, per worker (runtime.arena); a batch that does not fit goes
# through the socket. Pages are touched only as batches use them. MODELPLEX_ARENA_MB=0 turns it off.
ARENA_MB_ENV = "MODELPLEX_ARENA_MB"
ARENA_MB = 64


def failure(header: dict[str, Any], what: str) -> ModelplexError:
    """The typed error of a worker's error frame: the device's fault (runtime.faults: a CUDA
    error, out of memory, a GPU that is not really used) is a DeviceError (503) naming the cause,
    anything else the request's or the model's (400)."""
    error = str(header.get("error") or "unknown error")
    if header.get("fault") in ("device", "poisoned"):
        return DeviceError(f"{what} on the device: {error}")
    return InvalidArgumentError(f"{what}: {error}")


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker reported once its model was loaded."""

    pid: int  # process id
    load_s: float  # seconds to create the ONNX Runtime session
    rss_mb: float  # resident memory after loading


class WorkerHandle:
    """Starts a worker pinned to a slice, runs batches on it, notices at once when it dies, and
    within `stall_timeout_s` when it stops answering (paused, hung): then it is killed, and what it
    held fails with WorkerLostError naming the stall.

    `models` maps model name -> ONNX file (several models on one slice take turns on it), or is
    the path of a single model."""

    def __init__(
        self,
        label: str,
        models: dict[str, str] | str,
        slice_spec: SliceSpec,
        threads: int = 0,
        provider: str = "cpu",
        on_exit: Callable[["WorkerHandle", int | None], None] | None = None,
        env: dict[str, str] | None = None,
        stall_timeout_s: float = STALL_TIMEOUT_S,
        poll_s: float = 0.0,
    ) -> None:
        self.label = label  # e.g. "cnn/1#0", for messages
        self.models = {"model": models} if isinstance(models, str) else dict(models)
        self.slice = slice_spec
        self.threads = threads or max(1, len(slice_spec.cpus) or 1)
        self.provider = provider
        self._on_exit = on_exit
        self.extra_env = dict(env or {})  # e.g. the MPS share of a GPU slice
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[tuple[dict[str, Any], bytes]]] = {}
        self._ids = itertools.count(1)
        self._read_task: asyncio.Task[None] | None = None
        self._stopping = False
        self.alive = False
        self.info: WorkerInfo | None = None
        self.stall_timeout_s = stall_timeout_s  # 0: never declared stalled
        self.poll_s = poll_s  # one request at a time, the worker polls this long for its next batch (its cores are its own; 0: never)
        self._compute_s = 0.0  # the worker's compute time of its last batch (what the loop polls for)
        self._last_rows = 0  # rows of the last batch run
        self._last_frame_s = 0.0  # loop time of the last frame from the worker
        self._last_watch_s = 0.0  # loop time the watchdog last looked
        self._watch: asyncio.TimerHandle | None = None
        self._lost_reason: str | None = None  # why the worker was killed (a stall), if it was
        self._arena: Arena | None = None  # shared memory for batch inputs (from start to stop)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def start(self, timeout_s: float = 120.0) -> WorkerInfo:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        arena_mb = int(os.environ.get(ARENA_MB_ENV) or ARENA_MB)
        self._arena = Arena(arena_mb * 2**20) if arena_mb > 0 else None
        arena_args = ["--arena-fd", str(self._arena.fd), "--arena-bytes", str(self._arena.nbytes)] if self._arena else []
        env = dict(os.environ, ORT_DISABLE_TELEMETRY="1", OMP_NUM_THREADS=str(self.threads), **MALLOC_ENV, **self.extra_env)
        cmd = [
            sys.executable, "-m", "modelplex.runtime.worker",
            "--fd", str(child.fileno()),
            *(a for name, path in self.models.items() for a in ("--model", f"{name}={path}")),
            "--cpus", ",".join(map(str, self.slice.cpus)),
            "--threads", str(self.threads),
            "--provider", self.provider,
            *arena_args,
        ]  # fmt: skip
        fds = (child.fileno(), self._arena.fd) if self._arena else (child.fileno(),)
        try:
            self._proc = await asyncio.create_subprocess_exec(*cmd, pass_fds=fds, env=env)
        finally:
            child.close()
        self._reader, self._writer = await asyncio.open_unix_connection(sock=parent, limit=2**26)
        try:
            header, _ = await asyncio.wait_for(self._read_frame(), timeout_s)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError):
            await self._kill()
            code = self._proc.returncode if self._proc else None
            raise UnavailableError(f"worker {self.label} exited while loading (exit code {code})") from None
        if header.get("op") != "ready":
            await self._kill()
            raise failure(header, f"worker {self.label} failed to start")
        self.info = WorkerInfo(int(header["pid"]), float(header["load_s"]), float(header["rss_mb"]))
        self.alive = True
        self._read_task = asyncio.create_task(self._read_loop())
        if self.stall_timeout_s > 0:
            loop = asyncio.get_running_loop()
            self._last_frame_s = self._last_watch_s = loop.time()
            self._watch = loop.call_later(_WATCH_S, self._check_stall)
        return self.info

    async def run(self, inputs: Arrays, outputs: Sequence[str] | None, model: str | None = None) -> tuple[Arrays, float]:
        """Run one batch of `model` (default: the worker's only model); returns the output arrays
        and the compute seconds measured inside the worker."""
        rows = int(inputs[0][1].shape[0]) if inputs and inputs[0][1].ndim else 0
        # One request at a time (this batch and the last of one row), the loop polls for this
        # answer and the worker for its next batch (both or neither: either alone gained nothing). With more in flight, answering
        # sooner split batches unevenly (1, 7, 1, 7 rows at 8 in flight: slower), and polling
        # workers took CPU from the processes beside them.
        poll = poll_of(asyncio.get_running_loop()) if self.poll_s > 0 and rows == self._last_rows == 1 else None
        self._last_rows = rows
        held = poll is not None and poll.hold(self._compute_s)
        header: dict[str, Any] = {"op": "infer", "model": model, "outputs": list(outputs) if outputs else None}
        if held:
            header["poll_us"] = round(self.poll_s * 1e6)
        try:
            header, payload = await self._call(header, inputs)
        finally:
            if held and poll is not None:
                poll.release()
        if not header.get("ok"):
            raise failure(header, "inference failed")
        self._compute_s = float(header.get("compute_s", 0.0))
        return wire.decode_tensors(header, payload), self._compute_s

    async def load_model(self, name: str, path: str) -> None:
        """Load one more model into the running worker (time sharing of its slice)."""
        header, _ = await self._call({"op": "load", "model": name, "path": path}, [])
        if not header.get("ok"):
            raise failure(header, f"cannot load model {name}")
        self.models[name] = path

    async def unload_model(self, name: str) -> None:
        """Drop a model from the running worker."""
        header, _ = await self._call({"op": "unload", "model": name}, [])
        if not header.get("ok"):
            raise InvalidArgumentError(f"cannot unload model {name}: {header.get('error', 'unknown error')}")
        self.models.pop(name, None)

    async def memory_mb(self) -> float:
        header, _ = await self._call({"op": "stats"}, [])
        return float(header.get("rss_mb", 0.0))

    async def stop(self, force: bool = False) -> None:
        """Close the channel (the worker exits by itself), then make sure the process is gone;
        `force` kills it at once (a hung worker). What it still held fails."""
        self._stopping = True
        self.alive = False
        if self._watch is not None:
            self._watch.cancel()
        if self._writer is not None:
            self._writer.close()
        if self._proc is not None:
            try:
                if force:
                    raise asyncio.TimeoutError
                await asyncio.wait_for(self._proc.wait(), 5.0)
            except asyncio.TimeoutError:
                await self._kill()
        if self._read_task is not None:
            self._read_task.cancel()
        self._fail_pending(WorkerLostError(f"worker {self.label} was stopped while running this request"))
        self._close_arena()

    def _close_arena(self) -> None:
        if self._arena is not None:
            self._arena.close()
            self._arena = None

    # ---- internals -----------------------------------------------------------------------
    async def _call(self, header: dict[str, Any], arrays: Arrays) -> tuple[dict[str, Any], bytes]:
        if not self.alive or self._writer is None:
            raise UnavailableError(f"worker {self.label} is not running")
        req_id = next(self._ids)
        header["id"] = req_id
        fut: asyncio.Future[tuple[dict[str, Any], bytes]] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        arena = self._arena
        if arena is None or not arrays:
            self._writer.writelines(wire.encode(header, arrays))
            return await fut
        frames, taken = wire.encode_placed(header, arrays, arena)
        self._writer.writelines(frames)
        try:
            return await fut
        finally:  # answered, failed or cancelled: the worker no longer reads these regions
            for start in taken:
                arena.free(start)

    async def _read_frame(self) -> tuple[dict[str, Any], bytes]:
        assert self._reader is not None
        prefix = await self._reader.readexactly(wire.PREFIX.size)
        head_len, payload_len = wire.PREFIX.unpack(prefix)
        header = orjson.loads(await self._reader.readexactly(head_len))
        payload = await self._reader.readexactly(payload_len) if payload_len else b""
        return header, payload

    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                header, payload = await self._read_frame()
                self._last_frame_s = loop.time()
                fut = self._pending.pop(int(header.get("id", -1)), None)
                if fut is not None and not fut.done():
                    fut.set_result((header, payload))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            return
        except Exception as exc:  # a protocol error: treat the worker as lost
            log.error("worker %s protocol error: %s", self.label, exc)
        await self._lost()

    def _check_stall(self) -> None:
        """The watchdog: kill a worker silent for longer than stall_timeout_s (its heartbeat
        thread stopped too: the process is paused or wedged). A late watchdog means the event
        loop itself was held up: the worker's frames may be waiting unread, so it gets a fresh
        allowance instead."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now - self._last_watch_s > 4 * _WATCH_S:
            self._last_frame_s = now
        self._last_watch_s = now
        silent_s = now - self._last_frame_s
        if silent_s > self.stall_timeout_s and self.alive and self._proc is not None:
            self._lost_reason = f"stalled: no heartbeat for {silent_s:.1f} s"
            log.warning("worker %s %s; killing it", self.label, self._lost_reason)
            try:
                self._proc.kill()  # the read loop sees the channel close and reports it lost
            except ProcessLookupError:
                pass
            return
        self._watch = loop.call_later(_WATCH_S, self._check_stall)

    def _fail_pending(self, err: Exception) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(err)
        self._pending.clear()

    async def _lost(self) -> None:
        was_alive = self.alive
        self.alive = False
        if self._watch is not None:
            self._watch.cancel()
        code: int | None = None
        if self._proc is not None:
            try:
                code = await asyncio.wait_for(self._proc.wait(), 2.0)
            except asyncio.TimeoutError:
                await self._kill()
                code = self._proc.returncode
        why = self._lost_reason or f"exited (exit code {code})"
        self._fail_pending(WorkerLostError(f"worker {self.label} {why} while running this request"))
        self._close_arena()
        if was_alive and not self._stopping and self._on_exit is not None:
            self._on_exit(self, code)

    async def _kill(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            try:
                self._proc.kill()
            except ProcessLookupError:
                pass
            await self._proc.wait()
        if self._writer is not None:
            self._writer.close()
        self._close_arena()


