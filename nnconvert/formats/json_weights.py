"""nnconvert's JSON-weights format: the lossless dump of the model graph.

The file is the :mod:`nnconvert.serde` document with two header fields
(``format``, ``format_version``) and every array written inline, either as a
flat row-major list of the shortest decimals that parse back bit-identically,
or as base64 of its raw little-endian bytes. The exact specification is in
docs/formats.md; the JSON Schema in nnconvert/schemas/json_weights.schema.json.
"""

from __future__ import annotations

import binascii
import json
import math
import re
import sys
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ReadError, UnsupportedModelError, UsageError
from ..ir import Model
from ..registry import FormatSpec, register
from ..serde import DocumentReader, model_from_document, model_to_document

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "BASE64_THRESHOLD",
    "read",
    "write",
    "sniff",
    "dumps",
    "loads",
]

FORMAT_NAME = "nnconvert-json-weights"
FORMAT_VERSION = "1.0"
SUPPORTED_MAJOR = 1

# Arrays with more elements than this are base64 under arrays="auto": a list
# costs ~12 bytes of text and a Python float object per value when read,
# base64 5.33 bytes and one C call; 4096 values is about a screenful of text.
BASE64_THRESHOLD = 4096

ARRAY_MODES = ("auto", "list", "base64")
DTYPES = {"float16": np.dtype("<f2"), "float32": np.dtype("<f4"), "float64": np.dtype("<f8")}
# (first, last) significant digits tried. Any float32 needs at most 9 digits, and a
# decimal of 6 digits or fewer that reads back is the only 6-digit decimal to do so
# (6-digit decimals are spaced wider than float32's rounding interval), so trying
# 6 first finds it; float16 (subnormals) starts at 1.
_DIGITS = {"float16": (1, 5), "float32": (6, 9)}
_POW10 = 10.0 ** np.arange(23)  # every power of ten that float64 holds exactly
_VERSION_PATTERN = re.compile(r"^(\d+)\.(\d+)$")
_UTF8_BOM = b"\xef\xbb\xbf"
_INDENT = "  "
_FREE_FORM_KEYS = ("params", "activation_params", "properties")
_LIST_CHUNK = 1 << 20


# -- writing: arrays -----------------------------------------------------------


def _shortest_floats(array: np.ndarray) -> list[float]:
    """Float64 values whose ``repr`` is the shortest decimal that reads back as ``array``'s values.

    A float32 value read from JSON goes decimal -> float64 -> float32. For
    each value this finds the fewest significant digits ``p`` whose rounding
    survives that exact path: ``d / 10**k`` with both operands exact in
    float64 is correctly rounded, so the float64 written is the one the reader
    will parse. Values outside 10**±22 fall back to numpy's own shortest repr,
    and failing that to the exact float64 of the value (always bit-identical).
    """
    flat = np.ascontiguousarray(array).ravel()
    wide = flat.astype(np.float64)
    if flat.dtype == np.float64:
        return wide.tolist()
    out = wide.copy()
    magnitude = np.abs(wide)
    todo = np.flatnonzero(magnitude != 0)  # zeros (and -0.0) are exact already
    exponent = np.floor(np.log10(magnitude[todo])).astype(np.int64)
    first, last = _DIGITS[flat.dtype.name]
    for digits in range(first, last + 1):
        if todo.size == 0:
            break
        power = exponent - (digits - 1)
        exact = np.abs(power) <= 22
        scale = _POW10[np.where(exact, np.abs(power), 0)]
        below = power < 0
        value = magnitude[todo]
        mantissa = np.round(np.where(below, value * scale, value / scale))
        candidate = np.copysign(np.where(below, mantissa / scale, mantissa * scale), wide[todo])
        hit = exact & (candidate.astype(flat.dtype) == flat[todo])
        out[todo[hit]] = candidate[hit]
        todo, exponent = todo[~hit], exponent[~hit]
    for index in todo.tolist():
        candidate = float(str(flat[index]))
        if flat.dtype.type(candidate) == flat[index]:
            out[index] = candidate
    return out.tolist()


class _ArrayText:
    """An array already rendered to its JSON text, emitted compactly on one line."""

    def __init__(self, array: np.ndarray, base64: bool):
        self.head = f'{{"dtype": "{array.dtype.name}", "shape": {json.dumps(list(array.shape))}, '.encode()
        if base64:
            little_endian = np.ascontiguousarray(array, dtype=DTYPES[array.dtype.name])
            self.head += b'"encoding": "base64", "byteorder": "little", "data": "'
            self.body = [binascii.b2a_base64(little_endian, newline=False)]  # reads the buffer, no copy
            self.tail = b'"}'
        else:
            self.head += b'"data": '
            self.body = _list_pieces(array)
            self.tail = b"}"


def _list_pieces(array: np.ndarray) -> list[bytes]:
    """``[v0,v1,...]`` in row-major order, in chunks to bound the memory of large arrays."""
    flat = np.ascontiguousarray(array).ravel()
    pieces = []
    for start in range(0, flat.size, _LIST_CHUNK):
        text = json.dumps(_shortest_floats(flat[start : start + _LIST_CHUNK]), separators=(",", ":"), allow_nan=False)
        pieces.append((b"," if start else b"") + text[1:-1].encode("ascii"))
    return [b"[", *pieces, b"]"]


def _array_encoder(mode: str):
    def encode(array: np.ndarray, key: str) -> _ArrayText:
        if array.dtype.name not in DTYPES:
            raise UnsupportedModelError(f"{key}: the json format stores float16/32/64 arrays, got {array.dtype}")
        base64 = mode == "base64" or (mode == "auto" and array.size > BASE64_THRESHOLD)
        return _ArrayText(array, base64)

    return encode


# -- writing: the document -----------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):  # numpy scalars in params: store the Python value
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON-serializable")


def _scalar_text(value: Any) -> bytes:
    options = {"allow_nan": False, "default": _json_default, "separators": (", ", ": ")}
    text = json.dumps(value, ensure_ascii=False, **options)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: \u escapes keep it (still valid JSON)
        return json.dumps(value, ensure_ascii=True, **options).encode("ascii")


def _is_compound(value: Any) -> bool:
    return (
        isinstance(value, _ArrayText)
        or (isinstance(value, dict) and bool(value))
        or (isinstance(value, (list, tuple)) and any(_is_compound(item) or isinstance(item, dict) for item in value))
    )


def _emit(value: Any, level: int, out: list[bytes]) -> None:
    """Pretty JSON: objects and lists of objects indented, arrays and scalar lists on one line."""
    if isinstance(value, _ArrayText):
        out.extend((value.head, *value.body, value.tail))
        return
    if not _is_compound(value):
        out.append(_scalar_text(value))
        return
    pad = ("\n" + _INDENT * (level + 1)).encode()
    if isinstance(value, dict):
        items = [(_scalar_text(str(key)) + b": ", item) for key, item in value.items()]
        opening, closing = b"{", b"}"
    else:
        items = [(b"", item) for item in value]
        opening, closing = b"[", b"]"
    out.append(opening)
    for index, (prefix, item) in enumerate(items):
        out.append((b"," if index else b"") + pad + prefix)
        _emit(item, level + 1, out)
    out.append(("\n" + _INDENT * level).encode() + closing)


def _sorted_free_form(document: Any) -> Any:
    """Sort the keys of free-form mappings so that equal models give identical bytes."""
    if isinstance(document, dict):
        return {
            key: dict(sorted(value.items()))
            if key in _FREE_FORM_KEYS and isinstance(value, dict)
            else _sorted_free_form(value)
            for key, value in document.items()
        }
    if isinstance(document, list):
        return [_sorted_free_form(item) for item in document]
    return document


def _pieces(model: Model, arrays: str) -> list[bytes]:
    if arrays not in ARRAY_MODES:
        raise UsageError(f"the json writer's option arrays must be one of {', '.join(ARRAY_MODES)}, got {arrays!r}")
    document = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION}
    document.update(_sorted_free_form(model_to_document(model, _array_encoder(arrays))))
    out: list[bytes] = []
    try:
        _emit(document, 0, out)
    except (TypeError, ValueError) as exc:
        raise UnsupportedModelError(f"the json format cannot store a value of this model: {exc}") from None
    out.append(b"\n")
    return out


def dumps(model: Model, *, arrays: str = "auto") -> bytes:
    """The JSON-weights text of ``model`` as UTF-8 bytes (deterministic).

    Args:
        model: the model graph.
        arrays: "list" (decimal lists), "base64" (raw little-endian bytes) or
            "auto" (base64 for arrays above ``BASE64_THRESHOLD`` elements).

    Returns:
        The file's content.

    Raises:
        UsageError: ``arrays`` is not one of the modes.
        UnsupportedModelError: the model holds a value JSON cannot store.
    """
    return b"".join(_pieces(model, arrays))


def write(
    model: Model, path: str | PathLike[str], *, final_path: str | PathLike[str] | None = None, arrays: str = "auto"
) -> None:
    """Write ``model`` as a JSON-weights file.

    Args:
        model: the model graph.
        path: the file to write (the temporary file when called by ``save``).
        final_path: the eventual file name (unused: the content does not depend on it).
        arrays: "auto" (default), "list" or "base64"; see :func:`dumps`.

    Raises:
        UsageError: ``arrays`` is not one of the modes.
        UnsupportedModelError: the model holds a value JSON cannot store.
    """
    pieces = _pieces(model, arrays)
    with open(path, "wb") as handle:
        handle.writelines(pieces)


# -- reading -------------------------------------------------------------------


def _field_for_key(key: str) -> str:
    """serde's slash key as a field path: ``layers/0/weights`` -> ``layers[0].weights``."""
    parts = key.split("/")
    if parts[0] == "steps":
        return f"steps[{parts[1]}].ops[{parts[3]}].operand"
    return f"layers[{parts[1]}].{parts[2]}"


def _declared_shape(r: DocumentReader, encoded: Any, field: str) -> tuple[np.dtype, tuple[int, ...], int]:
    dtype_name = r.get(encoded, "dtype", f"{field}.dtype", str)
    if dtype_name not in DTYPES:
        raise r.fail(f"{field}.dtype", f"expected one of {', '.join(DTYPES)}, got {dtype_name!r}")
    shape = r.get(encoded, "shape", f"{field}.shape", list)
    for index, size in enumerate(shape):
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise r.fail(f"{field}.shape[{index}]", f"expected a non-negative integer, got {size!r}")
    return DTYPES[dtype_name], tuple(shape), math.prod(shape)


def _first_non_number(values: list[Any]) -> int:
    return next(i for i, v in enumerate(values) if type(v) not in (float, int))


def _decode_list(
    r: DocumentReader, encoded: Any, field: str, dtype: np.dtype, shape: tuple[int, ...], count: int
) -> np.ndarray:
    values = r.get(encoded, "data", f"{field}.data", list)
    if len(values) != count:
        raise r.fail(f"{field}.data", f"has {len(values)} values but shape {list(shape)} needs {count}")
    if not set(map(type, values)) <= {float, int}:  # bool and str are refused, not coerced
        index = _first_non_number(values)
        raise r.fail(
            f"{field}.data[{index}]", f"expected a number, got {type(values[index]).__name__} {values[index]!r:.40}"
        )
    try:
        with np.errstate(over="ignore"):  # a value too large for the dtype is reported below
            array = np.array(values, dtype=np.float64).astype(dtype.newbyteorder("="), copy=False)
    except OverflowError:
        raise r.fail(f"{field}.data", "an integer is too large for a float") from None
    if not np.isfinite(array).all():
        index = int(np.flatnonzero(~np.isfinite(array))[0])
        raise r.fail(f"{field}.data[{index}]", f"{values[index]!r} does not fit {dtype.name}")
    return array.reshape(shape)


def _decode_base64(
    r: DocumentReader, encoded: Any, field: str, dtype: np.dtype, shape: tuple[int, ...], count: int
) -> np.ndarray:
    byteorder = r.get(encoded, "byteorder", f"{field}.byteorder", str)
    if byteorder != "little":
        raise r.fail(f"{field}.byteorder", f"expected 'little', got {byteorder!r}")
    text = r.get(encoded, "data", f"{field}.data", str)
    expected = 4 * -(-count * dtype.itemsize // 3)  # integers: exact for any declared size
    if len(text) != expected:  # checked before decoding: a huge declared shape allocates nothing
        raise r.fail(
            f"{field}.data",
            f"has {len(text)} base64 characters but shape {list(shape)} ({count} {dtype.name} values) needs {expected}",
        )
    try:
        if sys.version_info >= (3, 11):
            raw = binascii.a2b_base64(text, strict_mode=True)
        else:  # pragma: no cover
            import base64

            raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise r.fail(f"{field}.data", f"invalid base64: {exc}") from None
    if len(raw) != count * dtype.itemsize:
        raise r.fail(f"{field}.data", f"decodes to {len(raw)} bytes, expected {count * dtype.itemsize}")
    array = np.frombuffer(raw, dtype=dtype)
    if not dtype.isnative:
        array = array.astype(dtype.newbyteorder("="))
    return array.reshape(shape)


def _array_decoder(r: DocumentReader):
    def decode(encoded: Any, key: str) -> np.ndarray:
        field = _field_for_key(key)
        if not isinstance(encoded, dict):
            raise r.fail(field, f"expected an array object, got {type(encoded).__name__}")
        dtype, shape, count = _declared_shape(r, encoded, field)
        encoding = r.get(encoded, "encoding", f"{field}.encoding", str, optional=True)
        if encoding is None:
            return _decode_list(r, encoded, field, dtype, shape, count)
        if encoding == "base64":
            return _decode_base64(r, encoded, field, dtype, shape, count)
        raise r.fail(f"{field}.encoding", f"expected 'base64' or no encoding (a list), got {encoding!r}")

    return decode


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed: weights must be finite")


def _parse(content: bytes | str, r: DocumentReader) -> Any:
    if isinstance(content, bytes):
        content = content.removeprefix(_UTF8_BOM)
        try:
            content = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ReadError(f"not UTF-8 text (byte {exc.start})", path=r.path, format=r.format) from None
    content = content.removeprefix("\ufeff")
    try:
        return json.loads(content, parse_constant=_refuse_constant)
    except RecursionError:
        raise ReadError(
            "the JSON is nested too deeply to be a model document (at most a few levels are expected)",
            path=r.path,
            format=r.format,
        ) from None
    except json.JSONDecodeError as exc:
        raise ReadError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", path=r.path, format=r.format
        ) from None
    except ValueError as exc:
        raise ReadError(f"not valid JSON: {exc}", path=r.path, format=r.format) from None


def _check_header(document: Any, r: DocumentReader) -> None:
    if not isinstance(document, dict):
        raise r.fail("(root)", f"expected an object, got {type(document).__name__}")
    name = r.get(document, "format", "format", str)
    if name != FORMAT_NAME:
        raise r.fail("format", f"expected {FORMAT_NAME!r}, got {name!r}")
    version = r.get(document, "format_version", "format_version", str)
    match = _VERSION_PATTERN.match(version)
    if match is None:
        raise r.fail("format_version", f"expected 'MAJOR.MINOR' such as {FORMAT_VERSION!r}, got {version!r}")
    if int(match.group(1)) != SUPPORTED_MAJOR:
        raise r.fail(
            "format_version",
            f"version {version} is not supported: this nnconvert reads major version {SUPPORTED_MAJOR} "
            f"({SUPPORTED_MAJOR}.x); convert the file with the nnconvert that wrote it, or upgrade nnconvert",
        )


def loads(content: bytes | str, *, path: str | PathLike[str] | None = None) -> Model:
    """The model in a JSON-weights text.

    Args:
        content: the file's content (bytes are decoded as UTF-8, a BOM is allowed).
        path: the file name used in error messages.

    Returns:
        The model graph.

    Raises:
        ReadError: invalid JSON, an unknown major version, or a field missing,
            of the wrong type or inconsistent (the message names the field).
    """
    r = DocumentReader(path, "json")
    document = _parse(content, r)
    _check_header(document, r)
    return model_from_document(document, _array_decoder(r), path=path, format="json")


def read(path: str | PathLike[str]) -> Model:
    """Read a JSON-weights file.

    Args:
        path: the file.

    Returns:
        The model graph.

    Raises:
        ReadError: the file is unreadable or not a valid JSON-weights file.
    """
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise ReadError(f"cannot read the file: {exc.strerror or exc}", path=path, format="json") from None
    return loads(content, path=path)


def sniff(head: bytes, path: Path) -> bool:
    """True when ``head`` is a JSON object naming the nnconvert-json-weights format."""
    try:
        text = head.removeprefix(_UTF8_BOM).lstrip(b" \t\r\n")
        return text.startswith(b"{") and b'"format"' in head and FORMAT_NAME.encode() in head
    except Exception:  # noqa: BLE001 - a probe never raises
        return False


register(
    FormatSpec(
        name="json",
        suffixes=(".json",),
        description="nnconvert JSON weights: the lossless, versioned dump of the model graph",
        read=read,
        write=write,
        sniff=sniff,
        write_options=("arrays",),
    )
)
