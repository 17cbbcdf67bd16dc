"""Fuzz a real `modelplex serve` with malformed KServe v2 requests, HTTP and gRPC.

    PYTHONPATH=src python benchmarks/reliability/fuzz.py --http 10000 --grpc 2000 --seed 1

Starts a server on a repository of small ONNX models (FP32, integer types, BYTES), sends
hypothesis-generated requests (reproducible from the seed) and a list of hand-written hostile
ones, and reports the answers per status, 5xx (target 0), hangs (no answer in 5 s; target 0),
crashes (server gone or a worker restarted; target 0), the slowest answer, and whether valid
requests are served afterwards. Writes benchmarks/reliability/results/fuzz.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import grpc  # noqa: E402
import numpy as np  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import fuzz_cases as fc  # noqa: E402
import fuzz_hostile  # noqa: E402
from fuzz_cases import GrpcCase, HttpCase  # noqa: E402
from modelplex.serving.grpc_gen import grpc_service_pb2 as pb  # noqa: E402
from modelplex.bench.target import free_port  # noqa: E402

HANG_S = 5.0  # an answer slower than this is a hang
GIVE_UP_HANGS = 12  # this many hangs in a row: the server is wedged, the rest is not sent
GRPC_SERVER_ERRORS = {"INTERNAL", "UNKNOWN", "DATA_LOSS"}
RESULTS = Path(__file__).resolve().parent / "results" / "fuzz.json"
T = TypeVar("T")


@dataclass
class Tally:
    """Outcomes of one protocol's requests (threads add under the lock)."""

    statuses: Counter[str] = field(default_factory=Counter)  # status (HTTP code or gRPC code name) -> count
    families: Counter[str] = field(default_factory=Counter)  # generator -> requests sent
    hangs: int = 0  # no answer within HANG_S
    server_errors: list[dict[str, str]] = field(default_factory=list)  # first few 5xx / INTERNAL / hangs, for the report
    server_error_count: int = 0
    slowest_ms: float = 0.0
    slowest_case: str = ""
    hangs_in_row: int = 0  # GIVE_UP_HANGS of them stop the run
    skipped: int = 0  # cases not sent once the server was wedged
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def wedged(self) -> bool:
        return self.hangs_in_row >= GIVE_UP_HANGS

    def add(self, family: str, status: str, elapsed_s: float, what: str, answer: str, server_error: bool) -> None:
        with self.lock:
            self.families[family] += 1
            self.statuses[status] += 1
            self.hangs += status == "hang"
            self.hangs_in_row = self.hangs_in_row + 1 if status == "hang" else 0
            if server_error or status == "hang":
                self.server_error_count += server_error
                if len(self.server_errors) < 20:
                    self.server_errors.append({"family": family, "status": status, "request": what[:300], "answer": answer[:300]})
            if elapsed_s * 1e3 > self.slowest_ms and status != "hang":
                self.slowest_ms, self.slowest_case = elapsed_s * 1e3, f"{family}: {what[:120]}"

    def summary(self) -> dict[str, Any]:
        return {"sent": sum(self.families.values()), "by_status": dict(sorted(self.statuses.items())),
                "by_family": dict(sorted(self.families.items())), "server_errors": self.server_error_count,
                "hangs": self.hangs, "not_sent_server_wedged": self.skipped, "slowest_ms": round(self.slowest_ms, 1), "slowest_case": self.slowest_case,
                "server_error_examples": self.server_errors}


# ---- the server ------------------------------------------------------------------------------
def start_server(root: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    repo = fc.build_repository(root / "models")
    http_port, grpc_port = free_port(), free_port()
    log = open(root / "server.log", "wb")
    cmd = [sys.executable, "-m", "modelplex.cli", "serve", "--repository", str(repo), "--state-dir", str(root / "state"),
           "--http-port", str(http_port), "--grpc-port", str(grpc_port), "--max-body-mb", "4"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            status, _ = http_call(http_port, "GET", "/v2/health/ready")
            if status == 200:
                return proc, http_port, grpc_port
        except OSError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not come up:\n" + (root / "server.log").read_text(errors="replace")[-3000:])


def http_call(port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def workers_state(port: int) -> tuple[int, set[int], bool]:
    """Restarts summed over slices, the worker pids, and whether all are alive."""
    _, raw = http_call(port, "GET", "/v2/status")
    slices = json.loads(raw)["slices"]
    pids = {int(p) for s in slices for p in s["worker"]["pids"]}
    return sum(int(s["restarts"]) for s in slices), pids, all(s["worker"]["alive"] for s in slices)


# ---- HTTP ------------------------------------------------------------------------------------
def _request_bytes(case: HttpCase) -> bytes:
    if case.raw is not None:
        return case.raw
    head = f"{case.method} {case.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(case.body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in case.headers)
    return head.encode("utf-8", "surrogateescape") + b"\r\n" + case.body


class HttpSender:
    """One keep-alive connection; a fresh one after a close, a hang or a raw case."""

    def __init__(self, port: int, tally: Tally) -> None:
        self.port, self.tally = port, tally
        self.sock: socket.socket | None = None

    def send(self, case: HttpCase) -> None:
        if case.raw is not None:
            self.close()
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=HANG_S)
        what = f"{case.method} {case.path} {dict(case.headers)} {case.body[:200]!r}"
        t0 = time.perf_counter()
        try:
            self.sock.sendall(_request_bytes(case))
            resp = http.client.HTTPResponse(self.sock, method=case.method)
            resp.begin()
            answer = resp.read()
            status = str(resp.status)
            if resp.will_close:
                self.close()
        except (socket.timeout, TimeoutError):
            status, answer = "hang", b""
            self.close()
        except (ConnectionError, http.client.HTTPException, OSError) as exc:
            status, answer = "closed", repr(exc).encode()  # the server closed it (malformed HTTP)
            self.close()
        elapsed = time.perf_counter() - t0
        self.tally.add(case.family, status, elapsed, what, answer.decode("utf-8", "replace"), status.startswith("5"))
        if case.raw is not None:
            self.close()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


# ---- gRPC ------------------------------------------------------------------------------------
class GrpcSender:
    def __init__(self, channel: grpc.Channel, tally: Tally) -> None:
        self.channel, self.tally = channel, tally

    def send(self, case: GrpcCase) -> None:
        path = fc.GRPC_SERVICE + case.method
        what = f"{case.method} {[p[:120] for p in case.payloads]!r}"
        t0 = time.perf_counter()
        server_error, answer = False, ""
        try:
            if case.method == "ModelStreamInfer":
                call = self.channel.stream_stream(path)
                for raw in call(iter(case.payloads), timeout=HANG_S):
                    msg = pb.ModelStreamInferResponse.FromString(raw)
                    if msg.error_message.startswith("internal error"):
                        server_error, answer = True, msg.error_message
                status = "OK"
            else:
                self.channel.unary_unary(path)(case.payloads[0], timeout=HANG_S)
                status = "OK"
        except grpc.RpcError as exc:
            code = exc.code()
            status = "hang" if code is grpc.StatusCode.DEADLINE_EXCEEDED else code.name
            answer = str(exc.details())
            server_error = server_error or code.name in GRPC_SERVER_ERRORS
        self.tally.add(case.family, status, time.perf_counter() - t0, what, answer, server_error)


# ---- driving ---------------------------------------------------------------------------------
def drive(strategy: st.SearchStrategy[T], count: int, seed_value: int, consume: Callable[[T], None]) -> None:
    """Draw `count` examples of `strategy` reproducibly from the seed (hypothesis outside pytest)."""
    done = 0
    while done < count:
        want = count - done

        @settings(max_examples=want, database=None, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @seed(seed_value + done)
        @given(strategy)
        def run(case: T) -> None:
            nonlocal done
            if done < count:
                consume(case)
                done += 1

        before = done
        run()
        if done == before:
            break


def run_pool(senders: list[Any], tally: Tally, cases: Callable[[Callable[[Any], None]], None]) -> None:
    """Cases from `cases(put)` go to the senders, one thread each (none once the server is wedged)."""
    work: queue.Queue[Any] = queue.Queue(maxsize=64)

    def loop(sender: Any) -> None:
        while (case := work.get()) is not None:
            if tally.wedged:
                with tally.lock:
                    tally.skipped += 1
                continue
            sender.send(case)

    threads = [threading.Thread(target=loop, args=(s,), daemon=True) for s in senders]
    for t in threads:
        t.start()
    cases(work.put)
    for _ in threads:
        work.put(None)
    for t in threads:
        t.join()


def valid_after(http_port: int, channel: grpc.Channel) -> dict[str, bool]:
    out = {}
    for model in fc.MODELS:
        status, raw = http_call(http_port, "POST", f"/v2/models/{model}/infer", json.dumps(fc.valid_json(model)).encode())
        out[f"http {model}"] = status == 200 and len(json.loads(raw)["outputs"]) == len(fc.MODELS[model])
    x = fc.valid_arrays("fp32")["x"]
    msg = pb.ModelInferRequest(model_name="fp32", raw_input_contents=[x.tobytes()])
    msg.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
    try:
        resp = pb.ModelInferResponse.FromString(channel.unary_unary(fc.GRPC_SERVICE + "ModelInfer")(msg.SerializeToString(), timeout=30))
        out["grpc fp32"] = np.array_equal(np.frombuffer(resp.raw_output_contents[0], np.float32).reshape(x.shape), x)
    except grpc.RpcError:
        out["grpc fp32"] = False
    return out


def fuzz(http_n: int, grpc_n: int, seed_value: int, workers: int = 4) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="modelplex-fuzz-") as tmp:
        proc, http_port, grpc_port = start_server(Path(tmp))
        channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}", options=[("grpc.max_send_message_length", 64 * 2**20)])
        try:
            restarts0, pids0, _ = workers_state(http_port)
            t0 = time.monotonic()
            http_tally, grpc_tally = Tally(), Tally()
            run_pool([HttpSender(http_port, http_tally) for _ in range(workers)], http_tally,
                     lambda put: _send_all(fuzz_hostile.hostile_http(), fc.http_cases(), http_n, seed_value, put))
            run_pool([GrpcSender(channel, grpc_tally) for _ in range(workers)], grpc_tally,
                     lambda put: _send_all(fuzz_hostile.hostile_grpc(), fc.grpc_cases(), grpc_n, seed_value, put))
            duration = time.monotonic() - t0
            alive = proc.poll() is None
            try:
                restarts1, pids1, all_alive = workers_state(http_port) if alive else (-1, set(), False)
                after = valid_after(http_port, channel) if alive else {}
            except (OSError, http.client.HTTPException, ValueError, KeyError):  # alive, but it answers no more
                restarts1, pids1, all_alive, after = -1, set(), False, {"status answered": False}
        finally:
            channel.close()
            log_tail = (Path(tmp) / "server.log").read_text(errors="replace")[-3000:]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
    crashes = {"server_alive": alive, "worker_restarts": restarts1 - restarts0 if restarts1 >= 0 else None,
               "workers_replaced": sorted(pids0 - pids1), "workers_alive": all_alive}
    return {"seed": seed_value, "duration_s": round(duration, 1), "http": http_tally.summary(), "grpc": grpc_tally.summary(),
            "crashes": crashes, "valid_after": after, "server_log_tail": log_tail if not passed_checks(alive, all_alive, after) else ""}


def passed_checks(alive: bool, all_alive: bool, after: dict[str, bool]) -> bool:
    return alive and all_alive and bool(after) and all(after.values())


def _send_all(hostile: list[T], strategy: st.SearchStrategy[T], count: int, seed_value: int, put: Callable[[T], None]) -> None:
    """The hand-written cases, then `count` generated ones."""
    for case in hostile:
        put(case)
    drive(strategy, count, seed_value, put)


def report(result: dict[str, Any]) -> str:
    lines = [f"fuzz, seed {result['seed']}, {result['duration_s']} s", "", "| | HTTP | gRPC |", "|---|---|---|"]
    h, g = result["http"], result["grpc"]
    lines.append(f"| requests | {h['sent']} | {g['sent']} |")
    lines.append(f"| answers by status | {_counts(h['by_status'])} | {_counts(g['by_status'])} |")
    lines.append(f"| 5xx / INTERNAL (target 0) | {h['server_errors']} | {g['server_errors']} |")
    lines.append(f"| hangs > {HANG_S:g} s (target 0) | {h['hangs']} | {g['hangs']} |")
    lines.append(f"| slowest answer | {h['slowest_ms']} ms | {g['slowest_ms']} ms |")
    c = result["crashes"]
    lines += ["", f"crashes (target 0): server alive {c['server_alive']}, worker restarts {c['worker_restarts']}, "
              f"workers replaced {len(c['workers_replaced'])}, workers alive {c['workers_alive']}",
              f"valid requests afterwards: {result['valid_after']}",
              f"slowest: HTTP {h['slowest_case'][:100]!r}; gRPC {g['slowest_case'][:100]!r}"]
    for e in (h["server_error_examples"] + g["server_error_examples"])[:5]:
        lines.append(f"{e['status']} example [{e['family']}]: {e['request'][:150]!r} -> {e['answer'][:150]!r}")
    return "\n".join(lines)


def _counts(by_status: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in by_status.items())


def passed(result: dict[str, Any]) -> bool:
    c = result["crashes"]
    return (result["http"]["server_errors"] == 0 and result["grpc"]["server_errors"] == 0 and result["http"]["hangs"] == 0
            and result["grpc"]["hangs"] == 0 and c["server_alive"] and c["worker_restarts"] == 0 and c["workers_alive"]
            and bool(result["valid_after"]) and all(result["valid_after"].values()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--http", type=int, default=10000, help="generated HTTP requests (hostile ones come on top)")
    ap.add_argument("--grpc", type=int, default=2000, help="generated gRPC requests (hostile ones come on top)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=4, help="concurrent connections per protocol")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    result = fuzz(args.http, args.grpc, args.seed, args.workers)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(report(result), flush=True)
    return 0 if passed(result) else 1


if __name__ == "__main__":
    sys.exit(main())
