"""Small PyTorch models saved in Triton's pytorch_libtorch layout, for tests.

`faulty` fails like a GPU does, deterministically and on any device: a negative input raises the
text of CUDA's sticky "illegal memory access" error (the worker must exit after answering), an
input above 1000 raises CUDA's out-of-memory text (the worker stays), else it returns x + 1.
"""

from __future__ import annotations

from pathlib import Path

import torch

PBTXT = """platform: "pytorch_libtorch"
max_batch_size: 8
input [ {{ name: "INPUT__0" data_type: TYPE_FP32 dims: [ {width} ] }} ]
output [ {outputs} ]
"""


class Affine(torch.nn.Module):
    """OUTPUT__0 = 2 x + 1; OUTPUT__1 = the row sums of x."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x * 2 + 1, x.sum(dim=1, keepdim=True)


class Faulty(torch.nn.Module):
    """x + 1, or a CUDA error chosen by the input's values (see the module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x < 0).any()):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        if bool((x > 1000).any()):
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return x + 1


def _config(model_dir: Path, width: int, outputs: list[tuple[str, int]]) -> None:
    outs = ", ".join(f'{{ name: "{n}" data_type: TYPE_FP32 dims: [ {d} ] }}' for n, d in outputs)
    (model_dir / "config.pbtxt").write_text(PBTXT.format(width=width, outputs=outs))


def affine(root: Path, name: str = "affine", width: int = 4) -> Path:
    """root/name/1/model.pt (TorchScript, scripted) with its config.pbtxt; returns the file."""
    model_dir = root / name
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    path = model_dir / "1" / "model.pt"
    torch.jit.script(Affine()).save(str(path))
    _config(model_dir, width, [("OUTPUT__0", width), ("OUTPUT__1", 1)])
    return path


def faulty(root: Path, name: str = "faulty", width: int = 4) -> Path:
    model_dir = root / name
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    path = model_dir / "1" / "model.pt"
    torch.jit.script(Faulty()).save(str(path))
    _config(model_dir, width, [("OUTPUT__0", width)])
    return path


def exported_linear(root: Path, name: str = "linear", width: int = 4) -> Path:
    """root/name/1/model.pt2 (torch.export with a dynamic batch axis): a fixed 4 -> 2 linear map."""
    model_dir = root / name
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    module = torch.nn.Linear(width, 2)
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(module, (torch.ones(2, width),), dynamic_shapes=({0: batch},))
    path = model_dir / "1" / "model.pt2"
    torch.export.save(program, str(path))
    _config(model_dir, width, [("OUTPUT__0", 2)])
    return path
