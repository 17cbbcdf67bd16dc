"""Model configuration: Triton `config.pbtxt`, modelplex `config.yaml`, and the ONNX graph (for
a PyTorch model, the signature config.pbtxt declares: repository.config_torch).

Precedence, lowest to highest: what the ONNX graph says, then `config.pbtxt`, then `config.yaml`.
A config that contradicts the graph (an unknown tensor name, another dtype, another rank or a
different fixed dimension) is a load error, raised as InvalidArgumentError with the file named.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

import modelplex  # noqa: F401  (sets ORT_DISABLE_TELEMETRY before onnxruntime is imported)
from modelplex.core.errors import InvalidArgumentError, UnsupportedError
from modelplex.core.model import BatchingConfig, ModelConfig, ModelId, WarmupSample
from modelplex.core.tensors import DataType, TensorSpec
from modelplex.repository.config_extras import check_warmup, merge_priority, parse_priority, parse_warmup
from modelplex.repository.config_torch import ONNX_PLATFORM, TORCH_PLATFORM, served_platform  # noqa: F401
from modelplex.serving.grpc_gen.model_config_fds import SERIALIZED as _MODEL_CONFIG_FDS

PLATFORM = ONNX_PLATFORM  # ONNX models; PyTorch ones are TORCH_PLATFORM (repository.config_torch)
DEFAULT_MAX_BATCH_SIZE = 32  # for a batchable graph without a configured max_batch_size

# Triton's TYPE_* names <-> KServe v2 datatypes (TYPE_STRING is the protocol's BYTES).
_FROM_TRITON: dict[str, DataType] = {
    "TYPE_BOOL": DataType.BOOL,
    "TYPE_UINT8": DataType.UINT8,
    "TYPE_UINT16": DataType.UINT16,
    "TYPE_UINT32": DataType.UINT32,
    "TYPE_UINT64": DataType.UINT64,
    "TYPE_INT8": DataType.INT8,
    "TYPE_INT16": DataType.INT16,
    "TYPE_INT32": DataType.INT32,
    "TYPE_INT64": DataType.INT64,
    "TYPE_FP16": DataType.FP16,
    "TYPE_FP32": DataType.FP32,
    "TYPE_FP64": DataType.FP64,
    "TYPE_STRING": DataType.BYTES,
}
_TO_TRITON = {v: k for k, v in _FROM_TRITON.items()}


def triton_type(datatype: DataType) -> str:
    """Triton's model-configuration type name of a datatype, e.g. "TYPE_FP32"."""
    return _TO_TRITON[datatype]

# Triton's ModelConfig message, built in a private descriptor pool: importing the generated
# model_config_pb2 would register "model_config.proto" in protobuf's default pool, and a process
# that also imports tritonclient.grpc (tests, benchmarks) would then fail with "duplicate file".
_POOL = descriptor_pool.DescriptorPool()
for _file in descriptor_pb2.FileDescriptorSet.FromString(_MODEL_CONFIG_FDS).file:
    _POOL.Add(_file)
_ModelConfigMessage = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("inference.ModelConfig"))
_TRITON_TYPE_NAMES = {v.number: v.name for v in _POOL.FindEnumTypeByName("inference.DataType").values}


# --------------------------------------------------------------------------- config.pbtxt


@dataclass(frozen=True)
class TensorConfig:
    """One input or output as a config file declares it."""

    name: str  # tensor name; must exist in the graph
    datatype: DataType | None  # None when the config leaves it to the graph
    dims: tuple[int, ...] | None  # shape without the batch axis when batching; None = from graph
    reshaped: bool = False  # a `reshape` was given: dims then describe the client's view only


@dataclass(frozen=True)
class TritonConfig:
    """The parts of a Triton `config.pbtxt` that modelplex uses."""

    name: str  # "" when not given
    platform: str  # "" when not given
    backend: str  # "" when not given
    max_batch_size: int | None  # None when the file does not set it
    inputs: tuple[TensorConfig, ...]  # declared inputs, file order
    outputs: tuple[TensorConfig, ...]  # declared outputs, file order
    dynamic_batching: bool  # a dynamic_batching block is present
    max_queue_delay_us: int | None  # from dynamic_batching; None when absent
    preferred_batch_sizes: tuple[int, ...]  # from dynamic_batching
    instance_count: int | None  # sum over instance_group counts; None when no group
    default_model_filename: str  # "" = model.onnx
    priority: tuple[int, int] = (0, 0)  # dynamic_batching's (priority_levels, default_priority_level)
    warmup: tuple[WarmupSample, ...] = ()  # model_warmup samples


def parse_pbtxt(text: str, source: str = "config.pbtxt") -> TritonConfig:
    """Parse Triton's protobuf text format with the published ModelConfig message."""
    msg = _ModelConfigMessage()
    try:
        text_format.Parse(text, msg)
    except text_format.ParseError as e:
        raise InvalidArgumentError(f"{source}: {e}") from None
    # proto3 has no presence for scalars: look at the text to tell "max_batch_size: 0" (batching
    # off, on purpose) from an absent field (decided from the graph).
    uncommented = re.sub(r"#[^\n]*", "", text)
    has_mbs = msg.max_batch_size != 0 or re.search(r"\bmax_batch_size\s*:", uncommented) is not None
    if msg.max_batch_size < 0:
        raise InvalidArgumentError(f"{source}: max_batch_size must be >= 0, got {msg.max_batch_size}")
    batching = msg.HasField("dynamic_batching")
    db = msg.dynamic_batching
    counts = [max(g.count, 1) for g in msg.instance_group]  # Triton: count 0 means 1
    return TritonConfig(
        name=msg.name,
        platform=msg.platform,
        backend=msg.backend,
        max_batch_size=msg.max_batch_size if has_mbs else None,
        inputs=tuple(_tensor_config(t, source) for t in msg.input),
        outputs=tuple(_tensor_config(t, source) for t in msg.output),
        dynamic_batching=batching,
        max_queue_delay_us=int(db.max_queue_delay_microseconds) if batching else None,
        preferred_batch_sizes=tuple(int(s) for s in db.preferred_batch_size),
        instance_count=sum(counts) if counts else None,
        default_model_filename=msg.default_model_filename,
        priority=parse_priority(msg, source) if batching else (0, 0),
        warmup=parse_warmup(msg, _TRITON_TYPE_NAMES, _FROM_TRITON, source),
    )


def _tensor_config(t: Any, source: str) -> TensorConfig:
    if not t.name:
        raise InvalidArgumentError(f"{source}: an input or output has no name")
    type_name = _TRITON_TYPE_NAMES.get(t.data_type, "TYPE_INVALID")
    if type_name == "TYPE_INVALID":
        datatype = None
    elif type_name in _FROM_TRITON:
        datatype = _FROM_TRITON[type_name]
    else:
        raise UnsupportedError(f"{source}: tensor {t.name!r} has unsupported type {type_name}")
    return TensorConfig(
        name=t.name,
        datatype=datatype,
        dims=tuple(int(d) for d in t.dims) if len(t.dims) else None,
        reshaped=t.HasField("reshape"),
    )


def load_pbtxt(path: Path) -> TritonConfig:
    return parse_pbtxt(_read(path), str(path))


# --------------------------------------------------------------------------- config.yaml


@dataclass(frozen=True)
class ServingOverrides:
    """modelplex's own per-model settings (`config.yaml`); None = not set."""

    slo_ms: float | None = None  # default deadline of a request without its own timeout
    max_batch_size: int | None = None  # overrides config.pbtxt and the graph's default
    max_queue_delay_us: int | None = None  # longest a request waits for a batch to fill
    preferred_batch_sizes: tuple[int, ...] | None = None  # dispatch at once at these sizes
    instances: int | None = None  # worker processes for the model
    task: str | None = None  # task served, for model-less queries
    priority_levels: tuple[int | None, int | None] = (None, None)  # priority_levels, default_priority_level


_YAML_KEYS = {
    "slo_ms", "max_batch_size", "max_queue_delay_us", "preferred_batch_sizes", "instances", "task",
    "priority_levels", "default_priority_level",
}


def parse_yaml(text: str, source: str = "config.yaml") -> ServingOverrides:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InvalidArgumentError(f"{source}: invalid YAML: {_one_line(str(e))}") from None
    if data is None:
        return ServingOverrides()
    if not isinstance(data, dict):
        raise InvalidArgumentError(f"{source}: expected a mapping of settings")
    unknown = sorted(set(map(str, data)) - _YAML_KEYS)
    if unknown:
        # A typo ("slo") silently ignored would serve without the intended SLO; refuse instead.
        raise InvalidArgumentError(
            f"{source}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_YAML_KEYS))}"
        )
    slo = data.get("slo_ms")
    if slo is not None and (not _is_number(slo) or slo <= 0):
        raise InvalidArgumentError(f"{source}: slo_ms must be a positive number, got {slo!r}")
    pref = data.get("preferred_batch_sizes")
    if pref is not None:
        if isinstance(pref, int) and not isinstance(pref, bool):
            pref = [pref]
        if not isinstance(pref, list) or not all(_is_int(p) and p > 0 for p in pref):
            raise InvalidArgumentError(f"{source}: preferred_batch_sizes must be a list of positive integers")
    task = data.get("task")
    if task is not None and not isinstance(task, str):
        raise InvalidArgumentError(f"{source}: task must be a string")
    return ServingOverrides(
        slo_ms=float(slo) if slo is not None else None,
        max_batch_size=_int_key(data, "max_batch_size", 0, source),
        max_queue_delay_us=_int_key(data, "max_queue_delay_us", 0, source),
        preferred_batch_sizes=tuple(pref) if pref is not None else None,
        instances=_int_key(data, "instances", 1, source),
        task=task,
        priority_levels=(_int_key(data, "priority_levels", 0, source), _int_key(data, "default_priority_level", 1, source)),
    )


def load_yaml(path: Path) -> ServingOverrides:
    return parse_yaml(_read(path), str(path))


def _int_key(data: dict[str, Any], key: str, minimum: int, source: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if not _is_int(value) or value < minimum:
        raise InvalidArgumentError(f"{source}: {key} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# --------------------------------------------------------------------------- ONNX graph


@dataclass(frozen=True)
class GraphInfo:
    """Inputs and outputs of an ONNX file as ONNX Runtime sees them."""

    inputs: tuple[TensorSpec, ...]  # full shapes, batch axis included; -1 = dynamic dimension
    outputs: tuple[TensorSpec, ...]  # likewise
    batchable: bool  # the first dimension of every input and output is dynamic


def inspect_onnx(path: Path) -> GraphInfo:
    """Read the graph's signature by opening it in ONNX Runtime (CPU, 1 thread, no optimizer).

    ONNX Runtime rather than onnx.load: it rejects every file a worker could not load (garbage
    that happens to parse as protobuf, unsupported opsets, bad external data), and with graph
    optimisation off, opening even the 17 MB example ResNet takes about 15 ms.
    """
    import onnxruntime as ort  # deferred: the config parsers above need no runtime

    if not Path(path).is_file():
        raise InvalidArgumentError(f"{path}: no such model file")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3  # errors reach the caller as exceptions, not log spam
    try:
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises several types (Fail, InvalidGraph, InvalidProtobuf...)
        raise InvalidArgumentError(f"{path}: not a loadable ONNX model: {_one_line(str(e))}") from None
    inputs = tuple(_spec(a, path) for a in sess.get_inputs())
    outputs = tuple(_spec(a, path) for a in sess.get_outputs())
    batchable = all(
        len(s.shape) >= 1 and s.shape[0] == -1 for s in inputs + outputs
    ) and bool(inputs)
    return GraphInfo(inputs=inputs, outputs=outputs, batchable=batchable)


def _spec(arg: Any, path: Path) -> TensorSpec:
    try:
        datatype = DataType.from_onnx(arg.type)
    except InvalidArgumentError:
        raise UnsupportedError(f"{path}: tensor {arg.name!r} has unsupported type {arg.type}") from None
    # dim_param (str), unknown (None) and non-positive sizes are all "any size" to clients.
    shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in (arg.shape or ()))
    return TensorSpec(name=arg.name, datatype=datatype, shape=shape)


# --------------------------------------------------------------------------- merge


def build_model_config(
    model: ModelId,
    path: Path,
    graph: GraphInfo,
    triton: TritonConfig | None = None,
    overrides: ServingOverrides | None = None,
) -> ModelConfig:
    """Combine graph, config.pbtxt and config.yaml into the ModelConfig the data plane serves."""
    triton = triton or _EMPTY_TRITON
    overrides = overrides or ServingOverrides()
    where = f"model {model.name!r}"
    if triton.name and triton.name != model.name:
        raise InvalidArgumentError(f"{where}: config.pbtxt names the model {triton.name!r}; it must match the folder")
    platform = served_platform(triton.platform, triton.backend, where)

    if overrides.max_batch_size is not None:
        max_batch = overrides.max_batch_size
    elif triton.max_batch_size is not None:
        max_batch = triton.max_batch_size
    else:
        max_batch = DEFAULT_MAX_BATCH_SIZE if graph.batchable else 0
    if max_batch > 0 and not graph.batchable:
        fixed = [s.name for s in graph.inputs + graph.outputs if not s.shape or s.shape[0] != -1]
        raise InvalidArgumentError(
            f"{where}: max_batch_size {max_batch} needs a dynamic first dimension, but "
            f"{', '.join(fixed)} {'has' if len(fixed) == 1 else 'have'} a fixed one"
        )
    inputs = _merge(graph.inputs, triton.inputs, max_batch > 0, f"{where} input")
    outputs = _merge(graph.outputs, triton.outputs, max_batch > 0, f"{where} output")

    preferred = overrides.preferred_batch_sizes if overrides.preferred_batch_sizes is not None else triton.preferred_batch_sizes
    if max_batch > 0 and any(p > max_batch for p in preferred):
        raise InvalidArgumentError(f"{where}: preferred batch sizes {list(preferred)} exceed max_batch_size {max_batch}")
    delay = overrides.max_queue_delay_us if overrides.max_queue_delay_us is not None else (triton.max_queue_delay_us or 0)
    instances = overrides.instances or triton.instance_count or 1
    levels, default_level = merge_priority(triton.priority, *overrides.priority_levels, where)
    check_warmup(triton.warmup, inputs, max_batch, where)
    return ModelConfig(
        model=model,
        path=str(path),
        platform=platform,
        inputs=inputs,
        outputs=outputs,
        batching=BatchingConfig(
            max_batch_size=max_batch,
            max_queue_delay_us=delay if max_batch > 0 else 0,
            preferred_batch_sizes=tuple(sorted(set(preferred))) if max_batch > 0 else (),
            slo_ms=overrides.slo_ms,
            priority_levels=levels,
            default_priority_level=default_level,
        ),
        instance_count=instances,
        task=overrides.task,
        warmup=triton.warmup,
    )


_EMPTY_TRITON = TritonConfig("", "", "", None, (), (), False, None, (), None, "")


def _merge(
    graph: tuple[TensorSpec, ...], declared: tuple[TensorConfig, ...], batched: bool, what: str
) -> tuple[TensorSpec, ...]:
    by_name = {s.name: s for s in graph}
    for decl in declared:
        if decl.name not in by_name:
            raise InvalidArgumentError(f"{what} {decl.name!r} is not in the ONNX graph (it has: {', '.join(by_name)})")
    wanted = {d.name: d for d in declared}
    merged: list[TensorSpec] = []
    for spec in graph:  # graph order: it is the order the worker feeds ONNX Runtime
        shape = spec.shape[1:] if batched else spec.shape
        d = wanted.get(spec.name)
        if d is not None:
            if d.datatype is not None and d.datatype is not spec.datatype:
                raise InvalidArgumentError(
                    f"{what} {spec.name!r}: config says {d.datatype.value} "
                    f"but the graph has {spec.datatype.value}"
                )
            if d.dims is not None and not d.reshaped:
                shape = _check_dims(shape, d.dims, batched, f"{what} {spec.name!r}")
            elif d.dims is not None:
                shape = d.dims  # the client's view; the worker reshapes to the graph's
        merged.append(TensorSpec(name=spec.name, datatype=spec.datatype, shape=shape))
    return tuple(merged)


def _check_dims(
    graph: tuple[int, ...], dims: tuple[int, ...], batched: bool, what: str
) -> tuple[int, ...]:
    if len(dims) != len(graph):
        hint = " (with max_batch_size > 0, dims exclude the batch axis)" if batched else ""
        raise InvalidArgumentError(f"{what}: config dims {list(dims)} do not match the graph's {list(graph)}{hint}")
    for g, c in zip(graph, dims):
        if g != -1 and c != -1 and g != c:
            raise InvalidArgumentError(f"{what}: config dims {list(dims)} do not match the graph's {list(graph)}")
    # A fixed size on either side is the more precise: the graph may leave a dim open that the
    # config pins (it then validates requests), or the config may write -1 over a fixed one.
    return tuple(c if c != -1 else g for g, c in zip(graph, dims))


def _read(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidArgumentError(f"{path}: cannot read: {_one_line(str(e))}") from None


def _one_line(text: str) -> str:
    return " ".join(text.split())
