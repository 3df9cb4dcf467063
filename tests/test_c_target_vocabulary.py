"""The c target on model graph 1.1: normalization, PReLU, activation layers, the new activations.

References: the producers' own outputs saved beside the real fixtures (torch.onnx TorchScript and
dynamo exports, Keras 3 .h5/.keras, tf_keras 2 .h5, tf2onnx), and the model graph's numpy forward.
Every group of generated files is compiled in one compiler run with the documented flags.
"""

from __future__ import annotations

import shutil
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import nnconvert
from nnconvert.errors import UnsupportedModelError
from nnconvert.formats.c.build import CompiledModel, compile_models
from nnconvert.formats.c.fixed import SCHEMES, emulate, plan_fixed
from nnconvert.formats.c.fixed_fold import fixed_layers
from nnconvert.ir import (
    Activation,
    ActivationLayer,
    BatchNormLayer,
    DenseLayer,
    Head,
    InputSpec,
    LayerNormLayer,
    Model,
    PReLULayer,
)

FIXTURES = Path(__file__).parent / "fixtures"
# the producers' files of tests/test_vocabulary_producers.py
CASES = (
    sorted((FIXTURES / "onnx").glob("torch_*1[1378]_*.onnx"))
    + sorted(p for p in (FIXTURES / "keras").glob("vocab_*") if p.suffix in (".h5", ".keras"))
    + sorted(p for p in (FIXTURES / "tf").glob("*") if p.suffix in (".h5", ".onnx"))
)

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler ('cc') on this machine: apt-get install gcc")


def _load(path: Path) -> tuple[Model, np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = nnconvert.load(path)
    with np.load(path.with_name(path.name.split(".")[0] + ".npz")) as data:
        return model, data["X"], data["values"]


def _key(path: Path) -> str:
    return path.name.replace(".", "_")


def _compile(models: dict[str, tuple[Model, dict]], folder: Path) -> dict[str, CompiledModel]:
    paths = {}
    for key, (model, options) in models.items():
        paths[key] = folder / f"m_{key}.c"
        nnconvert.save(model, paths[key], **options)
    return dict(zip(paths, compile_models(list(paths.values())), strict=True))


def test_producers_vocabulary_in_float32_and_float64(tmp_path: Path) -> None:
    """Every vocabulary fixture: float32 within 1e-5 of the producer and of the graph, labels identical; float64 ~ the graph."""
    assert len(CASES) == 28
    loaded = {_key(path): _load(path) for path in CASES}
    jobs = {}
    for key, (model, _, _) in loaded.items():
        jobs[f"{key}_f32"] = (model, {"precision": "float32"})
        jobs[f"{key}_f64"] = (model, {"precision": "float64"})
    compiled = _compile(jobs, tmp_path)
    kinds: set[str] = set()
    for key, (model, X, values) in loaded.items():
        kinds |= model.layer_kinds
        got = compiled[f"{key}_f32"].forward(X)
        producer_error = np.abs(got - values).max()
        graph_error = np.abs(got - model.forward(X)).max()
        reference64 = model.astype(np.float64).forward(X)
        error64 = np.abs(compiled[f"{key}_f64"].forward(X) - reference64).max()
        print(f"{key}: float32 vs producer {producer_error:.2e}, vs graph {graph_error:.2e}; float64 vs graph {error64:.2e}")
        assert producer_error <= 1e-5 and graph_error <= 1e-5, key
        assert error64 <= 1e-12 * max(1.0, np.abs(reference64).max()), key
        assert np.abs(got - reference64).max() <= compiled[f"{key}_f32"].meta["error_bound"]["max_abs"], key  # the header's bound
        np.testing.assert_array_equal(got.argmax(axis=1), values.argmax(axis=1))
        if model.head.is_classifier:
            for suffix in ("_f32", "_f64"):
                program = compiled[key + suffix]
                np.testing.assert_array_equal(model.classes[program.predict_indices(X)], model.predict(X))
                assert np.abs(program.predict_proba(X) - model.predict_proba(X)).max() <= 1e-5, key
    assert kinds == {"dense", "batch_norm", "layer_norm", "activation", "prelu"}


def _synthetic() -> Model:
    """The branches the fixtures leave out: a norm first (no preprocessing), relu/softplus/clip parameter subsets..."""
    rng = np.random.default_rng(3)

    def dense(n_in: int, n_out: int, activation: str, params: dict | None = None) -> DenseLayer:
        return DenseLayer(rng.normal(size=(n_in, n_out)), rng.normal(size=n_out) * 0.5, activation, "", params or {})

    layers = (
        BatchNormLayer(rng.normal(size=5), rng.random(5) + 0.5, 1e-3, None, None, "bn_first"),
        LayerNormLayer(1e-5, None, rng.normal(size=5), name="ln_offset_only"),
        dense(5, 6, "relu", {"threshold": 0.3}),
        dense(6, 6, "relu", {"negative_slope": 0.2}),
        dense(6, 6, "relu", {"max_value": 1.5, "negative_slope": 0.05}),
        dense(6, 6, "softplus", {"threshold": 1.0}),
        dense(6, 6, "clip", {"min": -0.25}),
        dense(6, 6, "clip", {"max": 0.5}),
        ActivationLayer(Activation.MISH, name="mish_layer"),
        PReLULayer(rng.normal(size=6), name="prelu"),
        dense(6, 4, "identity"),
        ActivationLayer(Activation.LOG_SOFTMAX, name="head"),
    )
    return Model(layers, Head("multiclass", np.array(["a", "b", "c", "d"])), InputSpec(5))


def test_every_branch_float32_float64_against_the_graph(tmp_path: Path) -> None:
    model = _synthetic()
    X = np.random.default_rng(4).normal(size=(400, 5)) * 3
    compiled = _compile({"syn32": (model, {"precision": "float32"}), "syn64": (model, {"precision": "float64"})}, tmp_path)
    reference = model.astype(np.float64).forward(X)
    assert np.abs(compiled["syn32"].forward(X) - model.astype(np.float32).forward(X)).max() <= 1e-5
    assert np.abs(compiled["syn64"].forward(X) - reference).max() <= 1e-12 * max(1.0, np.abs(reference).max())
    np.testing.assert_array_equal(model.classes[compiled["syn64"].predict_indices(X)], model.predict(X))
    assert np.abs(compiled["syn64"].predict_proba(X) - model.astype(np.float64).predict_proba(X)).max() <= 1e-12
    # metadata, header and inspect name every layer kind; the stated bound holds
    meta = compiled["syn32"].meta
    assert [layer["kind"] for layer in meta["layers"]][:3] == ["batch_norm", "layer_norm", "dense"]
    assert np.abs(compiled["syn32"].forward(X) - reference).max() <= meta["error_bound"]["max_abs"]
    header = (tmp_path / "m_syn32.h").read_text()
    assert "layers: 5 -> batch_norm -> layer_norm -> 6 relu(threshold=0.3)" in header
    # flash: every dense layer's weights and bias, batch norm's multiplier and shift, layer norm's offset, the slopes
    dense_values = sum(layer.weights.size + layer.bias.size for layer in model.dense_layers)
    for program, size in ((compiled["syn32"], 4), (compiled["syn64"], 8)):
        assert program.meta["sizes"]["weights_bytes"] == (dense_values + 2 * 5 + 5 + 6) * size
        # RAM: the input copied for the first (in-place) layer, two buffers of the widest hidden layer (6), the class outputs
        assert program.meta["sizes"]["ram_bytes"] == (6 + 6 + 4) * size


def without_layer_norms(model: Model) -> Model:
    """``model`` with its layer norms taken out (fixed point refuses them; widths are unchanged)."""
    return Model(tuple(layer for layer in model.layers if layer.kind != "layer_norm"), model.head, model.input, steps=model.steps)


def _fixed_models() -> dict[str, tuple[Model, np.ndarray, np.ndarray | None]]:
    """Three real fixtures cut to what fixed point holds, against the graph: tf2onnx's (batch norms folded,
    PReLU, relu6, softsign, leaky) without its layer norm; torch's smooth activations without the layer norm;
    Keras' batch norms, relu parameters, PReLU and softsign with a softmax head instead of log_softmax."""
    tf, X_tf, _ = _load(FIXTURES / "tf" / "tf2onnx17_vocab.onnx")
    tf, values_tf = without_layer_norms(tf), None
    smooth, X_smooth, _ = _load(FIXTURES / "onnx" / "torch_dynamo18_smooth.onnx")
    keras, X_keras, _ = _load(FIXTURES / "keras" / "vocab_sequential.h5")
    assert [layer.kind for layer in smooth.layers][7] == "layer_norm" and keras.layers[9].name == "leaky"
    cut_smooth = Model(smooth.layers[:7] + smooth.layers[8:], smooth.head, smooth.input)
    cut_keras = Model(keras.layers[:9] + (replace(keras.layers[10], activation=Activation.SOFTMAX),), keras.head, keras.input)
    return {"tf2onnx": (tf, X_tf, values_tf), "smooth": (cut_smooth, X_smooth, None), "keras": (cut_keras, X_keras, None)}


def test_fixed_point_vocabulary(tmp_path: Path) -> None:
    models = _fixed_models()
    jobs = {f"{name}_{precision}": (model, {"precision": precision, "calibration": X})
            for name, (model, X, _) in models.items() for precision in ("int16", "int8")}  # fmt: skip
    compiled = _compile(jobs, tmp_path)
    for key, program in compiled.items():
        name, precision = key.rsplit("_", 1)
        model, X, values = models[name]
        folded = fixed_layers(model, precision)[0]
        assert folded is not None and {layer.kind for layer in folded.layers} <= {"dense", "prelu"}
        # the C is the emulation of the folded plan, bit for bit; the stated bound is against the unfolded graph
        np.testing.assert_array_equal(program.forward_raw(X), emulate(plan_fixed(folded, SCHEMES[precision], X), X))
        error = np.abs(program.forward(X) - model.astype(np.float64).forward(X)).max()
        assert error <= program.meta["error_bound"]["max_abs"] + 1e-12, key
        if values is not None:
            producer_error = np.abs(program.forward(X) - values).max()
            print(f"{key}: vs producer {producer_error:.2e}")
        print(f"{key}: vs graph {error:.2e}, folded {program.meta['fixed_point']['folded']}")
        if precision == "int16":
            assert error < 1e-3, key
            if model.head.is_classifier:
                np.testing.assert_array_equal(model.classes[program.predict_indices(X)], model.predict(X))
    assert len(compiled["tf2onnx_int16"].meta["fixed_point"]["folded"]) == 2
    assert "float" not in (tmp_path / "m_keras_int16.c").read_text()


@pytest.mark.parametrize("precision", ["int16", "int8"])
def test_fixed_point_refusals_name_the_layer_and_the_float_precision(tmp_path: Path, precision: str) -> None:
    keras, _, _ = _load(FIXTURES / "keras" / "vocab_sequential.keras")
    norms, _, _ = _load(FIXTURES / "onnx" / "torch_ts17_norms.onnx")
    # after an activation and before no dense layer: nothing to fold into
    last_bn = Model((DenseLayer(np.eye(3), np.zeros(3), "relu", "d"), BatchNormLayer(np.zeros(3), np.ones(3), name="last_bn")),
                    Head("raw"), InputSpec(3))  # fmt: skip
    expected = {
        "keras": (keras, ["layer 10 ('out'): activation log_softmax is not supported", "layer 9 ('leaky'): an activation layer (leaky_relu)"]),
        "norms": (norms, ["layer 6 ('/7/LayerNormalization'): layer_norm is not supported"]),
        "bn": (last_bn, ["layer 1 ('last_bn'): batch norm with no dense layer to fold into"]),
    }
    for name, (model, parts) in expected.items():
        with pytest.raises(UnsupportedModelError) as info:
            nnconvert.save(model, tmp_path / f"{name}.c", precision=precision)
        for part in parts:
            assert part in str(info.value), (name, str(info.value))
        assert f"at precision {precision}" in str(info.value) and "--precision float32" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_cli_convert_verify_and_inspect_a_log_softmax_head(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nnconvert.cli import main

    source = FIXTURES / "keras" / "vocab_sequential.keras"
    data = tmp_path / "X.csv"
    np.savetxt(data, _load(source)[1], delimiter=",")
    target = tmp_path / "seq.c"
    assert main(["convert", str(source), str(target), "--verify", "--data", str(data)]) == 0
    assert "nnconvert verify: PASSED" in capsys.readouterr().out
    assert main(["verify", str(source), str(target), "--data", str(data)]) == 0
    capsys.readouterr()
    assert main(["inspect", str(target)]) == 0
    out = capsys.readouterr().out
    assert "-> batch_norm -> relu -> 8 relu(max_value=6.0) -> batch_norm ->" in out and "3 log_softmax" in out
    # the refusal on the command line: exit 3, nothing written
    assert main(["convert", str(source), str(tmp_path / "q.c"), "--precision", "int16", "--calibration", str(data)]) == 3
    assert "layer 10 ('out')" in capsys.readouterr().err and not (tmp_path / "q.c").exists()


def test_convert_verify_at_int16_verifies_the_c_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--precision is the C code's arithmetic, not a quantization to price (it was a usage error, exit 2)."""
    import re

    from nnconvert.cli import main

    model, X, _ = _load(FIXTURES / "tf" / "tf2onnx17_vocab.onnx")
    source, data = tmp_path / "tf2onnx_vocab.json", tmp_path / "X.csv"
    nnconvert.save(without_layer_norms(model), source)
    np.savetxt(data, X, delimiter=",")
    code = main(["convert", str(source), str(tmp_path / "q.c"), "--precision", "int16", "--calibration", str(data), "--verify", "--data", str(data)])
    out = capsys.readouterr().out
    # within the header's bound on the rows; edge rows beyond the calibrated range are left out (it saturates there)
    assert code == 0 and re.search(r"values\s+data\s+PASSED", out) and "calibrated for and were left out" in out, out


def test_verify_passes_on_one_fixture_per_producer(tmp_path: Path) -> None:
    """nnconvert.verify(producer's file, generated C, its rows): the producer's file as the reference, C compiled by verify."""
    sources = [FIXTURES / "onnx" / "torch_ts17_norms.onnx", FIXTURES / "onnx" / "torch_dynamo18_smooth.onnx",
               FIXTURES / "keras" / "vocab_functional.keras", FIXTURES / "tf" / "tf_keras2_vocab.h5"]  # fmt: skip
    for index, source in enumerate(sources):
        model, X, _ = _load(source)
        target = tmp_path / f"v{index}.c"
        nnconvert.save(model, target)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = nnconvert.verify(source, target, X)
        assert report.passed, (source.name, report)
