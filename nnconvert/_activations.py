"""Elementwise (and row-wise) activations of the model graph, in numpy.

One enum with one spelling per activation, the parameters each takes, and the
numpy computation. Each formula follows the framework the parameters come
from (documented per activation in ``docs/formats.md``); the operations are
done in the array's own dtype so float32 results round like the producer's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType
from typing import Any

import numpy as np

from .errors import InvalidModelError

__all__ = [
    "Activation",
    "ACTIVATION_DEFAULTS",
    "ACTIVATION_OPTIONAL_PARAMS",
    "apply_activation",
    "validated_activation_params",
]


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
    # format 1.1
    CLIP = "clip"
    SOFTSIGN = "softsign"
    HARDSWISH = "hardswish"
    MISH = "mish"
    LOG_SOFTMAX = "log_softmax"
    # only as a PReLULayer (its slopes are an array, one per unit)
    PRELU = "prelu"


# Parameters always present, with their defaults. The names follow ONNX
# (Elu/LeakyRelu alpha, Selu alpha/gamma, HardSigmoid alpha/beta); SELU's
# defaults are the exact constants of Klambauer et al. as Keras and torch use.
ACTIVATION_DEFAULTS: Mapping[Activation, Mapping[str, Any]] = MappingProxyType(
    {
        Activation.LEAKY_RELU: {"alpha": 0.01},
        Activation.ELU: {"alpha": 1.0},
        Activation.SELU: {"alpha": 1.6732632423543772, "gamma": 1.0507009873554805},
        Activation.HARD_SIGMOID: {"alpha": 0.2, "beta": 0.5},
        Activation.GELU: {"approximate": "none"},
    }
)

# Parameters that may be absent, with the value that means "absent" (a given
# parameter equal to it is dropped, so that ``relu`` with Keras' default
# settings is plain ``relu``; ``None`` means "no neutral value": absent is unbounded).
ACTIVATION_OPTIONAL_PARAMS: Mapping[Activation, Mapping[str, float | None]] = MappingProxyType(
    {
        Activation.RELU: {"negative_slope": 0.0, "max_value": None, "threshold": 0.0},
        Activation.CLIP: {"min": None, "max": None},
        Activation.SOFTPLUS: {"beta": 1.0, "threshold": None},
    }
)


def validated_activation_params(activation: Activation, given: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """``given`` checked against what ``activation`` takes, defaults filled in, neutral optionals dropped."""
    defaults = ACTIVATION_DEFAULTS.get(activation, {})
    optional = ACTIVATION_OPTIONAL_PARAMS.get(activation, {})
    unknown = set(given) - set(defaults) - set(optional)
    if unknown:
        accepted = sorted(set(defaults) | set(optional)) or "none"
        raise InvalidModelError(f"{where}: activation {activation.value} takes parameters {accepted}, got {sorted(unknown)}")
    params: dict[str, Any] = {**defaults, **given}
    for key, value in list(params.items()):
        if key == "approximate":
            if value not in ("none", "tanh"):
                raise InvalidModelError(f"{where}: gelu approximate must be 'none' or 'tanh', got {value!r}")
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value):
            raise InvalidModelError(f"{where}: activation parameter {key} must be a finite number, got {value!r}")
        params[key] = float(value)
        if key in optional and optional[key] is not None and params[key] == optional[key]:
            del params[key]
    _check_ranges(activation, params, where)
    return MappingProxyType(dict(sorted(params.items())))


def _check_ranges(activation: Activation, params: Mapping[str, Any], where: str) -> None:
    if activation == Activation.CLIP and "min" in params and "max" in params and params["min"] > params["max"]:
        raise InvalidModelError(f"{where}: clip min {params['min']} is above max {params['max']}")
    if activation == Activation.RELU:  # Keras' own bounds for its ReLU layer
        for key in ("max_value", "negative_slope", "threshold"):
            if params.get(key, 0.0) < 0:
                raise InvalidModelError(f"{where}: relu {key} must be >= 0, got {params[key]}")
    if activation == Activation.SOFTPLUS and params.get("beta", 1.0) <= 0:
        raise InvalidModelError(f"{where}: softplus beta must be > 0, got {params['beta']}")


# -- numpy ---------------------------------------------------------------------


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


def _log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=1)[:, np.newaxis]
    return shifted - np.log(np.exp(shifted).sum(axis=1))[:, np.newaxis]


def _erf(x: np.ndarray) -> np.ndarray:
    try:
        from scipy.special import erf
    except ImportError:  # pragma: no cover
        return np.vectorize(math.erf, otypes=[x.dtype])(x)
    return erf(x)


def apply_activation(x: np.ndarray, activation: Activation, params: Mapping[str, Any]) -> None:
    """Apply ``activation`` to the 2-D array ``x`` in place."""
    if activation == Activation.IDENTITY:
        return
    if activation == Activation.RELU and not params:
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


def _keras_relu(x: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    # Keras' relu(x, negative_slope, max_value, threshold), step for step
    dtype = x.dtype.type
    slope = dtype(params.get("negative_slope", 0.0))
    threshold = dtype(params.get("threshold", 0.0))
    negative_part = np.maximum(threshold - x, 0) if slope != 0 else None
    y = x * (x > threshold).astype(x.dtype) if threshold != 0 else np.maximum(x, 0)
    if "max_value" in params:
        y = np.clip(y, dtype(0), dtype(params["max_value"]))
    if negative_part is not None:
        y = y - slope * negative_part
    return y


def _softplus(x: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    dtype = x.dtype.type
    if "beta" not in params and "threshold" not in params:
        return np.logaddexp(x, dtype(0))
    # torch: log1p(exp(beta x)) / beta, and x itself where beta x > threshold
    beta = dtype(params.get("beta", 1.0))
    scaled = x * beta
    y = np.logaddexp(scaled, dtype(0)) / beta
    if "threshold" in params:
        y = np.where(scaled > dtype(params["threshold"]), x, y)
    return y


def _other_activation(x: np.ndarray, activation: Activation, params: Mapping[str, Any]) -> np.ndarray:
    dtype = x.dtype.type
    if activation == Activation.RELU:
        return _keras_relu(x, params)
    if activation == Activation.LEAKY_RELU:
        return np.where(x >= 0, x, x * dtype(params["alpha"]))
    if activation in (Activation.ELU, Activation.SELU):
        elu = np.where(x > 0, x, dtype(params["alpha"]) * np.expm1(np.minimum(x, 0)))
        return elu if activation == Activation.ELU else dtype(params["gamma"]) * elu
    if activation == Activation.SOFTPLUS:
        return _softplus(x, params)
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
    return _activation_v11(x, activation, params)


def _activation_v11(x: np.ndarray, activation: Activation, params: Mapping[str, Any]) -> np.ndarray:
    dtype = x.dtype.type
    if activation == Activation.CLIP:
        y = x
        if "min" in params:
            y = np.maximum(y, dtype(params["min"]))
        if "max" in params:
            y = np.minimum(y, dtype(params["max"]))
        return y
    if activation == Activation.SOFTSIGN:
        return x / (dtype(1) + np.abs(x))
    if activation == Activation.HARDSWISH:
        # torch: x * relu6(x + 3) / 6
        return x * np.clip(x + dtype(3), dtype(0), dtype(6)) / dtype(6)
    if activation == Activation.MISH:
        return x * np.tanh(np.logaddexp(x, dtype(0)))
    if activation == Activation.LOG_SOFTMAX:
        return _log_softmax(x)
    raise InvalidModelError(f"no numpy implementation of activation {activation.value}")  # pragma: no cover
