"""A request's deadline: its `timeout` parameter (µs, the schedule_policy extension), else the
model's SLO, else none; less ANSWER_MARGIN_S, the time its answer takes to reach the client. The
one place deadlines are parsed (pure); the simulator uses the same margin."""

from __future__ import annotations

import math
from collections.abc import Mapping

from modelplex.core.errors import InvalidArgumentError
from modelplex.dispatch.batching import NO_DEADLINE

# µs; a request timeout beyond an hour is a client bug, not a deadline
MAX_TIMEOUT_US = 3_600_000_000
ANSWER_MARGIN_S = 0.002  # of a request's time, left for its answer to reach the client


def timeout_s(parameters: Mapping[str, object]) -> float | None:
    """The request's `timeout` in seconds, None when absent; a clear error when malformed."""
    timeout = parameters.get("timeout")
    if timeout is None:
        return None
    if isinstance(timeout, str):
        try:
            timeout = float(timeout)  # some gRPC clients send only int and string parameters
        except ValueError:
            pass
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout):
        raise InvalidArgumentError(f"parameter 'timeout' must be a number of microseconds, got {timeout!r}")
    if timeout <= 0 or timeout > MAX_TIMEOUT_US:
        raise InvalidArgumentError(f"parameter 'timeout' must be between 1 and {MAX_TIMEOUT_US} microseconds, got {timeout}")
    return float(timeout) / 1e6


def deadline_s(parameters: Mapping[str, object], slo_ms: float | None, now: float) -> float:
    """Absolute deadline of a request arriving at `now`, by which its answer must be ready."""
    own = timeout_s(parameters)
    if own is not None:
        return now + own - ANSWER_MARGIN_S
    if slo_ms is not None:
        return now + slo_ms / 1e3 - ANSWER_MARGIN_S
    return NO_DEADLINE


def priority_level(parameters: Mapping[str, object], levels: int, default_level: int) -> int:
    """The queue level of a request: its `priority` parameter (1 = highest, up to `levels`; 0 or
    absent = the model's default level), as Triton's priority_levels. A model without levels
    (levels 0) queues every request at one level; its requests may still name priority 0 or more."""
    value = parameters.get("priority")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)  # some gRPC clients send only string parameters
    if value is None:
        value = 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgumentError(f"parameter 'priority' must be a non-negative integer, got {value!r}")
    if levels <= 0:
        return 0
    if value > levels:
        raise InvalidArgumentError(f"parameter 'priority' must be between 1 and {levels} (or 0 for the default "
                                   f"level {default_level}) for this model, got {value}")
    return value if value > 0 else default_level
