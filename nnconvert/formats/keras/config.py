"""Keras model configs as plain data: the layer list, the linear-chain check, activation names.

Configs are parsed with :mod:`json` and only a fixed list of layer classes is
understood, so nothing from the file is deserialised or executed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import ReadError, UnsupportedModelError
from ...ir import Activation

KERAS_EPSILON = 1e-7  # keras.backend.epsilon(), the floor of Normalization's std
HEAD_ATTRIBUTE = "nnconvert_head"  # task/classes/feature names, which Keras files cannot hold

_NOOP_LAYERS = frozenset({"Dropout", "AlphaDropout", "GaussianDropout", "GaussianNoise"})
ACTIVATION_LAYERS = frozenset({"Activation", "LeakyReLU", "ReLU", "ELU", "Softmax"})
PREPROCESSING_LAYERS = frozenset({"Normalization", "Rescaling"})
SUPPORTED_LAYERS = _NOOP_LAYERS | ACTIVATION_LAYERS | PREPROCESSING_LAYERS | {"InputLayer", "Dense"}

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
HARD_SIGMOID_KERAS3 = {"alpha": 1.0 / 6.0, "beta": 0.5}  # relu6(x + 3) / 6
_HARD_SIGMOID_KERAS2 = {"alpha": 0.2, "beta": 0.5}


@dataclass
class Layer:
    """One entry of a model config's layer list, as data."""

    class_name: str
    name: str
    config: Mapping[str, Any]
    inbound: list[str] | None = None  # producer layer names (functional models), None when unknown


def parse_config(config: Any, source_path: Path, format_name: str) -> tuple[str, str, list[Layer]]:
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


def _parse_layer(entry: Any, index: int, fail: Callable[[str], ReadError]) -> Layer:
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        raise fail(f"layer {index} of the model config has no class_name")
    config = entry.get("config")
    if not isinstance(config, dict):
        config = {}
    name = config.get("name", entry.get("name"))
    if not isinstance(name, str):
        name = f"layer_{index}"
    inbound = _inbound_names(entry["inbound_nodes"]) if "inbound_nodes" in entry else None
    return Layer(entry["class_name"], name, config, inbound)


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


def _check_linear_chain(inner: Mapping[str, Any], layers: list[Layer], path: Path) -> None:
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


def activation_from_name(value: Any, keras_version: str | None) -> tuple[Activation, dict[str, Any]] | None:
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
        return Activation.HARD_SIGMOID, dict(_HARD_SIGMOID_KERAS2 if keras2 else HARD_SIGMOID_KERAS3)
    found = _KERAS_ACTIVATIONS.get(value)
    return (found[0], dict(found[1])) if found else None


def activation_layer(layer: Layer, keras_version: str | None) -> tuple[Activation, dict[str, Any]] | str:
    """The activation an activation layer applies, or a reason it cannot be expressed."""
    config = layer.config
    if layer.class_name == "Activation":
        found = activation_from_name(config.get("activation"), keras_version)
        return found if found else f"activation {config.get('activation')!r} has no IR equivalent"
    if layer.class_name == "LeakyReLU":
        slope = config.get("negative_slope", config.get("alpha", 0.3))
        return (Activation.LEAKY_RELU, {"alpha": slope}) if is_number(slope) else f"negative_slope {slope!r}"
    if layer.class_name == "ELU":
        alpha = config.get("alpha", 1.0)
        return (Activation.ELU, {"alpha": alpha}) if is_number(alpha) else f"alpha {alpha!r}"
    if layer.class_name == "Softmax":
        axis = config.get("axis", -1)
        return (Activation.SOFTMAX, {}) if axis in (-1, 1, [-1], [1]) else f"softmax over axis {axis!r}"
    return _relu_layer(config)


def _relu_layer(config: Mapping[str, Any]) -> tuple[Activation, dict[str, Any]] | str:
    max_value = config.get("max_value")
    threshold = config.get("threshold", 0.0)
    slope = config.get("negative_slope", 0.0)
    if max_value is not None or threshold not in (0, 0.0) or not is_number(slope) or slope < 0:
        return f"ReLU with max_value={max_value!r}, threshold={threshold!r}, negative_slope={slope!r}"
    return (Activation.LEAKY_RELU, {"alpha": slope}) if slope else (Activation.RELU, {})


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
