"""The model graph every conversion passes through.

A :class:`Model` is preprocessing steps, then dense layers (``x @ W + b`` with
``W`` stored ``(n_in, n_out)``), each followed by its activation, then a
:class:`Head` saying how outputs become predictions. Everything is a frozen
dataclass validated at construction, and the model runs in numpy: it is the
oracle of the test suite and of ``verify``.

Arrays are kept in the dtype they were trained in and marked read-only; the
IR never copies or casts weights unless asked (:meth:`Model.astype`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from types import MappingProxyType
from typing import Any

import numpy as np

from . import head as head_policy
from .array_keys import layer_names
from .errors import InvalidModelError
from .head import Head, Task

__all__ = [
    "layer_names",
    "Activation",
    "Task",
    "ElementwiseOp",
    "PreprocessStep",
    "DenseLayer",
    "InputSpec",
    "Head",
    "Metadata",
    "Model",
    "ACTIVATION_DEFAULTS",
    "FLOAT_DTYPES",
]

FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


class Activation(str, Enum):
    """Every activation the IR knows, one spelling each (adapters map their own names)."""

    IDENTITY = "identity"
    RELU = "relu"
    TANH = "tanh"
    LOGISTIC = "logistic"
    SOFTMAX = "softmax"
    EXP = "exp"
    LEAKY_RELU = "leaky_relu"
    ELU = "elu"
    SELU = "selu"
    SOFTPLUS = "softplus"
    GELU = "gelu"
    SILU = "silu"
    HARD_SIGMOID = "hard_sigmoid"


# Parameters of the parametrised activations, with their defaults. The names
# follow ONNX (Elu/LeakyRelu alpha, Selu alpha/gamma, HardSigmoid alpha/beta);
# SELU's defaults are the exact constants of Klambauer et al. as Keras and torch use.
ACTIVATION_DEFAULTS: Mapping[Activation, Mapping[str, Any]] = MappingProxyType(
    {
        Activation.LEAKY_RELU: {"alpha": 0.01},
        Activation.ELU: {"alpha": 1.0},
        Activation.SELU: {"alpha": 1.6732632423543772, "gamma": 1.0507009873554805},
        Activation.HARD_SIGMOID: {"alpha": 0.2, "beta": 0.5},
        Activation.GELU: {"approximate": "none"},
    }
)


ELEMENTWISE_OPS = ("sub", "div", "mul", "add", "clip")


def _frozen_array(values: Any, what: str) -> np.ndarray:
    """A read-only view (no copy when ``values`` is already an ndarray)."""
    array = np.asarray(values)
    if array.dtype == object:
        raise InvalidModelError(f"{what}: expected a numeric array, got objects")
    view = array.view()
    view.flags.writeable = False
    return view


def _check_float_array(array: np.ndarray, what: str) -> None:
    if array.dtype not in FLOAT_DTYPES:
        raise InvalidModelError(f"{what}: expected a floating-point array, got dtype {array.dtype}")
    if not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0].tolist()
        raise InvalidModelError(f"{what}: non-finite value {array[tuple(bad)]} at index {bad}")


@dataclass(frozen=True, eq=False)
class ElementwiseOp:
    """One column-wise arithmetic operation of a preprocessing step.

    ``op`` is one of sub, div, mul, add (``x <op> operand``, operand a scalar or
    one value per feature) or clip (operand ``[low, high]``).
    """

    op: str
    operand: np.ndarray

    def __post_init__(self) -> None:
        if self.op not in ELEMENTWISE_OPS:
            raise InvalidModelError(f"unknown elementwise op {self.op!r}; expected one of {ELEMENTWISE_OPS}")
        operand = _frozen_array(self.operand, f"{self.op} operand")
        _check_float_array(operand, f"{self.op} operand")
        if self.op == "clip" and operand.shape != (2,):
            raise InvalidModelError(f"clip operand must be [low, high], got shape {operand.shape}")
        if operand.ndim > 1:
            raise InvalidModelError(f"{self.op} operand must be a scalar or 1-D, got shape {operand.shape}")
        object.__setattr__(self, "operand", operand)

    def apply(self, x: np.ndarray) -> None:
        """Apply in place, keeping ``x``'s dtype (as scikit-learn's scalers do)."""
        if self.op == "clip":
            np.clip(x, self.operand[0], self.operand[1], out=x)
            return
        ufunc = {"sub": np.subtract, "div": np.divide, "mul": np.multiply, "add": np.add}[self.op]
        ufunc(x, self.operand, out=x, casting="unsafe")


@dataclass(frozen=True, eq=False)
class PreprocessStep:
    """A preprocessing step reproduced operation for operation.

    ``kind`` names the original transformer (standard_scaler, minmax_scaler,
    maxabs_scaler, normalization, rescaling, or affine for anything else) so a
    writer can rebuild it; ``params`` holds its scalar settings (feature_range...).
    """

    kind: str
    ops: tuple[ElementwiseOp, ...]
    name: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", tuple(self.ops))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        if not self.ops:
            raise InvalidModelError(f"preprocessing step {self.name or self.kind!r} has no operations")

    def apply(self, x: np.ndarray) -> None:
        """Apply every operation in place."""
        for op in self.ops:
            op.apply(x)


@dataclass(frozen=True, eq=False)
class DenseLayer:
    """``activation(x @ weights + bias)`` with ``weights`` of shape ``(n_in, n_out)``."""

    weights: np.ndarray
    bias: np.ndarray
    activation: Activation = Activation.IDENTITY
    name: str = ""
    activation_params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_inputs(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_outputs(self) -> int:
        return int(self.weights.shape[1])

    @property
    def dtype(self) -> np.dtype:
        return self.weights.dtype


@dataclass(frozen=True)
class InputSpec:
    """The model's input: its name, width and (when known) feature names."""

    n_features: int
    name: str = "X"
    feature_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.n_features, bool) or not isinstance(self.n_features, (int, np.integer)):
            raise InvalidModelError(f"input n_features must be an integer, got {self.n_features!r}")
        object.__setattr__(self, "n_features", int(self.n_features))
        if self.n_features < 1:
            raise InvalidModelError(f"input n_features must be at least 1, got {self.n_features}")
        if self.feature_names is not None:
            names = tuple(str(n) for n in self.feature_names)
            if len(names) != self.n_features:
                raise InvalidModelError(
                    f"input has {self.n_features} features but {len(names)} feature names"
                )
            object.__setattr__(self, "feature_names", names)


@dataclass(frozen=True)
class Metadata:
    """Where the model came from; free key-value pairs in ``properties``; ``source_dtype``: the narrower
    dtype the weights are an upcast of (None: none, or unknown), see :mod:`nnconvert.source_dtype`."""

    producer: str = "nnconvert"
    source_framework: str | None = None
    source_class: str | None = None
    source_version: str | None = None
    properties: Mapping[str, str] = field(default_factory=dict)
    source_dtype: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "properties", MappingProxyType({str(k): str(v) for k, v in dict(self.properties).items()})
        )
        source = self.source_dtype.name if isinstance(self.source_dtype, np.dtype) else self.source_dtype
        if source is not None and source not in [d.name for d in FLOAT_DTYPES]:
            raise InvalidModelError(f"metadata source_dtype must be float16, float32 or float64, got {source!r}")
        object.__setattr__(self, "source_dtype", source)


@dataclass(frozen=True, eq=False)
class Model:
    """A trained MLP: preprocessing, dense layers, head, input, metadata.

    Construction validates the whole graph and raises
    :class:`~nnconvert.errors.InvalidModelError` naming the layer at fault.
    """

    layers: tuple[DenseLayer, ...]
    head: Head
    input: InputSpec
    steps: tuple[PreprocessStep, ...] = ()
    metadata: Metadata = field(default_factory=Metadata)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "steps", tuple(self.steps))
        if not self.layers:
            raise InvalidModelError("a model needs at least one dense layer")
        object.__setattr__(self, "layers", tuple(self._validated_layers()))
        self._validate_steps()
        self._validate_head()

    # -- validation ---------------------------------------------------------

    def _validated_layers(self) -> list[DenseLayer]:
        validated = []
        n_in = self.input.n_features
        dtype = None
        for index, layer in enumerate(self.layers):
            where = f"layer {index} ({layer.name!r})" if layer.name else f"layer {index}"
            layer = _validated_layer(layer, where, n_in)
            if dtype is None:
                dtype = layer.dtype
            elif layer.dtype != dtype:
                raise InvalidModelError(
                    f"{where}: weights are {layer.dtype} but earlier layers are {dtype}; "
                    "all layers must share one dtype"
                )
            validated.append(layer)
            n_in = layer.n_outputs
        return validated

    def _validate_steps(self) -> None:
        for index, step in enumerate(self.steps):
            for op in step.ops:
                # a clip's operand is [low, high], checked by ElementwiseOp itself
                if op.op != "clip" and op.operand.ndim == 1 and op.operand.size not in (1, self.input.n_features):
                    raise InvalidModelError(
                        f"preprocessing step {index} ({step.name or step.kind!r}): {op.op} operand has "
                        f"{op.operand.size} values, expected {self.input.n_features} (one per input feature) or 1"
                    )

    def _validate_head(self) -> None:
        n_out = self.n_outputs
        classes = self.head.classes
        task = self.head.task
        if classes is None:  # Head already refuses classifiers without labels
            return
        last = f"the last layer ({self.layers[-1].name or len(self.layers) - 1})"
        if task == Task.BINARY:
            if len(classes) != 2 or n_out not in (1, 2):
                raise InvalidModelError(
                    f"a binary head needs 2 classes and 1 or 2 outputs; got {len(classes)} classes "
                    f"and {n_out} outputs from {last}"
                )
        elif task in (Task.MULTICLASS, Task.MULTILABEL):
            if len(classes) != n_out:
                raise InvalidModelError(
                    f"a {task.value} head has {len(classes)} classes but {last} has {n_out} outputs"
                )

    # -- properties ---------------------------------------------------------

    @property
    def dtype(self) -> np.dtype:
        """The dtype the model computes in (its weights' dtype)."""
        return self.layers[0].dtype

    @property
    def n_features(self) -> int:
        return self.input.n_features

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].n_outputs

    @property
    def output_activation(self) -> Activation:
        return self.layers[-1].activation

    @property
    def n_parameters(self) -> int:
        return sum(layer.weights.size + layer.bias.size for layer in self.layers)

    @property
    def task(self) -> Task:
        return self.head.task

    @property
    def classes(self) -> np.ndarray | None:
        return self.head.classes

    # -- transformations ----------------------------------------------------

    def astype(self, dtype: Any) -> Model:
        """A copy computing in ``dtype`` (weights and step operands cast); an upcast records its source dtype."""
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        layers = [replace(layer, weights=layer.weights.astype(dtype), bias=layer.bias.astype(dtype)) for layer in self.layers]
        steps = [
            replace(step, ops=tuple(ElementwiseOp(op.op, op.operand.astype(dtype)) for op in step.ops))
            for step in self.steps
        ]
        # an upcast remembers the narrower dtype it can be restored to; a downcast has nothing to restore
        source = np.dtype(self.metadata.source_dtype or self.dtype)
        metadata = replace(self.metadata, source_dtype=source.name if source.itemsize < dtype.itemsize else None)
        return replace(self, layers=tuple(layers), steps=tuple(steps), metadata=metadata)

    def as_source_dtype(self) -> Model:
        """The model in its source's dtype when its weights are an exact upcast of it (else itself)."""
        from .source_dtype import restore_source_dtype

        return restore_source_dtype(self)

    def equals(self, other: Model) -> bool:
        """True when both graphs are identical: same dtypes, bit-identical arrays, same head and metadata."""
        return _model_signature(self) == _model_signature(other)

    # -- execution ----------------------------------------------------------

    def forward(self, X: Any, *, return_intermediates: bool = False) -> Any:
        """The last layer's activated outputs, shape ``(n_samples, n_outputs)``.

        With ``return_intermediates`` a list is returned: the preprocessed
        input, then each layer's activated output.
        """
        x = self._prepare_input(X)
        for step in self.steps:
            step.apply(x)
        outputs = [x.copy()] if return_intermediates else []
        for layer in self.layers:
            x = x @ layer.weights
            x += layer.bias
            apply_activation(x, layer.activation, layer.activation_params)
            if return_intermediates:
                outputs.append(x)
        return outputs if return_intermediates else x

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes`` (as scikit-learn)."""
        head_policy.require_classifier(self.head, "predict_proba")  # before running the model
        return head_policy.probabilities(self.head, self.forward(X))

    def predict(self, X: Any) -> np.ndarray:
        """Labels for classifiers (indicator rows for multilabel), values otherwise."""
        return head_policy.predictions(self.head, self.forward(X))

    def _prepare_input(self, X: Any) -> np.ndarray:
        x = np.array(X, dtype=self.dtype, copy=True)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise InvalidModelError(
                f"input has shape {np.shape(X)}, expected (n_samples, {self.n_features})"
            )
        return x


def _validated_layer(layer: DenseLayer, where: str, n_in: int) -> DenseLayer:
    weights = _frozen_array(layer.weights, f"{where} weights")
    bias = _frozen_array(layer.bias, f"{where} bias")
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
    _check_float_array(weights, f"{where} weights")
    _check_float_array(bias, f"{where} bias")
    if bias.dtype != weights.dtype:
        raise InvalidModelError(f"{where}: bias is {bias.dtype} but weights are {weights.dtype}")
    try:
        activation = Activation(layer.activation)
    except ValueError:
        raise InvalidModelError(
            f"{where}: unknown activation {layer.activation!r}; expected one of {[a.value for a in Activation]}"
        ) from None
    params = _validated_activation_params(activation, layer.activation_params, where)
    return replace(layer, weights=weights, bias=bias, activation=activation, activation_params=params)


def _validated_activation_params(activation: Activation, given: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    defaults = ACTIVATION_DEFAULTS.get(activation, {})
    unknown = set(given) - set(defaults)
    if unknown:
        raise InvalidModelError(
            f"{where}: activation {activation.value} takes parameters {sorted(defaults) or 'none'}, got {sorted(unknown)}"
        )
    params = {**defaults, **given}
    for key, value in params.items():
        if key == "approximate":
            if value not in ("none", "tanh"):
                raise InvalidModelError(f"{where}: gelu approximate must be 'none' or 'tanh', got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidModelError(f"{where}: activation parameter {key} must be a finite number, got {value!r}")
        else:
            params[key] = float(value)
    return MappingProxyType(params)


# -- activations ------------------------------------------------------------


def _expit(x: np.ndarray) -> None:
    try:  # scipy's expit is what scikit-learn uses; the numpy form differs by an ulp
        from scipy.special import expit
    except ImportError:  # pragma: no cover - scipy comes with scikit-learn
        np.negative(x, out=x)
        np.exp(x, out=x)
        x += 1
        np.reciprocal(x, out=x)
        return
    expit(x, out=x)


def _softmax(x: np.ndarray) -> None:
    # the same operations as scikit-learn's softmax, for bit-identical float64 results
    tmp = x - x.max(axis=1)[:, np.newaxis]
    np.exp(tmp, out=x)
    x /= x.sum(axis=1)[:, np.newaxis]


def _erf(x: np.ndarray) -> np.ndarray:
    try:
        from scipy.special import erf
    except ImportError:  # pragma: no cover
        return np.vectorize(math.erf, otypes=[x.dtype])(x)
    return erf(x)


def apply_activation(x: np.ndarray, activation: Activation, params: Mapping[str, Any]) -> None:
    """Apply ``activation`` to ``x`` in place."""
    if activation == Activation.IDENTITY:
        return
    if activation == Activation.RELU:
        np.maximum(x, 0, out=x)
    elif activation == Activation.TANH:
        np.tanh(x, out=x)
    elif activation == Activation.LOGISTIC:
        _expit(x)
    elif activation == Activation.SOFTMAX:
        _softmax(x)
    elif activation == Activation.EXP:
        np.exp(x, out=x)
    else:
        x[...] = _other_activation(x, activation, params)


def _other_activation(x: np.ndarray, activation: Activation, params: Mapping[str, Any]) -> np.ndarray:
    dtype = x.dtype.type
    if activation == Activation.LEAKY_RELU:
        return np.where(x >= 0, x, x * dtype(params["alpha"]))
    if activation in (Activation.ELU, Activation.SELU):
        elu = np.where(x > 0, x, dtype(params["alpha"]) * np.expm1(np.minimum(x, 0)))
        return elu if activation == Activation.ELU else dtype(params["gamma"]) * elu
    if activation == Activation.SOFTPLUS:
        return np.logaddexp(x, dtype(0))
    if activation == Activation.SILU:
        s = x.copy()
        _expit(s)
        return x * s
    if activation == Activation.HARD_SIGMOID:
        return np.clip(x * dtype(params["alpha"]) + dtype(params["beta"]), 0, 1)
    if activation == Activation.GELU:
        if params["approximate"] == "tanh":
            inner = dtype(math.sqrt(2 / math.pi)) * (x + dtype(0.044715) * x**3)
            return dtype(0.5) * x * (1 + np.tanh(inner))
        return dtype(0.5) * x * (1 + _erf(x / dtype(math.sqrt(2))))
    raise InvalidModelError(f"no numpy implementation of activation {activation.value}")  # pragma: no cover


# -- comparison -------------------------------------------------------------


def _array_signature(array: np.ndarray | None) -> Any:
    if array is None:
        return None
    return (array.dtype.str, array.shape, np.ascontiguousarray(array).tobytes())


def _model_signature(model: Model) -> Any:
    return (
        tuple(
            (s.kind, s.name, dict(s.params), tuple((o.op, _array_signature(o.operand)) for o in s.ops))
            for s in model.steps
        ),
        tuple(
            (
                layer.name,
                layer.activation,
                dict(layer.activation_params),
                _array_signature(layer.weights),
                _array_signature(layer.bias),
            )
            for layer in model.layers
        ),
        (model.head.task, _array_signature(model.head.classes)),
        model.input,
        model.metadata,
    )

