"""A float32 model written as float64 comes back float32 (issue 18).

References: the original scikit-learn estimator's own predictions (bit for
bit, same dtype), onnxruntime running an edited file, Keras' and torch's saved
outputs for the fixtures, and the weights as stored in the source files.
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import replace
from pathlib import Path

import joblib
import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from sklearn_variants import variants

import nnconvert
from nnconvert.cli import main
from nnconvert.converters.sklearn import from_sklearn, to_sklearn
from nnconvert.errors import ReadError
from nnconvert.formats import keras as keras_format
from nnconvert.source_dtype import source_dtype_status

os.environ.setdefault("KERAS_BACKEND", "torch")

FIXTURES = Path(__file__).parent / "fixtures"
FLOAT32_VARIANTS = [v for v in variants() if from_sklearn(v.estimator).dtype == np.float32]


def _float64_file(variant, fmt: str, tmp_path: Path) -> Path:
    """The variant's model written as float64: ONNX by its writer option, JSON/HDF5 through ``astype``."""
    model = from_sklearn(variant.estimator)
    path = tmp_path / f"{variant.id}.{fmt}"
    if fmt == "onnx":
        nnconvert.save(model, path, dtype="float64")
    else:
        nnconvert.save(model.astype("float64"), path, format=fmt)
    return path


def _assert_same_predictions(estimator, variant) -> None:
    for method in ("predict", "predict_proba") if variant.kind == "classifier" else ("predict",):
        ours, theirs = getattr(estimator, method)(variant.X_test), getattr(variant.estimator, method)(variant.X_test)
        assert ours.dtype == theirs.dtype, method
        assert np.array_equal(ours, theirs), method


def _final(estimator):
    return estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator


def test_the_suite_has_float32_variants() -> None:
    assert {v.kind for v in FLOAT32_VARIANTS} == {"classifier", "regressor"}


@pytest.mark.parametrize("fmt", ["onnx", "json", "hdf5"])
@pytest.mark.parametrize("variant", FLOAT32_VARIANTS, ids=lambda v: v.id)
def test_float32_estimator_comes_back_bit_identical_from_a_float64_file(variant, fmt: str, tmp_path: Path) -> None:
    loaded = nnconvert.load(_float64_file(variant, fmt, tmp_path))
    assert loaded.dtype == np.float64 and loaded.metadata.source_dtype == "float32"
    estimator = to_sklearn(loaded)
    assert all(c.dtype == np.float32 for c in _final(estimator).coefs_ + _final(estimator).intercepts_)
    _assert_same_predictions(estimator, variant)
    assert loaded.as_source_dtype().equals(from_sklearn(variant.estimator))
    # asked for the file's own dtype, it is kept
    kept = to_sklearn(loaded, restore_source_dtype=False)
    assert all(c.dtype == np.float64 for c in _final(kept).coefs_ + _final(kept).intercepts_)
    assert (kept.predict_proba if variant.kind == "classifier" else kept.predict)(variant.X_test).dtype == np.float64


def test_cli_round_trip_through_float64_onnx(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    variant = next(v for v in FLOAT32_VARIANTS if v.kind == "classifier")
    source, onnx_path, back = tmp_path / "m.pkl", tmp_path / "m.onnx", tmp_path / "back.pkl"
    source.write_bytes(pickle.dumps(variant.estimator))
    assert main(["convert", str(source), str(onnx_path), "--trust-pickle", "--dtype", "float64"]) == 0
    assert onnx.load(onnx_path).graph.initializer[0].data_type == onnx.TensorProto.DOUBLE
    assert main(["convert", str(onnx_path), str(back)]) == 0
    capsys.readouterr()
    _assert_same_predictions(joblib.load(back), variant)  # the trusted file we just wrote
    assert main(["inspect", str(onnx_path)]) == 0
    text = capsys.readouterr().out
    assert "float64 (source model: float32, restorable)" in text
    assert main(["inspect", str(onnx_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dtype"] == "float64" and info["source_dtype"]["dtype"] == "float32" and info["source_dtype"]["restorable"]


# -- edited files stay float64 ------------------------------------------------------------------


def _not_float32(value: float) -> float:
    """The next float64 above a float32 value: never a float32 itself."""
    return float(np.nextafter(np.float64(value), np.inf))


def test_edited_json_stays_float64_and_inspect_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    variant = next(v for v in FLOAT32_VARIANTS if v.kind == "classifier")
    path = tmp_path / "edited.json"
    nnconvert.save(from_sklearn(variant.estimator).astype("float64"), path, arrays="list")
    document = json.loads(path.read_text())
    data = document["layers"][1]["weights"]["data"]
    data[2] = _not_float32(data[2])
    path.write_text(json.dumps(document))
    estimator = to_sklearn(nnconvert.load(path))
    assert all(c.dtype == np.float64 for c in estimator.coefs_)
    assert estimator.coefs_[1].ravel()[2] == data[2]  # the edit is kept, not rounded away
    assert estimator.predict_proba(variant.X_test).dtype == np.float64
    assert main(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert "float64 (source model: float32, not restored)" in text
    assert f"layer 1 ('dense_1') weights[0, 2] = {data[2]!r} is not exactly a float32" in text
    assert main(["inspect", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["source_dtype"]["restorable"] is False and "edited or retrained" in info["source_dtype"]["reason"]


def test_edited_onnx_stays_float64_and_matches_onnxruntime(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import onnxruntime

    variant = next(v for v in FLOAT32_VARIANTS if v.kind == "classifier")
    path = _float64_file(variant, "onnx", tmp_path)
    proto = onnx.load(path)
    tensor = next(t for t in proto.graph.initializer if t.name == "layers/0/bias")
    bias = numpy_helper.to_array(tensor).copy()
    bias[1] = _not_float32(bias[1])
    tensor.CopyFrom(numpy_helper.from_array(bias, tensor.name))
    onnx.save(proto, path)
    estimator = to_sklearn(nnconvert.load(path))
    assert estimator.intercepts_[0].dtype == np.float64 and estimator.intercepts_[0][1] == bias[1]
    X = variant.X_test.astype(np.float64)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = session.run(["output_probability"], {"X": X})[0]
    np.testing.assert_allclose(estimator.predict_proba(X), expected, rtol=1e-12, atol=1e-15)
    assert main(["inspect", str(path)]) == 0
    assert "layer 0 ('dense_0') bias[1]" in capsys.readouterr().out


# -- Keras and torch sources --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["keras-h5", "onnx"])
def test_keras_float32_model_written_as_float64_is_restored(fmt: str, tmp_path: Path) -> None:
    with np.load(FIXTURES / "keras" / "multiclass.npz") as data:
        X, y_keras = data["X"], data["y"]
    original = keras_format.read_h5(FIXTURES / "keras" / "multiclass.h5")
    assert original.dtype == np.float32
    path = tmp_path / ("m.h5" if fmt == "keras-h5" else "m.onnx")
    nnconvert.save(original, path, format=fmt, dtype="float64")
    loaded = nnconvert.load(path, format=fmt)
    assert loaded.dtype == np.float64 and source_dtype_status(loaded).restorable
    restored = loaded.as_source_dtype()
    assert restored.dtype == np.float32 and restored.metadata.source_dtype is None
    for mine, theirs in zip(restored.layers, original.layers, strict=True):
        assert np.array_equal(mine.weights, theirs.weights) and np.array_equal(mine.bias, theirs.bias)
    assert np.array_equal(restored.forward(X), original.forward(X))
    np.testing.assert_allclose(restored.forward(X), y_keras, rtol=1e-5, atol=1e-5)


def test_torch_float32_onnx_written_as_float64_is_restored(tmp_path: Path) -> None:
    source = FIXTURES / "onnx" / "torch_ts_mlp.onnx"
    with np.load(FIXTURES / "onnx" / "torch_ts_mlp.npz") as data:
        X, y_torch = data["X"], data["values"]
    original = nnconvert.load(source)
    assert original.dtype == np.float32 and original.metadata.source_dtype is None  # the graph says float32
    nnconvert.save(original, tmp_path / "m.onnx", dtype="float64")
    restored = nnconvert.load(tmp_path / "m.onnx").as_source_dtype()
    stored = sorted(numpy_helper.to_array(t).tobytes() for t in onnx.load(source).graph.initializer)
    ours = sorted(a.tobytes() for layer in restored.layers for a in (layer.weights.T.copy(), layer.bias))
    assert ours == stored  # torch's own float32 tensors, bit for bit
    np.testing.assert_allclose(restored.forward(X), y_torch, rtol=1e-5, atol=1e-5)


# -- what is written, and older files -------------------------------------------------------------


def test_field_is_written_only_for_an_upcast() -> None:
    float64 = next(v for v in variants() if from_sklearn(v.estimator).dtype == np.float64)
    float32 = FLOAT32_VARIANTS[0]
    dumps = nnconvert.formats.json_weights.dumps
    assert "source_dtype" not in dumps(from_sklearn(float64.estimator)).decode()
    assert "source_dtype" not in dumps(from_sklearn(float64.estimator).astype("float32")).decode()
    assert "source_dtype" not in dumps(from_sklearn(float32.estimator)).decode()
    assert json.loads(dumps(from_sklearn(float32.estimator).astype("float64")))["metadata"]["source_dtype"] == "float32"
    # float64 -> float32 -> float64: the model in hand is an upcast of float32 weights
    round_trip = from_sklearn(float64.estimator).astype("float32").astype("float64")
    assert round_trip.metadata.source_dtype == "float32"


def test_older_file_without_the_field_is_read_as_unknown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "old.json"
    nnconvert.save(from_sklearn(FLOAT32_VARIANTS[0].estimator).astype("float64"), path, arrays="list")
    document = json.loads(path.read_text())
    del document["metadata"]["source_dtype"]
    path.write_text(json.dumps(document))
    model = nnconvert.load(path)
    assert model.metadata.source_dtype is None and source_dtype_status(model) is None
    assert model.as_source_dtype() is model
    assert _final(to_sklearn(model)).coefs_[0].dtype == np.float64
    assert main(["inspect", str(path)]) == 0
    assert "source model" not in capsys.readouterr().out


def test_unknown_source_dtype_is_refused_with_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    nnconvert.save(from_sklearn(FLOAT32_VARIANTS[0].estimator).astype("float64"), path)
    document = json.loads(path.read_text())
    document["metadata"]["source_dtype"] = "int8"
    path.write_text(json.dumps(document))
    with pytest.raises(ReadError, match="source_dtype must be float16, float32 or float64, got 'int8'"):
        nnconvert.load(path)
    assert main(["inspect", str(path)]) == 3


def test_a_wider_or_float16_source_is_never_cast_to(tmp_path: Path) -> None:
    variant = FLOAT32_VARIANTS[0]
    model = from_sklearn(variant.estimator)
    claimed_wider = replace(model, metadata=replace(model.metadata, source_dtype="float64"))
    status = source_dtype_status(claimed_wider)
    assert not status.restorable and "cannot be recovered" in status.reason
    assert claimed_wider.as_source_dtype() is claimed_wider
    # a float16 source written as float32 is restorable, but scikit-learn computes in float32/float64
    half = model.astype("float16").astype("float32")
    assert half.metadata.source_dtype == "float16" and half.as_source_dtype().dtype == np.float16
    assert _final(to_sklearn(half)).coefs_[0].dtype == np.float32
