"""Discrete-event simulation of plans under traffic (drives the serving policy objects)."""

from modelplex.sim.arrivals import TraceSpec, generate, parse_trace_spec, read_csv_trace
from modelplex.sim.engine import RawRun, SimConfig, Simulator, simulate
from modelplex.sim.metrics import ModelStats, SimResult, format_result

__all__ = [
    "ModelStats",
    "RawRun",
    "SimConfig",
    "SimResult",
    "Simulator",
    "TraceSpec",
    "format_result",
    "generate",
    "parse_trace_spec",
    "read_csv_trace",
    "simulate",
]
