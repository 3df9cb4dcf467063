"""Format 1.1's layers and activations as ONNX nodes: the native op where the opset (and onnxruntime, for
float64) has it, an exact elementwise decomposition otherwise."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ... import array_keys
from ...ir import (
    Activation,
    ActivationLayer,
    BatchNormLayer,
    DenseLayer,
    Layer,
    LayerNormLayer,
    Model,
    PReLULayer,
    layer_names,
)
from ._write_layers import ACTIVATION_MIN_OPSET, GraphBuilder, _clip, _softplus, activation_1_0

_LAYER_NORM_OPSET = 17
_MISH_OPSET = 18
_HARDSWISH_OPSET = 14


def dense(b: GraphBuilder, x: str, layer: DenseLayer, index: int, linear: str) -> str:
    """The dense layer's nodes, then its activation's."""
    prefix = array_keys.layer_prefix(index)
    weights = b.initializer(array_keys.layer_array(index, "weights"), layer.weights)
    bias = b.initializer(array_keys.layer_array(index, "bias"), layer.bias)
    if linear == "gemm":
        y = b.node("Gemm", [x, weights, bias], prefix)
    else:
        y = b.node("Add", [b.node("MatMul", [x, weights], prefix), bias], prefix)
    return activation_nodes(b, y, layer.activation, layer.activation_params, prefix)


def activation_nodes(b: GraphBuilder, x: str, activation: Activation, params: Mapping[str, Any], prefix: str) -> str:
    """The nodes of ``activation`` applied to ``x``; returns the output's name."""
    if activation in KIND_ACTIVATIONS and (params or activation not in (Activation.RELU, Activation.SOFTPLUS)):
        return KIND_ACTIVATIONS[activation](b, x, params, prefix, b.dtype == np.float32)
    return activation_1_0(b, x, activation, params, prefix)


def unsupported_layers(model: Model, opset: int) -> list[str]:
    """Every layer whose activation cannot be written at ``opset`` (empty when all can)."""
    names = layer_names(model.layers)
    problems = []
    for i, layer in enumerate(model.layers):
        first = ACTIVATION_MIN_OPSET.get(layer.activation)
        if layer.activation_params and layer.activation in (Activation.RELU, Activation.SOFTPLUS):
            first = KIND_ACTIVATION_MIN_OPSET[layer.activation]
        if first is None:
            continue  # prelu: a layer of its own
        if first > opset:
            problems.append(f"layer {i} ({names[i]!r}): activation {layer.activation.value} needs opset {first} or newer")
    return problems


def layer_nodes(b: GraphBuilder, x: str, layer: Layer, index: int, linear: str, width: int) -> str:
    """The nodes of one layer of any kind; returns the output's name."""
    prefix = array_keys.layer_prefix(index)
    if isinstance(layer, DenseLayer):
        return dense(b, x, layer, index, linear)
    if isinstance(layer, BatchNormLayer):
        return batch_norm(b, x, layer, prefix)
    if isinstance(layer, LayerNormLayer):
        return layer_norm(b, x, layer, prefix, width)
    if isinstance(layer, PReLULayer):
        return prelu(b, x, layer, prefix)
    assert isinstance(layer, ActivationLayer)
    return activation_nodes(b, x, layer.activation, layer.activation_params, prefix)


def batch_norm(b: GraphBuilder, x: str, layer: BatchNormLayer, prefix: str) -> str:
    n = layer.mean.shape[0]
    scale = layer.scale if layer.scale is not None else np.ones(n, layer.mean.dtype)
    offset = layer.offset if layer.offset is not None else np.zeros(n, layer.mean.dtype)
    inputs = [
        x,
        b.initializer(f"{prefix}/scale", scale),
        b.initializer(f"{prefix}/offset", offset),
        b.initializer(f"{prefix}/mean", layer.mean),
        b.initializer(f"{prefix}/variance", layer.variance),
    ]
    return b.node("BatchNormalization", inputs, prefix, epsilon=layer.epsilon)


def layer_norm(b: GraphBuilder, x: str, layer: LayerNormLayer, prefix: str, width: int) -> str:
    if b.opset >= _LAYER_NORM_OPSET and b.dtype == np.float32:
        scale = layer.scale if layer.scale is not None else np.ones(width, b.dtype)
        inputs = [x, b.initializer(f"{prefix}/scale", scale)]
        if layer.offset is not None:
            inputs.append(b.initializer(f"{prefix}/offset", layer.offset))
        return b.node("LayerNormalization", inputs, prefix, axis=-1, epsilon=layer.epsilon)
    # the decomposition torch exports below opset 17 (ReduceMean's axes are an attribute until 18)
    def mean(t: str) -> str:
        if b.opset >= 18:
            axes = b.initializer(f"{prefix}/axes", np.array([-1], dtype=np.int64), cast=False)
            return b.node("ReduceMean", [t, axes], prefix, keepdims=1)
        return b.node("ReduceMean", [t], prefix, axes=[-1], keepdims=1)

    centred = b.node("Sub", [x, mean(x)], prefix)
    variance = mean(b.node("Mul", [centred, centred], prefix))
    std = b.node("Sqrt", [b.node("Add", [variance, b.scalar(f"{prefix}/epsilon", layer.epsilon)], prefix)], prefix)
    y = b.node("Div", [centred, std], prefix)
    if layer.scale is not None:
        y = b.node("Mul", [y, b.initializer(f"{prefix}/scale", layer.scale)], prefix)
    if layer.offset is not None:
        y = b.node("Add", [y, b.initializer(f"{prefix}/offset", layer.offset)], prefix)
    return y


def prelu(b: GraphBuilder, x: str, layer: PReLULayer, prefix: str) -> str:
    slopes = b.initializer(f"{prefix}/slopes", layer.slopes)
    if b.dtype == np.float32:
        return b.node("PRelu", [x, slopes], prefix)
    zero = b.scalar(f"{prefix}/zero", 0.0)
    negative = b.node("Mul", [b.node("Min", [x, zero], prefix), slopes], prefix)
    return b.node("Add", [b.node("Max", [x, zero], prefix), negative], prefix)


def _bounded(b: GraphBuilder, x: str, low: float | None, high: float | None, prefix: str) -> str:
    if low is not None and high is not None:
        return _clip(b, x, low, high, prefix)
    if low is not None:
        x = b.node("Max", [x, b.scalar(f"{prefix}/min", low)], prefix)
    if high is not None:
        x = b.node("Min", [x, b.scalar(f"{prefix}/max", high)], prefix)
    return x


def _relu(b: GraphBuilder, x: str, params: Mapping[str, Any], prefix: str, native: bool) -> str:
    # Keras' relu(x, negative_slope, max_value, threshold), step for step
    slope, threshold = params.get("negative_slope", 0.0), params.get("threshold", 0.0)
    if set(params) == {"max_value"}:  # relu6 and the like: one Clip, as torch writes ReLU6
        return _bounded(b, x, 0.0, params["max_value"], prefix)
    if threshold:
        above = b.node("Greater", [x, b.scalar(f"{prefix}/threshold", threshold)], prefix)
        y = b.node("Where", [above, x, b.scalar(f"{prefix}/zero", 0.0)], prefix)
    else:
        y = b.node("Relu", [x], prefix)
    if "max_value" in params:
        y = _bounded(b, y, 0.0, params["max_value"], prefix)
    if slope:
        below = b.node("Relu", [b.node("Sub", [b.scalar(f"{prefix}/threshold", threshold), x], prefix)], prefix)
        y = b.node("Sub", [y, b.node("Mul", [b.scalar(f"{prefix}/slope", slope), below], prefix)], prefix)
    return y


def _clip_activation(b: GraphBuilder, x: str, params: Mapping[str, Any], prefix: str, native: bool) -> str:
    return _bounded(b, x, params.get("min"), params.get("max"), prefix)


def _softplus_params(b: GraphBuilder, x: str, params: Mapping[str, Any], prefix: str, native: bool) -> str:
    if not params:
        return _softplus(b, x, params, prefix, native)
    # torch: softplus(beta x) / beta, x itself where beta x > threshold
    beta = params.get("beta", 1.0)
    scaled = b.node("Mul", [x, b.scalar(f"{prefix}/beta", beta)], prefix)
    y = b.node("Div", [_softplus(b, scaled, {}, prefix, native), b.scalar(f"{prefix}/beta", beta)], prefix)
    if "threshold" in params:
        above = b.node("Greater", [scaled, b.scalar(f"{prefix}/threshold", params["threshold"])], prefix)
        y = b.node("Where", [above, x, y], prefix)
    return y


def _softsign(b: GraphBuilder, x: str, params: Mapping[str, Any], prefix: str, native: bool) -> str:
    if native:
        return b.node("Softsign", [x], prefix)
    denominator = b.node("Add", [b.scalar(f"{prefix}/one", 1.0), b.node("Abs", [x], prefix)], prefix)
    return b.node("Div", [x, denominator], prefix)


def _hardswish(b: GraphBuilder, x: str, params: Mapping[str, Any], prefix: str, native: bool) -> str:
    if native and b.opset >= _HARDSWISH_OPSET:
        return b.node("HardSwish", [x], prefix)
    # torch: x * relu6(x + 3) / 6
    shifted = b.node("Add", [x, b.scalar(f"{prefix}/three", 3.0)], prefix)
    relu6 = _bounded(b, shifted, 0.0, 6.0, prefix)
    return b.node("Div", [b.node("Mul", [x, relu6], prefix), b.scalar(f"{prefix}/six", 6.0)], prefix)


def _mish(b: GraphBuilder, x: str, params: Mapping[str, Any], prefix: str, native: bool) -> str:
    if native and b.opset >= _MISH_OPSET:
        return b.node("Mish", [x], prefix)
    return b.node("Mul", [x, b.node("Tanh", [_softplus(b, x, {}, prefix, native)], prefix)], prefix)


def _log_softmax(b: GraphBuilder, x: str, params: Mapping[str, Any], prefix: str, native: bool) -> str:
    return b.node("LogSoftmax", [x], prefix, axis=1)


KIND_ACTIVATIONS: dict[Activation, Callable[..., str]] = {
    Activation.RELU: _relu,
    Activation.CLIP: _clip_activation,
    Activation.SOFTPLUS: _softplus_params,
    Activation.SOFTSIGN: _softsign,
    Activation.HARDSWISH: _hardswish,
    Activation.MISH: _mish,
    Activation.LOG_SOFTMAX: _log_softmax,
}
# the first opset of each (Where and Greater on floats: 9)
KIND_ACTIVATION_MIN_OPSET = {a: 9 for a in KIND_ACTIVATIONS}
