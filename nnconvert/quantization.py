"""Reduced precision in the IR: int8 dense layers and the quantizer that makes them.

A quantized dense layer keeps its ``weights`` as the exact float32
dequantization ``(values - zero_point) * scale`` (so every reader of the IR
still sees a dense layer) and carries a :class:`QuantizedWeights` with the
int8 values, one float32 scale and one int8 zero point per output channel, and
for static quantization the calibrated uint8 scale and zero point of the
layer's input. The forward pass computes as onnxruntime's integer kernels do
(docs/formats.md, "Reduced precision"): the input is quantized to uint8
(per batch for dynamic, with the calibrated scale for static), the product is
accumulated in integers, then scaled once by ``input_scale * scale``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InvalidModelError, UnsupportedModelError, UsageError
from .options import Option

if TYPE_CHECKING:
    from .ir import Model

__all__ = [
    "PRECISIONS",
    "PRECISION_OPTIONS",
    "QuantizedWeights",
    "quantize",
    "quantize_dense_layers",
    "calibrate",
    "precision_of",
    "quantization_mode",
    "parameter_bytes",
    "dequantized",
    "check_precision",
]

PRECISIONS = ("float32", "float16", "int8")
# declared by the writers that hold reduced precision (onnx, json, hdf5); applied by api.save
PRECISION_OPTIONS = (
    Option(
        "precision",
        str,
        choices=("float16", "int8"),
        help="float16 weights, or int8 dense layers with per-channel scales; --verify then prices it against the source",
    ),
    Option(
        "calibration",
        str,
        also=(np.ndarray, list, tuple),
        metavar="X.csv|.npy|.parquet",
        help="rows for int8 static (QDQ) quantization (a file, or an array in the API); without them int8 is dynamic",
    ),
)
INT8_LIMIT = 127  # symmetric int8 weights: -127..127, as onnxruntime's quantizer makes them
UINT8_MAX = 255


@dataclass(frozen=True, eq=False)
class QuantizedWeights:
    """int8 weights of one dense layer with per-output-channel scale and zero point.

    Attributes:
        values: int8, shape ``(n_in, n_out)``.
        scale: float32, shape ``(n_out,)``, all positive.
        zero_point: int8, shape ``(n_out,)``.
        input_scale / input_zero_point: the calibrated uint8 quantization of the layer's
            input (static, QDQ); both None for dynamic quantization (computed per batch).
    """

    values: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    input_scale: float | None = None
    input_zero_point: int | None = None

    @property
    def mode(self) -> str:
        return "dynamic" if self.input_scale is None else "static"

    def dequantized(self) -> np.ndarray:
        """``(values - zero_point) * scale`` in float32: the weights the layer stands for."""
        centred = self.values.astype(np.float32) - self.zero_point.astype(np.float32)
        return centred * self.scale

    def validate(self, where: str, n_in: int, n_out: int) -> QuantizedWeights:
        """A read-only copy checked for dtypes, shapes and ranges; InvalidModelError naming ``where``."""
        values, scale, zero_point = (np.asarray(a) for a in (self.values, self.scale, self.zero_point))
        if values.dtype != np.int8 or values.shape != (n_in, n_out):
            raise InvalidModelError(f"{where}: quantized values must be int8 of shape {(n_in, n_out)}, got {values.dtype} {values.shape}")
        if scale.dtype != np.float32 or scale.shape != (n_out,):
            raise InvalidModelError(f"{where}: quantization scale must be float32 of shape ({n_out},), got {scale.dtype} {scale.shape}")
        if not (np.isfinite(scale).all() and (scale > 0).all()):
            raise InvalidModelError(f"{where}: quantization scales must be finite and positive")
        if zero_point.dtype != np.int8 or zero_point.shape != (n_out,):
            raise InvalidModelError(f"{where}: quantization zero_point must be int8 of shape ({n_out},), got {zero_point.dtype} {zero_point.shape}")
        static = (self.input_scale is None, self.input_zero_point is None)
        if static[0] != static[1]:
            raise InvalidModelError(f"{where}: input_scale and input_zero_point come together (static) or not at all (dynamic)")
        input_scale, input_zero_point = self.input_scale, self.input_zero_point
        if input_scale is not None:
            input_scale = float(np.float32(input_scale))
            if not (np.isfinite(input_scale) and input_scale > 0):
                raise InvalidModelError(f"{where}: input_scale must be finite and positive, got {self.input_scale!r}")
            if isinstance(input_zero_point, bool) or not isinstance(input_zero_point, (int, np.integer)) or not 0 <= int(input_zero_point) <= UINT8_MAX:
                raise InvalidModelError(f"{where}: input_zero_point must be an integer from 0 to 255, got {self.input_zero_point!r}")
            input_zero_point = int(input_zero_point)
        arrays = []
        for array in (values, scale, zero_point):
            view = array.view()
            view.flags.writeable = False
            arrays.append(view)
        return QuantizedWeights(arrays[0], arrays[1], arrays[2], input_scale, input_zero_point)

    def matmul(self, x: np.ndarray) -> np.ndarray:
        """``x @ weights`` as onnxruntime's integer path computes it, in float32."""
        x = np.asarray(x, dtype=np.float32)
        if self.input_scale is None:
            x_scale, x_zero = _dynamic_input_quantization(x)
        else:
            x_scale, x_zero = np.float32(self.input_scale), self.input_zero_point or 0
        x_q = np.clip(np.rint(x / x_scale) + x_zero, 0, UINT8_MAX)
        # integer products summed in float64 are exact (|sum| < 2**53 for any width that fits memory)
        accumulated = (x_q - x_zero) @ (self.values.astype(np.float64) - self.zero_point.astype(np.float64))
        return accumulated.astype(np.float32) * (np.float32(x_scale) * self.scale)


def _dynamic_input_quantization(x: np.ndarray) -> tuple[np.float32, int]:
    """onnxruntime's DynamicQuantizeLinear: uint8 over the batch's range widened to include 0."""
    low = min(np.float32(x.min()) if x.size else np.float32(0), np.float32(0))
    high = max(np.float32(x.max()) if x.size else np.float32(0), np.float32(0))
    scale = np.float32((high - low) / np.float32(UINT8_MAX))
    if scale == 0:
        return np.float32(1), 0  # an all-zero input: any scale gives zeros
    zero = int(np.clip(np.rint(np.float32(0) - low / scale), 0, UINT8_MAX))
    return scale, zero


def _quantize_weights(weights: np.ndarray) -> QuantizedWeights:
    """Symmetric per-output-channel int8, as ``onnxruntime.quantization`` with per_channel=True."""
    w = np.asarray(weights, dtype=np.float32)
    absmax = np.abs(w).max(axis=0) if w.size else np.zeros(w.shape[1], np.float32)
    scale = (absmax / np.float32(INT8_LIMIT)).astype(np.float32)
    scale[scale == 0] = 1  # an all-zero column: every value is 0 at any scale
    values = np.clip(np.rint(w / scale), -INT8_LIMIT, INT8_LIMIT).astype(np.int8)
    return QuantizedWeights(values, scale, np.zeros(w.shape[1], np.int8))


def _static_input_quantization(low: float, high: float) -> tuple[float, int]:
    """uint8 scale and zero point of an input range (onnxruntime's MinMax calibration, asymmetric)."""
    low32, high32 = min(np.float32(low), np.float32(0)), max(np.float32(high), np.float32(0))
    scale = np.float32((high32 - low32) / np.float32(UINT8_MAX))
    if scale == 0:
        return 1.0, 0
    return float(scale), int(np.clip(np.rint(-low32 / scale), 0, UINT8_MAX))


def calibrate(model: Model, calibration: Any) -> list[tuple[float, float]]:
    """The (min, max) of each dense layer's input over the calibration rows (float model)."""
    rows = np.asarray(calibration)
    if rows.ndim != 2 or rows.shape[1] != model.n_features or rows.shape[0] == 0:
        raise UsageError(f"calibration data must be rows of {model.n_features} features, got shape {rows.shape}")
    intermediates = model.dequantized().forward(rows, return_intermediates=True)
    return [(float(np.min(x)), float(np.max(x))) for x in intermediates[:-1]]  # layer i's input


def quantize_dense_layers(model: Model, calibration: Any = None) -> Model:
    """``model`` with every dense layer int8 (dynamic; static with calibration rows).

    Float64 models are quantized from their float32 rounding, which is what an
    ONNX file holds; the result computes in float32.
    """

    from ._layers import DenseLayer

    base = model.dequantized().astype(np.float32)
    ranges = None if calibration is None else calibrate(base, calibration)
    layers: list[Any] = []
    for index, layer in enumerate(base.layers):
        if not isinstance(layer, DenseLayer):  # normalization and activation layers stay float32
            layers.append(layer)
            continue
        quantized = _quantize_weights(layer.weights)
        if ranges is not None:
            input_scale, input_zero = _static_input_quantization(*ranges[index])
            quantized = replace(quantized, input_scale=input_scale, input_zero_point=input_zero)
        layers.append(replace(layer, weights=quantized.dequantized(), quantization=quantized))
    return replace(base, layers=tuple(layers))


def quantize(model: Model, precision: str | None, calibration: Any = None) -> Model:
    """``model`` at ``precision`` (float16: weights rounded; int8: dense layers quantized).

    Raises:
        UsageError: an unknown precision, or calibration data without int8.
    """
    precision = check_precision(precision)
    if calibration is not None and precision != "int8":
        raise UsageError("calibration data is for int8 static quantization; add precision='int8' (--precision int8)")
    if precision is None:
        return model
    if precision == "int8":
        return quantize_dense_layers(model, calibration)
    if precision == "float16":
        return model.dequantized().astype(np.float16)
    return model.dequantized().astype(np.float32)


def check_precision(precision: str | None) -> str | None:
    if precision is None:
        return None
    if precision not in PRECISIONS:
        raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def precision_of(model: Model) -> str:
    """int8 when any layer is quantized, else the weights' dtype."""
    return "int8" if any(_quantization(layer) is not None for layer in model.layers) else model.dtype.name


def _quantization(layer: Any) -> QuantizedWeights | None:
    return getattr(layer, "quantization", None)  # only dense layers have one


def quantization_mode(model: Model) -> str | None:
    """dynamic / static for int8 models, None otherwise."""
    modes = {q.mode for q in map(_quantization, model.layers) if q is not None}
    return None if not modes else "/".join(sorted(modes))


def parameter_bytes(model: Model) -> int:
    """Bytes of the stored parameters: int8 values plus scales and zero points for quantized layers."""
    from ._layers import DenseLayer, layer_arrays

    total = 0
    for layer in model.layers:
        q = _quantization(layer)
        if q is None or not isinstance(layer, DenseLayer):
            total += sum(a.nbytes for a in layer_arrays(layer).values() if a is not None)
        else:
            total += q.values.nbytes + q.scale.nbytes + q.zero_point.nbytes + layer.bias.nbytes
            total += 0 if q.input_scale is None else 5  # float32 scale + uint8 zero point
    total += sum(op.operand.nbytes for step in model.steps for op in step.ops)
    return total


def dequantized(model: Model) -> Model:
    """The float32 model the int8 one stands for (the same weights, computed in float)."""
    if precision_of(model) != "int8":
        return model
    from ._layers import DenseLayer

    layers = tuple(replace(layer, quantization=None) if isinstance(layer, DenseLayer) else layer for layer in model.layers)
    return replace(model, layers=layers)


def refuse_quantized(model: Model, target: str, how: str) -> None:
    """UnsupportedModelError naming the quantized layers, for targets that compute in float only."""
    layers: Iterable[Any] = [i for i, layer in enumerate(model.layers) if _quantization(layer) is not None]
    names = [f"layer {i} ({model.layers[i].name or f'dense_{i}'!r}): int8 weights" for i in layers]
    if names:
        raise UnsupportedModelError(
            f"{target} computes in floating point only, so it cannot run this int8 model as quantized; "
            f"converting would silently change its results. Dequantize explicitly ({how}) to get the float32 "
            "model its int8 weights stand for",
            names,
        )


def apply_precision(
    model: Model, format_name: str, options: dict[str, Any], *, dequantize: bool = False, write_options: Sequence[Option] = PRECISION_OPTIONS
) -> Model:
    """Pop ``precision``/``calibration`` from a writer's options and return the model to write.

    Raises:
        UsageError: a bad precision, or calibration without int8.
        UnsupportedModelError: an int8 model for a format that cannot hold it, without ``dequantize``.
    """
    if not declares_reduced_precision(write_options):  # e.g. the c target: its own precision/calibration options
        if dequantize:
            model = model.dequantized()
        if precision_of(model) == "int8":
            refuse_quantized(model, f"the {format_name} format", "dequantize=True, --dequantize on the command line")
        return model
    precision = options.pop("precision", None)
    calibration = options.pop("calibration", None)
    if calibration is not None and not isinstance(calibration, np.ndarray):
        calibration = load_calibration(calibration)
    if dequantize:
        model = model.dequantized()
    model = quantize(model, precision, calibration)
    if precision_of(model) == "int8" and format_name not in INT8_FORMATS:
        refuse_quantized(model, f"the {format_name} format", "dequantize=True, --dequantize on the command line")
    return model


# formats whose files hold int8 layers (their writers declare ``precision``)
INT8_FORMATS = ("onnx", "json", "hdf5")


def declares_reduced_precision(write_options: Sequence[Option]) -> bool:
    """Whether a writer declares this module's ``precision`` option (not one of its own, like the c target's)."""
    return any(option is PRECISION_OPTIONS[0] for option in write_options)


def load_calibration(source: Any) -> np.ndarray:
    """Calibration rows from an array, or a .npy/.npz (key X or the first)/.csv (header optional)/.parquet file.

    Read here with numpy (and pyarrow) rather than through verify's data loader, which
    sits above the API in the import graph.

    Raises:
        ReadError: the file is missing, of an unknown type or not a numeric table.
    """
    from pathlib import Path

    from .errors import ReadError

    if not isinstance(source, (str, Path)):
        return np.asarray(source)
    path = Path(source)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return _read_parquet(path)
        if suffix == ".npy":
            return np.asarray(np.load(path, allow_pickle=False), dtype=np.float64)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                return np.asarray(archive["X" if "X" in archive.files else archive.files[0]], dtype=np.float64)
        if suffix in (".csv", ".txt"):
            return _read_csv(path)
    except (OSError, ValueError, IndexError) as exc:
        raise ReadError(f"cannot read the calibration rows: {exc}", path=path) from None
    raise ReadError(f"unknown calibration file type {suffix!r}; expected .csv, .npy, .npz or .parquet", path=path)


def _read_csv(path: Any) -> np.ndarray:
    with open(path, encoding="utf-8") as handle:
        first = handle.readline()
    try:
        [float(cell) for cell in first.split(",")]
        header = 0
    except ValueError:  # a header line of column names
        header = 1
    return np.loadtxt(path, delimiter=",", skiprows=header, ndmin=2, dtype=np.float64)


def _read_parquet(path: Any) -> np.ndarray:
    """Every column of a Parquet file as float64 rows (pyarrow, an optional dependency)."""
    from .errors import MissingDependencyError, ReadError

    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependencyError("pyarrow", "reading Parquet calibration data") from exc
    try:
        table = pq.read_table(path)
        return np.column_stack([column.to_numpy(zero_copy_only=False) for column in table.columns]).astype(np.float64)
    except Exception as exc:  # noqa: BLE001 - any pyarrow failure is a bad calibration file
        raise ReadError(f"cannot read the calibration rows: {exc}", path=path) from None
