"""A real server planning two of the example models (mlp and cnn) under the elastic policy from
synthetic CPU profiles, as several real-process tests need it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from modelplex.core.profile import Profile, ProfilePoint
from modelplex.repository.examples import write_examples
from server import RunningServer, start_server


def synthetic_profile(model: str, base_ms: float) -> Profile:
    """A CPU profile of 1- and 2-core slices, batches 1 to 8, whose batch time is `base_ms` per
    row on one core, shortened by the square root of the cores."""
    points = tuple(
        ProfilePoint(size, b, base_ms * b / size ** 0.5, base_ms * b / size ** 0.5 * 1.2, 1000 * b / base_ms, 10)
        for size in (1, 2)
        for b in (1, 2, 4, 8)
    )
    return Profile(model, "cpu", "test", points)


def two_model_repository(root: Path, mlp_slo_ms: int = 2000, cnn_slo_ms: int = 2000) -> Path:
    """The example mlp and cnn (batches up to 8, these SLOs) in `root`/models."""
    repo = root / "models"
    write_examples(repo)
    for name in ("resnet", "transformer"):
        shutil.rmtree(repo / name)
    (repo / "cnn" / "config.pbtxt").unlink()
    (repo / "cnn" / "config.yaml").write_text(f"slo_ms: {cnn_slo_ms}\nmax_batch_size: 8\n")
    (repo / "mlp" / "config.yaml").write_text(f"slo_ms: {mlp_slo_ms}\nmax_batch_size: 8\n")
    return repo


def start_planned(root: Path, repo: Path) -> tuple[RunningServer, Path]:
    """The server on `repo`, planned (elastic, no re-planning) on cores 0-1 for 20 req/s of each
    model; also the profiles file it was given."""
    profiles = root / "profiles.json"
    profiles.write_text(json.dumps({"profiles": [synthetic_profile("mlp", 0.05).to_json(), synthetic_profile("cnn", 0.6).to_json()]}))
    srv = start_server(repo, root / "state", ["--policy", "elastic", "--profiles", str(profiles),
                                              "--expected-rates", "mlp=20,cnn=20", "--no-replan", "--cpus", "0-1"])
    return srv, profiles
