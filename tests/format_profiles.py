"""What each writable format documents it cannot hold, as predicates the tests check refusals against.

A writer may refuse a model only for a reason its format documents (docs/formats.md,
the writers' docstrings). ``REFUSALS[format]`` says, for any model graph, which problems
the writer must report: one text fragment per problem, in the writer's order; an empty
list means the format holds the model and must write it. Tests use it both ways: every
refusal must be predicted (and name each predicted problem), and every model predicted
to fit must be written.

``MIN_SHARE[format]`` is the share of the property tests' mixed model generator a
format must hold, so that a predicate cannot quietly grow to excuse everything.

The predicates are written from the documentation, not by calling the writers' own
checks: a writer that starts refusing more (or less) than it documents fails the tests.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nnconvert.ir import (
    ACTIVATION_DEFAULTS,
    Activation,
    ActivationLayer,
    DenseLayer,
    Model,
    Task,
    layer_arrays,
    layer_names,
)

__all__ = ["MIN_SHARE", "REFUSALS", "assert_documented_refusal", "refusal_problems"]


def _where(model: Model, index: int) -> str:
    return f"layer {index} ({layer_names(model.layers)[index]!r})"


# -- ONNX, JSON weights, HDF5: every model graph, save labels beyond int64 ----------------

_FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def _array_dtype_problems(model: Model, format_name: str) -> list[str]:
    """json and hdf5 store float16/32/64 arrays (the IR holds nothing else today)."""
    dtypes = {a.dtype for layer in model.layers for a in layer_arrays(layer).values() if a is not None}
    dtypes |= {op.operand.dtype for s in model.steps for op in s.ops}
    return [f"the {format_name} format stores float16/32/64 arrays" for d in sorted(dtypes, key=str) if d not in _FLOAT_DTYPES]


def _onnx_problems(model: Model) -> list[str]:
    """ONNX labels are int64 or strings; at the default opset every IR activation can be written."""
    classes = model.classes
    if classes is not None and classes.dtype.kind in "iu" and classes.size and int(classes.max()) > np.iinfo(np.int64).max:
        return ["does not fit the int64 labels of ONNX"]
    return []


# -- scikit-learn (pickle, skops): what MLPClassifier / MLPRegressor compute ------------------

SKLEARN_HIDDEN = (Activation.IDENTITY, Activation.LOGISTIC, Activation.TANH, Activation.RELU)


def sklearn_output_activations(task: Task, n_outputs: int) -> tuple[Activation, ...]:
    """The output activations scikit-learn computes for a head (poisson's exp came in 1.7)."""
    if task == Task.BINARY:
        return (Activation.LOGISTIC,) if n_outputs == 1 else (Activation.SOFTMAX,)
    if task == Task.MULTICLASS:
        return (Activation.SOFTMAX,)
    if task == Task.MULTILABEL:
        return (Activation.LOGISTIC,)
    import sklearn

    has_exp = tuple(int(part) for part in sklearn.__version__.split(".")[:2]) >= (1, 7)
    return (Activation.IDENTITY, Activation.EXP) if has_exp else (Activation.IDENTITY,)


def _sklearn_problems(model: Model) -> list[str]:
    """Dense layers only (each other kind named, and nothing else checked then); then MLPClassifier's rules."""
    other_kinds = [f"{_where(model, i)}: {layer.kind} layer" for i, layer in enumerate(model.layers) if not isinstance(layer, DenseLayer)]
    if other_kinds:
        return other_kinds
    problems = []
    first_hidden: Activation | None = None
    for index, layer in enumerate(model.layers[:-1]):
        if layer.activation not in SKLEARN_HIDDEN:
            problems.append(f"{_where(model, index)}: activation {layer.activation.value} is not available in scikit-learn")
        elif first_hidden is None:
            first_hidden = layer.activation
        elif layer.activation != first_hidden:
            problems.append(f"{_where(model, index)}: activation {layer.activation.value} differs from")
    if model.task == Task.RAW:
        problems.append("the task is raw")
    elif model.output_activation not in sklearn_output_activations(model.task, model.n_outputs):
        problems.append(f"activation {model.output_activation.value} does not fit a {model.task.value} head")
    # any preprocessing: each run of sub/div is a StandardScaler, each run of mul/add/clip a MinMaxScaler
    if model.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        problems.append("scikit-learn's MLPs compute in float32 or float64")
    return problems


# -- keras-h5: Keras 3 layers that compute exactly the same -------------------------------

KERAS_ACTIVATIONS = (  # a Dense activation name, an ELU or a LeakyReLU layer, whatever their parameters
    Activation.IDENTITY, Activation.RELU, Activation.LOGISTIC, Activation.SOFTMAX, Activation.TANH,
    Activation.EXP, Activation.SOFTPLUS, Activation.SILU, Activation.ELU, Activation.LEAKY_RELU,
)
KERAS_FIXED_PARAMS = {  # Keras has these with fixed constants only
    Activation.SELU: dict(ACTIVATION_DEFAULTS[Activation.SELU]),
    Activation.GELU: {"approximate": "none"},
    Activation.HARD_SIGMOID: {"alpha": 1.0 / 6.0, "beta": 0.5},  # Keras 3: relu6(x + 3) / 6
}
KERAS_EPSILON = 1e-7  # Normalization divides by maximum(sqrt(variance), epsilon)


def keras_holds_activation(activation: Activation, params: dict) -> bool:
    return activation in KERAS_ACTIVATIONS or KERAS_FIXED_PARAMS.get(activation) == params


def _keras_divisor_is_exact(divisor: np.ndarray) -> bool:
    variance = divisor * divisor
    recovered = np.maximum(np.sqrt(variance), divisor.dtype.type(KERAS_EPSILON))
    return bool(np.isfinite(variance).all() and np.array_equal(recovered, divisor))


def _keras_step_problems(ops: list, dtype: np.dtype) -> list[str]:
    """Normalization ((x - mean) / d, d exactly sqrt of a stored variance) and Rescaling (x * s + o) only."""
    while ops:
        kind = ops[0].op
        if kind in ("sub", "div"):
            rest = ops[1:] if kind == "sub" else ops
            if rest and rest[0].op == "div":
                if not _keras_divisor_is_exact(rest[0].operand.astype(dtype)):
                    return ["cannot be stored as a Keras Normalization variance exactly"]
                rest = rest[1:]
            ops = rest
        elif kind in ("mul", "add"):
            rest = ops[1:] if kind == "mul" else ops
            ops = rest[1:] if rest and rest[0].op == "add" else rest
        else:
            return [f"the {kind} operation has no exact Keras layer"]
    return []


def _keras_h5_problems(model: Model) -> list[str]:
    problems = []
    for step in model.steps:
        problems += _keras_step_problems(list(step.ops), model.dtype)
    for layer in model.layers:  # BatchNormalization, LayerNormalization and PReLU are Keras layers
        if not isinstance(layer, (DenseLayer, ActivationLayer)):
            continue
        if not keras_holds_activation(layer.activation, dict(layer.activation_params)):
            problems.append(f"activation {layer.activation.value} with {dict(layer.activation_params)} has no Keras 3 equivalent")
    return problems


# -- safetensors, torch: state dicts of to_torch's standard modules (docs/torch.md) -----------


def _torch_holds(activation: Activation, params: dict) -> bool:
    if activation == Activation.HARD_SIGMOID:  # torch's Hardsigmoid: relu6(x + 3) / 6 only
        return bool(np.allclose([params["alpha"], params["beta"]], [1 / 6, 0.5], rtol=0, atol=1e-12))
    if activation == Activation.SELU:
        return params == dict(ACTIVATION_DEFAULTS[Activation.SELU])
    if activation == Activation.RELU:  # LeakyReLU, ReLU6 or Hardtanh(0, m); no threshold, no slope with a cap
        return params.get("threshold", 0.0) == 0.0 and not ("max_value" in params and params.get("negative_slope", 0.0) != 0.0)
    if activation == Activation.CLIP:  # Hardtanh needs both bounds
        return "min" in params and "max" in params
    return True


def _torch_problems(model: Model) -> list[str]:
    return [
        f"{_where(model, index)}: "
        for index, layer in enumerate(model.layers)
        if not _torch_holds(layer.activation, dict(getattr(layer, "activation_params", {})))
    ]


REFUSALS: dict[str, Callable[[Model], list[str]]] = {
    "keras": _keras_h5_problems,  # the .keras writer builds the keras-h5 writer's layers
    "safetensors": _torch_problems,
    "torch": _torch_problems,
    "onnx": _onnx_problems,
    "json": lambda model: _array_dtype_problems(model, "json"),
    "hdf5": lambda model: _array_dtype_problems(model, "hdf5"),
    "sklearn-pickle": _sklearn_problems,
    "skops": _sklearn_problems,
    "keras-h5": _keras_h5_problems,
    # generated C (float32, the default): every layer kind, activation and preprocessing operation the IR has (docs/formats.md, "C source")
    "c": lambda model: [],
}

MIN_SHARE = {
    "onnx": 1.0, "json": 1.0, "hdf5": 1.0, "keras-h5": 0.5, "keras": 0.5, "safetensors": 0.8, "torch": 0.8,
    "sklearn-pickle": 0.2, "skops": 0.2,
}


def refusal_problems(format_name: str, model: Model) -> list[str]:
    """The problems ``format_name`` documents for ``model`` (empty: it must write the model)."""
    assert format_name in REFUSALS, (
        f"format {format_name!r} has no entry in tests/format_profiles.py: say which models it documents it cannot hold"
    )
    return REFUSALS[format_name](model)


def assert_documented_refusal(format_name: str, model: Model, error: Exception) -> None:
    """``error`` (an UnsupportedModelError) is a refusal ``format_name`` documents, naming every predicted problem."""
    expected = refusal_problems(format_name, model)
    text = "\n".join([str(error), *getattr(error, "problems", [])])
    assert expected, f"{format_name} refused a model it documents it can hold: {text}"
    missing = [fragment for fragment in expected if fragment not in text]
    assert not missing, f"{format_name} refused without naming {missing}: {text}"
    listed = getattr(error, "problems", [])
    assert not listed or len(listed) == len(expected), f"{format_name} listed {listed}, expected {expected}"
