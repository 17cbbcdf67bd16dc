"""A large JSON infer request read without a Python float per number: simdjson parses the text,
and each float input's `data` (flat, or nested lists of its shape) comes out as one flat float64
array (simdjson's own C loop), not lists of Python floats that are then converted. Everything
else in the document becomes the usual Python values, so the codec checks it as it checks
orjson's result. benchmarks/datapath/decode.py times one request both ways.

The path only applies where it answers exactly as the general one would; anything else returns
None and the caller parses with orjson (so every error message is the general path's):
- text that simdjson refuses (invalid JSON, numbers beyond 64 bits or float range);
- an object with a key twice (simdjson keeps the first, orjson the last);
- `data` of an input that is not FP16/FP32/FP64, or not numbers only;
- nested `data` that is not lists of exactly the input's shape (simdjson would flatten any
  nesting): every list is checked against its dimension, and the text's '[' count must equal
  the arrays outside `data` plus the arrays read here (which also proves that no string holds a
  '[' and no array hides deeper).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import simdjson

FAST_JSON_BYTES = 4096  # smaller documents: orjson is as fast, and this path's set-up is not
_FLOAT_TYPES = frozenset({"FP16", "FP32", "FP64"})


class NotThisPath(Exception):
    """The document is not one this path reads exactly as the general one does."""


def numeric_document(text: bytes) -> dict[str, Any] | None:
    """The request with each float input's `data` as a flat float64 array; None when this path
    does not apply (see the module's notes)."""
    if len(text) < FAST_JSON_BYTES:
        return None
    try:
        root = simdjson.Parser().parse(text)
        reader = _Reader()
        doc = reader.document(root)
    except (ValueError, TypeError, RuntimeError, NotThisPath):
        return None
    if reader.arrays_read and text.count(b"[") != reader.arrays_outside + reader.arrays_read:
        return None  # a "[" in a string, or an array deeper than the lists checked: the general path decides
    return doc


class _Reader:
    """Converts a parsed document, counting the arrays it turns into lists and those it reads as
    numbers."""

    def __init__(self) -> None:
        self.arrays_outside = 0  # arrays converted to lists (each has one '[' in the text)
        self.arrays_read = 0  # `data` arrays read as float64 arrays

    def document(self, root: Any) -> dict[str, Any]:
        if not isinstance(root, simdjson.Object):
            raise NotThisPath
        doc = self._object(root, skip="inputs")
        inputs = root.get("inputs")
        if isinstance(inputs, simdjson.Array):
            self.arrays_outside += 1
            doc["inputs"] = [self._input(item) for item in inputs]
        elif "inputs" in root:
            doc["inputs"] = self._value(inputs)
        return doc

    def _input(self, item: Any) -> Any:
        if not isinstance(item, simdjson.Object):
            return self._value(item)
        raw = self._object(item, skip="data")
        if "data" not in item:
            return raw
        data = item["data"]
        if not isinstance(data, simdjson.Array) or raw.get("datatype") not in _FLOAT_TYPES:
            raise NotThisPath  # not float numbers: the general path reads and checks it
        arrays = _arrays_of(data, raw.get("shape"))
        try:
            raw["data"] = np.frombuffer(data.as_buffer(of_type="d"), np.float64)  # nested lists flattened
        except (TypeError, ValueError):
            raise NotThisPath from None  # not numbers only: the general checks say what is wrong
        self.arrays_read += arrays
        return raw

    def _object(self, obj: Any, skip: str | None) -> dict[str, Any]:
        keys = list(obj.keys())
        if len(set(keys)) != len(keys):
            raise NotThisPath
        return {k: self._value(obj[k]) for k in keys if k != skip}

    def _value(self, value: Any) -> Any:
        if isinstance(value, simdjson.Object):
            plain: Any = self._object(value, skip=None)
        elif isinstance(value, simdjson.Array):
            plain = value.as_list()
            self.arrays_outside += _lists_in(plain)
        else:
            plain = value
        return plain


def _arrays_of(data: Any, shape: Any) -> int:
    """How many arrays `data` is made of: 1 when it is flat (the text's '[' count proves that no
    array hides further in); nested, it must be lists of exactly `shape`, every list as long as
    its dimension (the general path's rule), else NotThisPath."""
    if len(data) == 0 or not isinstance(data[0], simdjson.Array):
        return 1
    if not isinstance(shape, list) or len(shape) < 2 or not all(type(d) is int for d in shape):
        raise NotThisPath
    level, arrays = [data], 0
    for depth, dim in enumerate(shape):
        arrays += len(level)
        if any(not isinstance(a, simdjson.Array) or len(a) != dim for a in level):
            raise NotThisPath
        if depth < len(shape) - 1:
            level = [child for a in level for child in a]
    return arrays


def _lists_in(value: Any) -> int:
    """How many lists `value` is and holds, at any depth."""
    count = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            count += 1
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return count
