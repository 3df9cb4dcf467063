"""Format 1.1's layers as real producers write them: torch.onnx (TorchScript at opsets 11/13/17, dynamo at 18),
Keras 3 (.keras and .h5), tf.keras 2 and tf2onnx.

Each fixture sits beside the producer's own outputs (``values`` in the .npz, computed by torch, Keras or
TensorFlow when the fixture was made by tests/make_onnx_fixtures.py, make_keras_fixtures.py or
make_tf_fixtures.py). Every case must match them within 1e-5 with the same labels (argmax): read
directly, through nnconvert's ONNX in onnxruntime (batch 1 and N), and after JSON and HDF5 round trips
that are bit-identical.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import nnconvert
from nnconvert.errors import UnsupportedModelError

HERE = Path(__file__).parent
ONNX_FIXTURES = HERE / "fixtures" / "onnx"
KERAS_FIXTURES = HERE / "fixtures" / "keras"
TF_FIXTURES = HERE / "fixtures" / "tf"
TOLERANCE = 1e-5

TORCH_CASES = sorted(p.stem for p in ONNX_FIXTURES.glob("torch_*1[1378]_*.onnx"))
KERAS_CASES = sorted(p.name for p in KERAS_FIXTURES.glob("vocab_*") if p.suffix in (".h5", ".keras"))
TF_CASES = sorted(p.name for p in TF_FIXTURES.glob("*") if p.suffix in (".h5", ".onnx"))


def _load(path: Path) -> nnconvert.Model:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a producer's file reads without "ignored" warnings
        return nnconvert.load(path)


def _expected(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path.with_name(path.name.split(".")[0] + ".npz")) as data:
        return data["X"], data["values"]


def _through_onnx(model: nnconvert.Model, X: np.ndarray, tmp_path: Path) -> None:
    """nnconvert's ONNX of ``model`` in onnxruntime gives the model's outputs, for batch N and batch 1."""
    path = tmp_path / "ours.onnx"
    nnconvert.save(model, path, format="onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    output = 1 if model.head.is_classifier else 0
    expected = model.predict_proba(X) if model.head.is_classifier else model.forward(X)
    batch = session.run(None, {"X": X})[output]
    single = np.vstack([session.run(None, {"X": X[i : i + 1]})[output] for i in range(3)])
    np.testing.assert_allclose(batch, expected, atol=TOLERANCE, rtol=TOLERANCE)
    np.testing.assert_allclose(single, expected[:3], atol=TOLERANCE, rtol=TOLERANCE)
    assert nnconvert.load(path).equals(model)


def _round_trips(model: nnconvert.Model, tmp_path: Path) -> None:
    for fmt in ("json", "hdf5"):
        first, second = tmp_path / f"a.{fmt}", tmp_path / f"b.{fmt}"
        nnconvert.save(model, first, format=fmt)
        back = nnconvert.load(first, format=fmt)
        assert back.equals(model), fmt
        nnconvert.save(back, second, format=fmt)
        if fmt == "json":
            assert first.read_bytes() == second.read_bytes()


def _check_case(path: Path, tmp_path: Path) -> nnconvert.Model:
    X, values = _expected(path)
    model = _load(path)
    ours = model.forward(X)
    np.testing.assert_allclose(ours, values, atol=TOLERANCE, rtol=TOLERANCE)
    np.testing.assert_array_equal(ours.argmax(axis=1), values.argmax(axis=1))
    _through_onnx(model, X, tmp_path)
    _round_trips(model, tmp_path)
    return model


@pytest.mark.parametrize("name", TORCH_CASES)
def test_torch_onnx_vocabulary(name: str, tmp_path: Path) -> None:
    model = _check_case(ONNX_FIXTURES / f"{name}.onnx", tmp_path)
    kinds = model.layer_kinds
    if "norms" in name:
        assert {"layer_norm", "prelu"} <= kinds and ("batch_norm" in kinds)
        assert model.output_activation.value == "log_softmax"
    if "smooth" in name:
        activations = {layer.activation.value for layer in model.layers}
        assert {"hardswish", "mish", "softplus", "clip", "softsign", "prelu"} <= activations


def test_torchscript_layer_norm_decomposition_and_batch_norm_parameters() -> None:
    torch = pytest.importorskip("torch")
    model = _load(ONNX_FIXTURES / "torch_ts11_norms.onnx")
    batch_norm = next(layer for layer in model.layers if layer.kind == "batch_norm")
    layer_norm = next(layer for layer in model.layers if layer.kind == "layer_norm")
    assert batch_norm.epsilon == pytest.approx(1e-5) and layer_norm.epsilon == pytest.approx(1e-5)
    assert batch_norm.variance.std() > 0  # real running statistics, not the initial ones
    assert torch is not None


@pytest.mark.parametrize("name", KERAS_CASES)
def test_keras3_vocabulary(name: str, tmp_path: Path) -> None:
    _check_case(KERAS_FIXTURES / name, tmp_path)


@pytest.mark.parametrize("name", TF_CASES)
def test_tf_keras2_and_tf2onnx_vocabulary(name: str, tmp_path: Path) -> None:
    _check_case(TF_FIXTURES / name, tmp_path)


def test_keras_h5_written_with_the_new_layers_loads_in_keras(tmp_path: Path) -> None:
    keras = pytest.importorskip("keras")
    for name in ("torch_ts17_norms", "torch_dynamo18_norms"):
        X, values = _expected(ONNX_FIXTURES / f"{name}.onnx")
        model = _load(ONNX_FIXTURES / f"{name}.onnx")
        path = tmp_path / f"{name}.h5"
        nnconvert.save(model, path, format="keras-h5")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            keras_model = keras.models.load_model(path, compile=False)
        predicted = keras.ops.convert_to_numpy(keras_model(X))
        np.testing.assert_allclose(predicted, values, atol=TOLERANCE, rtol=TOLERANCE)
        assert nnconvert.load(path).n_parameters == model.n_parameters


def test_keras_refuses_what_keras_has_no_layer_for_naming_it(tmp_path: Path) -> None:
    model = _load(ONNX_FIXTURES / "torch_ts17_smooth.onnx")
    with pytest.raises(UnsupportedModelError) as info:
        nnconvert.save(model, tmp_path / "smooth.h5", format="keras-h5")
    text = str(info.value)
    # the TorchScript exporter drops Softplus' threshold: the file computes softplus(2x) / 2 throughout
    assert "activation softplus with {'beta': 2.0}" in text and "activation clip with" in text
    assert not (tmp_path / "smooth.h5").exists()


def test_live_torchscript_export_matches(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Hardswish(), nn.Linear(6, 6), nn.Mish(),
                        nn.LayerNorm(6), nn.Linear(6, 3), nn.LogSoftmax(dim=1))
    net.train()
    with torch.no_grad():
        net(torch.randn(32, 4) * 3)
    net.eval()
    X = np.random.default_rng(4).normal(size=(16, 4)).astype(np.float32)
    path = tmp_path / "live.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.from_numpy(X),), str(path), dynamo=False, opset_version=13,
                          input_names=["input"], output_names=["output"], dynamic_axes={"input": {0: "N"}})
        expected = net(torch.from_numpy(X)).detach().numpy()
    np.testing.assert_allclose(_load(path).forward(X), expected, atol=TOLERANCE, rtol=TOLERANCE)


@pytest.mark.parametrize("name", ["skl_input_int64", "skl_input_bool", "skl_zipmap_columns", "skl_class_labels"])
def test_skl2onnx_input_types_and_output_options(name: str, tmp_path: Path) -> None:
    path = ONNX_FIXTURES / f"{name}.onnx"
    with np.load(path.with_suffix(".npz")) as data:
        X, label, proba = data["X"], data["label"], data["proba"]
    model = _load(path)
    np.testing.assert_array_equal(model.predict(X), label)  # scikit-learn's own predictions
    np.testing.assert_allclose(model.predict_proba(X), proba, atol=TOLERANCE)
    if X.dtype != np.float32:
        assert model.metadata.properties["onnx.input_type"] == str(X.dtype)
    # the producer's file in onnxruntime agrees too
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(session.run(None, {"X": X})[0], label)
    _through_onnx(model, X.astype(np.float32), tmp_path)
    _round_trips(model, tmp_path)
