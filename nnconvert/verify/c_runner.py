"""The verify runner of generated C files (issue 15): compile, then run through ctypes.

Verify picks it for formats whose spec says ``runner="c"`` (``runners._runner_for_path``). The file's metadata block says the task,
the class labels and the precision; the compiled code's own ``predict`` gives
the labels and ``forward`` the probabilities or values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .runner_base import Runner

__all__ = ["CRunner", "labels_from_metadata"]


def labels_from_metadata(meta: dict[str, Any]) -> np.ndarray | None:
    """The class labels with the dtype the metadata names (int64, bool, str...)."""
    classes = meta.get("classes")
    if classes is None:
        return None
    dtype = meta.get("classes_dtype")
    return np.array(classes, dtype=str if dtype == "str" else dtype)


class CRunner(Runner):
    """A ``.c`` file written by nnconvert's c target, compiled with the system C compiler.

    At the integer precisions the inputs are quantized to the header's input format, and
    ``expected_atol`` (twice the error bound measured at generation time, at least one
    output step) becomes verify's default absolute tolerance.
    """

    kind = "c"

    def __init__(self, path: str | Path, *, compiler: str | None = None):
        from ..formats.c.build import CompiledModel

        self.path = Path(path)
        self.compiled = CompiledModel(self.path, compiler=compiler)
        meta = self.compiled.meta
        self.meta = meta
        self.precision = meta["precision"]
        self.description = f"{self.path.name} ({self.precision} C, {Path(self.compiled.compiler).name} {' '.join(self.compiled.flags)})"
        self.dtype = np.dtype(self.precision) if self.precision in ("float32", "float64") else None
        self.n_features = int(meta["n_features"])
        self.is_classifier = meta["task"] in ("binary", "multiclass", "multilabel")
        self.classes = labels_from_metadata(meta)
        fixed = meta.get("fixed_point")
        if fixed is not None:
            self.expected_atol = max(2 * float(meta["error_bound"]["max_abs"]), 2.0 ** -fixed["output_frac_bits"])
            bound = meta["error_bound"]
            if "input_low" in bound:  # files written before nnconvert stated it: every edge row is checked
                self.designed_range = (np.asarray(bound["input_low"], dtype=np.float64), np.asarray(bound["input_high"], dtype=np.float64))

    def run(self, X: np.ndarray) -> dict[str, np.ndarray]:
        out = self.compiled.forward(X)
        task = self.meta["task"]
        if task in ("binary", "multiclass") and self.classes is not None:
            labels = self.classes[self.compiled.predict_indices(X)]
            if self.meta.get("output_activation") == "log_softmax":  # forward gives log-probabilities
                return {"probabilities": self.compiled.predict_proba(X), "labels": labels}
            if out.shape[1] == 1:
                out = np.hstack([1 - out, out])
            return {"probabilities": out, "labels": labels}
        if task == "multilabel":
            return {"probabilities": out, "labels": self.compiled.predict_indices(X).astype(np.int64)}
        return {"values": out}

    def info(self) -> dict[str, Any]:
        return {**super().info(), "precision": self.precision, "compiler": self.compiled.compiler,
                "flags": list(self.compiled.flags), "expected_atol": self.expected_atol}  # fmt: skip
