"""Model repository: example models, config parsing (config.pbtxt / config.yaml / ONNX graph),
the on-disk repository scan and the SQLite registry."""

from modelplex.repository.config import (
    GraphInfo,
    ServingOverrides,
    TritonConfig,
    build_model_config,
    inspect_onnx,
    parse_pbtxt,
    parse_yaml,
)
from modelplex.repository.folders import load_model_config, load_model_versions, scan_repository
from modelplex.repository.store import ModelState, RegisteredModel, Registry

__all__ = [
    "GraphInfo",
    "ModelState",
    "RegisteredModel",
    "Registry",
    "ServingOverrides",
    "TritonConfig",
    "build_model_config",
    "inspect_onnx",
    "load_model_config",
    "load_model_versions",
    "parse_pbtxt",
    "parse_yaml",
    "scan_repository",
]
