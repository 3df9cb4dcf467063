"""Writing ``keras-h5``: a Sequential full-model HDF5 file that Keras 3's ``load_model`` loads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..._io.atomic import Output, as_output
from ..._io.hdf5_safety import hdf5_write_errors
from ...errors import UnsupportedModelError, UsageError
from ...ir import (
    ACTIVATION_DEFAULTS,
    LAYER_KINDS,
    Activation,
    ActivationLayer,
    BatchNormLayer,
    DenseLayer,
    ElementwiseOp,
    LayerNormLayer,
    Model,
    PReLULayer,
    require_supported,
)
from .config import HARD_SIGMOID_KERAS3, HEAD_ATTRIBUTE, KERAS_EPSILON
from .head import head_document

# the Keras 3 semantics the writer targets (hard_sigmoid, activation names)
WRITTEN_KERAS_VERSION = "3.0.0"
_IR_TO_KERAS = {
    Activation.IDENTITY: "linear",
    Activation.RELU: "relu",
    Activation.LOGISTIC: "sigmoid",
    Activation.SOFTMAX: "softmax",
    Activation.TANH: "tanh",
    Activation.EXP: "exponential",
    Activation.SOFTPLUS: "softplus",
    Activation.SILU: "swish",
    Activation.SOFTSIGN: "softsign",
    Activation.MISH: "mish",
    Activation.LOG_SOFTMAX: "log_softmax",
    Activation.HARDSWISH: "hard_silu",
}
# the layer kinds written as Keras layers
KERAS_LAYER_KINDS = LAYER_KINDS
_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")


def write_h5(model: Model, output: Output | str | Path, *, dtype: str = "float32") -> None:
    """Write a Keras full-model HDF5 file that ``keras.models.load_model`` loads.

    The config is a Sequential of InputLayer and Dense layers (tf.keras 2
    dialect, which Keras 3 accepts); preprocessing steps become Normalization
    or Rescaling layers when that is exact, and the head (task, classes,
    feature names) is kept in an extra root attribute for nnconvert.

    Args:
        model: the model graph.
        output: where to write (the temporary file's :class:`~nnconvert._io.atomic.Output` during
            ``save``), or a path.
        dtype: "float32" (default, what Keras computes in) or "float64". A float64 file keeps
            float64 weights bit for bit (nnconvert reads them back unchanged), but Keras 3.15 on
            torch still runs some operations (matmul, Normalization's maximum) in float32.

    Raises:
        UnsupportedModelError: a step or activation has no exact Keras equivalent (all listed).
        UsageError: an unknown dtype.
    """
    import h5py

    target, layers = layer_entries(model, dtype, "keras-h5")
    config = _model_config(target, layers, dtype)
    with hdf5_write_errors(as_output(output).final_path), h5py.File(as_output(output).path, "w") as handle:
        handle.attrs["keras_version"] = WRITTEN_KERAS_VERSION
        handle.attrs["backend"] = "tensorflow"
        handle.attrs["model_config"] = json.dumps(config)
        handle.attrs[HEAD_ATTRIBUTE] = json.dumps(head_document(model, target.dtype))
        _write_weights(handle.create_group("model_weights"), layers)


def layer_entries(model: Model, dtype: str, writer: str) -> tuple[Model, list[dict[str, Any]]]:
    """``model`` cast to ``dtype`` and its Keras layers after the input: each entry's ``class_name``,
    ``name``, ``config`` (without dtype) and ``weights`` (``[(role, array)]`` in Keras' variable order).

    Shared by the keras-h5 and keras (.keras) writers.

    Raises:
        UnsupportedModelError: a step or activation has no exact Keras equivalent (all listed).
        UsageError: an unknown dtype.
    """
    if dtype not in ("float32", "float64"):
        raise UsageError(f"dtype={dtype!r}: the {writer} writer writes 'float32' or 'float64'")
    require_supported(model, "a Keras .keras file" if writer == "keras" else "a Keras .h5 file", KERAS_LAYER_KINDS)
    target = model.astype(dtype)
    problems: list[str] = []
    preprocessing = _preprocessing_layers(target, problems)
    names = _layer_names(target, {entry["name"] for entry in preprocessing})
    dense = _dense_layers(target, names, problems)
    if problems:
        raise UnsupportedModelError("the model cannot be written as a Keras file without changing what it computes", problems)
    return target, preprocessing + dense


def input_layer_name(model: Model, layers: list[dict[str, Any]]) -> str:
    """The InputLayer's name: the model input's when safe and not taken by a layer."""
    input_name = model.input.name if _SAFE_NAME.match(model.input.name) else "input_layer"
    return "input_layer_0" if input_name in {entry["name"] for entry in layers} else input_name


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
    entries: list[dict[str, Any]] = []
    for index, (layer, name) in enumerate(zip(model.layers, names, strict=True)):
        if not isinstance(layer, DenseLayer):
            entries.extend(_other_layer(layer, name, f"layer {index} ({name!r})", problems))
            continue
        # the activation layer is named after the Keras-safe name: the IR's may hold '/' (tf2onnx, torch.onnx)
        activation, extra = _keras_activation(layer, f"layer {index} ({name!r})", problems, layer_name=f"{name}_activation")
        config = {"name": name, "trainable": True, "units": layer.n_outputs, "activation": activation, "use_bias": True}
        entries.append({"class_name": "Dense", "name": name, "config": config,
                        "weights": [("kernel", layer.weights), ("bias", layer.bias)]})
        if extra is not None:
            entries.append(extra | {"name": extra["config"]["name"], "weights": []})
    return entries


def _other_layer(layer: Any, name: str, where: str, problems: list[str]) -> list[dict[str, Any]]:
    """Keras' own layer for a normalization, PReLU or activation layer (with its weights in Keras' order)."""
    base = {"name": name, "trainable": True}
    if isinstance(layer, BatchNormLayer):
        config = base | {"axis": -1, "momentum": 0.99, "epsilon": layer.epsilon,
                         "center": layer.offset is not None, "scale": layer.scale is not None}
        weights = [("gamma", layer.scale), ("beta", layer.offset), ("moving_mean", layer.mean), ("moving_variance", layer.variance)]
        return [{"class_name": "BatchNormalization", "name": name, "config": config, "weights": [w for w in weights if w[1] is not None]}]
    if isinstance(layer, LayerNormLayer):
        config = base | {"axis": -1, "epsilon": layer.epsilon, "center": layer.offset is not None, "scale": layer.scale is not None}
        weights = [("gamma", layer.scale), ("beta", layer.offset)]
        return [{"class_name": "LayerNormalization", "name": name, "config": config, "weights": [w for w in weights if w[1] is not None]}]
    if isinstance(layer, PReLULayer):
        return [{"class_name": "PReLU", "name": name, "config": base | {"shared_axes": None}, "weights": [("alpha", layer.slopes)]}]
    assert isinstance(layer, ActivationLayer)
    activation, extra = _keras_activation(layer, where, problems, layer_name=name)
    if extra is not None:
        return [extra | {"name": extra["config"]["name"], "weights": []}]
    return [{"class_name": "Activation", "name": name, "config": base | {"activation": activation}, "weights": []}]


def _keras_activation(
    layer: DenseLayer | ActivationLayer, where: str, problems: list[str], *, layer_name: str | None = None
) -> tuple[str, dict[str, Any] | None]:
    """(Dense activation name, optional activation layer after it) for an IR activation."""
    activation, params = layer.activation, dict(layer.activation_params)
    defaults = dict(ACTIVATION_DEFAULTS.get(activation, {}))
    name = layer_name or f"{layer.name or 'dense'}_activation"
    if activation in _IR_TO_KERAS and not params:
        return _IR_TO_KERAS[activation], None
    relu = _relu_equivalent(activation, params)
    if relu is not None:
        if relu == {"max_value": 6.0}:
            return "relu6", None
        return "linear", {"class_name": "ReLU", "config": {"name": name, "trainable": True, **relu}}
    if activation == Activation.CLIP and params == {"min": -1.0, "max": 1.0}:
        return "hard_tanh", None
    if activation == Activation.SOFTPLUS and params.get("beta", 1.0) == 1.0 and params.get("threshold", 20.0) >= 20.0:
        return "softplus", None  # Keras 3 on torch runs torch's softplus (threshold 20)
    if activation == Activation.SELU and params == defaults:
        return "selu", None
    if activation == Activation.GELU and params.get("approximate") == "none":
        return "gelu", None
    if activation == Activation.HARD_SIGMOID and params == HARD_SIGMOID_KERAS3:
        return "hard_sigmoid", None
    if activation == Activation.ELU:
        return "linear", {"class_name": "ELU", "config": {"name": name, "trainable": True, "alpha": params["alpha"]}}
    if activation == Activation.LEAKY_RELU:
        config = {"name": name, "trainable": True, "negative_slope": params["alpha"]}
        return "linear", {"class_name": "LeakyReLU", "config": config}
    problems.append(f"{where}: activation {activation.value} with {params} has no Keras 3 equivalent")
    return "linear", None


def _relu_equivalent(activation: Activation, params: dict[str, Any]) -> dict[str, Any] | None:
    """The settings of Keras' ReLU layer computing this activation, if one does."""
    if activation == Activation.RELU:
        return params
    if activation == Activation.CLIP and params.get("min") == 0.0:
        return {"max_value": params["max"]} if "max" in params else {}
    return None


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
    input_name = input_layer_name(model, layers)
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

