"""A real example task: `digits`, three trained models of different size and accuracy.

scikit-learn's bundled digits data (1797 images of 8x8 pixels, values 0..16, 10 classes; shipped
inside the wheel, nothing is downloaded) is split into a training set and a held-out validation
set (25 %, stratified, seeded). Three classifiers are trained with fixed seeds and exported to
ONNX by hand from their learned weights:

- `digits-logreg`   multinomial logistic regression (64 -> 10)
- `digits-mlp32`    MLP with one hidden layer of 32 Relu units (64 -> 32 -> 10)
- `digits-mlp256`   MLP with hidden layers 256 and 128 (64 -> 256 -> 128 -> 10)

Each graph takes FP32 pixels [batch, 64] in 0..16 (scaled by 1/16 inside the graph, as in
training) and returns class probabilities [batch, 10] (Softmax). Layers are MatMul + Add rather
than Gemm so that dynamic INT8 quantization (which has no Gemm kernel) applies to them too.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

if TYPE_CHECKING:
    from modelplex.repository.store import Registry
    from modelplex.repository.variants import Variant

TASK = "digits"  # task name the models are registered under (a built-in known task)
VALIDATION_FILENAME = "digits-validation.npz"  # in out_dir: held-out `inputs` and `labels`
SEED = 20240607  # split and training seed: the same models on every run
PIXEL_SCALE = 1.0 / 16.0  # digits pixels are 0..16; the models were trained on pixels / 16
SLO_MS = 10.0  # config.yaml slo_ms of each model (all run well under 1 ms)
OPSET = 17  # as the other example models
IR_VERSION = 8  # as the other example models

# model name -> hidden layer sizes (() = logistic regression)
DIGITS_MODELS: dict[str, tuple[int, ...]] = {
    "digits-logreg": (),
    "digits-mlp32": (32,),
    "digits-mlp256": (256, 128),
}


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_val, y_val): float32 pixels 0..16 and int64 labels."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_tr, x_val, y_tr, y_val = train_test_split(
        x.astype(np.float32), y.astype(np.int64), test_size=0.25, random_state=SEED, stratify=y
    )
    return x_tr, y_tr, x_val, y_val


def train(hidden: tuple[int, ...], x: np.ndarray, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fit one classifier; returns its layers as (weight [in, out], bias [out]) float32 pairs."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    xs = x * PIXEL_SCALE
    with warnings.catch_warnings():
        # A capped iteration count keeps set-up fast; the accuracy reached is what we measure.
        warnings.simplefilter("ignore", ConvergenceWarning)
        if not hidden:
            lr = LogisticRegression(max_iter=200, C=0.05, random_state=SEED).fit(xs, y)
            return [(lr.coef_.T.astype(np.float32), lr.intercept_.astype(np.float32))]
        mlp = MLPClassifier(hidden_layer_sizes=hidden, max_iter=60, random_state=SEED, alpha=1e-3).fit(xs, y)
    return [(w.astype(np.float32), b.astype(np.float32)) for w, b in zip(mlp.coefs_, mlp.intercepts_)]


def export(name: str, layers: list[tuple[np.ndarray, np.ndarray]]) -> onnx.ModelProto:
    """[batch, 64] pixels -> scale -> (MatMul, Add, Relu)* -> MatMul, Add -> Softmax [batch, 10]."""
    nodes = [helper.make_node("Mul", ["input", "scale"], ["x0"])]
    inits = [numpy_helper.from_array(np.array(PIXEL_SCALE, dtype=np.float32), "scale")]
    x = "x0"
    for i, (w, b) in enumerate(layers):
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [f"mm{i}"]))
        nodes.append(helper.make_node("Add", [f"mm{i}", f"b{i}"], [f"z{i}"]))
        x = f"z{i}"
        if i < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [x], [f"h{i}"]))
            x = f"h{i}"
    nodes.append(helper.make_node("Softmax", [x], ["output"], axis=-1))
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="modelplex")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def write_task_examples(
    out_dir: Path, registry: Registry | None = None, profile: bool = True,
) -> dict[str, list[Variant]]:
    """Train and write `out_dir/<model>/1/model.onnx` (+ config.yaml) for every digits model and
    `out_dir/digits-validation.npz`; when a registry is given, register each model (skipping
    models already registered) with its variants. Returns model name -> variants registered."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x_tr, y_tr, x_val, y_val = load_split()
    validation = out_dir / VALIDATION_FILENAME
    np.savez(validation, inputs=x_val, labels=y_val)
    registered: dict[str, list[Variant]] = {}
    for name, hidden in DIGITS_MODELS.items():
        path = out_dir / name / "1" / "model.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save_model(export(name, train(hidden, x_tr, y_tr)), str(path))
        (out_dir / name / "config.yaml").write_text(f"task: {TASK}\nslo_ms: {SLO_MS:g}\n")
        if registry is not None:
            from modelplex.repository.registry_variants import get_task_model, register

            if get_task_model(registry, name) is None:
                registered[name] = register(registry, path, TASK, name, validation, profile=profile)
    return registered
