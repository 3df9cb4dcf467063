"""nnconvert's JSON-weights format: the lossless dump of the model graph.

The file is the :mod:`nnconvert.serde` document with two header fields
(``format``, ``format_version``) and every array written inline, either as a
flat row-major list of the shortest decimals that parse back bit-identically,
or as base64 of its raw little-endian bytes. The exact specification is in
docs/formats.md; the JSON Schema in nnconvert/schemas/json_weights.schema.json.

Modules: :mod:`.codec` (arrays and the document, both ways) and :mod:`.fast_read`
(long base64 strings decoded from the raw bytes).
"""

from __future__ import annotations

import contextlib
import mmap
import os
from os import PathLike
from pathlib import Path

from ..._io.atomic import Output, as_output
from ...errors import ReadError
from ...ir import Model
from ...quantization import PRECISION_OPTIONS
from ...registry import FormatSpec, Option, register
from ...serde import DocumentReader, model_from_document
from .codec import (
    ARRAY_MODES,
    BASE64_THRESHOLD,
    FORMAT_NAME,
    FORMAT_VERSION,
    UTF8_BOM,
    array_decoder,
    check_header,
    document_pieces,
    flatten,
    parse_text,
)
from .fast_read import loads_cut

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

_MAP_MIN = 1 << 20  # files from this size are read into huge-page-backed memory


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
    return b"".join(flatten(document_pieces(model, arrays)))


def write(model: Model, output: Output | str | PathLike[str], *, arrays: str = "auto") -> None:
    """Write ``model`` as a JSON-weights file.

    Args:
        model: the model graph.
        output: where to write (the temporary file's :class:`~nnconvert._io.atomic.Output` when
            called by ``save``), or a path.
        arrays: "auto" (default), "list" or "base64"; see :func:`dumps`.

    Raises:
        UsageError: ``arrays`` is not one of the modes.
        UnsupportedModelError: the model holds a value JSON cannot store.
    """
    pieces = document_pieces(model, arrays)
    with open(as_output(output).path, "wb") as handle:
        for piece in flatten(pieces):
            handle.write(piece)


# -- reading -------------------------------------------------------------------


def _loads(content: bytes | str | mmap.mmap, path: str | PathLike[str] | None) -> Model:
    if isinstance(content, (bytes, mmap.mmap)):
        model = loads_cut(content, path)
        if model is not None:
            return model
        if isinstance(content, mmap.mmap):
            content = content[:]
    r = DocumentReader(path, "json")
    document = parse_text(content, r)
    check_header(document, r)
    return model_from_document(document, array_decoder(r), path=path, format="json")


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
        text = head.removeprefix(UTF8_BOM).lstrip(b" \t\r\n")
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
        write_options=(Option("arrays", str, choices=ARRAY_MODES, default="auto", help="how arrays are written"), *PRECISION_OPTIONS),
    )
)
