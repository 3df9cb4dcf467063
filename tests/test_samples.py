"""The bundled samples are part of the product: every file loads, predicts like its pickle, and is reproducible.

- Every file in samples/ is a known sample file (a pickle, one of its conversions, its
  held-out rows, or the script), and every expected file is there.
- Each conversion predicts on the held-out rows what the pickled estimator predicts
  (scikit-learn's own predict/predict_proba): bit for bit for the float64 formats,
  within 1e-5 for the float32 ONNX file (run in onnxruntime) and the float32 Keras file
  (run in Keras).
- ``samples/make_samples.py`` reproduces them. Converting the committed pickles gives the
  committed conversions byte for byte (every writer is deterministic): this is the golden
  test of the writers. Training again gives the same held-out rows byte for byte and
  models that predict the same (bit for bit on the machine that made them; another
  machine's BLAS may round the training's last bits differently).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nnconvert

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"
LOSSLESS = {"sklearn-pickle", "json", "hdf5", "skops"}  # float64 files: the weights bit for bit


def _load_script() -> Any:
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES_DIR / "make_samples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_samples = _load_script()
# sample file name -> (sample, format); the held-out rows map to (sample, "csv")
SAMPLE_FILES = {f"{name}.pkl": (name, "sklearn-pickle") for name in make_samples.SAMPLES}
SAMPLE_FILES |= {f"{name}{suffix}": (name, fmt) for name in make_samples.SAMPLES for fmt, suffix in make_samples.CONVERSIONS.items()}
SAMPLE_FILES |= {make_samples.held_out_path(name).name: (name, "csv") for name in make_samples.SAMPLES}


@functools.cache
def _estimator(name: str) -> Any:
    with open(SAMPLES_DIR / f"{name}.pkl", "rb") as handle:
        return pickle.load(handle)  # the project's own sample


@functools.cache
def _held_out(name: str) -> np.ndarray:
    return np.loadtxt(make_samples.held_out_path(name), delimiter=",", skiprows=1)


def _reference(estimator: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values compared numerically, labels or the predictions) from scikit-learn itself."""
    predicted = estimator.predict(X)
    if hasattr(estimator, "predict_proba"):
        return estimator.predict_proba(X), predicted
    return predicted.reshape(len(X), -1), predicted


def test_samples_folder_holds_exactly_the_known_files():
    present = {path.name for path in SAMPLES_DIR.iterdir() if path.is_file()} - {"make_samples.py"}
    assert present == set(SAMPLE_FILES), f"unexpected: {present - set(SAMPLE_FILES)}, missing: {set(SAMPLE_FILES) - present}"


@pytest.mark.parametrize("filename", sorted(name for name, (_, fmt) in SAMPLE_FILES.items() if fmt != "csv"))
def test_sample_predicts_like_its_pickle(filename: str):
    name, fmt = SAMPLE_FILES[filename]
    estimator, X = _estimator(name), _held_out(name)
    assert X.shape == (len(X), estimator.n_features_in_) and len(X) > 0
    values, labels = _reference(estimator, X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = nnconvert.load(SAMPLES_DIR / filename, format=fmt, trust=fmt == "sklearn-pickle")
    outputs = model.predict_proba(X) if model.head.is_classifier else model.forward(X)
    if fmt in LOSSLESS:
        assert model.dtype == np.float64
        np.testing.assert_array_equal(outputs, values)
        np.testing.assert_array_equal(model.predict(X), labels)
        return
    assert model.dtype == np.float32, f"{filename}: the float32 conversion changed dtype"
    np.testing.assert_allclose(outputs, values, rtol=1e-5, atol=1e-5)
    runtime = _run_onnx if fmt == "onnx" else _run_keras
    runtime_values, runtime_labels = runtime(SAMPLES_DIR / filename, X.astype(np.float32), model.head.is_classifier)
    np.testing.assert_allclose(runtime_values, values, rtol=1e-5, atol=1e-5)
    if runtime_labels is not None:
        np.testing.assert_array_equal(runtime_labels, labels)


def _run_onnx(path: Path, X: np.ndarray, classifier: bool) -> tuple[np.ndarray, np.ndarray | None]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    if classifier:
        labels, probabilities = session.run(["output_label", "output_probability"], {"X": X})
        return probabilities, labels
    return session.run(["variable"], {"X": X})[0], None


def _run_keras(path: Path, X: np.ndarray, classifier: bool) -> tuple[np.ndarray, np.ndarray | None]:
    import keras

    return keras.models.load_model(path, compile=False).predict(X, verbose=0), None


def test_held_out_rows_have_the_features_named():
    for name in make_samples.SAMPLES:
        header = make_samples.held_out_path(name).read_text().splitlines()[0].split(",")
        assert len(header) == _estimator(name).n_features_in_ == _held_out(name).shape[1]


def _version_hint(name: str) -> str:
    import sklearn

    recorded = json.loads((SAMPLES_DIR / f"{name}.json").read_text())["metadata"]["source_version"]
    if recorded == sklearn.__version__:
        return "run python samples/make_samples.py --conversions-only and review the diff"
    return f"the samples were made with scikit-learn {recorded}, this is {sklearn.__version__}: regenerate them"


def test_conversions_of_the_committed_pickles_are_byte_identical(tmp_path: Path):
    """The golden test: every writer reproduces the committed conversion byte for byte."""
    for name in make_samples.SAMPLES:
        written = make_samples.write_conversions(name, _estimator(name), tmp_path)
        expected = {f"{name}{suffix}" for suffix in make_samples.CONVERSIONS.values()}
        assert {path.name for path in written} == expected
        for path in written:
            assert path.read_bytes() == (SAMPLES_DIR / path.name).read_bytes(), (
                f"{path.name} differs from samples/{path.name}: {_version_hint(name)}"
            )


def test_make_samples_reproduces_the_samples(tmp_path: Path):
    make_samples.main(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == set(SAMPLE_FILES)
    for name in make_samples.SAMPLES:
        held_out = make_samples.held_out_path(name)
        assert make_samples.held_out_path(name, tmp_path).read_bytes() == held_out.read_bytes()
        with open(tmp_path / f"{name}.pkl", "rb") as handle:
            retrained = pickle.load(handle)
        X = _held_out(name)
        values, labels = _reference(retrained, X)
        expected_values, expected_labels = _reference(_estimator(name), X)
        np.testing.assert_allclose(values, expected_values, rtol=1e-9, atol=1e-12, err_msg=name)
        if hasattr(retrained, "predict_proba"):
            np.testing.assert_array_equal(labels, expected_labels, err_msg=name)
        if (tmp_path / f"{name}.pkl").read_bytes() == (SAMPLES_DIR / f"{name}.pkl").read_bytes():
            # trained bit for bit: then every conversion is the committed file too
            for suffix in make_samples.CONVERSIONS.values():
                assert (tmp_path / f"{name}{suffix}").read_bytes() == (SAMPLES_DIR / f"{name}{suffix}").read_bytes()
