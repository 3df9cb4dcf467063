"""torch modules in and out: from_torch / to_torch, and every target back against torch itself.

The reference is always the torch module's own forward pass (or scikit-learn's
predictions for scikit-learn sources), never numbers of ours.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn_variants import get_variant, variant_ids
from torch_targets import TARGETS, as_outputs, through

import nnconvert
from nnconvert.errors import UnsupportedModelError, UsageError

torch = pytest.importorskip("torch")
nn = torch.nn


class PlainChain(nn.Module):
    """A hand-written module whose forward is a chain of its submodules."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(5, 8)
        self.act = nn.Tanh()
        self.fc2 = nn.Linear(8, 3)
        self.unused = nn.Conv1d(1, 1, 1)  # never called: not part of the network
        self.head = nn.Softmax(dim=1)

    def forward(self, x: Any) -> Any:
        return self.head(self.fc2(self.act(self.fc1(x))))


class FunctionalRelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x: Any) -> Any:
        return torch.relu(self.fc(x))


def _between(activation: Any, head: Any = None) -> Any:
    return nn.Sequential(nn.Linear(5, 8), activation, nn.Linear(8, 3), head or nn.Softmax(dim=1))


# one network per supported submodule
NETWORKS = {
    "relu": lambda: _between(nn.ReLU()),
    "leaky_relu": lambda: _between(nn.LeakyReLU(0.2)),
    "elu": lambda: _between(nn.ELU(0.7)),
    "selu": lambda: _between(nn.SELU()),
    "gelu": lambda: _between(nn.GELU()),
    "gelu_tanh": lambda: _between(nn.GELU(approximate="tanh")),
    "silu": lambda: _between(nn.SiLU()),
    "tanh": lambda: _between(nn.Tanh()),
    "sigmoid": lambda: _between(nn.Sigmoid()),
    "softplus": lambda: _between(nn.Softplus()),
    "hardsigmoid": lambda: _between(nn.Hardsigmoid()),
    "relu6": lambda: _between(nn.ReLU6()),
    "hardtanh": lambda: _between(nn.Hardtanh(-0.5, 2.0)),
    "hardswish": lambda: _between(nn.Hardswish()),
    "mish": lambda: _between(nn.Mish()),
    "softsign": lambda: _between(nn.Softsign()),
    "softplus_beta": lambda: _between(nn.Softplus(beta=2.0, threshold=5.0)),
    "prelu": lambda: _between(nn.PReLU(8)),
    "batch_norm": lambda: _with_statistics(nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3), nn.Softmax(dim=1))),
    "layer_norm": lambda: nn.Sequential(nn.Linear(5, 8), nn.LayerNorm(8), nn.GELU(), nn.Linear(8, 3), nn.LogSoftmax(dim=1)),
    "log_softmax": lambda: _between(nn.ReLU(), nn.LogSoftmax(dim=1)),
    "sigmoid_head": lambda: nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1), nn.Sigmoid()),
    "linear_no_bias": lambda: nn.Sequential(nn.Linear(5, 8, bias=False), nn.ReLU(), nn.Linear(8, 3, bias=False)),
    "dropout_flatten_identity": lambda: nn.Sequential(
        nn.Flatten(), nn.Linear(5, 8), nn.Dropout(0.3), nn.ReLU(), nn.Identity(), nn.Linear(8, 1), nn.Sigmoid()
    ),
    "nested_sequential": lambda: nn.Sequential(nn.Sequential(nn.Linear(5, 8), nn.ReLU()), nn.Sequential(nn.Linear(8, 3))),
    "plain_chain": PlainChain,
}
# what Keras 3 has no layer for (nnconvert refuses rather than change the function)
KERAS_REFUSES = {"gelu_tanh": "gelu", "hardtanh": "clip", "softplus_beta": "softplus"}
ONNX_REFUSES: set[str] = set()


def _with_statistics(net: Any) -> Any:
    """Running statistics that are not the identity (a freshly built BatchNorm1d has mean 0, variance 1)."""
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm1d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return net


def _network(name: str, dtype: Any = torch.float32) -> Any:
    torch.manual_seed(0)
    return NETWORKS[name]().to(dtype).eval()


def _inputs(n_features: int = 5, dtype: Any = np.float32) -> np.ndarray:
    return (np.random.default_rng(1).normal(size=(64, n_features)) * 2).astype(dtype)


def _torch_forward(module: Any, X: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(X)).numpy()


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_from_torch_computes_what_torch_computes(name: str) -> None:
    net = _network(name)
    model = nnconvert.from_torch(net)
    X = _inputs()
    np.testing.assert_allclose(model.forward(X), _torch_forward(net, X), rtol=0, atol=1e-6)
    assert model.dtype == np.float32


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_torch_model_through_every_target_predicts_like_torch(name: str, target: str, tmp_path: Path) -> None:
    net = _network(name)
    model = nnconvert.from_torch(net)
    refused = KERAS_REFUSES.get(name) if target == "keras" else None
    if target == "onnx" and name in ONNX_REFUSES:
        refused = ""
    if refused is not None:
        # an honest refusal naming the layer, and no file; never a changed function
        path = tmp_path / f"m.{target}"
        try:
            nnconvert.save(model, path, format=target)
        except UnsupportedModelError as exc:
            assert refused in str(exc) and "layer" in str(exc)
            assert not path.exists()
            return
        pytest.fail(f"the {target} writer now writes {name}: move it out of the refusal list")
    run, restored = through(model, target, tmp_path)
    X = _inputs()
    expected = _torch_forward(net, X)
    if target == "onnx" and model.output_activation.value == "log_softmax":
        expected = np.exp(expected)  # an ONNX classifier's output_probability holds probabilities
    np.testing.assert_allclose(as_outputs(run(X), model), expected, rtol=1e-5, atol=1e-5)
    assert restored is not None
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))
    if target in ("safetensors", "torch-file"):
        assert restored.equals(model)


# scikit-learn -> ONNX for every variant is tests/test_onnx_write.py's, -> .keras tests/test_keras_archive_write.py's
@pytest.mark.parametrize("target", ["torch-module", "safetensors", "torch-file"])
@pytest.mark.parametrize("variant_id", variant_ids())
def test_sklearn_variant_through_torch_targets_predicts_like_sklearn(variant_id: str, target: str, tmp_path: Path) -> None:
    variant = get_variant(variant_id)
    model = nnconvert.from_sklearn(variant.estimator)
    run, restored = through(model, target, tmp_path)
    X = variant.X_test
    got = as_outputs(run(X), model)
    if variant.kind == "classifier":
        expected = variant.estimator.predict_proba(X)
        expected = expected[:, 1:] if model.n_outputs == 1 and expected.shape[1] == 2 else expected
    else:
        expected = variant.estimator.predict(X).reshape(len(X), -1)
    if target in ("safetensors", "torch-file"):  # lossless: bit-identical to scikit-learn's own numbers
        assert restored is not None and restored.equals(model)
        np.testing.assert_array_equal(restored.predict(X), variant.estimator.predict(X))
        return
    tolerance = 1e-5 * max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=tolerance)
    assert restored is not None
    np.testing.assert_array_equal(restored.predict(X), variant.estimator.predict(X))


def test_float64_to_torch_agrees_to_the_last_bits() -> None:
    # torch's Linear is one addmm: BLAS may sum in another order than numpy's x @ W + b, so equal up to
    # rounding (a few ulps); relu and the scalers' arithmetic are the same IEEE operations
    for variant_id in ("regression-1", "pipeline-maxabs", "regression-3", "pipeline-standard"):
        variant = get_variant(variant_id)
        model = nnconvert.from_sklearn(variant.estimator)
        got = _torch_forward(nnconvert.to_torch(model), variant.X_test)
        np.testing.assert_allclose(got, model.forward(variant.X_test), rtol=4e-15, atol=1e-15)


def test_float64_single_linear_layer_is_bit_identical() -> None:
    net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).double().eval()
    X = _inputs(dtype=np.float64)
    model = nnconvert.from_torch(net)
    np.testing.assert_array_equal(_torch_forward(nnconvert.to_torch(model), X), _torch_forward(net, X))


def test_float32_to_torch_within_1e_6() -> None:
    model = nnconvert.from_sklearn(get_variant("iris-float32").estimator)
    X = get_variant("iris-float32").X_test
    module = nnconvert.to_torch(model)
    assert next(module.parameters()).dtype == torch.float32
    np.testing.assert_allclose(_torch_forward(module, X), model.forward(X), rtol=0, atol=1e-6)


def test_to_torch_looks_hand_written_and_keeps_the_head() -> None:
    variant = get_variant("iris-labels-str")
    module = nnconvert.to_torch(nnconvert.from_sklearn(variant.estimator))
    by_hand = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3), nn.Softmax(dim=-1))
    assert list(module.state_dict()) == list(by_hand.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert all(type(m).__module__.startswith("torch.nn.modules") for m in module)
    assert module.task == "multiclass"
    np.testing.assert_array_equal(module.classes, variant.estimator.classes_)
    assert not module.training
    # the attributes come back: from_torch keeps the labels
    np.testing.assert_array_equal(nnconvert.from_torch(module).predict(variant.X_test), variant.estimator.predict(variant.X_test))


def test_preprocessing_is_a_module_of_its_own() -> None:
    variant = get_variant("pipeline-minmax-clip")
    module = nnconvert.to_torch(nnconvert.from_sklearn(variant.estimator))
    assert type(module[0]).__name__ == "Preprocessing"
    assert list(module.state_dict())[:3] == ["0.op0", "0.op1", "0.op2"]
    np.testing.assert_array_equal(module.classes, variant.estimator.classes_)
    np.testing.assert_allclose(_torch_forward(module, variant.X_test), variant.estimator.predict_proba(variant.X_test), rtol=0, atol=1e-12)


def test_every_unsupported_submodule_is_named_by_path() -> None:
    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = nn.Sequential(nn.Linear(5, 8), nn.LSTM(8, 8))

        def forward(self, x: Any) -> Any:
            return self.block(x)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = Encoder()
            self.net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), FunctionalRelu(), nn.Conv1d(1, 1, 1))

        def forward(self, x: Any) -> Any:
            return self.net(self.encoder(x))

    with pytest.raises(UnsupportedModelError) as caught:
        nnconvert.from_torch(Net())
    problems = caught.value.problems
    assert [p.split(" ")[0] for p in problems] == ["encoder.block.1", "net.2", "net.3"]
    assert "LSTM" in problems[0] and "call_function 'relu'" in problems[1] and "Conv1d" in problems[2]


def test_forward_that_is_not_a_chain_is_refused() -> None:
    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: Any) -> Any:
            return x + self.fc(x)

    with pytest.raises(UnsupportedModelError, match=r"\(root\) \(Residual\)"):
        nnconvert.from_torch(Residual())
    with pytest.raises(UnsupportedModelError, match=r"1 \(Softmax\): Softmax over dim 0"):
        nnconvert.from_torch(nn.Sequential(nn.Linear(3, 3), nn.Softmax(dim=0)))
    with pytest.raises(UnsupportedModelError, match=r"0 \(BatchNorm1d\): no running statistics"):
        nnconvert.from_torch(nn.Sequential(nn.BatchNorm1d(3, track_running_stats=False), nn.Linear(3, 3)))
    # an activation after another is a layer of its own
    stacked = nnconvert.from_torch(nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Tanh()))
    assert [layer.kind for layer in stacked.layers] == ["dense", "activation"]
    with pytest.raises(UsageError, match="torch.nn.Module"):
        nnconvert.from_torch("not a module")


def test_task_and_classes_options() -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid())
    assert nnconvert.from_torch(net).task.value == "raw"
    multilabel = nnconvert.from_torch(net, task="multilabel", classes=["a", "b", "c", "d"])
    assert multilabel.task.value == "multilabel"
    binary = nnconvert.from_torch(nn.Sequential(nn.Linear(3, 1), nn.Sigmoid()), classes=["no", "yes"])
    assert binary.task.value == "binary" and binary.classes.tolist() == ["no", "yes"]
    with pytest.raises(UsageError, match="needs 4 class labels"):
        nnconvert.from_torch(net, task="multilabel", classes=["a"])


def test_verify_runs_a_torch_module_against_our_files(tmp_path: Path) -> None:
    net = _network("relu")
    model = nnconvert.from_torch(net)
    for suffix in (".pt", ".safetensors", ".keras", ".onnx"):
        path = tmp_path / f"m{suffix}"
        nnconvert.save(model, path)
        report = nnconvert.verify(net, path, n_samples=200)
        assert report.passed, report.summary()
        assert {o["name"] for o in report.to_dict()["outputs"]} == {"probabilities", "labels"}
