"""Build the Keras fixtures in tests/fixtures/keras/ with real Keras 3 (torch backend).

Run from the repository root: ``python tests/make_keras_fixtures.py``.

Each model is saved as ``<name>.h5`` (Keras' legacy full-model HDF5) and
``<name>.keras`` (the Keras 3 zip), next to ``<name>.npz`` holding the inputs
``X`` and Keras' own ``model.predict`` outputs ``y``: the producer's outputs,
never ours. ``tf2_style.h5`` is written by hand with h5py following tf.keras 2's
layout (tf.keras cannot be installed here); its reference outputs are computed
with plain numpy from the weights written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ["KERAS_BACKEND"] = "torch"

import h5py  # noqa: E402
import numpy as np  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "keras"
N_FEATURES = 4


def _data(seed: int, n: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # features on different scales so that Normalization matters
    return (rng.normal(size=(n, N_FEATURES)) * [1.0, 5.0, 0.1, 20.0] + [0.0, 10.0, -1.0, 3.0]).astype(np.float32)


def _train(model, X: np.ndarray, y: np.ndarray, loss: str) -> None:
    model.compile(optimizer="adam", loss=loss)
    model.fit(X, y, epochs=3, batch_size=16, verbose=0)


def _multiclass(keras) -> tuple:
    X = _data(0)
    norm = keras.layers.Normalization(name="norm")
    norm.adapt(X)
    model = keras.Sequential(
        [
            keras.Input(shape=(N_FEATURES,), name="features"),
            norm,
            keras.layers.Dense(8, activation="relu", name="hidden"),
            keras.layers.Dropout(0.2, name="drop"),
            keras.layers.Dense(3, activation="softmax", name="probs"),
        ],
        name="multiclass",
    )
    _train(model, X, (X[:, 0] > 0).astype(int) + (X[:, 1] > 10).astype(int), "sparse_categorical_crossentropy")
    return model, X


def _binary(keras) -> tuple:
    X = _data(1)
    model = keras.Sequential(
        [
            keras.Input(shape=(N_FEATURES,)),
            keras.layers.Rescaling(scale=0.5, offset=-1.0, name="rescale"),
            keras.layers.Dense(6, activation="tanh", name="hidden"),
            keras.layers.Dense(4, name="hidden2"),
            keras.layers.LeakyReLU(negative_slope=0.1, name="leaky"),
            keras.layers.Dense(1, activation="sigmoid", name="out"),
        ],
        name="binary",
    )
    _train(model, X, (X[:, 0] > 0).astype("float32"), "binary_crossentropy")
    return model, X


def _regression(keras) -> tuple:
    X = _data(2)
    model = keras.Sequential(
        [
            keras.Input(shape=(N_FEATURES,)),
            keras.layers.Dense(5, activation="gelu", name="hidden"),
            keras.layers.Dense(5, activation="elu", use_bias=False, name="hidden2"),
            keras.layers.Dense(2, name="out"),
        ],
        name="regression",
    )
    _train(model, X, np.stack([X[:, 0] + X[:, 2], X[:, 1]], axis=1), "mse")
    return model, X


def _functional(keras) -> tuple:
    X = _data(3)
    inputs = keras.Input(shape=(N_FEATURES,), name="x")
    h = keras.layers.Dense(7, activation="swish", name="d1")(inputs)
    h = keras.layers.Activation("hard_sigmoid", name="act")(keras.layers.Dense(5, name="d2")(h))
    outputs = keras.layers.Dense(3, activation="softmax", name="d3")(h)
    model = keras.Model(inputs, outputs, name="functional")
    _train(model, X, (X[:, 0] > 0).astype(int), "sparse_categorical_crossentropy")
    return model, X


def _lambda(keras) -> tuple:
    X = _data(4)
    model = keras.Sequential(
        [
            keras.Input(shape=(N_FEATURES,)),
            keras.layers.Dense(4, activation="relu", name="hidden"),
            keras.layers.Lambda(lambda t: t * 2.0, name="double_it"),
            keras.layers.Dense(1, name="out"),
        ],
        name="with_lambda",
    )
    return model, X


def _save(model, X: np.ndarray, name: str) -> None:
    model.save(FIXTURES / f"{name}.h5")
    model.save(FIXTURES / f"{name}.keras")
    np.savez(FIXTURES / f"{name}.npz", X=X, y=model.predict(X, verbose=0))


def _tf2_style() -> None:
    """A Sequential MLP in tf.keras 2's own full-model HDF5 layout."""
    rng = np.random.default_rng(7)
    shapes = {"dense": (N_FEATURES, 6), "dense_1": (6, 3)}
    weights = {
        name: (rng.normal(size=shape).astype(np.float32), rng.normal(size=shape[1]).astype(np.float32))
        for name, shape in shapes.items()
    }
    config = {
        "class_name": "Sequential",
        "config": {
            "name": "sequential",
            "layers": [
                {
                    "class_name": "InputLayer",
                    "config": {"batch_input_shape": [None, N_FEATURES], "dtype": "float32", "sparse": False,
                               "ragged": False, "name": "dense_input"},
                },
                _tf2_dense("dense", 6, "relu"),
                _tf2_dense("dense_1", 3, "softmax"),
            ],
        },
    }
    with h5py.File(FIXTURES / "tf2_style.h5", "w") as f:
        f.attrs["keras_version"] = "2.13.1"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(config)
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = [b"dense", b"dense_1"]
        group.attrs["backend"] = b"tensorflow"
        group.attrs["keras_version"] = b"2.13.1"
        for name, (kernel, bias) in weights.items():
            layer = group.create_group(name)
            layer.attrs["weight_names"] = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
            layer.create_dataset(f"{name}/kernel:0", data=kernel)
            layer.create_dataset(f"{name}/bias:0", data=bias)
    X = _data(5)
    hidden = np.maximum(X @ weights["dense"][0] + weights["dense"][1], 0)
    logits = hidden @ weights["dense_1"][0] + weights["dense_1"][1]
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.savez(FIXTURES / "tf2_style.npz", X=X, y=exp / exp.sum(axis=1, keepdims=True))


def _tf2_dense(name: str, units: int, activation: str) -> dict:
    return {
        "class_name": "Dense",
        "config": {"name": name, "trainable": True, "dtype": "float32", "units": units, "activation": activation,
                   "use_bias": True, "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
                   "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
                   "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
                   "bias_constraint": None},
    }


# -- the layer vocabulary of format 1.1 (issue 10) -------------------------------------


def _vocab_sequential(keras) -> tuple:
    """BatchNormalization before and after an activation, ReLU parameters, relu6, PReLU, log_softmax head."""
    layers = keras.layers
    X = _data(10, n=128)
    model = keras.Sequential(
        [
            keras.Input(shape=(N_FEATURES,)),
            layers.Dense(8, name="d1"),
            layers.BatchNormalization(name="bn_before"),
            layers.Activation("relu", name="act"),
            layers.Dense(8, activation="relu6", name="d2"),
            layers.BatchNormalization(epsilon=1e-2, center=False, name="bn_after"),
            layers.Dense(6, name="d3"),
            layers.ReLU(max_value=4.0, negative_slope=0.1, threshold=0.5, name="relu_params"),
            layers.Dense(6, name="d4"),
            layers.PReLU(name="prelu"),
            layers.Dense(6, activation="softsign", name="d5"),
            layers.LeakyReLU(negative_slope=0.25, name="leaky"),
            layers.Dense(3, activation="log_softmax", name="out"),
        ],
        name="vocab_sequential",
    )
    model.compile(optimizer="adam", loss=lambda y, p: -keras.ops.mean(keras.ops.take_along_axis(p, y[:, None], 1)))
    model.fit(X, ((X[:, 0] > 0).astype(int) + (X[:, 1] > 10).astype(int)).astype("int32"), epochs=3, batch_size=16, verbose=0)
    return model, X


def _vocab_functional(keras) -> tuple:
    """LayerNormalization (with and without affine), hard_silu, mish, softsign in a Functional model."""
    layers = keras.layers
    X = _data(11, n=128)
    inputs = keras.Input(shape=(N_FEATURES,), name="x")
    h = layers.Dense(8, activation="hard_silu", name="d1")(inputs)
    h = layers.LayerNormalization(name="ln")(h)
    h = layers.Dense(8, activation="mish", name="d2")(h)
    h = layers.LayerNormalization(center=False, scale=False, epsilon=1e-5, name="ln_plain")(h)
    h = layers.Dense(6, name="d3")(h)
    h = layers.Activation("hard_swish", name="hs")(h)
    outputs = layers.Dense(2, activation="softmax", name="out")(h)
    model = keras.Model(inputs, outputs, name="vocab_functional")
    _train(model, X, (X[:, 0] > 0).astype(int), "sparse_categorical_crossentropy")
    return model, X


def make_vocabulary(keras) -> None:
    for name, build in [("vocab_sequential", _vocab_sequential), ("vocab_functional", _vocab_functional)]:
        model, X = build(keras)
        model.save(FIXTURES / f"{name}.h5")
        model.save(FIXTURES / f"{name}.keras")
        np.savez(FIXTURES / f"{name}.npz", X=X, values=model.predict(X, verbose=0))


def main() -> None:
    import sys

    import keras

    keras.utils.set_random_seed(0)
    if sys.argv[1:] == ["vocabulary"]:  # only the issue-10 fixtures
        make_vocabulary(keras)
        return
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name, build in [
        ("multiclass", _multiclass),
        ("binary", _binary),
        ("regression", _regression),
        ("functional", _functional),
        ("lambda", _lambda),
    ]:
        model, X = build(keras)
        _save(model, X, name)
    _tf2_style()
    make_vocabulary(keras)


if __name__ == "__main__":
    main()
