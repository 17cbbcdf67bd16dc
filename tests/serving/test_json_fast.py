"""serving.json_fast reads flat float `data` straight into arrays and steps aside (None) for
every document it would not read exactly as orjson and the general checks do."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from modelplex.core.errors import ModelplexError
from modelplex.serving.http_codec import decode_request
from modelplex.serving.json_fast import FAST_JSON_BYTES, numeric_document

N = 2000  # numbers per input: the documents are over FAST_JSON_BYTES


def _body(*inputs: dict[str, Any], **top: Any) -> bytes:
    return json.dumps({"inputs": list(inputs), **top}).encode()


def _fp32(data: Any, shape: list[int] | None = None, name: str = "x", dtype: str = "FP32") -> dict[str, Any]:
    return {"name": name, "datatype": dtype, "shape": shape or [1, N], "data": data}


VALUES = [((i * 7919) % 1000 - 500) / 37.0 for i in range(N)]


@pytest.mark.parametrize(
    ("body", "fast"),
    [
        (_body(_fp32(VALUES)), True),
        (_body(_fp32(VALUES), _fp32(VALUES, name="y", dtype="FP64"), parameters={"a": "b"}, id="r-1",
               outputs=[{"name": "out", "parameters": {"binary_data": True}}]), True),
        (_body(_fp32(VALUES), id="has a [ in it"), False),  # a '[' in a string: not provably flat
        (_body(_fp32([VALUES[: N // 2], VALUES[N // 2 :]], [2, N // 2])), True),  # nested lists of the shape
        (_body(_fp32([[VALUES[: N // 2]], [VALUES[N // 2 :]]], [2, 1, N // 2])), True),
        (_body(_fp32([VALUES[: N // 2], VALUES[N // 2 :]], [1, N])), False),  # nested, not of the shape
        (_body(_fp32([VALUES[: N // 2 + 1], VALUES[N // 2 + 1 :]], [2, N // 2])), False),  # ragged
        (_body(_fp32([VALUES[: N // 2], VALUES[N // 2 :]], [N])), False),  # nested for a 1-d shape
        (_body(_fp32([VALUES[:2], [VALUES[2:]]], [2, 2])), False),  # deeper inside: the '[' count
        (_body(_fp32(VALUES[:1] + [[1.0]] + VALUES[2:])), False),  # an array among the numbers
        (_body(_fp32(VALUES[:-1] + [True])), False),  # a boolean among numbers
        (_body(_fp32(VALUES[:-1] + [None])), False),
        (_body(_fp32(VALUES[:-1] + ["1"])), False),
        (_body(_fp32([int(v) for v in VALUES], dtype="INT32")), False),  # not a float input
        (_body(_fp32(VALUES)).replace(b'"data"', b'"data": [1], "data"', 1), False),  # a key twice
        (_body(_fp32(VALUES)).replace(b"]}]}", b"]}]"), False),  # not JSON
        (_body(_fp32(VALUES[:10])), False),  # small: orjson
    ],
)
def test_which_documents_take_the_fast_path(body: bytes, fast: bool) -> None:
    doc = numeric_document(body)
    assert (doc is not None) == fast
    if doc is not None:
        assert len(body) >= FAST_JSON_BYTES
        plain = json.loads(body)
        for got, want in zip(doc["inputs"], plain["inputs"]):
            assert isinstance(got["data"], np.ndarray)
            assert got["data"].tolist() == np.asarray(want["data"]).reshape(-1).tolist()
            assert {k: v for k, v in got.items() if k != "data"} == {k: v for k, v in want.items() if k != "data"}
        assert {k: v for k, v in doc.items() if k != "inputs"} == {k: v for k, v in plain.items() if k != "inputs"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_body(_fp32(VALUES)), np.asarray(VALUES, np.float32).reshape(1, N)),
        (_body(_fp32([VALUES[: N // 2], VALUES[N // 2 :]], [2, N // 2])), np.asarray(VALUES, np.float32).reshape(2, N // 2)),
        (_body(_fp32(VALUES)).replace(b'"data"', b'"data": [1], "data"', 1), np.asarray(VALUES, np.float32).reshape(1, N)),
    ],
)
def test_both_paths_decode_the_same(body: bytes, expected: np.ndarray) -> None:
    arr = decode_request("m", None, body, None).inputs[0].array
    assert arr.dtype == np.float32 and arr.shape == expected.shape
    assert np.array_equal(arr, expected)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (_body(_fp32([VALUES[: N // 2], VALUES[N // 2 + 1 :] + [1.0, 2.0]], [2, N // 2])), "ragged"),
        (_body(_fp32(VALUES, [1, N + 1])), f"needs {N + 1} elements, data has {N}"),
        (_body(_fp32(VALUES[:-1] + [1e39])), "out of range for FP32"),
        (_body(_fp32(VALUES[:-1] + [True])), "not booleans"),
    ],
)
def test_refusals_are_the_general_paths(body: bytes, needle: str) -> None:
    with pytest.raises(ModelplexError) as err:
        decode_request("m", None, body, None)
    assert needle in err.value.message
