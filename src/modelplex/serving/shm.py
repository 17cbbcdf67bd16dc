"""System shared memory (the KServe v2 / Triton shared-memory extension, system half).

A client creates a POSIX shared-memory object (`/dev/shm/<key>`, as
`tritonclient.utils.shared_memory` does), registers a region of it by name, and then names the
region in an input's or output's parameters (`shared_memory_region`, `shared_memory_byte_size`,
`shared_memory_offset`): inputs are read from it, outputs written into it, and the tensor bytes
never cross the socket. The server maps each registered object once; unregistering unmaps it.
The object itself stays the client's: the server never creates, resizes or removes it.
"""

from __future__ import annotations

import logging
import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelplex.core.errors import InvalidArgumentError
from modelplex.core.tensors import DataType, serialize_bytes_tensor
from modelplex.serving.types import InferInput, InferRequest, InferResponse, ShmRef
from modelplex.serving.validate import bytes_array, fixed_array, label

SHM_ROOT = Path("/dev/shm")  # where POSIX shared-memory objects live on Linux
REGION = "shared_memory_region"  # tensor parameter: the region's registered name
BYTE_SIZE = "shared_memory_byte_size"  # tensor parameter: bytes of the tensor in the region
OFFSET = "shared_memory_offset"  # tensor parameter: where in the region the tensor starts

log = logging.getLogger(__name__)


def shm_ref(params: dict[str, Any], where: str) -> ShmRef | None:
    """The shared-memory reference in a tensor's parameters, or None when it has none."""
    name = params.get(REGION)
    if name is None:
        if BYTE_SIZE in params or OFFSET in params:
            raise InvalidArgumentError(f"{where}: {BYTE_SIZE}/{OFFSET} given without {REGION}")
        return None
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"{where}: {REGION} must be a non-empty string")
    return ShmRef(name, _count(params.get(BYTE_SIZE), BYTE_SIZE, where), _count(params.get(OFFSET, 0), OFFSET, where))


def _count(value: object, key: str, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidArgumentError(f"{where}: {key} must be a non-negative integer, got {value!r}")
    return value


@dataclass
class _Region:
    key: str  # the shared-memory object's key, as registered
    offset: int  # start of the region in the object
    byte_size: int  # length of the region
    mapping: mmap.mmap = field(repr=False)  # the whole object, mapped read-write
    fd: int  # kept open to see the object shrink (touching pages past its end would kill the server)


def _object_path(key: str) -> Path:
    name = key[1:] if key.startswith("/") else key
    if not name or "/" in name or name in (".", ".."):
        raise InvalidArgumentError(f"shared memory key {key!r} is not a POSIX shared-memory name like /my_region")
    return SHM_ROOT / name


class SharedMemoryRegions:
    """The registered system shared-memory regions of one server."""

    def __init__(self) -> None:
        self._regions: dict[str, _Region] = {}

    def register(self, name: str, key: str, offset: int, byte_size: int) -> None:
        if not name:
            raise InvalidArgumentError("a shared memory region needs a name")
        if name in self._regions:
            raise InvalidArgumentError(f"shared memory region {label(name)} is already registered (unregister it first)")
        if offset < 0 or byte_size <= 0:
            raise InvalidArgumentError(f"shared memory region {label(name)}: offset must be >= 0 and byte_size > 0")
        path = _object_path(key)
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError as e:
            raise InvalidArgumentError(f"shared memory key {key!r} cannot be opened: {e.strerror or e}") from None
        try:
            total = os.fstat(fd).st_size
            if offset + byte_size > total:
                raise InvalidArgumentError(
                    f"shared memory region {label(name)}: offset {offset} + byte_size {byte_size} is past the end of "
                    f"{key!r} ({total} bytes)"
                )
            mapping = mmap.mmap(fd, total)
        except BaseException:
            os.close(fd)
            raise
        self._regions[name] = _Region(key, offset, byte_size, mapping, fd)
        log.info("registered shared memory region %s (%s, %d bytes at offset %d)", name, key, byte_size, offset)

    def unregister(self, name: str | None = None) -> None:
        """Unregister one region (a name not registered is not an error, as in Triton) or all."""
        names = [name] if name is not None else list(self._regions)
        for n in names:
            region = self._regions.pop(n, None)
            if region is not None:
                region.mapping.close()
                os.close(region.fd)

    def status(self, name: str | None = None) -> list[dict[str, Any]]:
        if name is not None and name not in self._regions:
            raise InvalidArgumentError(f"shared memory region {label(name)} is not registered")
        names = [name] if name is not None else sorted(self._regions)
        return [{"name": n, "key": self._regions[n].key, "offset": self._regions[n].offset,
                 "byte_size": self._regions[n].byte_size} for n in names]

    def close(self) -> None:
        self.unregister()

    def _view(self, ref: ShmRef, where: str) -> memoryview:
        region = self._regions.get(ref.region)
        if region is None:
            raise InvalidArgumentError(f"{where}: shared memory region {label(ref.region)} is not registered")
        if ref.offset + ref.byte_size > region.byte_size:
            raise InvalidArgumentError(
                f"{where}: offset {ref.offset} + byte_size {ref.byte_size} is past the end of shared memory region "
                f"{label(ref.region)} ({region.byte_size} bytes)"
            )
        start = region.offset + ref.offset
        if os.fstat(region.fd).st_size < start + ref.byte_size:
            raise InvalidArgumentError(f"{where}: the object {region.key!r} behind shared memory region "
                                       f"{label(ref.region)} was shrunk by its owner")
        return memoryview(region.mapping)[start : start + ref.byte_size]

    def read_inputs(self, request: InferRequest) -> None:
        """Fill the arrays of the request's inputs that name a region (a copy: the client may
        reuse its region as soon as the answer comes)."""
        for inp in request.inputs:
            if inp.shm is not None:
                inp.array = self._read(inp)

    def _read(self, inp: InferInput) -> np.ndarray:
        assert inp.shm is not None  # only called for inputs in shared memory
        where = f"input {label(inp.name)}"
        view = self._view(inp.shm, where)
        try:
            count = int(np.prod(inp.shape)) if inp.shape else 1
            if inp.datatype is DataType.BYTES:
                return bytes_array(inp.name, inp.shape, count, bytes(view))
            return fixed_array(inp.name, inp.datatype, inp.shape, count, view, BYTE_SIZE).copy()
        finally:
            view.release()

    def write_outputs(self, request: InferRequest, response: InferResponse) -> None:
        """Write the outputs the request asked for in a region there; they are then sent
        without data (their `shm` says where they went)."""
        wanted = {o.name: o.shm for o in request.outputs or () if o.shm is not None}
        for out in response.outputs:
            ref = wanted.get(out.name)
            if ref is None:
                continue
            where = f"output {label(out.name)}"
            raw = serialize_bytes_tensor(out.array) if out.datatype is DataType.BYTES else np.ascontiguousarray(out.array).tobytes()
            if len(raw) > ref.byte_size:
                raise InvalidArgumentError(
                    f"{where} has {len(raw)} bytes but {BYTE_SIZE} gives room for {ref.byte_size} in region {label(ref.region)}"
                )
            view = self._view(ref, where)
            try:
                view[: len(raw)] = raw
            finally:
                view.release()
            out.shm = ShmRef(ref.region, len(raw), ref.offset)
