"""The ONNX writer, checked against scikit-learn, skl2onnx, onnxruntime and onnx's checker."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from sklearn_variants import get_variant, variant_ids

from nnconvert._io.atomic import as_output
from nnconvert.converters.sklearn import from_sklearn
from nnconvert.errors import UsageError
from nnconvert.formats.onnx import _write_model, _write_options, _writer, sniff, write
from nnconvert.ir import Activation, DenseLayer, ElementwiseOp, Head, InputSpec, Model, PreprocessStep
from nnconvert.serde import model_to_document

MAX_OPSET = _write_options.max_opset()
OPSETS = sorted({9, 13, 15, MAX_OPSET})


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _run(path: Path, X: np.ndarray, dtype: str = "float32") -> dict[str, object]:
    session = _session(path)
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(None, {"X": np.asarray(X, dtype=dtype)}), strict=True))


def _written(tmp_path: Path, model: Model, name: str = "model.onnx", **options: object) -> Path:
    path = tmp_path / name
    write(model, path, **options)
    return path


def _sklearn_labels_as_onnx(labels: np.ndarray) -> np.ndarray:
    return labels.astype(np.int64) if labels.dtype.kind == "b" else labels


def _assert_matches_sklearn(outputs: dict[str, object], variant, atol: float, rtol: float = 0.0) -> None:
    estimator, X = variant.estimator, variant.X_test
    if variant.kind == "regressor":
        expected = estimator.predict(X).reshape(len(X), -1)
        np.testing.assert_allclose(outputs["variable"], expected, atol=atol, rtol=rtol)
        return
    np.testing.assert_allclose(outputs["output_probability"], estimator.predict_proba(X), atol=atol, rtol=0)
    np.testing.assert_array_equal(outputs["output_label"], _sklearn_labels_as_onnx(estimator.predict(X)))


# -- every scikit-learn variant ----------------------------------------------------------------


@pytest.mark.parametrize("variant_id", variant_ids())
def test_float32_file_matches_sklearn(tmp_path, variant_id):
    variant = get_variant(variant_id)
    path = _written(tmp_path, from_sklearn(variant.estimator))
    # regression targets are in the hundreds: float32 keeps ~7 significant digits
    _assert_matches_sklearn(_run(path, variant.X_test), variant, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("variant_id", variant_ids())
def test_float64_file_matches_sklearn_at_every_opset(tmp_path, variant_id, opset):
    variant = get_variant(variant_id)
    model = from_sklearn(variant.estimator)
    path = _written(tmp_path, model, dtype="float64", opset=opset)
    # a model trained in float32 is computed by scikit-learn in float32
    tolerance = 1e-12 if model.dtype == np.float64 else 1e-5
    _assert_matches_sklearn(_run(path, variant.X_test, "float64"), variant, atol=tolerance, rtol=tolerance)


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("variant_id", ["pipeline-minmax-clip", "binary-str", "multilabel", "regression-3"])
@pytest.mark.parametrize("linear", ["gemm", "matmul"])
def test_float32_opsets_and_linear_forms(tmp_path, variant_id, opset, linear):
    variant = get_variant(variant_id)
    path = _written(tmp_path, from_sklearn(variant.estimator), opset=opset, linear=linear)
    _assert_matches_sklearn(_run(path, variant.X_test), variant, atol=1e-5, rtol=1e-5)
    ops = {node.op_type for node in onnx.load(path).graph.node}
    assert ("Gemm" in ops) == (linear == "gemm")
    assert ("MatMul" in ops) == (linear == "matmul")


@pytest.mark.parametrize("variant_id", variant_ids())
def test_checker_full_check_passes(tmp_path, variant_id):
    path = _written(tmp_path, from_sklearn(get_variant(variant_id).estimator), check=False)
    onnx.checker.check_model(onnx.load(path), full_check=True)


def test_graph_layout(tmp_path):
    model = from_sklearn(get_variant("pipeline-standard").estimator)
    proto = onnx.load(_written(tmp_path, model))
    assert [i.name for i in proto.graph.input] == ["X"]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and dims[1].dim_value == model.n_features
    assert [o.name for o in proto.graph.output] == ["output_label", "output_probability"]
    assert [(i.domain, i.version) for i in proto.opset_import] == [("", 15)]
    assert proto.ir_version == onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", 15)])
    assert [n.op_type for n in proto.graph.node][:2] == ["Sub", "Div"]
    assert sum(n.op_type == "Gemm" for n in proto.graph.node) == len(model.layers)
    gemm = next(n for n in proto.graph.node if n.op_type == "Gemm")
    assert {a.name: a.i for a in gemm.attribute}.get("transB", 0) == 0
    assert not any(n.domain for n in proto.graph.node)
    weights = {t.name: t for t in proto.graph.initializer}["layers/0/weights"]
    assert weights.data_type == onnx.TensorProto.FLOAT and weights.raw_data
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(weights), model.layers[0].weights.astype(np.float32))


# -- metadata ----------------------------------------------------------------------------------


def test_metadata_props_describe_the_model(tmp_path):
    model = from_sklearn(get_variant("iris-labels-str").estimator)
    proto = onnx.load(_written(tmp_path, model))
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["nnconvert.format_version"] == "1"
    expected = json.loads(json.dumps(model_to_document(model, lambda array, key: None)))
    assert json.loads(props["nnconvert.model"]) == expected
    assert props["task"] == "multiclass"
    assert json.loads(props["classes"]) == model.classes.tolist()
    assert proto.producer_name == "nnconvert"
    import nnconvert

    assert proto.producer_version == nnconvert.__version__


# -- labels ------------------------------------------------------------------------------------


def _tiny(classes, n_out: int | None = None, activation: str = "softmax", task: str = "multiclass", dtype=np.float64) -> Model:
    rng = np.random.default_rng(0)
    n_out = len(classes) if n_out is None else n_out
    layers = [
        DenseLayer(rng.normal(size=(3, 4)).astype(dtype), rng.normal(size=4).astype(dtype), Activation.TANH),
        DenseLayer(rng.normal(size=(4, n_out)).astype(dtype), rng.normal(size=n_out).astype(dtype), activation),
    ]
    return Model(layers=layers, head=Head(task, np.asarray(classes)), input=InputSpec(3))


@pytest.mark.parametrize(
    ("classes", "onnx_dtype"),
    [
        (np.array(["a", "bb", "ccc"]), np.dtype(object)),
        (np.array([-1, 7, 42]), np.dtype(np.int64)),
        (np.array([1.0, 2.0, 5.0]), np.dtype(np.int64)),
        (np.array([0.5, 1.5, 2.25]), np.dtype(np.float64)),
    ],
)
def test_label_dtypes(tmp_path, classes, onnx_dtype):
    model = _tiny(classes)
    X = np.random.default_rng(1).normal(size=(50, 3))
    labels = _run(_written(tmp_path, model), X)["output_label"]
    assert labels.dtype == onnx_dtype
    np.testing.assert_array_equal(labels, model.predict(X).astype(onnx_dtype))


def test_bool_labels_are_int64(tmp_path):
    model = _tiny(np.array([False, True]), n_out=1, activation="logistic", task="binary")
    X = np.random.default_rng(2).normal(size=(50, 3))
    outputs = _run(_written(tmp_path, model), X)
    assert outputs["output_label"].dtype == np.int64
    np.testing.assert_array_equal(outputs["output_label"], model.predict(X).astype(np.int64))
    np.testing.assert_allclose(outputs["output_probability"], model.predict_proba(X), atol=1e-6)


# -- zipmap ------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant_id", ["iris-10", "binary-str", "multilabel", "iris-labels-int"])
def test_zipmap_output_like_skl2onnx(tmp_path, variant_id):
    from skl2onnx import to_onnx

    variant = get_variant(variant_id)
    X = variant.X_test.astype(np.float32)
    ours = _run(_written(tmp_path, from_sklearn(variant.estimator), zipmap=True), X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference_model = to_onnx(variant.estimator, X[:1], target_opset=15)
    (tmp_path / "skl2onnx.onnx").write_bytes(reference_model.SerializeToString())
    theirs = _run(tmp_path / "skl2onnx.onnx", X)
    assert isinstance(ours["output_probability"], list) and len(ours["output_probability"]) == len(X)
    for mine, reference in zip(ours["output_probability"], theirs["output_probability"], strict=True):
        assert list(mine) == list(reference)
        np.testing.assert_allclose([mine[k] for k in mine], [reference[k] for k in reference], atol=1e-5)
    if variant_id != "multilabel":  # skl2onnx's multilabel label output is [N] of something else
        np.testing.assert_array_equal(ours["output_label"], theirs["output_label"])
    proto = onnx.load(tmp_path / "model.onnx")
    assert ("ai.onnx.ml", 1) in [(i.domain, i.version) for i in proto.opset_import]


def test_zipmap_float64(tmp_path):
    variant = get_variant("iris-10")
    outputs = _run(_written(tmp_path, from_sklearn(variant.estimator), zipmap=True, dtype="float64"), variant.X_test, "float64")
    probabilities = np.array([[row[k] for k in sorted(row)] for row in outputs["output_probability"]])
    np.testing.assert_allclose(probabilities, variant.estimator.predict_proba(variant.X_test), atol=1e-6)


# -- activations -------------------------------------------------------------------------------

_PARAMS = {
    Activation.LEAKY_RELU: {"alpha": 0.3},
    Activation.ELU: {"alpha": 0.7},
    Activation.HARD_SIGMOID: {"alpha": 0.25, "beta": 0.4},
}
_GELUS = [(Activation.GELU, {"approximate": "none"}), (Activation.GELU, {"approximate": "tanh"})]
_ACTIVATIONS = [(a, _PARAMS.get(a, {})) for a in Activation if a != Activation.GELU] + _GELUS


def _activation_model(activation: Activation, params: dict, dtype) -> Model:
    rng = np.random.default_rng(3)
    hidden = (Activation.TANH, {}) if activation == Activation.EXP else (activation, params)  # exp(exp(x)) overflows
    layers = [
        DenseLayer(rng.normal(scale=0.5, size=(4, 6)).astype(dtype), rng.normal(size=6).astype(dtype), hidden[0], "hidden", hidden[1]),
        DenseLayer(rng.normal(scale=0.5, size=(6, 3)).astype(dtype), rng.normal(size=3).astype(dtype), activation, "out", params),
    ]
    return Model(layers=layers, head=Head("raw"), input=InputSpec(4))


def _exact_gelu_in_float64(activation: Activation, params: dict, dtype: str) -> bool:
    return dtype == "float64" and activation == Activation.GELU and params["approximate"] == "none"


@pytest.mark.parametrize("opset", sorted({9, 15, 20, MAX_OPSET}))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("activation", "params"), _ACTIVATIONS, ids=lambda v: getattr(v, "value", str(v)))
def test_every_activation_matches_the_ir(tmp_path, activation, params, dtype, opset):
    model = _activation_model(activation, params, np.float64)
    X = np.random.default_rng(4).normal(scale=3, size=(64, 4))
    path = _written(tmp_path, model, dtype=dtype, opset=opset)
    tolerance = 1e-5 if dtype == "float32" else 1e-12
    if _exact_gelu_in_float64(activation, params, dtype):
        # onnxruntime has no float64 Erf; onnx's reference evaluator has one, computed in float32
        from onnx.reference import ReferenceEvaluator

        got = ReferenceEvaluator(onnx.load(path)).run(None, {"X": X})[0]
        tolerance = 1e-6
    else:
        got = _run(path, X, dtype)["variable"]
    np.testing.assert_allclose(got, model.forward(X), atol=tolerance, rtol=tolerance)


def test_preprocessing_clip_every_opset(tmp_path):
    step = PreprocessStep("minmax_scaler", (ElementwiseOp("mul", np.full(3, 0.37)), ElementwiseOp("clip", np.array([-0.3, 0.1]))))
    base = _tiny(np.array([0, 1, 2]))
    model = Model(layers=base.layers, head=base.head, input=base.input, steps=(step,))
    X = np.random.default_rng(5).normal(size=(40, 3))
    for opset in OPSETS:
        for dtype, tolerance in (("float32", 1e-6), ("float64", 1e-15)):
            outputs = _run(_written(tmp_path, model, f"{opset}{dtype}.onnx", dtype=dtype, opset=opset), X, dtype)
            np.testing.assert_allclose(outputs["output_probability"], model.predict_proba(X), atol=tolerance)


# -- files -------------------------------------------------------------------------------------


def test_same_model_same_bytes(tmp_path):
    model = from_sklearn(get_variant("pipeline-standard-minmax").estimator)
    first = _written(tmp_path, model, "a.onnx").read_bytes()
    assert _written(tmp_path, model, "b.onnx").read_bytes() == first
    assert _written(tmp_path, from_sklearn(get_variant("pipeline-standard-minmax").estimator), "c.onnx").read_bytes() == first


def test_streamed_file_is_protobuf_serialization(tmp_path):
    model = from_sklearn(get_variant("iris-labels-str").estimator)
    for options in ({}, {"zipmap": True, "dtype": "float64", "opset": 9}):
        path = _written(tmp_path, model, **options)
        proto = _write_model.build_model_proto(model, _write_options.parse_options(options))
        assert path.read_bytes() == proto.SerializeToString()


def _wide_model() -> Model:
    rng = np.random.default_rng(6)
    layers = [
        DenseLayer(rng.normal(scale=0.1, size=(30, 64)), rng.normal(size=64), Activation.RELU, "wide"),
        DenseLayer(rng.normal(scale=0.1, size=(64, 3)), rng.normal(size=3), Activation.SOFTMAX, "out"),
    ]
    steps = (PreprocessStep("standard_scaler", (ElementwiseOp("sub", rng.normal(size=30)), ElementwiseOp("div", np.full(30, 2.0)))),)
    return Model(layers=layers, head=Head("multiclass", np.array(["x", "y", "z"])), input=InputSpec(30), steps=steps)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_external_data_round_trip(tmp_path, dtype):
    model = _wide_model()
    final = tmp_path / "model.onnx"
    temp = tmp_path / ".model.onnx.tmp"
    write(model, as_output(temp, final_path=final), external_data=True, dtype=dtype)
    os.replace(temp, final)
    proto = onnx.load(final, load_external_data=False)
    locations = {e.value for t in proto.graph.initializer for e in t.external_data if e.key == "location"}
    assert len(locations) == 1
    sidecar = locations.pop()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", sidecar]
    digest = hashlib.sha256((tmp_path / sidecar).read_bytes()).hexdigest()
    assert sidecar == _writer.sidecar_name("model.onnx", digest), "the sidecar is named by its content"
    assert final.stat().st_size < 10_000
    onnx.checker.check_model(str(final), full_check=True)
    X = np.random.default_rng(7).normal(size=(20, 30))
    outputs = _run(final, X, dtype)
    np.testing.assert_allclose(outputs["output_probability"], model.predict_proba(X), atol=1e-6 if dtype == "float32" else 1e-14)
    np.testing.assert_array_equal(outputs["output_label"], model.predict(X))
    inline = onnx.load(_written(tmp_path, model, "inline.onnx", dtype=dtype))
    external = onnx.load(final)
    for a, b in zip(inline.graph.initializer, external.graph.initializer, strict=True):
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(a), onnx.numpy_helper.to_array(b))


def test_external_data_check_failure_leaves_no_sidecar(tmp_path, monkeypatch):
    from nnconvert.errors import WriteError

    def failing_check(path):
        raise WriteError("boom")

    monkeypatch.setattr(_writer, "_check", failing_check)
    with pytest.raises(WriteError):
        write(from_sklearn(get_variant("iris-10").estimator), as_output(tmp_path / "t.onnx", final_path=tmp_path / "m.onnx"), external_data=True, check=True)
    assert not any(p.name.startswith((".m.onnx", "m.onnx")) for p in tmp_path.iterdir())


# -- options -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [{"opset": 8}, {"opset": MAX_OPSET + 1}, {"opset": "x"}, {"dtype": "float16"}, {"linear": "conv"}, {"zipmap": "maybe"}, {"colour": 1}],
)
def test_bad_options_are_usage_errors(tmp_path, options):
    with pytest.raises(UsageError):
        write(_tiny(np.array([0, 1, 2])), tmp_path / "m.onnx", **options)


def test_max_opset_is_what_onnx_and_onnxruntime_share():
    assert 19 <= MAX_OPSET <= onnx.defs.onnx_opset_version()


# -- sniffing ----------------------------------------------------------------------------------


def test_sniff_claims_onnx_files(tmp_path):
    from skl2onnx import to_onnx

    variant = get_variant("iris-10")
    ours = _written(tmp_path, from_sklearn(variant.estimator))
    assert sniff(ours.read_bytes()[:4096], ours)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = to_onnx(variant.estimator, variant.X_test[:1].astype(np.float32)).SerializeToString()
    assert sniff(theirs[:4096], Path("x.bin"))


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\x08",
        b'{"format": "nnconvert"}',
        b"\x89HDF\r\n\x1a\n" + bytes(100),
        b"PK\x03\x04" + bytes(100),
        b"\x80\x04\x95" + bytes(100),
        b"\x08\x07",  # ir_version and nothing else
        b"\x08\x63\x12\x03abc",  # ir_version 99
        b"\x08\x07\x12\x02\xff\xfe",  # producer_name not UTF-8
        b"\x08\x07\x78\x01",  # field 15 is not a ModelProto field
        bytes(range(256)),
    ],
)
def test_sniff_refuses_other_content(head):
    assert not sniff(head, Path("x.onnx"))


def test_zipmap_refuses_fractional_float_labels(tmp_path):
    from nnconvert.errors import UnsupportedModelError

    with pytest.raises(UnsupportedModelError, match="zipmap"):
        write(_tiny(np.array([0.5, 1.5, 2.25])), tmp_path / "m.onnx", zipmap=True)


def test_registering_the_format_does_not_import_onnx():
    import subprocess
    import sys

    code = "import sys, nnconvert.formats.onnx; assert 'onnx.onnx_ml_pb2' not in sys.modules and 'onnxruntime' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
