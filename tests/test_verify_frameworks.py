"""verify with in-memory Keras models and torch modules as the reference side."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

import nnconvert

FIXTURES = Path(__file__).parent / "fixtures"


def test_torch_module_against_our_onnx_of_its_export(tmp_path: Path) -> None:
    import torch

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).eval()
    exported = tmp_path / "torch.onnx"
    torch.onnx.export(module, (torch.zeros(1, 5),), str(exported), dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "batch"}})  # fmt: skip
    ours = tmp_path / "ours.onnx"
    nnconvert.convert(exported, ours)
    X = np.random.default_rng(0).normal(size=(200, 5)).astype(np.float32)
    report = nnconvert.verify(module, ours, X)
    assert report.passed, report.summary()
    assert report.to_dict()["reference"]["kind"] == "torch"
    # a changed weight is caught, against the same torch reference
    with torch.no_grad():
        module[0].weight[0, 0] += 0.5
    assert not nnconvert.verify(module, ours, X).passed


def test_keras_model_against_our_onnx_of_its_file(tmp_path: Path) -> None:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    source = FIXTURES / "keras" / "regression.keras"
    model = keras.models.load_model(source)
    converted = tmp_path / "regression.onnx"
    nnconvert.convert(source, converted)
    X = np.load(FIXTURES / "keras" / "regression.npz")["X"]
    report = nnconvert.verify(model, converted, X)
    assert report.passed, report.summary()
    assert report.to_dict()["reference"]["kind"] == "keras"
