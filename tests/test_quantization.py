"""Reduced precision: float16/int8 files checked against scikit-learn and onnxruntime, round trips, the price."""

from __future__ import annotations

import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest

import nnconvert
from nnconvert.cli import main
from nnconvert.errors import UnsupportedModelError, UsageError
from nnconvert.quantization import parameter_bytes, precision_of, quantize
from nnconvert.verify.price import measure_price

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def digits() -> tuple[object, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    X, y = load_digits(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier((64, 32), max_iter=40, random_state=0).fit(X[:1000], y[:1000])
    return clf, X[1000:], y[1000:], X[:200]


def _ort(path: Path, X: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"X": X.astype(np.float32)})


@pytest.mark.parametrize("precision, calibrate", [("float16", False), ("int8", False), ("int8", True)])
def test_onnx_files_pass_the_checker_run_in_onnxruntime_and_stay_close_to_sklearn(tmp_path, digits, precision, calibrate):
    clf, X, _, X_cal = digits
    path = tmp_path / "m.onnx"
    nnconvert.save(nnconvert.from_sklearn(clf), path, precision=precision, calibration=X_cal if calibrate else None)
    onnx.checker.check_model(str(path), full_check=True)
    labels, proba = _ort(path, X)
    expected = clf.predict_proba(X)
    assert np.abs(proba - expected).max() < (5e-3 if precision == "float16" else 0.2)
    assert np.mean(labels == clf.predict(X)) > 0.98
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    wanted = {"float16": "Cast", "int8": "DequantizeLinear" if calibrate else "MatMulInteger"}[precision]
    assert wanted in ops
    for tensor in onnx.load(str(path)).graph.initializer:  # no float32 weight matrix left behind
        assert not (len(tensor.dims) == 2 and tensor.data_type == onnx.TensorProto.FLOAT), tensor.name


def test_int8_dynamic_ir_computes_as_onnxruntime(tmp_path, digits):
    clf, X, _, _ = digits
    quantized = quantize(nnconvert.from_sklearn(clf), "int8")
    path = tmp_path / "m.onnx"
    nnconvert.save(quantized, path)
    _, proba = _ort(path, X)
    np.testing.assert_allclose(quantized.predict_proba(X), proba, atol=1e-5)


@pytest.mark.parametrize("calibrate", [False, True])
def test_int8_dense_layers_between_format_1_1_layers_compute_as_onnxruntime(tmp_path, calibrate):
    # dense layers 0 and 4 are quantized; batch_norm, prelu and layer_norm between them stay float32, and the
    # int8 values must land on the initializers named after each dense layer's own index in the model
    from nnconvert.ir import Activation, BatchNormLayer, DenseLayer, Head, InputSpec, LayerNormLayer, Model, PReLULayer

    rng = np.random.default_rng(7)
    model = Model(
        layers=(
            DenseLayer(rng.normal(size=(5, 8)), rng.normal(size=8), Activation.RELU, "hidden"),
            BatchNormLayer(rng.normal(size=8), rng.uniform(0.5, 2, size=8), scale=rng.normal(size=8), offset=rng.normal(size=8), name="bn"),
            PReLULayer(np.full(8, 0.2), name="pr"),
            LayerNormLayer(scale=rng.normal(size=8), offset=rng.normal(size=8), name="ln"),
            DenseLayer(rng.normal(size=(8, 3)), rng.normal(size=3), Activation.SOFTMAX, "out"),
        ),
        head=Head("multiclass", np.array(["a", "b", "c"])),
        input=InputSpec(5, name="X"),
    ).astype(np.float32)
    X = rng.normal(size=(200, 5)).astype(np.float32)
    quantized = quantize(model, "int8", X if calibrate else None)
    assert [getattr(layer, "quantization", None) is not None for layer in quantized.layers] == [True, False, False, False, True]
    nnconvert.save(quantized, tmp_path / "m.onnx")
    nnconvert.save(quantized, tmp_path / "m.json")
    onnx.checker.check_model(str(tmp_path / "m.onnx"), full_check=True)
    initializers = {tensor.name for tensor in onnx.load(str(tmp_path / "m.onnx")).graph.initializer}
    spelling = "layers/{}/weights/quantized" if calibrate else "layers/{}/weights_quantized"  # QDQ / onnxruntime's quantizer
    assert {spelling.format(0), spelling.format(4)} <= initializers
    _, proba = _ort(tmp_path / "m.onnx", X)
    np.testing.assert_allclose(quantized.predict_proba(X), proba, atol=1e-5)
    np.testing.assert_array_equal(nnconvert.load(tmp_path / "m.json").predict_proba(X), quantized.predict_proba(X))


def test_onnx_holds_the_irs_int8_values(tmp_path, digits):
    from onnx import numpy_helper

    clf, _, _, _ = digits
    quantized = quantize(nnconvert.from_sklearn(clf), "int8")
    path = tmp_path / "m.onnx"
    nnconvert.save(quantized, path)
    stored = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    for index, layer in enumerate(quantized.layers):
        np.testing.assert_array_equal(stored[f"layers/{index}/weights_quantized"], layer.quantization.values)
        np.testing.assert_array_equal(stored[f"layers/{index}/weights_scale"], layer.quantization.scale)


def test_float16_io_on_request(tmp_path, digits):
    clf, X, _, _ = digits
    path = tmp_path / "m.onnx"
    nnconvert.save(nnconvert.from_sklearn(clf), path, precision="float16", io_dtype="float16")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    labels, proba = session.run(None, {"X": X.astype(np.float16)})
    assert proba.dtype == np.float16
    assert np.mean(labels == clf.predict(X)) > 0.99


@pytest.mark.parametrize("suffix", [".json", ".h5"])
@pytest.mark.parametrize("precision, calibrate", [("float16", False), ("int8", False), ("int8", True)])
def test_reduced_precision_round_trips_unchanged(tmp_path, digits, suffix, precision, calibrate):
    clf, X, _, X_cal = digits
    model = quantize(nnconvert.from_sklearn(clf), precision, X_cal if calibrate else None)
    path = tmp_path / f"m{suffix}"
    nnconvert.save(model, path)
    back = nnconvert.load(path)
    assert back.equals(model)
    assert precision_of(back) == precision
    np.testing.assert_array_equal(back.predict_proba(X), model.predict_proba(X))
    if precision == "int8":  # the file stores int8, not float32
        assert path.stat().st_size < parameter_bytes(model.dequantized()) or suffix == ".json"


def test_quantized_model_refused_for_sklearn_unless_dequantized(tmp_path, digits):
    clf, X, _, _ = digits
    model = quantize(nnconvert.from_sklearn(clf), "int8")
    with pytest.raises(UnsupportedModelError, match="int8"):
        nnconvert.to_sklearn(model)
    with pytest.raises(UnsupportedModelError, match="dequantize"):
        nnconvert.save(model, tmp_path / "m.pkl")
    assert not (tmp_path / "m.pkl").exists()
    estimator = nnconvert.to_sklearn(model.dequantized())
    np.testing.assert_allclose(estimator.predict_proba(X), model.dequantized().predict_proba(X), atol=1e-5)  # float32 model, float64 estimator


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_quantized_model_refused_for_torch_and_safetensors_unless_dequantized(tmp_path, digits, suffix):
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    clf, X, _, _ = digits
    model = quantize(nnconvert.from_sklearn(clf), "int8")
    with pytest.raises(UnsupportedModelError, match="int8 weights"):
        nnconvert.to_torch(model)
    path = tmp_path / f"m{suffix}"
    with pytest.raises(UnsupportedModelError, match="dequantize"):
        nnconvert.save(model, path)
    assert not path.exists()
    nnconvert.save(model, path, dequantize=True)
    network = nnconvert.to_torch(nnconvert.load(path))
    with torch.no_grad():
        probabilities = network(torch.from_numpy(X.astype(np.float32))).numpy()
    np.testing.assert_allclose(probabilities, model.dequantized().predict_proba(X), atol=1e-5)


def test_bad_precision_options_are_usage_errors(tmp_path, digits):
    model = nnconvert.from_sklearn(digits[0])
    with pytest.raises(UsageError, match="precision"):
        nnconvert.save(model, tmp_path / "m.onnx", precision="int4")
    with pytest.raises(UsageError, match="calibration"):
        nnconvert.save(model, tmp_path / "m.onnx", precision="float16", calibration=digits[3])
    with pytest.raises(UsageError, match="precision"):
        nnconvert.save(model, tmp_path / "m.pkl", precision="int8")
    assert not list(tmp_path.iterdir())


def test_price_matches_a_direct_computation_against_sklearn(tmp_path, digits):
    from sklearn.metrics import accuracy_score

    clf, X, y, _ = digits
    path = tmp_path / "m.onnx"
    nnconvert.save(nnconvert.from_sklearn(clf), path, precision="int8")
    report = measure_price(clf, path, X, y=y, written_model=quantize(nnconvert.from_sklearn(clf), "int8"))
    labels, proba = _ort(path, X)
    expected = clf.predict_proba(X)
    assert report.outputs[0]["max_abs_error"] == pytest.approx(np.abs(proba - expected).max(), rel=1e-6)
    assert report.outputs[0]["mean_abs_error"] == pytest.approx(np.abs(proba - expected).mean(), rel=1e-6)
    assert report.label_agreement == pytest.approx(np.mean(labels == clf.predict(X)))
    assert sum(report.flips_by_margin.values()) == int(np.sum(labels != clf.predict(X)))
    assert report.metric["original"] == pytest.approx(accuracy_score(y, clf.predict(X)))
    assert report.metric["quantized"] == pytest.approx(accuracy_score(y, labels))
    assert report.sizes["written_bytes"] == path.stat().st_size
    assert report.sizes["ratio"] > 1.5


def _near_ties(clf: object, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Blends of two digits where the original's top-2 margin is below 0.02: where int8 flips labels."""
    t = np.linspace(0, 1, 101)[:, None]
    rows = np.vstack([(1 - t) * X[i] + t * X[i + 1] for i in range(0, 60, 2)])
    proba = np.sort(clf.predict_proba(rows), axis=1)
    ties = rows[proba[:, -1] - proba[:, -2] < 0.02]
    return np.vstack([X, ties]), np.concatenate([y, clf.predict(ties)])


def test_convert_int8_verify_prints_the_price_and_exits_1_on_a_broken_threshold(tmp_path, digits, capsys):
    clf, X, y, _ = digits
    X, y = _near_ties(clf, X, y)
    pickle, data, labels = tmp_path / "m.pkl", tmp_path / "X.csv", tmp_path / "y.csv"
    joblib.dump(clf, pickle)
    np.savetxt(data, X, delimiter=",")
    np.savetxt(labels, y, delimiter=",")
    out = tmp_path / "m.onnx"
    args = ["convert", str(pickle), str(out), "--trust-pickle", "--precision", "int8", "--verify", "--data", str(data), "--labels", str(labels)]
    assert main(args + ["--max-label-disagreement", "0.5"]) == 0
    printed = capsys.readouterr().out
    assert "label agreement" in printed and "accuracy" in printed and "smaller" in printed
    _, proba = _ort(out, X)
    disagreement = np.mean(proba.argmax(axis=1) != clf.predict(X))
    assert disagreement > 0  # int8 flips a few near-ties of this model: a zero threshold must fail
    assert main(args + ["--max-label-disagreement", "0"]) == 1
    assert "FAIL: label disagreement" in capsys.readouterr().out


def test_inspect_shows_precision_mode_and_bytes(tmp_path, digits, capsys):
    clf, _, _, X_cal = digits
    path = tmp_path / "m.h5"
    nnconvert.save(nnconvert.from_sklearn(clf), path, precision="int8", calibration=X_cal)
    assert main(["inspect", str(path), "--json"]) == 0
    import json

    info = json.loads(capsys.readouterr().out)
    model = nnconvert.load(path)
    assert info["precision"] == "int8" and info["quantization"] == "static"
    expected = sum(layer.weights.size + 4 * layer.bias.size + 5 * layer.bias.size + 5 for layer in model.layers)
    assert info["parameter_bytes"] == expected


def test_calibration_from_parquet_equals_the_array(tmp_path, digits):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    clf, _, _, X_cal = digits
    table = pa.table({f"f{i}": X_cal[:, i] for i in range(X_cal.shape[1])})
    pq.write_table(table, tmp_path / "cal.parquet")
    model = nnconvert.from_sklearn(clf)
    nnconvert.save(model, tmp_path / "a.json", precision="int8", calibration=str(tmp_path / "cal.parquet"))
    assert nnconvert.load(tmp_path / "a.json").equals(quantize(model, "int8", X_cal))


def test_bad_calibration_file_exits_3_and_writes_nothing(tmp_path, digits, capsys):
    pickle = tmp_path / "m.pkl"
    joblib.dump(digits[0], pickle)
    (tmp_path / "cal.csv").write_text("1,2\n3,4\n")  # 2 columns, the model takes 64
    out = tmp_path / "m.onnx"
    code = main(["convert", str(pickle), str(out), "--trust-pickle", "--precision", "int8", "--calibration", str(tmp_path / "cal.csv")])
    assert code == 2 and not out.exists()
    assert "calibration data must be rows of 64 features" in capsys.readouterr().err


def test_json_int8_values_out_of_range_are_refused_by_field(tmp_path, digits):
    import json

    from nnconvert.errors import ReadError

    path = tmp_path / "m.json"
    nnconvert.save(quantize(nnconvert.from_sklearn(digits[0]), "int8"), path, arrays="list")
    document = json.loads(path.read_text())
    document["layers"][1]["quantization"]["values"]["data"][0] = 300
    path.write_text(json.dumps(document))
    with pytest.raises(ReadError, match=r"layers\[1\]\.quantization\.values\.data\[0\].*-128 to 127"):
        nnconvert.load(path)


def test_reduced_precision_onnx_is_not_read_back_and_says_why(tmp_path, digits, capsys):
    path = tmp_path / "m.onnx"
    nnconvert.save(nnconvert.from_sklearn(digits[0]), path, precision="int8")
    with pytest.raises(UnsupportedModelError, match="int8 \\(dynamic quantization\\) ONNX file"):
        nnconvert.load(path)
    assert main(["inspect", str(path)]) == 3
    assert "JSON/HDF5 copy" in capsys.readouterr().err


def test_verify_command_prices_a_reduced_file_against_the_original(tmp_path, digits, capsys):
    clf, X, y, _ = digits
    pickle, data, labels, out = tmp_path / "m.pkl", tmp_path / "X.npy", tmp_path / "y.npy", tmp_path / "m.h5"
    joblib.dump(clf, pickle)
    np.save(data, X)
    np.save(labels, y)
    nnconvert.save(nnconvert.from_sklearn(clf), out, precision="float16")
    code = main(["verify", str(pickle), str(out), "--trust-pickle", "--data", str(data), "--labels", str(labels)])
    printed = capsys.readouterr().out
    assert "price of float16" in printed and "accuracy: original" in printed
    expected = np.mean(nnconvert.load(out).predict(X) == clf.predict(X))
    assert f"label agreement {expected:.4%}" in printed
    assert code == (0 if expected >= 0.999 else 1)
