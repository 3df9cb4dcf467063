"""Shared helpers of the torch / safetensors / .keras tests: a model through one target and back.

Each target returns the outputs of the model *as the target's own framework
runs it* where there is one (torch runs ``to_torch``'s module, onnxruntime runs
the ONNX file, Keras 3 runs the ``.keras`` file), and nnconvert's reading of the
file where the file is only weights (safetensors, ``.pt``).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")

import nnconvert  # noqa: E402
from nnconvert.ir import Model  # noqa: E402

TARGETS = ("torch-module", "safetensors", "torch-file", "keras", "onnx")
SUFFIXES = {"safetensors": ".safetensors", "torch-file": ".pt", "keras": ".keras", "onnx": ".onnx"}
FORMATS = {"safetensors": "safetensors", "torch-file": "torch", "keras": "keras", "onnx": "onnx"}


@lru_cache(maxsize=1)
def keras_module() -> Any:
    import keras

    return keras


def through(model: Model, target: str, tmp_path: Path) -> tuple[np.ndarray | Any, Model | None]:
    """``(run, restored)``: a function X -> last-layer outputs from the target's runtime, and the model read back."""
    import torch

    if target == "torch-module":
        module = nnconvert.to_torch(model)

        def run_torch(X: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return module(torch.from_numpy(np.asarray(X, dtype=model.dtype))).numpy()

        return run_torch, nnconvert.from_torch(module)
    path = tmp_path / f"model{SUFFIXES[target]}"
    options = {"dtype": model.dtype.name} if target in ("onnx", "keras") and model.dtype.name in ("float32", "float64") else {}
    nnconvert.save(model, path, format=FORMATS[target], **options)
    restored = nnconvert.load(path, format=FORMATS[target])
    if target == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        output = "output_probability" if "output_probability" in names else names[0]

        def run_onnx(X: np.ndarray) -> np.ndarray:
            result = session.run([output], {session.get_inputs()[0].name: np.asarray(X, dtype=model.dtype)})[0]
            return np.asarray(result).reshape(len(X), -1)

        return run_onnx, restored
    if target == "keras":
        keras_model = keras_module().models.load_model(path)

        def run_keras(X: np.ndarray) -> np.ndarray:
            return np.asarray(keras_model.predict(np.asarray(X, dtype=model.dtype), verbose=0))

        return run_keras, restored
    return restored.forward, restored


def as_outputs(y: np.ndarray, model: Model) -> np.ndarray:
    """Last-layer outputs shaped like ``Model.forward`` (ONNX gives [N, 2] for single-sigmoid binaries)."""
    y = np.asarray(y)
    if y.ndim == 1:
        y = y.reshape(-1, 1)
    if y.shape[1] == 2 and model.n_outputs == 1:
        y = y[:, 1:]
    return y
