"""Error bounds stated in the generated header, computed at generation time.

Floating point: a first-order forward error bound (Higham's dot-product bound
``n u sum|w x|`` per layer, carried through each activation's Lipschitz
constant), evaluated on rows sampled in the model's input range; it covers
rounding of the weights, the inputs and every operation, not the libm's last
ulp. Fixed point: measured, by running the bit-exact numpy emulation of the
integer code (``fixed.emulate``) against the float64 graph.
"""

from __future__ import annotations

import numpy as np

from ...input_range import preprocessing_input_range as ir_input_range
from ...ir import Activation, BatchNormLayer, DenseLayer, LayerNormLayer, Model, PReLULayer, apply_activation

__all__ = ["sample_rows", "float_error_bound", "SAMPLE_ROWS"]

SAMPLE_ROWS = 2048
_UNIT_ROUNDOFF = {"float32": 2.0**-24, "float64": 2.0**-53}


def sample_rows(model: Model, input_range: tuple[np.ndarray, np.ndarray] | None, seed: int = 0) -> tuple[np.ndarray, str]:
    """Rows uniform in the input range (given, else derived from the preprocessing, else [-3, 3])."""
    if input_range is not None:
        low, high, source = input_range[0], input_range[1], "the given input range"
    else:
        derived = ir_input_range(model)
        if derived is None:
            low, high = np.full(model.n_features, -3.0), np.full(model.n_features, 3.0)
            source = "[-3, 3] (no preprocessing to derive a range from)"
        else:
            low, high, source = derived[0], derived[1], derived[2]
    rng = np.random.default_rng(seed)
    rows = low + rng.random((SAMPLE_ROWS, model.n_features)) * (high - low)
    return rows, source


def _lipschitz(activation: Activation, params: dict, z: np.ndarray) -> float:
    if activation in (Activation.LOGISTIC, Activation.HARD_SIGMOID):
        return 0.25 if activation == Activation.LOGISTIC else abs(params["alpha"])
    if activation == Activation.LEAKY_RELU:
        return max(1.0, abs(params["alpha"]))
    if activation == Activation.ELU:
        return max(1.0, abs(params["alpha"]))
    if activation == Activation.SELU:
        return params["gamma"] * max(1.0, abs(params["alpha"]))
    if activation in (Activation.GELU, Activation.SILU):
        return 1.13
    if activation == Activation.EXP:
        return float(np.exp(min(z.max(initial=0.0), 700.0)))
    if activation == Activation.RELU:
        return max(1.0, abs(params.get("negative_slope", 0.0)))
    if activation == Activation.HARDSWISH:
        return 1.5  # (2x + 3) / 6 at x = 3
    if activation == Activation.MISH:
        return 1.2
    if activation == Activation.LOG_SOFTMAX:
        return 2.0  # inf-norm of I - softmax's rows
    return 1.0  # identity, tanh, softmax (inf-norm of its Jacobian <= 1), softplus, clip, softsign


def float_error_bound(model: Model, precision: str, rows: np.ndarray) -> float:
    """Bound on max |C output - float64 graph output| over ``rows`` (first order, see module docstring)."""
    u = _UNIT_ROUNDOFF[precision]
    reference = model.astype(np.float64)
    x = rows.astype(np.float64).copy()
    for step in reference.steps:
        step.apply(x)
    # each preprocessing op and the input's own rounding: a few roundings of |x|
    error = (2 * len([op for s in reference.steps for op in s.ops]) + 1) * u * np.abs(x)
    for layer in reference.layers:
        if not isinstance(layer, DenseLayer):
            x, error = _other_layer_bound(layer, x, error, u)
            continue
        weights, bias = np.abs(layer.weights), np.abs(layer.bias)
        n = layer.n_inputs + 2  # the dot product, the weights' and the bias's rounding
        z = x @ layer.weights + layer.bias
        rounding = n * u / (1 - n * u) * (np.abs(x) @ weights + bias)
        z_error = error @ weights + rounding
        lipschitz = _lipschitz(layer.activation, dict(layer.activation_params), z)
        x = z
        apply_activation(x, layer.activation, layer.activation_params)
        # the activation's own rounding: a few ulps of its output
        error = lipschitz * z_error + 4 * u * np.abs(x)
    return float(error.max())


def _other_layer_bound(layer: object, x: np.ndarray, error: np.ndarray, u: float) -> tuple[np.ndarray, np.ndarray]:
    """The outputs of a batch norm, layer norm, PReLU or activation layer and their error bound."""
    out = layer.apply(x)  # type: ignore[attr-defined]
    if isinstance(layer, BatchNormLayer):
        multiplier, shift = layer.multiplier_and_shift()
        # the multiplier and shift themselves (sqrt, division, products) and the two operations per value
        return out, np.abs(multiplier) * error + 6 * u * (np.abs(x * multiplier) + np.abs(shift))
    if isinstance(layer, PReLULayer):
        return out, np.maximum(1.0, np.abs(layer.slopes)) * error + u * np.abs(out)
    if isinstance(layer, LayerNormLayer):
        n = x.shape[1]
        deviation = np.sqrt(np.square(x - x.mean(axis=1, keepdims=True)).mean(axis=1, keepdims=True) + layer.epsilon)
        normalized = np.abs(out - (layer.offset if layer.offset is not None else 0.0))
        scale = np.abs(layer.scale) if layer.scale is not None else 1.0
        # a row's input error moves the value, the mean and the deviation; the sums round n times
        row_error = error.max(axis=1, keepdims=True) + (n + 2) * u * np.abs(x).max(axis=1, keepdims=True)
        standardized = normalized / np.where(scale > 0, scale, 1.0)
        return out, scale / deviation * row_error * (2 + standardized) + 8 * u * (np.abs(out) + normalized)
    lipschitz = _lipschitz(layer.activation, dict(layer.activation_params), x)  # type: ignore[attr-defined]
    return out, lipschitz * error + 4 * u * np.abs(out)
