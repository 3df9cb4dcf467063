"""Preprocessing code of the floating-point target: the graph's operations, in order.

Each :class:`~nnconvert.ir.ElementwiseOp` becomes one loop over the features
(or one statement per scalar operand), so the arithmetic is exactly the
graph's: ``(x - mean) / scale`` stays a subtraction then a division.
"""

from __future__ import annotations

import numpy as np

from ...ir import Model
from .tables import CType, Table, c_comment, c_literal

__all__ = ["preprocess_tables", "preprocess_function"]

_SYMBOLS = {"sub": "-", "div": "/", "mul": "*", "add": "+"}


def _operand_name(prefix: str, step: int, op: int) -> str:
    return f"{prefix}_step{step}_op{op}"


def _is_vector(operand: np.ndarray) -> bool:
    return operand.ndim == 1 and operand.size > 1


def preprocess_tables(model: Model, prefix: str, ctype: CType) -> list[Table]:
    """One table per per-feature operand (scalars and clip bounds become literals)."""
    tables = []
    for s, step in enumerate(model.steps):
        for o, op in enumerate(step.ops):
            if op.op != "clip" and _is_vector(op.operand):
                values = op.operand.astype(ctype.dtype)
                comment = f"step {s} ({step.kind} {step.name}) op {o}: x {op.op} operand"
                tables.append(Table(_operand_name(prefix, s, o), ctype, values, comment))
    return tables


def preprocess_function(model: Model, prefix: str, ctype: CType) -> str:
    """``static void <p>_preprocess(const T *x, T *z)`` or "" when the model has no steps."""
    if not model.steps:
        return ""
    n = model.n_features
    lines = [f"static void {prefix}_preprocess(const {ctype.name} *x, {ctype.name} *z)", "{", "    int i;"]
    lines += [f"    for (i = 0; i < {n}; ++i) z[i] = x[i];"]
    for s, step in enumerate(model.steps):
        lines.append(f"    /* step {s}: {c_comment(step.kind)} {c_comment(step.name)} */")
        for o, op in enumerate(step.ops):
            lines.append("    " + _op_statement(op.op, op.operand, _operand_name(prefix, s, o), n, ctype))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _op_statement(op: str, operand: np.ndarray, table: str, n: int, ctype: CType) -> str:
    if op == "clip":
        low, high = (c_literal(v, ctype) for v in operand.astype(ctype.dtype).tolist())
        return f"for (i = 0; i < {n}; ++i) {{ if (z[i] < {low}) z[i] = {low}; if (z[i] > {high}) z[i] = {high}; }}"
    value = f"{table}[i]" if _is_vector(operand) else c_literal(operand.astype(ctype.dtype).ravel()[0], ctype)
    return f"for (i = 0; i < {n}; ++i) z[i] = z[i] {_SYMBOLS[op]} {value};"
