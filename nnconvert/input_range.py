"""The inputs a model is meant for, read off its preprocessing.

Verify draws random rows in this range; the c target sizes its error bounds
and fixed-point formats with it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .ir import Model

__all__ = ["affine_segments", "preprocessing_input_range"]

Affine = tuple[np.ndarray, np.ndarray, tuple[float, float] | None]


def preprocessing_input_range(model: Model) -> tuple[np.ndarray, np.ndarray, str] | None:
    """Invert the preprocessing's affine map at the range its output is meant to cover."""
    if not model.steps:
        return None
    scale, shift, _ = affine_segments(model, split_at_clips=False)[0]
    scale = np.where(scale == 0, 1.0, scale)
    last = model.steps[-1]
    low, high, why = _canonical_range(last.kind, last.params)
    ends = ((low - shift) / scale, (high - shift) / scale)
    return np.minimum(*ends), np.maximum(*ends), f"{last.kind} preprocessing ({why})"


def affine_segments(model: Model, *, split_at_clips: bool = True) -> list[Affine]:
    """The preprocessing as per-feature maps ``x * a + c``, each with the clip (low, high) that ends it (None: the last).

    With ``split_at_clips`` False the clips are passed over: one map for the whole preprocessing.
    """
    n = model.n_features
    a, c = np.ones(n), np.zeros(n)
    segments: list[Affine] = []
    for step in model.steps:
        for op in step.ops:
            v = np.broadcast_to(op.operand.astype(np.float64), (n,)) if op.op != "clip" else op.operand.astype(np.float64)
            if op.op == "sub":
                c = c - v
            elif op.op == "add":
                c = c + v
            elif op.op == "mul":
                a, c = a * v, c * v
            elif op.op == "div":
                a, c = a / v, c / v
            elif split_at_clips:
                segments.append((a, c, (float(v[0]), float(v[1]))))
                a, c = np.ones(n), np.zeros(n)
    segments.append((a, c, None))
    return segments


def _canonical_range(kind: str, params: Any) -> tuple[float, float, str]:
    if kind == "minmax_scaler":
        low, high = params.get("feature_range", (0.0, 1.0))
        return float(low), float(high), "its feature_range"
    if kind == "maxabs_scaler":
        return -1.0, 1.0, "scaled values in [-1, 1]"
    return -3.0, 3.0, "standardised values in [-3, 3]"
