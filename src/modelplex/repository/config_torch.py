"""PyTorch models in the repository (Triton's pytorch_libtorch layout), beside ONNX ones.

    <model>/config.pbtxt        platform: "pytorch_libtorch" (or backend: "pytorch"); required
    <model>/<version>/model.pt  TorchScript (torch.jit.save); model.pt2 (torch.export.save) too

A TorchScript file carries no reliable signature, so config.pbtxt must declare every input and
output with its data_type and dims (without the batch axis when max_batch_size > 0, as in
Triton); the "graph" the rest of the repository code checks against is built from it. Triton's
names INPUT__0 / OUTPUT__0 give the positional order (runtime.engines_torch).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from modelplex.core.errors import InvalidArgumentError, UnsupportedError
from modelplex.core.tensors import DataType, TensorSpec

if TYPE_CHECKING:
    from modelplex.repository.config import GraphInfo, TensorConfig, TritonConfig

ONNX_PLATFORM = "onnxruntime_onnx"
TORCH_PLATFORM = "pytorch_libtorch"
_ONNX_BACKENDS = {"", "onnxruntime"}  # Triton's backend names meaning ONNX Runtime
_TORCH_BACKENDS = {"", "pytorch"}  # ... and PyTorch (libtorch)
TORCH_FILENAMES = ("model.pt", "model.pt2")  # TorchScript, then torch.export
BACKEND_OF = {ONNX_PLATFORM: "onnxruntime", TORCH_PLATFORM: "pytorch"}  # Triton backend name of each platform


def served_platform(platform: str, backend: str, where: str) -> str:
    """The platform config.pbtxt's `platform` / `backend` fields ask for (ONNX when neither is
    set); UnsupportedError for any other."""
    if (platform == TORCH_PLATFORM or backend == "pytorch") and platform in ("", TORCH_PLATFORM) and backend in _TORCH_BACKENDS:
        return TORCH_PLATFORM
    if platform in ("", ONNX_PLATFORM) and backend in _ONNX_BACKENDS:
        return ONNX_PLATFORM
    raise UnsupportedError(
        f"{where}: platform {platform or backend!r} is not served; only {ONNX_PLATFORM} and {TORCH_PLATFORM}"
    )


def is_torch(triton: "TritonConfig | None", where: str) -> bool:
    return triton is not None and served_platform(triton.platform, triton.backend, where) == TORCH_PLATFORM


def model_file(model_dir: Path, version: str, triton: "TritonConfig | None", default: str) -> Path:
    """The model file of one version: default_model_filename, else model.pt / model.pt2 for a
    PyTorch model, else `default` (model.onnx). A PyTorch file without config.pbtxt is refused
    with the reason."""
    folder = model_dir / version
    if triton is not None and triton.default_model_filename:
        return folder / triton.default_model_filename
    if is_torch(triton, f"model {model_dir.name!r}"):
        found = [folder / f for f in TORCH_FILENAMES if (folder / f).is_file()]
        return found[0] if found else folder / TORCH_FILENAMES[0]
    if triton is None and not (folder / default).is_file():
        for f in TORCH_FILENAMES:
            if (folder / f).is_file():
                raise InvalidArgumentError(
                    f"model {model_dir.name!r}: {folder / f} is a PyTorch model; it needs a config.pbtxt with "
                    f'platform: "{TORCH_PLATFORM}" and every input and output (name, data_type, dims)'
                )
    return folder / default


def torch_graph(triton: "TritonConfig", path: Path, where: str) -> "GraphInfo":
    """The signature config.pbtxt declares for a PyTorch model, as the graph the merge checks."""
    from modelplex.repository.config import GraphInfo

    if not path.is_file():
        raise InvalidArgumentError(f"{path}: no such model file")
    if not zipfile.is_zipfile(path):
        raise InvalidArgumentError(f"{path}: not a TorchScript or torch.export file (those are zip archives)")
    if not triton.inputs or not triton.outputs:
        raise InvalidArgumentError(f"{where}: config.pbtxt of a PyTorch model must declare its inputs and outputs")
    batched = (triton.max_batch_size or 0) > 0
    inputs = tuple(_spec(t, batched, f"{where} input") for t in triton.inputs)
    outputs = tuple(_spec(t, batched, f"{where} output") for t in triton.outputs)
    return GraphInfo(inputs=inputs, outputs=outputs, batchable=batched)


def _spec(t: "TensorConfig", batched: bool, what: str) -> TensorSpec:
    if t.datatype is None or t.dims is None:
        raise InvalidArgumentError(f"{what} {t.name!r}: a PyTorch model needs data_type and dims in config.pbtxt")
    if t.datatype is DataType.BYTES:
        raise UnsupportedError(f"{what} {t.name!r}: TYPE_STRING tensors are not served for PyTorch models")
    return TensorSpec(name=t.name, datatype=t.datatype, shape=((-1,) if batched else ()) + t.dims)


def torch_signature(path: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Inputs and outputs (full shapes, -1 = any size) of the PyTorch model file at
    <model>/<version>/<file>, read from <model>/config.pbtxt (what the worker loads it with)."""
    from modelplex.repository.config import load_pbtxt

    config = path.parent.parent / "config.pbtxt"
    if not config.is_file():
        raise InvalidArgumentError(f"{path}: a PyTorch model needs {config} declaring its inputs and outputs")
    graph = torch_graph(load_pbtxt(config), path, f"model {path.parent.parent.name!r}")
    return graph.inputs, graph.outputs
