"""The model graph as the modules of a hand-written ``torch.nn.Sequential``, without importing torch.

A :class:`TorchModule` is one entry of that Sequential: the torch class name
(``Linear``, ``ReLU``, ``BatchNorm1d``...), its constructor keywords and its
``state_dict`` tensors as numpy arrays in torch's own layout (``Linear.weight``
is ``(out, in)``). Three things are built on this list:

- :mod:`nnconvert.converters.torch` turns it into real torch modules and back;
- :mod:`nnconvert.converters.state_dict` names its tensors like
  ``nn.Sequential.state_dict()`` does (``0.weight``, ``0.bias``, ``2.weight``...)
  for safetensors and ``.pt`` files, and rebuilds it from a foreign state_dict
  and a user-given architecture;
- :func:`modules_to_model` folds it back into the model graph.

Preprocessing steps have no standard torch module: they become nnconvert's own
``Preprocessing`` module (type name :data:`PREPROCESSING`), one per step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidModelError, UnsupportedModelError
from ..head import OutputSummary, default_head, head_with_options, task_from_output
from ..ir import (
    ACTIVATION_DEFAULTS,
    Activation,
    ActivationLayer,
    BatchNormLayer,
    DenseLayer,
    ElementwiseOp,
    Head,
    InputSpec,
    LayerNormLayer,
    Metadata,
    Model,
    PReLULayer,
    PreprocessStep,
    Task,
)

__all__ = [
    "TorchModule",
    "PREPROCESSING",
    "OWN_MODULES",
    "ACTIVATION_TYPES",
    "LAYER_TYPES",
    "SKIPPED_TYPES",
    "model_to_modules",
    "modules_to_model",
    "detected_head",
]

PREPROCESSING = "Preprocessing"
OWN_MODULES = frozenset({PREPROCESSING, "Exp"})  # defined in nnconvert.converters.torch_modules
# modules that compute nothing at inference (Flatten: on (N, features) inputs, with start_dim=1)
SKIPPED_TYPES = frozenset({"Dropout", "AlphaDropout", "Identity", "Flatten"})
HARDSIGMOID_PARAMS = {"alpha": 1 / 6, "beta": 0.5}  # torch's Hardsigmoid: relu6(x + 3) / 6


@dataclass
class TorchModule:
    """One entry of a torch Sequential, as data.

    Attributes:
        type: the ``torch.nn`` class name (or :data:`PREPROCESSING`).
        settings: constructor keywords (``in_features``, ``negative_slope``, ``eps``...).
        tensors: the state_dict entries by local name (``weight``, ``bias``, ``running_mean``...),
            in torch's layout and in the order torch lists them.
        path: where the module sits in the network it came from (``encoder.block.1``), for messages.
        sources: for each tensor, the identity of the model-graph array it holds and whether it is
            transposed; lets a file name the tensor holding each array of the model document.
    """

    type: str
    settings: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    path: str = ""
    sources: dict[int, tuple[str, bool]] = field(default_factory=dict)


# activation modules without settings
_PLAIN_ACTIVATIONS: Mapping[str, Activation] = {
    "ReLU": Activation.RELU,
    "Tanh": Activation.TANH,
    "Sigmoid": Activation.LOGISTIC,
    "SELU": Activation.SELU,
    "SiLU": Activation.SILU,
    "Softsign": Activation.SOFTSIGN,
    "Hardswish": Activation.HARDSWISH,
    "Mish": Activation.MISH,
    "Exp": Activation.EXP,  # nnconvert's own module (torch has none)
}
ACTIVATION_TYPES = frozenset(_PLAIN_ACTIVATIONS) | {
    "LeakyReLU",
    "ELU",
    "GELU",
    "Softplus",
    "Hardsigmoid",
    "Softmax",
    "LogSoftmax",
    "ReLU6",
    "Hardtanh",
}
# layers with their own tensors (Linear aside)
LAYER_TYPES = frozenset({"BatchNorm1d", "LayerNorm", "PReLU"})


# -- model graph -> modules ---------------------------------------------------------


def model_to_modules(model: Model) -> list[TorchModule]:
    """The Sequential's entries computing ``model``: preprocessing, then each layer and its activation.

    Raises:
        UnsupportedModelError: an activation or step torch has no standard module for (all listed);
            an int8 model (torch modules and state dicts compute in float): pass ``model.dequantized()``.
    """
    from ..quantization import refuse_quantized

    refuse_quantized(model, "a torch module or state dict", "model.dequantized(), or --dequantize on the command line")
    problems: list[str] = []
    modules = [_preprocessing_module(step) for step in model.steps]
    for index, (layer, (width, _)) in enumerate(zip(model.layers, model.layer_shapes(), strict=True)):
        modules.extend(_layer_modules(layer, _where(layer, index), width, problems))
    if problems:
        raise UnsupportedModelError("the model cannot be written as torch modules without changing what it computes", problems)
    return modules


def _where(layer: Any, index: int) -> str:
    return f"layer {index} ({layer.name or f'{layer.kind}_{index}'!r})"  # as array_keys.layer_names names it


def _preprocessing_module(step: PreprocessStep) -> TorchModule:
    tensors = {f"op{o}": np.asarray(op.operand) for o, op in enumerate(step.ops)}
    settings = {"ops": [op.op for op in step.ops], "kind": step.kind, "name": step.name, "params": dict(step.params)}
    sources = {id(op.operand): (f"op{o}", False) for o, op in enumerate(step.ops)}
    return TorchModule(PREPROCESSING, settings, tensors, sources=sources)


def _layer_modules(layer: Any, where: str, width: int, problems: list[str]) -> list[TorchModule]:
    if isinstance(layer, DenseLayer):
        linear = TorchModule(
            "Linear",
            {"in_features": layer.n_inputs, "out_features": layer.n_outputs, "bias": True},
            {"weight": np.ascontiguousarray(layer.weights.T), "bias": np.asarray(layer.bias)},
            sources={id(layer.weights): ("weight", True), id(layer.bias): ("bias", False)},
        )
        activation = activation_module(layer.activation, layer.activation_params, where, problems)
        return [linear] if activation is None else [linear, activation]
    if isinstance(layer, ActivationLayer):
        activation = activation_module(layer.activation, layer.activation_params, where, problems)
        return [] if activation is None else [activation]
    if isinstance(layer, PReLULayer):
        settings = {"num_parameters": int(layer.slopes.shape[0])}
        return [TorchModule("PReLU", settings, {"weight": np.asarray(layer.slopes)}, sources={id(layer.slopes): ("weight", False)})]
    if isinstance(layer, BatchNormLayer):
        return [_batch_norm_module(layer)]
    if isinstance(layer, LayerNormLayer):
        return [_layer_norm_module(layer, width)]
    problems.append(f"{where}: a {type(layer).__name__} has no torch module")
    return []


def _affine(scale: np.ndarray | None, offset: np.ndarray | None, like: np.ndarray) -> tuple[dict[str, np.ndarray], dict[int, tuple[str, bool]]]:
    """torch's weight/bias pair: both or neither; a missing half is the neutral ones/zeros."""
    if scale is None and offset is None:
        return {}, {}
    tensors = {
        "weight": np.asarray(scale) if scale is not None else np.ones_like(like),
        "bias": np.asarray(offset) if offset is not None else np.zeros_like(like),
    }
    sources = {id(array): (name, False) for name, array in (("weight", scale), ("bias", offset)) if array is not None}
    return tensors, sources


def _batch_norm_module(layer: BatchNormLayer) -> TorchModule:
    affine, sources = _affine(layer.scale, layer.offset, layer.mean)
    tensors = {**affine, "running_mean": np.asarray(layer.mean), "running_var": np.asarray(layer.variance)}
    tensors["num_batches_tracked"] = np.asarray(0, dtype=np.int64)
    sources |= {id(layer.mean): ("running_mean", False), id(layer.variance): ("running_var", False)}
    settings = {"num_features": int(layer.mean.shape[0]), "eps": layer.epsilon, "affine": bool(affine)}
    return TorchModule("BatchNorm1d", settings, tensors, sources=sources)


def _layer_norm_module(layer: LayerNormLayer, width: int) -> TorchModule:
    like = np.zeros(width, dtype=next((a.dtype for a in (layer.scale, layer.offset) if a is not None), np.float32))
    affine, sources = _affine(layer.scale, layer.offset, like)
    settings = {"normalized_shape": [width], "eps": layer.epsilon, "elementwise_affine": bool(affine)}
    return TorchModule("LayerNorm", settings, affine, sources=sources)


def activation_module(activation: Activation, params: Mapping[str, Any], where: str, problems: list[str]) -> TorchModule | None:
    """The torch module applying ``activation`` (None for identity); a problem is recorded when there is none."""
    params = dict(params)
    defaults = dict(ACTIVATION_DEFAULTS.get(activation, {}))
    if activation == Activation.IDENTITY:
        return None
    for type_name, plain in _PLAIN_ACTIVATIONS.items():
        if plain == activation and (activation != Activation.SELU or params == defaults):
            return TorchModule(type_name)
    if activation == Activation.RELU and params:
        return _parameterized_relu(params, where, problems)
    if activation == Activation.LEAKY_RELU:
        return TorchModule("LeakyReLU", {"negative_slope": params["alpha"]})
    if activation == Activation.CLIP and "min" in params and "max" in params:
        return TorchModule("Hardtanh", {"min_val": params["min"], "max_val": params["max"]})
    if activation == Activation.LOG_SOFTMAX:
        return TorchModule("LogSoftmax", {"dim": -1})
    if activation == Activation.ELU:
        return TorchModule("ELU", {"alpha": params["alpha"]})
    if activation == Activation.GELU:
        return TorchModule("GELU", {"approximate": params["approximate"]})
    if activation == Activation.SOFTPLUS:  # torch's threshold 20 changes a float64 value by < 1e-9 relative
        return TorchModule("Softplus", {"beta": params.get("beta", 1.0), "threshold": params.get("threshold", 20.0)})
    if activation == Activation.SOFTMAX:
        return TorchModule("Softmax", {"dim": -1})
    if activation == Activation.HARD_SIGMOID and np.allclose([params["alpha"], params["beta"]], [1 / 6, 0.5], rtol=0, atol=1e-12):
        return TorchModule("Hardsigmoid")
    problems.append(f"{where}: activation {activation.value} with {params or 'no parameters'} has no standard torch module")
    return None


def _parameterized_relu(params: Mapping[str, Any], where: str, problems: list[str]) -> TorchModule | None:
    """Keras' relu(negative_slope, max_value, threshold) where torch has the same function."""
    slope, top, threshold = params.get("negative_slope", 0.0), params.get("max_value"), params.get("threshold", 0.0)
    if threshold == 0.0 and top is None:
        return TorchModule("LeakyReLU", {"negative_slope": slope})
    if threshold == 0.0 and slope == 0.0 and top is not None:
        return TorchModule("ReLU6") if top == 6.0 else TorchModule("Hardtanh", {"min_val": 0.0, "max_val": top})
    problems.append(f"{where}: relu with {dict(params)} has no standard torch module")
    return None


# -- modules -> model graph ----------------------------------------------------------


def ir_activation(module: TorchModule) -> tuple[Activation, dict[str, Any]] | str:
    """The IR activation an activation module applies, or why it has none."""
    settings = module.settings
    if module.type in _PLAIN_ACTIVATIONS:
        return _PLAIN_ACTIVATIONS[module.type], {}
    if module.type == "LeakyReLU":
        return Activation.LEAKY_RELU, {"alpha": float(settings.get("negative_slope", 0.01))}
    if module.type == "ELU":
        return Activation.ELU, {"alpha": float(settings.get("alpha", 1.0))}
    if module.type == "GELU":
        return Activation.GELU, {"approximate": settings.get("approximate", "none")}
    if module.type == "Softplus":
        return Activation.SOFTPLUS, {"beta": float(settings.get("beta", 1.0)), "threshold": float(settings.get("threshold", 20.0))}
    if module.type == "ReLU6":
        return Activation.RELU, {"max_value": 6.0}
    if module.type == "Hardtanh":
        return Activation.CLIP, {"min": float(settings.get("min_val", -1.0)), "max": float(settings.get("max_val", 1.0))}
    if module.type == "LogSoftmax":
        if settings.get("dim") not in (1, -1, None):
            return f"LogSoftmax over dim {settings.get('dim')!r}: only the feature dimension (1 or -1) is supported"
        return Activation.LOG_SOFTMAX, {}
    if module.type == "Hardsigmoid":
        return Activation.HARD_SIGMOID, dict(HARDSIGMOID_PARAMS)
    if module.type == "Softmax":
        if settings.get("dim") not in (1, -1, None):  # None: torch picks dim 1 for 2-D inputs
            return f"Softmax over dim {settings.get('dim')!r}: only the feature dimension (1 or -1) is supported"
        return Activation.SOFTMAX, {}
    return f"{module.type} is not a supported module"


def modules_to_model(
    modules: Sequence[TorchModule],
    *,
    task: Any = None,
    classes: Any = None,
    metadata: Metadata | None = None,
    feature_names: Sequence[str] | None = None,
    what: str = "the network",
) -> Model:
    """The model graph of a chain of modules.

    An activation right after a Linear becomes that dense layer's activation;
    anywhere else it is an activation layer of its own.

    Raises:
        UnsupportedModelError: modules the graph cannot hold, each named by its path (all listed).
        UsageError: ``task``/``classes`` do not fit the output layer.
    """
    problems: list[str] = []
    steps: list[PreprocessStep] = []
    layers: list[Any] = []
    width: int | None = None
    dtype = next((np.dtype(t.dtype) for m in modules for t in m.tensors.values() if t.dtype.kind == "f"), np.dtype(np.float32))
    for module in modules:
        name = module.path or module.type
        if module.type in SKIPPED_TYPES:
            continue
        if module.type == PREPROCESSING:
            if layers:
                problems.append(f"{name}: preprocessing after the first layer")
            else:
                steps.append(_preprocessing_step(module))
            continue
        layer = _layer(module, width, dtype, problems)
        if layer is None:
            continue
        if isinstance(layer, ActivationLayer) and layers and _open_dense(layers[-1]):
            dense = layers[-1]
            layers[-1] = DenseLayer(dense.weights, dense.bias, layer.activation, dense.name, layer.activation_params)
        else:
            layers.append(layer)
        if isinstance(layer, DenseLayer):
            width = layer.n_outputs
        elif width is None and isinstance(layer, (BatchNormLayer, PReLULayer)):
            width = int((layer.mean if isinstance(layer, BatchNormLayer) else layer.slopes).shape[0])
    if not any(isinstance(layer, DenseLayer) for layer in layers) and not problems:
        problems.append("no Linear layer")
    if problems:
        raise UnsupportedModelError(f"{what} holds modules nnconvert cannot convert", problems)
    n_features = _input_width(layers)
    try:
        shell = Model(layers=tuple(layers), head=Head(Task.RAW), input=InputSpec(n_features))
        return Model(
            layers=tuple(layers),
            head=detected_head(shell.output_activation, shell.n_outputs, task, classes),
            input=InputSpec(n_features, feature_names=None if feature_names is None else tuple(feature_names)),
            steps=tuple(steps),
            metadata=metadata or Metadata(),
        )
    except InvalidModelError as exc:
        raise UnsupportedModelError(f"{what} is not a consistent chain of layers: {exc}") from None


def _open_dense(layer: Any) -> bool:
    return isinstance(layer, DenseLayer) and layer.activation == Activation.IDENTITY


def _input_width(layers: Sequence[Any]) -> int:
    for layer in layers:
        if isinstance(layer, DenseLayer):
            return layer.n_inputs
        if isinstance(layer, BatchNormLayer):
            return int(layer.mean.shape[0])
        if isinstance(layer, PReLULayer) and layer.slopes.shape[0] > 1:
            return int(layer.slopes.shape[0])
        for array in (getattr(layer, "scale", None), getattr(layer, "offset", None)):
            if array is not None:
                return int(array.shape[0])
    return layers[0].n_inputs  # a dense layer is always there: checked before


def _layer(module: TorchModule, width: int | None, dtype: np.dtype, problems: list[str]) -> Any:
    """The graph layer of one module (None, with a problem recorded, when there is none)."""
    name = module.path or module.type
    if module.type == "Linear":
        return _dense(module)
    if module.type == "BatchNorm1d":
        return _batch_norm(module, name, problems)
    if module.type == "LayerNorm":
        return _layer_norm(module, name, width, problems)
    if module.type == "PReLU":
        slopes = module.tensors["weight"].reshape(-1)
        if slopes.shape[0] == 1 and width is not None:  # one shared slope: one per unit in the graph
            slopes = np.full(width, slopes[0], dtype=slopes.dtype)
        return PReLULayer(slopes, module.path)
    activation = ir_activation(module)
    if isinstance(activation, str):
        problems.append(f"{name} ({module.type}): {activation}")
        return None
    kind, params = activation
    if kind == Activation.SOFTPLUS and params == {"beta": 1.0, "threshold": 20.0} and dtype.itemsize <= 4:
        # above 20, log1p(exp(x)) - x < 2.1e-9, below half a float32 ulp of x: the plain softplus, which every format holds
        params = {}
    return ActivationLayer(kind, params, module.path)


def _batch_norm(module: TorchModule, name: str, problems: list[str]) -> BatchNormLayer | None:
    tensors = module.tensors
    if "running_mean" not in tensors or "running_var" not in tensors:
        problems.append(f"{name} (BatchNorm1d): no running statistics (track_running_stats=False normalizes with each batch's own)")
        return None
    return BatchNormLayer(
        tensors["running_mean"],
        tensors["running_var"],
        float(module.settings.get("eps", 1e-5)),
        tensors.get("weight"),
        tensors.get("bias"),
        module.path,
    )


def _layer_norm(module: TorchModule, name: str, width: int | None, problems: list[str]) -> LayerNormLayer | None:
    shape = module.settings.get("normalized_shape")
    if shape is not None and len(tuple(shape)) != 1:
        problems.append(f"{name} (LayerNorm): normalized_shape {tuple(shape)}: only the feature dimension is supported")
        return None
    return LayerNormLayer(float(module.settings.get("eps", 1e-5)), module.tensors.get("weight"), module.tensors.get("bias"), name=module.path)


def _dense(module: TorchModule) -> DenseLayer:
    weight = module.tensors["weight"]
    bias = module.tensors.get("bias")
    if bias is None:  # Linear(bias=False) computes x @ W.T: a zero bias is exact
        bias = np.zeros(weight.shape[0], dtype=weight.dtype)
    return DenseLayer(np.ascontiguousarray(weight.T), np.asarray(bias), Activation.IDENTITY, module.path)


def _preprocessing_step(module: TorchModule) -> PreprocessStep:
    ops = [ElementwiseOp(op, module.tensors[f"op{o}"]) for o, op in enumerate(module.settings["ops"])]
    settings = module.settings
    return PreprocessStep(settings.get("kind", "affine"), tuple(ops), settings.get("name", ""), settings.get("params", {}))


def detected_head(activation: Activation, n_out: int, task: Any = None, classes: Any = None) -> Head:
    """The head: what the output says (softmax or log_softmax: multiclass, one sigmoid output: binary,
    anything else: raw outputs), then the ``task``/``classes`` options, by the package's head policy."""
    last = OutputSummary("output", n_out, activation)
    return head_with_options(default_head(task_from_output(last), last), last, task, classes)
