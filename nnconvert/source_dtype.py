"""The dtype a model was trained in, kept through wider files and restored when exact.

A float32 model written as float64 (``save(model, "m.onnx", dtype="float64")``,
``model.astype("float64")`` before saving JSON or HDF5, keras-h5 with
``dtype="float64"``) is an exact upcast: every float64 value in the file is a
float32 value. The file records the source's dtype (``metadata.source_dtype``),
and :func:`restore_source_dtype` (``Model.as_source_dtype()``, applied by
``to_sklearn``) casts back, which gives the original weights bit for bit.

When a value is not exactly a float32 (the file was edited or retrained in
float64 after it was written), the model stays float64: casting it down would
change what it computes. :func:`source_dtype_status` says which value and why;
``nnconvert inspect`` shows it.

Only an upcast is recorded (``Model.astype`` to a wider dtype, or a writer
casting wider): a downcast rounds the weights, leaving nothing to restore, and
files whose dtype is their model's keep the bytes they had before the field existed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ._layers import layer_arrays
from .array_keys import layer_names

if TYPE_CHECKING:  # ir imports this module (Model.as_source_dtype): no import back at run time
    from .ir import Model

__all__ = ["SourceDtypeStatus", "source_dtype_status", "restore_source_dtype"]


@dataclass(frozen=True)
class SourceDtypeStatus:
    """The source model's dtype when it differs from the weights', and whether it can be restored."""

    source: np.dtype
    restorable: bool
    reason: str


def source_dtype_status(model: Model) -> SourceDtypeStatus | None:
    """None when the source's dtype is unknown or the weights'; else whether (and why not) it can be restored."""
    if model.metadata.source_dtype is None or model.metadata.source_dtype == model.dtype.name:
        return None
    source, dtype = np.dtype(model.metadata.source_dtype), model.dtype
    if source.itemsize > dtype.itemsize:
        return SourceDtypeStatus(
            source, False, f"the {source.name} source's weights were rounded to {dtype.name}; they cannot be recovered"
        )
    inexact = _first_inexact_value(model, source)
    if inexact is not None:
        return SourceDtypeStatus(
            source,
            False,
            f"kept {dtype.name}: {inexact} is not exactly a {source.name} value, so the weights were changed "
            f"(edited or retrained) after the {source.name} model was written as {dtype.name}",
        )
    return SourceDtypeStatus(
        source,
        True,
        f"every value is exactly a {source.name}: converting to scikit-learn (sklearn-pickle, skops, to_sklearn) "
        f"gives back the {source.name} model bit for bit",
    )


def restore_source_dtype(model: Model) -> Model:
    """``model`` cast back to its source's dtype when every value is exactly one of it; else ``model`` itself.

    Args:
        model: a model whose ``metadata.source_dtype`` may name a narrower dtype than its weights'.

    Returns:
        The model in the source's dtype (its arrays bit-identical to the source's) when the weights are an
        exact upcast; otherwise ``model`` unchanged (see :func:`source_dtype_status` for why).
    """
    status = source_dtype_status(model)
    return model.astype(status.source) if status is not None and status.restorable else model


def _first_inexact_value(model: Model, source: np.dtype) -> str | None:
    """Where the first value that ``source`` cannot hold exactly is, as ``what[index] = value``."""
    for what, array in _named_arrays(model):
        with np.errstate(over="ignore"):  # a value beyond the source's range becomes inf: a mismatch
            narrowed = array.astype(source)
        mismatch = narrowed != array  # compared in the wider dtype: exact
        if mismatch.any():
            index = tuple(int(i) for i in np.argwhere(mismatch)[0])
            where = f"[{', '.join(map(str, index))}]" if index else ""
            return f"{what}{where} = {float(array[index])!r}"
    return None


def _named_arrays(model: Model) -> Iterator[tuple[str, np.ndarray]]:
    for s, step in enumerate(model.steps):
        for op in step.ops:
            yield f"preprocessing step {s} ({step.name or step.kind!r}) {op.op} operand", op.operand
    for index, (name, layer) in enumerate(zip(layer_names(model.layers), model.layers, strict=True)):
        for role, array in layer_arrays(layer).items():
            if array is not None:
                yield f"layer {index} ({name!r}) {role}", array
