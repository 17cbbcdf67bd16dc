"""Variant generation: from one registered FP32 ONNX model, the executable forms worth serving.

Variants of a model `m` (files `<dir>/<precision>.onnx`):

- `m:fp32`          the model as given (CPU);
- `m:int8-dynamic`  ONNX Runtime dynamic quantization (weights INT8, activations quantized per
                    batch at run time) of MatMul, Gather, Attention, LSTM and the like, not Conv:
                    measured on the example CNN, ORT's ConvInteger ran 9x *slower* than FP32 (4.8
                    vs 0.55 ms at batch 1, 1 core), and ORT itself advises static quantization for
                    CNNs. Generated only when the graph has such an op (otherwise it would be the
                    FP32 graph under another name), so the example CNN (Conv + Gemm) has none.
- `m:int8-static`   static quantization, QDQ format, per-channel weights (S8S8), calibrated
                    (MinMax) on the validation inputs when given, else on seeded synthetic
                    inputs. QDQ and QOperator measured the same speed on the example CNN here
                    (see benchmarks in the report); QDQ is ONNX Runtime's recommended format and
                    per-channel keeps top-1 agreement with FP32 higher.
- `m:fp16`          FP16 weights and activations with FP32 inputs/outputs (keep_io_types), for
                    GPU slices: device kind gpu-mps, not profiled on a CPU (its accuracy is still
                    measured on CPU, whose FP16 kernels give the same rounding).

Accuracy (on the validation set): top-1 against the labels when the set has labels
(`accuracy_kind = "top1"`), else the fraction of samples whose top-1 class equals the FP32
model's (`"agreement"`). Without a validation file, agreement is measured on seeded synthetic
inputs (`validation = "synthetic"`). Top-1 is the argmax over the first output's non-batch axes.
"""

from __future__ import annotations

import asyncio
import enum
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

import modelplex  # noqa: F401  (sets ORT_DISABLE_TELEMETRY before onnxruntime is imported)
from modelplex.core.devices import DeviceKind
from modelplex.core.errors import InvalidArgumentError
from modelplex.core.model import ModelConfig
from modelplex.core.profile import Profile, ProfilePoint

SYNTHETIC_SAMPLES = 256  # validation samples drawn when no validation file is given
CALIBRATION_SAMPLES = 128  # most inputs fed to static-quantization calibration
CALIBRATION_BATCH = 16  # calibration reads inputs this many at a time
SYNTHETIC_SEED = 1234  # seed of synthetic validation/calibration inputs (reproducible accuracy)
PROFILE_BATCHES = (1, 4, 16)  # batches each variant is profiled at (capped at its max batch)


class Precision(enum.Enum):
    """Numeric form of a variant; the value is the suffix of its name (`cnn:int8-static`)."""

    FP32 = "fp32"  # the model as registered
    INT8_DYNAMIC = "int8-dynamic"  # dynamic quantization (activations quantized at run time)
    INT8_STATIC = "int8-static"  # static quantization, calibrated (QDQ, per-channel)
    FP16 = "fp16"  # half precision for GPU slices


ALL_PRECISIONS: tuple[Precision, ...] = tuple(Precision)  # generation order; FP32 is first


@dataclass(frozen=True)
class Variant:
    """One executable form of a registered model, with what was measured about it."""

    name: str  # "<model>:<precision>", e.g. "cnn:int8-static"
    model: str  # registered model name
    task: str  # task the model serves
    precision: Precision  # numeric form
    device_kind: str  # DeviceKind value it runs on: "cpu", or "gpu-mps" for FP16
    max_batch: int  # largest batch it accepts (0 = no batch axis)
    path: str  # its ONNX file
    size_bytes: int  # size of the ONNX file
    accuracy: float | None  # measured on the validation set (None when not measurable)
    accuracy_kind: str  # "top1" (against labels) or "agreement" (top-1 equal to FP32's)
    validation: str  # what accuracy was measured on: the .npz path, or "synthetic"
    validation_samples: int  # samples accuracy was measured on
    memory_mb: float | None  # resident memory of a worker holding it (None: not profiled)
    load_s: float | None  # seconds to start a worker and load it (None: not profiled)
    profile: Profile | None  # latency per (slice size, batch); None when not profiled here

    def p50_ms(self, slice_size: int, batch: int = 1) -> float | None:
        """Median latency of one batch on a slice, when profiled there (or interpolable)."""
        if self.profile is None or not self.profile.points:
            return None
        return self.profile.latency_ms(slice_size, batch)


# --------------------------------------------------------------------------- validation data


@dataclass(frozen=True)
class ValidationSet:
    """Inputs (one array per model input, batch axis first) and optional integer labels."""

    inputs: dict[str, np.ndarray]  # model input name -> [N, ...] array
    labels: np.ndarray | None  # [N] class ids, or None (agreement only)
    source: str  # the .npz path, or "synthetic"

    @property
    def samples(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0])


def load_validation(path: Path, config: ModelConfig) -> ValidationSet:
    """Read a `.npz` with `inputs` (single-input models) or one array per input name, and
    optional `labels`; check every shape and dtype against the model. One-line errors."""
    where = f"validation data {path}"
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise InvalidArgumentError(f"{where}: no such file") from None
    except Exception as e:  # noqa: BLE001 (zip, pickle and format errors all mean "not an npz")
        raise InvalidArgumentError(f"{where}: not a readable .npz file: {_one_line(str(e))}") from None
    inputs: dict[str, np.ndarray] = {}
    for spec in config.inputs:
        if spec.name in arrays:
            inputs[spec.name] = arrays[spec.name]
        elif "inputs" in arrays and len(config.inputs) == 1:
            inputs[spec.name] = arrays["inputs"]
        else:
            raise InvalidArgumentError(
                f"{where}: no array for model input {spec.name!r} (has: {', '.join(sorted(arrays)) or 'none'})"
            )
    n: int | None = None
    for spec in config.inputs:
        arr = inputs[spec.name]
        want = spec.shape if config.batched else spec.shape[1:]
        got = arr.shape[1:]
        if arr.ndim != len(want) + 1 or any(w not in (-1, g) for w, g in zip(want, got)):
            raise InvalidArgumentError(
                f"{where}: input {spec.name!r} has shape {list(arr.shape)}, the model needs "
                f"[N, {', '.join('?' if d < 0 else str(d) for d in want)}]"
            )
        want_dtype = spec.datatype.numpy
        if arr.dtype != want_dtype:
            if not np.can_cast(arr.dtype, want_dtype, casting="same_kind"):
                raise InvalidArgumentError(
                    f"{where}: input {spec.name!r} is {arr.dtype}, the model needs {want_dtype}"
                )
            inputs[spec.name] = arr.astype(want_dtype)
        if n is not None and arr.shape[0] != n:
            raise InvalidArgumentError(f"{where}: inputs have different sample counts")
        n = int(arr.shape[0])
    if not n:
        raise InvalidArgumentError(f"{where}: has no samples")
    labels = arrays.get("labels")
    if labels is not None:
        if labels.ndim != 1 or labels.shape[0] != n or labels.dtype.kind not in "iu":
            raise InvalidArgumentError(
                f"{where}: labels must be {n} integer class ids, got {labels.dtype} {list(labels.shape)}"
            )
        labels = labels.astype(np.int64)
    return ValidationSet(inputs=inputs, labels=labels, source=str(path))


def synthetic_validation(config: ModelConfig, samples: int = SYNTHETIC_SAMPLES) -> ValidationSet:
    """Seeded random inputs of the model's shapes (agreement-only: no labels)."""
    from modelplex.profiling.inputs import synthesize

    if not config.batched:
        raise InvalidArgumentError(f"model {config.model.name!r}: variants need a batch axis")
    arrays = dict(synthesize(config, samples, seed=SYNTHETIC_SEED))
    return ValidationSet(inputs=arrays, labels=None, source="synthetic")


# --------------------------------------------------------------------------- generation


def generate_files(
    fp32_path: Path, out_dir: Path, calibration: ValidationSet,
    precisions: Sequence[Precision] = ALL_PRECISIONS,
) -> dict[Precision, Path]:
    """Write `<out_dir>/<precision>.onnx` for each precision that applies; FP32 is a copy."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[Precision, Path] = {}
    for precision in precisions:
        dst = out_dir / f"{precision.value}.onnx"
        if precision is Precision.FP32:
            shutil.copyfile(fp32_path, dst)
        elif precision is Precision.INT8_DYNAMIC:
            if not _has_dynamic_ops(fp32_path):
                continue
            _quantize_dynamic(fp32_path, dst)
        elif precision is Precision.INT8_STATIC:
            _quantize_static(fp32_path, dst, calibration)
        else:
            _convert_fp16(fp32_path, dst)
        written[precision] = dst
    return written


def _dynamic_ops() -> list[str]:
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    return sorted(op for op in IntegerOpsRegistry if op not in _SLOW_DYNAMIC_OPS)


_SLOW_DYNAMIC_OPS = {"Conv"}  # ConvInteger: far slower than FP32 Conv on CPU (see module doc)


def _has_dynamic_ops(path: Path) -> bool:
    model = onnx.load(str(path), load_external_data=False)
    ops = set(_dynamic_ops())
    return any(node.op_type in ops for node in model.graph.node)


def _quantize_dynamic(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = dst.with_name(dst.stem + ".pre.onnx")
    try:
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)  # as for static (see there)
        quantize_dynamic(str(pre), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=_dynamic_ops())
    finally:
        pre.unlink(missing_ok=True)


class _Calibration:
    """ONNX Runtime's CalibrationDataReader over the first CALIBRATION_SAMPLES validation inputs."""

    def __init__(self, data: ValidationSet) -> None:
        n = min(data.samples, CALIBRATION_SAMPLES)
        self._batches = iter(
            [{k: v[i : i + CALIBRATION_BATCH] for k, v in data.inputs.items()} for i in range(0, n, CALIBRATION_BATCH)]
        )

    def get_next(self) -> dict[str, Any] | None:
        return next(self._batches, None)

    def rewind(self) -> None:  # pragma: no cover (only the entropy/percentile methods rewind)
        raise NotImplementedError


def _quantize_static(src: Path, dst: Path, calibration: ValidationSet) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    reader = type("Reader", (_Calibration, CalibrationDataReader), {})(calibration)
    pre = dst.with_name(dst.stem + ".pre.onnx")
    try:
        # Shape inference and graph clean-up first (ORT's advice); symbolic inference needs sympy.
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre), str(dst), reader, quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
        )
    finally:
        pre.unlink(missing_ok=True)
        for extra in dst.parent.glob("*augmented*"):  # calibration scratch model of some ORT versions
            extra.unlink(missing_ok=True)


def _convert_fp16(src: Path, dst: Path) -> None:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    _toposort(model.graph)  # the converter appends its input Casts at the end of the node list
    onnx.checker.check_model(model)
    onnx.save_model(model, str(dst))


def _toposort(graph: onnx.GraphProto) -> None:
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        rest = [n for n in pending if not all(i in ready for i in n.input)]
        done = [n for n in pending if all(i in ready for i in n.input)]
        if not done:
            raise InvalidArgumentError(f"graph {graph.name!r} has a cycle or an undefined input")
        for n in done:
            ordered.append(n)
            ready.update(n.output)
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


# --------------------------------------------------------------------------- accuracy


def run_outputs(path: Path, data: ValidationSet, batch: int = 64) -> np.ndarray:
    """The first output of the model over the whole set, in batches (CPU, 1 thread)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    parts = []
    for i in range(0, data.samples, batch):
        parts.append(sess.run(None, {k: v[i : i + batch] for k, v in data.inputs.items()})[0])
    return np.concatenate(parts)


def top1(outputs: np.ndarray) -> np.ndarray:
    return np.asarray(outputs.reshape(outputs.shape[0], -1).argmax(axis=1))


def measure_accuracy(
    path: Path, data: ValidationSet, reference_top1: np.ndarray | None
) -> tuple[float, str]:
    """(accuracy, kind): top-1 vs labels when present, else agreement with `reference_top1`."""
    pred = top1(run_outputs(path, data))
    if data.labels is not None:
        return float((pred == data.labels).mean()), "top1"
    if reference_top1 is None:
        return 1.0, "agreement"  # the FP32 model agrees with itself by definition
    return float((pred == reference_top1).mean()), "agreement"


# --------------------------------------------------------------------------- profiling

# (variant name, ONNX path, model config, max batch) -> profile, or None when not profiled
VariantProfiler = Callable[[str, Path, ModelConfig, int], Profile | None]


@dataclass(frozen=True)
class ProfileSettings:
    """How registration profiles each CPU variant (kept short: registration should be quick)."""

    slice_sizes: tuple[int, ...] = ()  # CPU cores per slice (empty = 1..all usable cores)
    batches: tuple[int, ...] = PROFILE_BATCHES  # batches measured, capped at the max batch
    budget_s: float = 0.3  # most seconds timing one point
    min_samples: int = 10  # fewest timed runs per point
    rel_ci: float = 0.03  # stop when the median's 95% CI half-width is this fraction of it


def worker_profiler(settings: ProfileSettings = ProfileSettings()) -> VariantProfiler:
    """Profile with modelplex.profiling: a real worker process bound to each CPU slice size."""

    def profile(name: str, path: Path, config: ModelConfig, max_batch: int) -> Profile | None:
        from modelplex.profiling.backends import CpuBackend
        from modelplex.profiling.hardware import detect_host
        from modelplex.profiling.measure import Warmup, measure_slice
        from modelplex.profiling.stats import StopRule

        backend = CpuBackend(detect_host())
        sizes = settings.slice_sizes or tuple(backend.default_sizes())
        for size in sizes:
            backend.check_size(size)
        batches = sorted({min(b, max_batch) for b in settings.batches}) if max_batch > 0 else [1]
        rule = StopRule(min_samples=settings.min_samples, min_s=0.05, rel_ci=settings.rel_ci,
                        budget_s=settings.budget_s)
        cfg = replace(config, path=str(path))
        points: list[ProfilePoint] = []
        memory_mb = load_s = 0.0
        for size in sizes:
            result = asyncio.run(measure_slice(cfg, backend, size, batches, rule, Warmup(runs=3, min_s=0.05)))
            points.extend(result.points)
            memory_mb = max(memory_mb, result.memory_mb)
            load_s = max(load_s, result.load_s)
        return Profile(model=name, device_kind=backend.device_kind, hardware=backend.hardware,
                       points=tuple(points), memory_mb=memory_mb, load_s=load_s)

    return profile


# --------------------------------------------------------------------------- all together


def build_variants(
    model: str, task: str, config: ModelConfig, files: dict[Precision, Path], data: ValidationSet,
    profiler: VariantProfiler | None,
) -> list[Variant]:
    """Measure accuracy of every generated file and profile the CPU ones."""
    fp32 = files[Precision.FP32]
    reference = top1(run_outputs(fp32, data)) if data.labels is None else None
    out: list[Variant] = []
    for precision, path in files.items():
        name = f"{model}:{precision.value}"
        accuracy, kind = measure_accuracy(path, data, None if precision is Precision.FP32 else reference)
        device_kind = DeviceKind.GPU_MPS.value if precision is Precision.FP16 else DeviceKind.CPU.value
        max_batch = config.batching.max_batch_size
        prof = None
        if profiler is not None and device_kind == DeviceKind.CPU.value:
            prof = profiler(name, path, config, max_batch)
        out.append(Variant(
            name=name, model=model, task=task, precision=precision, device_kind=device_kind,
            max_batch=max_batch, path=str(path), size_bytes=path.stat().st_size,
            accuracy=accuracy, accuracy_kind=kind, validation=data.source,
            validation_samples=data.samples,
            memory_mb=prof.memory_mb if prof else None, load_s=prof.load_s if prof else None,
            profile=prof,
        ))
    return out


def _one_line(text: str) -> str:
    return " ".join(text.split())
