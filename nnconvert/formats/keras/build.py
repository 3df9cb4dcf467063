"""The IR from a parsed Keras config and its weights, whatever container held them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InvalidModelError, ReadError, UnsupportedModelError
from ...ir import Activation, DenseLayer, ElementwiseOp, InputSpec, Metadata, Model, PreprocessStep
from .config import (
    ACTIVATION_LAYERS,
    KERAS_EPSILON,
    PREPROCESSING_LAYERS,
    SUPPORTED_LAYERS,
    Layer,
    activation_from_name,
    activation_layer,
    is_number,
)
from .head import choose_head


@dataclass
class Source:
    """Everything a container gives the shared model builder."""

    path: Path
    format: str
    model_class: str
    model_name: str
    layers: list[Layer]
    weights: Callable[[Layer], list[tuple[str, np.ndarray]]]  # (role, array) in saved order
    keras_version: str | None = None
    backend: str | None = None
    stored_head: Mapping[str, Any] | None = None
    properties: dict[str, str] = field(default_factory=dict)

    def error(self, message: str) -> ReadError:
        return ReadError(message, path=self.path, format=self.format)


@dataclass
class _Builder:
    """Walks the layer list once, collecting IR pieces and every unsupported layer."""

    source: Source
    steps: list[PreprocessStep] = field(default_factory=list)
    dense: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    input_name: str = "X"
    n_features: int | None = None

    def run(self) -> None:
        for index, layer in enumerate(self.source.layers):
            if layer.class_name not in SUPPORTED_LAYERS:
                self.problems.append(f"{layer.class_name} layer {layer.name!r} (layer {index}) is not supported")
                continue
            self._layer(index, layer)
        if not self.dense and not self.problems:
            self.problems.append("the model has no Dense layer")

    def _layer(self, index: int, layer: Layer) -> None:
        where = f"{layer.class_name} layer {layer.name!r} (layer {index})"
        if layer.class_name == "InputLayer":
            self._input(layer, where)
        elif layer.class_name == "Dense":
            self._dense(layer, where)
        elif layer.class_name in ACTIVATION_LAYERS:
            self._fold_activation(layer, where)
        elif layer.class_name in PREPROCESSING_LAYERS:
            if self.dense:
                self.problems.append(f"{where} comes after a Dense layer; preprocessing is read only before the first one")
            elif layer.class_name == "Normalization":
                self._normalization(layer, where)
            else:
                self._rescaling(layer, where)
        # the _NOOP_LAYERS (dropout, noise) do nothing at inference

    def _input(self, layer: Layer, where: str) -> None:
        shape = layer.config.get("batch_shape", layer.config.get("batch_input_shape"))
        if not (isinstance(shape, list) and len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 0):
            self.problems.append(f"{where} has input shape {shape!r}; only flat feature vectors [None, n] are supported")
            return
        self.input_name = layer.name
        self.n_features = shape[1]

    def _dense(self, layer: Layer, where: str) -> None:
        config = layer.config
        activation = activation_from_name(config.get("activation"), self.source.keras_version)
        if activation is None:
            self.problems.append(f"{where} uses activation {config.get('activation')!r}, which has no IR equivalent")
            return
        if config.get("lora_rank") or (config.get("quantization_config") not in (None, {})):
            self.problems.append(f"{where} is LoRA-adapted or quantized")
            return
        if self.n_features is None and not self.dense:
            shape = config.get("batch_input_shape", config.get("batch_shape"))
            if isinstance(shape, list) and len(shape) == 2 and isinstance(shape[1], int):
                self.n_features = shape[1]
        weights = self.source.weights(layer)
        kernel, bias = _dense_arrays(weights, config, self.source, where)
        self.dense.append({"name": layer.name, "weights": kernel, "bias": bias, "activation": activation[0],
                           "activation_params": activation[1]})

    def _fold_activation(self, layer: Layer, where: str) -> None:
        found = activation_layer(layer, self.source.keras_version)
        if isinstance(found, str):
            self.problems.append(f"{where}: {found} has no IR equivalent")
            return
        if found[0] == Activation.IDENTITY:
            return
        if not self.dense:
            self.problems.append(f"{where} comes before any Dense layer")
            return
        last = self.dense[-1]
        if last["activation"] != Activation.IDENTITY:
            self.problems.append(
                f"{where} follows Dense layer {last['name']!r}, which already applies {last['activation'].value}"
            )
            return
        last["activation"], last["activation_params"] = found

    def _normalization(self, layer: Layer, where: str) -> None:
        config = layer.config
        if config.get("invert"):
            self.problems.append(f"{where} is an inverted Normalization")
            return
        if config.get("axis", -1) not in (-1, 1, [-1], [1]):
            self.problems.append(f"{where} normalises over axis {config.get('axis')!r}; only the feature axis is supported")
            return
        mean, variance = _normalization_arrays(layer, self.source, where)
        # Keras 3: (x - mean) / maximum(sqrt(variance), epsilon), in the layer's dtype
        dtype = mean.dtype
        denominator = np.maximum(np.sqrt(variance), dtype.type(KERAS_EPSILON))
        ops = (ElementwiseOp("sub", mean), ElementwiseOp("div", denominator))
        self.steps.append(PreprocessStep("normalization", ops, name=layer.name, params={"epsilon": KERAS_EPSILON}))

    def _rescaling(self, layer: Layer, where: str) -> None:
        scale, offset = layer.config.get("scale", 1.0), layer.config.get("offset", 0.0)
        scale_operand, offset_operand = _plain_operand(scale), _plain_operand(offset)
        if scale_operand is None or offset_operand is None:
            self.problems.append(f"{where} has scale {scale!r} and offset {offset!r}; expected numbers or lists of numbers")
            return
        ops = (ElementwiseOp("mul", scale_operand), ElementwiseOp("add", offset_operand))
        self.steps.append(PreprocessStep("rescaling", ops, name=layer.name))


def _plain_operand(value: Any) -> np.ndarray | None:
    if is_number(value):
        return np.asarray(value, dtype=np.float32)
    if isinstance(value, list) and value and all(is_number(v) for v in value):
        return np.asarray(value, dtype=np.float32)
    return None


def _by_role(weights: list[tuple[str, np.ndarray]], roles: Sequence[str]) -> list[np.ndarray | None] | None:
    """The arrays named ``roles`` (None for a role not saved) when every saved weight has a recognised name, else None."""
    found = dict(weights)
    if len(found) == len(weights) and set(found) <= set(roles):
        return [found.get(role) for role in roles]
    return None


def _dense_arrays(weights: list[tuple[str, np.ndarray]], config: Mapping[str, Any], source: Source, where: str):
    use_bias = config.get("use_bias", True) is not False
    expected = 2 if use_bias else 1
    if len(weights) != expected:
        raise source.error(f"{where} has {len(weights)} saved weights, expected {expected} (kernel{', bias' if use_bias else ''})")
    named = _by_role(weights, ("kernel", "bias"))
    named_kernel = named[0] if named is not None else None
    if named is not None and named_kernel is not None:
        kernel, bias = named_kernel, named[1]
    else:  # by position: the kernel, then the bias if saved
        kernel, bias = weights[0][1], (weights[1][1] if len(weights) > 1 else None)
    if kernel.ndim != 2:
        raise source.error(f"{where}: the kernel has shape {kernel.shape}, expected (n_inputs, units)")
    units = config.get("units")
    if units is not None and (isinstance(units, bool) or not isinstance(units, int)):
        raise source.error(f"{where}: 'units' must be an integer, got {units!r:.40}")
    if isinstance(units, int) and kernel.shape[1] != units:
        raise source.error(f"{where}: the kernel has shape {kernel.shape} but the layer has {units} units")
    if bias is None:
        bias = np.zeros(kernel.shape[1], dtype=kernel.dtype)
    if bias.shape != (kernel.shape[1],):
        raise source.error(f"{where}: the bias has shape {bias.shape}, expected ({kernel.shape[1]},)")
    return kernel, bias.astype(kernel.dtype, copy=False)


def _normalization_arrays(layer: Layer, source: Source, where: str) -> tuple[np.ndarray, np.ndarray]:
    weights = source.weights(layer)
    if weights:
        named = _by_role(weights, ("mean", "variance", "count"))
        arrays: list[np.ndarray | None] = named if named is not None else [w for _, w in weights]
        found = (arrays[0], arrays[1]) if len(arrays) >= 2 else (None, None)
        missing = f"{where} has {len(weights)} saved weights, expected mean, variance and count"
    else:  # mean and variance given in the constructor are kept in the config
        found = (_plain_operand(layer.config.get("mean")), _plain_operand(layer.config.get("variance")))
        missing = f"{where} has neither saved weights nor mean/variance in its config (was it adapted?)"
    found_mean, found_variance = found
    if found_mean is None or found_variance is None:
        raise source.error(missing)
    mean, variance = np.asarray(found_mean).reshape(-1), np.asarray(found_variance).reshape(-1)
    if mean.shape != variance.shape or mean.dtype.kind != "f":
        raise source.error(f"{where}: mean {mean.shape} {mean.dtype} and variance {variance.shape} do not match")
    return mean, variance.astype(mean.dtype, copy=False)


def build_model(source: Source, task: Any, classes: Any) -> Model:
    builder = _Builder(source)
    builder.run()
    if builder.problems:
        raise UnsupportedModelError(
            f"{source.path}: the Keras model has layers nnconvert cannot read (it never runs code from the file)",
            builder.problems,
        )
    dtype = builder.dense[0]["weights"].dtype
    layers = [DenseLayer(**spec) for spec in builder.dense]
    steps = [_cast_step(step, dtype) for step in builder.steps]
    stored = source.stored_head or {}
    n_features = builder.n_features or layers[0].n_inputs
    feature_names = stored.get("feature_names") if isinstance(stored.get("feature_names"), list) else None
    try:
        head = choose_head(layers[-1], task, classes, stored)
        return Model(
            layers=tuple(layers),
            head=head,
            input=InputSpec(n_features, name=builder.input_name, feature_names=feature_names),
            steps=tuple(steps),
            metadata=_metadata(source),
        )
    except InvalidModelError as exc:
        raise source.error(f"the model is inconsistent: {exc}") from None


def _cast_step(step: PreprocessStep, dtype: np.dtype) -> PreprocessStep:
    ops = tuple(ElementwiseOp(op.op, op.operand.astype(dtype)) for op in step.ops)
    return PreprocessStep(step.kind, ops, name=step.name, params=step.params)


def _metadata(source: Source) -> Metadata:
    properties = dict(source.properties)
    properties["model_name"] = source.model_name
    if source.keras_version:
        properties["keras_version"] = source.keras_version
    if source.backend:
        properties["backend"] = source.backend
    stored_source_dtype = (source.stored_head or {}).get("source_dtype")  # written by nnconvert's writer
    return Metadata(
        producer="keras",
        source_framework="keras",
        source_class=source.model_class,
        source_version=source.keras_version,
        properties=properties,
        source_dtype=stored_source_dtype,
    )
