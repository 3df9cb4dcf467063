"""tf2onnx's Keras LayerNormalization (tests/fixtures/tf, made by tests/make_tf_fixtures.py with TensorFlow 2.21,
tf_keras 2.21 and tf2onnx 1.17 at opsets 13, 17 and 18).

tf2onnx writes it in two forms, never as ONNX's LayerNormalization node: tf's fused batch norm over the
input reshaped to [1, N, F, 1] with run-time shapes (``ln_fused`` and ``vocab``: epsilon >= 1.001e-5) and
the moments arithmetic (``ln_moments``: smaller epsilon). tests/test_vocabulary_producers.py checks every
fixture against TensorFlow's own outputs, through nnconvert's ONNX (opset 15) and JSON/HDF5; here: which
layers were read, nnconvert's native LayerNormalization (opset 17) in onnxruntime, Keras 3 loading the
Keras h5 nnconvert writes, and graphs that differ from tf2onnx's in one node: refused naming that node,
or (a commuted operand, another epsilon) read exactly as onnxruntime runs them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

import nnconvert
from nnconvert.cli import main
from nnconvert.errors import UnsupportedModelError

TF_FIXTURES = Path(__file__).parent / "fixtures" / "tf"
TOLERANCE = 1e-5
OPSETS = (13, 17, 18)

# (epsilon as float32, has gamma, has beta) of each LayerNormalization, as tests/make_tf_fixtures.py builds them
EXPECTED_LAYER_NORMS = {
    "vocab": [(1e-3, True, True)],
    "ln_fused": [(1e-3, False, False), (1e-2, False, True), (1e-3, True, False)],
    "ln_batch3": [(1e-3, False, False), (1e-2, False, True), (1e-3, True, False)],  # ln_fused for 3 rows
    "ln_moments": [(1e-5, True, True), (1e-6, False, False), (1e-6, False, True), (1e-5, True, False)],
}


def _fixture(opset: int, name: str) -> tuple[Path, np.ndarray, np.ndarray]:
    path = TF_FIXTURES / f"tf2onnx{opset}_{name}.onnx"
    with np.load(path.with_suffix(".npz")) as data:
        return path, data["X"], data["values"]


def _load(path: Path) -> nnconvert.Model:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return nnconvert.load(path)


CASES = [(opset, name) for name in sorted(EXPECTED_LAYER_NORMS) for opset in OPSETS
         if (TF_FIXTURES / f"tf2onnx{opset}_{name}.onnx").exists()]


def test_every_form_is_there() -> None:
    assert len(CASES) == 3 * 3 + 2  # ln_batch3 at opsets 13 and 18 only


@pytest.mark.parametrize(("opset", "name"), CASES)
def test_layer_norms_read_as_keras_built_them(opset: int, name: str, tmp_path: Path) -> None:
    """Read as Keras built them, and nnconvert's ONNX (for any batch size) gives TensorFlow's outputs."""
    path, X, values = _fixture(opset, name)
    # tf2onnx's own file runs in onnxruntime and gives TensorFlow's outputs: the fixture is sound
    producer = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(producer.run(None, {"input": X})[0], values, atol=TOLERANCE, rtol=TOLERANCE)
    model = _load(path)
    assert all(node.op_type != "LayerNormalization" for node in onnx.load(str(path)).graph.node)
    norms = [layer for layer in model.layers if layer.kind == "layer_norm"]
    found = [(np.float32(n.epsilon), n.scale is not None, n.offset is not None) for n in norms]
    assert found == [(np.float32(e), g, b) for e, g, b in EXPECTED_LAYER_NORMS[name]]
    assert all(n.axis == -1 for n in norms)
    # nnconvert's ONNX with the native LayerNormalization node (opset 17), batch N and batch 1
    ours = tmp_path / "ours17.onnx"
    nnconvert.save(model, ours, format="onnx", opset=17)
    assert sum(node.op_type == "LayerNormalization" for node in onnx.load(str(ours)).graph.node) == len(norms)
    session = ort.InferenceSession(str(ours), providers=["CPUExecutionProvider"])
    output = 1 if model.head.is_classifier else 0
    batch = session.run(None, {"X": X})[output]
    single = np.vstack([session.run(None, {"X": X[i : i + 1]})[output] for i in range(len(X))])
    for predicted in (batch, single):
        np.testing.assert_allclose(predicted, values, atol=TOLERANCE, rtol=TOLERANCE)
        np.testing.assert_array_equal(predicted.argmax(axis=1), values.argmax(axis=1))


def test_gamma_and_beta_are_the_keras_weights() -> None:
    """The affine part is taken from the constants tf2onnx wrote for gamma and beta, whichever form."""
    compared = 0
    for name, gamma_suffix, beta_suffix in (("ln_fused", "/mul/ReadVariableOp:0", "/add/ReadVariableOp:0"),
                                            ("ln_moments", "/batchnorm/mul/ReadVariableOp:0", "/batchnorm/ReadVariableOp:0")):
        path, _, _ = _fixture(13, name)
        weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
        for layer in (layer for layer in _load(path).layers if layer.kind == "layer_norm"):
            keras_name = "/".join(layer.name.split("/")[:2])  # "<model>/<layer>" of tf2onnx's node names
            for vector, suffix in ((layer.scale, gamma_suffix), (layer.offset, beta_suffix)):
                if vector is not None:
                    np.testing.assert_array_equal(vector, weights[keras_name + suffix])
                    compared += 1
    assert compared == 2 + 4  # ln_fused: beta of 'center', gamma of 'scale'; ln_moments: 2 + 1 + 1


@pytest.mark.parametrize("name", ["ln_fused", "ln_moments"])
def test_keras_h5_written_from_tf2onnx_loads_in_keras_3(name: str, tmp_path: Path) -> None:
    """Keras' own LayerNormalization (center/scale as read) in Keras 3 gives TensorFlow's outputs."""
    keras = pytest.importorskip("keras")
    path, X, values = _fixture(17, name)
    model = _load(path)
    h5 = tmp_path / f"{name}.h5"
    nnconvert.save(model, h5, format="keras-h5")  # tf2onnx's node names hold '/', which Keras refuses
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keras_model = keras.models.load_model(h5, compile=False)
    norms = [layer for layer in keras_model.layers if layer.__class__.__name__ == "LayerNormalization"]
    assert [(layer.scale, layer.center) for layer in norms] == [(g, b) for _, g, b in EXPECTED_LAYER_NORMS[name]]
    predicted = keras.ops.convert_to_numpy(keras_model(X))
    np.testing.assert_allclose(predicted, values, atol=TOLERANCE, rtol=TOLERANCE)


# -- graphs one node away from tf2onnx's -------------------------------------------------------------


def _node(model: onnx.ModelProto, name: str) -> onnx.NodeProto:
    return next(node for node in model.graph.node if node.name == name)


def _own_input(model: onnx.ModelProto, node_name: str, position: int, value: np.ndarray) -> None:
    """Give one node its own constant input (tf2onnx shares equal constants between nodes)."""
    tensor = numpy_helper.from_array(value, f"mutated_{node_name}_{position}")
    model.graph.initializer.append(tensor)
    _node(model, node_name).input[position] = tensor.name


def _set_attribute(model: onnx.ModelProto, node_name: str, key: str, value: object) -> None:
    node = _node(model, node_name)
    kept = [a for a in node.attribute if a.name != key]
    del node.attribute[:]
    node.attribute.extend([*kept, helper.make_attribute(key, value)])


def _first_of(model: onnx.ModelProto, op: str, after: str = "") -> str:
    """The name of the first ``op`` node whose name starts with ``after``."""
    return next(node.name for node in model.graph.node if node.op_type == op and node.name.startswith(after))


def _mean_over_batch_and_features(model: onnx.ModelProto) -> str:
    name = _first_of(model, "ReduceMean")  # fused form, opset 13: axes [0, 2, 3] as an attribute
    _set_attribute(model, name, "axes", [0, 1, 3])
    return name


def _reshape_to_one_channel(model: onnx.ModelProto) -> str:
    name = _first_of(model, "Reshape", "ln_fused/plain/Reshape")  # the batch and the features in one group
    _own_input(model, name, 1, np.array([1, 1, -1, 1], dtype=np.int64))
    return name


def _batch_norm_scale_of_twos(model: onnx.ModelProto) -> str:
    name = "ln_fused/plain/ones"
    _own_input(model, name, 0, np.array(2.0, dtype=np.float32))
    return name


def _variance_over_the_batch_size(model: onnx.ModelProto) -> str:
    name = _first_of(model, "Gather")  # counts dimensions [0, 1, 3]: divides by N instead of the features
    _own_input(model, name, 1, np.array([0, 1, 3], dtype=np.int64))
    return name


def _moments_over_the_batch(model: onnx.ModelProto) -> str:
    name = "ln_moments/affine/moments/mean"
    _set_attribute(model, name, "axes", [0])
    return name


def _epsilon_per_feature(model: onnx.ModelProto) -> str:
    name = "ln_moments/affine/batchnorm/add"
    _own_input(model, name, 1, np.full(6, 1e-5, dtype=np.float32))
    return name


def _beta_minus_swapped(model: onnx.ModelProto) -> str:
    name = "ln_moments/affine/batchnorm/sub"
    node = _node(model, name)
    node.input[0], node.input[1] = node.input[1], node.input[0]
    return name


def _square_root_not_inverted(model: onnx.ModelProto) -> str:
    _node(model, _first_of(model, "Reciprocal", "ln_moments/affine/")).op_type = "Neg"
    return _first_of(model, "Sqrt", "ln_moments/affine/")  # its reader is no longer a Reciprocal


def _count_over_sum_of_squares(model: onnx.ModelProto) -> str:
    node = _node(model, name := _first_of(model, "Div"))
    node.input[0], node.input[1] = node.input[1], node.input[0]
    return name


def _gamma_of_three(model: onnx.ModelProto) -> str:
    name = "ln_moments/affine/batchnorm/mul"
    _own_input(model, name, 1, np.ones(3, dtype=np.float32))
    return name


def _whole_batch_as_one_channel(model: onnx.ModelProto) -> str:
    name = "ln_fused/plain/Reshape"  # fixed batch of 3: [1, 1, 18, 1] normalises all 3 rows together
    _own_input(model, name, 1, np.array([1, 1, 18, 1], dtype=np.int64))
    return name


def _batch_norm_offset_of_a_half(model: onnx.ModelProto) -> str:
    name = "ln_fused/plain/FusedBatchNormV3"
    _own_input(model, name, 2, np.array([0.0, 0.5, 0.0], dtype=np.float32))
    return name


def _reshaped_back_transposed(model: onnx.ModelProto) -> str:
    name = "ln_fused/plain/Reshape_1"
    _own_input(model, name, 1, np.array([6, 3], dtype=np.int64))
    return name


MUTATIONS: dict[str, tuple[str, Callable[[onnx.ModelProto], str], str]] = {
    "mean over batch and features": ("ln_fused", _mean_over_batch_and_features, "over axes [0, 1, 3]"),
    "reshape to one channel": ("ln_fused", _reshape_to_one_channel, "not [1, N, 6, 1]"),
    "batch norm scale of twos": ("ln_fused", _batch_norm_scale_of_twos, "scale must be 1"),
    "variance over the batch size": ("ln_fused", _variance_over_the_batch_size, "does not pick dimensions [0, 2, 3]"),
    "count / sum of squares": ("ln_fused", _count_over_sum_of_squares, "does not divide the sum of squares"),
    "gamma of three": ("ln_moments", _gamma_of_three, "gamma has shape [3]"),
    "fixed batch: whole batch as one channel": ("ln_batch3", _whole_batch_as_one_channel, "not [1, N, 6, 1]"),
    "fixed batch: offset of a half": ("ln_batch3", _batch_norm_offset_of_a_half, "offset must be 0 for each of the 3"),
    "fixed batch: reshaped back transposed": ("ln_batch3", _reshaped_back_transposed, "not the input's [3, 6]"),
    "moments over the batch": ("ln_moments", _moments_over_the_batch, "over axes [0]"),
    "epsilon per feature": ("ln_moments", _epsilon_per_feature, "epsilon is one number"),
    "mean * m - beta": ("ln_moments", _beta_minus_swapped, "does not compute beta - mean * m"),
    "no reciprocal": ("ln_moments", _square_root_not_inverted, "read by ['Neg']"),
}


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_a_graph_one_node_away_is_refused_naming_the_node(case: str, tmp_path: Path) -> None:
    name, mutate, reason = MUTATIONS[case]
    model = onnx.load(str(_fixture(13, name)[0]))
    node_name = mutate(model)
    path = tmp_path / "near_miss.onnx"
    onnx.save(model, str(path))
    with pytest.raises(UnsupportedModelError) as info:
        nnconvert.load(path)
    problems = [p for p in str(info.value).splitlines() if f"node {node_name!r}" in p]
    assert problems and reason in problems[0] and "not read as tf2onnx's LayerNormalization" in problems[0], str(info.value)


def test_the_cli_refuses_a_near_miss_with_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = onnx.load(str(_fixture(13, "ln_moments")[0]))
    node_name = _moments_over_the_batch(model)
    path = tmp_path / "near_miss.onnx"
    onnx.save(model, str(path))
    assert main(["convert", str(path), str(tmp_path / "out.json")]) == 3
    err = capsys.readouterr().err
    assert f"ReduceMean node {node_name!r}" in err and "Traceback" not in err
    assert not (tmp_path / "out.json").exists()


# -- every one-node change to one layer norm of each form: refused, or read as onnxruntime runs it ------------

_OTHER_OP = {"Add": "Sub", "Sub": "Add", "Mul": "Div", "Div": "Mul", "ReduceMean": "ReduceSum", "ReduceSumSquare": "ReduceL2",
             "Sqrt": "Reciprocal", "Reciprocal": "Neg", "Neg": "Reciprocal", "ReduceProd": "ReduceSum", "Squeeze": "Unsqueeze",
             "Unsqueeze": "Squeeze", "Cast": "Identity", "Expand": "Add", "Gather": "Add", "Slice": "Identity", "Shape": "Identity",
             "BatchNormalization": "InstanceNormalization", "Reshape": "Expand"}


def _swap_operands(node: onnx.NodeProto, model: onnx.ModelProto) -> None:
    node.input[0], node.input[1] = node.input[1], node.input[0]


def _drop_last_input(node: onnx.NodeProto, model: onnx.ModelProto) -> None:
    node.input.pop()


def _other_op(node: onnx.NodeProto, model: onnx.ModelProto) -> None:
    node.op_type = _OTHER_OP[node.op_type]


def _other_attribute(key: str) -> Callable[[onnx.NodeProto, onnx.ModelProto], None]:
    def edit(node: onnx.NodeProto, model: onnx.ModelProto) -> None:
        attr = next(a for a in node.attribute if a.name == key)
        if attr.type == onnx.AttributeProto.INTS:
            attr.ints[0] = 1 if attr.ints[0] != 1 else 2
        elif attr.type == onnx.AttributeProto.INT:
            attr.i = 1 - attr.i if attr.i in (0, 1) else attr.i + 1
        else:
            attr.f *= 3
    return edit


def _other_constant(position: int, value: np.ndarray) -> Callable[[onnx.NodeProto, onnx.ModelProto], None]:
    changed = value + 1 if value.dtype.kind in "iu" else value * 1.5 + 0.25
    return lambda node, model: _own_input(model, node.name, position, changed.astype(value.dtype))


def _one_node_changes(model: onnx.ModelProto, first: str, last: str) -> list[tuple[str, onnx.ModelProto]]:
    """Swapped operands, a dropped input, another op, a changed constant or attribute, for each node from
    ``first`` to ``last`` (one layer norm)."""
    names = [node.name for node in model.graph.node]
    initializers = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    changes = []
    for k in range(names.index(first), names.index(last) + 1):
        node = model.graph.node[k]
        edits: list[tuple[str, Callable[[onnx.NodeProto, onnx.ModelProto], None]]] = []
        if len(node.input) >= 2:
            edits += [("swapped operands", _swap_operands), ("dropped last input", _drop_last_input)]
        if node.op_type in _OTHER_OP:
            edits.append(("other op", _other_op))
        edits += [(f"constant {j}", _other_constant(j, initializers[name])) for j, name in enumerate(node.input) if name in initializers]
        edits += [(f"attribute {a.name}", _other_attribute(a.name)) for a in node.attribute if a.type in (1, 2, 7)]  # FLOAT, INT, INTS
        for what, edit in edits:
            mutant = onnx.ModelProto()
            mutant.CopyFrom(model)
            edit(mutant.graph.node[k], mutant)
            changes.append((f"{what} of {names[k]}", mutant))
    return changes


@pytest.mark.parametrize(("name", "first", "last"), [
    ("ln_fused", "ln_fused/plain/Shape", "ln_fused/plain/Reshape_1"),
    ("ln_batch3", "ln_fused/plain/Reshape", "ln_fused/plain/Reshape_1"),
    ("ln_moments", "ln_moments/affine/moments/mean", "ln_moments/affine/batchnorm/add_1"),
])
def test_no_one_node_change_is_read_as_anything_but_what_it_computes(name: str, first: str, last: str, tmp_path: Path) -> None:
    ort.set_default_logger_severity(4)
    path, X, _ = _fixture(13, name)
    changes = _one_node_changes(onnx.load(str(path)), first, last)
    assert len(changes) > 30
    read = 0
    for what, mutant in changes:
        mutant_path = tmp_path / "mutant.onnx"
        mutant_path.write_bytes(mutant.SerializeToString())
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = nnconvert.load(mutant_path)
        except nnconvert.errors.NnconvertError:
            continue
        # read: then onnxruntime must run the mutant and agree with it
        session = ort.InferenceSession(str(mutant_path), providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(model.forward(X), session.run(None, {"input": X})[0], atol=TOLERANCE, rtol=TOLERANCE, err_msg=what)
        read += 1
    assert read < len(changes) / 2  # most changes break the pattern and are refused


@pytest.mark.parametrize("opset", [13, 18])
def test_a_fixed_batch_file_is_verified_in_blocks_of_its_batch(opset: int) -> None:
    # exported for exactly 3 rows: onnxruntime refuses any other count, so verify runs it 3 rows at a time
    from nnconvert.verify.onnx.runners import OnnxRuntimeRunner

    path, X, expected = _fixture(opset, "ln_batch3")
    runner = OnnxRuntimeRunner(path)
    assert runner.fixed_batch == 3
    seven = np.concatenate([X, X, X[:1]])
    np.testing.assert_allclose(runner.run(seven)["values"], np.concatenate([expected, expected, expected[:1]]), rtol=0, atol=TOLERANCE)
    report = nnconvert.verify(path, _load(path), n_samples=100)
    assert report.passed, report.summary()
