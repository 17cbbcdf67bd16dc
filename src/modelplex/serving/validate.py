"""Checks of a decoded request against the model's declared inputs and outputs."""

from __future__ import annotations

from modelplex.core.errors import InvalidArgumentError
from modelplex.core.model import ModelConfig
from modelplex.serving.types import InferRequest


def _dims_match(declared: tuple[int, ...], given: tuple[int, ...]) -> bool:
    return len(declared) == len(given) and all(d < 0 or d == g for d, g in zip(declared, given))


def _fmt(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def validate_request(config: ModelConfig, request: InferRequest) -> int:
    """Raise InvalidArgumentError naming the problem; return the request's batch rows."""
    model = config.model.name
    seen: set[str] = set()
    rows: int | None = None
    max_batch = config.batching.max_batch_size
    for tensor in request.inputs:
        spec = config.input(tensor.name)
        if spec is None:
            expected = ", ".join(s.name for s in config.inputs)
            raise InvalidArgumentError(f"model {model} has no input named {tensor.name!r} (inputs: {expected})")
        if tensor.name in seen:
            raise InvalidArgumentError(f"input {tensor.name!r} is given more than once")
        seen.add(tensor.name)
        if tensor.datatype is not spec.datatype:
            raise InvalidArgumentError(
                f"input {tensor.name!r} of model {model} has datatype {spec.datatype.value}, got {tensor.datatype.value}"
            )
        shape = tensor.shape
        if max_batch > 0:
            if len(shape) != len(spec.shape) + 1 or not _dims_match(spec.shape, shape[1:]) or shape[0] < 1:
                raise InvalidArgumentError(
                    f"input {tensor.name!r} of model {model} has shape [-1]+{_fmt(spec.shape)} (batch first), got {_fmt(shape)}"
                )
            if shape[0] > max_batch:
                raise InvalidArgumentError(
                    f"input {tensor.name!r} has batch {shape[0]}, more than model {model}'s max_batch_size {max_batch}"
                )
            if rows is not None and shape[0] != rows:
                raise InvalidArgumentError(f"inputs of one request must share the batch size ({rows} vs {shape[0]})")
            rows = shape[0]
        elif not _dims_match(spec.shape, shape):
            raise InvalidArgumentError(f"input {tensor.name!r} of model {model} has shape {_fmt(spec.shape)}, got {_fmt(shape)}")
    missing = [s.name for s in config.inputs if s.name not in seen]
    if missing:
        raise InvalidArgumentError(f"model {model} needs input(s) {', '.join(missing)}")
    if request.outputs:
        names = {o.name for o in config.outputs}
        for out in request.outputs:
            if out.name not in names:
                raise InvalidArgumentError(
                    f"model {model} has no output named {out.name!r} (outputs: {', '.join(sorted(names))})"
                )
    return rows or 1
