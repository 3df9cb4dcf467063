"""The ONNX writer's options (declared once: the registry, the CLI and this writer use the same
declarations), and the opsets and IR versions it can write."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ...errors import UsageError
from ...options import Option, check_values
from ...quantization import PRECISION_OPTIONS

__all__ = ["WRITE_OPTIONS", "PRECISION_OPTIONS", "WriteOptions", "parse_options", "max_opset", "ir_version"]

# Opset 15 is the default because every runtime in common use runs it:
# onnxruntime >= 1.10, TensorRT 8.x, OpenVINO 2022+, onnxruntime-web, and
# skl2onnx's own recent defaults; nothing an MLP needs changed after it.
DEFAULT_OPSET = 15
MIN_OPSET = 9
# onnxruntime >= 1.16 (the oldest this package accepts) runs opsets up to 19:
# only higher opsets need a probe of the installed onnxruntime.
ORT_GUARANTEED_OPSET = 19
DTYPES: dict[str, np.dtype[Any]] = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}
LINEAR_FORMS = ("gemm", "matmul")
WRITE_OPTIONS = (
    Option("opset", int, default=DEFAULT_OPSET, metavar="N", help=f"ONNX opset, {MIN_OPSET} to the newest onnx and onnxruntime share (default {DEFAULT_OPSET})"),
    Option("dtype", str, choices=tuple(DTYPES), default="float32", help="dtype of the written weights"),
    Option("linear", str, choices=LINEAR_FORMS, default="gemm", flag="--matmul", flag_value="matmul", help="MatMul+Add per layer instead of Gemm"),
    Option("zipmap", bool, default=False, help="add a ZipMap (ai.onnx.ml) on the probabilities, as skl2onnx does"),
    Option("external_data", bool, help="weights in a <file>.<hash>.data sidecar (default: above 2 GB)", flag=None),
    Option("check", bool, help="run onnx.checker on the result (default: below 100 MB)", flag=None),
    Option("io_dtype", str, choices=("float32", "float16"), help="float16 models: float16 input and outputs too (default float32)"),
)


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


def _as_opset(opset: int) -> int:
    highest = max_opset() if opset > ORT_GUARANTEED_OPSET else ORT_GUARANTEED_OPSET
    if not MIN_OPSET <= opset <= highest:
        raise UsageError(
            f"ONNX opset {opset} is not supported: choose one from {MIN_OPSET} to {max_opset()} "
            "(the newest both the installed onnx and onnxruntime know)"
        )
    return opset


def parse_options(options: Mapping[str, Any]) -> WriteOptions:
    """The writer's keyword options as :class:`WriteOptions` (checked against :data:`WRITE_OPTIONS`).

    Raises:
        UsageError: an unknown option, a value of the wrong type or choice, an opset out of range.
    """
    values = check_values(WRITE_OPTIONS, options, "the onnx writer")
    opset = values.get("opset")
    io_dtype = values.get("io_dtype")
    return WriteOptions(
        opset=DEFAULT_OPSET if opset is None else _as_opset(opset),
        dtype=DTYPES[values.get("dtype", "float32")],
        linear=values.get("linear", "gemm"),
        zipmap=values.get("zipmap", False),
        external_data=values.get("external_data"),
        check=values.get("check"),
        io_dtype=None if io_dtype is None else np.dtype(io_dtype),
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
