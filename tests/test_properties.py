"""Property-based round trips: random MLPs through every writable format and back.

hypothesis draws a model graph (0 to 6 hidden layers of 1 to 16 units, every task,
int/str/bool labels, float32/float64) from a vocabulary: any activation, or only
what scikit-learn or Keras can hold, so that every format gets many models it can
write. Lossless paths (json, hdf5, onnx in the model's own dtype, keras-h5 in the
model's dtype, the scikit-learn files) must give back bit-identical weights and
identical predictions. A format may refuse a model only for a reason it documents
(tests/format_profiles.py), must write every model it documents it can hold, and
must hold its stated minimum share of the mixed generator. Float32 ONNX files are
also run in onnxruntime and must agree with the IR within verify's tolerances.
"""

from __future__ import annotations

import tempfile
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from format_profiles import (
    KERAS_ACTIVATIONS,
    KERAS_FIXED_PARAMS,
    MIN_SHARE,
    SKLEARN_HIDDEN,
    assert_documented_refusal,
    refusal_problems,
    sklearn_output_activations,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nnconvert
from nnconvert.errors import UnsupportedModelError
from nnconvert.ir import ACTIVATION_DEFAULTS, Activation, DenseLayer, Head, InputSpec, Model, Task

MAX_EXAMPLES = 40
# format 1.0's activations, which every format here holds; the 1.1 vocabulary is tested in test_vocabulary*.py
ALL_FORMATS_ACTIVATIONS = list(Activation)[: list(Activation).index(Activation.HARD_SIGMOID) + 1]
ALL_HIDDEN = [a for a in ALL_FORMATS_ACTIVATIONS if a != Activation.SOFTMAX]
LABELS = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)
# the formats every test here writes, with the writer options that make them lossless
ROUND_TRIPS = {"json": ".json", "hdf5": ".h5", "onnx": ".onnx", "keras-h5": "_keras.h5", "sklearn-pickle": ".pkl"}
DTYPE_OPTION = {"onnx", "keras-h5", "keras"}


def _params(activation: Activation, vocabulary: str, draw) -> dict:
    if vocabulary == "keras-h5" and activation in KERAS_FIXED_PARAMS:
        return dict(KERAS_FIXED_PARAMS[activation])
    defaults = ACTIVATION_DEFAULTS.get(activation, {})
    if activation == Activation.GELU:
        return {"approximate": draw(st.sampled_from(["none", "tanh"]))}
    return {key: draw(st.sampled_from([value, 0.5, 1.25])) for key, value in defaults.items()}


def _hidden_activations(vocabulary: str, count: int, draw) -> list[Activation]:
    if vocabulary == "sklearn":  # one activation for every hidden layer
        return [draw(st.sampled_from(SKLEARN_HIDDEN))] * count
    choices = [a for a in ALL_HIDDEN if vocabulary == "any" or a in KERAS_ACTIVATIONS or a in KERAS_FIXED_PARAMS]
    return [draw(st.sampled_from(choices)) for _ in range(count)]


def _output_activation(vocabulary: str, task: Task, n_out: int, draw) -> Activation:
    if task == Task.RAW:
        return draw(st.sampled_from(ALL_FORMATS_ACTIVATIONS))
    if task == Task.REGRESSION and vocabulary == "sklearn":
        return draw(st.sampled_from(sklearn_output_activations(task, n_out)))
    if task == Task.REGRESSION:
        return Activation.IDENTITY
    return sklearn_output_activations(task, n_out)[0]


@st.composite
def models(draw, vocabulary: str | None = None) -> Model:
    """A model graph; ``vocabulary`` "sklearn" or "keras-h5" draws only what that format can hold."""
    vocabulary = vocabulary or draw(st.sampled_from(["any", "sklearn", "keras-h5"]))
    dtype = np.dtype(draw(st.sampled_from(["float32", "float64"])))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_features = draw(st.integers(1, 8))
    widths = draw(st.lists(st.integers(1, 16), max_size=6))
    tasks = [t for t in Task if not (vocabulary == "sklearn" and t == Task.RAW)]
    task = draw(st.sampled_from(tasks))
    label_type = draw(st.sampled_from(["int", "str", "bool"]))
    classes = None
    if task == Task.BINARY:
        n_out, n_classes = draw(st.sampled_from([1, 2])), 2
    elif task == Task.MULTICLASS:
        n_out = n_classes = draw(st.integers(3, 6))
    elif task == Task.MULTILABEL:
        n_out = n_classes = draw(st.integers(2, 5))
    else:
        n_out, n_classes = draw(st.integers(1, 3)), 0
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
    activations = [*_hidden_activations(vocabulary, len(widths), draw), _output_activation(vocabulary, task, n_out, draw)]
    layers = []
    n_in = n_features
    for index, (width, activation) in enumerate(zip([*widths, n_out], activations, strict=True)):
        weights = (rng.normal(size=(n_in, width)) / np.sqrt(n_in)).astype(dtype)
        bias = rng.normal(scale=0.1, size=width).astype(dtype)
        layers.append(DenseLayer(weights, bias, activation, f"dense_{index}", _params(activation, vocabulary, draw)))
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


def _round_trip(model: Model, path: Path, fmt: str) -> Model | None:
    """Write and read back, lossless; None when the format refuses the model for a reason it documents."""
    options = {"dtype": model.dtype.name} if fmt in DTYPE_OPTION else {}
    try:
        nnconvert.save(model, path, format=fmt, **options)
    except UnsupportedModelError as exc:
        assert_documented_refusal(fmt, model, exc)
        assert not path.exists(), f"{fmt}: a refused model left {path}"
        return None
    assert refusal_problems(fmt, model) == [], f"{fmt} wrote a model it documents it cannot hold"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = nnconvert.load(path, format=fmt, trust=True)
    _assert_same_weights(model, loaded, fmt)
    _assert_same_predictions(model, loaded, fmt)
    assert loaded.task == model.task or fmt in ("sklearn-pickle", "skops"), fmt
    if model.classes is not None and loaded.classes is not None:
        assert loaded.classes.tolist() == model.classes.tolist(), fmt
    if fmt in ("json", "hdf5"):
        assert loaded.equals(model), f"{fmt}: the model graph changed"
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


def _write_every_format(model: Model, written: Counter) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for fmt, suffix in ROUND_TRIPS.items():
            if _round_trip(model, Path(folder) / f"m{suffix}", fmt) is not None:
                written[fmt] += 1
        if model.dtype == np.float32:
            _onnxruntime_agrees(model, Path(folder) / "m.onnx")


def _assert_shares(formats, draw_count: int, written: Counter) -> None:
    shares = {fmt: written[fmt] / draw_count for fmt in formats}
    for fmt, share in shares.items():
        assert share >= MIN_SHARE[fmt], f"{fmt} held {written[fmt]} of {draw_count} models, below {MIN_SHARE[fmt]:.0%}: {shares}"


def test_every_format_round_trips():
    """The mixed generator: refusals are documented ones, and each format holds its minimum share."""
    written: Counter = Counter()
    drawn = []

    # derandomized: the share is a property of this fixed set of examples, not of a lucky draw
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(model=models())
    def run(model):
        drawn.append(model)
        _write_every_format(model, written)

    run()
    _assert_shares(ROUND_TRIPS, len(drawn), written)


@pytest.mark.parametrize("fmt, vocabulary", [("sklearn-pickle", "sklearn"), ("keras-h5", "keras-h5")])
def test_formats_write_every_model_they_can_hold(fmt, vocabulary):
    """Models drawn from a format's own vocabulary: the format writes every one, losslessly."""

    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(model=models(vocabulary))
    def run(model):
        assert refusal_problems(fmt, model) == [], f"the {vocabulary} vocabulary drew a model {fmt} cannot hold"
        with tempfile.TemporaryDirectory() as folder:
            assert _round_trip(model, Path(folder) / f"m{ROUND_TRIPS[fmt]}", fmt) is not None

    run()


def test_skops_round_trips():
    """skops (slower than the other writers) on fewer examples of the mixed generator."""
    written: Counter = Counter()
    drawn = []

    @settings(max_examples=10, deadline=None, derandomize=True)
    @given(model=models())
    def run(model):
        drawn.append(model)
        with tempfile.TemporaryDirectory() as folder:
            if _round_trip(model, Path(folder) / "m.skops", "skops") is not None:
                written["skops"] += 1

    run()
    _assert_shares(["skops"], len(drawn), written)


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
    loaded = _round_trip(model, tmp_path / "m.onnx", "onnx")
    assert loaded is not None and loaded.layers[0].activation_params == params
    import onnxruntime

    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    X = np.linspace(-8, 8, 101).reshape(-1, 1)
    np.testing.assert_array_equal(session.run(None, {"X": X})[0], model.forward(X))
