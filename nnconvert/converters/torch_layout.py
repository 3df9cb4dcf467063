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

from ..errors import InvalidModelError, UnsupportedModelError, UsageError
from ..ir import ACTIVATION_DEFAULTS, Activation, DenseLayer, ElementwiseOp, Head, InputSpec, Metadata, Model, PreprocessStep, Task

__all__ = [
    "TorchModule",
    "PREPROCESSING",
    "OWN_MODULES",
    "ACTIVATION_TYPES",
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
    "Exp": Activation.EXP,  # nnconvert's own module (torch has none)
}
ACTIVATION_TYPES = frozenset(_PLAIN_ACTIVATIONS) | {"LeakyReLU", "ELU", "GELU", "Softplus", "Hardsigmoid", "Softmax"}


# -- model graph -> modules ---------------------------------------------------------


def model_to_modules(model: Model) -> list[TorchModule]:
    """The Sequential's entries computing ``model``: preprocessing, then each layer and its activation.

    Raises:
        UnsupportedModelError: an activation or step torch has no standard module for (all listed).
    """
    problems: list[str] = []
    modules = [_preprocessing_module(step) for step in model.steps]
    for index, layer in enumerate(model.layers):
        modules.extend(_layer_modules(layer, _where(layer, index), problems))
    if problems:
        raise UnsupportedModelError("the model cannot be written as torch modules without changing what it computes", problems)
    return modules


def _where(layer: Any, index: int) -> str:
    return f"layer {index} ({layer.name!r})" if getattr(layer, "name", "") else f"layer {index}"


def _preprocessing_module(step: PreprocessStep) -> TorchModule:
    tensors = {f"op{o}": np.asarray(op.operand) for o, op in enumerate(step.ops)}
    settings = {"ops": [op.op for op in step.ops], "kind": step.kind, "name": step.name, "params": dict(step.params)}
    sources = {id(op.operand): (f"op{o}", False) for o, op in enumerate(step.ops)}
    return TorchModule(PREPROCESSING, settings, tensors, sources=sources)


def _layer_modules(layer: Any, where: str, problems: list[str]) -> list[TorchModule]:
    if isinstance(layer, DenseLayer):
        linear = TorchModule(
            "Linear",
            {"in_features": layer.n_inputs, "out_features": layer.n_outputs, "bias": True},
            {"weight": np.ascontiguousarray(layer.weights.T), "bias": np.asarray(layer.bias)},
            sources={id(layer.weights): ("weight", True), id(layer.bias): ("bias", False)},
        )
        activation = activation_module(layer.activation, layer.activation_params, where, problems)
        return [linear] if activation is None else [linear, activation]
    problems.append(f"{where}: a {type(layer).__name__} has no torch module here")
    return []


def activation_module(activation: Activation, params: Mapping[str, Any], where: str, problems: list[str]) -> TorchModule | None:
    """The torch module applying ``activation`` (None for identity); a problem is recorded when there is none."""
    params = dict(params)
    defaults = dict(ACTIVATION_DEFAULTS.get(activation, {}))
    if activation == Activation.IDENTITY:
        return None
    for type_name, plain in _PLAIN_ACTIVATIONS.items():
        if plain == activation and (activation != Activation.SELU or params == defaults):
            return TorchModule(type_name)
    if activation == Activation.LEAKY_RELU:
        return TorchModule("LeakyReLU", {"negative_slope": params["alpha"]})
    if activation == Activation.ELU:
        return TorchModule("ELU", {"alpha": params["alpha"]})
    if activation == Activation.GELU:
        return TorchModule("GELU", {"approximate": params["approximate"]})
    if activation == Activation.SOFTPLUS:
        return TorchModule("Softplus")
    if activation == Activation.SOFTMAX:
        return TorchModule("Softmax", {"dim": -1})
    if activation == Activation.HARD_SIGMOID and np.allclose([params["alpha"], params["beta"]], [1 / 6, 0.5], rtol=0, atol=1e-12):
        return TorchModule("Hardsigmoid")
    problems.append(f"{where}: activation {activation.value} with {params or 'no parameters'} has no standard torch module")
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
        if (settings.get("beta", 1.0), settings.get("threshold", 20.0)) != (1.0, 20.0):
            return f"Softplus(beta={settings.get('beta')}, threshold={settings.get('threshold')}) is not the plain softplus"
        return Activation.SOFTPLUS, {}
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
    """The model graph of a chain of modules (an activation right after a Linear folds into it).

    Raises:
        UnsupportedModelError: modules the graph cannot hold, each named by its path (all listed).
        UsageError: ``task``/``classes`` do not fit the output layer.
    """
    problems: list[str] = []
    steps: list[PreprocessStep] = []
    layers: list[DenseLayer] = []
    open_dense = False  # the last layer is a Linear whose activation is still identity
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
        if module.type == "Linear":
            layers.append(_dense(module))
            open_dense = True
            continue
        activation = ir_activation(module)
        if isinstance(activation, str):
            problems.append(f"{name} ({module.type}): {activation}")
        elif not open_dense:
            problems.append(f"{name} ({module.type}): an activation that does not follow a Linear layer directly")
        else:
            layers[-1] = DenseLayer(layers[-1].weights, layers[-1].bias, activation[0], layers[-1].name, activation[1])
            open_dense = False
    if not layers and not problems:
        problems.append("no Linear layer")
    if problems:
        raise UnsupportedModelError(f"{what} holds modules nnconvert cannot convert", problems)
    n_features = layers[0].n_inputs
    try:
        return Model(
            layers=tuple(layers),
            head=detected_head(layers[-1], task, classes),
            input=InputSpec(n_features, feature_names=None if feature_names is None else tuple(feature_names)),
            steps=tuple(steps),
            metadata=metadata or Metadata(),
        )
    except InvalidModelError as exc:
        raise UnsupportedModelError(f"{what} is not a consistent chain of layers: {exc}") from None


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


def detected_head(last: DenseLayer, task: Any = None, classes: Any = None) -> Head:
    """The head: ``task``/``classes`` when given, else what the output layer says (softmax: multiclass,
    one sigmoid output: binary, anything else: raw outputs)."""
    n_out, activation = last.n_outputs, last.activation
    if task is None:
        if activation == Activation.SOFTMAX and n_out >= 2:
            task = Task.MULTICLASS
        elif activation == Activation.LOGISTIC and n_out == 1:
            task = Task.BINARY
        elif classes is not None:
            raise UsageError(
                f"classes were given but the output layer ({n_out} outputs, {activation.value}) does not look like "
                "a classifier; also pass task='binary', 'multiclass' or 'multilabel'"
            )
        else:
            task = Task.RAW
    try:
        task = Task(task.value if isinstance(task, Task) else task)
    except ValueError:
        raise UsageError(f"task={task!r} is not a task; expected one of {[t.value for t in Task]}") from None
    if task in (Task.REGRESSION, Task.RAW):
        if classes is not None:
            raise UsageError(f"classes make no sense for task={task.value!r}")
        return Head(task)
    expected = 2 if task == Task.BINARY else n_out
    labels = np.arange(expected, dtype=np.int64) if classes is None else np.asarray(list(classes))
    if labels.ndim != 1 or len(labels) != expected:
        raise UsageError(f"task={task.value!r} with {n_out} outputs needs {expected} class labels, got {len(labels)}")
    try:
        return Head(task, labels)
    except InvalidModelError as exc:
        raise UsageError(f"the task/classes do not fit the model: {exc}") from None
