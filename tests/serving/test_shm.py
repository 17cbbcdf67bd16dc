"""System shared memory against a live server, with tritonclient's HTTP and gRPC clients: register,
status, unregister, inputs read from and outputs written into regions, and the bad-input cases
(each a 400 naming the problem, the server and the region's owner unaffected).

Regions are made with multiprocessing.shared_memory, which creates the same POSIX object
(/dev/shm/<key>) as tritonclient.utils.shared_memory; the last test uses the latter itself when
it can be imported (tritonclient 2.41's needs setuptools' pkg_resources)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from models import identity_fp32  # tests/support (conftest puts it on the path)
from server import RunningServer, start_server

pytestmark = pytest.mark.slow
WIDTH = 64
NBYTES = 2 * WIDTH * 4  # a [2, WIDTH] FP32 tensor


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("shm")
    identity_fp32(root / "models" / "ident" / "1" / "model.onnx", width=WIDTH)
    srv = start_server(root / "models", root / "state")
    yield srv
    srv.stop()


@pytest.fixture()
def region() -> Iterator[shared_memory.SharedMemory]:
    """A client-owned object of 4 tensors' room; `.name` is its key without the slash."""
    mem = shared_memory.SharedMemory(name=f"mp_test_{uuid.uuid4().hex[:8]}", create=True, size=4 * NBYTES)
    yield mem
    mem.close()
    mem.unlink()


def _data(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((2, WIDTH)).astype(np.float32)


def test_http_infer_in_and_out_of_shared_memory(server: RunningServer, region: shared_memory.SharedMemory) -> None:
    client = httpclient.InferenceServerClient(server.http_url)
    x = _data(1)
    region.buf[NBYTES : 2 * NBYTES] = x.tobytes()  # input at offset NBYTES of the object
    client.register_system_shared_memory("in", "/" + region.name, NBYTES, offset=NBYTES)
    client.register_system_shared_memory("out", "/" + region.name, 2 * NBYTES, offset=2 * NBYTES)
    try:
        assert "system_shared_memory" in client.get_server_metadata()["extensions"]
        status = {r["name"]: r for r in client.get_system_shared_memory_status()}
        assert status["in"] == {"name": "in", "key": "/" + region.name, "offset": NBYTES, "byte_size": NBYTES}
        assert [r["name"] for r in client.get_system_shared_memory_status("out")] == ["out"]
        inp = httpclient.InferInput("x", [2, WIDTH], "FP32")
        inp.set_shared_memory("in", NBYTES)
        out = httpclient.InferRequestedOutput("y", binary_data=True)
        out.set_shared_memory("out", NBYTES, offset=NBYTES)  # the second half of "out"
        result = client.infer("ident", [inp], outputs=[out])
        got = np.frombuffer(region.buf[3 * NBYTES : 4 * NBYTES], dtype=np.float32).reshape(2, WIDTH).copy()
        np.testing.assert_array_equal(got, x)
        [desc] = result.get_response()["outputs"]
        assert desc["parameters"] == {"shared_memory_region": "out", "shared_memory_byte_size": NBYTES}
        assert "data" not in desc
        # mixed: input in shared memory, output in the answer
        np.testing.assert_array_equal(client.infer("ident", [inp]).as_numpy("y"), x)
        client.unregister_system_shared_memory("in")
        assert [r["name"] for r in client.get_system_shared_memory_status()] == ["out"]
    finally:
        client.unregister_system_shared_memory()
    assert client.get_system_shared_memory_status() == []


def test_grpc_infer_in_and_out_of_shared_memory(server: RunningServer, region: shared_memory.SharedMemory) -> None:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    x = _data(2)
    region.buf[:NBYTES] = x.tobytes()
    client.register_system_shared_memory("gin", "/" + region.name, NBYTES)
    client.register_system_shared_memory("gout", "/" + region.name, NBYTES, offset=NBYTES)
    try:
        regions = client.get_system_shared_memory_status().regions
        assert sorted(regions) == ["gin", "gout"] and regions["gout"].offset == NBYTES
        a = grpcclient.InferInput("x", [2, WIDTH], "FP32")
        a.set_shared_memory("gin", NBYTES)
        out = grpcclient.InferRequestedOutput("y")
        out.set_shared_memory("gout", NBYTES)
        result = client.infer("ident", [a], outputs=[out])
        got = np.frombuffer(region.buf[NBYTES : 2 * NBYTES], dtype=np.float32).reshape(2, WIDTH).copy()
        np.testing.assert_array_equal(got, x)
        [desc] = result.get_response().outputs
        assert desc.parameters["shared_memory_region"].string_param == "gout"
        client.unregister_system_shared_memory("gout")
        assert sorted(client.get_system_shared_memory_status().regions) == ["gin"]
    finally:
        client.unregister_system_shared_memory()


def _refused(call: object, *needles: str) -> None:
    with pytest.raises(InferenceServerException) as info:
        call()  # type: ignore[operator]
    text = str(info.value)
    assert all(n in text for n in needles), text


def test_bad_regions_are_400_naming_the_problem(server: RunningServer, region: shared_memory.SharedMemory) -> None:
    client = httpclient.InferenceServerClient(server.http_url)
    key = "/" + region.name
    region.buf[:8] = b"owner!!!"
    _refused(lambda: client.register_system_shared_memory("r", "/mp_no_such_object", 16), "cannot be opened")
    _refused(lambda: client.register_system_shared_memory("r", "/../etc/passwd", 16), "not a POSIX shared-memory name")
    _refused(lambda: client.register_system_shared_memory("r", key, 16, offset=4 * NBYTES), "past the end")
    _refused(lambda: client.register_system_shared_memory("r", key, 5 * NBYTES), "past the end")
    status, doc = server.post_json("/v2/systemsharedmemory/region/r/register", b'{"key": 3}')
    assert status == 400 and "key" in doc["error"]
    client.register_system_shared_memory("small", key, NBYTES // 2)
    client.register_system_shared_memory("big", key, 2 * NBYTES, offset=NBYTES)
    try:
        _refused(lambda: client.register_system_shared_memory("small", key, 8), "already registered")
        _refused(lambda: client.get_system_shared_memory_status("nope"), "not registered")

        def infer(region_name: str, size: int, offset: int = 0, out: tuple[str, int] | None = None) -> None:
            inp = httpclient.InferInput("x", [2, WIDTH], "FP32")
            inp.set_shared_memory(region_name, size, offset=offset)
            outs = None
            if out is not None:
                outs = [httpclient.InferRequestedOutput("y")]
                outs[0].set_shared_memory(*out)
            client.infer("ident", [inp], outputs=outs)

        _refused(lambda: infer("nope", NBYTES), "region 'nope' is not registered")
        _refused(lambda: infer("small", NBYTES), "past the end of shared memory region 'small'")
        _refused(lambda: infer("big", NBYTES, offset=NBYTES + 4), "past the end")
        _refused(lambda: infer("big", NBYTES - 4), "input 'x'")  # too few bytes for the shape
        _refused(lambda: infer("big", NBYTES, out=("small", NBYTES // 2)), "output 'y'", "room for")
        grpc = grpcclient.InferenceServerClient(server.grpc_url)
        _refused(lambda: grpc.register_system_shared_memory("g", "/mp_no_such_object", 16), "cannot be opened")
    finally:
        client.unregister_system_shared_memory()
    assert bytes(region.buf[:8]) == b"owner!!!"  # the owner's object untouched
    assert client.is_server_live()


def test_with_tritonclient_shared_memory_utils(server: RunningServer) -> None:
    import tritonclient.utils.shared_memory as shm

    key = f"/mp_tc_{uuid.uuid4().hex[:8]}"
    handle = shm.create_shared_memory_region("tc", key, 2 * NBYTES)
    client = httpclient.InferenceServerClient(server.http_url)
    try:
        x = _data(3)
        shm.set_shared_memory_region(handle, [x])
        client.register_system_shared_memory("tc", key, 2 * NBYTES)
        inp = httpclient.InferInput("x", [2, WIDTH], "FP32")
        inp.set_shared_memory("tc", NBYTES)
        out = httpclient.InferRequestedOutput("y")
        out.set_shared_memory("tc", NBYTES, offset=NBYTES)
        client.infer("ident", [inp], outputs=[out])
        got = shm.get_contents_as_numpy(handle, np.float32, [2, WIDTH], offset=NBYTES)
        np.testing.assert_array_equal(got, x)
    finally:
        client.unregister_system_shared_memory()
        shm.destroy_shared_memory_region(handle)
