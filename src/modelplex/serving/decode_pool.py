"""Decoding of large request bodies in a helper process, so one big JSON body (or a compressed
one) cannot hold up the event loop, and with it every other model's requests. Measured: a
60 MB JSON body took 1.4 s to decode on the loop; binary tensors are views of the body and
stay on the loop (they cost microseconds)."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from modelplex.core.errors import UnavailableError
from modelplex.serving.http_codec import decode_request, decompress
from modelplex.serving.types import InferRequest

log = logging.getLogger(__name__)

INLINE_JSON_BYTES = 256 * 1024  # JSON parts up to this size are decoded on the loop


def decode_body(
    model: str, version: str | None, body: bytes, header_length: str | None, encoding: str | None, limit_bytes: int,
) -> InferRequest:
    """Undo the content encoding, then parse the infer body (runs in either process)."""
    if encoding:
        body = decompress(body, encoding, limit_bytes)
    return decode_request(model, version, body, header_length)


def _exit_with_parent(parent_pid: int) -> None:
    """Pool initializer: the helper exits when the server does, even if the server was killed."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class DecodePool:
    """One helper process, started on first use, that decodes bodies too large for the loop."""

    def __init__(self, inline_json_bytes: int = INLINE_JSON_BYTES) -> None:
        self.inline_json_bytes = inline_json_bytes
        self._pool: ProcessPoolExecutor | None = None

    def inline(self, body_len: int, header_length: str | None, encoding: str | None) -> bool:
        """Cheap enough to decode on the loop: a small JSON part, not compressed."""
        if encoding and encoding.strip().lower() not in ("", "identity"):
            return body_len <= self.inline_json_bytes
        if header_length is not None and header_length.isdigit():
            return int(header_length) <= self.inline_json_bytes
        return body_len <= self.inline_json_bytes

    async def decode(
        self, model: str, version: str | None, body: bytes, header_length: str | None, encoding: str | None,
        limit_bytes: int,
    ) -> InferRequest:
        if self.inline(len(body), header_length, encoding):
            return decode_body(model, version, body, header_length, encoding, limit_bytes)
        pool = self._pool or self._start()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(pool, decode_body, model, version, body, header_length, encoding, limit_bytes)
        except BrokenProcessPool:
            log.error("the decoding process died; starting another")
            self._pool = None
            raise UnavailableError("the process decoding large request bodies failed; try again") from None

    def _start(self) -> ProcessPoolExecutor:
        self._pool = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"),
            initializer=_exit_with_parent, initargs=(os.getpid(),),
        )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
