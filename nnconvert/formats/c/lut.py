"""Integer approximations of the nonlinear activations: interpolated lookup tables.

A table holds ``f`` at ``2**n + 1`` evenly spaced points of a domain whose
width is a power of two, so that the segment of an input is a shift and its
position in the segment a mask. Entries carry ``EXTRA_BITS`` more fraction
bits than the output, so that interpolation itself adds at most one output LSB.
Outside the domain a *tail* takes over: the edge value (tanh, logistic...) or
a line through the origin (the positive side of elu, gelu, silu, softplus).

The number of segments is the smallest whose interpolation error is at most
one LSB of the output format, at most ``2**MAX_SEGMENT_BITS`` (512: 2 KiB of int32).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...ir import Activation, apply_activation

__all__ = ["Lut", "make_lut", "lut_eval", "round_shift", "EXTRA_BITS", "TABLE_ACTIVATIONS"]

EXTRA_BITS = 8
MAX_SEGMENT_BITS = 9
TABLE_ACTIVATIONS = frozenset(
    {Activation.TANH, Activation.LOGISTIC, Activation.ELU, Activation.SELU, Activation.SOFTPLUS,
     Activation.GELU, Activation.SILU, Activation.EXP, Activation.HARDSWISH, Activation.MISH}
)  # fmt: skip
# (domain low, domain width as a power of two, low tail, high tail); tails: "edge" or a slope
_DOMAINS: dict[Activation, tuple[float, int, Any, Any]] = {
    Activation.TANH: (-8.0, 4, "edge", "edge"),
    Activation.LOGISTIC: (-16.0, 5, "edge", "edge"),
    Activation.ELU: (-16.0, 5, "edge", 1.0),
    Activation.SELU: (-16.0, 5, "edge", "gamma"),
    Activation.SOFTPLUS: (-16.0, 5, "edge", 1.0),
    Activation.GELU: (-8.0, 4, "edge", 1.0),
    Activation.SILU: (-16.0, 5, "edge", 1.0),
    Activation.HARDSWISH: (-8.0, 4, "edge", 1.0),  # exactly 0 below -3 and x above 3
    Activation.MISH: (-16.0, 5, "edge", 1.0),
}


def round_shift(values: np.ndarray, shift: int) -> np.ndarray:
    """What the generated code computes for a rounding shift: ``(v + 2**(s-1)) >> s``, or ``v * 2**-s``."""
    values = np.asarray(values, dtype=np.int64)
    if shift > 0:
        return (values + (1 << (shift - 1))) >> shift
    return values * (1 << -shift)


@dataclass(frozen=True)
class Lut:
    """A table for one activation.

    ``z`` is read in ``in_frac`` fraction bits; the result has ``out_frac``.
    ``low_q`` is the domain's start in z units, ``segment_shift`` the log2 of
    a segment's width in z units, ``table`` the ``2**n + 1`` entries with
    ``out_frac + extra`` fraction bits. A tail is ("edge",) or ("line", slope_q, shift)
    where the output is ``round_shift(z * slope_q, shift)``.
    """

    activation: Activation
    in_frac: int
    out_frac: int
    extra: int
    low_q: int
    segment_shift: int
    table: np.ndarray
    low_tail: tuple[Any, ...]
    high_tail: tuple[Any, ...]

    @property
    def n_segments(self) -> int:
        return len(self.table) - 1


def _function(activation: Activation, params: dict[str, Any]):  # type: ignore[no-untyped-def]
    def f(x: np.ndarray) -> np.ndarray:
        y = np.array(x, dtype=np.float64)
        apply_activation(y.reshape(1, -1), activation, params)
        return y

    return f


def _tail(spec: Any, params: dict[str, Any], in_frac: int, out_frac: int) -> tuple[Any, ...]:
    if spec == "edge":
        return ("edge",)
    slope = params["gamma"] if spec == "gamma" else float(spec)
    return ("line", int(round(slope * (1 << 14))), in_frac + 14 - out_frac)


def make_lut(activation: Activation, params: dict[str, Any], in_frac: int, out_frac: int,
             domain: tuple[float, int] | None = None, error_frac: int | None = None) -> Lut:  # fmt: skip
    """The table of ``activation`` for inputs with ``in_frac`` and outputs with ``out_frac`` fraction bits.

    ``domain`` (low, log2 width) overrides the activation's own (used for exp, sized by calibration);
    the table is made fine enough for an error of ``2**-error_frac`` (default: one output step).
    """
    if domain is not None:
        low, width_bits, low_tail, high_tail = domain[0], domain[1], "edge", "edge"
    else:
        low, width_bits, low_tail, high_tail = _DOMAINS[activation]
    f = _function(activation, dict(params))
    low_q = int(math.floor(low * 2.0**in_frac))
    width_units_bits = width_bits + in_frac  # log2 of the domain's width in z units
    extra = EXTRA_BITS
    chosen = None
    for n in range(3, MAX_SEGMENT_BITS + 1):
        seg_bits = max(0, width_units_bits - n)
        n_eff = width_units_bits - seg_bits
        points = (low_q + (np.arange((1 << n_eff) + 1, dtype=np.float64) * 2.0**seg_bits)) / 2.0**in_frac
        fine = np.linspace(points[0], points[-1], 16 * (1 << n_eff) + 1)
        error = np.abs(np.interp(fine, points, f(points)) - f(fine)).max()
        chosen = (seg_bits, points)
        if error <= 2.0 ** -(out_frac if error_frac is None else error_frac) or seg_bits == 0:
            break
    assert chosen is not None
    seg_bits, points = chosen
    values = f(points)
    # entries must fit int32 with the extra bits; drop extra bits for large-valued tables (exp)
    peak = float(np.abs(values).max())
    while extra > 0 and peak * 2.0 ** (out_frac + extra) >= 2**30:
        extra -= 1
    table = np.clip(np.rint(values * 2.0 ** (out_frac + extra)), -(2**31) + 1, 2**31 - 1).astype(np.int64)
    return Lut(activation, in_frac, out_frac, extra, low_q, seg_bits, table,
               _tail(low_tail, params, in_frac, out_frac), _tail(high_tail, params, in_frac, out_frac))  # fmt: skip


def lut_eval(lut: Lut, z: np.ndarray) -> np.ndarray:
    """The generated code's result for ``z`` (int64 array in ``lut.in_frac``), bit for bit."""
    z = np.asarray(z, dtype=np.int64)
    t = z - lut.low_q
    n = lut.n_segments
    inside = (t >= 0) & (t < (n << lut.segment_shift))
    tc = np.clip(t, 0, (n << lut.segment_shift) - 1)
    seg = tc >> lut.segment_shift
    rem = tc & ((1 << lut.segment_shift) - 1)
    base = lut.table[seg]
    value = base + (((lut.table[seg + 1] - base) * rem) >> lut.segment_shift)
    out = round_shift(value, lut.extra)
    low = _tail_eval(lut.low_tail, z, lut.table[0], lut.extra)
    high = _tail_eval(lut.high_tail, z, lut.table[n], lut.extra)
    return np.where(inside, out, np.where(t < 0, low, high))


def _tail_eval(tail: tuple[Any, ...], z: np.ndarray, edge: int, extra: int) -> np.ndarray:
    if tail[0] == "edge":
        return np.full(z.shape, int(round_shift(np.array(edge), extra)), dtype=np.int64)
    return round_shift(z * tail[1], tail[2])


# -- exp of non-positive values (softmax): 2**integer part by a shift, 2**fraction from a small table

EXP2_SEGMENT_BITS = 7
EXP2_TABLE = np.rint(2.0 ** (np.arange((1 << EXP2_SEGMENT_BITS) + 1) / (1 << EXP2_SEGMENT_BITS)) * 2.0**29).astype(np.int64)
LOG2E_Q24 = int(round(math.log2(math.e) * (1 << 24)))
EXP_FRAC = 24  # exp_neg's result: Q24
EXP_FLOOR = -16  # exp(-16) = 1.1e-7 is below a Q15 probability's step: 0 beyond


def exp_neg(d: np.ndarray, frac: int) -> np.ndarray:
    """``exp(d / 2**frac)`` for ``d <= 0`` in Q24, as the generated ``<p>_exp_neg`` computes it.

    ``d * log2(e)`` is split into an integer ``k <= 0`` (a shift) and a fraction ``f``
    in [0, 1) whose ``2**f`` is interpolated in a 129-entry Q29 table (error < 1e-5 relative).
    """
    d24 = round_shift(np.asarray(d, dtype=np.int64), frac - EXP_FRAC)
    under = d24 < (EXP_FLOOR << EXP_FRAC)
    d24 = np.maximum(d24, EXP_FLOOR << EXP_FRAC)
    y = d24 * LOG2E_Q24  # Q48, <= 0
    k = y >> 48
    f = y - k * (1 << 48)
    segment = f >> (48 - EXP2_SEGMENT_BITS)
    fraction = (f & ((1 << (48 - EXP2_SEGMENT_BITS)) - 1)) >> (18 - EXP2_SEGMENT_BITS)  # Q30
    base = EXP2_TABLE[segment]
    v = base + (((EXP2_TABLE[segment + 1] - base) * fraction) >> 30)  # Q29
    shift = 29 - EXP_FRAC - k  # >= 5
    e = (v + (np.int64(1) << (shift - 1))) >> shift
    return np.where(under, 0, e)
