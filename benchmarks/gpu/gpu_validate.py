"""GPU validation on one GPU in under 8 minutes, nothing fetched (run through benchmarks/gpu/run.sh):

  1. probe the sharing mechanisms (MPS, green contexts, MIG) and print them;
  2. build torchvision ResNet-50, VGG-16, GoogLeNet, MobileNet-V2 (random weights, torch.jit.trace)
     in Triton's pytorch_libtorch layout in a temporary repository;
  3. `modelplex profile --gpus` on MPS shares 20,50,100 and batches 1,4,16;
  4. plan the mix under elastic, temporal and exclusive and serve each plan live under open-loop
     Poisson load at rising rates: the SLO-meeting peak of each policy beside the simulator's;
  5. kill one worker under load: every accepted request answered, the slice back within 5 s;
  6. JSON to $OUT/gpu_validation.json.

    python benchmarks/gpu/gpu_validate.py [--probe-only] [--dry-run-cpu] [--budget-s 450]

--probe-only: step 1 alone (a short first device call). --dry-run-cpu: every step on this CPU
with two tiny ONNX models and CPU slices, so the script's own logic is exercised without a GPU.
Every step prints its progress with the time since the start; when the budget runs short the
remaining rates are skipped, and the output says so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for p in (ROOT / "src", HERE.parent, HERE.parent / "e2e", ROOT / "tests" / "support"):
    sys.path.insert(0, str(p))

NEEDED_GPU = ["numpy", "torch", "torchvision", "onnx", "grpc", "uvicorn", "starlette", "yaml", "psutil"]
NEEDED_CPU = ["numpy", "onnx", "onnxruntime", "grpc", "uvicorn", "starlette", "yaml", "psutil"]
TORCH_MODELS = {"resnet50": 60.0, "vgg16": 80.0, "googlenet": 50.0, "mobilenet_v2": 40.0}  # name -> SLO ms
CPU_MODELS = {"mlp": 40.0, "cnn": 60.0}
POLICIES = ("elastic", "temporal", "exclusive")


class Budget:
    """Seconds since the start, and whether a step still fits."""

    def __init__(self, total_s: float) -> None:
        self.t0 = time.monotonic()
        self.total_s = total_s

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def left(self) -> float:
        return self.total_s - self.elapsed()

    def say(self, msg: str) -> None:
        print(f"[{self.elapsed():6.1f} s] {msg}", flush=True)


def missing_imports(names: list[str]) -> list[str]:
    import importlib.util

    return [n for n in names if importlib.util.find_spec(n) is None]


def probe(budget: Budget, try_green: bool) -> dict[str, Any]:
    """Step 1: the sharing mechanisms, as `modelplex serve --gpus` sees them (its MPS daemon is
    started, asked, and stopped again), and a green context really made in a child process."""
    from modelplex.runtime.gpu_probe import format_gpu_status, open_gpu_shares

    shares = open_gpu_shares()
    doc = shares.status()
    for line in format_gpu_status(doc):
        budget.say(line)
    shares.close()
    doc["green_trial"] = green_trial(doc) if try_green else "not tried"
    budget.say(f"green-context trial: {doc['green_trial']}")
    return doc


def green_trial(doc: dict[str, Any]) -> str:
    gpus = doc.get("gpus") or []
    if not gpus or not str(doc.get("green", "")).startswith("available"):
        return "skipped (green contexts not available)"
    code = ("import torch; from modelplex.runtime.gpu_green import enter_green_context as e; "
            "print(e(16, 'probe')); x = torch.ones(256, 256, device='cuda'); torch.cuda.synchronize(); print((x @ x).sum().item())")
    env = dict(os.environ, CUDA_VISIBLE_DEVICES=gpus[0]["uuid"], PYTHONPATH=str(ROOT / "src"))
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=90, env=env)
    except subprocess.TimeoutExpired:
        return "failed: timed out"
    out = (done.stdout.strip().splitlines() or [""])[0]
    return out if done.returncode == 0 else f"failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}"


def build_torch_repository(repo: Path, max_batch: int, budget: Budget) -> dict[str, float]:
    """Step 2: TorchScript models in the pytorch_libtorch layout (MODEL/config.pbtxt, MODEL/1/model.pt)."""
    import torch
    import torchvision

    for name, slo in TORCH_MODELS.items():
        kwargs: dict[str, Any] = {"weights": None}
        if name == "googlenet":
            kwargs.update(aux_logits=False, init_weights=True)
        model = getattr(torchvision.models, name)(**kwargs).eval()
        with torch.no_grad():
            traced = torch.jit.trace(model, torch.rand(1, 3, 224, 224))
        (repo / name / "1").mkdir(parents=True, exist_ok=True)
        traced.save(str(repo / name / "1" / "model.pt"))
        (repo / name / "config.pbtxt").write_text(
            f'name: "{name}"\nplatform: "pytorch_libtorch"\nmax_batch_size: {max_batch}\n'
            'input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 3, 224, 224 ] } ]\n'
            'output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 1000 ] } ]\n'
            f"dynamic_batching {{ max_queue_delay_microseconds: {int(slo * 100)} }}\n"
        )
        (repo / name / "config.yaml").write_text(f"slo_ms: {slo}\n")
        budget.say(f"built {name} (TorchScript, random weights)")
    return dict(TORCH_MODELS)


def build_cpu_repository(repo: Path, budget: Budget) -> dict[str, float]:
    import shutil

    from modelplex.repository.examples import write_examples

    write_examples(repo)
    for d in list(repo.iterdir()):
        if d.name not in CPU_MODELS:
            shutil.rmtree(d)
        else:
            kept = [line for line in (d / "config.yaml").read_text().splitlines() if not line.startswith("slo_ms:")]
            (d / "config.yaml").write_text("\n".join([*kept, f"slo_ms: {CPU_MODELS[d.name]}", ""]))
    budget.say(f"built tiny CPU models {', '.join(CPU_MODELS)}")
    return dict(CPU_MODELS)


def run_profile(repo: Path, out: Path, state: Path, gpu: bool, budget: Budget) -> None:
    """Step 3: `modelplex profile` (--gpus on the GPU: MPS shares 20,50,100; batches 1,4,16)."""
    cmd = [sys.executable, "-m", "modelplex.cli", "profile", "--repository", str(repo), "--state-dir", str(state),
           "--out", str(out), "--quiet"]
    cmd += ["--gpus", "--slices", "20,50,100", "--batches", "1,4,16"] if gpu else ["--slices", "1,2", "--batches", "1,4"]
    budget.say("profiling: " + " ".join(cmd[2:]))
    subprocess.run(cmd, check=True, timeout=max(30.0, budget.left() - 120))
    budget.say(f"profiles written to {out}")


def serve_and_measure(repo: Path, tmp: Path, slo: dict[str, float], probe_doc: dict[str, Any], gpu: bool, args: argparse.Namespace,
                      budget: Budget) -> dict[str, Any]:
    """Steps 3-5 on one live server."""
    from serve_steps import Load, kill_under_load, peak_search, request_bytes
    from server import start_server

    from modelplex.core.devices import DeviceKind, DeviceSpec
    from modelplex.profiling.storage import read_export
    from modelplex.repository.folders import load_model_config

    profiles_path = tmp / "profiles.json"
    run_profile(repo, profiles_path, tmp / "pstate", gpu, budget)
    kind = "gpu-mps" if gpu else "cpu"
    profiles = [p for p in read_export(profiles_path) if p.model in slo and p.device_kind == kind]
    if gpu:
        d = probe_doc["devices"][0]
        device = DeviceSpec(d["device_id"], DeviceKind.GPU_MPS, 100, d["name"], int(d["memory_mb"]))
    else:
        device = DeviceSpec("cpu0", DeviceKind.CPU, 2)
    extra = ["--policy", "elastic", "--profiles", str(profiles_path), "--no-replan"] + (["--gpus"] if gpu else ["--cpus", "0-1"])
    budget.say(f"starting the server: serve {' '.join(extra)}")
    srv = start_server(repo, tmp / "state", extra, timeout_s=min(240.0, max(30.0, budget.left() - 60)))
    out: dict[str, Any] = {"device": device.device_id, "policies": []}
    try:
        bodies = {m: request_bytes(srv.http_port, m, gpu) for m in slo}
        batching = {m: load_model_config(repo, m).batching for m in slo}
        load = Load(srv, bodies, device, slo, profiles, batching, args.connections, args.seed)
        rates = [float(r) for r in args.rates.split(",")] if args.rates else (
            [100.0 * 1.4 ** k for k in range(12)] if gpu else [10.0, 20.0])
        for policy in POLICIES:
            budget.say(f"peak search: {policy}")
            out["policies"].append(peak_search(load, policy, rates, args.span_s, budget))
        elastic = out["policies"][0]["peak_rps"] or rates[0]
        if budget.left() > args.span_s + 25:
            out["kill"] = kill_under_load(load, max(rates[0], 0.5 * elastic), max(args.span_s, 4.0), budget)
        else:
            budget.say("kill test skipped: time is short")
            out["kill"] = {"skipped": "time is short"}
    finally:
        out["server_log_tail"] = srv.log()[-4000:]
        srv.stop()
    return out


def summary(results: dict[str, Any], budget: Budget) -> None:
    pols = results.get("serve", {}).get("policies", [])
    if not pols:
        return
    budget.say(f"{'policy':<10} {'live peak req/s':>16} {'sim peak req/s':>15}  skipped rates")
    for p in pols:
        budget.say(f"{p['policy']:<10} {p['peak_rps']:>16.1f} {p['sim_peak_rps']:>15.1f}  {len(p['skipped_rates']) or '-'}")
    by = {p["policy"]: p["peak_rps"] for p in pols}
    if by.get("temporal"):
        results["elastic_over_temporal"] = by.get("elastic", 0.0) / by["temporal"]
        budget.say(f"elastic / temporal peak: {results['elastic_over_temporal']:.2f}x (gpu-let reports 2.03x)")


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--probe-only", action="store_true", help="probe the sharing mechanisms and stop")
    ap.add_argument("--dry-run-cpu", action="store_true", help="every step on the CPU with tiny models (no GPU)")
    ap.add_argument("--budget-s", type=float, default=450.0, help="stop starting new steps past this many seconds")
    ap.add_argument("--span-s", type=float, default=3.0, help="measured seconds per rate")
    ap.add_argument("--rates", default="", help="total req/s to try (default: a ladder)")
    ap.add_argument("--connections", type=int, default=32, help="connections per model")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    budget = Budget(args.budget_s)
    out_dir = Path(os.environ.get("OUT") or "gpu_out")
    out_dir.mkdir(parents=True, exist_ok=True)
    gpu = not args.dry_run_cpu
    results: dict[str, Any] = {"mode": "gpu" if gpu else "dry-run-cpu", "budget_s": args.budget_s}
    missing = missing_imports(NEEDED_GPU if gpu else NEEDED_CPU)
    code = 0
    if missing:
        budget.say(f"missing Python packages: {', '.join(missing)} (bring them as wheels); stopping")
        results["missing"], code = missing, 3
    else:
        budget.say("step 1: probing the GPU sharing mechanisms")
        results["probe"] = probe(budget, try_green=gpu)
        if args.probe_only:
            pass
        elif gpu and not results["probe"].get("devices"):
            budget.say("no GPU device to serve on; stopping after the probe")
            code = 4
        else:
            with tempfile.TemporaryDirectory() as tmp_name:
                tmp = Path(tmp_name)
                budget.say("step 2: building the models")
                slo = build_torch_repository(tmp / "models", 16, budget) if gpu else build_cpu_repository(tmp / "models", budget)
                results["slo_ms"] = slo
                results["serve"] = serve_and_measure(tmp / "models", tmp, slo, results["probe"], gpu, args, budget)
            summary(results, budget)
    results["elapsed_s"] = round(budget.elapsed(), 1)
    path = out_dir / "gpu_validation.json"
    path.write_text(json.dumps(results, indent=1, default=str))
    budget.say(f"wrote {path}")
    return code


if __name__ == "__main__":
    sys.exit(main())
