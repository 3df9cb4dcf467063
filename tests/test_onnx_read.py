"""The ONNX reader against real producers' files and hostile inputs.

The fixtures in tests/fixtures/onnx/ were written by skl2onnx, torch.onnx
(TorchScript and dynamo) and a tf2onnx-style builder; each .npz beside them
holds the inputs and what the producer itself computed (scikit-learn's
predictions, torch's outputs, numpy's evaluation). Regenerate them with
``python tests/make_onnx_fixtures.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnconvert
from nnconvert.errors import ReadError, UnsupportedModelError, UsageError
from nnconvert.formats.onnx._reader import read
from nnconvert.ir import Activation, DenseLayer, ElementwiseOp, Head, InputSpec, Metadata, Model, PreprocessStep

FIXTURES = Path(__file__).parent / "fixtures" / "onnx"

# fixture -> (task, dtype) the reader must find
FOREIGN = {
    "skl_iris_zipmap": ("multiclass", np.float32),
    "skl_iris_str_nozipmap": ("multiclass", np.float32),
    "skl_binary_int_double": ("binary", np.float64),
    "skl_binary_str_zipmap": ("binary", np.float32),
    "skl_multilabel": ("multilabel", np.float32),
    "skl_pipeline_standard_float": ("multiclass", np.float32),
    "skl_pipeline_standard_double": ("multiclass", np.float64),
    "skl_regressor1_float": ("regression", np.float32),
    "skl_regressor1_double": ("regression", np.float64),
    "torch_ts_mlp": ("raw", np.float32),
    "torch_dynamo_mlp": ("raw", np.float32),
    "torch_ts_activations": ("raw", np.float32),
    "torch_dynamo_activations": ("raw", np.float32),
    "tf2onnx_keras_mlp": ("raw", np.float32),
}
LABEL_OUTPUTS = ("label", "output_label")
PROBA_OUTPUTS = ("probabilities", "output_probability")


def _tolerance(dtype: np.dtype) -> float:
    return 1e-12 if np.dtype(dtype) == np.float64 else 1e-5


def _fixture(name: str) -> tuple[Path, dict[str, np.ndarray]]:
    path = FIXTURES / f"{name}.onnx"
    with np.load(FIXTURES / f"{name}.npz") as data:
        return path, dict(data)


# -- foreign producers -------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FOREIGN))
def test_foreign_file_matches_its_producer(name: str) -> None:
    path, data = _fixture(name)
    model = nnconvert.load(path)
    task, dtype = FOREIGN[name]
    assert model.task.value == task
    assert model.dtype == dtype
    tol = _tolerance(dtype)
    X = data["X"]
    if "proba" in data:
        np.testing.assert_allclose(model.predict_proba(X), data["proba"], rtol=0, atol=tol)
        np.testing.assert_array_equal(model.predict(X), data["label"])
        assert model.classes.dtype.kind == np.asarray(data["label"]).dtype.kind or task == "multilabel"
    elif task == "regression":
        np.testing.assert_allclose(model.predict(X), data["values"], rtol=0, atol=tol)
    else:
        np.testing.assert_allclose(model.forward(X), data["values"], rtol=0, atol=tol)


def _run_onnxruntime(path: Path, X: np.ndarray) -> dict[str, object]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {session.get_inputs()[0].name: X}), strict=True))


def _as_matrix(probabilities: object, classes: np.ndarray) -> np.ndarray:
    if isinstance(probabilities, list):  # ZipMap: one {label: probability} per sample
        return np.array([[row[c] for c in classes.tolist()] for row in probabilities])
    return np.asarray(probabilities)


@pytest.mark.parametrize("name", sorted(FOREIGN))
def test_onnxruntime_agrees_with_the_reading(name: str) -> None:
    path, data = _fixture(name)
    model = nnconvert.load(path)
    outputs = _run_onnxruntime(path, data["X"])
    tol = _tolerance(model.dtype)
    labels = next((outputs[n] for n in LABEL_OUTPUTS if n in outputs), None)
    probabilities = next((outputs[n] for n in PROBA_OUTPUTS if n in outputs), None)
    if model.head.is_classifier:
        np.testing.assert_array_equal(np.asarray(labels), model.predict(data["X"]))
        expected = _as_matrix(probabilities, model.classes)
        zipmap_tol = 1e-6 if isinstance(probabilities, list) else tol  # ZipMap returns float32
        np.testing.assert_allclose(model.predict_proba(data["X"]), expected, rtol=0, atol=max(tol, zipmap_tol))
    else:
        (values,) = outputs.values()
        np.testing.assert_allclose(model.forward(data["X"]).reshape(np.shape(values)), values, rtol=0, atol=tol)


def test_skl2onnx_pipeline_scaler_is_kept_as_the_graph_computes_it() -> None:
    # skl2onnx's Scaler multiplies by 1/scale_; the IR keeps that multiplication
    model = nnconvert.load(FIXTURES / "skl_pipeline_standard_float.onnx")
    assert [op.op for op in model.steps[0].ops] == ["sub", "mul"]
    double = nnconvert.load(FIXTURES / "skl_pipeline_standard_double.onnx")
    assert [op.op for op in double.steps[0].ops] == ["sub", "div"]


def test_skl2onnx_scaler_pipeline_goes_back_to_scikit_learn_computing_the_same() -> None:
    # ai.onnx.ml Scaler computes (x - offset) * scale: StandardScaler(with_std=False) then a MinMaxScaler
    path, data = _fixture("skl_pipeline_standard_float")
    estimator = nnconvert.converters.sklearn.to_sklearn(nnconvert.load(path))
    assert [type(step).__name__ for _, step in estimator.steps] == ["StandardScaler", "MinMaxScaler", "MLPClassifier"]
    (scaler,) = [node for node in onnx.load(path).graph.node if node.op_type == "Scaler"]
    X = data["X"]
    assert X.dtype == np.float32
    # the file's own Scaler node, alone, in onnxruntime: the two scalers give back its values bit for bit
    alone = helper.make_model(
        helper.make_graph(
            [helper.make_node("Scaler", ["x"], ["y"], domain="ai.onnx.ml", **{a.name: list(a.floats) for a in scaler.attribute})],
            "scaler",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, X.shape[1]])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, X.shape[1]])],
        ),
        opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 1)],
    )
    (scaled,) = ort.InferenceSession(alone.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": X})
    assert np.array_equal(estimator[:-1].transform(X), scaled)
    outputs = _run_onnxruntime(path, X)
    assert np.array_equal(estimator.predict(X), outputs["label"]) and np.array_equal(estimator.predict(X), data["label"])
    np.testing.assert_allclose(estimator.predict_proba(X), outputs["probabilities"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(estimator.predict_proba(X), data["proba"], rtol=0, atol=1e-6)


def test_torch_activation_compositions_are_recognised() -> None:
    expected = ["gelu", "silu", "leaky_relu", "gelu", "elu", "tanh", "logistic"]
    for name in ("torch_ts_activations", "torch_dynamo_activations"):
        model = nnconvert.load(FIXTURES / f"{name}.onnx")
        assert [layer.activation.value for layer in model.layers] == expected
        assert model.layers[3].activation_params["approximate"] == "tanh"
        # torch's weights are (out, in); the IR's (in, out)
        assert model.layers[0].weights.shape == (5, 8)


def test_skl2onnx_multi_output_regressor_is_refused() -> None:
    # skl2onnx 1.20 reshapes [N, 3] into [N * 3, 1]: the file does not compute the regressor
    path, data = _fixture("skl_regressor3_double")
    (values,) = _run_onnxruntime(path, data["X"]).values()
    assert values.shape == (data["values"].size, 1)
    with pytest.raises(UnsupportedModelError, match="Reshape node 'Reshape'"):
        nnconvert.load(path)


def test_cnn_is_refused_naming_every_foreign_node() -> None:
    path = FIXTURES / "torch_cnn.onnx"
    with pytest.raises(UnsupportedModelError) as caught:
        nnconvert.load(path)
    problems = "\n".join(caught.value.problems)
    assert "Conv node '/0/Conv'" in problems
    assert "MaxPool node '/2/MaxPool'" in problems


def test_cli_exits_3_on_the_cnn() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nnconvert.cli", "inspect", str(FIXTURES / "torch_cnn.onnx")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3
    assert "Conv node '/0/Conv'" in result.stderr
    assert "Traceback" not in result.stderr


def test_task_and_classes_options_make_a_raw_graph_a_classifier() -> None:
    path, data = _fixture("torch_ts_mlp")
    model = nnconvert.load(path, task="multiclass", classes=["a", "b", "c"])
    np.testing.assert_array_equal(model.predict(data["X"]), np.array(["a", "b", "c"])[data["values"].argmax(axis=1)])
    with pytest.raises(UsageError):
        nnconvert.load(path, task="multiclass", classes=["a", "b"])
    with pytest.raises(UsageError):
        read(path, bogus=1)


# -- hand-built graphs: folds and refusals -----------------------------------------------


def _mlp_graph(nodes, initializers, *, n_in=3, out="y", inputs=None, dtype=TensorProto.FLOAT, opset=17):
    graph = helper.make_graph(
        nodes,
        "g",
        inputs or [helper.make_tensor_value_info("x", dtype, ["N", n_in])],
        [helper.make_tensor_value_info(out, dtype, None)],
        initializer=initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="test")


def _save(tmp_path: Path, proto, name: str = "m.onnx") -> Path:
    path = tmp_path / name
    path.write_bytes(proto.SerializeToString())
    return path


def _agrees_with_onnxruntime(path: Path, model: Model, n_in: int = 3) -> None:
    X = np.random.default_rng(0).normal(size=(7, n_in)).astype(np.float32)
    (expected,) = _run_onnxruntime(path, X).values()
    np.testing.assert_allclose(model.forward(X), expected, rtol=1e-6, atol=1e-6)


def test_gemm_alpha_beta_transb_and_broadcast_bias_fold(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    w = rng.normal(size=(4, 3)).astype(np.float32)  # (out, in) for transB
    c = rng.normal(size=(1, 4)).astype(np.float32)
    node = helper.make_node("Gemm", ["x", "w", "c"], ["y"], name="g", alpha=0.5, beta=2.0, transB=1)
    path = _save(tmp_path, _mlp_graph([node], [numpy_helper.from_array(w, "w"), numpy_helper.from_array(c, "c")]))
    model = read(path)
    assert model.layers[0].weights.shape == (3, 4)
    _agrees_with_onnxruntime(path, model)


def test_matmul_add_and_exact_scaling_fold(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    w, b = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=4).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
        helper.make_node("Add", ["b", "h"], ["z"], name="bias"),
        helper.make_node("Mul", ["z", "two"], ["s"], name="scale"),
        helper.make_node("Tanh", ["s"], ["y"], name="act"),
    ]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"), numpy_helper.from_array(np.float32(2.0), "two")]
    path = _save(tmp_path, _mlp_graph(nodes, inits))
    model = read(path)
    assert model.layers[0].activation == Activation.TANH
    _agrees_with_onnxruntime(path, model)


def test_inexact_scaling_is_refused_with_every_problem(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    w = rng.normal(size=(3, 4)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
        helper.make_node("Mul", ["h", "three"], ["s"], name="times_three"),
        helper.make_node("Softmax", ["s"], ["y"], name="over_batch", axis=0),
    ]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.float32(3.0), "three")]
    with pytest.raises(UnsupportedModelError) as caught:
        read(_save(tmp_path, _mlp_graph(nodes, inits)))
    problems = "\n".join(caught.value.problems)
    assert "Mul node 'times_three'" in problems and "Softmax node 'over_batch'" in problems


def test_several_inputs_are_refused(tmp_path: Path) -> None:
    w = numpy_helper.from_array(np.ones((3, 2), np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"), helper.make_node("Add", ["h", "x2"], ["y"], name="add")]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 3 if n == "x" else 2]) for n in ("x", "x2")]
    with pytest.raises(UnsupportedModelError, match="2 inputs"):
        read(_save(tmp_path, _mlp_graph(nodes, [w], inputs=inputs)))


def test_non_finite_weights_name_initializer_and_node(tmp_path: Path) -> None:
    w = np.ones((3, 2), np.float32)
    w[1, 1] = np.nan
    node = helper.make_node("Gemm", ["x", "bad_w"], ["y"], name="dense0")
    with pytest.raises(ReadError, match=r"Gemm node 'dense0'.*'bad_w'.*non-finite"):
        read(_save(tmp_path, _mlp_graph([node], [numpy_helper.from_array(w, "bad_w")])))


def test_wrong_bias_shape_names_initializer_and_node(tmp_path: Path) -> None:
    inits = [numpy_helper.from_array(np.ones((3, 2), np.float32), "w"), numpy_helper.from_array(np.ones(5, np.float32), "odd_b")]
    node = helper.make_node("Gemm", ["x", "w", "odd_b"], ["y"], name="dense0")
    with pytest.raises(ReadError, match=r"Gemm node 'dense0'.*'odd_b'"):
        read(_save(tmp_path, _mlp_graph([node], inits)))


def test_declared_size_is_checked_before_allocating(tmp_path: Path) -> None:
    # a weight claiming 10^12 floats with 24 bytes of data: refused, not allocated
    tensor = TensorProto(name="huge", data_type=TensorProto.FLOAT, dims=[10**6, 10**6], raw_data=bytes(24))
    node = helper.make_node("Gemm", ["x", "huge"], ["y"], name="dense0")
    with pytest.raises(ReadError, match="'huge'.*24 bytes"):
        read(_save(tmp_path, _mlp_graph([node], [tensor])))


# -- corrupt files ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: data[:40], id="truncated-head"),
        pytest.param(lambda data: bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8)), id="garbage"),
        pytest.param(lambda data: b"", id="empty"),
        pytest.param(lambda data: b'{"format": "nnconvert-json"}', id="json"),
        pytest.param(lambda data: numpy_helper.from_array(np.ones(3)).SerializeToString(), id="tensor-proto"),
    ],
)
def test_corrupt_files_give_read_error_naming_the_file(tmp_path: Path, content) -> None:
    data = (FIXTURES / "skl_iris_zipmap.onnx").read_bytes()
    path = tmp_path / "broken.onnx"
    path.write_bytes(content(data))
    with pytest.raises(ReadError) as caught:
        read(path)
    assert str(path) in str(caught.value)
    with pytest.raises(ReadError):
        nnconvert.load(path, format="onnx")


# -- external data ------------------------------------------------------------------------


def _external_model(folder: Path, location: str, *, length: int | None = None) -> tuple[Path, np.ndarray]:
    """A one-Gemm model whose weight lives in external data at ``location``."""
    w = np.arange(6, dtype=np.float32).reshape(3, 2)
    tensor = TensorProto(name="ext_w", data_type=TensorProto.FLOAT, dims=w.shape, data_location=TensorProto.EXTERNAL)
    for key, value in (("location", location), ("offset", "0"), ("length", str(w.nbytes if length is None else length))):
        tensor.external_data.add(key=key, value=value)
    node = helper.make_node("Gemm", ["x", "ext_w"], ["y"], name="dense0")
    path = _save(folder, _mlp_graph([node], [tensor]))
    return path, w


def test_external_data_inside_the_folder_loads(tmp_path: Path) -> None:
    path, w = _external_model(tmp_path, "weights.bin")
    (tmp_path / "weights.bin").write_bytes(w.tobytes())
    model = read(path)
    np.testing.assert_array_equal(model.layers[0].weights, w)
    _agrees_with_onnxruntime(path, model)


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_external_data_leaving_the_folder_is_refused(tmp_path: Path, kind: str) -> None:
    outside = tmp_path / "secret.bin"
    outside.write_bytes(np.zeros(6, np.float32).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    location = {"dotdot": "../secret.bin", "absolute": str(outside), "symlink": "link.bin"}[kind]
    if kind == "symlink":
        os.symlink(outside, folder / "link.bin")
    path, _ = _external_model(folder, location)
    with pytest.raises(ReadError) as caught:
        read(path)
    message = str(caught.value)
    assert "'ext_w'" in message and repr(location) in message


def test_external_data_shorter_than_declared_is_refused(tmp_path: Path) -> None:
    path, w = _external_model(tmp_path, "weights.bin")
    (tmp_path / "weights.bin").write_bytes(w.tobytes()[:10])
    with pytest.raises(ReadError, match="'ext_w'.*has only 10"):
        read(path)
    path, _ = _external_model(tmp_path, "weights.bin", length=10**12)
    with pytest.raises(ReadError, match="'ext_w'.*declare"):
        read(path)


# -- nnconvert's own files (the writer) ---------------------------------------------------

def _write_and_read(model: Model, tmp_path: Path, **options) -> Model:
    path = nnconvert.save(model, tmp_path / "model.onnx", **options)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the description must agree with the graph
        return nnconvert.load(path)


def _handmade(classes: np.ndarray, activations) -> Model:
    rng = np.random.default_rng(4)
    layers, n_in = [], 4
    for index, (activation, params) in enumerate(activations):
        layers.append(DenseLayer(rng.normal(size=(n_in, 5)), rng.normal(size=5), activation, f"hidden_{index}", params))
        n_in = 5
    layers.append(DenseLayer(rng.normal(size=(n_in, len(classes))), rng.normal(size=len(classes)), Activation.SOFTMAX, "out"))
    steps = [
        PreprocessStep("standard_scaler", [ElementwiseOp("sub", rng.normal(size=4)), ElementwiseOp("div", rng.uniform(1, 2, 4))], "scale"),
        PreprocessStep(
            "minmax_scaler",
            [ElementwiseOp("mul", rng.normal(size=4)), ElementwiseOp("add", np.float64(0.5)), ElementwiseOp("clip", np.array([-1.0, 2.0]))],
            "minmax",
            {"feature_range": [-1, 2], "clip": True},
        ),
    ]
    return Model(
        tuple(layers),
        Head("multiclass", classes),
        InputSpec(4, "features", ("a", "b", "c", "d")),
        tuple(steps),
        Metadata(source_framework="handmade", properties={"note": "x"}),
    )


ACTIVATIONS = [
    (Activation.LEAKY_RELU, {"alpha": 0.3}),
    (Activation.ELU, {"alpha": 0.7}),
    (Activation.SELU, {}),
    (Activation.SOFTPLUS, {}),
    (Activation.HARD_SIGMOID, {"alpha": 0.25, "beta": 0.4}),
    (Activation.SILU, {}),
    (Activation.GELU, {"approximate": "none"}),
    (Activation.GELU, {"approximate": "tanh"}),
    (Activation.EXP, {}),
    (Activation.IDENTITY, {}),
]


@pytest.mark.parametrize(
    "classes",
    [np.array([-7, 0, 42]), np.array(["setosa", "vérsicolor", "a b"]), np.array([0.5, 1.5, 2.5])],
    ids=["negative-ints", "str", "float"],
)
@pytest.mark.parametrize(
    "options",
    [{"dtype": "float64", "opset": 9}, {"dtype": "float64", "opset": 13}, {"dtype": "float64", "opset": 20}, {"dtype": "float32", "linear": "matmul"}],
    ids=["f64-opset9", "f64-opset13", "f64-opset20", "f32-matmul"],
)
def test_round_trip_restores_everything(tmp_path: Path, classes: np.ndarray, options: dict) -> None:
    model = _handmade(classes, ACTIVATIONS)
    back = _write_and_read(model, tmp_path, **options)
    assert back.equals(model.astype(options["dtype"]))
    assert back.classes.dtype == model.classes.dtype
    assert [layer.name for layer in back.layers] == [layer.name for layer in model.layers]
    assert [(step.kind, step.name, dict(step.params)) for step in back.steps] == [
        (step.kind, step.name, dict(step.params)) for step in model.steps
    ]


HEADS = [
    ("binary-bool", Head("binary", np.array([False, True])), 1, Activation.LOGISTIC, True),
    ("binary-negative", Head("binary", np.array([3, -2])), 1, Activation.LOGISTIC, True),
    ("binary-str-softmax", Head("binary", np.array(["no", "yes"])), 2, Activation.SOFTMAX, True),
    ("multilabel", Head("multilabel", np.arange(3)), 3, Activation.LOGISTIC, False),
    ("regression", Head("regression"), 2, Activation.IDENTITY, False),
    ("raw", Head("raw"), 3, Activation.IDENTITY, False),
]


@pytest.mark.parametrize(
    "head, n_out, activation, zipmap",
    [
        pytest.param(head, n_out, activation, zipmap, id=f"{name}-zipmap" if zipmap else name)
        for name, head, n_out, activation, can_zipmap in HEADS
        for zipmap in ((False, True) if can_zipmap else (False,))
    ],
)
def test_round_trip_heads(tmp_path: Path, head: Head, n_out: int, activation: Activation, zipmap: bool) -> None:
    rng = np.random.default_rng(5)
    layers = (
        DenseLayer(rng.normal(size=(4, 6)), rng.normal(size=6), Activation.RELU, "hidden"),
        DenseLayer(rng.normal(size=(6, n_out)), rng.normal(size=n_out), activation, "out"),
    )
    model = Model(layers, head, InputSpec(4))
    back = _write_and_read(model, tmp_path, dtype="float64", zipmap=zipmap)
    assert back.equals(model)
    assert back.task == model.task
    if model.classes is not None:
        assert back.classes.dtype == model.classes.dtype


def test_round_trip_every_sklearn_variant(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from sklearn_variants import variants

    for variant in variants():
        model = nnconvert.from_sklearn(variant.estimator)
        back = _write_and_read(model, tmp_path, dtype=str(model.dtype))
        assert back.equals(model), variant.id
        np.testing.assert_array_equal(back.predict(variant.X_test), variant.estimator.predict(variant.X_test), err_msg=variant.id)


def test_description_contradicting_the_graph_is_refused(tmp_path: Path) -> None:
    model = _handmade(np.array([1, 2, 3]), [(Activation.RELU, {})])
    path = nnconvert.save(model, tmp_path / "model.onnx", dtype="float64")
    proto = onnx.load(str(path))
    for prop in proto.metadata_props:
        if prop.key == "nnconvert.model":
            document = json.loads(prop.value)
            document["layers"][0]["activation"] = "tanh"  # the graph computes relu
            document["head"]["classes"]["values"] = [7, 8, 9]
            prop.value = json.dumps(document)
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(ReadError, match=r"layers\[0\]\.activation") as caught:
        nnconvert.load(path)
    assert str(path) in str(caught.value) and "nnconvert.model" in str(caught.value)


@pytest.mark.parametrize("name", ["skl_binary_str_zipmap", "torch_dynamo_mlp", "skl_pipeline_standard_double"])
def test_mutated_files_give_a_model_or_an_nnconvert_error(tmp_path: Path, name: str) -> None:
    """A mutated file is refused, or the model read computes what onnxruntime computes from that file.

    When onnxruntime itself cannot load the mutated file, the mutation hit something the reader
    does not use, so the model read must be the original one.
    """
    data = (FIXTURES / f"{name}.onnx").read_bytes()
    original = nnconvert.load(FIXTURES / f"{name}.onnx", format="onnx")
    rng = np.random.default_rng(7)
    path = tmp_path / "mutated.onnx"
    outcomes = {"refused": 0, "runs like the file": 0, "unchanged": 0}
    for _ in range(80):
        mutated = bytearray(data)
        for position in rng.integers(0, len(data), size=rng.integers(1, 4)):
            mutated[position] = rng.integers(0, 256)
        path.write_bytes(bytes(mutated))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                model = nnconvert.load(path, format="onnx")
            except (ReadError, UnsupportedModelError) as exc:
                assert str(path) in str(exc)
                outcomes["refused"] += 1
                continue
            outcomes[_mutant_outcome(path, model, original)] += 1
    # the fixed seed loads some mutants of every fixture: the checks above really ran
    assert outcomes["runs like the file"] + outcomes["unchanged"] > 0, outcomes


def _mutant_outcome(path: Path, model: Model, original: Model) -> str:
    try:
        report = nnconvert.verify(path, model, n_samples=16, per_layer=False, edge_cases=False, batch_one_rows=0, hash_inputs=False)
    except ReadError as exc:
        assert "onnxruntime cannot load" in str(exc), exc
        assert model.equals(original), f"{path}: onnxruntime cannot run it, yet it read as a different model"
        return "unchanged"
    assert report.passed, report.summary()
    return "runs like the file"
