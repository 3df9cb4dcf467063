"""The model graph every conversion passes through.

A :class:`Model` is preprocessing steps, then layers of a few kinds
(:data:`LAYER_KINDS`: dense ``x @ W + b`` with ``W`` stored ``(n_in, n_out)``
and its activation, batch and layer normalization, an activation on its own,
PReLU), then a :class:`Head` saying how outputs become predictions.
Everything is a frozen dataclass validated at construction, and the model runs
in numpy: it is the oracle of the test suite and of ``verify``.

Arrays are kept in the dtype they were trained in and marked read-only; the
IR never copies or casts weights unless asked (:meth:`Model.astype`).
A format that holds only some kinds states them and refuses the rest by name
with :func:`require_supported`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from . import head as head_policy
from ._activations import ACTIVATION_DEFAULTS, ACTIVATION_OPTIONAL_PARAMS, Activation, apply_activation
from ._layers import (
    FLOAT_DTYPES,
    LAYER_KINDS,
    ActivationLayer,
    BatchNormLayer,
    DenseLayer,
    Layer,
    LayerNormLayer,
    PReLULayer,
    check_float_array,
    describe,
    frozen_array,
    layer_arrays,
    validated_layer,
)
from .array_keys import layer_names
from .errors import InvalidModelError, UnsupportedModelError
from .head import Head, Task

__all__ = [
    "Activation",
    "Task",
    "ElementwiseOp",
    "PreprocessStep",
    "DenseLayer",
    "BatchNormLayer",
    "LayerNormLayer",
    "ActivationLayer",
    "PReLULayer",
    "Layer",
    "LAYER_KINDS",
    "InputSpec",
    "Head",
    "Metadata",
    "Model",
    "ACTIVATION_DEFAULTS",
    "ACTIVATION_OPTIONAL_PARAMS",
    "FLOAT_DTYPES",
    "apply_activation",
    "layer_arrays",
    "layer_names",
    "unsupported_layers",
    "require_supported",
]

_frozen_array = frozen_array
_check_float_array = check_float_array


ELEMENTWISE_OPS = ("sub", "div", "mul", "add", "clip")


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
    """A trained MLP: preprocessing, layers (at least one dense), head, input, metadata.

    Construction validates the whole graph and raises
    :class:`~nnconvert.errors.InvalidModelError` naming the layer at fault.
    """

    layers: tuple[Layer, ...]
    head: Head
    input: InputSpec
    steps: tuple[PreprocessStep, ...] = ()
    metadata: Metadata = field(default_factory=Metadata)
    # set by validation: the dtype of every array and the width of the last stage
    _dtype: Any = field(init=False, repr=False, default=None)
    _n_outputs: int = field(init=False, repr=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "steps", tuple(self.steps))
        if not any(isinstance(layer, DenseLayer) for layer in self.layers):
            raise InvalidModelError("a model needs at least one dense layer")
        object.__setattr__(self, "layers", tuple(self._validated_layers()))
        self._validate_steps()
        self._validate_head()

    # -- validation ---------------------------------------------------------

    def _validated_layers(self) -> list[Layer]:
        validated: list[Layer] = []
        width = self.input.n_features
        dtype = None
        for index, layer in enumerate(self.layers):
            where = describe(layer, index) if isinstance(layer, _LAYER_TYPES) else f"layer {index}"
            layer = validated_layer(layer, where, width)
            for array in layer_arrays(layer).values():
                if array is None:
                    continue
                if dtype is None:
                    dtype = array.dtype
                elif array.dtype != dtype:
                    raise InvalidModelError(
                        f"{where}: arrays are {array.dtype} but earlier layers are {dtype}; "
                        "all layers must share one dtype"
                    )
            validated.append(layer)
            if isinstance(layer, DenseLayer):
                width = layer.n_outputs
        object.__setattr__(self, "_dtype", dtype)
        object.__setattr__(self, "_n_outputs", width)
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
        return np.dtype(self._dtype)

    @property
    def n_features(self) -> int:
        return self.input.n_features

    @property
    def n_outputs(self) -> int:
        return int(self._n_outputs)

    @property
    def output_activation(self) -> Activation:
        """The last layer's activation (identity after a normalization, prelu after a PReLU layer)."""
        return self.layers[-1].activation

    @property
    def n_parameters(self) -> int:
        return sum(a.size for layer in self.layers for a in layer_arrays(layer).values() if a is not None)

    @property
    def layer_kinds(self) -> frozenset[str]:
        """The kinds of layer this model uses (see :data:`LAYER_KINDS`)."""
        return frozenset(layer.kind for layer in self.layers)

    def layer_shapes(self) -> list[tuple[int, int]]:
        """``(n_in, n_out)`` of every layer (equal for all but dense layers)."""
        shapes = []
        width = self.n_features
        for layer in self.layers:
            n_out = layer.n_outputs if isinstance(layer, DenseLayer) else width
            shapes.append((width, n_out))
            width = n_out
        return shapes

    def output_summary(self) -> head_policy.OutputSummary:
        """The last layer's name, the model's width and its last activation: what the head policy looks at."""
        last = self.layers[-1]
        return head_policy.OutputSummary(last.name, self.n_outputs, self.output_activation)

    @property
    def dense_layers(self) -> tuple[DenseLayer, ...]:
        return tuple(layer for layer in self.layers if isinstance(layer, DenseLayer))

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
        layers = [
            replace(layer, **{k: a.astype(dtype) for k, a in layer_arrays(layer).items() if a is not None})  # type: ignore[arg-type]
            for layer in self.dequantized().layers  # int8 weights have no other dtype: cast their float form
        ]
        steps = [
            replace(step, ops=tuple(ElementwiseOp(op.op, op.operand.astype(dtype)) for op in step.ops))
            for step in self.steps
        ]
        # an upcast remembers the narrower dtype it can be restored to; a downcast has nothing to restore
        source = np.dtype(self.metadata.source_dtype or self.dtype)
        metadata = replace(self.metadata, source_dtype=source.name if source.itemsize < dtype.itemsize else None)
        return replace(self, layers=tuple(layers), steps=tuple(steps), metadata=metadata)

    def dequantized(self) -> Model:
        """The float32 model an int8 model stands for (itself when not quantized)."""
        from .quantization import dequantized

        return dequantized(self)

    def as_source_dtype(self) -> Model:
        """The model in its source's dtype when its weights are an exact upcast of it (else itself)."""
        from .source_dtype import restore_source_dtype

        return restore_source_dtype(self)

    def equals(self, other: Model) -> bool:
        """True when both graphs are identical: same dtypes, bit-identical arrays, same head and metadata."""
        return _model_signature(self) == _model_signature(other)

    # -- execution ----------------------------------------------------------

    def forward(self, X: Any, *, return_intermediates: bool = False) -> Any:
        """The last layer's outputs, shape ``(n_samples, n_outputs)`` (log-probabilities after log_softmax).

        With ``return_intermediates`` a list is returned: the preprocessed
        input, then each layer's output.
        """
        x = self._prepare_input(X)
        for step in self.steps:
            step.apply(x)
        outputs = [x.copy()] if return_intermediates else []
        for layer in self.layers:
            x = layer.apply(x)
            if return_intermediates:
                outputs.append(x)
        return outputs if return_intermediates else x

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes`` (as scikit-learn); exp of a log_softmax head."""
        head_policy.require_classifier(self.head, "predict_proba")  # before running the model
        y = self.forward(X)
        if self.output_activation == Activation.LOG_SOFTMAX:
            y = np.exp(y)
        return head_policy.probabilities(self.head, y)

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


_LAYER_TYPES = (DenseLayer, BatchNormLayer, LayerNormLayer, ActivationLayer, PReLULayer)


# -- what a format can hold -------------------------------------------------


def unsupported_layers(
    model: Model,
    kinds: Collection[str],
    activations: Collection[Activation] | None = None,
) -> list[str]:
    """One line per layer whose kind is not in ``kinds`` or whose activation is not in ``activations``.

    ``activations`` None accepts every activation.
    """
    problems = []
    names = layer_names(model.layers)
    for index, layer in enumerate(model.layers):
        label = f"layer {index} ({names[index]!r})"
        if layer.kind not in kinds:
            what = f" ({_activation_text(layer)})" if isinstance(layer, ActivationLayer) else ""
            problems.append(f"{label}: {layer.kind} layer{what}")
        elif activations is not None and isinstance(layer, (DenseLayer, ActivationLayer)) and layer.activation not in activations:
            problems.append(f"{label}: activation {_activation_text(layer)}")
    return problems


def _activation_text(layer: DenseLayer | ActivationLayer) -> str:
    params = f" {dict(layer.activation_params)}" if layer.activation_params else ""
    return f"{layer.activation.value}{params}"


def require_supported(
    model: Model,
    target: str,
    kinds: Collection[str],
    activations: Collection[Activation] | None = None,
    *,
    hint: str = "",
) -> None:
    """Raise :class:`UnsupportedModelError` naming every layer ``target`` cannot hold.

    Args:
        model: the model to be written.
        target: what is being written, for the message (``"format 'sklearn'"``).
        kinds: the layer kinds the target holds.
        activations: the activations it holds (None: all).
        hint: a sentence appended to the message (what the user can do).
    """
    problems = unsupported_layers(model, kinds, activations)
    if problems:
        held = ", ".join(k for k in LAYER_KINDS if k in kinds)
        message = f"{target} cannot hold {len(problems)} layer(s) of this model (it holds: {held}"
        if activations is not None:
            message += f"; activations {', '.join(a.value for a in Activation if a in activations)}"
        message += ")" + (f"; {hint}" if hint else "")
        raise UnsupportedModelError(message, problems)


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
                layer.kind,
                layer.name,
                layer.settings(),
                tuple((k, _array_signature(a)) for k, a in layer_arrays(layer).items()),
                _quantization_signature(getattr(layer, "quantization", None)),
            )
            for layer in model.layers
        ),
        (model.head.task, _array_signature(model.head.classes)),
        model.input,
        model.metadata,
    )


def _quantization_signature(q: Any) -> Any:
    if q is None:
        return None
    arrays = tuple(_array_signature(a) for a in (q.values, q.scale, q.zero_point))
    return (arrays, q.input_scale, q.input_zero_point)
