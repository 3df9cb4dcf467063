"""Decoding ONNX tensors to numpy, every declared size checked against the data present first."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..._io.safe_open import read_at
from ...errors import ReadError
from ._common import FORMAT
from ._load import EXTERNAL, external_info, open_external

# TensorProto.DataType codes (kept here so this module imports without onnx)
FLOAT, _UINT8, _INT8, _UINT16, _INT16, _INT32, _INT64, _STRING, _BOOL, _FLOAT16, _DOUBLE, _UINT32, _UINT64 = range(1, 14)
DTYPES: dict[int, np.dtype[Any]] = {
    FLOAT: np.dtype(np.float32),
    _DOUBLE: np.dtype(np.float64),
    _FLOAT16: np.dtype(np.float16),
    _INT64: np.dtype(np.int64),
    _INT32: np.dtype(np.int32),
    _INT16: np.dtype(np.int16),
    _INT8: np.dtype(np.int8),
    _UINT8: np.dtype(np.uint8),
    _UINT16: np.dtype(np.uint16),
    _UINT32: np.dtype(np.uint32),
    _UINT64: np.dtype(np.uint64),
    _BOOL: np.dtype(np.bool_),
    _STRING: np.dtype(str),
}
FLOAT_TYPES = (FLOAT, _DOUBLE, _FLOAT16)


def declared_type(tensor: Any, where: str, path: Path) -> tuple[np.dtype, list[int]]:
    """The tensor's numpy dtype and dimensions, refused when unsupported or negative."""
    dtype = DTYPES.get(tensor.data_type)
    if dtype is None:
        raise ReadError(f"{where}: unsupported tensor data type {tensor.data_type}", path=path, format=FORMAT)
    dims = [int(d) for d in tensor.dims]
    if any(d < 0 for d in dims):
        raise ReadError(f"{where}: negative dimension in shape {dims}", path=path, format=FORMAT)
    return dtype, dims


def tensor_array(tensor: Any, where: str, path: Path) -> np.ndarray:
    """The tensor's values, every declared size checked against the data present first."""
    dtype, dims = declared_type(tensor, where, path)
    count = math.prod(dims)
    if tensor.data_location == EXTERNAL:
        raw = _external_bytes(tensor, where, path, count * dtype.itemsize, dims, dtype)
        return _from_raw(raw, dtype, dims)
    if tensor.data_type == _STRING:
        values = tensor.string_data
        _check_count(len(values), count, where, dims, path)
        decoded = [v.decode("utf-8", errors="replace") for v in values]
        return np.array(decoded, dtype=str).reshape(dims) if decoded else np.zeros(dims, dtype="<U1")
    if tensor.HasField("raw_data") and (tensor.raw_data or count == 0):
        expected = count * dtype.itemsize
        if len(tensor.raw_data) != expected:
            raise ReadError(
                f"{where}: raw data hold {len(tensor.raw_data)} bytes but shape {dims} of {dtype} needs {expected}",
                path=path,
                format=FORMAT,
            )
        return _from_raw(tensor.raw_data, dtype, dims)
    return _from_typed_field(tensor, dtype, dims, count, where, path)


def _check_count(actual: int, expected: int, where: str, dims: list[int], path: Path) -> None:
    if actual != expected:
        raise ReadError(f"{where}: holds {actual} values but its shape {dims} needs {expected}", path=path, format=FORMAT)


def _from_raw(raw: bytes, dtype: np.dtype, dims: list[int]) -> np.ndarray:
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(dims)


def _from_typed_field(tensor: Any, dtype: np.dtype, dims: list[int], count: int, where: str, path: Path) -> np.ndarray:
    code = tensor.data_type
    if code == FLOAT:
        values = tensor.float_data
    elif code == _DOUBLE:
        values = tensor.double_data
    elif code == _INT64:
        values = tensor.int64_data
    elif code in (_UINT32, _UINT64):
        values = tensor.uint64_data
    else:
        values = tensor.int32_data
    _check_count(len(values), count, where, dims, path)
    if code == _FLOAT16:  # stored as the bit patterns
        return np.array(values, dtype=np.uint16).view(np.float16).reshape(dims)
    return np.array(values).astype(dtype).reshape(dims)


def _external_bytes(tensor: Any, where: str, path: Path, expected: int, dims: list[int], dtype: np.dtype) -> bytes:
    if tensor.data_type == _STRING:
        raise ReadError(f"{where}: string tensors cannot be stored as external data", path=path, format=FORMAT)
    info = external_info(tensor)
    try:
        offset = int(info.get("offset", "0"))
        length = int(info["length"]) if "length" in info else expected
    except ValueError:
        raise ReadError(f"{where}: external data offset/length are not integers: {info}", path=path, format=FORMAT) from None
    if offset < 0 or length != expected:
        raise ReadError(
            f"{where}: external data declare {length} bytes at offset {offset}, but shape {dims} of {dtype} needs {expected}",
            path=path,
            format=FORMAT,
        )
    fd = open_external(tensor, where, path)  # opened once; size and bytes come from this descriptor
    try:
        size = os.fstat(fd).st_size
        name = info.get("location", "")
        if offset + expected > size:
            raise ReadError(
                f"{where}: external data need bytes {offset}..{offset + expected} of {name}, which has only {size}",
                path=path,
                format=FORMAT,
            )
        raw = read_at(fd, offset, expected)
    finally:
        os.close(fd)
    if len(raw) != expected:
        raise ReadError(f"{where}: external data file {name} ended early", path=path, format=FORMAT)
    return raw


def inline_external_data(proto: Any, path: Path) -> bool:
    """Replace every external tensor of ``proto`` (subgraphs included) by its bytes, read with ``load``'s checks.

    A runtime handed the model's bytes resolves external data against the
    current directory, not the model's folder; inlined, nothing is left for
    it to resolve. Returns True when something was inlined.
    """
    from onnx.external_data_helper import _get_all_tensors

    changed = False
    for tensor in _get_all_tensors(proto):
        if tensor.data_location != EXTERNAL and not len(tensor.external_data):
            continue
        where = f"tensor {tensor.name!r}"
        dtype, dims = declared_type(tensor, where, path)
        raw = _external_bytes(tensor, where, path, math.prod(dims) * dtype.itemsize, dims, dtype)
        del tensor.external_data[:]
        tensor.data_location = tensor.DEFAULT
        tensor.raw_data = raw
        changed = True
    return changed
