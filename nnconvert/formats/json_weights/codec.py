"""The JSON-weights codec: arrays as decimal lists or base64, the document to text and back.

Writing renders the :mod:`nnconvert.serde` document with every array inline;
reading parses the text with :mod:`json` and decodes each array after checking
its declared dtype and shape. The raw-bytes shortcut for long base64 strings
is :mod:`.fast_read`.
"""

from __future__ import annotations

import binascii
import json
import math
import re
import sys
from collections.abc import Iterable, Iterator
from typing import Any, Protocol, cast

import numpy as np

from ... import array_keys
from ...errors import ReadError, UnsupportedModelError, UsageError
from ...ir import Model
from ...serde import DocumentReader, json_default, model_to_document

FORMAT_NAME = "nnconvert-json-weights"
FORMAT_VERSION = "1.1"
SUPPORTED_MAJOR = 1

# Arrays with more elements than this are base64 under arrays="auto": a list
# costs ~12 bytes of text and a Python float object per value when read,
# base64 5.33 bytes and one C call; 4096 values is about a screenful of text.
BASE64_THRESHOLD = 4096

ARRAY_MODES = ("auto", "list", "base64")
INT8_KEYS = ("values", "zero_point")  # the only int8 arrays: a quantized layer's (layers/<i>/quantization/...)
DTYPES: dict[str, np.dtype[Any]] = {
    "float16": np.dtype("<f2"),
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
    "int8": np.dtype("i1"),  # quantized weights and zero points
}
# (first, last) significant digits tried. Any float32 needs at most 9 digits, and a
# decimal of 6 digits or fewer that reads back is the only 6-digit decimal to do so
# (6-digit decimals are spaced wider than float32's rounding interval), so trying
# 6 first finds it; float16 (subnormals) starts at 1.
_DIGITS = {"float16": (1, 5), "float32": (6, 9)}
_POW10 = 10.0 ** np.arange(23)  # every power of ten that float64 holds exactly
_VERSION_PATTERN = re.compile(r"^(\d+)\.(\d+)$")
UTF8_BOM = b"\xef\xbb\xbf"
_INDENT = "  "
_FREE_FORM_KEYS = ("params", "activation_params", "properties")
_LIST_CHUNK = 1 << 20
_ENCODE_CHUNK = 3 << 18  # 768 KiB of array bytes -> 1 MiB of text, fits in L2/L3


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
    if flat.dtype.kind == "i":  # int8: the integers themselves
        return cast("list[float]", flat.astype(np.int64).tolist())  # written as JSON integers
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
        self.body: Iterable[bytes]
        if base64:
            little_endian = np.ascontiguousarray(array, dtype=DTYPES[array.dtype.name])
            self.head += b'"encoding": "base64", "byteorder": "little", "data": "'
            self.body = _Base64Pieces(little_endian)
            self.tail = b'"}'
        else:
            self.head += b'"data": '
            self.body = _list_pieces(array)
            self.tail = b"}"


class _Base64Pieces:
    """The base64 text of an array, encoded piece by piece while it is written.

    Pieces of ``_ENCODE_CHUNK`` bytes (a multiple of 3, so that they join into
    the same text as one call) are encoded into buffers that malloc reuses and
    that are still in cache when written, and the kernel writes the first
    pieces back while the rest is encoded. One call per array allocated 4/3 of
    the weights in fresh pages and wrote them from memory: ~1.5x the CPU time
    (36.8M float64 weights: 418 ms -> 270 ms).
    """

    def __init__(self, array: np.ndarray):
        self.raw = array.reshape(-1).view(np.uint8)  # a view: nothing is encoded before it is written

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, self.raw.size, _ENCODE_CHUNK):
            # .data: numpy's stubs declare ndarray a Buffer only on Python >= 3.12
            yield binascii.b2a_base64(self.raw[start : start + _ENCODE_CHUNK].data, newline=False)


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
            raise UnsupportedModelError(f"{key}: the json format stores float16/32/64 and int8 arrays, got {array.dtype}")
        base64 = mode == "base64" or (mode == "auto" and array.size > BASE64_THRESHOLD)
        return _ArrayText(array, base64)

    return encode


# -- writing: the document -----------------------------------------------------


def _scalar_text(value: Any) -> bytes:
    options: dict[str, Any] = {"allow_nan": False, "default": json_default, "separators": (", ", ": ")}
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


def _emit(value: Any, level: int, out: list[bytes | Iterable[bytes]]) -> None:
    """Pretty JSON: objects and lists of objects indented, arrays and scalar lists on one line."""
    if isinstance(value, _ArrayText):
        out.extend((value.head, value.body, value.tail))
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


def document_pieces(model: Model, arrays: str) -> list[bytes | Iterable[bytes]]:
    if arrays not in ARRAY_MODES:
        raise UsageError(f"the json writer's option arrays must be one of {', '.join(ARRAY_MODES)}, got {arrays!r}")
    document = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION}
    document.update(_sorted_free_form(model_to_document(model, _array_encoder(arrays))))
    out: list[bytes | Iterable[bytes]] = []
    try:
        _emit(document, 0, out)
    except (TypeError, ValueError) as exc:
        raise UnsupportedModelError(f"the json format cannot store a value of this model: {exc}") from None
    out.append(b"\n")
    return out


def flatten(pieces: list[bytes | Iterable[bytes]]) -> Iterator[bytes]:
    for piece in pieces:
        if isinstance(piece, bytes):
            yield piece
        else:
            yield from piece


# -- reading -------------------------------------------------------------------


class RawSpans(Protocol):
    """Long base64 strings kept as the file's bytes (:class:`.fast_read.Cut`), stood in for by placeholders."""

    def take(self, text: str) -> memoryview | None:
        """The original bytes of a placeholder (once), or None for any other string."""

    def decode(self, span: memoryview, size: int) -> np.ndarray:
        """Strict base64 ``span`` decoded into ``size`` bytes; ValueError when it is not."""


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
    if dtype.kind == "i":
        return _decode_int_list(r, values, field, dtype).reshape(shape)
    try:
        with np.errstate(over="ignore"):  # a value too large for the dtype is reported below
            array = np.array(values, dtype=np.float64).astype(dtype.newbyteorder("="), copy=False)
    except OverflowError:
        raise r.fail(f"{field}.data", "an integer is too large for a float") from None
    if not np.isfinite(array).all():
        index = int(np.flatnonzero(~np.isfinite(array))[0])
        raise r.fail(f"{field}.data[{index}]", f"{values[index]!r} does not fit {dtype.name}")
    return array.reshape(shape)


def _decode_int_list(r: DocumentReader, values: list[Any], field: str, dtype: np.dtype) -> np.ndarray:
    """Integers that fit ``dtype`` exactly (no rounding of 1.5, no wrapping of 300)."""
    info = np.iinfo(dtype)
    for index, value in enumerate(values):
        if not isinstance(value, int) or not info.min <= value <= info.max:
            raise r.fail(f"{field}.data[{index}]", f"{value!r:.40} is not an integer from {info.min} to {info.max} ({dtype.name})")
    return np.array(values, dtype=dtype)


def _decode_base64(
    r: DocumentReader,
    encoded: Any,
    field: str,
    dtype: np.dtype,
    shape: tuple[int, ...],
    count: int,
    cut: RawSpans | None = None,
) -> np.ndarray:
    byteorder = r.get(encoded, "byteorder", f"{field}.byteorder", str)
    if byteorder != "little":
        raise r.fail(f"{field}.byteorder", f"expected 'little', got {byteorder!r}")
    text = r.get(encoded, "data", f"{field}.data", str)
    span = cut.take(text) if cut is not None else None
    length = len(text) if span is None else len(span)
    expected = 4 * -(-count * dtype.itemsize // 3)  # integers: exact for any declared size
    if length != expected:  # checked before decoding: a huge declared shape allocates nothing
        raise r.fail(
            f"{field}.data",
            f"has {length} base64 characters but shape {list(shape)} ({count} {dtype.name} values) needs {expected}",
        )
    if cut is not None and span is not None:  # any problem in it raises, and the caller parses the whole text instead
        array = cut.decode(span, count * dtype.itemsize).view(dtype)
        return (array if dtype.isnative else array.astype(dtype.newbyteorder("="))).reshape(shape)
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


def array_decoder(r: DocumentReader, cut: RawSpans | None = None):
    def decode(encoded: Any, key: str) -> np.ndarray:
        field = array_keys.field_path(key)
        if not isinstance(encoded, dict):
            raise r.fail(field, f"expected an array object, got {type(encoded).__name__}")
        dtype, shape, count = _declared_shape(r, encoded, field)
        if dtype.kind == "i" and key.rsplit("/", 1)[-1] not in INT8_KEYS:
            raise r.fail(f"{field}.dtype", f"expected one of float16, float32, float64, got {dtype.name!r} (int8 is for quantization values and zero points)")
        encoding = r.get(encoded, "encoding", f"{field}.encoding", str, optional=True)
        if encoding is None:
            return _decode_list(r, encoded, field, dtype, shape, count)
        if encoding == "base64":
            return _decode_base64(r, encoded, field, dtype, shape, count, cut)
        raise r.fail(f"{field}.encoding", f"expected 'base64' or no encoding (a list), got {encoding!r}")

    return decode


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed: weights must be finite")


def parse_text(content: bytes | str, r: DocumentReader) -> Any:
    if isinstance(content, bytes):
        content = content.removeprefix(UTF8_BOM)
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


def check_header(document: Any, r: DocumentReader) -> None:
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
