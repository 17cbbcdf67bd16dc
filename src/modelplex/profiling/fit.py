"""The interference experiment end to end: measure pairs, fit, evaluate held-out, store."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from modelplex.core.model import ModelConfig
from modelplex.profiling.backends import SliceBackend
from modelplex.profiling.interference import (
    Observation,
    error_summary,
    fit_observations,
    leave_one_pair_out,
    to_device_scale,
)
from modelplex.profiling.pairs import PairSettings, measure_pairs, steps
from modelplex.profiling.progress import Progress
from modelplex.profiling.storage import ProfileStore, save_interference

RIDGE = 1e-3  # small ridge: the two proxies are strongly correlated across models


def constant_baseline(obs: Sequence[Observation]) -> dict[str, float]:
    """Held-out error of predicting every slowdown as the mean of the other pairs' (no features)."""
    rel: list[float] = []
    for g in {o.group for o in obs}:
        rest = [o.alpha for o in obs if o.group != g]
        if not rest:
            continue
        pred = max(1.0, float(np.mean(rest)))
        rel.extend(abs(pred - o.alpha) / o.alpha for o in obs if o.group == g)
    return {"mean_rel_error": float(np.mean(rel)), "median_rel_error": float(np.median(rel)),
            "max_rel_error": float(np.max(rel))} if rel else {}


def summarize(obs: Sequence[Observation], ridge: float = RIDGE) -> tuple[dict[str, Any], list[float]]:
    """Fit on all observations, evaluate leave-one-pair-out; returns the stored record and the
    held-out predictions (aligned with obs)."""
    coeffs = fit_observations(obs, ridge)
    held = leave_one_pair_out(obs, ridge)
    by_obs = {id(h.observation): h.predicted_alpha for h in held}
    record: dict[str, Any] = {
        "kind": "linear",
        "coeffs": list(coeffs),
        "features": ["l2 = weight GB/s", "dram = (weight+io) GB/s"],
        "ridge": ridge,
        "fitted_unix_s": time.time(),
        "held_out": error_summary(held),
        "constant_baseline": constant_baseline(obs),
        "measured_alpha": {"min": min(o.alpha for o in obs), "max": max(o.alpha for o in obs),
                           "median": float(np.median([o.alpha for o in obs]))},
        "observations": [o.to_json() for o in obs],
    }
    return record, [by_obs.get(id(o), float("nan")) for o in obs]


async def run_interference(configs: Sequence[ModelConfig], store: ProfileStore, backend: SliceBackend,
                           state_dir: Path, batches: Sequence[int], duration_s: float,
                           quiet: bool = False) -> tuple[dict[str, Any], list[Observation], list[float]]:
    settings = PairSettings(batches=tuple(batches), duration_s=duration_s, sides=backend.pair_sides())
    progress = Progress(steps(len(configs), settings), "interference", enabled=not quiet)
    obs = measure_pairs(configs, settings, progress)
    progress.close(f"{len(obs)} observations")
    record, predicted = summarize(obs)
    path = save_interference(state_dir, backend.hardware, record)
    # Profiles keep the features of the largest pair batch at full-device scale (see interference.py).
    frac = backend.pair_fraction()
    for config in configs:
        name = config.model.name
        mine = [o for o in obs if o.model_a == name]
        if not mine:
            continue
        top = max(mine, key=lambda o: o.batch_a)
        prof = store.get(name, backend.hardware, backend.device_kind)
        if prof is not None:
            feats = {**prof.features, **to_device_scale(top.features_a, frac), "interference_batch": float(top.batch_a)}
            store.put(replace(prof, features=feats))
    h = record["held_out"]
    c = ", ".join(f"{x:.4g}" for x in record["coeffs"])
    base = record["constant_baseline"]
    print(f"interference: {len(obs)} observations, measured slowdown {record['measured_alpha']['min']:.2f}"
          f"..{record['measured_alpha']['max']:.2f}; coeffs [{c}]")
    print(f"interference, leave-one-pair-out: mean error {h.get('mean_rel_error', float('nan')) * 100:.1f}%, "
          f"median {h.get('median_rel_error', float('nan')) * 100:.1f}%, max {h.get('max_rel_error', float('nan')) * 100:.1f}% "
          f"(constant-mean baseline: mean {base.get('mean_rel_error', float('nan')) * 100:.1f}%, "
          f"max {base.get('max_rel_error', float('nan')) * 100:.1f}%); stored in {path}", file=sys.stdout)
    return record, obs, predicted
