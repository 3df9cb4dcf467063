"""The layer kinds and activations of format 1.1: numpy semantics against the frameworks, serde, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import nnconvert
from nnconvert.errors import InvalidModelError, ReadError, UnsupportedModelError
from nnconvert.ir import (
    LAYER_KINDS,
    Activation,
    ActivationLayer,
    BatchNormLayer,
    DenseLayer,
    Head,
    InputSpec,
    LayerNormLayer,
    Model,
    PReLULayer,
    apply_activation,
)

# samples/iris_mlp.json and .h5 as nnconvert wrote them before format 1.1
FORMAT_1_0 = Path(__file__).resolve().parent / "fixtures" / "format_1_0"
F32 = np.float32


def _x(n: int = 400, width: int = 6, seed: int = 0, scale: float = 4.0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=(n, width)) * scale).astype(F32)


def _activated(x: np.ndarray, activation: Activation, params: dict | None = None) -> np.ndarray:
    y = x.copy()
    layer = ActivationLayer(activation, params or {})
    model = Model([DenseLayer(np.eye(x.shape[1], dtype=x.dtype), np.zeros(x.shape[1], x.dtype)), layer], Head("raw"), InputSpec(x.shape[1]))
    y = model.forward(x)
    direct = x.copy()
    apply_activation(direct, model.layers[1].activation, model.layers[1].activation_params)
    np.testing.assert_array_equal(y, direct)
    return y


def _every_kind_model(dtype: str = "float32") -> Model:
    rng = np.random.default_rng(1)

    def a(*shape: int, low: float = -1, high: float = 1) -> np.ndarray:
        return rng.uniform(low, high, size=shape).astype(dtype)

    layers = [
        DenseLayer(a(4, 6), a(6), name="d0"),
        BatchNormLayer(a(6), a(6, low=0.5, high=2), 1e-3, a(6), None, name="bn"),
        ActivationLayer(Activation.RELU, {"max_value": 6.0, "negative_slope": 0.1, "threshold": 0.2}, name="relu"),
        PReLULayer(a(6, low=0, high=0.3), name="prelu"),
        LayerNormLayer(1e-5, None, a(6), name="ln"),
        DenseLayer(a(6, 5), a(5), Activation.MISH, name="d1"),
        ActivationLayer(Activation.CLIP, {"min": -0.2}, name="clip"),
        DenseLayer(a(5, 3), a(3), Activation.SOFTPLUS, name="d2", activation_params={"beta": 2.0, "threshold": 10.0}),
        ActivationLayer(Activation.LOG_SOFTMAX, name="head"),
    ]
    return Model(layers, Head("multiclass", np.array(["a", "b", "c"])), InputSpec(4))


# -- numpy semantics against the frameworks that define them -------------------


def test_activations_match_torch() -> None:
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    x = _x()
    t = torch.from_numpy(x)
    cases = [
        (Activation.HARDSWISH, {}, functional.hardswish(t)),
        (Activation.MISH, {}, functional.mish(t)),
        (Activation.SOFTSIGN, {}, functional.softsign(t)),
        (Activation.LOG_SOFTMAX, {}, functional.log_softmax(t, dim=1)),
        (Activation.CLIP, {"min": 0.0, "max": 6.0}, functional.relu6(t)),
        (Activation.CLIP, {"min": -0.5, "max": 2.0}, functional.hardtanh(t, -0.5, 2.0)),
        (Activation.SOFTPLUS, {"beta": 2.0, "threshold": 3.0}, functional.softplus(t, beta=2.0, threshold=3.0)),
        (Activation.SOFTPLUS, {"beta": 1.0, "threshold": 20.0}, functional.softplus(t)),
        (Activation.LEAKY_RELU, {"alpha": 1.7}, functional.leaky_relu(t, 1.7)),
        (Activation.HARD_SIGMOID, {"alpha": 1 / 6, "beta": 0.5}, functional.hardsigmoid(t)),
        (Activation.GELU, {"approximate": "tanh"}, functional.gelu(t, approximate="tanh")),
    ]
    for activation, params, expected in cases:
        np.testing.assert_allclose(_activated(x, activation, params), expected.numpy(), rtol=1e-6, atol=1e-6, err_msg=activation.value)


def test_norms_and_prelu_match_torch() -> None:
    torch = pytest.importorskip("torch")
    x = _x()
    rng = np.random.default_rng(2)
    mean, var = rng.normal(size=6).astype(F32), rng.uniform(0.1, 3, 6).astype(F32)
    gamma, beta = rng.normal(size=6).astype(F32), rng.normal(size=6).astype(F32)
    bn = torch.nn.BatchNorm1d(6, eps=1e-5).eval()
    ln = torch.nn.LayerNorm(6, eps=1e-5)
    prelu = torch.nn.PReLU(6)
    with torch.no_grad():
        bn.running_mean.copy_(torch.from_numpy(mean))
        bn.running_var.copy_(torch.from_numpy(var))
        bn.weight.copy_(torch.from_numpy(gamma))
        bn.bias.copy_(torch.from_numpy(beta))
        ln.weight.copy_(torch.from_numpy(gamma))
        ln.bias.copy_(torch.from_numpy(beta))
        prelu.weight.copy_(torch.from_numpy(np.abs(gamma)))
        expected = [m(torch.from_numpy(x)).numpy() for m in (bn, ln, prelu)]
    ours = [
        BatchNormLayer(mean, var, 1e-5, gamma, beta).apply(x),
        LayerNormLayer(1e-5, gamma, beta).apply(x),
        PReLULayer(np.abs(gamma)).apply(x),
    ]
    for mine, theirs in zip(ours, expected, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-5)


def test_keras_relu_parameters_match_keras() -> None:
    keras = pytest.importorskip("keras")
    x = _x()
    for params in ({"max_value": 6.0}, {"negative_slope": 0.2}, {"threshold": 1.0}, {"negative_slope": 1.5},
                   {"negative_slope": 0.1, "max_value": 3.0, "threshold": 0.5}, {"threshold": 1.0, "max_value": 2.0}):
        expected = keras.ops.convert_to_numpy(keras.layers.ReLU(**params)(x))
        np.testing.assert_allclose(_activated(x, Activation.RELU, params), expected, rtol=1e-6, atol=1e-6, err_msg=str(params))


# -- validation -----------------------------------------------------------------


def test_relu_with_default_settings_is_plain_relu() -> None:
    layer = ActivationLayer(Activation.RELU, {"negative_slope": 0.0, "threshold": 0.0})
    model = Model([DenseLayer(np.eye(2), np.zeros(2)), layer], Head("raw"), InputSpec(2))
    assert dict(model.layers[1].activation_params) == {}


@pytest.mark.parametrize(
    ("layer", "match"),
    [
        (BatchNormLayer(np.zeros(3), np.ones(3)), r"layer 1 \('bad', batch_norm\): mean has shape \(3,\), expected \(2,\)"),
        (BatchNormLayer(np.zeros(2), -np.ones(2)), "running variance is negative"),
        (LayerNormLayer(1e-3, axis=0), "only the feature axis"),
        (ActivationLayer(Activation.CLIP, {"min": 2.0, "max": 1.0}), "clip min 2.0 is above max 1.0"),
        (ActivationLayer(Activation.RELU, {"alpha": 1.0}), r"relu takes parameters \['max_value', 'negative_slope', 'threshold'\]"),
        (ActivationLayer(Activation.PRELU), "prelu layer"),
        (ActivationLayer(Activation.RELU, {"threshold": -1.0}), "relu threshold must be >= 0"),
        (PReLULayer(np.array([0.1, np.nan])), "non-finite"),
    ],
)
def test_invalid_layers_are_refused_naming_them(layer, match: str) -> None:
    from dataclasses import replace

    layer = replace(layer, name="bad")
    with pytest.raises(InvalidModelError, match=match):
        Model([DenseLayer(np.eye(2), np.zeros(2)), layer], Head("raw"), InputSpec(2))


# -- serde --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "hdf5"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_kind_round_trips_bit_identically(tmp_path: Path, fmt: str, dtype: str) -> None:
    model = _every_kind_model(dtype)
    first, second = tmp_path / f"a.{fmt}", tmp_path / f"b.{fmt}"
    nnconvert.save(model, first, format=fmt)
    loaded = nnconvert.load(first, format=fmt)
    assert loaded.equals(model)
    np.testing.assert_array_equal(loaded.forward(_x(width=4)), model.forward(_x(width=4)))
    nnconvert.save(loaded, second, format=fmt)
    if fmt == "json":
        assert first.read_bytes() == second.read_bytes()


def test_format_1_0_files_still_read() -> None:
    document = json.loads((FORMAT_1_0 / "iris_mlp.json").read_text())
    assert document["format_version"] == "1.0"
    model = nnconvert.load(FORMAT_1_0 / "iris_mlp.json")
    assert model.layer_kinds == {"dense"}
    assert nnconvert.load(FORMAT_1_0 / "iris_mlp.h5", format="hdf5").equals(model)


def test_unknown_layer_kinds_are_refused_naming_them(tmp_path: Path) -> None:
    path = tmp_path / "future.json"
    nnconvert.save(_every_kind_model(), path)
    document = json.loads(path.read_text())
    document["format_version"] = "1.9"
    document["layers"][1]["kind"] = "attention"
    document["layers"][3]["kind"] = "conv1d"
    path.write_text(json.dumps(document))
    with pytest.raises(ReadError, match=r"layers\[1\] \('bn'\): 'attention'; layers\[3\] \('prelu'\): 'conv1d'") as info:
        nnconvert.load(path)
    assert "dense, batch_norm, layer_norm, activation, prelu" in str(info.value)


def test_layer_kinds_are_listed() -> None:
    assert LAYER_KINDS == ("dense", "batch_norm", "layer_norm", "activation", "prelu")
    assert _every_kind_model().layer_kinds == set(LAYER_KINDS)


def test_sklearn_refuses_other_kinds_naming_each_layer() -> None:
    with pytest.raises(UnsupportedModelError) as info:
        nnconvert.to_sklearn(_every_kind_model())
    for expected in ("layer 1 ('bn'): batch_norm layer", "layer 3 ('prelu'): prelu layer",
                     "layer 2 ('relu'): activation layer (relu", "layer 8 ('head'): activation layer (log_softmax)"):
        assert expected in str(info.value)


# -- scikit-learn: batch norm folding on request ------------------------------------


def _batch_norm_classifier() -> Model:
    rng = np.random.default_rng(5)
    layers = [
        DenseLayer(rng.normal(size=(4, 6)), rng.normal(size=6), name="d0"),
        BatchNormLayer(rng.normal(size=6), rng.uniform(0.5, 2, 6), 1e-3, rng.normal(size=6), rng.normal(size=6), name="bn_before"),
        ActivationLayer(Activation.RELU, name="act"),
        DenseLayer(rng.normal(size=(6, 5)), rng.normal(size=5), Activation.RELU, name="d1"),
        BatchNormLayer(rng.normal(size=5), rng.uniform(0.5, 2, 5), 1e-3, None, rng.normal(size=5), name="bn_after"),
        DenseLayer(rng.normal(size=(5, 3)), rng.normal(size=3), Activation.SOFTMAX, name="out"),
    ]
    return Model(layers, Head("multiclass", np.array([3, 5, 7])), InputSpec(4))


def test_sklearn_refuses_batch_norm_unless_folding_is_asked(tmp_path: Path) -> None:
    model = _batch_norm_classifier()
    with pytest.raises(UnsupportedModelError, match="fold_batchnorm=True") as info:
        nnconvert.to_sklearn(model)
    assert "layer 1 ('bn_before'): batch_norm layer" in str(info.value)
    estimator = nnconvert.to_sklearn(model, fold_batchnorm=True)
    X = np.random.default_rng(6).normal(size=(200, 4)) * 2
    np.testing.assert_allclose(estimator.predict_proba(X), model.predict_proba(X), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(estimator.predict(X), model.predict(X))
    assert [c.shape for c in estimator.coefs_] == [(4, 6), (6, 5), (5, 3)]


def test_cli_fold_batchnorm_and_verify_reports_the_difference(tmp_path: Path) -> None:
    from nnconvert.cli import main

    source, target = tmp_path / "bn.json", tmp_path / "bn.skops"
    nnconvert.save(_batch_norm_classifier(), source)
    assert main(["convert", str(source), str(target)]) == 3
    assert not target.exists()
    assert main(["convert", str(source), str(target), "--fold-batchnorm", "--verify"]) == 0
    report = nnconvert.verify(nnconvert.load(source), nnconvert.load(target))
    assert report.passed


# -- messages name what is actually unsupported -------------------------------------------


def test_onnx_mid_graph_node_is_named_as_such(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
        helper.make_node("Sqrt", ["h"], ["s"], name="odd_activation"),
        helper.make_node("MatMul", ["s", "w2"], ["y"], name="mm2"),
    ]
    inits = [numpy_helper.from_array(rng.normal(size=(3, 4)).astype(F32), "w1"),
             numpy_helper.from_array(rng.normal(size=(4, 2)).astype(F32), "w2")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], inits)
    path = tmp_path / "mid.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    with pytest.raises(UnsupportedModelError) as info:
        nnconvert.load(path)
    first = info.value.problems[0]
    assert first.startswith("Sqrt node 'odd_activation': computes on the network's values after the last layer")
    assert "classifier or regressor output" in first and "not part of a recognised classifier" not in first


def test_keras_unsupported_activation_is_named_once(tmp_path: Path) -> None:
    import h5py

    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 2], "name": "x"}},
        {"class_name": "Dense", "config": {"name": "d", "units": 2, "activation": "linear"}},
        {"class_name": "Activation", "config": {"name": "act", "activation": "sparse_plus"}},
        {"class_name": "LayerNormalization", "config": {"name": "rms", "axis": -1, "rms_scaling": True}},
    ]}}
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as handle:
        handle.attrs["model_config"] = json.dumps(config)
        handle.attrs["keras_version"] = "3.5.0"
        weights = handle.create_group("model_weights")
        group = weights.create_group("d")
        group.attrs["weight_names"] = [b"d/kernel:0", b"d/bias:0"]
        group.create_dataset("d/kernel:0", data=np.eye(2, dtype=F32))
        group.create_dataset("d/bias:0", data=np.zeros(2, F32))
    with pytest.raises(UnsupportedModelError) as info:
        nnconvert.load(path, format="keras-h5")
    text = "\n".join(info.value.problems)
    assert "Activation layer 'act' (layer 2): activation 'sparse_plus' has no IR equivalent" in text
    assert text.count("has no IR equivalent") == 1
    assert "LayerNormalization layer 'rms' (layer 3): LayerNormalization with rms_scaling=True is not supported" in text


@pytest.mark.parametrize("arrays", ["list", "base64"])
def test_every_kind_follows_the_schema(tmp_path: Path, arrays: str) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema_path = Path(nnconvert.__file__).parent / "schemas" / "json_weights.schema.json"
    validator = jsonschema.Draft202012Validator(json.loads(schema_path.read_text(encoding="utf-8")))
    path = tmp_path / "every.json"
    nnconvert.save(_every_kind_model(), path, arrays=arrays)
    validator.validate(json.loads(path.read_text(encoding="utf-8")))
    validator.validate(json.loads((FORMAT_1_0 / "iris_mlp.json").read_text(encoding="utf-8")))
