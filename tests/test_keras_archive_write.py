""".keras archives written by nnconvert: Keras 3 (torch backend) loads them and predicts like the source.

Sources: every scikit-learn variant (reference: scikit-learn's predictions) and
every Keras model of the test fixtures (reference: the predictions Keras saved
with them).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn_variants import get_variant, variant_ids
from torch_targets import TARGETS, as_outputs, keras_module, through

import nnconvert
from nnconvert.errors import UnsupportedModelError

FIXTURES = Path(__file__).parent / "fixtures" / "keras"
KERAS_FIXTURES = ["multiclass.keras", "binary.keras", "regression.keras", "functional.keras", "multiclass.h5", "tf2_style.h5"]
# what Keras 3 has no exact layer for: refused by name (clip: MinMaxScaler(clip=True))
REFUSED = {"pipeline-minmax-clip": "clip"}


def _expected(variant_id: str, X: np.ndarray) -> np.ndarray:
    variant = get_variant(variant_id)
    if variant.kind == "classifier":
        proba = variant.estimator.predict_proba(X)
        return proba[:, 1:] if proba.shape[1] == 2 and nnconvert.from_sklearn(variant.estimator).n_outputs == 1 else proba
    return variant.estimator.predict(X).reshape(len(X), -1)


@pytest.mark.parametrize("variant_id", variant_ids())
def test_sklearn_variant_to_keras_archive_loads_in_keras(variant_id: str, tmp_path: Path) -> None:
    variant = get_variant(variant_id)
    model = nnconvert.from_sklearn(variant.estimator)
    path = tmp_path / "model.keras"
    if variant_id in REFUSED:
        with pytest.raises(UnsupportedModelError, match=REFUSED[variant_id]):
            nnconvert.save(model, path)
        assert not path.exists()
        return
    nnconvert.save(model, path)
    keras_model = keras_module().models.load_model(path)
    X = variant.X_test
    predicted = np.asarray(keras_model.predict(X.astype(np.float32), verbose=0))
    expected = _expected(variant_id, X)
    np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(expected).max())))
    restored = nnconvert.load(path)  # and back: labels, their dtype and the task survive the archive
    if variant.kind == "classifier":
        np.testing.assert_array_equal(restored.predict(X), variant.estimator.predict(X))
    else:
        np.testing.assert_allclose(restored.predict(X), variant.estimator.predict(X), rtol=1e-5, atol=1e-5)
    assert restored.task == model.task
    for mine, theirs in zip(model.astype("float32").dense_layers, restored.dense_layers, strict=True):
        np.testing.assert_array_equal(mine.weights, theirs.weights)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("fixture", KERAS_FIXTURES)
def test_keras_models_through_every_target_predict_like_keras(fixture: str, target: str, tmp_path: Path) -> None:
    data = np.load(FIXTURES / f"{fixture.rsplit('.', 1)[0]}.npz")  # Keras' own predictions, saved with the file
    model = nnconvert.load(FIXTURES / fixture)
    run, restored = through(model, target, tmp_path)
    np.testing.assert_allclose(as_outputs(run(data["X"]), model), data["y"].reshape(len(data["X"]), -1), rtol=1e-5, atol=1e-5)
    assert restored is not None
    if model.head.is_classifier:
        np.testing.assert_array_equal(restored.predict(data["X"]), model.predict(data["X"]))
    if target in ("safetensors", "torch-file"):
        assert restored.equals(model)


def test_archive_layout_is_keras_3_s(tmp_path: Path) -> None:
    import h5py

    model = nnconvert.from_sklearn(get_variant("pipeline-standard").estimator)
    path = tmp_path / "m.keras"
    nnconvert.save(model, path)
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
        config = json.loads(archive.read("config.json"))
        weights = archive.read("model.weights.h5")
    assert config["class_name"] == "Sequential" and config["config"]["layers"][0]["class_name"] == "InputLayer"
    import io

    with h5py.File(io.BytesIO(weights), "r") as handle:
        assert sorted(handle["layers"]) == ["dense", "dense_1", "normalization"]
        assert handle["layers/dense/vars"].attrs["name"] == "dense_0"
        np.testing.assert_array_equal(handle["layers/dense/vars/0"][()], model.layers[0].weights.astype(np.float32))
    # the same model gives the same bytes
    nnconvert.save(model, tmp_path / "again.keras")
    assert (tmp_path / "again.keras").read_bytes() == path.read_bytes()


def test_float64_archive_keeps_weights_bit_for_bit(tmp_path: Path) -> None:
    model = nnconvert.from_sklearn(get_variant("iris-10").estimator)
    nnconvert.save(model, tmp_path / "m.keras", dtype="float64")
    restored = nnconvert.load(tmp_path / "m.keras")
    for mine, theirs in zip(model.dense_layers, restored.dense_layers, strict=True):
        np.testing.assert_array_equal(mine.weights, theirs.weights)
        assert theirs.weights.dtype == np.float64
