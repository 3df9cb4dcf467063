"""Build the tf.keras 2 and tf2onnx fixtures in tests/fixtures/tf/ with the real producers.

TensorFlow does not share the test environment; run this in its own virtual environment:

    python -m venv /work/venv-tf
    /work/venv-tf/bin/pip install "tensorflow==2.21.*" "tf_keras==2.21.*" "tf2onnx==1.17.*"
    /work/venv-tf/bin/python tests/make_tf_fixtures.py

Each model is saved by tf.keras 2 (``tf_keras``) as ``<name>.h5`` and converted by tf2onnx to
``<name>_tf2onnx<opset>.onnx``; beside each, ``<name>.npz`` holds the inputs ``X`` and tf.keras' own
``model.predict`` outputs ``values`` (the producer's outputs, never nnconvert's).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

OUT = Path(__file__).resolve().parent / "fixtures" / "tf"
N_FEATURES = 4


def _data(seed: int, n: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, N_FEATURES)) * [1.0, 3.0, 0.5, 2.0]).astype(np.float32)


def _sequential(tf_keras, *, layer_norm: bool = True):
    """BatchNormalization before and after activations, LayerNormalization, PReLU, ReLU(max_value), LeakyReLU.

    tf2onnx writes LayerNormalization through run-time Shape/Expand nodes around a BatchNormalization,
    which nnconvert does not read (yet): its model leaves that layer out.
    """
    layers = tf_keras.layers
    return tf_keras.Sequential(
        [
            layers.InputLayer(input_shape=(N_FEATURES,)),
            layers.Dense(8, name="d1"),
            layers.BatchNormalization(name="bn_before"),
            layers.Activation("relu", name="act"),
            layers.Dense(8, activation="relu", name="d2"),
            layers.BatchNormalization(name="bn_after"),
            layers.Dense(6, name="d3"),
            layers.ReLU(max_value=6.0, name="relu6"),
            layers.Dense(6, name="d4"),
            layers.PReLU(name="prelu"),
            layers.Dense(6, activation="softsign", name="d5"),
            *([layers.LayerNormalization(name="ln")] if layer_norm else []),
            layers.Dense(6, name="d6"),
            layers.LeakyReLU(name="leaky"),  # tf.keras 2's default slope, 0.3
            layers.Dense(3, activation="softmax", name="out"),
        ],
        name="tf_vocab",
    )


def _trained(tf_keras, X: np.ndarray, y: np.ndarray, *, layer_norm: bool):
    model = _sequential(tf_keras, layer_norm=layer_norm)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(X, y, epochs=3, batch_size=32, verbose=0)  # moves the batch norms' running statistics
    return model


def main() -> None:
    import tensorflow as tf
    import tf2onnx
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    X = _data(0, 256)
    y = ((X[:, 0] > 0).astype(int) + (X[:, 1] > 1).astype(int)).astype("int32")
    X_test = _data(1, 32)
    model = _trained(tf_keras, X, y, layer_norm=True)
    model.save(OUT / "tf_keras2_vocab.h5", include_optimizer=False)
    np.savez(OUT / "tf_keras2_vocab.npz", X=X_test, values=model.predict(X_test, verbose=0))
    model = _trained(tf_keras, X, y, layer_norm=False)
    values = model.predict(X_test, verbose=0)
    for opset in (13, 17):
        spec = (tf.TensorSpec((None, N_FEATURES), tf.float32, name="input"),)
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
        (OUT / f"tf2onnx{opset}_vocab.onnx").write_bytes(proto.SerializeToString())
        np.savez(OUT / f"tf2onnx{opset}_vocab.npz", X=X_test, values=values)
    print("tensorflow", tf.__version__, "tf_keras", tf_keras.__version__, "tf2onnx", tf2onnx.__version__)
    print("wrote", sorted(p.name for p in OUT.iterdir()))


if __name__ == "__main__":
    main()
