"""Softmax on logits far beyond exp's range: no NaN, no inf, the probabilities scikit-learn computes.

exp overflows above ~709 in float64 and ~88 in float32, so a softmax that does not
subtract the row maximum first turns logits of 1e4 (or 90 in float32) into inf/inf.
The logits here reach the output layer unchanged: an MLP whose hidden and output
weights are identity matrices, so the inputs are the logits. The reference is
scikit-learn's own predict_proba, of a real MLPClassifier with these weights forced
in and of ``to_sklearn`` of the model graph; every writer's file is read back (and
the ONNX file run in onnxruntime, the Keras file in Keras) and verified.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest

import nnconvert

CLASSES = np.array(["a", "b", "c"])
# rows of logits: a huge winner, a tie between two huge ones, all huge, all hugely negative
PATTERNS = np.array([[1, -1, 0], [1, 1, -1], [1, 1, 1], [-1, -1, -1], [-1, 0, 1]], dtype=np.float64)
CASES = [("float64", 1e4), ("float64", 700.0), ("float32", 90.0), ("float32", 1e4)]
# float64 files that hold the weights bit for bit: the model read back computes scikit-learn's numbers exactly
LOSSLESS = {"json": ".json", "hdf5": ".h5", "sklearn-pickle": ".pkl", "skops": ".skops"}


def _forced_classifier(dtype: str):
    """A fitted MLPClassifier computing softmax(X): identity hidden layer and identity output weights."""
    from sklearn.neural_network import MLPClassifier

    X = np.tile(np.eye(3), (2, 1)).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: the weights are replaced below
        mlp = MLPClassifier(hidden_layer_sizes=(3,), activation="identity", max_iter=1, random_state=0)
        mlp.fit(X, CLASSES[np.tile(np.arange(3), 2)])
    mlp.coefs_ = [np.eye(3, dtype=dtype), np.eye(3, dtype=dtype)]
    mlp.intercepts_ = [np.zeros(3, dtype=dtype), np.zeros(3, dtype=dtype)]
    return mlp


def _logits(dtype: str, magnitude: float) -> np.ndarray:
    return (PATTERNS * magnitude).astype(dtype)


def _assert_probabilities(got: np.ndarray, expected: np.ndarray, where: str, exact: bool) -> None:
    got = np.asarray(got)
    assert np.isfinite(got).all(), f"{where}: non-finite probabilities {got}"
    if exact:
        np.testing.assert_array_equal(got, expected, err_msg=where)
    else:  # another runtime's softmax (onnxruntime, Keras) may round its last bit differently
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7, err_msg=where)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-6, err_msg=where)


@functools.cache
def _case(dtype: str, magnitude: float):
    """(the forced MLPClassifier, the logits as inputs, its predict_proba)."""
    mlp = _forced_classifier(dtype)
    X = _logits(dtype, magnitude)
    with np.errstate(over="raise", invalid="raise"):  # scikit-learn's own softmax must not overflow either
        reference = mlp.predict_proba(X)
    return mlp, X, reference


@pytest.fixture(params=CASES, ids=[f"{d}-{m:g}" for d, m in CASES])
def case(request):
    return _case(*request.param)


def test_the_graph_computes_scikit_learns_probabilities(case):
    mlp, X, reference = case
    model = nnconvert.from_sklearn(mlp)
    _assert_probabilities(model.predict_proba(X), reference, "Model.predict_proba", exact=True)
    assert model.predict(X).tolist() == mlp.predict(X).tolist()
    rebuilt = nnconvert.to_sklearn(model)
    _assert_probabilities(rebuilt.predict_proba(X), reference, "to_sklearn(...).predict_proba", exact=True)


def test_a_hand_built_graph_without_scikit_learn(case):
    """The same logits through a Model built directly (one dense layer, softmax output)."""
    from nnconvert.ir import DenseLayer, Head, InputSpec, Model

    _, X, reference = case
    dtype = X.dtype
    layer = DenseLayer(np.eye(3, dtype=dtype), np.zeros(3, dtype=dtype), "softmax", "out")
    model = Model(layers=(layer,), head=Head("multiclass", CLASSES), input=InputSpec(3))
    with np.errstate(over="raise", invalid="raise"):
        got = model.predict_proba(X)
    _assert_probabilities(got, reference, "Model.forward", exact=True)


def test_every_writer_keeps_the_probabilities(case, tmp_path: Path):
    mlp, X, reference = case
    model = nnconvert.from_sklearn(mlp)
    exact = X.dtype == np.float64
    for fmt, suffix in LOSSLESS.items():
        path = nnconvert.save(model, tmp_path / f"m{suffix}", format=fmt)
        loaded = nnconvert.load(path, format=fmt, trust=True)
        _assert_probabilities(loaded.predict_proba(X), reference, f"{fmt} read back", exact=exact)
        assert nnconvert.verify(mlp, path, X, trust=True).passed, fmt
    _assert_probabilities(joblib.load(tmp_path / "m.pkl").predict_proba(X), reference, "the written pickle", exact=exact)


def test_onnx_in_onnxruntime(case, tmp_path: Path):
    import onnxruntime

    mlp, X, reference = case
    path = nnconvert.save(nnconvert.from_sklearn(mlp), tmp_path / "m.onnx", dtype=X.dtype.name)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(["output_label", "output_probability"], {"X": X})
    _assert_probabilities(probabilities, reference, "onnxruntime", exact=False)
    assert labels.tolist() == mlp.predict(X).tolist()
    report = nnconvert.verify(mlp, path, X)
    assert report.passed, report.summary()


@pytest.mark.parametrize("magnitude", [m for d, m in CASES if d == "float32"])
def test_keras_h5_in_keras(magnitude: float, tmp_path: Path):
    """Keras computes in float32: the float32 cases."""
    import keras

    mlp, X, reference = _case("float32", magnitude)
    path = nnconvert.save(nnconvert.from_sklearn(mlp), tmp_path / "m.h5", format="keras-h5")
    loaded = keras.models.load_model(path, compile=False)
    _assert_probabilities(loaded.predict(X, verbose=0), reference, "Keras", exact=False)
    report = nnconvert.verify(mlp, path, X)
    assert report.passed, report.summary()
