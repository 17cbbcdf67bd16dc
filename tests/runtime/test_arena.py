"""The shared-memory arena's allocator, and batches placed in it read back by the wire decoder."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from modelplex.runtime import wire
from modelplex.runtime.arena import ALIGN, Arena


@pytest.fixture
def arena() -> Iterator[Arena]:
    a = Arena(16 * ALIGN)
    yield a
    a.close()


@pytest.mark.parametrize(
    "steps, expected",
    [
        ([("alloc", 10)], [0]),
        ([("alloc", 10), ("alloc", 10)], [0, ALIGN]),
        ([("alloc", ALIGN + 1), ("alloc", 1)], [0, 2 * ALIGN]),
        ([("alloc", 10), ("alloc", 10), ("free", 0), ("alloc", 10)], [0, ALIGN, 0]),  # first fit reuses the start
        ([("alloc", 10), ("alloc", 10), ("free", 0), ("alloc", ALIGN + 1)], [0, ALIGN, 2 * ALIGN]),  # hole too small
        ([("alloc", 16 * ALIGN)], [0]),
        ([("alloc", 16 * ALIGN + 1)], [None]),  # bigger than the arena
        ([("alloc", 8 * ALIGN), ("alloc", 8 * ALIGN), ("alloc", 1)], [0, 8 * ALIGN, None]),  # full
        ([("alloc", 0)], [0]),
    ],
)
def test_first_fit(arena: Arena, steps: list[tuple[str, int]], expected: list[int | None]) -> None:
    got: list[int | None] = []
    for op, n in steps:
        if op == "alloc":
            got.append(arena.alloc(n))
        else:
            arena.free(n)
    assert got == expected


def test_free_unknown_start_is_harmless(arena: Arena) -> None:
    arena.free(123)
    assert arena.alloc(1) == 0 and arena.in_use == 1


def test_placed_batch_round_trips(arena: Arena) -> None:
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    ids = np.array([[1], [2]], dtype=np.int64)
    text = np.array([b"a", b"bc"], dtype=object)  # BYTES never go to the arena
    frames, taken = wire.encode_placed({"op": "infer"}, [("x", x), ("text", text), ("ids", ids)], arena)
    assert len(taken) == 2 and arena.in_use == 2
    blob = b"".join(bytes(f) for f in frames)
    head_len, payload_len = wire.PREFIX.unpack(blob[: wire.PREFIX.size])
    import orjson

    header = orjson.loads(blob[wire.PREFIX.size : wire.PREFIX.size + head_len])
    payload = blob[wire.PREFIX.size + head_len :]
    assert len(payload) == payload_len and payload_len < x.nbytes  # only the BYTES tensor inline
    out = dict(wire.decode_tensors(header, payload, arena.buffer))
    np.testing.assert_array_equal(out["x"], x)
    np.testing.assert_array_equal(out["ids"], ids)
    assert list(out["text"]) == [b"a", b"bc"]
    del out
    for start in taken:
        arena.free(start)
    assert arena.in_use == 0


def test_a_batch_that_does_not_fit_goes_inline(arena: Arena) -> None:
    big = np.zeros(17 * ALIGN // 4, dtype=np.float32)
    frames, taken = wire.encode_placed({"op": "infer"}, [("big", big)], arena)
    assert taken == [] and sum(len(f) for f in frames[2:]) == big.nbytes


def test_a_worker_without_the_arena_refuses_placed_tensors(arena: Arena) -> None:
    frames, _ = wire.encode_placed({"op": "infer"}, [("x", np.ones(4, np.float32))], arena)
    import orjson

    header = orjson.loads(bytes(frames[1]))
    with pytest.raises(ValueError, match="arena"):
        wire.decode_tensors(header, b"")
