"""Keras files: reading Keras' own .h5/.keras files, writing .h5 that Keras 3 loads.

References are always Keras itself (the fixtures' saved ``model.predict``
outputs, ``keras.models.load_model`` of our files), scikit-learn's own
predictions, and onnxruntime running the converted files.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

os.environ["KERAS_BACKEND"] = "torch"

from sklearn_variants import get_variant  # noqa: E402

from nnconvert.errors import ReadError, UnsupportedModelError, UsageError  # noqa: E402
from nnconvert.formats import keras as keras_format  # noqa: E402
from nnconvert.ir import Activation, DenseLayer, ElementwiseOp, Head, InputSpec, Model, PreprocessStep, Task  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "keras"
READABLE = ["multiclass", "binary", "regression", "functional"]
READERS = {".h5": keras_format.read_h5, ".keras": keras_format.read_keras}


def _reference(name: str) -> tuple[np.ndarray, np.ndarray]:
    data = np.load(FIXTURES / f"{name}.npz")
    return data["X"], data["y"]


def _keras():
    import keras

    return keras


def _head(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(4096)


# -- reading Keras' files -------------------------------------------------------


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
@pytest.mark.parametrize("name", READABLE)
def test_fixture_predictions_match_keras(name: str, suffix: str) -> None:
    X, y_keras = _reference(name)
    model = READERS[suffix](FIXTURES / f"{name}{suffix}")
    np.testing.assert_allclose(model.forward(X), y_keras, rtol=1e-5, atol=1e-5)


def test_tf2_style_file_matches_numpy_reference() -> None:
    X, y = _reference("tf2_style")
    model = keras_format.read_h5(FIXTURES / "tf2_style.h5")
    assert model.metadata.properties["keras_version"] == "2.13.1"
    assert model.metadata.properties["backend"] == "tensorflow"
    assert model.input.name == "dense_input"
    np.testing.assert_allclose(model.forward(X), y, rtol=1e-5, atol=1e-6)


def test_fixture_structure_is_read_as_keras_built_it() -> None:
    multiclass = keras_format.read_h5(FIXTURES / "multiclass.h5")
    assert [s.kind for s in multiclass.steps] == ["normalization"]
    assert [op.op for op in multiclass.steps[0].ops] == ["sub", "div"]
    assert multiclass.task == Task.MULTICLASS and multiclass.classes.tolist() == [0, 1, 2]
    assert multiclass.metadata.properties["keras_version"] == "3.15.1"
    assert multiclass.metadata.properties["backend"] == "torch"
    binary = keras_format.read_keras(FIXTURES / "binary.keras")
    assert [s.kind for s in binary.steps] == ["rescaling"] and binary.task == Task.BINARY
    assert binary.layers[1].activation == Activation.LEAKY_RELU
    assert binary.layers[1].activation_params["alpha"] == pytest.approx(0.1)
    regression = keras_format.read_h5(FIXTURES / "regression.h5")
    assert regression.task == Task.RAW  # a linear output does not say regression or logits
    assert not regression.layers[1].bias.any()  # use_bias=False
    functional = keras_format.read_keras(FIXTURES / "functional.keras")
    assert functional.layers[1].activation == Activation.HARD_SIGMOID
    assert functional.layers[1].activation_params["alpha"] == pytest.approx(1 / 6)


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_lambda_layer_is_refused_by_name(suffix: str) -> None:
    with pytest.raises(UnsupportedModelError) as caught:
        READERS[suffix](FIXTURES / f"lambda{suffix}")
    assert caught.value.problems == ["Lambda layer 'double_it' (layer 2) is not supported"]


def _rewritten_h5(tmp_path: Path, edit) -> Path:
    """A copy of multiclass.h5 whose model_config went through ``edit``."""
    target = tmp_path / "edited.h5"
    target.write_bytes((FIXTURES / "multiclass.h5").read_bytes())
    with h5py.File(target, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        edit(config["config"]["layers"])
        handle.attrs["model_config"] = json.dumps(config)
    return target


def test_every_unsupported_layer_is_listed_in_one_error(tmp_path: Path) -> None:
    def edit(layers: list) -> None:
        layers[3] = {"class_name": "MyCustomLayer", "config": {"name": "drop"}}
        layers.append({"class_name": "Lambda", "config": {"name": "after", "function": "evil"}})

    with pytest.raises(UnsupportedModelError) as caught:
        keras_format.read_h5(_rewritten_h5(tmp_path, edit))
    assert caught.value.problems == [
        "MyCustomLayer layer 'drop' (layer 3) is not supported",
        "Lambda layer 'after' (layer 5) is not supported",
    ]


def test_branching_functional_model_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "branching.h5"
    target.write_bytes((FIXTURES / "functional.h5").read_bytes())
    with h5py.File(target, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        last = config["config"]["layers"][-1]
        last["inbound_nodes"][0]["args"][0]["config"]["keras_history"][0] = "d1"  # skip d2 and act
        handle.attrs["model_config"] = json.dumps(config)
    with pytest.raises(UnsupportedModelError, match="single chain") as caught:
        keras_format.read_h5(target)
    assert "'d3' takes ['d1'] as input" in caught.value.problems[0]


def test_broken_h5_files_give_read_errors(tmp_path: Path) -> None:
    weights_only = tmp_path / "weights_only.h5"
    with h5py.File(weights_only, "w") as handle:
        handle.attrs["keras_version"] = "2.13.1"
        handle.attrs["layer_names"] = [b"dense"]
    with pytest.raises(ReadError, match="weights-only"):
        keras_format.read_h5(weights_only)
    mismatched = tmp_path / "mismatched.h5"
    mismatched.write_bytes((FIXTURES / "tf2_style.h5").read_bytes())
    with h5py.File(mismatched, "r+") as handle:
        del handle["model_weights/dense_1/dense_1/bias:0"]
        handle["model_weights/dense_1/dense_1/bias:0"] = np.zeros(5, dtype=np.float32)
    with pytest.raises(ReadError, match=r"'dense_1'.*bias has shape \(5,\), expected \(3,\)"):
        keras_format.read_h5(mismatched)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes((FIXTURES / "multiclass.h5").read_bytes()[:3000])
    import nnconvert

    with pytest.raises(ReadError):
        nnconvert.load(truncated, format="keras-h5")


def test_task_and_classes_options() -> None:
    path = FIXTURES / "multiclass.h5"
    labelled = keras_format.read_h5(path, classes=["a", "b", "c"])
    X, y = _reference("multiclass")
    assert labelled.predict(X).tolist() == np.array(["a", "b", "c"])[y.argmax(axis=1)].tolist()
    assert keras_format.read_h5(path, task="raw").task == Task.RAW
    assert keras_format.read_h5(FIXTURES / "regression.h5", task="regression").task == Task.REGRESSION
    with pytest.raises(UsageError, match="needs 3 class labels"):
        keras_format.read_h5(path, classes=["a", "b"])
    with pytest.raises(UsageError, match="not a task"):
        keras_format.read_h5(path, task="clustering")
    with pytest.raises(UsageError, match="does not fit the output layer"):
        keras_format.read_h5(FIXTURES / "regression.h5", task="multiclass")
    with pytest.raises(UsageError, match="does not look like a classifier"):
        keras_format.read_h5(FIXTURES / "regression.h5", classes=[0, 1])
    with pytest.raises(UsageError, match="distinct"):
        keras_format.read_h5(FIXTURES / "binary.h5", classes=["x", "x"])


def test_sniffing_tells_keras_h5_from_nnconvert_hdf5(tmp_path: Path) -> None:
    ours = tmp_path / "ours.h5"
    with h5py.File(ours, "w") as handle:  # nnconvert's own layout, marked as such
        handle.attrs["nnconvert_format"] = "nnconvert-hdf5"
        handle.attrs["keras_version"] = "3.15.1"  # even with a stray Keras attribute
    for name in ("multiclass", "tf2_style"):
        path = FIXTURES / f"{name}.h5"
        assert keras_format.sniff_h5(_head(path), path)
    assert not keras_format.sniff_h5(_head(ours), ours)
    keras_path = FIXTURES / "multiclass.keras"
    assert keras_format.sniff_keras(_head(keras_path), keras_path)
    assert not keras_format.sniff_keras(_head(keras_path), FIXTURES / "multiclass.h5")
    assert not keras_format.sniff_h5(b"not hdf5", ours)
    with pytest.raises(ReadError, match="format='hdf5'"):
        keras_format.read_h5(ours)


def test_registry_detects_keras_files_by_content(tmp_path: Path) -> None:
    from nnconvert import registry

    assert registry.detect(FIXTURES / "multiclass.h5").name == "keras-h5"
    assert registry.detect(FIXTURES / "tf2_style.h5").name == "keras-h5"
    assert registry.detect(FIXTURES / "multiclass.keras").name == "keras"
    # both claim .h5; nnconvert's own layout stays the suffix fallback
    assert registry.format_for_suffix(tmp_path / "new.h5").name == "hdf5"


# -- hostile archives ------------------------------------------------------------


def _archive(tmp_path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    path = tmp_path / "hostile.keras"
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _keras_members() -> dict[str, bytes]:
    with zipfile.ZipFile(FIXTURES / "multiclass.keras") as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@pytest.mark.parametrize("bad_name", ["../escape.txt", "/etc/passwd", "a/../../b", "C:/windows.txt"])
def test_keras_archive_with_unsafe_member_is_refused(tmp_path: Path, bad_name: str) -> None:
    members = _keras_members() | {bad_name: b"x"}
    with pytest.raises(ReadError, match="unsafe path"):
        keras_format.read_keras(_archive(tmp_path, members))


def test_keras_zip_bomb_fails_fast(tmp_path: Path) -> None:
    members = _keras_members() | {"model.weights.h5": b"\0" * (100 * 2**20)}
    path = _archive(tmp_path, members, zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 2**20
    with pytest.raises(ReadError, match="zip bomb"):
        keras_format.read_keras(path)


def test_keras_archive_without_weights_or_with_bad_json(tmp_path: Path) -> None:
    members = _keras_members()
    del members["model.weights.h5"]
    with pytest.raises(ReadError, match="model.weights.h5"):
        keras_format.read_keras(_archive(tmp_path, members))
    with pytest.raises(ReadError, match="config.json is not valid JSON"):
        keras_format.read_keras(_archive(tmp_path, _keras_members() | {"config.json": b"{nope"}))
    (tmp_path / "junk.keras").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ReadError, match="zip"):
        keras_format.read_keras(tmp_path / "junk.keras")


def test_keras_archive_weights_are_read_from_memory(tmp_path: Path) -> None:
    before = set(tmp_path.iterdir())
    keras_format.read_keras(FIXTURES / "multiclass.keras")
    assert set(tmp_path.iterdir()) == before
    with zipfile.ZipFile(FIXTURES / "multiclass.keras") as archive:  # the fixture really is a weights h5 in a zip
        with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as handle:
            assert "layers" in handle


# -- writing files Keras 3 loads -----------------------------------------------------


def _keras_predict(path: Path, X: np.ndarray) -> np.ndarray:
    loaded = _keras().models.load_model(path, compile=False)
    return np.asarray(loaded.predict(np.asarray(X, dtype=np.float32), verbose=0))


def _sklearn_outputs(variant) -> np.ndarray:
    estimator, X = variant.estimator, variant.X_test
    if variant.kind == "classifier":
        return estimator.predict_proba(X)
    return estimator.predict(X).reshape(len(X), -1)


@pytest.mark.parametrize(
    "variant_id",
    ["iris-10", "iris-tanh-3layers", "binary-str", "multilabel", "regression-3", "regression-poisson",
     "pipeline-standard", "pipeline-maxabs", "pipeline-standard-minmax"],
)
def test_written_h5_loads_in_keras_and_matches_sklearn(tmp_path: Path, variant_id: str) -> None:
    from nnconvert.converters.sklearn import from_sklearn

    variant = get_variant(variant_id)
    model = from_sklearn(variant.estimator)
    path = tmp_path / "model.h5"
    keras_format.write_h5(model, path)
    y_keras = _keras_predict(path, variant.X_test)
    reference = _sklearn_outputs(variant)
    if model.task == Task.BINARY:
        reference = reference[:, 1:]
    # float32 weights: 1e-6 absolute on probabilities, 1e-6 relative to the output scale otherwise
    atol = 1e-6 * max(1.0, float(np.abs(reference).max()))
    np.testing.assert_allclose(y_keras, reference, rtol=0, atol=atol)
    np.testing.assert_allclose(y_keras, model.astype("float32").forward(variant.X_test), rtol=0, atol=atol)
    back = keras_format.read_h5(path)  # the head survives the trip through a Keras file
    assert back.task == model.task
    assert (back.classes is None) == (model.classes is None)
    if model.classes is not None:
        assert back.classes.tolist() == model.classes.tolist()


def test_written_float64_h5_keeps_weights_bit_for_bit(tmp_path: Path) -> None:
    from nnconvert.converters.sklearn import from_sklearn

    variant = get_variant("pipeline-standard")
    model = from_sklearn(variant.estimator)
    path = tmp_path / "model64.h5"
    keras_format.write_h5(model, path, dtype="float64")
    back = keras_format.read_h5(path)
    assert back.dtype == np.float64
    np.testing.assert_array_equal(back.predict_proba(variant.X_test), variant.estimator.predict_proba(variant.X_test))
    # Keras 3 (torch) computes float64 layers' matmul in float32: float32 accuracy, not float64
    y_keras = _keras_predict(path, variant.X_test)
    np.testing.assert_allclose(y_keras, variant.estimator.predict_proba(variant.X_test), rtol=0, atol=1e-6)


def _model_with_activations(activations: list[tuple[Activation, dict]], seed: int = 0) -> Model:
    rng = np.random.default_rng(seed)
    widths = [3] + [5] * len(activations)
    layers = [
        DenseLayer(rng.normal(size=(n_in, n_out)).astype(np.float32), rng.normal(size=n_out).astype(np.float32),
                   activation, name=f"d{i}", activation_params=params)
        for i, ((activation, params), n_in, n_out) in enumerate(zip(activations, widths, widths[1:], strict=False))
    ]
    steps = [PreprocessStep("affine", [ElementwiseOp("mul", np.float32([2, 0.5, -1])), ElementwiseOp("add", np.float32(0.25))])]
    return Model(layers=tuple(layers), head=Head(Task.RAW), input=InputSpec(3), steps=tuple(steps))


def test_written_h5_expresses_keras_activations(tmp_path: Path) -> None:
    model = _model_with_activations(
        [
            (Activation.ELU, {"alpha": 0.7}),
            (Activation.LEAKY_RELU, {"alpha": 0.05}),
            (Activation.SELU, {}),
            (Activation.GELU, {}),
            (Activation.SILU, {}),
            (Activation.HARD_SIGMOID, {"alpha": 1 / 6, "beta": 0.5}),
            (Activation.SOFTPLUS, {}),
            (Activation.SOFTMAX, {}),
        ]
    )
    path = tmp_path / "activations.h5"
    keras_format.write_h5(model, path)
    X = np.random.default_rng(1).normal(size=(50, 3)).astype(np.float32) * 3
    np.testing.assert_allclose(_keras_predict(path, X), model.forward(X), rtol=0, atol=1e-6)
    back = keras_format.read_h5(path)
    assert [layer.activation for layer in back.layers] == [layer.activation for layer in model.layers]
    np.testing.assert_allclose(back.forward(X), model.forward(X), rtol=0, atol=1e-6)


def test_writer_refuses_what_keras_cannot_express(tmp_path: Path) -> None:
    from nnconvert.converters.sklearn import from_sklearn

    with pytest.raises(UnsupportedModelError) as caught:
        keras_format.write_h5(from_sklearn(get_variant("pipeline-minmax-clip").estimator), tmp_path / "clip.h5")
    assert "clip" in caught.value.problems[0] and "minmaxscaler" in caught.value.problems[0]
    model = _model_with_activations([(Activation.GELU, {"approximate": "tanh"}), (Activation.HARD_SIGMOID, {})])
    with pytest.raises(UnsupportedModelError) as caught:
        keras_format.write_h5(model, tmp_path / "act.h5")
    assert len(caught.value.problems) == 2 and "'d0'" in caught.value.problems[0]
    with pytest.raises(UsageError, match="dtype"):
        keras_format.write_h5(model, tmp_path / "x.h5", dtype="int8")


# -- Keras files to ONNX ------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
@pytest.mark.parametrize("name", ["multiclass", "binary", "regression"])
def test_keras_file_converts_to_onnx_matching_keras(tmp_path: Path, name: str, suffix: str) -> None:
    import onnxruntime

    import nnconvert

    target = tmp_path / f"{name}.onnx"
    model = nnconvert.convert(FIXTURES / f"{name}{suffix}", target)
    X, y_keras = _reference(name)
    session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"X": X}), strict=True))
    if model.head.is_classifier:
        y_onnx = outputs["output_probability"]
        if model.task == Task.BINARY:
            y_onnx = y_onnx[:, 1:]
    else:
        y_onnx = outputs["variable"]
    np.testing.assert_allclose(y_onnx, y_keras, rtol=1e-5, atol=1e-5)
