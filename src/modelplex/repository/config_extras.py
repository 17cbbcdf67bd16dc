"""Config settings beyond shapes and batching (kept apart from repository.config): Triton's
`model_warmup` samples and `dynamic_batching` priority levels, from config.pbtxt, and how
config.yaml's `priority_levels` / `default_priority_level` combine with them."""

from __future__ import annotations

from typing import Any

from modelplex.core.errors import InvalidArgumentError, UnsupportedError
from modelplex.core.model import WarmupInput, WarmupSample
from modelplex.core.tensors import DataType, TensorSpec


def parse_warmup(msg: Any, type_names: dict[int, str], from_triton: dict[str, DataType],
                 source: str) -> tuple[WarmupSample, ...]:
    """The model_warmup entries of a parsed ModelConfig message."""
    samples: list[WarmupSample] = []
    for i, w in enumerate(msg.model_warmup):
        name = w.name or f"warmup {i + 1}"
        inputs: list[WarmupInput] = []
        for key in sorted(w.inputs):
            spec = w.inputs[key]
            where = f"{source}: model_warmup {name!r} input {key!r}"
            datatype = from_triton.get(type_names.get(spec.data_type, ""))
            if datatype is None:
                raise InvalidArgumentError(f"{where}: data_type is missing or unsupported")
            kind = spec.WhichOneof("input_data_type")
            if kind == "input_data_file":
                raise UnsupportedError(f"{where}: input_data_file is not supported; use zero_data or random_data")
            if kind is None:
                raise InvalidArgumentError(f"{where}: needs zero_data: true or random_data: true")
            if any(d < 0 for d in spec.dims):
                raise InvalidArgumentError(f"{where}: dims must be fixed sizes, got {list(spec.dims)}")
            inputs.append(WarmupInput(key, datatype, tuple(int(d) for d in spec.dims), kind == "random_data"))
        if not inputs:
            raise InvalidArgumentError(f"{source}: model_warmup {name!r} has no inputs")
        samples.append(WarmupSample(name, max(1, int(w.batch_size)), tuple(inputs), max(1, int(w.count))))
    return tuple(samples)


def check_warmup(samples: tuple[WarmupSample, ...], inputs: tuple[TensorSpec, ...], max_batch: int,
                 where: str) -> None:
    """Every sample feeds exactly the model's inputs, with their types and shapes."""
    by_name = {s.name: s for s in inputs}
    for sample in samples:
        what = f"{where}: model_warmup {sample.name!r}"
        given = {i.name for i in sample.inputs}
        if given != set(by_name):
            raise InvalidArgumentError(f"{what} gives inputs {sorted(given)}; the model takes {sorted(by_name)}")
        if sample.batch_size > max(1, max_batch):
            raise InvalidArgumentError(f"{what}: batch_size {sample.batch_size} exceeds max_batch_size {max_batch}")
        for inp in sample.inputs:
            spec = by_name[inp.name]
            ok_dims = len(spec.shape) == len(inp.dims) and all(d < 0 or d == g for d, g in zip(spec.shape, inp.dims))
            if inp.datatype is not spec.datatype or not ok_dims:
                raise InvalidArgumentError(f"{what} input {inp.name!r} is {inp.datatype.value} {list(inp.dims)}; "
                                           f"the model takes {spec.datatype.value} {list(spec.shape)}")


def parse_priority(msg: Any, source: str) -> tuple[int, int]:
    """(priority_levels, default_priority_level) of a dynamic_batching block; (0, 0) without."""
    db = msg.dynamic_batching
    return check_priority(int(db.priority_levels), int(db.default_priority_level) or None, source)


def check_priority(levels: int, default: int | None, source: str) -> tuple[int, int]:
    """Levels and the default level, checked; the default falls to the middle level when unset."""
    if levels <= 0:
        return 0, 0
    if default is None:
        default = (levels + 1) // 2
    if not 1 <= default <= levels:
        raise InvalidArgumentError(f"{source}: default_priority_level must be between 1 and priority_levels "
                                   f"({levels}), got {default}")
    return levels, default


def merge_priority(pbtxt: tuple[int, int], yaml_levels: int | None, yaml_default: int | None,
                   source: str) -> tuple[int, int]:
    """config.yaml's levels and default level win over config.pbtxt's."""
    if yaml_levels is None and yaml_default is None:
        return pbtxt
    levels = yaml_levels if yaml_levels is not None else pbtxt[0]
    default = yaml_default if yaml_default is not None else (pbtxt[1] if pbtxt[0] == levels else None)
    return check_priority(levels, default, source)
