"""Preprocessing before the first dense layer: constant Sub/Div/Mul/Add/Clip and ai.onnx.ml Scaler, kept operation for operation."""

from __future__ import annotations

import numpy as np

from ._common import ML_DOMAIN
from ._graph_index import ARITHMETIC_OPS, DENSE_OPS, GraphIndex
from ._parsed import ParsedStep


class PreprocessingPatterns(GraphIndex):
    """Reads the preprocessing steps between the graph's input and its first dense layer."""

    def _preprocessing(self, cur: str, width: int | None) -> tuple[list[ParsedStep], str]:
        steps: list[ParsedStep] = []
        run: ParsedStep | None = None
        while True:
            cur = self._skip_noops(cur, width)
            index = self.sole_consumer(cur)
            if index is None or self.nodes[index].op_type in DENSE_OPS:
                return steps, cur
            op = self.op(index)
            self.used.add(index)
            if op == f"{ML_DOMAIN}.Scaler":
                steps.append(self._scaler_step(index))
                run = None
            elif op in ARITHMETIC_OPS or op in ("Clip", "Max", "Min"):
                entry = self._preprocess_op(index, cur)
                if entry is not None:
                    if run is None:
                        run = ParsedStep("affine", self.nodes[index].name, [])
                        steps.append(run)
                    _append_op(run, entry, op)
            else:
                self.problem(index, "is not a preprocessing operation (constant Sub/Div/Mul/Add/Clip or Scaler) before the first dense layer")
            cur = self.nodes[index].output[0]

    def _scaler_step(self, index: int) -> ParsedStep:
        attrs = self.attrs(index)
        where = self.label(index)
        offset = np.asarray(attrs.get("offset", [0.0]), dtype=np.float32)
        scale = np.asarray(attrs.get("scale", [1.0]), dtype=np.float32)
        # ai.onnx.ml Scaler computes (x - offset) * scale, in float32
        return ParsedStep("affine", self.nodes[index].name, [("sub", _squeezed(offset), where), ("mul", _squeezed(scale), where)])

    def _preprocess_op(self, index: int, cur: str) -> tuple[str, np.ndarray, str] | None:
        node, where = self.nodes[index], self.label(index)
        if node.op_type == "Clip":
            return self._clip_op(index, cur)
        if node.op_type in ("Max", "Min"):
            return self._bound_op(index, cur)
        inputs = list(node.input)
        if len(inputs) != 2 or cur not in inputs:
            self.problem(index, "expected one constant operand")
            return None
        other = inputs[1] if inputs[0] == cur else inputs[0]
        if inputs[1] != cur or node.op_type in ("Add", "Mul"):
            operand = self.constant(other)
            if operand is not None and inputs.count(cur) == 1:
                checked = self._operand(operand, index, other)
                return None if checked is None else (ARITHMETIC_OPS[node.op_type], checked, where)
            self.problem(index, f"operand {other!r} is computed at run time; only constants can be folded into preprocessing")
            return None
        self.problem(index, f"computes constant {node.op_type.lower()} x; only x - c and x / c are preprocessing operations")
        return None

    def _operand(self, operand: np.ndarray, index: int, name: str) -> np.ndarray | None:
        if operand.dtype.kind != "f":
            self.problem(index, f"operand {name!r} is {operand.dtype}, expected floats")
            return None
        if operand.size != 1 and (operand.ndim == 0 or operand.shape[-1] != operand.size):
            self.problem(index, f"operand {name!r} has shape {list(operand.shape)}; expected a scalar or one value per feature")
            return None
        if not np.isfinite(operand).all():
            self.problem(index, f"operand {name!r} holds non-finite values")
            return None
        return _squeezed(operand)

    def _clip_op(self, index: int, cur: str) -> tuple[str, np.ndarray, str] | None:
        node, attrs = self.nodes[index], self.attrs(index)
        if node.input[0] != cur:
            self.problem(index, "clips a constant, not the input")
            return None
        # an open bound is NaN here and becomes the dtype's largest finite value once the dtype is known
        bounds = [float(attrs.get("min", np.nan)), float(attrs.get("max", np.nan))]
        for slot, name in enumerate(list(node.input)[1:3]):
            if not name:
                continue
            value = self.constant(name)
            if value is None or value.size != 1:
                self.problem(index, f"bound {name!r} is not a constant scalar")
                return None
            bounds[slot] = float(value.ravel()[0])
        return ("clip", np.asarray(bounds, dtype=np.float64), self.label(index))

    def _bound_op(self, index: int, cur: str) -> tuple[str, np.ndarray, str] | None:
        """Max(x, low) or Min(x, high): a clip with one open bound (merged with its partner later)."""
        node = self.nodes[index]
        others = [name for name in node.input if name != cur]
        value = self.constant(others[0]) if len(node.input) == 2 and len(others) == 1 else None
        if value is None or value.size != 1 or value.dtype.kind != "f":
            self.problem(index, "expected x and one constant scalar bound")
            return None
        bound = float(value.ravel()[0])
        bounds = [bound, np.nan] if node.op_type == "Max" else [np.nan, bound]
        return ("clip", np.asarray(bounds, dtype=np.float64), self.label(index))


def _append_op(step: ParsedStep, entry: tuple[str, np.ndarray, str], op_type: str) -> None:
    """Add an operation; Min(Max(x, low), high) becomes one clip, as np.clip computes it."""
    previous = step.ops[-1] if step.ops else None
    if op_type == "Min" and previous is not None and previous[0] == "clip" and np.isnan(previous[1][1]):
        step.ops[-1] = ("clip", np.array([previous[1][0], entry[1][1]]), previous[2])
        return
    step.ops.append(entry)


def _squeezed(array: np.ndarray) -> np.ndarray:
    return array.reshape(()) if array.size == 1 else array.reshape(-1)
