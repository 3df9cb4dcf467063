"""The layer kinds of the model graph.

Every layer is a frozen dataclass with a ``kind`` (one of :data:`LAYER_KINDS`),
a ``name``, its arrays (named by ``ARRAYS``, ``None`` for an absent optional
one) and its scalar settings (:meth:`settings`). Validation against the width
of the previous stage happens in :func:`validated_layer`; the numpy forward
pass of each kind is its ``apply``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ._activations import Activation, apply_activation, validated_activation_params
from .errors import InvalidModelError

if TYPE_CHECKING:
    from .quantization import QuantizedWeights

__all__ = [
    "LAYER_KINDS",
    "DenseLayer",
    "BatchNormLayer",
    "LayerNormLayer",
    "ActivationLayer",
    "PReLULayer",
    "Layer",
    "FLOAT_DTYPES",
    "validated_layer",
]

FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))

# Every kind of layer the graph holds, in the order documented in docs/formats.md.
LAYER_KINDS = ("dense", "batch_norm", "layer_norm", "activation", "prelu")


def frozen_array(values: Any, what: str) -> np.ndarray:
    """A read-only view (no copy when ``values`` is already an ndarray)."""
    array = np.asarray(values)
    if array.dtype == object:
        raise InvalidModelError(f"{what}: expected a numeric array, got objects")
    view = array.view()
    view.flags.writeable = False
    return view


def check_float_array(array: np.ndarray, what: str) -> None:
    if array.dtype not in FLOAT_DTYPES:
        raise InvalidModelError(f"{what}: expected a floating-point array, got dtype {array.dtype}")
    if not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0].tolist()
        raise InvalidModelError(f"{what}: non-finite value {array[tuple(bad)]} at index {bad}")


@dataclass(frozen=True, eq=False)
class DenseLayer:
    """``activation(x @ weights + bias)`` with ``weights`` of shape ``(n_in, n_out)``."""

    weights: np.ndarray
    bias: np.ndarray
    activation: Activation = Activation.IDENTITY
    name: str = ""
    activation_params: Mapping[str, Any] = field(default_factory=dict)
    # int8 weights (nnconvert.quantization); ``weights`` then holds their exact float32 dequantization
    quantization: QuantizedWeights | None = None

    kind: ClassVar[str] = "dense"
    ARRAYS: ClassVar[tuple[str, ...]] = ("weights", "bias")

    @property
    def n_inputs(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_outputs(self) -> int:
        return int(self.weights.shape[1])

    @property
    def dtype(self) -> np.dtype:
        return self.weights.dtype

    def settings(self) -> dict[str, Any]:
        return {"activation": self.activation.value, "activation_params": dict(self.activation_params)}

    def apply(self, x: np.ndarray) -> np.ndarray:
        y = x @ self.weights if self.quantization is None else self.quantization.matmul(x)
        y += self.bias
        apply_activation(y, self.activation, self.activation_params)
        return y


@dataclass(frozen=True, eq=False)
class BatchNormLayer:
    """Inference batch normalization, per unit: ``(x - mean) / sqrt(variance + epsilon) * scale + offset``.

    ``scale`` (gamma) and ``offset`` (beta) are None when the producer had none
    (Keras ``scale=False`` / ``center=False``).
    """

    mean: np.ndarray
    variance: np.ndarray
    epsilon: float = 1e-3
    scale: np.ndarray | None = None
    offset: np.ndarray | None = None
    name: str = ""

    kind: ClassVar[str] = "batch_norm"
    ARRAYS: ClassVar[tuple[str, ...]] = ("mean", "variance", "scale", "offset")
    activation: ClassVar[Activation] = Activation.IDENTITY
    activation_params: ClassVar[Mapping[str, Any]] = MappingProxyType({})

    @property
    def dtype(self) -> np.dtype:
        return self.mean.dtype

    def settings(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon}

    def multiplier_and_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """``(m, s)`` with ``layer(x) = x * m + s``, computed as Keras does."""
        multiplier = np.reciprocal(np.sqrt(self.variance + self.dtype.type(self.epsilon)))
        if self.scale is not None:
            multiplier = multiplier * self.scale
        shift = -self.mean * multiplier
        if self.offset is not None:
            shift = shift + self.offset
        return multiplier, shift

    def apply(self, x: np.ndarray) -> np.ndarray:
        multiplier, shift = self.multiplier_and_shift()
        return x * multiplier + shift


@dataclass(frozen=True, eq=False)
class LayerNormLayer:
    """Layer normalization over the features of each sample (``axis`` -1, the only axis of a feature vector).

    ``mean`` and the biased variance are taken over the features; then
    ``(x - mean) / sqrt(variance + epsilon) * scale + offset``, ``scale`` and
    ``offset`` optional (None when the producer had no affine part).
    """

    epsilon: float = 1e-3
    scale: np.ndarray | None = None
    offset: np.ndarray | None = None
    axis: int = -1
    name: str = ""

    kind: ClassVar[str] = "layer_norm"
    ARRAYS: ClassVar[tuple[str, ...]] = ("scale", "offset")
    activation: ClassVar[Activation] = Activation.IDENTITY
    activation_params: ClassVar[Mapping[str, Any]] = MappingProxyType({})

    def settings(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "axis": self.axis}

    def apply(self, x: np.ndarray) -> np.ndarray:
        mean = x.mean(axis=-1, keepdims=True)
        variance = np.square(x - mean).mean(axis=-1, keepdims=True)
        multiplier = np.reciprocal(np.sqrt(variance + x.dtype.type(self.epsilon)))
        if self.scale is not None:
            multiplier = multiplier * self.scale
        shift = -mean * multiplier
        if self.offset is not None:
            shift = shift + self.offset
        return x * multiplier + shift


@dataclass(frozen=True, eq=False)
class ActivationLayer:
    """An activation on its own (Keras ``Activation``/``ReLU``/``LeakyReLU`` layers, an ONNX activation node
    that does not follow a dense layer directly)."""

    activation: Activation
    activation_params: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""

    kind: ClassVar[str] = "activation"
    ARRAYS: ClassVar[tuple[str, ...]] = ()

    def settings(self) -> dict[str, Any]:
        return {"activation": self.activation.value, "activation_params": dict(self.activation_params)}

    def apply(self, x: np.ndarray) -> np.ndarray:
        y = x.copy()
        apply_activation(y, self.activation, self.activation_params)
        return y


@dataclass(frozen=True, eq=False)
class PReLULayer:
    """``x`` where ``x >= 0``, else ``slopes * x``: one learned slope per unit."""

    slopes: np.ndarray
    name: str = ""

    kind: ClassVar[str] = "prelu"
    ARRAYS: ClassVar[tuple[str, ...]] = ("slopes",)
    activation: ClassVar[Activation] = Activation.PRELU
    activation_params: ClassVar[Mapping[str, Any]] = MappingProxyType({})

    @property
    def dtype(self) -> np.dtype:
        return self.slopes.dtype

    def settings(self) -> dict[str, Any]:
        return {}

    def apply(self, x: np.ndarray) -> np.ndarray:
        return np.where(x >= 0, x, x * self.slopes)


Layer = DenseLayer | BatchNormLayer | LayerNormLayer | ActivationLayer | PReLULayer


def describe(layer: Layer, index: int) -> str:
    """``layer 3 ('bn') (batch_norm)`` for messages."""
    return f"layer {index} ({layer.name!r}, {layer.kind})" if layer.name else f"layer {index} ({layer.kind})"


def layer_arrays(layer: Layer) -> dict[str, np.ndarray | None]:
    """The layer's arrays by field name (None for an absent optional one)."""
    return {name: getattr(layer, name) for name in layer.ARRAYS}


def validated_layer(layer: Any, where: str, width: int) -> Layer:
    """``layer`` with read-only arrays, checked against the ``width`` of the previous stage."""
    if isinstance(layer, DenseLayer):
        return _validated_dense(layer, where, width)
    if not isinstance(layer, (BatchNormLayer, LayerNormLayer, ActivationLayer, PReLULayer)):
        raise InvalidModelError(f"{where}: not a layer of the model graph ({type(layer).__name__}); kinds are {LAYER_KINDS}")
    arrays = {}
    for name, values in layer_arrays(layer).items():
        if values is None:
            if name in ("mean", "variance", "slopes"):
                raise InvalidModelError(f"{where}: {layer.kind} needs {name}")
            continue
        array = frozen_array(values, f"{where} {name}")
        check_float_array(array, f"{where} {name}")
        if array.shape != (width,):
            raise InvalidModelError(f"{where}: {name} has shape {array.shape}, expected ({width},), one per unit")
        arrays[name] = array
    dtypes = {a.dtype for a in arrays.values()}
    if len(dtypes) > 1:
        raise InvalidModelError(f"{where}: arrays mix dtypes {sorted(str(d) for d in dtypes)}")
    layer = replace(layer, **arrays)  # type: ignore[arg-type]
    if isinstance(layer, (BatchNormLayer, LayerNormLayer)):
        return _validated_norm(layer, where)
    if isinstance(layer, ActivationLayer):
        activation = _activation(layer.activation, where)
        params = validated_activation_params(activation, layer.activation_params, where)
        return replace(layer, activation=activation, activation_params=params)
    return layer


def _validated_norm(layer: BatchNormLayer | LayerNormLayer, where: str) -> Layer:
    epsilon = layer.epsilon
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.floating)) or not math.isfinite(epsilon) or epsilon < 0:
        raise InvalidModelError(f"{where}: epsilon must be a finite number >= 0, got {epsilon!r}")
    layer = replace(layer, epsilon=float(epsilon))
    if isinstance(layer, LayerNormLayer):
        if isinstance(layer.axis, bool) or layer.axis not in (-1, 1):
            raise InvalidModelError(f"{where}: layer normalization over axis {layer.axis!r}; only the feature axis (-1) is supported")
        return replace(layer, axis=-1)
    if (layer.variance < 0).any():
        raise InvalidModelError(f"{where}: a running variance is negative")
    return layer


def _activation(value: Any, where: str) -> Activation:
    try:
        activation = Activation(value)
    except ValueError:
        raise InvalidModelError(
            f"{where}: unknown activation {value!r}; expected one of {[a.value for a in Activation]}"
        ) from None
    if activation == Activation.PRELU:
        raise InvalidModelError(f"{where}: prelu has one slope per unit: it is a prelu layer, not an activation of another layer")
    return activation


def _validated_dense(layer: DenseLayer, where: str, n_in: int) -> DenseLayer:
    if layer.quantization is not None:
        n_out = np.shape(layer.bias)[0] if np.ndim(layer.bias) == 1 else -1
        quantization = layer.quantization.validate(where, n_in, n_out)
        # the float weights are derived, never stored beside the int8 ones: they cannot disagree
        layer = replace(layer, weights=quantization.dequantized(), quantization=quantization)
    weights = frozen_array(layer.weights, f"{where} weights")
    bias = frozen_array(layer.bias, f"{where} bias")
    if weights.ndim != 2:
        raise InvalidModelError(f"{where}: weights must be 2-D (n_in, n_out), got shape {weights.shape}")
    if weights.shape[0] != n_in:
        raise InvalidModelError(
            f"{where}: weights have {weights.shape[0]} input rows but the previous stage gives {n_in} values "
            f"(weights shape {weights.shape}, expected ({n_in}, n_out))"
        )
    if bias.shape != (weights.shape[1],):
        raise InvalidModelError(
            f"{where}: bias has shape {bias.shape}, expected ({weights.shape[1]},) to match {weights.shape[1]} outputs"
        )
    check_float_array(weights, f"{where} weights")
    check_float_array(bias, f"{where} bias")
    if bias.dtype != weights.dtype:
        raise InvalidModelError(f"{where}: bias is {bias.dtype} but weights are {weights.dtype}")
    activation = _activation(layer.activation, where)
    params = validated_activation_params(activation, layer.activation_params, where)
    return replace(layer, weights=weights, bias=bias, activation=activation, activation_params=params)
