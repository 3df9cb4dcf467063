"""Regenerate the foreign ONNX fixtures in tests/fixtures/onnx/.

Each ``NAME.onnx`` is written by a real producer (skl2onnx, torch.onnx's
TorchScript and dynamo exporters) or, for tf2onnx whose TensorFlow is not
available here, built with onnx.helper the way tf2onnx lays a Keras model out.
Next to it, ``NAME.npz`` holds the inputs ``X`` and what the producer itself
computed: scikit-learn's ``predict``/``predict_proba`` (``label``/``proba``)
or ``predict`` (``values``), torch's module outputs (``values``), numpy's
evaluation of the hand-built graph (``values``). The tests compare nnconvert's
reading of each file against those.

Run from the repository root: ``python tests/make_onnx_fixtures.py``.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "fixtures" / "onnx"
sys.path.insert(0, str(HERE))


def _save(name: str, model_bytes: bytes, **arrays: np.ndarray) -> None:
    (OUT / f"{name}.onnx").write_bytes(model_bytes)
    np.savez_compressed(OUT / f"{name}.npz", **arrays)


# -- skl2onnx ------------------------------------------------------------------------


def _skl2onnx(variant_id: str, *, double: bool, zipmap: bool | None) -> tuple[bytes, np.ndarray, object]:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
    from sklearn_variants import get_variant

    variant = get_variant(variant_id)
    estimator = variant.estimator
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    tensor_type = DoubleTensorType if double else FloatTensorType
    options = None if zipmap is None else {id(final): {"zipmap": zipmap}}
    onx = convert_sklearn(
        estimator,
        initial_types=[("X", tensor_type([None, variant.X_test.shape[1]]))],
        options=options,
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    X = variant.X_test.astype(np.float64 if double else np.float32)[:20]
    return onx.SerializeToString(), X, estimator


def make_sklearn() -> None:
    cases = [
        # name, variant, double, zipmap
        ("skl_iris_zipmap", "iris-10", False, True),
        ("skl_iris_str_nozipmap", "iris-labels-str", False, False),
        ("skl_binary_int_double", "binary-int", True, False),
        ("skl_binary_str_zipmap", "binary-str", False, True),
        ("skl_multilabel", "multilabel", False, False),
        ("skl_pipeline_standard_float", "pipeline-standard", False, False),
        ("skl_pipeline_standard_double", "pipeline-standard", True, False),
    ]
    for name, variant_id, double, zipmap in cases:
        data, X, estimator = _skl2onnx(variant_id, double=double, zipmap=zipmap)
        # the producer's own outputs: scikit-learn on the same (float64) values
        X64 = X.astype(np.float64)
        _save(name, data, X=X, label=estimator.predict(X64), proba=estimator.predict_proba(X64))
    # skl2onnx 1.20 reshapes a multi-output regressor's [N, k] to [N * k, 1]: the reader must refuse that file
    for name, variant_id, double in [
        ("skl_regressor1_float", "regression-1", False),
        ("skl_regressor1_double", "regression-1", True),
        ("skl_regressor3_double", "regression-3", True),
    ]:
        data, X, estimator = _skl2onnx(variant_id, double=double, zipmap=None)
        _save(name, data, X=X, values=estimator.predict(X.astype(np.float64)))


# -- torch ---------------------------------------------------------------------------


def _torch_mlp():
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3), torch.nn.Softmax(dim=1)
    )
    return net.eval()


def _torch_activations():
    import torch

    torch.manual_seed(1)
    layers = [
        torch.nn.Linear(5, 8), torch.nn.GELU(),
        torch.nn.Linear(8, 8), torch.nn.SiLU(),
        torch.nn.Linear(8, 6), torch.nn.LeakyReLU(0.1),
        torch.nn.Linear(6, 6), torch.nn.GELU(approximate="tanh"),
        torch.nn.Linear(6, 6), torch.nn.ELU(),
        torch.nn.Linear(6, 6), torch.nn.Tanh(),
        torch.nn.Linear(6, 4), torch.nn.Sigmoid(),
    ]
    return torch.nn.Sequential(*layers).eval()


def _torch_cnn():
    import torch

    torch.manual_seed(2)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(2 * 3 * 3, 3)
    )
    return net.eval()


def _export(net, X: np.ndarray, *, dynamo: bool, opset: int) -> bytes:
    import torch

    x = torch.from_numpy(X)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        if dynamo:
            program = torch.onnx.export(
                net, (x,), dynamo=True, opset_version=opset,
                input_names=["input"], output_names=["output"],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
            )
            program.save(buffer)
        else:
            torch.onnx.export(
                net, (x,), buffer, dynamo=False, opset_version=opset,
                input_names=["input"], output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            )
    return buffer.getvalue()


def make_torch() -> None:
    import torch

    rng = np.random.default_rng(0)
    for name, net, n_in, opset, dynamo in [
        ("torch_ts_mlp", _torch_mlp(), 4, 17, False),
        ("torch_dynamo_mlp", _torch_mlp(), 4, 18, True),
        ("torch_ts_activations", _torch_activations(), 5, 17, False),  # gelu/silu as elementwise compositions
        ("torch_dynamo_activations", _torch_activations(), 5, 20, True),  # Gelu as one node
    ]:
        X = rng.normal(size=(16, n_in)).astype(np.float32)
        with torch.no_grad():
            values = net(torch.from_numpy(X)).numpy()
        _save(name, _export(net, X, dynamo=dynamo, opset=opset), X=X, values=values)
    X = rng.normal(size=(2, 1, 8, 8)).astype(np.float32)
    (OUT / "torch_cnn.onnx").write_bytes(_export(_torch_cnn(), X, dynamo=False, opset=17))


# -- torch: the layer vocabulary of format 1.1 (issue 10) ------------------------------


def _with_running_stats(net, n_in: int):
    """Batch norms with non-trivial running statistics (a few training-mode passes), then eval mode."""
    import torch

    net.train()
    with torch.no_grad():
        for _ in range(5):
            net(torch.randn(64, n_in) * 2 + 0.5)
    return net.eval()


def _torch_vocabulary_nets():
    """(name, net, n_in): BatchNorm1d, LayerNorm, PReLU, ReLU6, Hardtanh, Hardswish, Mish, Softplus, Softsign, LogSoftmax."""
    import torch

    nn = torch.nn
    torch.manual_seed(10)
    norms = nn.Sequential(
        nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(),
        nn.Linear(8, 8), nn.ReLU6(), nn.BatchNorm1d(8),
        nn.Linear(8, 6), nn.LayerNorm(6), nn.PReLU(6),
        nn.Linear(6, 3), nn.LogSoftmax(dim=1),
    )
    torch.manual_seed(11)
    smooth = nn.Sequential(
        nn.Linear(5, 8), nn.Hardswish(),
        nn.Linear(8, 8), nn.Mish(),
        nn.Linear(8, 8), nn.Softplus(beta=2.0, threshold=5.0),
        nn.Linear(8, 8), nn.Hardtanh(-0.5, 2.0),
        nn.Linear(8, 6), nn.Softsign(),
        nn.Linear(6, 6), nn.Softplus(),
        nn.Linear(6, 6), nn.LayerNorm(6, elementwise_affine=False), nn.PReLU(),
        nn.Linear(6, 2),
    )
    # equal biases: the TorchScript exporter keeps one initializer and Identity()s the others
    torch.manual_seed(12)
    shared = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 2))
    with torch.no_grad():
        shared[0].bias.fill_(0.25)
        shared[2].bias.fill_(0.25)
    return [("norms", _with_running_stats(norms, 5), 5), ("smooth", smooth.eval(), 5), ("shared", shared.eval(), 4)]


def make_sklearn_options() -> None:
    """skl2onnx's input types and output options: int64 and boolean inputs, zipmap="columns", output_class_labels."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import BooleanTensorType, FloatTensorType, Int64TensorType
    from sklearn_variants import get_variant

    estimator = get_variant("iris-10").estimator
    X = get_variant("iris-10").X_test[:20]
    inputs = {
        "int64": (Int64TensorType, np.rint(X * 2).astype(np.int64)),
        "bool": (BooleanTensorType, X > X.mean(axis=0)),
        "float": (FloatTensorType, X.astype(np.float32)),
    }
    for name, input_kind, options in [
        ("skl_input_int64", "int64", None),
        ("skl_input_bool", "bool", None),
        ("skl_zipmap_columns", "float", {"zipmap": "columns"}),
        ("skl_class_labels", "float", {"zipmap": False, "output_class_labels": True}),
    ]:
        tensor_type, X_case = inputs[input_kind]
        onx = convert_sklearn(
            estimator,
            initial_types=[("X", tensor_type([None, X.shape[1]]))],
            options=None if options is None else {id(estimator): options},
            target_opset={"": 17, "ai.onnx.ml": 3},
        )
        X64 = X_case.astype(np.float64)
        _save(name, onx.SerializeToString(), X=X_case, label=estimator.predict(X64), proba=estimator.predict_proba(X64))


def make_torch_vocabulary() -> None:
    import torch

    rng = np.random.default_rng(10)
    for net_name, net, n_in in _torch_vocabulary_nets():
        X = (rng.normal(size=(32, n_in)) * 2).astype(np.float32)
        with torch.no_grad():
            values = net(torch.from_numpy(X)).numpy()
        for exporter, opset in [("ts", 11), ("ts", 13), ("ts", 17), ("dynamo", 18)]:
            data = _export(net, X, dynamo=exporter == "dynamo", opset=opset)
            _save(f"torch_{exporter}{opset}_{net_name}", data, X=X, values=values)


# -- tf2onnx-style (Keras Sequential) --------------------------------------------------


def make_tf2onnx_style() -> None:
    """A Keras Dense(6, relu) -> Dense(3, softmax) laid out as tf2onnx writes it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    w1, b1 = rng.normal(size=(5, 6)).astype(np.float32), rng.normal(size=6).astype(np.float32)
    w2, b2 = rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    prefix = "sequential/dense"
    inits = [
        numpy_helper.from_array(w1, f"{prefix}/MatMul/ReadVariableOp:0"),
        numpy_helper.from_array(b1, f"{prefix}/BiasAdd/ReadVariableOp:0"),
        numpy_helper.from_array(w2, f"{prefix}_1/MatMul/ReadVariableOp:0"),
        numpy_helper.from_array(b2, f"{prefix}_1/BiasAdd/ReadVariableOp:0"),
    ]
    nodes = [
        helper.make_node("MatMul", ["input_1", inits[0].name], [f"{prefix}/MatMul:0"], name=f"{prefix}/MatMul"),
        helper.make_node("Add", [f"{prefix}/MatMul:0", inits[1].name], [f"{prefix}/BiasAdd:0"], name=f"{prefix}/BiasAdd"),
        helper.make_node("Relu", [f"{prefix}/BiasAdd:0"], [f"{prefix}/Relu:0"], name=f"{prefix}/Relu"),
        helper.make_node("MatMul", [f"{prefix}/Relu:0", inits[2].name], [f"{prefix}_1/MatMul:0"], name=f"{prefix}_1/MatMul"),
        helper.make_node("Add", [f"{prefix}_1/MatMul:0", inits[3].name], [f"{prefix}_1/BiasAdd:0"], name=f"{prefix}_1/BiasAdd"),
        helper.make_node("Softmax", [f"{prefix}_1/BiasAdd:0"], [f"{prefix}_1/Softmax:0"], name=f"{prefix}_1/Softmax", axis=-1),
        helper.make_node("Identity", [f"{prefix}_1/Softmax:0"], ["dense_1"], name="Identity"),
    ]
    graph = helper.make_graph(
        nodes,
        "tf2onnx",
        [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["unk__6", 5])],
        [helper.make_tensor_value_info("dense_1", TensorProto.FLOAT, ["unk__7", 3])],
        initializer=inits,
    )
    model = helper.make_model(graph, producer_name="tf2onnx", producer_version="1.16.1", opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model, full_check=True)
    X = rng.normal(size=(16, 5)).astype(np.float32)
    hidden = np.maximum(X @ w1 + b1, 0)
    logits = hidden @ w2 + b2
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    _save("tf2onnx_keras_mlp", model.SerializeToString(), X=X, values=exp / exp.sum(axis=1, keepdims=True))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    if sys.argv[1:] == ["vocabulary"]:  # only the issue-10 fixtures
        make_torch_vocabulary()
        make_sklearn_options()
        return
    os.environ.setdefault("PYTHONHASHSEED", "0")
    make_sklearn()
    make_torch()
    make_torch_vocabulary()
    make_sklearn_options()
    make_tf2onnx_style()
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(list(OUT.iterdir()))} files, {total / 1024:.1f} KiB, in {OUT}")


if __name__ == "__main__":
    main()
