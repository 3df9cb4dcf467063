"""Build the tf.keras 2 and tf2onnx fixtures in tests/fixtures/tf/ with the real producers.

TensorFlow does not share the test environment; run this in its own virtual environment:

    python -m venv /work/venv-tf
    /work/venv-tf/bin/pip install "tensorflow==2.21.*" "tf_keras==2.21.*" "tf2onnx==1.17.*"
    /work/venv-tf/bin/python tests/make_tf_fixtures.py

The vocabulary model is saved by tf.keras 2 (``tf_keras``) as ``tf_keras2_vocab.h5`` and converted by
tf2onnx to ``tf2onnx<opset>_vocab.onnx``; ``tf2onnx<opset>_ln_fused.onnx`` and
``tf2onnx<opset>_ln_moments.onnx`` hold LayerNormalization in each form tf2onnx writes it
(``tf2onnx<opset>_ln_batch3.onnx``: the fused form exported for a fixed batch size). Beside each file, ``<name>.npz`` holds the inputs
``X`` and tf.keras' own ``model.predict`` outputs ``values`` (the producer's outputs, never nnconvert's).

tf2onnx 1.17 (opsets up to 18) never writes ONNX's LayerNormalization for a Keras LayerNormalization;
tf.keras picks one of two computations and tf2onnx converts each as it is:

- ``epsilon >= 1.001e-5`` (the default 1e-3): tf's fused batch norm on the input reshaped to
  ``[1, N, features, 1]``, with ones/zeros of run-time length N as its scale/offset, then gamma and beta;
- smaller epsilon (1e-5 included): ``tf.nn.moments`` + ``tf.nn.batch_normalization``, i.e.
  ReduceMean/Sub/Mul/ReduceMean/Add/Sqrt/Reciprocal and the multiplier/shift arithmetic.
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
TF2ONNX_OPSETS = (13, 17, 18)  # 18 is tf2onnx 1.17's newest


def _data(seed: int, n: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, N_FEATURES)) * [1.0, 3.0, 0.5, 2.0]).astype(np.float32)


def _sequential(tf_keras):
    """BatchNormalization before and after activations, LayerNormalization, PReLU, ReLU(max_value), LeakyReLU."""
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
            layers.LayerNormalization(name="ln"),
            layers.Dense(6, name="d6"),
            layers.LeakyReLU(name="leaky"),  # tf.keras 2's default slope, 0.3
            layers.Dense(3, activation="softmax", name="out"),
        ],
        name="tf_vocab",
    )


def _trained(model, X: np.ndarray, y: np.ndarray):
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(X, y, epochs=3, batch_size=32, verbose=0)  # moves the batch norms' running statistics
    return model


def _layer_norm_models(tf_keras):
    """LayerNormalization with and without center/scale before and after activations, in tf.keras' fused
    computation (``ln_fused``) and in its moments computation (``ln_moments``). Random gamma and beta:
    tf2onnx drops a multiplication by ones and an addition of zeros."""
    layers = tf_keras.layers
    init = tf_keras.initializers
    seeds = iter(range(100, 200))

    def dense(name: str, activation: str | None = None):
        return layers.Dense(6, activation=activation, name=name, bias_initializer=init.RandomNormal(stddev=0.5, seed=next(seeds)))

    def layer_norm(name: str, epsilon: float, center: bool, scale: bool):
        return layers.LayerNormalization(
            name=name, epsilon=epsilon, center=center, scale=scale,
            gamma_initializer=init.RandomUniform(0.5, 1.5, seed=next(seeds)),
            beta_initializer=init.RandomNormal(stddev=0.5, seed=next(seeds)),
        )

    def head():
        return layers.Dense(3, activation="softmax", name="out")

    fused = tf_keras.Sequential(
        [
            layers.InputLayer(input_shape=(N_FEATURES,)),
            dense("d1"),
            layer_norm("plain", 1e-3, False, False),
            layers.Activation("relu", name="act1"),
            dense("d2", "relu"),
            layer_norm("center", 1e-2, True, False),
            dense("d3"),
            layer_norm("scale", 1e-3, False, True),
            layers.Activation("tanh", name="act3"),
            head(),
        ],
        name="ln_fused",
    )
    moments = tf_keras.Sequential(
        [
            layers.InputLayer(input_shape=(N_FEATURES,)),
            dense("d1"),
            layer_norm("affine", 1e-5, True, True),
            layers.Activation("relu", name="act1"),
            dense("d2", "relu"),
            layer_norm("plain", 1e-6, False, False),
            dense("d3"),
            layer_norm("center", 1e-6, True, False),
            dense("d4", "elu"),
            layer_norm("scale", 1e-5, False, True),
            head(),
        ],
        name="ln_moments",
    )
    return {"ln_fused": fused, "ln_moments": moments}


def _to_onnx(model, name: str, X_test: np.ndarray, values: np.ndarray, *, batch: int | None = None,
             opsets: tuple[int, ...] = TF2ONNX_OPSETS) -> None:
    """tf2onnx's conversion of ``model``; with ``batch``, for that fixed batch size (tf2onnx folds shapes)."""
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((batch, N_FEATURES), tf.float32, name="input"),)
    for opset in opsets:
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
        (OUT / f"tf2onnx{opset}_{name}.onnx").write_bytes(proto.SerializeToString())
        np.savez(OUT / f"tf2onnx{opset}_{name}.npz", X=X_test, values=values)


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
    model = _trained(_sequential(tf_keras), X, y)
    values = model.predict(X_test, verbose=0)
    model.save(OUT / "tf_keras2_vocab.h5", include_optimizer=False)
    np.savez(OUT / "tf_keras2_vocab.npz", X=X_test, values=values)
    _to_onnx(model, "vocab", X_test, values)
    for name, model in _layer_norm_models(tf_keras).items():
        _to_onnx(model, name, X_test, model.predict(X_test, verbose=0))
        if name == "ln_fused":  # exported for batches of 3 rows: constant shapes, ones and zeros
            _to_onnx(model, "ln_batch3", X_test[:3], model.predict(X_test[:3], verbose=0), batch=3, opsets=(13, 18))
    print("tensorflow", tf.__version__, "tf_keras", tf_keras.__version__, "tf2onnx", tf2onnx.__version__)
    print("wrote", sorted(p.name for p in OUT.iterdir()))


if __name__ == "__main__":
    main()
