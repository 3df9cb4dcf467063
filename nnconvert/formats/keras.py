"""Keras' model files: full-model HDF5 (tf.keras 2 and Keras 3) and Keras 3 ``.keras`` zips.

Two formats:

- ``keras-h5`` (``.h5``): read and write. Root attributes ``model_config``
  (JSON), ``keras_version`` and ``backend``; weights under
  ``model_weights/<layer>/`` at the paths listed by each layer group's
  ``weight_names`` attribute (``<layer>/kernel:0`` for tf.keras 2,
  ``<model>/<layer>/kernel`` for Keras 3). The files written load with Keras
  3's ``keras.models.load_model``.
- ``keras`` (``.keras``): read only. A zip of ``config.json``,
  ``metadata.json`` and ``model.weights.h5`` (weights at
  ``layers/<path>/vars/<i>``, each ``vars`` group naming its layer).

Keras is never imported: configs are parsed with :mod:`json` as plain data and
only a fixed list of layer classes is understood, so nothing from the file is
deserialised or executed. Anything else (Lambda, custom classes, branching
graphs) is refused with one error listing every offending layer.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ..errors import InvalidModelError, NnconvertError, ReadError, UnsupportedModelError, UsageError
from ..ir import (
    ACTIVATION_DEFAULTS,
    Activation,
    DenseLayer,
    ElementwiseOp,
    Head,
    InputSpec,
    Metadata,
    Model,
    PreprocessStep,
    Task,
)
from ..registry import FormatSpec, register
from ..serde import recorded_source_dtype
from .hdf5 import has_signature, outside_data_problem, unstored_data_problem

__all__ = ["read_h5", "read_keras", "write_h5", "sniff_h5", "sniff_keras"]

ZIP_SIGNATURE = b"PK\x03\x04"
KERAS_EPSILON = 1e-7  # keras.backend.epsilon(), the floor of Normalization's std
# the Keras 3 semantics the writer targets (hard_sigmoid, activation names)
WRITTEN_KERAS_VERSION = "3.0.0"
HEAD_ATTRIBUTE = "nnconvert_head"  # task/classes/feature names, which Keras files cannot hold

# .keras archives: a member may not declare more than this many bytes per byte of archive,
# nor more than the absolute cap; a zip bomb fails before anything is inflated.
MAX_EXPANSION = 200
MIN_MEMBER_ALLOWANCE = 64 * 2**20
MAX_MEMBER_BYTES = 4 * 2**30
MAX_CONFIG_BYTES = 32 * 2**20

_NOOP_LAYERS = frozenset({"Dropout", "AlphaDropout", "GaussianDropout", "GaussianNoise"})
_ACTIVATION_LAYERS = frozenset({"Activation", "LeakyReLU", "ReLU", "ELU", "Softmax"})
_PREPROCESSING_LAYERS = frozenset({"Normalization", "Rescaling"})
_SUPPORTED_LAYERS = _NOOP_LAYERS | _ACTIVATION_LAYERS | _PREPROCESSING_LAYERS | {"InputLayer", "Dense"}

# Keras activation names -> IR activation and parameters (hard_sigmoid depends on the version)
_KERAS_ACTIVATIONS: Mapping[str, tuple[Activation, dict[str, Any]]] = {
    "linear": (Activation.IDENTITY, {}),
    "relu": (Activation.RELU, {}),
    "sigmoid": (Activation.LOGISTIC, {}),
    "softmax": (Activation.SOFTMAX, {}),
    "tanh": (Activation.TANH, {}),
    "exponential": (Activation.EXP, {}),
    "elu": (Activation.ELU, {"alpha": 1.0}),
    "selu": (Activation.SELU, {}),
    "softplus": (Activation.SOFTPLUS, {}),
    "gelu": (Activation.GELU, {"approximate": "none"}),  # keras.activations.gelu: approximate=False
    "silu": (Activation.SILU, {}),
    "swish": (Activation.SILU, {}),
    "leaky_relu": (Activation.LEAKY_RELU, {"alpha": 0.2}),  # Keras 3's negative_slope default
}
_HARD_SIGMOID_KERAS3 = {"alpha": 1.0 / 6.0, "beta": 0.5}  # relu6(x + 3) / 6
_HARD_SIGMOID_KERAS2 = {"alpha": 0.2, "beta": 0.5}


# -- the parsed model, independent of the container -----------------------


@dataclass
class _Layer:
    """One entry of a model config's layer list, as data."""

    class_name: str
    name: str
    config: Mapping[str, Any]
    inbound: list[str] | None = None  # producer layer names (functional models), None when unknown


@dataclass
class _Source:
    """Everything a container gives the shared model builder."""

    path: Path
    format: str
    model_class: str
    model_name: str
    layers: list[_Layer]
    weights: Callable[[_Layer], list[tuple[str, np.ndarray]]]  # (role, array) in saved order
    keras_version: str | None = None
    backend: str | None = None
    stored_head: Mapping[str, Any] | None = None
    properties: dict[str, str] = field(default_factory=dict)

    def error(self, message: str) -> ReadError:
        return ReadError(message, path=self.path, format=self.format)


# -- config parsing ----------------------------------------------------------


def _parse_config(config: Any, source_path: Path, format_name: str) -> tuple[str, str, list[_Layer]]:
    """(model class, model name, layers) of a model config; refuses anything but Sequential/Functional."""

    def fail(message: str) -> ReadError:
        return ReadError(message, path=source_path, format=format_name)

    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise fail("the model config is not a Keras model description (no class_name)")
    model_class = config["class_name"]
    inner = config.get("config")
    if model_class not in ("Sequential", "Functional", "Model"):
        raise UnsupportedModelError(
            f"{source_path}: the model is a {model_class!r}; only Sequential and Functional models "
            "made of built-in layers can be read without running code from the file",
            [f"model class {model_class!r}"],
        )
    if isinstance(inner, list):  # Keras 2.0-2.2 stored a Sequential's config as the bare layer list
        inner = {"layers": inner}
    if not isinstance(inner, dict) or not isinstance(inner.get("layers"), list):
        raise fail(f"the {model_class} config has no 'layers' list")
    layers = [_parse_layer(entry, index, fail) for index, entry in enumerate(inner["layers"])]
    declared_name = inner.get("name")
    name = declared_name if isinstance(declared_name, str) else model_class.lower()
    if model_class != "Sequential":
        _check_linear_chain(inner, layers, source_path)
    return model_class, name, layers


def _parse_layer(entry: Any, index: int, fail: Callable[[str], ReadError]) -> _Layer:
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        raise fail(f"layer {index} of the model config has no class_name")
    config = entry.get("config")
    if not isinstance(config, dict):
        config = {}
    name = config.get("name", entry.get("name"))
    if not isinstance(name, str):
        name = f"layer_{index}"
    inbound = _inbound_names(entry["inbound_nodes"]) if "inbound_nodes" in entry else None
    return _Layer(entry["class_name"], name, config, inbound)


def _inbound_names(nodes: Any) -> list[str] | None:
    """Producer layer names of a functional layer, in Keras 3's or tf.keras 2's node format."""
    if not isinstance(nodes, list):
        return None
    names: list[str] = []
    for node in nodes:
        if isinstance(node, dict):  # Keras 3: {"args": [keras tensor...], "kwargs": {}}
            args = node.get("args")
            tensors = args if isinstance(args, list) else []
            for tensor in tensors:
                history = tensor.get("config", {}).get("keras_history") if isinstance(tensor, dict) else None
                if not (isinstance(history, list) and history and isinstance(history[0], str)):
                    return None
                names.append(history[0])
        elif isinstance(node, list):  # tf.keras 2: [[name, node_index, tensor_index, kwargs], ...]
            for item in node:
                if not (isinstance(item, list) and item and isinstance(item[0], str)):
                    return None
                names.append(item[0])
        else:
            return None
    return names


def _check_linear_chain(inner: Mapping[str, Any], layers: list[_Layer], path: Path) -> None:
    """A functional model is read only when each layer feeds the next one and nothing else."""
    problems = []
    for previous, layer in zip(layers, layers[1:], strict=False):
        if layer.inbound != [previous.name]:
            problems.append(
                f"{layer.class_name} layer {layer.name!r} takes {layer.inbound} as input, expected only {previous.name!r}"
            )
    first = layers[0] if layers else None
    if first is not None and first.class_name != "InputLayer":
        problems.append(f"the first layer {first.name!r} is a {first.class_name}, expected an InputLayer")
    outputs = _endpoint_names(inner.get("output_layers"))
    if layers and outputs is not None and outputs != [layers[-1].name]:
        problems.append(f"the model's outputs are {outputs}, expected only the last layer {layers[-1].name!r}")
    inputs = _endpoint_names(inner.get("input_layers"))
    if first is not None and inputs is not None and inputs != [first.name]:
        problems.append(f"the model's inputs are {inputs}, expected only {first.name!r}")
    if problems:
        raise UnsupportedModelError(f"{path}: only functional models that are a single chain of layers are supported", problems)


def _endpoint_names(spec: Any) -> list[str] | None:
    """Layer names of ``input_layers``/``output_layers`` (``[name, 0, 0]`` or a list of them)."""
    if not isinstance(spec, list) or not spec:
        return None
    if isinstance(spec[0], str):
        return [spec[0]]
    names = [item[0] for item in spec if isinstance(item, list) and item and isinstance(item[0], str)]
    return names if len(names) == len(spec) else None


# -- activations ---------------------------------------------------------------


def _activation_from_name(value: Any, keras_version: str | None) -> tuple[Activation, dict[str, Any]] | None:
    """The IR activation of a Keras activation config value; None when not expressible."""
    if value is None:
        return Activation.IDENTITY, {}
    if isinstance(value, dict):
        # Keras 3 may serialise a built-in as {"module": "keras.activations", "class_name": "function", "config": name}
        module = value.get("module", "")
        if not (isinstance(module, str) and module.startswith("keras") and isinstance(value.get("config"), str)):
            return None
        value = value["config"]
    if not isinstance(value, str):
        return None
    if value == "hard_sigmoid":
        keras2 = keras_version is not None and keras_version.startswith(("1.", "2."))
        return Activation.HARD_SIGMOID, dict(_HARD_SIGMOID_KERAS2 if keras2 else _HARD_SIGMOID_KERAS3)
    found = _KERAS_ACTIVATIONS.get(value)
    return (found[0], dict(found[1])) if found else None


def _activation_layer(layer: _Layer, keras_version: str | None) -> tuple[Activation, dict[str, Any]] | str:
    """The activation an activation layer applies, or a reason it cannot be expressed."""
    config = layer.config
    if layer.class_name == "Activation":
        found = _activation_from_name(config.get("activation"), keras_version)
        return found if found else f"activation {config.get('activation')!r} has no IR equivalent"
    if layer.class_name == "LeakyReLU":
        slope = config.get("negative_slope", config.get("alpha", 0.3))
        return (Activation.LEAKY_RELU, {"alpha": slope}) if _is_number(slope) else f"negative_slope {slope!r}"
    if layer.class_name == "ELU":
        alpha = config.get("alpha", 1.0)
        return (Activation.ELU, {"alpha": alpha}) if _is_number(alpha) else f"alpha {alpha!r}"
    if layer.class_name == "Softmax":
        axis = config.get("axis", -1)
        return (Activation.SOFTMAX, {}) if axis in (-1, 1, [-1], [1]) else f"softmax over axis {axis!r}"
    return _relu_layer(config)


def _relu_layer(config: Mapping[str, Any]) -> tuple[Activation, dict[str, Any]] | str:
    max_value = config.get("max_value")
    threshold = config.get("threshold", 0.0)
    slope = config.get("negative_slope", 0.0)
    if max_value is not None or threshold not in (0, 0.0) or not _is_number(slope) or slope < 0:
        return f"ReLU with max_value={max_value!r}, threshold={threshold!r}, negative_slope={slope!r}"
    return (Activation.LEAKY_RELU, {"alpha": slope}) if slope else (Activation.RELU, {})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# -- building the IR -----------------------------------------------------------


@dataclass
class _Builder:
    """Walks the layer list once, collecting IR pieces and every unsupported layer."""

    source: _Source
    steps: list[PreprocessStep] = field(default_factory=list)
    dense: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    input_name: str = "X"
    n_features: int | None = None

    def run(self) -> None:
        for index, layer in enumerate(self.source.layers):
            if layer.class_name not in _SUPPORTED_LAYERS:
                self.problems.append(f"{layer.class_name} layer {layer.name!r} (layer {index}) is not supported")
                continue
            self._layer(index, layer)
        if not self.dense and not self.problems:
            self.problems.append("the model has no Dense layer")

    def _layer(self, index: int, layer: _Layer) -> None:
        where = f"{layer.class_name} layer {layer.name!r} (layer {index})"
        if layer.class_name == "InputLayer":
            self._input(layer, where)
        elif layer.class_name == "Dense":
            self._dense(layer, where)
        elif layer.class_name in _ACTIVATION_LAYERS:
            self._fold_activation(layer, where)
        elif layer.class_name in _PREPROCESSING_LAYERS:
            if self.dense:
                self.problems.append(f"{where} comes after a Dense layer; preprocessing is read only before the first one")
            elif layer.class_name == "Normalization":
                self._normalization(layer, where)
            else:
                self._rescaling(layer, where)
        # the _NOOP_LAYERS (dropout, noise) do nothing at inference

    def _input(self, layer: _Layer, where: str) -> None:
        shape = layer.config.get("batch_shape", layer.config.get("batch_input_shape"))
        if not (isinstance(shape, list) and len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 0):
            self.problems.append(f"{where} has input shape {shape!r}; only flat feature vectors [None, n] are supported")
            return
        self.input_name = layer.name
        self.n_features = shape[1]

    def _dense(self, layer: _Layer, where: str) -> None:
        config = layer.config
        activation = _activation_from_name(config.get("activation"), self.source.keras_version)
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

    def _fold_activation(self, layer: _Layer, where: str) -> None:
        found = _activation_layer(layer, self.source.keras_version)
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

    def _normalization(self, layer: _Layer, where: str) -> None:
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

    def _rescaling(self, layer: _Layer, where: str) -> None:
        scale, offset = layer.config.get("scale", 1.0), layer.config.get("offset", 0.0)
        scale_operand, offset_operand = _plain_operand(scale), _plain_operand(offset)
        if scale_operand is None or offset_operand is None:
            self.problems.append(f"{where} has scale {scale!r} and offset {offset!r}; expected numbers or lists of numbers")
            return
        ops = (ElementwiseOp("mul", scale_operand), ElementwiseOp("add", offset_operand))
        self.steps.append(PreprocessStep("rescaling", ops, name=layer.name))


def _plain_operand(value: Any) -> np.ndarray | None:
    if _is_number(value):
        return np.asarray(value, dtype=np.float32)
    if isinstance(value, list) and value and all(_is_number(v) for v in value):
        return np.asarray(value, dtype=np.float32)
    return None


def _by_role(weights: list[tuple[str, np.ndarray]], roles: Sequence[str]) -> list[np.ndarray | None] | None:
    """The arrays named ``roles`` (None for a role not saved) when every saved weight has a recognised name, else None."""
    found = dict(weights)
    if len(found) == len(weights) and set(found) <= set(roles):
        return [found.get(role) for role in roles]
    return None


def _dense_arrays(weights: list[tuple[str, np.ndarray]], config: Mapping[str, Any], source: _Source, where: str):
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


def _normalization_arrays(layer: _Layer, source: _Source, where: str) -> tuple[np.ndarray, np.ndarray]:
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


def _build_model(source: _Source, task: Any, classes: Any) -> Model:
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
        head = _head(layers[-1], task, classes, stored)
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


def _metadata(source: _Source) -> Metadata:
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


# -- the head --------------------------------------------------------------------


def _head(last: DenseLayer, task: Any, classes: Any, stored: Mapping[str, Any]) -> Head:
    """The head: from the user's options, else nnconvert's own stored head, else the output layer."""
    if task is None and classes is None and stored.get("task"):
        return Head(stored["task"], _stored_classes(stored))
    detected = _detected_task(last)
    chosen = _task_option(task) if task is not None else detected
    if task is None and classes is not None and detected == Task.RAW:
        raise UsageError(
            f"classes were given but the output layer ({last.name!r}, {last.n_outputs} outputs, "
            f"{last.activation.value}) does not look like a classifier; also pass task='binary', 'multiclass' "
            "or 'multilabel'"
        )
    _check_task_fits(chosen, last)
    return Head(chosen, _classes_option(chosen, classes, last))


def _detected_task(last: DenseLayer) -> Task:
    if last.activation == Activation.LOGISTIC and last.n_outputs == 1:
        return Task.BINARY
    if last.activation == Activation.SOFTMAX and last.n_outputs >= 2:
        return Task.MULTICLASS
    # a linear output may be a regression or a classifier's logits: the file does not say which
    return Task.RAW


def _task_option(task: Any) -> Task:
    try:
        return Task(task.value if isinstance(task, Task) else task)
    except ValueError:
        raise UsageError(f"task={task!r} is not a task; expected one of {[t.value for t in Task]}") from None


def _check_task_fits(task: Task, last: DenseLayer) -> None:
    n_out, activation = last.n_outputs, last.activation
    fits = {
        Task.BINARY: (n_out == 1 and activation == Activation.LOGISTIC) or (n_out == 2 and activation == Activation.SOFTMAX),
        Task.MULTICLASS: n_out >= 2 and activation == Activation.SOFTMAX,
        Task.MULTILABEL: activation == Activation.LOGISTIC,
    }.get(task, True)
    if not fits:
        raise UsageError(
            f"task={task.value!r} does not fit the output layer {last.name!r} ({n_out} outputs, {activation.value}); "
            "binary needs 1 sigmoid output or 2 softmax outputs, multiclass softmax outputs, multilabel sigmoid outputs"
        )


def _classes_option(task: Task, classes: Any, last: DenseLayer) -> np.ndarray | None:
    if task in (Task.REGRESSION, Task.RAW):
        if classes is not None:
            raise UsageError(f"classes make no sense for task={task.value!r}; drop them or choose a classifier task")
        return None
    expected = 2 if task == Task.BINARY else last.n_outputs
    if classes is None:
        return np.arange(expected, dtype=np.int64)
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Iterable):
        raise UsageError(f"classes must be a list of labels, got {classes!r}")
    labels = np.asarray(list(classes))
    if labels.ndim != 1 or len(labels) != expected:
        raise UsageError(f"task={task.value!r} with output layer {last.name!r} needs {expected} class labels, got {len(labels)}")
    if len(np.unique(labels)) != len(labels):
        raise UsageError(f"class labels must be distinct, got {labels.tolist()}")
    return labels


def _stored_classes(stored: Mapping[str, Any]) -> np.ndarray | None:
    classes = stored.get("classes")
    if classes is None:
        return None
    return np.asarray(classes, dtype=stored.get("classes_dtype") or None)


# -- keras-h5: reading -------------------------------------------------------------


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value.item())
    return value if isinstance(value, str) else None


def _attribute_list(group: Any, name: str) -> list[str]:
    """A string-list attribute, including Keras' chunked form (``name0``, ``name1``...)."""
    if name in group.attrs:
        chunks = [group.attrs[name]]
    else:
        chunks = []
        while f"{name}{len(chunks)}" in group.attrs:
            chunks.append(group.attrs[f"{name}{len(chunks)}"])
    return [_text(item) or "" for chunk in chunks for item in np.atleast_1d(chunk)]


def _json_attribute(attrs: Any, name: str, path: Path, format_name: str) -> Any:
    text = _text(attrs.get(name))
    if text is None:
        return None
    try:
        return json.loads(text)
    except RecursionError:
        raise ReadError(f"the root attribute {name!r} is nested too deeply to be a Keras config", path=path, format=format_name) from None
    except ValueError as exc:
        raise ReadError(f"the root attribute {name!r} is not valid JSON: {exc}", path=path, format=format_name) from None


def _h5_weight_reader(root: Any, path: Path) -> Callable[[_Layer], list[tuple[str, np.ndarray]]]:
    """Weights of a layer of a legacy full-model file, found through the ``weight_names`` attributes."""
    import h5py

    def read(layer: _Layer) -> list[tuple[str, np.ndarray]]:
        group = root.get(layer.name)
        if not isinstance(group, h5py.Group):
            # layers without weights may have no group at all in tf.keras 2 files
            return []
        weights = []
        for weight_name in _attribute_list(group, "weight_names"):
            dataset = group.get(weight_name) if weight_name else None
            if not isinstance(dataset, h5py.Dataset):
                raise ReadError(
                    f"layer {layer.name!r} lists weight {weight_name!r}, which is not a dataset in "
                    f"model_weights/{layer.name}",
                    path=path,
                    format="keras-h5",
                )
            weights.append((_weight_role(weight_name), _float_array(dataset, layer.name, path, "keras-h5")))
        return weights

    return read


def _weight_role(weight_name: str) -> str:
    """'kernel' from 'dense/kernel:0' or 'model/dense/kernel'."""
    return weight_name.rsplit("/", 1)[-1].split(":", 1)[0]


def _float_array(dataset: Any, layer_name: str, path: Path, format_name: str) -> np.ndarray:
    def fail(message: str) -> ReadError:
        return ReadError(f"layer {layer_name!r}: weight {dataset.name} {message}", path=path, format=format_name)

    import h5py

    if not isinstance(dataset, h5py.Dataset):
        raise fail(f"is a {type(dataset).__name__}, not a dataset")
    if dataset.dtype.kind not in "fiu":
        raise fail(f"has dtype {dataset.dtype}, expected numbers")
    # checked before reading: a sparse dataset can declare terabytes in a file of a few kilobytes
    problem = unstored_data_problem(dataset)
    if problem is not None:
        raise fail(problem)
    try:
        return np.asarray(dataset[()])
    except Exception as exc:  # noqa: BLE001 - h5py reports corrupt chunks and missing filters as OSError and others
        raise fail(f"cannot be read: {exc}") from None


def _refuse_outside_data(handle: Any, path: Path, format_name: str) -> None:
    """Refuse external links, external storage and virtual datasets anywhere in the file, before reading weights."""
    import h5py

    def check(name: str, link: Any) -> str | None:
        if isinstance(link, h5py.ExternalLink):
            return f"{name!r} is an external link to {link.filename}:{link.path}"
        if isinstance(link, h5py.HardLink):
            node = handle.get(name)
            if isinstance(node, h5py.Dataset):
                problem = outside_data_problem(node)
                return None if problem is None else f"{name!r} {problem}"
        return None

    problem = handle.visititems_links(check)
    if problem is not None:
        raise ReadError(f"{problem}; nnconvert reads only data stored inside the file", path=path, format=format_name)


def read_h5(path: str | Path, *, task: Any = None, classes: Any = None) -> Model:
    """Read a Keras full-model HDF5 file (tf.keras 2 or Keras 3 ``model.save('x.h5')``).

    Args:
        path: the ``.h5`` file.
        task: override the head's task (binary, multiclass, multilabel, regression, raw).
        classes: the class labels, in output order (default ``0..k-1``).

    Returns:
        The model graph.

    Raises:
        ReadError: not a Keras full-model file, or inconsistent weights.
        UnsupportedModelError: layers outside the supported list (all listed).
        UsageError: ``task``/``classes`` do not fit the model.
    """
    import h5py

    path = Path(path)
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise ReadError(f"not a readable HDF5 file: {exc}", path=path, format="keras-h5") from None
    with _corrupt_hdf5_is_a_read_error(path, "keras-h5"), handle:
        return _read_h5_file(handle, path, task, classes)


@contextlib.contextmanager
def _corrupt_hdf5_is_a_read_error(path: Path, format_name: str):
    """h5py reports a damaged file structure as OSError, RuntimeError, KeyError...: make it a ReadError."""
    try:
        yield
    except NnconvertError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, SystemError) as exc:
        raise ReadError(f"the HDF5 weights are corrupt: {exc}", path=path, format=format_name) from None


def _read_h5_file(handle: Any, path: Path, task: Any, classes: Any) -> Model:
    import h5py

    if "nnconvert_format" in handle.attrs:
        raise ReadError("this is nnconvert's own HDF5 layout; read it with format='hdf5'", path=path, format="keras-h5")
    config = _json_attribute(handle.attrs, "model_config", path, "keras-h5")
    if config is None:
        raise ReadError(
            "no 'model_config' root attribute: this is not a Keras full-model file (a weights-only file "
            "from save_weights holds no architecture)",
            path=path,
            format="keras-h5",
        )
    _refuse_outside_data(handle, path, "keras-h5")
    weights_root = handle.get("model_weights")
    if not isinstance(weights_root, h5py.Group):
        raise ReadError("no 'model_weights' group: the file holds no weights", path=path, format="keras-h5")
    model_class, model_name, layers = _parse_config(config, path, "keras-h5")
    stored = _json_attribute(handle.attrs, HEAD_ATTRIBUTE, path, "keras-h5")
    source = _Source(
        path=path,
        format="keras-h5",
        model_class=model_class,
        model_name=model_name,
        layers=layers,
        weights=_h5_weight_reader(weights_root, path),
        keras_version=_text(handle.attrs.get("keras_version")) or _text(weights_root.attrs.get("keras_version")),
        backend=_text(handle.attrs.get("backend")) or _text(weights_root.attrs.get("backend")),
        stored_head=stored if isinstance(stored, dict) else None,
        properties={"file_format": "keras-h5"},
    )
    return _build_model(source, task, classes)


def sniff_h5(head: bytes, path: Path) -> bool:
    """True for an HDF5 file with Keras' root attributes and not nnconvert's own marker."""
    if not has_signature(head, path):
        return False
    try:
        import h5py

        with h5py.File(path, "r") as handle:
            attrs = handle.attrs
            if "nnconvert_format" in attrs:
                return False
            return "model_config" in attrs and ("keras_version" in attrs or "backend" in attrs or "model_weights" in handle)
    except Exception:  # noqa: BLE001 - a probe never raises
        return False


# -- keras: the Keras 3 zip ---------------------------------------------------------


def _checked_archive(archive: zipfile.ZipFile, path: Path) -> dict[str, zipfile.ZipInfo]:
    """Members by name, after refusing unsafe names and sizes no honest archive declares."""
    archive_size = max(path.stat().st_size, 1)
    allowance = min(max(MIN_MEMBER_ALLOWANCE, MAX_EXPANSION * archive_size), MAX_MEMBER_BYTES)
    members: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in archive.infolist():
        name = info.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
            raise ReadError(f"the archive has a member with an unsafe path {name!r}; refusing it", path=path, format="keras")
        if name in members:
            raise ReadError(f"the archive has two members named {name!r}", path=path, format="keras")
        total += info.file_size
        if info.file_size > allowance or total > allowance:
            raise ReadError(
                f"member {name!r} declares {info.file_size} bytes uncompressed ({total} in all) from a "
                f"{archive_size}-byte archive, over the limit of {allowance}; refusing a possible zip bomb",
                path=path,
                format="keras",
            )
        members[name] = info
    return members


def _member_bytes(archive: zipfile.ZipFile, members: Mapping[str, zipfile.ZipInfo], name: str, path: Path, cap: int) -> bytes:
    info = members.get(name)
    if info is None:
        raise ReadError(f"the archive has no {name!r}: not a Keras 3 .keras file", path=path, format="keras")
    if info.file_size > cap:
        raise ReadError(f"{name!r} declares {info.file_size} bytes, over the limit of {cap}", path=path, format="keras")
    with archive.open(info) as stream:
        # zipfile stops at the declared size and checks the CRC, so a lying header cannot inflate more
        data = stream.read(cap + 1)
    if len(data) > cap:
        raise ReadError(f"{name!r} inflates past the limit of {cap} bytes", path=path, format="keras")
    return data


def read_keras(path: str | Path, *, task: Any = None, classes: Any = None) -> Model:
    """Read a Keras 3 ``.keras`` archive without extracting it or importing Keras.

    Args:
        path: the ``.keras`` file.
        task: override the head's task (binary, multiclass, multilabel, regression, raw).
        classes: the class labels, in output order (default ``0..k-1``).

    Returns:
        The model graph.

    Raises:
        ReadError: not a Keras archive, unsafe members, or inconsistent weights.
        UnsupportedModelError: layers outside the supported list (all listed).
        UsageError: ``task``/``classes`` do not fit the model.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = _checked_archive(archive, path)
            config_bytes = _member_bytes(archive, members, "config.json", path, MAX_CONFIG_BYTES)
            metadata_bytes = (
                _member_bytes(archive, members, "metadata.json", path, MAX_CONFIG_BYTES) if "metadata.json" in members else b"{}"
            )
            weights_info = members.get("model.weights.h5")
            weights_cap = weights_info.file_size if weights_info is not None else 0
            weights_bytes = _member_bytes(archive, members, "model.weights.h5", path, weights_cap)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, NotImplementedError, EOFError, OSError) as exc:
        # a damaged central directory can send zipfile seeking to a negative offset (OSError EINVAL)
        raise ReadError(f"not a readable zip archive: {exc}", path=path, format="keras") from None
    config = _json_member(config_bytes, "config.json", path)
    metadata = _json_member(metadata_bytes, "metadata.json", path)
    return _read_keras_parts(config, metadata if isinstance(metadata, dict) else {}, weights_bytes, path, task, classes)


def _json_member(data: bytes, name: str, path: Path) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ReadError(f"{name} is nested too deeply to be a Keras config", path=path, format="keras") from None
    except ValueError as exc:
        raise ReadError(f"{name} is not valid JSON: {exc}", path=path, format="keras") from None


def _read_keras_parts(config: Any, metadata: Mapping[str, Any], weights: bytes, path: Path, task: Any, classes: Any) -> Model:
    import h5py

    model_class, model_name, layers = _parse_config(config, path, "keras")
    try:
        handle = h5py.File(io.BytesIO(weights), "r")
    except (OSError, RuntimeError, ValueError) as exc:
        raise ReadError(f"model.weights.h5 is not a readable HDF5 file: {exc}", path=path, format="keras") from None
    with _corrupt_hdf5_is_a_read_error(path, "keras"), handle:
        _refuse_outside_data(handle, path, "keras")
        source = _Source(
            path=path,
            format="keras",
            model_class=model_class,
            model_name=model_name,
            layers=layers,
            weights=_zip_weight_reader(handle, layers, model_class, path),
            keras_version=_text(metadata.get("keras_version")),
            properties={"file_format": "keras"},
        )
        return _build_model(source, task, classes)


def _zip_weight_reader(handle: Any, layers: list[_Layer], model_class: str, path: Path):
    """Weights of a layer in a Keras 3 weights file: ``layers/<key>/vars/<i>``, located by the vars' name."""
    import h5py

    root = handle.get("layers")
    by_name: dict[str, Any] = {}
    if isinstance(root, h5py.Group):
        for group in root.values():
            variables = group.get("vars") if isinstance(group, h5py.Group) else None
            if isinstance(variables, h5py.Group):
                by_name.setdefault(_text(variables.attrs.get("name")) or "", variables)
        fallback = _derived_keys(layers, model_class)
        for layer in layers:
            key = fallback.get(layer.name)
            if layer.name not in by_name and key is not None and key in root and isinstance(root[key].get("vars"), h5py.Group):
                by_name[layer.name] = root[key]["vars"]

    def read(layer: _Layer) -> list[tuple[str, np.ndarray]]:
        variables = by_name.get(layer.name)
        if variables is None:
            return []
        indices = sorted((k for k in variables if k.isdigit()), key=int)
        if [int(k) for k in indices] != list(range(len(indices))):
            raise ReadError(f"layer {layer.name!r}: weights numbered {indices}, expected 0..n-1", path=path, format="keras")
        # vars are saved in layer.weights order; the role is unknown, so order decides
        return [(f"var{k}", _float_array(variables[k], layer.name, path, "keras")) for k in indices]

    return read


def _derived_keys(layers: list[_Layer], model_class: str) -> dict[str, str]:
    """Keras 3's own key for each layer (snake-cased class name, uniquified in order), for files without names."""
    keys: dict[str, str] = {}
    counts: dict[str, int] = {}
    for layer in layers:
        if layer.class_name == "InputLayer" and model_class == "Sequential":
            continue
        base = re.sub(r"\W+", "", layer.class_name)
        base = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", base)
        base = re.sub("([a-z])([A-Z])", r"\1_\2", base).lower()
        count = counts.get(base, 0)
        counts[base] = count + 1
        keys[layer.name] = base if count == 0 else f"{base}_{count}"
    return keys


def sniff_keras(head: bytes, path: Path) -> bool:
    """True for a zip holding config.json and model.weights.h5."""
    if not head.startswith(ZIP_SIGNATURE):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
        return {"config.json", "model.weights.h5"} <= names
    except Exception:  # noqa: BLE001 - a probe never raises
        return False


# -- keras-h5: writing -----------------------------------------------------------------


_IR_TO_KERAS = {
    Activation.IDENTITY: "linear",
    Activation.RELU: "relu",
    Activation.LOGISTIC: "sigmoid",
    Activation.SOFTMAX: "softmax",
    Activation.TANH: "tanh",
    Activation.EXP: "exponential",
    Activation.SOFTPLUS: "softplus",
    Activation.SILU: "swish",
}
_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")


def write_h5(model: Model, path: str | Path, *, final_path: str | Path | None = None, dtype: str = "float32") -> None:
    """Write a Keras full-model HDF5 file that ``keras.models.load_model`` loads.

    The config is a Sequential of InputLayer and Dense layers (tf.keras 2
    dialect, which Keras 3 accepts); preprocessing steps become Normalization
    or Rescaling layers when that is exact, and the head (task, classes,
    feature names) is kept in an extra root attribute for nnconvert.

    Args:
        model: the model graph.
        path: the file to write (a temporary file during ``save``).
        final_path: the eventual target name (unused; accepted by contract).
        dtype: "float32" (default, what Keras computes in) or "float64". A float64 file keeps
            float64 weights bit for bit (nnconvert reads them back unchanged), but Keras 3.15 on
            torch still runs some operations (matmul, Normalization's maximum) in float32.

    Raises:
        UnsupportedModelError: a step or activation has no exact Keras equivalent (all listed).
        UsageError: an unknown dtype.
    """
    import h5py

    if dtype not in ("float32", "float64"):
        raise UsageError(f"dtype={dtype!r}: the keras-h5 writer writes 'float32' or 'float64'")
    target = model.astype(dtype)
    problems: list[str] = []
    preprocessing = _preprocessing_layers(target, problems)
    names = _layer_names(target, {entry["name"] for entry in preprocessing})
    dense = _dense_layers(target, names, problems)
    if problems:
        raise UnsupportedModelError("the model cannot be written as a Keras file without changing what it computes", problems)
    layers = preprocessing + dense
    config = _model_config(target, layers, dtype)
    with h5py.File(path, "w") as handle:
        handle.attrs["keras_version"] = WRITTEN_KERAS_VERSION
        handle.attrs["backend"] = "tensorflow"
        handle.attrs["model_config"] = json.dumps(config)
        handle.attrs[HEAD_ATTRIBUTE] = json.dumps(_head_document(model, target.dtype))
        _write_weights(handle.create_group("model_weights"), layers)


def _layer_names(model: Model, taken: set[str]) -> list[str]:
    """Keras layer names: the IR's when safe and unique, else dense / dense_<i>."""
    names: list[str] = []
    for index, layer in enumerate(model.layers):
        name = layer.name
        if not _SAFE_NAME.match(name or "") or name in taken or name in names or name == "input_layer":
            name = f"dense_{index}"
            while name in taken or name in names:
                name += "_"
        names.append(name)
    return names


def _dense_layers(model: Model, names: list[str], problems: list[str]) -> list[dict[str, Any]]:
    entries = []
    for index, (layer, name) in enumerate(zip(model.layers, names, strict=True)):
        activation, extra = _keras_activation(layer, f"layer {index} ({name!r})", problems)
        config = {"name": name, "trainable": True, "units": layer.n_outputs, "activation": activation, "use_bias": True}
        entries.append({"class_name": "Dense", "name": name, "config": config,
                        "weights": [("kernel", layer.weights), ("bias", layer.bias)]})
        if extra is not None:
            entries.append(extra | {"name": extra["config"]["name"], "weights": []})
    return entries


def _keras_activation(layer: DenseLayer, where: str, problems: list[str]) -> tuple[str, dict[str, Any] | None]:
    """(Dense activation name, optional activation layer after it) for an IR activation."""
    activation, params = layer.activation, dict(layer.activation_params)
    defaults = dict(ACTIVATION_DEFAULTS.get(activation, {}))
    name = f"{layer.name or 'dense'}_activation"
    if activation in _IR_TO_KERAS:
        return _IR_TO_KERAS[activation], None
    if activation == Activation.SELU and params == defaults:
        return "selu", None
    if activation == Activation.GELU and params.get("approximate") == "none":
        return "gelu", None
    if activation == Activation.HARD_SIGMOID and params == _HARD_SIGMOID_KERAS3:
        return "hard_sigmoid", None
    if activation == Activation.ELU:
        return "linear", {"class_name": "ELU", "config": {"name": name, "trainable": True, "alpha": params["alpha"]}}
    if activation == Activation.LEAKY_RELU:
        config = {"name": name, "trainable": True, "negative_slope": params["alpha"]}
        return "linear", {"class_name": "LeakyReLU", "config": config}
    problems.append(f"{where}: activation {activation.value} with {params} has no Keras 3 equivalent")
    return "linear", None


def _preprocessing_layers(model: Model, problems: list[str]) -> list[dict[str, Any]]:
    """Normalization / Rescaling layers computing exactly what the steps compute, op for op."""
    entries: list[dict[str, Any]] = []
    n = model.n_features
    for index, step in enumerate(model.steps):
        ops = list(step.ops)
        where = f"preprocessing step {index} ({step.name or step.kind!r})"
        while ops:
            entry, ops = _next_preprocessing_layer(ops, n, f"{step.name or step.kind}_{len(entries)}", where, problems)
            if entry is None:
                break
            entries.append(entry)
    return entries


def _next_preprocessing_layer(ops: list[ElementwiseOp], n: int, name: str, where: str, problems: list[str]):
    name = re.sub(r"[^A-Za-z0-9_]", "_", name)
    first = ops[0]
    if first.op in ("sub", "div"):
        mean = first.operand if first.op == "sub" else np.zeros((), first.operand.dtype)
        rest = ops[1:] if first.op == "sub" else ops
        if rest and rest[0].op == "div":
            denominator, rest = rest[0].operand, rest[1:]
        else:
            denominator = np.ones((), first.operand.dtype)
        entry = _normalization_entry(name, np.broadcast_to(mean, (n,)), np.broadcast_to(denominator, (n,)), where, problems)
        return entry, rest
    if first.op in ("mul", "add"):
        scale = first.operand if first.op == "mul" else np.ones((), first.operand.dtype)
        rest = ops[1:] if first.op == "mul" else ops
        if rest and rest[0].op == "add":
            offset, rest = rest[0].operand, rest[1:]
        else:
            offset = np.zeros((), first.operand.dtype)
        return _rescaling_entry(name, scale, offset), rest
    problems.append(f"{where}: the {first.op} operation has no exact Keras layer (Normalization and Rescaling cannot clip)")
    return None, []


def _normalization_entry(name: str, mean: np.ndarray, denominator: np.ndarray, where: str, problems: list[str]):
    # Keras divides by maximum(sqrt(variance), epsilon): store variance = d*d only when that gives d back exactly
    variance = denominator * denominator
    recovered = np.maximum(np.sqrt(variance), denominator.dtype.type(KERAS_EPSILON))
    if not np.array_equal(recovered, denominator) or not np.isfinite(variance).all():
        problems.append(f"{where}: the divisor cannot be stored as a Keras Normalization variance exactly")
        return None
    config = {"name": name, "trainable": True, "axis": -1, "invert": False, "mean": None, "variance": None}
    weights = [("mean", np.array(mean)), ("variance", variance), ("count", np.asarray(0, dtype=np.int32))]
    return {"class_name": "Normalization", "name": name, "config": config, "weights": weights}


def _rescaling_entry(name: str, scale: np.ndarray, offset: np.ndarray) -> dict[str, Any]:
    # JSON floats round-trip float32/float64 values exactly; Keras casts them back to the layer dtype
    config = {"name": name, "trainable": True, "scale": _json_number(scale), "offset": _json_number(offset)}
    return {"class_name": "Rescaling", "name": name, "config": config, "weights": []}


def _json_number(array: np.ndarray) -> float | list[float]:
    return float(array) if array.ndim == 0 else [float(v) for v in array]


def _model_config(model: Model, layers: list[dict[str, Any]], dtype: str) -> dict[str, Any]:
    input_name = model.input.name if _SAFE_NAME.match(model.input.name) else "input_layer"
    if input_name in {entry["name"] for entry in layers}:
        input_name = "input_layer_0"
    input_layer = {
        "class_name": "InputLayer",
        "config": {"batch_input_shape": [None, model.n_features], "dtype": dtype, "sparse": False, "name": input_name},
    }
    entries = [input_layer] + [{"class_name": e["class_name"], "config": e["config"] | {"dtype": dtype}} for e in layers]
    return {"class_name": "Sequential", "config": {"name": "sequential", "layers": entries}}


def _write_weights(group: Any, layers: list[dict[str, Any]]) -> None:
    """tf.keras 2's layout: model_weights/<layer>/<layer>/<weight>:0, listed by weight_names."""
    group.attrs["layer_names"] = [entry["name"].encode("utf-8") for entry in layers]
    group.attrs["backend"] = b"tensorflow"
    group.attrs["keras_version"] = WRITTEN_KERAS_VERSION.encode("utf-8")
    for entry in layers:
        layer_group = group.create_group(entry["name"])
        names = [f"{entry['name']}/{role}:0" for role, _ in entry["weights"]]
        layer_group.attrs["weight_names"] = np.array([n.encode("utf-8") for n in names], dtype="S")
        for name, (_, array) in zip(names, entry["weights"], strict=True):
            layer_group.create_dataset(name, data=np.array(array, order="C"))  # keeps 0-d count scalars 0-d


def _head_document(model: Model, dtype: np.dtype) -> dict[str, Any]:
    classes = model.head.classes
    document = {
        "task": model.task.value,
        "classes": None if classes is None else classes.tolist(),
        "classes_dtype": None if classes is None else classes.dtype.str,
        "feature_names": None if model.input.feature_names is None else list(model.input.feature_names),
    }
    source_dtype = recorded_source_dtype(model, dtype)
    if source_dtype is not None:  # a float32 model written as float64: readers can restore it
        document["source_dtype"] = source_dtype
    return document


# -- registration ------------------------------------------------------------------------

# nnconvert's own hdf5 layout also claims .h5 and comes first in the suffix fallback (the
# import of .hdf5 above registered it); content sniffing is what tells the two apart.
register(
    FormatSpec(
        name="keras-h5",
        suffixes=(".h5", ".hdf5"),
        description="Keras full-model HDF5 (tf.keras 2 and Keras 3 model.save('x.h5'))",
        read=read_h5,
        write=write_h5,
        sniff=sniff_h5,
        requires={"h5py": "h5py"},
        read_options=("task", "classes"),
        write_options=("dtype",),
    )
)
register(
    FormatSpec(
        name="keras",
        suffixes=(".keras",),
        description="Keras 3 .keras archive (config.json + model.weights.h5), read only",
        read=read_keras,
        write=None,
        sniff=sniff_keras,
        requires={"h5py": "h5py"},
        read_options=("task", "classes"),
    )
)
