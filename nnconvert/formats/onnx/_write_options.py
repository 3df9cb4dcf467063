"""The ONNX writer's options, validated, and the opsets and IR versions it can write."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ...errors import UsageError

# Opset 15 is the default because every runtime in common use runs it:
# onnxruntime >= 1.10, TensorRT 8.x, OpenVINO 2022+, onnxruntime-web, and
# skl2onnx's own recent defaults; nothing an MLP needs changed after it.
DEFAULT_OPSET = 15
MIN_OPSET = 9
# onnxruntime >= 1.16 (the oldest this package accepts) runs opsets up to 19:
# only higher opsets need a probe of the installed onnxruntime.
ORT_GUARANTEED_OPSET = 19
WRITE_OPTIONS = ("opset", "dtype", "linear", "zipmap", "external_data", "check", "io_dtype")
# handled by api.save before the writer runs (nnconvert.quantization): the spec declares them
PRECISION_OPTIONS = ("precision", "calibration")
IO_DTYPES = ("float32", "float16")
DTYPES: dict[str, np.dtype[Any]] = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}
LINEAR_FORMS = ("gemm", "matmul")


@dataclass(frozen=True)
class WriteOptions:
    """The writer's options, validated.

    Attributes:
        opset: the ai.onnx opset (9 to :func:`max_opset`).
        dtype: float32 or float64: the type of X, of every weight and output.
        linear: "gemm" (one Gemm per layer) or "matmul" (MatMul then Add).
        zipmap: add an ai.onnx.ml ZipMap so output_probability is a list of maps.
        external_data: True forces weights into a ``<file>.data`` sidecar, None decides by size.
        check: run onnx.checker (full_check) on the result; None: only below 100 MB.
    """

    opset: int = DEFAULT_OPSET
    dtype: np.dtype = DTYPES["float32"]
    linear: str = "gemm"
    zipmap: bool = False
    external_data: bool | None = None
    check: bool | None = None
    io_dtype: np.dtype | None = None  # float16: a float16 model's input and outputs in float16 too


def _as_bool(name: str, value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise UsageError(f"ONNX writer option {name} must be true or false, got {value!r}")


def _as_opset(value: Any) -> int:
    try:
        opset = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"ONNX writer option opset must be an integer, got {value!r}") from None
    if isinstance(value, float) and value != opset:
        raise UsageError(f"ONNX writer option opset must be an integer, got {value!r}")
    highest = max_opset() if opset > ORT_GUARANTEED_OPSET else ORT_GUARANTEED_OPSET
    if not MIN_OPSET <= opset <= highest:
        raise UsageError(
            f"ONNX opset {opset} is not supported: choose one from {MIN_OPSET} to {max_opset()} "
            "(the newest both the installed onnx and onnxruntime know)"
        )
    return opset


def parse_options(options: Mapping[str, Any]) -> WriteOptions:
    """Validate the writer's keyword options.

    Raises:
        UsageError: an unknown option or a bad value.
    """
    unknown = sorted(set(options) - set(WRITE_OPTIONS))
    if unknown:
        raise UsageError(f"the ONNX writer does not take option(s) {', '.join(unknown)}; it takes: {', '.join(WRITE_OPTIONS)}")
    dtype_name = str(options.get("dtype") or "float32")
    if dtype_name not in DTYPES:
        raise UsageError(f"ONNX writer option dtype must be one of {', '.join(DTYPES)}, got {dtype_name!r}")
    linear = str(options.get("linear") or "gemm").lower()
    if linear not in LINEAR_FORMS:
        raise UsageError(f"ONNX writer option linear must be one of {', '.join(LINEAR_FORMS)}, got {linear!r}")
    opset = options.get("opset")
    io_dtype = options.get("io_dtype")
    if io_dtype is not None and str(io_dtype) not in IO_DTYPES:
        raise UsageError(f"ONNX writer option io_dtype must be one of {', '.join(IO_DTYPES)}, got {io_dtype!r}")
    return WriteOptions(
        io_dtype=None if io_dtype is None else np.dtype(str(io_dtype)),
        opset=DEFAULT_OPSET if opset is None else _as_opset(opset),
        dtype=DTYPES[dtype_name],
        linear=linear,
        zipmap=bool(_as_bool("zipmap", options.get("zipmap"))),
        external_data=_as_bool("external_data", options.get("external_data")),
        check=_as_bool("check", options.get("check")),
    )


@lru_cache(maxsize=1)
def max_opset() -> int:
    """The newest ai.onnx opset both the installed onnx and onnxruntime support.

    onnxruntime's limit is found by loading a one-node model at decreasing
    opsets (a few milliseconds); without onnxruntime only onnx's limit counts.
    """
    import onnx

    onnx_max = int(onnx.defs.onnx_opset_version())
    ort_max = _onnxruntime_max_opset(onnx_max)
    return onnx_max if ort_max is None else min(onnx_max, ort_max)


def _onnxruntime_max_opset(upper: int) -> int | None:
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    try:
        import onnxruntime
    except Exception:  # noqa: BLE001 - a broken onnxruntime must not break writing
        return None
    for opset in range(upper, ORT_GUARANTEED_OPSET, -1):
        if _onnxruntime_loads(onnxruntime, opset):
            return opset
    return ORT_GUARANTEED_OPSET


def _onnxruntime_loads(onnxruntime: Any, opset: int) -> bool:
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info("X", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Relu", ["X"], ["Y"])], "probe", [value], [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1])])
    imports = [helper.make_opsetid("", opset)]
    probe = helper.make_model(graph, opset_imports=imports, ir_version=ir_version(imports))
    session_options = onnxruntime.SessionOptions()
    session_options.log_severity_level = 4  # the probe's refusals are expected, not news
    try:
        onnxruntime.InferenceSession(probe.SerializeToString(), session_options, providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - any refusal means "not this opset"
        return False
    return True


def ir_version(opset_imports: list[Any]) -> int:
    """The oldest IR version that allows these opsets: what every runtime of that era accepts."""
    from onnx import helper

    try:
        return max(4, int(helper.find_min_ir_version_for(opset_imports)))
    except (ValueError, KeyError):  # an onnx too old to know the pair: its own IR version
        import onnx

        return int(onnx.IR_VERSION)
