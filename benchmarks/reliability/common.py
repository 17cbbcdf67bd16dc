"""Shared pieces of the reliability benchmarks: example models, a real `modelplex serve` subprocess
on a fresh repository and state folder, the server's process tree (memory, descriptors, threads),
request kinds and Poisson traces, and JSON + table output.

The load generator lives in openloop.py, the statistics in analysis.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
for _p in (HERE.parent, ROOT / "tests" / "support"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import numpy as np  # noqa: E402
import psutil  # noqa: E402

import loadgen  # noqa: E402
from models import slow_conv  # noqa: E402
from server import RunningServer, start_server  # noqa: E402

log = logging.getLogger("reliability")
RESULTS = HERE / "results"
SLO_MODEL, PLAIN_MODEL = "slo", "plain"  # the model with `slo_ms` in its config, the one without


# ---- models and server --------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """The CNN both models are: FP32 [1, 1, size, size] through `layers` 16-channel 3x3 convolutions
    (defaults: about 2.5 ms per image on one core of the project machine)."""

    layers: int = 8
    size: int = 96
    slo_ms: float = 50.0  # the SLO model's `slo_ms`

    def input(self) -> np.ndarray:
        return np.random.default_rng(0).standard_normal((1, 1, self.size, self.size)).astype(np.float32)



def add_load_args(ap: argparse.ArgumentParser, max_outstanding: int, timeouts: bool = True) -> None:
    """The flags every reliability script shares: deadlines, the model, the server's cores and
    the client's bounds (`timeouts`: a share of plain's requests carry a `timeout`)."""
    ap.add_argument("--slo-ms", type=float, default=50.0, help="slo_ms of the slo model")
    if timeouts:
        ap.add_argument("--timeout-ms", type=float, default=50.0, help="`timeout` sent with a share of plain's requests")
        ap.add_argument("--timeout-share", type=float, default=0.5, help="share of plain's requests with a timeout")
    ap.add_argument("--bound-ms", type=float, default=1000.0,
                    help="'good' bound for requests without a deadline (the server's --max-wait-s)")
    ap.add_argument("--layers", type=int, default=8, help="CNN depth")
    ap.add_argument("--size", type=int, default=96, help="CNN input side")
    ap.add_argument("--cpus", default="0-1", help="server cores")
    ap.add_argument("--max-outstanding", type=int, default=max_outstanding, help="client bound on requests in flight")
    ap.add_argument("--client-timeout", type=float, default=60.0, help="seconds before a request counts unanswered")

def write_repository(root: Path, spec: ModelSpec) -> Path:
    """Two copies of the CNN: `slo` (config.yaml sets slo_ms) and `plain` (no SLO)."""
    repo = root / "models"
    for name, slo in ((SLO_MODEL, spec.slo_ms), (PLAIN_MODEL, None)):
        slow_conv(repo / name / "1" / "model.onnx", spec.layers, spec.size)
        text = "instances: 1\n" + (f"slo_ms: {slo}\n" if slo is not None else "")
        (repo / name / "config.yaml").write_text(text)
    return repo


def start(root: Path, spec: ModelSpec, cpus: str, max_wait_s: float) -> RunningServer:
    """`python -m modelplex.cli serve` on a fresh repository and state folder under `root`; a
    request without a deadline waits at most `max_wait_s` (the bound it is judged by)."""
    root.mkdir(parents=True, exist_ok=True)
    repo = write_repository(root, spec)
    srv = start_server(repo, root / "state", ["--cpus", cpus, "--grpc-port", "0", "--max-wait-s", f"{max_wait_s:g}"])
    wait_ready(srv)
    log.info("server pid %d on port %d", srv.proc.pid, srv.http_port)
    return srv


def wait_ready(srv: RunningServer, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if srv.request("/v2/health/ready", timeout_s=5)[0] == 200:
            return
        time.sleep(0.2)
    raise RuntimeError(f"server not ready in {timeout_s} s:\n{srv.log()[-4000:]}")


def server_status(srv: RunningServer) -> dict[str, object]:
    with urllib.request.urlopen(f"http://{srv.http_url}/v2/status", timeout=10) as r:
        doc: dict[str, object] = json.loads(r.read())
    return doc


def worker_pids(srv: RunningServer, model: str) -> list[int]:
    """Every worker process of the slices serving `model` (from GET /v2/status)."""
    doc = server_status(srv)
    slices = doc.get("slices", [])
    assert isinstance(slices, list)
    pids: list[int] = []
    for s in slices:
        if model in s.get("models", []):
            pids.extend(int(p) for p in s["worker"].get("pids", []) or [s["worker"]["pid"]] if p)
    if not pids:
        raise RuntimeError(f"no worker pid for model {model} in /v2/status: {slices}")
    return pids


def signal_pids(pids: Sequence[int], sig: signal.Signals) -> list[int]:
    """Send `sig` to each pid; returns the pids that no longer existed."""
    gone = []
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            gone.append(pid)
    return gone


def keep_log(srv: RunningServer, name: str) -> Path:
    """Copy the server's log to results/logs/<name>.log (the temporary folder goes away)."""
    dest = RESULTS / "logs" / f"{name}.log"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(srv.log_path, dest)
    return dest


# ---- the server's process tree -------------------------------------------------------------------
def tree_usage(pid: int) -> dict[str, float]:
    """RSS (MiB: frontend, workers, total), open descriptors and threads of a process and its children."""
    root = psutil.Process(pid)
    procs = [root]
    try:
        procs += root.children(recursive=True)
    except psutil.Error:
        pass
    out = {"frontend_rss_mb": 0.0, "workers_rss_mb": 0.0, "fds": 0.0, "threads": 0.0, "processes": 0.0}
    for p in procs:
        try:
            with p.oneshot():
                rss = p.memory_info().rss / 2**20
                fds, threads = p.num_fds(), p.num_threads()
        except psutil.Error:
            continue
        out["frontend_rss_mb" if p.pid == pid else "workers_rss_mb"] += rss
        out["fds"] += fds
        out["threads"] += threads
        out["processes"] += 1
    out["rss_mb"] = out["frontend_rss_mb"] + out["workers_rss_mb"]
    return {k: round(v, 1) for k, v in out.items()}


@dataclass
class TreeSampler:
    """Samples tree_usage every `period_s` in a thread; `samples` are (seconds since start, usage)."""

    pid: int
    period_s: float
    samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> "TreeSampler":
        t0 = time.perf_counter()

        def run() -> None:
            while True:
                self.samples.append((time.perf_counter() - t0, tree_usage(self.pid)))
                if self._stop.wait(self.period_s):
                    return

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def peak(self, key: str) -> float:
        return max((u[key] for _, u in self.samples), default=0.0)


# ---- request kinds and traces --------------------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    """One pre-encoded request variant and how its answer is judged."""

    model: str
    raw: bytes  # the whole HTTP request (binary tensor body)
    deadline_s: float | None  # the deadline it carries (its `timeout`, else the model's SLO); None: none
    bound_s: float  # an answer within this is "good" (the deadline, else a stated bound)
    label: str


def make_kind(srv: RunningServer, model: str, x: np.ndarray, deadline_s: float | None, bound_s: float,
              timeout_param: bool = False) -> Kind:
    """A request for `model`; with `timeout_param` it carries `timeout` = deadline_s in µs (the
    KServe schedule_policy parameter modelplex reads as the request's deadline)."""
    body, hlen = loadgen.infer_body_binary("x", x)
    if timeout_param:
        assert deadline_s is not None
        head = json.loads(body[:hlen])
        head["parameters"]["timeout"] = int(deadline_s * 1e6)
        head_b = json.dumps(head).encode()
        body, hlen = head_b + body[hlen:], len(head_b)
    raw = loadgen.http_request("127.0.0.1", srv.http_port, f"/v2/models/{model}/infer", body, hlen)
    label = model + (f"+timeout{deadline_s * 1e3:g}ms" if timeout_param and deadline_s else "")
    return Kind(model, raw, deadline_s, deadline_s if deadline_s is not None else bound_s, label)


def standard_kinds(srv: RunningServer, spec: ModelSpec, timeout_ms: float, bound_ms: float) -> list[Kind]:
    """[slo model; plain model without deadline; plain model with a `timeout` parameter]."""
    x = spec.input()
    return [
        make_kind(srv, SLO_MODEL, x, spec.slo_ms / 1e3, bound_ms / 1e3),
        make_kind(srv, PLAIN_MODEL, x, None, bound_ms / 1e3),
        make_kind(srv, PLAIN_MODEL, x, timeout_ms / 1e3, bound_ms / 1e3, timeout_param=True),
    ]


def capacity_kinds(srv: RunningServer, spec: ModelSpec) -> list[Kind]:
    """[slo model; plain model], both with a 60 s `timeout` (it overrides the SLO): capacity is
    measured without deadline rejections."""
    x = spec.input()
    return [make_kind(srv, m, x, 60.0, 60.0, timeout_param=True) for m in (SLO_MODEL, PLAIN_MODEL)]


def poisson_trace(rates: dict[int, float], duration_s: float, seed: int,
                  split: dict[int, tuple[int, float]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Arrival times and kind indices of Poisson streams (kind -> req/s), merged and sorted.
    `split` {kind: (other kind, share)} sends that share of a stream's arrivals as the other kind."""
    rng = np.random.default_rng(seed)
    times, kinds = [], []
    for k, rate in rates.items():
        n = int(rate * duration_s * 1.2) + 20
        t = np.cumsum(rng.exponential(1.0 / rate, n)) if rate > 0 else np.array([])
        t = t[t < duration_s]
        kk = np.full(len(t), k)
        if split and k in split:
            other, share = split[k]
            kk[rng.random(len(t)) < share] = other
        times.append(t)
        kinds.append(kk)
    t_all, k_all = np.concatenate(times), np.concatenate(kinds)
    order = np.argsort(t_all, kind="stable")
    return t_all[order], k_all[order]


# ---- output --------------------------------------------------------------------------------------
def write_json(name: str, doc: Mapping[str, object], out: str | None = None) -> Path:
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=_jsonable))
    log.info("wrote %s", path)
    return path


def _jsonable(v: object) -> object:
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"not JSON: {type(v)}")


def fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}" if abs(v) < 1 else f"{v:.1f}"
    return str(v)


def table(headers: Sequence[str], rows: Iterator[Sequence[object]] | Sequence[Sequence[object]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
