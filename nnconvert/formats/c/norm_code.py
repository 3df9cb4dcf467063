"""Float code of the layers that are not dense: batch norm, layer norm, PReLU (model graph 1.1).

Each is one ``static void <p>_layer<k>(T *v)`` working in place on the
previous stage's buffer, with its per-unit tables.

- batch norm: the graph itself computes ``x * m + s`` with ``(m, s)`` from
  :meth:`~nnconvert.ir.BatchNormLayer.multiplier_and_shift`; the tables hold
  exactly that ``(m, s)``, computed by that method in the target precision, so
  the C code does the graph's arithmetic (the same two operations per value);
- layer norm: mean and biased variance over the row, then
  ``x * m + s`` with ``m = 1 / sqrt(variance + epsilon) * scale`` and
  ``s = -mean * m + offset``, in the graph's order (the sums run left to right
  where numpy sums pairwise: a few ulps apart);
- PReLU: ``x`` where ``x >= 0``, else ``x * slopes``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ...ir import BatchNormLayer, LayerNormLayer, PReLULayer
from .tables import CType, Table, c_literal

__all__ = ["norm_tables", "norm_function", "NormLayer"]

NormLayer = BatchNormLayer | LayerNormLayer | PReLULayer


def _in_precision(layer: NormLayer, ctype: CType) -> NormLayer:
    arrays = {name: getattr(layer, name).astype(ctype.dtype) for name in layer.ARRAYS if getattr(layer, name) is not None}
    return replace(layer, **arrays)  # type: ignore[arg-type]


def norm_tables(layer: NormLayer, table: str, ctype: CType, where: str) -> list[Table]:
    """The per-unit tables of ``layer`` (named ``<table>_<array>``), in the target precision."""
    layer = _in_precision(layer, ctype)
    if isinstance(layer, BatchNormLayer):
        multiplier, shift = layer.multiplier_and_shift()
        return [Table(f"{table}_multiplier", ctype, np.asarray(multiplier, dtype=ctype.dtype), f"{where} batch norm: x * multiplier + shift"),
                Table(f"{table}_shift", ctype, np.asarray(shift, dtype=ctype.dtype), f"{where} batch norm shift")]  # fmt: skip
    if isinstance(layer, PReLULayer):
        return [Table(f"{table}_slopes", ctype, layer.slopes, f"{where} prelu slopes")]
    tables = []
    for name in ("scale", "offset"):
        if getattr(layer, name) is not None:
            tables.append(Table(f"{table}_{name}", ctype, getattr(layer, name), f"{where} layer norm {name}"))
    return tables


def _fn(name: str, ctype: CType) -> str:
    return name + ("f" if ctype.name == "float" else "")


def norm_function(layer: NormLayer, name: str, table: str, width: int, ctype: CType) -> str:
    """``static void name(T *v)``: ``layer`` applied in place to ``width`` values."""
    t, zero = ctype.name, c_literal(0.0, ctype)
    head = f"static void {name}({t} *v)\n{{\n    int i;\n"
    if isinstance(layer, BatchNormLayer):
        return head + f"    for (i = 0; i < {width}; ++i) {{\n        v[i] = v[i] * {table}_multiplier[i] + {table}_shift[i];\n    }}\n}}\n"
    if isinstance(layer, PReLULayer):
        return head + f"    for (i = 0; i < {width}; ++i) {{\n        if (!(v[i] >= {zero})) v[i] = v[i] * {table}_slopes[i];\n    }}\n}}\n"
    epsilon = c_literal(float(ctype.dtype.type(layer.epsilon)), ctype)
    count = c_literal(float(width), ctype)
    multiplier = "inverse_deviation" + (f" * {table}_scale[i]" if layer.scale is not None else "")
    shift = "-mean * multiplier" + (f" + {table}_offset[i]" if layer.offset is not None else "")
    return head + f"""    {t} mean = {zero}, variance = {zero}, inverse_deviation, multiplier, shift;
    for (i = 0; i < {width}; ++i) {{
        mean += v[i];
    }}
    mean = mean / {count};
    for (i = 0; i < {width}; ++i) {{
        {t} deviation = v[i] - mean;
        variance += deviation * deviation;
    }}
    variance = variance / {count};
    inverse_deviation = {c_literal(1.0, ctype)} / {_fn('sqrt', ctype)}(variance + {epsilon});
    for (i = 0; i < {width}; ++i) {{
        multiplier = {multiplier};
        shift = {shift};
        v[i] = v[i] * multiplier + shift;
    }}
}}
"""
