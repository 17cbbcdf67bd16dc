"""Bounds the serving runtime keeps whatever the load: how long a request may wait, and how many
bytes of requests may be held per model and per server; and the link between a request and its
client, so a request whose client left is never computed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from modelplex.core.errors import UnavailableError
from modelplex.runtime.heap import trim_heap
from modelplex.serving.types import InferRequest

log = logging.getLogger(__name__)

MiB = 2**20
TRIM_AFTER_BYTES = 32 * MiB  # queues that held this much, or this many requests, give their
TRIM_AFTER_REQUESTS = 256  # memory back once empty (connections and buffers of a burst included)


@dataclass(frozen=True)
class Limits:
    """Server-wide bounds of the data plane."""

    max_wait_s: float = 60.0  # longest a request without a deadline waits for its answer
    max_queue_bytes: int = 1024 * MiB  # input bytes of all requests held (queued or running)
    max_model_queue_bytes: int = 512 * MiB  # the same, per model

    def __post_init__(self) -> None:
        if self.max_wait_s <= 0:
            raise ValueError(f"max_wait_s must be positive, got {self.max_wait_s}")
        if self.max_queue_bytes <= 0 or self.max_model_queue_bytes <= 0:
            raise ValueError("queue byte limits must be positive")


def request_nbytes(request: InferRequest) -> int:
    """Bytes a request holds while it waits: its input arrays (BYTES items counted by length)."""
    total = 0
    for t in request.inputs:
        a = t.array
        total += a.nbytes
        if a.dtype == np.object_:
            total += sum(len(b) for b in a.reshape(-1) if isinstance(b, (bytes, str)))
    return total


class QueueMemory:
    """Input bytes held by requests in flight, per model and in all; a request that would pass
    either bound is refused at once (503), so overload cannot grow memory without limit."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.total = 0  # bytes held now
        self._by_model: dict[str, int] = {}
        self._peak = 0  # most bytes held since the queues were last empty
        self._held = 0  # requests held now
        self._peak_held = 0  # most requests held since the queues were last empty

    def reserve(self, model: str, nbytes: int) -> None:
        held = self._by_model.get(model, 0)
        lim = self.limits
        if held + nbytes > lim.max_model_queue_bytes:
            raise UnavailableError(
                f"model {model}: its queue holds {held / MiB:.1f} MiB of requests, the limit is "
                f"{lim.max_model_queue_bytes / MiB:.0f} MiB (--max-model-queue-mb); try again later"
            )
        if self.total + nbytes > lim.max_queue_bytes:
            raise UnavailableError(
                f"the server holds {self.total / MiB:.1f} MiB of queued requests, the limit is "
                f"{lim.max_queue_bytes / MiB:.0f} MiB (--max-queue-mb); try again later"
            )
        self._by_model[model] = held + nbytes
        self.total += nbytes
        self._held += 1
        self._peak = max(self._peak, self.total)
        self._peak_held = max(self._peak_held, self._held)

    def release(self, model: str, nbytes: int) -> None:
        self._by_model[model] = self._by_model.get(model, 0) - nbytes
        self.total -= nbytes
        self._held -= 1
        if self._held == 0 and (self._peak > TRIM_AFTER_BYTES or self._peak_held >= TRIM_AFTER_REQUESTS):
            self._peak = self._peak_held = 0
            if trim_heap():
                log.debug("queues empty after a peak: freed heap memory returned to the system")



class ClientLink:
    """A frontend's handle on one request's client. The data plane says what to do if the client
    leaves before its answer (drop the request from its queue); the frontend calls gone()."""

    __slots__ = ("_on_gone", "left")

    def __init__(self) -> None:
        self._on_gone: Callable[[], None] | None = None
        self.left = False  # the client went away

    def watch(self, on_gone: Callable[[], None] | None) -> None:
        """Call `on_gone` if the client leaves from now on (None: stop watching)."""
        self._on_gone = on_gone

    def gone(self) -> None:
        self.left = True
        callback, self._on_gone = self._on_gone, None
        if callback is not None:
            callback()
