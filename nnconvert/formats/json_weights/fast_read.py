"""The fast read path: long base64 ``"data"`` strings decoded straight from the file's bytes.

:mod:`json` would copy such a string twice (the whole text to a str, then
each string value); here they are cut out of the bytes first and only the
text around them is parsed. Whenever the shortcut is unsure it returns None
and the caller parses the whole text with the ordinary codec.
"""

from __future__ import annotations

import binascii
import mmap
import re
import secrets
import sys
from os import PathLike

import numpy as np

from ...errors import NnconvertError
from ...ir import Model
from ...serde import DocumentReader, model_from_document
from .codec import array_decoder, check_header, parse_text

# Reading: a "data" string this long is decoded from the file's bytes without going through json
# (which copies it twice: the whole text to a str, then each string value); shorter ones gain nothing.
_SPAN_MIN = 1 << 16
_DECODE_CHUNK = 1 << 18  # base64 characters per binascii call: a multiple of 4, in cache while copied
_DATA_STRING = re.compile(rb'"data"[ \t\n\r]*:[ \t\n\r]*"')  # JSON whitespace only
_MAX_SHORT_STRINGS = 1000  # then the rest goes to json: a file of many tiny strings costs no Python loop


class Cut:
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

    def decode(self, span: memoryview, size: int) -> np.ndarray:
        """``span`` decoded by :func:`_decode_span`."""
        return _decode_span(span, size)


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


def loads_cut(content: bytes | mmap.mmap, path: str | PathLike[str] | None) -> Model | None:
    """The model, json-parsing only the text around its long base64 strings; None when unsure.

    Any problem (invalid JSON or base64, an invalid model, a placeholder not
    taken as an array's data) returns None: parsing the whole text then
    gives the same model, or reports the problem with its usual message.
    """
    if sys.version_info < (3, 11) or len(content) < _SPAN_MIN:  # no strict_mode before 3.11; nothing to cut
        return None
    try:
        cut = Cut(content)
        if not cut.spans:
            return None
        r = DocumentReader(path, "json")
        document = parse_text(cut.remainder, r)
        check_header(document, r)
        model = model_from_document(document, array_decoder(r, cut), path=path, format="json")
    except (NnconvertError, ValueError):
        # An invalid document (a ReadError naming a field, which a placeholder in the wrong place
        # also causes) or invalid base64 in a cut-out span (binascii.Error is a ValueError): the
        # whole-text parse gives the same model or reports the problem with its usual message.
        # Anything else is a bug or a resource failure, which the full parse would not cure.
        return None
    return model if not cut.spans else None
