"""Property-based round trips: random MLPs through every writable format and back.

hypothesis draws a model graph (0 to 6 hidden layers of 1 to 16 units, any
activation, every task, int/str/bool labels, float32/float64) and writes it
in every writable format. Lossless paths (json, hdf5, onnx in the model's own
dtype, keras-h5 in the model's dtype, the scikit-learn files) must give back
bit-identical weights and identical predictions; a format that cannot express
the model must say so with UnsupportedModelError. Float32 ONNX files are also
run in onnxruntime and must agree with the IR within verify's tolerances.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nnconvert
from nnconvert.errors import UnsupportedModelError
from nnconvert.ir import ACTIVATION_DEFAULTS, Activation, DenseLayer, Head, InputSpec, Model, Task

MAX_EXAMPLES = 60
# the activations every writer holds (format 1.0's); the 1.1 vocabulary is tested per format in test_vocabulary.py
ALL_FORMATS_ACTIVATIONS = list(Activation)[: list(Activation).index(Activation.HARD_SIGMOID) + 1]
HIDDEN_ACTIVATIONS = [a for a in ALL_FORMATS_ACTIVATIONS if a != Activation.SOFTMAX]
OUTPUT_ACTIVATION = {
    Task.MULTICLASS: [Activation.SOFTMAX],
    Task.MULTILABEL: [Activation.LOGISTIC],
    Task.REGRESSION: [Activation.IDENTITY],
}
LABELS = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)


def _params(activation: Activation, draw) -> dict:
    defaults = ACTIVATION_DEFAULTS.get(activation, {})
    if activation == Activation.GELU:
        return {"approximate": draw(st.sampled_from(["none", "tanh"]))}
    return {key: draw(st.sampled_from([value, 0.5, 1.25])) for key, value in defaults.items()}


@st.composite
def models(draw) -> Model:
    dtype = np.dtype(draw(st.sampled_from(["float32", "float64"])))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_features = draw(st.integers(1, 8))
    widths = draw(st.lists(st.integers(1, 16), max_size=6))
    task = draw(st.sampled_from(list(Task)))
    label_type = draw(st.sampled_from(["int", "str", "bool"]))
    classes = None
    if task == Task.BINARY:
        n_out = draw(st.sampled_from([1, 2]))
        out_activation = Activation.LOGISTIC if n_out == 1 else Activation.SOFTMAX
        n_classes = 2
    elif task == Task.MULTICLASS:
        n_out = n_classes = draw(st.integers(3, 6))
        out_activation = Activation.SOFTMAX
    elif task == Task.MULTILABEL:
        n_out = n_classes = draw(st.integers(2, 5))
        out_activation = Activation.LOGISTIC
    else:
        n_out, n_classes = draw(st.integers(1, 3)), 0
        out_activation = Activation.IDENTITY if task == Task.REGRESSION else draw(st.sampled_from(ALL_FORMATS_ACTIVATIONS))
    if n_classes:
        if task == Task.MULTILABEL:
            classes = np.arange(n_classes, dtype=np.int64)
        elif label_type == "bool" and n_classes == 2:
            classes = np.array([False, True])
        elif label_type == "str":
            classes = np.array(sorted(draw(st.lists(LABELS, min_size=n_classes, max_size=n_classes, unique=True))))
        else:
            values = draw(st.lists(st.integers(-(2**40), 2**40), min_size=n_classes, max_size=n_classes, unique=True))
            classes = np.array(sorted(values), dtype=np.int64)
    layers = []
    n_in = n_features
    for index, width in enumerate([*widths, n_out]):
        last = index == len(widths)
        activation = out_activation if last else draw(st.sampled_from(HIDDEN_ACTIVATIONS))
        weights = (rng.normal(size=(n_in, width)) / np.sqrt(n_in)).astype(dtype)
        bias = rng.normal(scale=0.1, size=width).astype(dtype)
        layers.append(DenseLayer(weights, bias, activation, f"dense_{index}", _params(activation, draw)))
        n_in = width
    return Model(layers=tuple(layers), head=Head(task, classes), input=InputSpec(n_features))


def _inputs(model: Model) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(size=(16, model.n_features)).astype(model.dtype)


def _assert_same_weights(original: Model, loaded: Model, where: str) -> None:
    assert len(loaded.layers) == len(original.layers), where
    for ours, theirs in zip(original.layers, loaded.layers, strict=True):
        assert theirs.weights.dtype == ours.weights.dtype, where
        assert theirs.weights.tobytes() == ours.weights.tobytes(), f"{where}: weights changed"
        assert theirs.bias.tobytes() == ours.bias.tobytes(), f"{where}: bias changed"
        assert theirs.activation == ours.activation, where


def _assert_same_predictions(original: Model, loaded: Model, where: str) -> None:
    X = _inputs(original)
    with np.errstate(all="ignore"):
        expected, actual = original.forward(X), loaded.forward(X)
    np.testing.assert_array_equal(actual, expected, err_msg=where)
    if original.head.is_classifier and original.task != Task.MULTILABEL:
        assert original.predict(X).tolist() == loaded.predict(X).tolist(), where


def _expect_lossless(model: Model, path: Path, fmt: str, **options) -> Model | None:
    """Write and read back; None when the format refuses the model (UnsupportedModelError)."""
    try:
        nnconvert.save(model, path, format=fmt, **options)
    except UnsupportedModelError:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = nnconvert.load(path, format=fmt, trust=True)
    _assert_same_weights(model, loaded, fmt)
    _assert_same_predictions(model, loaded, fmt)
    assert loaded.task == model.task or fmt in ("sklearn-pickle", "skops"), fmt
    if model.classes is not None and loaded.classes is not None:
        assert loaded.classes.tolist() == model.classes.tolist(), fmt
    return loaded


def _onnxruntime_agrees(model: Model, path: Path) -> None:
    import onnxruntime

    from nnconvert.verify.tolerances import DEFAULTS

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    X = _inputs(model)
    outputs = {o.name: value for o, value in zip(session.get_outputs(), session.run(None, {session.get_inputs()[0].name: X}), strict=True)}
    with np.errstate(all="ignore"):
        expected = model.forward(X)
    if model.head.is_classifier:
        got = outputs["output_probability"]
        expected = model.predict_proba(X) if model.task != Task.MULTILABEL else expected
    else:
        got = outputs["variable"]
    rtol, atol = DEFAULTS[model.dtype.name]
    scale = max(1.0, float(np.nanmax(np.abs(expected)))) if np.isfinite(expected).any() else 1.0
    np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=rtol, atol=atol * scale)


@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=models())
def test_every_format_round_trips(model):
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for fmt, suffix in (("json", ".json"), ("hdf5", ".h5")):
            loaded = _expect_lossless(model, folder / f"m{suffix}", fmt)
            assert loaded is not None and loaded.equals(model), f"{fmt}: the model graph changed"
        onnx_path = folder / "m.onnx"
        assert _expect_lossless(model, onnx_path, "onnx", dtype=model.dtype.name) is not None
        if model.dtype == np.float32:
            _onnxruntime_agrees(model, onnx_path)
        _expect_lossless(model, folder / "k.h5", "keras-h5", dtype=model.dtype.name)
        _expect_lossless(model, folder / "m.pkl", "sklearn-pickle")


@settings(max_examples=10, deadline=None)
@given(model=models())
def test_skops_round_trips(model):
    with tempfile.TemporaryDirectory() as folder:
        _expect_lossless(model, Path(folder) / "m.skops", "skops")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float64_model_to_float32_onnx_is_within_tolerance(tmp_path, dtype):
    """The one lossy path: a float64 model written as float32 ONNX, run by onnxruntime."""
    rng = np.random.default_rng(3)
    layers = (
        DenseLayer(rng.normal(size=(4, 8)), rng.normal(size=8), Activation.TANH, "h"),
        DenseLayer(rng.normal(size=(8, 3)), rng.normal(size=3), Activation.SOFTMAX, "out"),
    )
    model = Model(layers=layers, head=Head(Task.MULTICLASS, np.array(["a", "b", "c"])), input=InputSpec(4))
    path = tmp_path / "m.onnx"
    nnconvert.save(model, path, dtype=dtype)
    _onnxruntime_agrees(model.astype(dtype), path)


@pytest.mark.parametrize("params", [
    {"alpha": 0.2, "beta": 1.25},  # saturated at 0: found by this suite
    {"alpha": 0.5, "beta": 0.5},  # alpha == beta: one constant in the graph
    {"alpha": 100.0, "beta": -3.3},  # steeper than the probe's spacing
    {"alpha": -0.5, "beta": 1.25},  # falling
])
def test_float64_hard_sigmoid_with_custom_parameters_through_onnx(tmp_path, params):
    """float64 HardSigmoid is written as Mul/Add/Max/Min (no onnxruntime kernel) and read back as hard_sigmoid."""
    layers = (
        DenseLayer(np.array([[0.5]]), np.array([0.1]), Activation.HARD_SIGMOID, "h", params),
        DenseLayer(np.array([[0.6]]), np.array([0.0]), Activation.IDENTITY, "out"),
    )
    model = Model(layers=layers, head=Head(Task.REGRESSION), input=InputSpec(1))
    loaded = _expect_lossless(model, tmp_path / "m.onnx", "onnx", dtype="float64")
    assert loaded is not None and loaded.layers[0].activation_params == params
    import onnxruntime

    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    X = np.linspace(-8, 8, 101).reshape(-1, 1)
    np.testing.assert_array_equal(session.run(None, {"X": X})[0], model.forward(X))
