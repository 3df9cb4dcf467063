"""Writer options of the C target and the check of what it can express.

The check runs before anything is written: every unsupported layer kind,
activation or preprocessing operation is collected and refused in one
:class:`~nnconvert.errors.UnsupportedModelError` naming each layer.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import UnsupportedModelError, UsageError
from ...ir import (
    ActivationLayer,
    BatchNormLayer,
    DenseLayer,
    ElementwiseOp,
    LayerNormLayer,
    Model,
    PReLULayer,
    PreprocessStep,
)
from ...options import Option

__all__ = [
    "PRECISIONS",
    "FLOAT_PRECISIONS",
    "FIXED_PRECISIONS",
    "WRITE_OPTIONS",
    "COptions",
    "parse_options",
    "check_supported",
]

FLOAT_PRECISIONS = ("float32", "float64")
FIXED_PRECISIONS = ("int16", "int8")
PRECISIONS = FLOAT_PRECISIONS + FIXED_PRECISIONS

def _rows_from_file(text: str) -> np.ndarray:
    # the command line names a file; the API takes the rows themselves
    from ..._io.tables import load_table

    return load_table(text)


WRITE_OPTIONS = (
    Option("precision", choices=PRECISIONS, help="arithmetic of the generated code (default float32)"),
    # the shared --dtype flag: a float precision, for callers that say dtype= to every writer
    Option("dtype", choices=FLOAT_PRECISIONS, also=(np.dtype, type), help="dtype of the written weights"),
    Option("prefix", metavar="NAME", help="prefix of every generated C symbol (default: from DST's name)"),
    Option("input_range", list, flag=None, help="per-feature (low, high) the fixed-point formats are sized for"),
    Option(
        "calibration",
        list,
        parse=_rows_from_file,
        metavar="FILE",
        help="int16/int8: rows (.npy/.npz/.csv) the fixed-point formats are sized for",
    ),
)

# What the generator can emit: every layer kind of the model graph at the float precisions (a
# layer of any other class is refused by its class name); the integer precisions hold what
# fixed_fold.fixed_layers can bring to dense layers with integer activations, and name the rest.
SUPPORTED_LAYER_TYPES: tuple[type, ...] = (DenseLayer, BatchNormLayer, LayerNormLayer, ActivationLayer, PReLULayer)
SUPPORTED_STEP_TYPES: tuple[type, ...] = (PreprocessStep,)
SUPPORTED_OPS = ("sub", "div", "mul", "add", "clip")

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto if inline int long "
    "register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while "
    "_Bool _Complex _Imaginary".split()
)


@dataclass(frozen=True)
class COptions:
    """Validated writer options.

    Attributes:
        precision: float32, float64, int16 (Q15 activations and weights) or int8.
        prefix: the C identifier every public symbol starts with.
        input_range: per-feature (low, high) the fixed-point formats are sized for, or None.
        calibration: rows whose layer ranges size the fixed-point formats, or None.
    """

    precision: str
    prefix: str
    input_range: tuple[np.ndarray, np.ndarray] | None = None
    calibration: np.ndarray | None = None

    @property
    def is_fixed(self) -> bool:
        return self.precision in FIXED_PRECISIONS


def default_prefix(path: Path | None) -> str:
    """A C identifier from the file name (``iris-mlp.c`` -> ``iris_mlp``); ``model`` when there is none."""
    stem = re.sub(r"[^A-Za-z0-9_]", "_", path.stem) if path is not None else ""
    if not stem or stem[0].isdigit():
        stem = "model_" + stem if stem else "model"
    return stem if stem not in _C_KEYWORDS and not keyword.iskeyword(stem) else stem + "_model"


def parse_options(model: Model, final_path: Path | None, options: dict[str, Any]) -> COptions:
    """Check and normalise the writer options.

    Raises:
        UsageError: an unknown precision, a prefix that is not a C identifier, a bad range or
            calibration array, or ``dtype`` contradicting ``precision``.
    """
    precision = options.get("precision")
    dtype = options.get("dtype")
    if dtype is not None:
        dtype = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
        if dtype not in FLOAT_PRECISIONS:
            raise UsageError(f"the c writer's dtype= must be float32 or float64, got {dtype!r}; use precision= for fixed point")
        if precision is not None and precision != dtype:
            raise UsageError(f"dtype={dtype!r} and precision={precision!r} disagree; give only precision=")
        precision = dtype
    precision = precision or "float32"
    if precision not in PRECISIONS:
        raise UsageError(f"precision={precision!r} is not one of {', '.join(PRECISIONS)}")
    prefix = options.get("prefix") or default_prefix(final_path)
    if not isinstance(prefix, str) or not _IDENTIFIER.match(prefix) or prefix in _C_KEYWORDS:
        raise UsageError(f"prefix={prefix!r} must be a C identifier (letters, digits, underscores; not a keyword)")
    input_range = _parse_range(options.get("input_range"), model.n_features)
    calibration = _parse_calibration(options.get("calibration"), model.n_features)
    if (input_range is not None or calibration is not None) and precision not in FIXED_PRECISIONS:
        raise UsageError("input_range= and calibration= size fixed-point formats: they need precision='int16' or 'int8'")
    return COptions(precision, prefix, input_range, calibration)


def _parse_range(value: Any, n_features: int) -> tuple[np.ndarray, np.ndarray] | None:
    if value is None:
        return None
    try:
        low, high = (np.broadcast_to(np.asarray(v, dtype=np.float64), (n_features,)) for v in value)
    except (TypeError, ValueError):
        raise UsageError(f"input_range= must be (low, high), each a number or {n_features} numbers") from None
    if not (np.isfinite(low).all() and np.isfinite(high).all() and (low < high).all()):
        raise UsageError("input_range= needs finite low < high for every feature")
    return np.array(low), np.array(high)


def _parse_calibration(value: Any, n_features: int) -> np.ndarray | None:
    if value is None:
        return None
    try:
        rows = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise UsageError("calibration= must be a numeric array (n_rows, n_features)") from None
    if rows.ndim != 2 or rows.shape[1] != n_features or rows.shape[0] == 0 or not np.isfinite(rows).all():
        raise UsageError(f"calibration= must be finite rows of shape (n_rows, {n_features}), got shape {rows.shape}")
    return rows


def _layer_where(index: int, layer: Any) -> str:
    name = getattr(layer, "name", "") or ""
    return f"layer {index} ({name!r})" if name else f"layer {index}"


def check_supported(model: Model, precision: str) -> None:
    """Refuse, before anything is written, what the C generator cannot express.

    Raises:
        UnsupportedModelError: listing every unsupported step, layer kind and activation.
    """
    problems = []
    for index, step in enumerate(model.steps):
        where = f"preprocessing step {index} ({getattr(step, 'name', '') or getattr(step, 'kind', '')!r})"
        if type(step) not in SUPPORTED_STEP_TYPES:
            problems.append(f"{where}: {type(step).__name__} steps are not supported by the c target")
            continue
        for op in step.ops:
            if not isinstance(op, ElementwiseOp) or op.op not in SUPPORTED_OPS:
                problems.append(f"{where}: operation {getattr(op, 'op', type(op).__name__)!r} is not supported")
    for index, layer in enumerate(model.layers):
        if type(layer) not in SUPPORTED_LAYER_TYPES:  # exact: a subclass may add arithmetic
            problems.append(f"{_layer_where(index, layer)}: {type(layer).__name__} layers are not supported by the c target")
    if not problems and precision in FIXED_PRECISIONS:
        from .fixed_fold import fixed_layers

        problems += fixed_layers(model, precision)[2]
    if problems:
        raise UnsupportedModelError("the c target cannot express this model", problems)
