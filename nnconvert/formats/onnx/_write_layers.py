"""The graph's body as ONNX nodes: preprocessing, dense layers and activations (composed where onnxruntime lacks a kernel)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ... import array_keys
from ...ir import LAYER_KINDS, Activation, PreprocessStep


class GraphBuilder:
    """Accumulates nodes and initializers with unique, deterministic names."""

    def __init__(self, dtype: np.dtype, opset: int):
        from onnx import helper

        self.dtype = dtype
        self.elem_type = helper.np_dtype_to_tensor_dtype(dtype)
        self.opset = opset
        self.nodes: list[Any] = []
        self.initializers: list[tuple[str, np.ndarray, np.dtype]] = []
        self._names: set[str] = {"X"}

    def _unique(self, name: str) -> str:
        candidate, index = name, 1
        while candidate in self._names:
            candidate = f"{name}_{index}"
            index += 1
        self._names.add(candidate)
        return candidate

    def initializer(self, name: str, values: Any, *, cast: bool = True) -> str:
        """A constant; float arrays are stored in the graph's dtype unless ``cast`` is False.

        The array itself is kept as given (a view of the model's weights): the
        cast happens chunk by chunk while the file is written (:class:`Payload`).
        """
        array = np.asarray(values)
        if array.dtype.kind == "U":
            array = array.astype(object)
        dtype = array.dtype
        if array.dtype.kind == "f" and cast:
            dtype = self.dtype
            array = array.reshape(1) if array.ndim == 0 else array  # scalars are stored as [1], as ever
        name = self._unique(name)
        self.initializers.append((name, array, dtype))
        return name

    def scalar(self, name: str, value: float) -> str:
        return self.initializer(name, np.array(value, dtype=self.dtype))

    def node(self, op_type: str, inputs: list[str], prefix: str, *, domain: str = "", **attributes: Any) -> str:
        """Add one node; returns its (single) output's name."""
        from onnx import helper

        output = self._unique(f"{prefix}/{op_type}")
        self.nodes.append(
            helper.make_node(op_type, inputs, [output], name=output, domain=domain or None, **attributes)
        )
        return output

    def rename_output(self, old: str, new: str) -> None:
        """Give the last node's output a graph output's name (nothing consumes it yet)."""
        node = self.nodes[-1]
        if node.output[0] != old or new in self._names:
            raise AssertionError(f"cannot rename {old!r} to {new!r}")  # pragma: no cover - a writer bug
        node.output[0] = new
        self._names.add(new)


_ARITHMETIC = {"sub": "Sub", "div": "Div", "mul": "Mul", "add": "Add"}


def preprocess(b: GraphBuilder, x: str, step: PreprocessStep, index: int) -> str:
    for o, op in enumerate(step.ops):
        key = array_keys.step_operand(index, o)
        if op.op == "clip":
            x = _clip(b, x, float(op.operand[0]), float(op.operand[1]), key)
        else:
            operand = b.initializer(f"{key}/operand", op.operand)
            x = b.node(_ARITHMETIC[op.op], [x, operand], key)
    return x


def _clip(b: GraphBuilder, x: str, low: float, high: float, key: str) -> str:
    """np.clip(x, low, high) with the operators onnxruntime runs for this dtype and opset."""
    if b.dtype == np.float32 and b.opset < 11:
        return b.node("Clip", [x], key, min=low, max=high)
    if b.opset >= 13 or (b.dtype == np.float32 and b.opset >= 11):
        return b.node("Clip", [x, b.scalar(f"{key}/low", low), b.scalar(f"{key}/high", high)], key)
    # onnxruntime has no float64 Clip before opset 13 (and Clip-6's bounds are float32)
    lower = b.node("Max", [x, b.scalar(f"{key}/low", low)], key)
    return b.node("Min", [lower, b.scalar(f"{key}/high", high)], key)


def activation_1_0(b: GraphBuilder, x: str, activation: Activation, params: Mapping[str, Any], prefix: str) -> str:
    """The nodes of a format 1.0 activation applied to ``x``; returns the output's name."""
    if activation == Activation.IDENTITY:
        return x
    simple = {
        Activation.RELU: "Relu",
        Activation.TANH: "Tanh",
        Activation.LOGISTIC: "Sigmoid",
        Activation.EXP: "Exp",
    }
    if activation in simple:
        return b.node(simple[activation], [x], prefix)
    if activation == Activation.SOFTMAX:
        # opsets < 13 flatten to 2-D around the axis: the same thing for [N, k]
        return b.node("Softmax", [x], prefix, axis=1)
    native = b.dtype == np.float32  # onnxruntime lacks float64 kernels for the ones below
    return _COMPOSITE[activation](b, x, params, prefix, native)


def _leaky_relu(b: GraphBuilder, x: str, params: Mapping[str, Any], prefix: str, native: bool) -> str:
    if native:
        return b.node("LeakyRelu", [x], prefix, alpha=params["alpha"])
    zero = b.scalar(f"{prefix}/zero", 0.0)
    negative = b.node("Mul", [b.node("Min", [x, zero], prefix), b.scalar(f"{prefix}/alpha", params["alpha"])], prefix)
    return b.node("Add", [b.node("Max", [x, zero], prefix), negative], prefix)


def _elu_composed(b: GraphBuilder, x: str, alpha: float, prefix: str) -> str:
    # max(x, 0) + alpha * (exp(min(x, 0)) - 1): exactly x for x > 0, as the IR's where()
    zero = b.scalar(f"{prefix}/zero", 0.0)
    expm1 = b.node("Sub", [b.node("Exp", [b.node("Min", [x, zero], prefix)], prefix), b.scalar(f"{prefix}/one", 1.0)], prefix)
    negative = b.node("Mul", [b.scalar(f"{prefix}/alpha", alpha), expm1], prefix)
    return b.node("Add", [b.node("Max", [x, zero], prefix), negative], prefix)


def _elu(b: GraphBuilder, x: str, params: Mapping[str, Any], prefix: str, native: bool) -> str:
    if native:
        return b.node("Elu", [x], prefix, alpha=params["alpha"])
    return _elu_composed(b, x, params["alpha"], prefix)


def _selu(b: GraphBuilder, x: str, params: Mapping[str, Any], prefix: str, native: bool) -> str:
    if native:
        return b.node("Selu", [x], prefix, alpha=params["alpha"], gamma=params["gamma"])
    elu = _elu_composed(b, x, params["alpha"], prefix)
    return b.node("Mul", [b.scalar(f"{prefix}/gamma", params["gamma"]), elu], prefix)


def _softplus(b: GraphBuilder, x: str, params: Mapping[str, Any], prefix: str, native: bool) -> str:
    if native:
        return b.node("Softplus", [x], prefix)
    # max(x, 0) + log(1 + exp(-|x|)): no overflow, as numpy's logaddexp(x, 0)
    tail = b.node("Exp", [b.node("Neg", [b.node("Abs", [x], prefix)], prefix)], prefix)
    log = b.node("Log", [b.node("Add", [b.scalar(f"{prefix}/one", 1.0), tail], prefix)], prefix)
    return b.node("Add", [b.node("Max", [x, b.scalar(f"{prefix}/zero", 0.0)], prefix), log], prefix)


def _hard_sigmoid(b: GraphBuilder, x: str, params: Mapping[str, Any], prefix: str, native: bool) -> str:
    if native:
        return b.node("HardSigmoid", [x], prefix, alpha=params["alpha"], beta=params["beta"])
    scaled = b.node("Mul", [x, b.scalar(f"{prefix}/alpha", params["alpha"])], prefix)
    shifted = b.node("Add", [scaled, b.scalar(f"{prefix}/beta", params["beta"])], prefix)
    lower = b.node("Max", [shifted, b.scalar(f"{prefix}/zero", 0.0)], prefix)
    return b.node("Min", [lower, b.scalar(f"{prefix}/one", 1.0)], prefix)


def _silu(b: GraphBuilder, x: str, params: Mapping[str, Any], prefix: str, native: bool) -> str:
    return b.node("Mul", [x, b.node("Sigmoid", [x], prefix)], prefix)


def _gelu(b: GraphBuilder, x: str, params: Mapping[str, Any], prefix: str, native: bool) -> str:
    approximate = params["approximate"]
    if b.opset >= 20 and native:  # onnxruntime's float64 Gelu is computed less precisely
        return b.node("Gelu", [x], prefix, approximate=approximate)
    half_x = b.node("Mul", [b.scalar(f"{prefix}/half", 0.5), x], prefix)
    if approximate == "tanh":
        cube = b.node("Mul", [x, b.node("Mul", [x, x], prefix)], prefix)
        inner = b.node("Add", [x, b.node("Mul", [b.scalar(f"{prefix}/coef", 0.044715), cube], prefix)], prefix)
        inner = b.node("Mul", [b.scalar(f"{prefix}/sqrt_2_over_pi", math.sqrt(2 / math.pi)), inner], prefix)
        core = b.node("Tanh", [inner], prefix)
    else:
        core = b.node("Erf", [b.node("Div", [x, b.scalar(f"{prefix}/sqrt2", math.sqrt(2))], prefix)], prefix)
    return b.node("Mul", [half_x, b.node("Add", [b.scalar(f"{prefix}/one", 1.0), core], prefix)], prefix)


_COMPOSITE: dict[Activation, Callable[..., str]] = {
    Activation.LEAKY_RELU: _leaky_relu,
    Activation.ELU: _elu,
    Activation.SELU: _selu,
    Activation.SOFTPLUS: _softplus,
    Activation.HARD_SIGMOID: _hard_sigmoid,
    Activation.SILU: _silu,
    Activation.GELU: _gelu,
}
# The first ai.onnx opset where each activation (or everything composing it) exists.
ACTIVATION_MIN_OPSET = {activation: 6 for activation in _COMPOSITE} | {
    Activation.GELU: 9,
    Activation.IDENTITY: 1,
    Activation.RELU: 6,
    Activation.TANH: 6,
    Activation.LOGISTIC: 6,
    Activation.EXP: 6,
    Activation.SOFTMAX: 6,
    Activation.CLIP: 6,
    Activation.SOFTSIGN: 6,
    Activation.HARDSWISH: 6,
    Activation.MISH: 6,
    Activation.LOG_SOFTMAX: 6,
}
# The layer kinds the writer turns into nodes.
ONNX_LAYER_KINDS = LAYER_KINDS
