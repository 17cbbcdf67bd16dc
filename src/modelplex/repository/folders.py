"""The model repository on disk: `root/<model>/<version>/model.onnx` (or a PyTorch `model.pt` /
`model.pt2` described by config.pbtxt: repository.config_torch), with optional
`root/<model>/config.pbtxt` (Triton) and `root/<model>/config.yaml` (modelplex), shared by all
versions of the model."""

from __future__ import annotations

from pathlib import Path

from modelplex.core.errors import InvalidArgumentError, ModelplexError, NotFoundError
from modelplex.core.model import ModelConfig, ModelId
from modelplex.repository.config import build_model_config, inspect_onnx, load_pbtxt, load_yaml
from modelplex.repository.config_torch import is_torch, model_file, torch_graph

MODEL_FILENAME = "model.onnx"  # Triton's default file name for the onnxruntime platform


# --------------------------------------------------------------------------- repository scan


def scan_repository(root: Path) -> tuple[list[ModelConfig], dict[str, str]]:
    """Every loadable model version under root, and an error message per model that is not.

    A model fails as a whole (like Triton) when its config is bad or any version cannot be
    loaded; one failing model never stops the others.
    """
    root = _repository_root(root)
    configs: list[ModelConfig] = []
    errors: dict[str, str] = {}
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            configs.extend(load_model_versions(root, model_dir.name))
        except ModelplexError as e:
            errors[model_dir.name] = e.message
        except Exception as e:  # noqa: BLE001 (a surprise in one model must not stop the scan)
            errors[model_dir.name] = f"model {model_dir.name!r}: {type(e).__name__}: {e}"
    return configs, errors


def list_versions(root: Path, name: str) -> list[str]:
    """Version folders of a model, in ascending numeric order (non-numeric folders are ignored)."""
    model_dir = _model_dir(root, name)
    versions = [p.name for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    return sorted(versions, key=int)


def load_model_versions(root: Path, name: str) -> list[ModelConfig]:
    """All versions of one model; raises on the first problem (the model is then unavailable)."""
    model_dir = _model_dir(root, name)
    triton = load_pbtxt(model_dir / "config.pbtxt") if (model_dir / "config.pbtxt").is_file() else None
    overrides = load_yaml(model_dir / "config.yaml") if (model_dir / "config.yaml").is_file() else None
    filename = (triton.default_model_filename if triton else "") or MODEL_FILENAME
    versions = list_versions(root, name)
    if not versions:
        raise InvalidArgumentError(
            f"model {name!r}: no version folders (expected {model_dir}/<version>/{filename})"
        )
    configs = []
    torch_model = is_torch(triton, f"model {name!r}")
    for version in versions:
        path = model_file(model_dir, version, triton, MODEL_FILENAME)
        if not path.is_file():
            raise InvalidArgumentError(f"model {name!r} version {version}: missing {path}")
        graph = torch_graph(triton, path, f"model {name!r}") if triton and torch_model else inspect_onnx(path)
        configs.append(build_model_config(ModelId(name, version), path, graph, triton, overrides))
    return configs


def load_model_config(root: Path, name: str, version: str | None = None) -> ModelConfig:
    """One version of a model (the highest-numbered when version is None), for repository load."""
    configs = load_model_versions(root, name)
    if version is None:
        return configs[-1]
    for config in configs:
        if config.model.version == version:
            return config
    raise NotFoundError(
        f"model {name!r} has no version {version!r} (versions: "
        f"{', '.join(c.model.version for c in configs)})"
    )


def _repository_root(root: Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise InvalidArgumentError(f"model repository {root} is not a directory")
    return root


_MAX_NAME = 200  # bytes in a model name (file systems refuse past 255 bytes)


def _model_dir(root: Path, name: str) -> Path:
    # Names come from API calls too: refuse anything that could step outside the repository.
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith(".") or "\0" in name or len(name.encode("utf-8", "surrogatepass")) > _MAX_NAME:
        raise InvalidArgumentError(f"invalid model name {name[:_MAX_NAME]!r}")
    model_dir = _repository_root(root) / name
    if not model_dir.is_dir():
        raise NotFoundError(f"model {name!r} is not in the repository {root}")
    return model_dir
