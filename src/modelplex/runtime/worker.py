"""Slice worker process: pinned to its slice's cores (or given its GPU share), runs batches of its
models in their engines (runtime.engines: ONNX Runtime, PyTorch).

A slice may hold several models that take turns on it (time sharing); each request names one.
Started by WorkerHandle with one end of a socketpair; speaks the frames of runtime.wire:
  -> {"op": "infer", "id": n, "model": name, "outputs": [names] | null, "tensors": [...]} + raw inputs
  <- {"op": "result", "id": n, "ok": true, "compute_s": x, "tensors": [...]} + raw outputs
  <- {"op": "result", "id": n, "ok": false, "error": "...", "fault": "input" | "device" | "poisoned"}
At start it sends {"op": "ready", ...} after loading and warming up, or {"op": "failed", "error":
..., "fault": ...} (a GPU worker whose model is not really on the GPU fails with fault "device").
A batch whose error leaves the CUDA context unusable (runtime.faults) is answered, then the
worker exits with POISONED_EXIT and the frontend starts a fresh one.
Once ready, a thread sends {"op": "beat"} every BEAT_S seconds, so the frontend tells a paused or
hung process from one that is busy computing (onnxruntime releases the GIL while it runs).
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import socket
import sys
import threading
import time
from typing import Any

from modelplex.runtime.heap import trim_heap

# Pin before onnxruntime starts its thread pools, so they inherit the slice's cores.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

from modelplex.logformat import LOG_FORMAT_ENV, JsonLinesFormatter, parse_log_format  # noqa: E402
from modelplex.runtime.engines import DeviceUnusableError, Engine, engine_kind, env_mem_limit, load_engine  # noqa: E402
from modelplex.runtime.faults import Fault, classify, first_line  # noqa: E402

log = logging.getLogger(__name__)

LOG_LEVEL_ENV = "MODELPLEX_LOG_LEVEL"  # set by the modelplex CLI's --log-level; workers inherit it
BEAT_S = 0.2  # heartbeat period
TRIM_IDLE_S = 1.0  # idle this long after an answer, the worker returns freed heap to the system
POISONED_EXIT = 3  # exit status of a worker whose CUDA context a batch left unusable


def configure_logging() -> None:
    """Log lines on stderr as `modelplex worker: message` (at debug with the pid, level and logger),
    at the level in MODELPLEX_LOG_LEVEL (debug, info, warning or error; default info); as JSON
    lines when MODELPLEX_LOG_FORMAT is json."""
    name = (os.environ.get(LOG_LEVEL_ENV) or "info").strip().lower()
    level = getattr(logging, name.upper(), None) if name in ("debug", "info", "warning", "error") else None
    fmt = "modelplex worker: %(message)s"
    if level == logging.DEBUG:
        fmt = "modelplex worker %(process)d: %(name)s: %(levelname)s: %(message)s"
    logging.basicConfig(level=logging.INFO if level is None else level, format=fmt, stream=sys.stderr)
    out_format = parse_log_format(os.environ.get(LOG_FORMAT_ENV))
    if out_format == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonLinesFormatter())
    if level is None:
        log.warning("%s=%r is not one of debug, info, warning, error; using info", LOG_LEVEL_ENV, name)
    if out_format is None:
        log.warning("%s=%r is not one of text, json; using text", LOG_FORMAT_ENV, os.environ.get(LOG_FORMAT_ENV))


def _pin(cpus: list[int]) -> None:
    if cpus and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, cpus)
        except OSError as exc:  # cores outside this container: run unpinned, say so
            log.warning("cannot pin to cores %s: %s", cpus, exc)


def _recv_exact(sock: socket.socket, n: int) -> bytearray | None:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            return None
        got += k
    return buf


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def _load(path: str, threads: int, provider: str) -> Engine:
    """Load a model into its engine and warm it up (the device is checked on the way)."""
    engine = load_engine(path, threads, provider, env_mem_limit())
    engine.warm_up()
    return engine


def _load_or_unload(header: dict[str, Any], loaded: dict[str, Engine], threads: int, provider: str) -> dict[str, Any]:
    """Load one more model into this worker, or drop one (the executor's load/unload)."""
    name = str(header.get("model"))
    try:
        if header.get("op") == "load":
            loaded[name] = _load(str(header.get("path")), threads, provider)
        elif loaded.pop(name, None) is None:
            raise KeyError(f"this worker does not hold model {name!r}")
    except Exception as exc:  # a failed load must not kill the worker
        fault = Fault.DEVICE if isinstance(exc, DeviceUnusableError) else Fault.INPUT
        return {"op": "result", "id": header.get("id"), "ok": False, "error": str(exc), "fault": fault.value}
    return {"op": "result", "id": header.get("id"), "ok": True}


def _load_all(sock: socket.socket, models: dict[str, str], threads: int, provider: str) -> "dict[str, Engine] | None":
    """Load every model, then say ready (or why not: None)."""
    from modelplex.runtime import wire

    t0 = time.perf_counter()
    loaded: dict[str, Engine] = {}
    try:  # a green-context slice (runtime.gpu_green): enter it before any model touches the GPU
        from modelplex.runtime.gpu_green import enter_from_env

        green = enter_from_env()
        if green:
            log.info("%s", green)
    except Exception as exc:
        sock.sendall(b"".join(wire.encode({"op": "failed", "error": f"cannot enter the slice's green context: {first_line(str(exc))}",
                                           "fault": Fault.DEVICE.value}, [])))
        return None
    for name, path in models.items():
        try:
            loaded[name] = _load(path, threads, provider)
        except Exception as exc:  # report the load failure, then exit
            fault = Fault.DEVICE if isinstance(exc, DeviceUnusableError) else classify(str(exc), engine_kind(path), type(exc).__name__)
            msg = f"cannot load model {name} from {path}: {exc if fault is Fault.INPUT else first_line(str(exc))}"
            log.log(logging.DEBUG if fault is Fault.INPUT else logging.ERROR, "%s", msg)
            sock.sendall(b"".join(wire.encode({"op": "failed", "error": msg, "fault": fault.value}, [])))
            return None
    load_s = time.perf_counter() - t0
    for name, engine in loaded.items():
        log.log(logging.INFO if provider == "cuda" else logging.DEBUG, "model %s runs on %s", name, engine.device())
    log.debug("loaded %s on %d thread(s) (%s) in %.2f s", ", ".join(loaded), threads, provider, load_s)
    sock.sendall(
        b"".join(wire.encode({"op": "ready", "load_s": load_s, "rss_mb": _rss_mb(), "pid": os.getpid()}, []))
    )
    return loaded


class _Channel:
    """The socket to the frontend, shared by the serving loop and the heartbeat thread."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._last_answer_s = 0.0  # when the last answer went out
        self._trimmed = True  # the heap was trimmed since then

    def send(self, frames: list[bytes | memoryview]) -> None:
        with self._lock:
            self.sock.sendall(b"".join(frames))

    def answered(self, frames: list[bytes | memoryview]) -> None:
        """Send an answer; once idle for TRIM_IDLE_S after it, the heap is trimmed."""
        self.send(frames)
        self._last_answer_s = time.monotonic()
        self._trimmed = False

    def beat(self) -> None:
        """Send a heartbeat every BEAT_S until the channel closes (a daemon thread)."""
        from modelplex.runtime import wire

        frame = wire.encode({"op": "beat"}, [])
        while not self._closed.wait(BEAT_S):
            try:
                self.send(frame)
            except OSError:
                return
            if not self._trimmed and time.monotonic() - self._last_answer_s > TRIM_IDLE_S:
                self._trimmed = True
                trim_heap()

    def close(self) -> None:
        self._closed.set()


class NextFrame:
    """Waits for the frontend's next frame. After a batch whose header asks for it (`poll_us`:
    one request at a time, on cores that are the worker's own; WorkerHandle.run), the worker
    polls its socket that long instead of sleeping at once: the next batch then finds it running
    -- no wake-up of an idle core, warm caches (benchmarks/README.md, "Polling"). It polls only
    while frames keep coming within that time (measured without polling, by one select with that
    timeout), so a worker whose batches come far apart sleeps at once and spends nothing."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._polling = False  # the last frame came within the poll time of the one before

    @property
    def polling(self) -> bool:
        """The next wait with a poll time polls (frames have been coming within it)."""
        return self._polling

    def wait(self, poll_s: float) -> None:
        """Return when a frame is readable, or when poll_s has passed (the read then blocks)."""
        if poll_s <= 0:
            return
        if not self._polling:
            self._polling = bool(select.select([self.sock], [], [], poll_s)[0])
            return
        end = time.perf_counter() + poll_s
        while time.perf_counter() < end:
            if select.select([self.sock], [], [], 0)[0]:
                return
            os.sched_yield()  # a process waiting for this core runs first
        self._polling = False


def serve(sock: socket.socket, models: dict[str, str], threads: int, provider: str, arena: memoryview | None = None) -> int:
    """Load, say ready, answer batches until the frontend closes the channel (exit 0) or the
    device context is lost (exit POISONED_EXIT); `arena`: the shared memory where the frontend may
    place batch inputs (runtime.arena)."""
    loaded = _load_all(sock, models, threads, provider)
    if loaded is None:
        return 1
    channel = _Channel(sock)
    threading.Thread(target=channel.beat, name="heartbeat", daemon=True).start()
    try:
        return _loop(channel, loaded, threads, provider, arena)
    finally:
        channel.close()


def _loop(channel: _Channel, loaded: dict[str, Engine], threads: int, provider: str, arena: memoryview | None) -> int:
    import orjson

    from modelplex.runtime import wire

    sock = channel.sock
    default = next(iter(loaded))
    next_frame, poll_s = NextFrame(sock), 0.0
    while True:
        next_frame.wait(poll_s)
        prefix = _recv_exact(sock, wire.PREFIX.size)
        if prefix is None:
            return 0  # frontend closed the channel: shut down
        head_len, payload_len = wire.PREFIX.unpack(prefix)
        head = _recv_exact(sock, head_len)
        payload = _recv_exact(sock, payload_len) if payload_len else bytearray()
        if head is None or payload is None:
            return 0
        header = orjson.loads(head)
        op = header.get("op")
        if op == "stats":
            channel.send(wire.encode({"op": "stats", "id": header.get("id"), "rss_mb": _rss_mb()}, []))
            continue
        if op in ("load", "unload"):
            channel.send(wire.encode(_load_or_unload(header, loaded, threads, provider), []))
            continue
        frames, fault = _infer(header, payload, loaded, default, arena)
        channel.answered(frames)
        poll_s = float(header.get("poll_us") or 0) / 1e6
        if fault is Fault.POISONED:
            log.error("exiting: this worker's CUDA context is lost (%s); the slice starts a new one",
                      frames_error(frames))
            return POISONED_EXIT


def frames_error(frames: list[bytes | memoryview]) -> str:
    """The error of an error frame (for the exit message)."""
    import orjson

    return str(orjson.loads(bytes(frames[1])).get("error", ""))


def _infer(header: dict[str, Any], payload: bytearray, loaded: dict[str, Engine],
           default: str, arena: memoryview | None = None) -> tuple[list[bytes | memoryview], Fault | None]:
    """Run one batch; the result frames (an error frame if it failed: a bad batch must not kill
    the worker) and the fault when it failed (POISONED: the worker must exit after answering)."""
    from modelplex.runtime import wire

    req_id = header.get("id")
    engine: Engine | None = None
    try:
        engine = loaded.get(header.get("model") or default)
        if engine is None:
            raise KeyError(f"this worker does not hold model {header.get('model')!r}")
        feeds = dict(wire.decode_tensors(header, payload, arena))
        names = header.get("outputs") or engine.outputs
        t_run = time.perf_counter()
        results = engine.run(feeds, names)
        compute_s = time.perf_counter() - t_run
        return wire.encode(
            {"op": "result", "id": req_id, "ok": True, "compute_s": compute_s}, list(zip(names, results))
        ), None
    except Exception as exc:  # a bad batch must not kill the worker (a poisoned context does, after answering)
        text = str(exc)
        fault = classify(text, engine.kind if engine is not None else "", type(exc).__name__)
        if fault is Fault.INPUT:
            log.debug("request %s failed: %s", req_id, text)
        else:
            text = first_line(text)
            log.error("request %s failed on the device (%s): %s", req_id, fault.value, text)
        error = {"op": "result", "id": req_id, "ok": False, "error": text, "fault": fault.value}
        return wire.encode(error, []), fault


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelplex-worker")
    parser.add_argument("--fd", type=int, required=True, help="socket to the frontend")
    parser.add_argument("--model", action="append", required=True,
                        help="NAME=model file (.onnx, or .pt/.pt2 with config.pbtxt; repeat for a shared slice)")
    parser.add_argument("--cpus", default="", help="comma-separated cores of the slice")
    parser.add_argument("--threads", type=int, default=0, help="engine threads (default: cores)")
    parser.add_argument("--provider", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--arena-fd", type=int, default=-1, help="memfd of the shared-memory arena for batch inputs")
    parser.add_argument("--arena-bytes", type=int, default=0, help="its size")
    args = parser.parse_args(argv)
    configure_logging()
    cpus = [int(c) for c in args.cpus.split(",") if c]
    _pin(cpus)
    threads = args.threads or max(1, len(cpus) or (os.cpu_count() or 1))
    sock = socket.socket(fileno=args.fd)
    try:
        models = dict(m.split("=", 1) if "=" in m else ("model", m) for m in args.model)
        arena = None
        if args.arena_fd >= 0:
            import mmap

            arena = memoryview(mmap.mmap(args.arena_fd, args.arena_bytes))
        return serve(sock, models, threads, args.provider, arena)
    except (BrokenPipeError, ConnectionResetError):
        return 0
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
