"""The inputs a model is meant for, read off its preprocessing.

Verify draws random rows in this range; the c target sizes its error bounds
and fixed-point formats with it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .ir import Model

__all__ = ["preprocessing_input_range"]


def preprocessing_input_range(model: Model) -> tuple[np.ndarray, np.ndarray, str] | None:
    """Invert the preprocessing's affine map at the range its output is meant to cover."""
    if not model.steps:
        return None
    scale = np.ones(model.n_features)
    shift = np.zeros(model.n_features)
    for step in model.steps:
        for op in step.ops:
            operand = op.operand.astype(np.float64)
            if op.op == "sub":
                shift = shift - operand
            elif op.op == "add":
                shift = shift + operand
            elif op.op == "mul":
                scale, shift = scale * operand, shift * operand
            elif op.op == "div":
                scale, shift = scale / operand, shift / operand
    scale = np.where(scale == 0, 1.0, scale)
    last = model.steps[-1]
    low, high, why = _canonical_range(last.kind, last.params)
    ends = ((low - shift) / scale, (high - shift) / scale)
    return np.minimum(*ends), np.maximum(*ends), f"{last.kind} preprocessing ({why})"


def _canonical_range(kind: str, params: Any) -> tuple[float, float, str]:
    if kind == "minmax_scaler":
        low, high = params.get("feature_range", (0.0, 1.0))
        return float(low), float(high), "its feature_range"
    if kind == "maxabs_scaler":
        return -1.0, 1.0, "scaled values in [-1, 1]"
    return -3.0, 3.0, "standardised values in [-3, 3]"
