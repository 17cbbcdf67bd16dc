"""Shared memory between the frontend and one worker for batch inputs (the hop without a copy
through the socket).

The frontend places a batch's numeric inputs in the arena and sends only a small header on the
worker's socket naming where they are; the worker reads them in place. A region is the frontend's
again when the worker's answer for that batch arrives (or the worker is gone, arena and all). The
memory is an anonymous memfd passed to the worker at start: nothing on the filesystem to clean up,
freed when both processes close it, and pages are only touched as batches use them (first fit
from the start, so a slice that runs one batch at a time reuses the same pages).
"""

from __future__ import annotations

import bisect
import mmap
import os

ALIGN = 64  # region starts (cache lines; every numeric dtype's alignment)


class Arena:
    """A memfd-backed mapping with a first-fit allocator (the frontend side owns the allocator)."""

    def __init__(self, nbytes: int, fd: int | None = None) -> None:
        """`fd` None: create the memfd (the frontend); otherwise map the one passed in (the worker)."""
        self.nbytes = nbytes  # size of the mapping
        self.fd = os.memfd_create("modelplex-arena", 0) if fd is None else fd  # passed to the worker
        if fd is None:
            os.ftruncate(self.fd, nbytes)
        self.map = mmap.mmap(self.fd, nbytes)
        self.buffer = memoryview(self.map)  # the whole arena, for views into it
        self._starts: list[int] = []  # sorted starts of regions in use
        self._ends: dict[int, int] = {}  # start -> end of each region in use

    def alloc(self, size: int) -> int | None:
        """Start of a free region of `size` bytes (lowest first), or None when none is free."""
        size = max(ALIGN, -(-size // ALIGN) * ALIGN)
        pos = 0
        for start in self._starts:
            if start - pos >= size:
                break
            pos = self._ends[start]
        if pos + size > self.nbytes:
            return None
        bisect.insort(self._starts, pos)
        self._ends[pos] = pos + size
        return pos

    def free(self, start: int) -> None:
        if self._ends.pop(start, None) is not None:
            self._starts.remove(start)

    @property
    def in_use(self) -> int:
        """Regions held now (batches sent, not yet answered)."""
        return len(self._starts)

    def close(self) -> None:
        self.buffer.release()
        try:
            self.map.close()
        except BufferError:  # a view is still alive somewhere: the mapping goes with it
            pass
        os.close(self.fd)
