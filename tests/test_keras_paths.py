"""``.keras`` weights are read by path, exactly as Keras 3 loads them; ambiguous archives are refused.

Keras 3 reads layer ``i`` from ``layers/<snake-cased class name, made unique>/vars``
and ignores the ``name`` attribute stored beside the variables. An archive
whose names were swapped must convert to the model Keras itself runs.
"""

from __future__ import annotations

import io
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_bad_inputs  # noqa: E402

import nnconvert  # noqa: E402
from nnconvert.errors import ReadError  # noqa: E402


def _rewrite_weights(source: Path, target: Path, change) -> Path:
    import h5py

    with zipfile.ZipFile(source) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    buffer = io.BytesIO(members["model.weights.h5"])
    with h5py.File(buffer, "r+") as handle:
        change(handle)
    members["model.weights.h5"] = buffer.getvalue()
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return target


def test_swapped_names_convert_to_what_keras_runs(tmp_path):
    import keras

    model = keras.Sequential([
        keras.Input((3,)),
        keras.layers.Dense(4, activation="relu", name="first"),
        keras.layers.Dense(4, activation="tanh", name="second"),
        keras.layers.Dense(2, name="out"),
    ])
    saved = tmp_path / "model.keras"
    model.save(saved)

    def swap(handle):
        # what an attacker writes: each group claims to be the other layer
        for key, name in (("layers/dense", "second"), ("layers/dense_1", "first")):
            handle[key]["vars"].attrs["name"] = name

    forged = _rewrite_weights(saved, tmp_path / "forged.keras", swap)
    X = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    expected = keras.saving.load_model(forged).predict(X, verbose=0)
    ours = nnconvert.load(forged, task="raw").forward(X.astype(np.float64))
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


def test_two_layers_with_one_name_are_refused(tmp_path):
    config = make_bad_inputs._keras_config([make_bad_inputs._dense_entry("same", 4), make_bad_inputs._dense_entry("same", 3, "softmax")])
    arrays = make_bad_inputs._tiny_keras_arrays(make_bad_inputs.tiny_model())
    path = make_bad_inputs._keras_archive(tmp_path / "dup.keras", config, make_bad_inputs._keras_weights(arrays))
    with pytest.raises(ReadError, match="'same'") as caught:
        nnconvert.load(path)
    assert str(path) in str(caught.value)


def test_variables_no_layer_owns_are_refused(tmp_path):
    arrays = make_bad_inputs._tiny_keras_arrays(make_bad_inputs.tiny_model())
    config = make_bad_inputs._keras_config([make_bad_inputs._dense_entry("hidden", 4), make_bad_inputs._dense_entry("out", 3, "softmax")])

    def fill(handle):
        make_bad_inputs._keras_weights(arrays)(handle)
        handle.create_dataset("layers/dense_7/vars/0", data=np.zeros((4, 3), np.float32))

    path = make_bad_inputs._keras_archive(tmp_path / "extra.keras", config, fill)
    with pytest.raises(ReadError, match="layers/dense_7/vars"):
        nnconvert.load(path)
