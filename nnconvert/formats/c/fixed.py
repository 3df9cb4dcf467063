"""Fixed-point quantization of a model and a bit-exact numpy emulation of the integer code.

Two schemes (``precision=``):

- ``int16``: int16 weights (per-output power-of-two scale) and int16 activations
  (Q formats chosen per tensor), int64 accumulators;
- ``int8``: int8 weights and activations, int32 accumulators.

Every scale is a power of two, so rescaling is a rounding shift. Formats are sized
from calibration rows (given, or sampled in the input range): the largest value a
tensor takes there must fit. Values beyond saturate. The input is ``int32`` with
``input_frac_bits`` fraction bits; the preprocessing is folded into one affine map
per feature between clips and computed in int64. Outputs are ``int32`` with
``output_frac_bits``. Predict decides on the last layer's integer logits when the
output activation is monotone, so table rounding cannot flip a label.

:func:`emulate` computes exactly what the generated C computes (same shifts,
rounding, saturation and table lookups): the header's error bound is measured
with it, and the tests check the compiled code against it bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...input_range import affine_segments
from ...ir import Activation, DenseLayer, Model, PReLULayer
from .lut import TABLE_ACTIVATIONS, Lut, exp_neg, lut_eval, make_lut, round_shift

__all__ = ["Scheme", "SCHEMES", "FixedPlan", "plan_fixed", "emulate", "dense_groups"]

PROBABILITY_FRAC = 15  # bounded outputs (probabilities, tanh...) are Q15 in int32
INPUT_BITS = 28  # inputs use at most 2**28 of int32's range: 8x headroom beyond the calibrated range
Z_BITS = 29  # pre-activations (int32) likewise
BOUNDED = {Activation.SOFTMAX, Activation.LOGISTIC, Activation.TANH, Activation.HARD_SIGMOID, Activation.SOFTSIGN}
# computed exactly with shifts and one multiply (no table): the output format is sized like z's
PIECEWISE_LINEAR = {Activation.IDENTITY, Activation.RELU, Activation.LEAKY_RELU, Activation.PRELU, Activation.CLIP}
MONOTONE = {Activation.SOFTMAX, Activation.LOGISTIC, Activation.IDENTITY, Activation.TANH, Activation.EXP, Activation.SOFTPLUS,
            Activation.SOFTSIGN}  # fmt: skip


@dataclass(frozen=True)
class Scheme:
    name: str
    weight_bits: int
    activation_bits: int
    accumulator: str  # C type of the accumulator

    @property
    def weight_max(self) -> int:
        return (1 << (self.weight_bits - 1)) - 1

    @property
    def activation_max(self) -> int:
        return (1 << (self.activation_bits - 1)) - 1


SCHEMES = {
    "int16": Scheme("int16", 16, 16, "int64_t"),
    "int8": Scheme("int8", 8, 8, "int32_t"),
}


@dataclass
class Segment:
    """Part of the preprocessing: ``round_shift(x * mul + add, shift)`` per feature, then an optional clip."""

    in_frac: int
    out_frac: int
    mul: np.ndarray
    add: np.ndarray
    shift: np.ndarray
    clip: tuple[int, int] | None = None


@dataclass
class FixedLayer:
    """One dense layer: ``z = round_shift(x @ W + bias, shift)`` in ``z_frac``, then the activation."""

    weights: np.ndarray  # [n_out][n_in], int
    bias: np.ndarray  # accumulator type
    shift: np.ndarray  # per output, >= 0
    in_frac: int
    z_frac: int
    out_frac: int
    activation: Activation
    params: dict[str, Any]
    lut: Lut | None = None
    last: bool = False


@dataclass
class FixedPlan:
    scheme: Scheme
    input_frac: int
    segments: list[Segment]
    layers: list[FixedLayer]

    @property
    def output_frac(self) -> int:
        return self.layers[-1].out_frac


def _frac_for(max_abs: float, limit: int, cap: int = 30) -> int:
    """Fraction bits so that ``max_abs`` fits in ``limit`` (an integer bound)."""
    if not max_abs > 0:
        return cap
    return min(cap, int(math.floor(math.log2(limit / max_abs))))


def _plan_segments(model: Model, rows: np.ndarray, input_frac: int, first_frac: int) -> list[Segment]:
    segments = []
    u = rows.astype(np.float64)
    in_frac = input_frac
    pieces = affine_segments(model) if model.steps else []
    for index, (a, c, clip) in enumerate(pieces):
        u = u * a + c
        if clip is not None:
            u = np.clip(u, clip[0], clip[1])
        last = index == len(pieces) - 1
        out_frac = first_frac if last else _frac_for(float(np.abs(u).max()), 1 << INPUT_BITS)
        # mul has ~30 significant bits: shift = 30 - log2(|a| * 2**(out - in))
        factor = np.abs(a) * 2.0 ** (out_frac - in_frac)
        shift = np.where(factor > 0, 30 - np.ceil(np.log2(np.where(factor > 0, factor, 1.0))), 0).astype(np.int64)
        shift = np.clip(shift, 0, 62)
        mul = np.rint(a * 2.0 ** (out_frac - in_frac + shift)).astype(np.int64)
        add = np.rint(c * 2.0 ** (out_frac + shift)).astype(np.int64)
        clip_q = None
        if clip is not None:
            clip_q = (int(math.ceil(clip[0] * 2.0**out_frac)), int(math.floor(clip[1] * 2.0**out_frac)))
        segments.append(Segment(in_frac, out_frac, mul, add, shift, clip_q))
        in_frac = out_frac
    return segments


def dense_groups(model: Model) -> list[tuple[DenseLayer, PReLULayer | None]]:
    """Each dense layer with the PReLU layer that follows it (``fixed_fold`` allows PReLU only there)."""
    groups: list[tuple[DenseLayer, PReLULayer | None]] = []
    for layer in model.layers:
        if isinstance(layer, DenseLayer):
            groups.append((layer, None))
        else:
            assert isinstance(layer, PReLULayer) and groups and groups[-1][1] is None, "fixed_fold.fixed_layers first"
            groups[-1] = (groups[-1][0], layer)
    return groups


def _layer_ranges(model: Model, rows: np.ndarray) -> tuple[float, list[tuple[float, float, np.ndarray]]]:
    """Max |preprocessed input| and, per dense layer, (max |z|, max |output|, z) on the calibration rows."""
    reference = model.astype(np.float64)
    values = reference.forward(rows, return_intermediates=True)
    ranges: list[tuple[float, float, np.ndarray]] = []
    x = values[0]
    for index, layer in enumerate(reference.layers):
        if not isinstance(layer, DenseLayer):
            ranges[-1] = (ranges[-1][0], float(np.abs(values[index + 1]).max()), ranges[-1][2])  # after its PReLU
            continue
        z = x @ layer.weights + layer.bias
        ranges.append((float(np.abs(z).max()), float(np.abs(values[index + 1]).max()), z))
        x = values[index + 1]
    return float(np.abs(values[0]).max()), ranges


def plan_fixed(model: Model, scheme: Scheme, rows: np.ndarray) -> FixedPlan:
    """Quantize ``model`` (dense layers, each optionally followed by PReLU) for ``scheme``, sized on ``rows``."""
    reference = model.astype(np.float64)
    input_frac = _frac_for(float(np.abs(rows).max()), 1 << INPUT_BITS)
    pre_max, ranges = _layer_ranges(reference, rows)
    x_frac = _frac_for(pre_max, scheme.activation_max, cap=scheme.activation_bits + 8)
    segments = _plan_segments(reference, rows, input_frac, x_frac) if reference.steps else []
    if not reference.steps:
        x_frac = min(x_frac, input_frac)
    layers = []
    groups = dense_groups(reference)
    for index, ((layer, prelu), (z_max, out_max, z)) in enumerate(zip(groups, ranges, strict=True)):
        last = index == len(groups) - 1
        layers.append(_plan_layer(layer, prelu, scheme, x_frac, z_max, out_max, z, last))
        x_frac = layers[-1].out_frac
    return FixedPlan(scheme, input_frac, segments, layers)


def _plan_layer(layer: DenseLayer, prelu: PReLULayer | None, scheme: Scheme, in_frac: int, z_max: float, out_max: float,
                z: np.ndarray, last: bool) -> FixedLayer:  # fmt: skip
    weights = layer.weights.T.astype(np.float64)  # [n_out][n_in]
    channel_max = np.abs(weights).max(axis=1)
    w_frac = np.array([_frac_for(m, scheme.weight_max) for m in channel_max], dtype=np.int64)
    z_frac = min(_frac_for(z_max, 1 << Z_BITS), int(in_frac + w_frac.min()))
    w_q = np.clip(np.rint(weights * 2.0 ** w_frac[:, None]), -scheme.weight_max, scheme.weight_max).astype(np.int64)
    acc_frac = in_frac + w_frac
    bias_limit = 2**30 if scheme.accumulator == "int32_t" else 2**62
    bias = np.clip(np.rint(layer.bias * 2.0**acc_frac), -bias_limit, bias_limit).astype(np.int64)
    shift = (acc_frac - z_frac).astype(np.int64)
    activation = layer.activation if prelu is None else Activation.PRELU
    params: dict[str, Any] = dict(layer.activation_params) if prelu is None else {"slopes": prelu.slopes}
    limit = (1 << 30) if last else scheme.activation_max
    if last and activation in BOUNDED:
        out_frac = PROBABILITY_FRAC
    elif activation in BOUNDED:
        out_frac = _frac_for(1.0, limit)
    elif activation in PIECEWISE_LINEAR:
        out_frac = min(z_frac, _frac_for(out_max, limit))
    else:
        out_frac = min(z_frac + 4, _frac_for(out_max, limit, cap=z_frac + 4))
    lut = None
    if activation in TABLE_ACTIVATIONS:
        domain = None
        if activation == Activation.EXP:
            low, high = float(z.min()) - 1.0, float(z.max()) + 1.0
            domain = (math.floor(low), max(1, math.ceil(math.log2(max(high - math.floor(low), 1.0)))))
        lut = make_lut(activation, params, z_frac, out_frac, domain)
    return FixedLayer(w_q, bias, shift, in_frac, z_frac, out_frac, activation, params, lut, last)


# -- emulation ------------------------------------------------------------------------


def quantize_inputs(plan: FixedPlan, X: np.ndarray) -> np.ndarray:
    """Rows as the integer code takes them: ``round(x * 2**input_frac)``, saturated to int32."""
    scaled = np.rint(np.asarray(X, dtype=np.float64) * 2.0**plan.input_frac)
    return np.clip(scaled, -(2**31), 2**31 - 1).astype(np.int64)


def _saturate(values: np.ndarray, bits: int) -> np.ndarray:
    top = (1 << (bits - 1)) - 1
    return np.clip(values, -top - 1, top)


def _segment(segment: Segment, u: np.ndarray) -> np.ndarray:
    out = np.empty_like(u)
    for i in range(u.shape[1]):
        out[:, i] = round_shift(u[:, i] * segment.mul[i] + segment.add[i], int(segment.shift[i]))
    if segment.clip is not None:
        out = np.clip(out, segment.clip[0], segment.clip[1])
    return out


def activation_eval(layer: FixedLayer, z: np.ndarray) -> np.ndarray:
    """The integer activation of ``z`` (int64, ``z_frac``) -> ``out_frac`` (before narrowing)."""
    act, shift = layer.activation, layer.z_frac - layer.out_frac
    if act == Activation.IDENTITY:
        return round_shift(z, shift)
    if act == Activation.RELU and not layer.params:
        return round_shift(np.maximum(z, 0), shift)
    if act == Activation.LEAKY_RELU:
        alpha_q = int(round(layer.params["alpha"] * (1 << 15)))
        return np.where(z >= 0, round_shift(z, shift), round_shift(z * alpha_q, shift + 15))
    if act == Activation.HARD_SIGMOID:
        alpha_q = int(round(layer.params["alpha"] * (1 << 15)))
        beta_q = int(round(layer.params["beta"] * 2.0**layer.out_frac))
        return np.clip(round_shift(z * alpha_q, shift + 15) + beta_q, 0, 1 << layer.out_frac)
    if act in (Activation.RELU, Activation.CLIP, Activation.PRELU, Activation.SOFTSIGN):
        return _activation_v11(layer, z, shift)
    if act == Activation.SOFTMAX:
        e = exp_neg(z - z.max(axis=1, keepdims=True), layer.z_frac)
        total = e.sum(axis=1, keepdims=True)
        return ((e << layer.out_frac) + total // 2) // total
    assert layer.lut is not None
    return lut_eval(layer.lut, z)


def relu_constants(layer: FixedLayer) -> tuple[int, int | None, int]:
    """Keras relu's threshold and max_value in z's format, its negative slope in Q15."""
    params, scale = layer.params, 2.0**layer.z_frac
    max_q = int(np.rint(params["max_value"] * scale)) if "max_value" in params else None
    return int(np.rint(params.get("threshold", 0.0) * scale)), max_q, int(np.rint(params.get("negative_slope", 0.0) * (1 << 15)))


def clip_constants(layer: FixedLayer) -> tuple[int | None, int | None]:
    """clip's bounds in the output format (None: unbounded on that side)."""
    scale = 2.0**layer.out_frac
    return tuple(int(np.rint(layer.params[key] * scale)) if key in layer.params else None for key in ("min", "max"))  # type: ignore[return-value]


def prelu_slopes_q15(layer: FixedLayer) -> np.ndarray:
    return np.rint(np.asarray(layer.params["slopes"], dtype=np.float64) * (1 << 15)).astype(np.int64)


def _activation_v11(layer: FixedLayer, z: np.ndarray, shift: int) -> np.ndarray:
    act = layer.activation
    if act == Activation.RELU:  # Keras' step order, in z's format; the slope's product in Q15 more
        threshold_q, max_q, slope_q = relu_constants(layer)
        base = np.where(z > threshold_q, z, 0)
        if max_q is not None:
            base = np.minimum(base, max_q)
        if slope_q == 0:
            return round_shift(base, shift)
        return round_shift(base * (1 << 15) - np.maximum(threshold_q - z, 0) * slope_q, shift + 15)
    if act == Activation.CLIP:
        low, high = clip_constants(layer)
        y = round_shift(z, shift)
        return np.clip(y, low, high)
    if act == Activation.PRELU:
        slopes = prelu_slopes_q15(layer)
        return np.where(z >= 0, round_shift(z, shift), round_shift(z * slopes, shift + 15))
    # softsign: z / (1 + |z|), one rounded integer division of magnitudes (C's / truncates like // here)
    magnitude = np.abs(z)
    denominator = (1 << layer.z_frac) + magnitude
    quotient = ((magnitude << layer.out_frac) + denominator // 2) // denominator
    return np.where(z < 0, -quotient, quotient)


def emulate(plan: FixedPlan, X: np.ndarray, *, logits: bool = False) -> np.ndarray:
    """The integer outputs (``output_frac``) the generated code computes for rows ``X`` (floats).

    With ``logits`` the last layer's integer pre-activations (``z_frac``) instead.
    """
    u = quantize_inputs(plan, X)
    for segment in plan.segments:
        u = _segment(segment, u)
    x = _saturate(u, plan.scheme.activation_bits) if plan.segments else _saturate(round_shift(u, plan.input_frac - plan.layers[0].in_frac), plan.scheme.activation_bits)
    for layer in plan.layers:
        acc = x @ layer.weights.T + layer.bias
        z = _saturate(np.stack([round_shift(acc[:, j], int(s)) for j, s in enumerate(layer.shift)], axis=1), 32)
        if layer.last and logits:
            return z
        y = activation_eval(layer, z)
        x = _saturate(y, 32 if layer.last else plan.scheme.activation_bits)
    return x
