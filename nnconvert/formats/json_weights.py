"""nnconvert's JSON-weights format: the lossless dump of the model graph.

The file is the :mod:`nnconvert.serde` document with two header fields
(``format``, ``format_version``) and every array written inline, either as a
flat row-major list of the shortest decimals that parse back bit-identically,
or as base64 of its raw little-endian bytes. The exact specification is in
docs/formats.md; the JSON Schema in nnconvert/schemas/json_weights.schema.json.
"""

from __future__ import annotations

import binascii
import contextlib
import json
import math
import mmap
import os
import re
import secrets
import sys
from collections.abc import Iterable, Iterator
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ReadError, UnsupportedModelError, UsageError
from ..ir import Model
from ..registry import FormatSpec, register
from ..serde import DocumentReader, json_default, model_from_document, model_to_document

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
DTYPES: dict[str, np.dtype[Any]] = {"float16": np.dtype("<f2"), "float32": np.dtype("<f4"), "float64": np.dtype("<f8")}
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
_ENCODE_CHUNK = 3 << 18  # 768 KiB of array bytes -> 1 MiB of text, fits in L2/L3
# Reading: a "data" string this long is decoded from the file's bytes without going through json
# (which copies it twice: the whole text to a str, then each string value); shorter ones gain nothing.
_SPAN_MIN = 1 << 16
_DECODE_CHUNK = 1 << 18  # base64 characters per binascii call: a multiple of 4, in cache while copied
_MAP_MIN = 1 << 20  # files from this size are read into huge-page-backed memory
_DATA_STRING = re.compile(rb'"data"[ \t\n\r]*:[ \t\n\r]*"')  # JSON whitespace only
_MAX_SHORT_STRINGS = 1000  # then the rest goes to json: a file of many tiny strings costs no Python loop


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
            raise UnsupportedModelError(f"{key}: the json format stores float16/32/64 arrays, got {array.dtype}")
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


def _pieces(model: Model, arrays: str) -> list[bytes | Iterable[bytes]]:
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


def _flat(pieces: list[bytes | Iterable[bytes]]) -> Iterator[bytes]:
    for piece in pieces:
        if isinstance(piece, bytes):
            yield piece
        else:
            yield from piece


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
    return b"".join(_flat(_pieces(model, arrays)))


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
        for piece in _flat(pieces):
            handle.write(piece)


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
    r: DocumentReader,
    encoded: Any,
    field: str,
    dtype: np.dtype,
    shape: tuple[int, ...],
    count: int,
    cut: _Cut | None = None,
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
    if span is not None:  # any problem in it raises, and the caller parses the whole text instead
        array = _decode_span(span, count * dtype.itemsize).view(dtype)
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


def _array_decoder(r: DocumentReader, cut: _Cut | None = None):
    def decode(encoded: Any, key: str) -> np.ndarray:
        field = _field_for_key(key)
        if not isinstance(encoded, dict):
            raise r.fail(field, f"expected an array object, got {type(encoded).__name__}")
        dtype, shape, count = _declared_shape(r, encoded, field)
        encoding = r.get(encoded, "encoding", f"{field}.encoding", str, optional=True)
        if encoding is None:
            return _decode_list(r, encoded, field, dtype, shape, count)
        if encoding == "base64":
            return _decode_base64(r, encoded, field, dtype, shape, count, cut)
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


# -- reading: long base64 strings straight from the bytes ----------------------


class _Cut:
    """A JSON text whose long ``"data"`` strings are cut out, each replaced by a placeholder string.

    A placeholder holds a random nonce, so no string of a file can pose as
    one. Base64 has no quote and no backslash, so a string found after a
    ``"data":`` key ends at the next quote byte; a key found inside another
    string, or a string that is not base64, is caught later: its placeholder
    is not taken whole as an array's data, or decoding it fails.
    """

    def __init__(self, content: bytes | mmap.mmap):
        self.content = content
        self.spans: dict[str, tuple[int, int]] = {}
        nonce = secrets.token_hex(16)
        pieces, kept, position, short = [], 0, 0, 0
        while short <= _MAX_SHORT_STRINGS and (match := _DATA_STRING.search(content, position)) is not None:
            start = match.end()
            end = content.find(b'"', start)
            if end < 0:
                break
            if end - start >= _SPAN_MIN:
                placeholder = f"nnconvert-base64-{nonce}-{len(self.spans)}"
                self.spans[placeholder] = (start, end)
                pieces += [content[kept:start], placeholder.encode("ascii")]
                kept = end
            else:
                short += 1
            position = end + 1
        pieces.append(content[kept:])
        self.remainder = b"".join(pieces)

    def take(self, text: str) -> memoryview | None:
        """The original bytes of a placeholder (once), or None for any other string."""
        span = self.spans.pop(text, None)
        return None if span is None else memoryview(self.content)[span[0] : span[1]]


def _decode_span(text: memoryview, size: int) -> np.ndarray:
    """Strict base64 ``text`` decoded into a new array of ``size`` bytes, a piece at a time.

    The pieces (multiples of 4 characters) are decoded while in cache and
    copied into their place: one call over the whole text would allocate its
    result in fresh pages, whose faults cost more than the copies. Padding
    before the end, which decoding each piece alone would accept, is refused.

    Raises:
        ValueError: invalid base64, or not ``size`` bytes.
    """
    array = np.empty(size, np.uint8)
    target = array.data  # numpy's stubs declare ndarray a Buffer only on Python >= 3.12
    filled = 0
    for start in range(0, len(text), _DECODE_CHUNK):
        raw = binascii.a2b_base64(text[start : start + _DECODE_CHUNK], strict_mode=True)
        if filled + len(raw) > size or (start + _DECODE_CHUNK < len(text) and len(raw) * 4 != _DECODE_CHUNK * 3):
            raise ValueError("padding before the end of the base64 text")
        target[filled : filled + len(raw)] = raw
        filled += len(raw)
    if filled != size:
        raise ValueError(f"decodes to {filled} bytes, expected {size}")
    return array


def _loads_cut(content: bytes | mmap.mmap, path: str | PathLike[str] | None) -> Model | None:
    """The model, json-parsing only the text around its long base64 strings; None when unsure.

    Any problem (invalid JSON or base64, an invalid model, a placeholder not
    taken as an array's data) returns None: parsing the whole text then
    gives the same model, or reports the problem with its usual message.
    """
    if sys.version_info < (3, 11) or len(content) < _SPAN_MIN:  # no strict_mode before 3.11; nothing to cut
        return None
    try:
        cut = _Cut(content)
        if not cut.spans:
            return None
        r = DocumentReader(path, "json")
        document = _parse(cut.remainder, r)
        _check_header(document, r)
        model = model_from_document(document, _array_decoder(r, cut), path=path, format="json")
    except Exception:  # noqa: BLE001 - whatever went wrong, the whole-text path decides and reports
        return None
    return model if not cut.spans else None


def _loads(content: bytes | str | mmap.mmap, path: str | PathLike[str] | None) -> Model:
    if isinstance(content, (bytes, mmap.mmap)):
        model = _loads_cut(content, path)
        if model is not None:
            return model
        if isinstance(content, mmap.mmap):
            content = content[:]
    r = DocumentReader(path, "json")
    document = _parse(content, r)
    _check_header(document, r)
    return model_from_document(document, _array_decoder(r), path=path, format="json")


def _read_content(path: str | PathLike[str]) -> bytes | mmap.mmap:
    """The file's bytes; a large file's in private anonymous memory, backed by huge pages where offered.

    A bytes object of a few hundred MB is filled ~3x slower: its 4 KiB pages
    fault one by one. numpy's large arrays get huge pages the same way.
    """
    with open(path, "rb", buffering=0) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size < _MAP_MIN or not hasattr(mmap, "MAP_ANONYMOUS"):  # Windows, small files, pipes
            return handle.readall()
        buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if hasattr(mmap, "MADV_HUGEPAGE"):
            with contextlib.suppress(OSError):
                buffer.madvise(mmap.MADV_HUGEPAGE)
        filled = 0
        with memoryview(buffer) as view:
            while filled < size and (count := handle.readinto(view[filled:])):
                filled += count
        rest = handle.readall()
    if filled < size or rest:  # the file changed while read: what was read, as read_bytes() would
        return buffer[:filled] + rest
    return buffer


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
    return _loads(content, path)


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
        content = _read_content(path)
    except OSError as exc:
        raise ReadError(f"cannot read the file: {exc.strerror or exc}", path=path, format="json") from None
    return _loads(content, path)


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
