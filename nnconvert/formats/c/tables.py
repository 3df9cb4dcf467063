"""Emitting ``static const`` tables: weights, biases, step operands, labels.

Float literals are the shortest decimals that C compilers (which round decimal
literals correctly) read back as the exact stored value: float32 tables hold
the same bits as ``astype(float32)``, float64 tables the model's own bits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["CType", "C_TYPES", "Table", "c_literal", "c_string", "c_comment", "table_code"]

VALUES_PER_LINE = 8


@dataclass(frozen=True)
class CType:
    """A C element type: its name, size in bytes, and numpy dtype."""

    name: str
    size: int
    dtype: np.dtype

    @property
    def is_float(self) -> bool:
        return self.dtype.kind == "f"


C_TYPES = {
    "float32": CType("float", 4, np.dtype(np.float32)),
    "float64": CType("double", 8, np.dtype(np.float64)),
    "int8": CType("int8_t", 1, np.dtype(np.int8)),
    "int16": CType("int16_t", 2, np.dtype(np.int16)),
    "int32": CType("int32_t", 4, np.dtype(np.int32)),
}


def c_literal(value: float | int, ctype: CType) -> str:
    """One value as a C literal of ``ctype`` (exact for floats: shortest round-trip decimal)."""
    if not ctype.is_float:
        number = int(value)
        if ctype.name == "int32_t" and number == -(2**31):
            return "(-2147483647 - 1)"  # the literal 2147483648 does not fit an int
        return str(number)
    if ctype.name == "float":
        text = np.format_float_scientific(np.float32(value), unique=True, trim="-")
        return _float_text(text) + "f"
    return _float_text(repr(float(value)))


def _float_text(text: str) -> str:
    # "1e-05" / "3" / "inf" never occur as inf (the IR refuses non-finite values); make every literal a float
    if "e" not in text and "." not in text:
        text += ".0"
    elif "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return text


def c_string(text: str) -> str:
    """A C string literal of ``text``'s UTF-8 bytes: octal escapes, no trigraphs, no hex-escape run-ons."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char in '"\\?':
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def c_comment(text: str) -> str:
    """``text`` safe inside a ``/* */`` comment (no comment end, no line breaks, ASCII)."""
    cleaned = re.sub(r"[^A-Za-z0-9_ .,:;=()\[\]<>+*/^'\"%-]", "_", text)
    return cleaned.replace("*/", "* /").replace("/*", "/ *")


@dataclass(frozen=True)
class Table:
    """A ``static const`` array: its C name, element type, shape and values (row-major)."""

    name: str
    ctype: CType
    values: np.ndarray
    comment: str = ""

    @property
    def n_bytes(self) -> int:
        return int(self.values.size) * self.ctype.size


def _rows(values: Iterable[str]) -> str:
    items = list(values)
    lines = [", ".join(items[i : i + VALUES_PER_LINE]) for i in range(0, len(items), VALUES_PER_LINE)]
    return ",\n    ".join(lines)


def table_code(table: Table) -> str:
    """The C definition of ``table`` (1-D or 2-D), with its comment."""
    values = np.asarray(table.values)
    dims = "".join(f"[{n}]" for n in values.shape)
    if values.ndim == 2:
        body = ",\n    ".join("{" + ", ".join(c_literal(v, table.ctype) for v in row) + "}" for row in values.tolist())
    else:
        body = _rows(c_literal(v, table.ctype) for v in values.ravel().tolist())
    comment = f"/* {c_comment(table.comment)} */\n" if table.comment else ""
    return f"{comment}static const {table.ctype.name} {table.name}{dims} = {{\n    {body}\n}};\n"


def label_tables(prefix: str, classes: Sequence[object] | np.ndarray) -> tuple[str, str]:
    """Definitions and header declarations of the class-label tables.

    Every model gets ``<prefix>_class_names`` (the labels as text); integer and
    boolean labels also get ``<prefix>_class_values`` (``long long``).
    """
    labels = np.asarray(classes)
    n = len(labels)
    names = ", ".join(c_string(str(v)) for v in labels.tolist())
    code = f"const char *const {prefix}_class_names[{n}] = {{{names}}};\n"
    decl = f"extern const char *const {prefix}_class_names[{n}];\n"
    if labels.dtype.kind in "biu":
        values = ", ".join(f"{int(v)}LL" if int(v) != -(2**63) else "(-9223372036854775807LL - 1)" for v in labels.tolist())
        code += f"const long long {prefix}_class_values[{n}] = {{{values}}};\n"
        decl += f"extern const long long {prefix}_class_values[{n}];\n"
    return code, decl
