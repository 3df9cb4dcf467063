"""Dense layers: Gemm or MatMul (+ Add), with transposes, scalings and the bias folded into weights and bias."""

from __future__ import annotations

import warnings

import numpy as np

from ...errors import ReadError
from ._common import FORMAT
from ._graph_index import ARITHMETIC_OPS, GraphIndex
from ._parsed import ParsedLayer


class DenseFolding(GraphIndex):
    """Reads one dense layer's weights and bias, folding what can be folded exactly."""

    def _dense(self, index: int, cur: str) -> tuple[ParsedLayer | None, str]:
        node = self.nodes[index]
        out = node.output[0]
        if len(node.input) < 2 or node.input[0] != cur:
            self.problem(index, "the activations must be the first operand (x @ W)")
            return None, out
        weights = self._weight_matrix(index, node.input[1])
        if weights is None:
            return None, out
        layer = ParsedLayer(weights, None, self.label(index), node.name, node.input[1])
        if node.op_type == "Gemm":
            self._gemm(index, layer)
        return layer, out

    def _weight_matrix(self, index: int, name: str) -> np.ndarray | None:
        weights = self.constant(name)
        if weights is None and name in self.producer and self.nodes[self.producer[name]].op_type == "Transpose":
            weights = self._transposed_constant(self.producer[name])
        if weights is None:
            self.problem(index, f"weight {name!r} is computed at run time; a dense layer needs a constant matrix")
            return None
        if weights.ndim != 2 or weights.dtype.kind != "f":
            raise ReadError(
                f"{self.label(index)}: weight initializer {name!r} has shape {list(weights.shape)} and dtype {weights.dtype}; "
                "expected a 2-D float matrix",
                path=self.path,
                format=FORMAT,
            )
        return weights

    def _transposed_constant(self, index: int) -> np.ndarray | None:
        source = self.constant(self.nodes[index].input[0])
        perm = self.attrs(index).get("perm")
        if source is None or source.ndim != 2 or perm not in (None, [1, 0]):
            return None
        self.used.add(index)
        return source.T

    def _gemm(self, index: int, layer: ParsedLayer) -> None:
        node, attrs = self.nodes[index], self.attrs(index)
        if attrs.get("transA", 0):
            self.problem(index, "transA=1 transposes the activations; not a dense layer")
        if attrs.get("transB", 0):
            layer.weights = layer.weights.T
        alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
        if alpha != 1.0:
            if not _is_power_of_two(np.asarray(alpha)):
                warnings.warn(
                    f"{self.path}: {self.label(index)} has alpha={alpha}; folded into the weights, which may differ "
                    "from the runtime's result in the last bit",
                    UserWarning,
                    stacklevel=4,
                )
            layer.weights = (layer.weights * layer.weights.dtype.type(alpha)).astype(layer.weights.dtype)
        if len(node.input) > 2 and node.input[2]:
            bias = self.constant(node.input[2])
            if bias is None:
                self.problem(index, f"bias {node.input[2]!r} is computed at run time")
                return
            layer.bias_name = node.input[2]
            bias = self._bias_vector(index, node.input[2], bias, layer.weights.shape[1])
            layer.bias = bias if beta == 1.0 else (bias * bias.dtype.type(beta)).astype(bias.dtype)

    def _bias_vector(self, index: int, name: str, bias: np.ndarray, n_out: int) -> np.ndarray:
        if bias.size in (1, n_out) and (bias.ndim == 0 or bias.shape[-1] == bias.size) and bias.dtype.kind == "f":
            return np.broadcast_to(bias.reshape(-1), (n_out,)).copy()
        raise ReadError(
            f"{self.label(index)}: bias initializer {name!r} has shape {list(bias.shape)} and dtype {bias.dtype}; "
            f"expected {n_out} floats (one per output)",
            path=self.path,
            format=FORMAT,
        )

    def _fold_after_dense(self, layer: ParsedLayer, cur: str, *, bias_only: bool) -> str:
        """Fold constant Add/Sub (the bias) and, unless ``bias_only``, exact scalings after the matrix product."""
        while (index := self.sole_consumer(cur)) is not None and self.nodes[index].op_type in ARITHMETIC_OPS:
            node = self.nodes[index]
            if bias_only and (node.op_type not in ("Add", "Sub") or layer.bias is not None):
                return cur
            inputs = list(node.input)
            if len(inputs) != 2 or inputs.count(cur) != 1:
                return cur
            other = inputs[1] if inputs[0] == cur else inputs[0]
            value = self.constant(other)
            if value is None:
                return cur  # e.g. the x * sigmoid(x) of silu: an activation, not a fold
            self.used.add(index)
            self._fold_constant(index, layer, node.op_type, other, value, reversed_operands=inputs[1] == cur)
            cur = node.output[0]
        return cur

    def _fold_constant(self, index: int, layer: ParsedLayer, op: str, name: str, value: np.ndarray, *, reversed_operands: bool) -> None:
        n_out = layer.weights.shape[1]
        if op in ("Add", "Sub"):
            if reversed_operands and op == "Sub":
                self.problem(index, "computes constant - (x @ W); only x @ W + b is a dense layer")
            elif layer.bias is not None:
                self.problem(index, "adds a second constant after the bias; folding it would change the rounding")
            else:
                bias = self._bias_vector(index, name, value, n_out)
                layer.bias, layer.bias_name = (-bias if op == "Sub" else bias), name
            return
        if (op == "Div" and reversed_operands) or value.size not in (1, n_out) or not _is_power_of_two(value):
            self.problem(index, f"scales the layer's output by {name!r}, which cannot be folded into the weights exactly")
            return
        factor = self._bias_vector(index, name, value, n_out).astype(layer.weights.dtype)
        if op == "Div":
            factor = (1 / factor).astype(layer.weights.dtype)  # exact: the factor is a power of two
        layer.weights = layer.weights * factor
        layer.bias = None if layer.bias is None else layer.bias * factor


def _is_power_of_two(values: np.ndarray) -> bool:
    """True when multiplying by every value is exact (±2**k)."""
    values = np.asarray(values, dtype=np.float64)
    if values.dtype.kind != "f" or not np.isfinite(values).all() or (values == 0).any():
        return False
    mantissa, _ = np.frexp(values)
    return bool(np.all(np.abs(mantissa) == 0.5))
