"""The PyTorch engine: TorchScript (`model.pt`, Triton's pytorch_libtorch) or torch.export
(`model.pt2`) files, inputs and outputs named as the model's config.pbtxt declares them.

Inputs go to the model positionally: by the index in Triton's `NAME__<i>` names when every input
has one, else in config order. The model returns a tensor, a tuple/list of tensors (matched to
the outputs the same way) or a dict keyed by output name.

On the CPU the engine uses the slice's threads (torch.set_num_threads). On CUDA it caps the
caching allocator at the slice's memory (set_per_process_memory_fraction), moves the model to
cuda:0 (the worker sees only its own GPU), checks that the parameters and the warm-up outputs
are really there, and runs under torch.inference_mode.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from modelplex.core.tensors import TensorSpec
from modelplex.runtime.engines import WARMUP_RUNS, DeviceUnusableError

log = logging.getLogger(__name__)

_INDEXED = re.compile(r"^.*__(\d+)$")


def positional(names: Sequence[str]) -> list[str]:
    """The names in positional order: by their `__<i>` suffix when all have one, else as given."""
    found = [_INDEXED.match(n) for n in names]
    if names and all(found):
        return [n for _, n in sorted((int(m.group(1)), n) for m, n in zip(found, names) if m)]
    return list(names)


class TorchEngine:
    """A TorchScript or torch.export model on the CPU or on cuda:0."""

    kind = "torch"

    def __init__(self, path: str, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
                 threads: int, provider: str = "cpu", mem_limit: int | None = None) -> None:
        import torch

        self._torch = torch
        self.inputs = {s.name: s for s in inputs}  # declared inputs (full shapes, -1 = any)
        self.input_order = positional([s.name for s in inputs])  # positional order of forward()
        self.outputs = positional([s.name for s in outputs])  # all output names, positional order
        self.on_gpu = provider == "cuda"
        if self.on_gpu:
            self.dev = self._cuda_device(mem_limit)
        else:
            self.dev = torch.device("cpu")
            torch.set_num_threads(max(1, threads))
        self.model = self._load(path)
        if self.on_gpu:
            self._check_on_device("parameters", [p.device for p in self.model.parameters()])

    def _cuda_device(self, mem_limit: int | None) -> Any:
        torch = self._torch
        if not torch.cuda.is_available():
            raise DeviceUnusableError(
                f"PyTorch {torch.__version__} sees no CUDA device (built with CUDA {torch.version.cuda or 'none'}): "
                "a GPU worker will not run on the CPU"
            )
        dev = torch.device("cuda", 0)
        total = torch.cuda.get_device_properties(dev).total_memory
        if mem_limit:
            fraction = min(1.0, mem_limit / total)
            torch.cuda.set_per_process_memory_fraction(fraction, dev)
            log.info("PyTorch on %s: caching allocator capped at %.0f MiB (%.1f%% of %.0f MiB)",
                     torch.cuda.get_device_name(dev), mem_limit / 2**20, 100 * fraction, total / 2**20)
        else:
            log.info("PyTorch on %s: no memory limit for this slice", torch.cuda.get_device_name(dev))
        return dev

    def _load(self, path: str) -> Any:
        torch = self._torch
        if path.endswith(".pt2"):
            model = torch.export.load(path).module()
            model.to(self.dev)
        else:
            model = torch.jit.load(path, map_location=self.dev)
            model.eval()
        return model

    def _check_on_device(self, what: str, devices: Sequence[Any]) -> None:
        off = sorted({str(d) for d in devices if d.type != "cuda"})
        if off:
            raise DeviceUnusableError(f"the model's {what} are on {', '.join(off)}, not on the GPU")

    def run(self, feeds: Mapping[str, np.ndarray], names: Sequence[str]) -> list[np.ndarray]:
        torch = self._torch
        missing = [n for n in self.input_order if n not in feeds]
        if missing:
            raise ValueError(f"missing input(s) {', '.join(missing)}")
        args = []
        for name in self.input_order:
            arr = feeds[name]
            if not arr.flags.writeable or not arr.flags.c_contiguous:
                arr = np.array(arr, copy=True, order="C")
            args.append(torch.from_numpy(arr).to(self.dev, non_blocking=True))
        with torch.inference_mode():
            result = self.model(*args)
        tensors = self._named(result)
        unknown = [n for n in names if n not in tensors]
        if unknown:
            raise ValueError(f"unknown output(s) {', '.join(unknown)} (the model has {', '.join(self.outputs)})")
        return [tensors[n].detach().cpu().numpy() for n in names]

    def _named(self, result: Any) -> dict[str, Any]:
        """The model's outputs by name."""
        if isinstance(result, dict):
            return {str(k): v for k, v in result.items()}
        values = list(result) if isinstance(result, (tuple, list)) else [result]
        if len(values) != len(self.outputs):
            raise ValueError(f"the model returned {len(values)} tensor(s); config.pbtxt declares "
                             f"{len(self.outputs)} output(s): {', '.join(self.outputs)}")
        return dict(zip(self.outputs, values))

    def warm_up(self) -> None:
        """Run on zeros (batch 1 for open dimensions) so TorchScript's optimisation and CUDA's
        start happen before ready; on the GPU, check the outputs are there too."""
        torch = self._torch
        feeds = {n: np.zeros([d if d > 0 else 1 for d in s.shape], dtype=s.datatype.numpy) for n, s in self.inputs.items()}
        args = [torch.from_numpy(feeds[n]).to(self.dev) for n in self.input_order]
        for _ in range(WARMUP_RUNS):
            with torch.inference_mode():
                result = self.model(*args)
        if self.on_gpu:
            self._check_on_device("outputs", [t.device for t in self._named(result).values()])
            torch.cuda.synchronize(self.dev)

    def device(self) -> str:
        torch = self._torch
        if self.on_gpu:
            return f"{self.dev} ({torch.cuda.get_device_name(self.dev)}, PyTorch {torch.__version__})"
        return f"cpu (PyTorch {torch.__version__}, {torch.get_num_threads()} thread(s))"
