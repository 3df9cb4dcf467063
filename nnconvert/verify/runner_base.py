"""What every verify runner is: one side of a comparison, with named outputs.

Kept apart from the runners themselves so that each runner module (the IR and
scikit-learn ones in :mod:`.runners`, the ONNX ones in :mod:`.onnx.runners`)
imports this and nothing imports back: no cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Runner", "as_2d"]


def as_2d(values: np.ndarray) -> np.ndarray:
    """``[N]`` -> ``[N, 1]``; anything 2-D unchanged (no copy)."""
    values = np.asarray(values)
    return values.reshape(-1, 1) if values.ndim == 1 else values


class Runner:
    """One side of a comparison. Subclasses set the attributes and implement :meth:`run`."""

    kind = "runner"
    description = ""
    dtype: np.dtype | None = None  # the dtype it computes in (None: unknown)
    n_features: int | None = None
    is_classifier: bool | None = None
    path: Path | None = None  # the file this side was read from, for the report's provenance
    expected_atol: float | None = None  # the error the file is built to (fixed-point C): verify's default atol
    # per-feature (low, high) the file is built for, beyond which it saturates by design (fixed-point C)
    designed_range: tuple[np.ndarray, np.ndarray] | None = None

    def run(self, X: np.ndarray) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def intermediates(self, X: np.ndarray) -> list[tuple[str, np.ndarray]] | None:
        """The preprocessed input then each layer's activated output, or None when hidden."""
        return None

    def input_range(self) -> tuple[np.ndarray, np.ndarray, str] | None:
        """Per-feature (low, high, how it was derived) of typical inputs, or None when unknown."""
        return None

    def info(self) -> dict[str, Any]:
        return {"kind": self.kind, "description": self.description, "dtype": None if self.dtype is None else self.dtype.name}
