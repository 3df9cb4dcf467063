"""Layers between dense layers: BatchNormalization, LayerNormalization (node, torch's or tf2onnx's decomposition),
PRelu, and activations that do not directly follow a dense layer (or follow one that already has one)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...ir import ActivationLayer, BatchNormLayer, LayerNormLayer, PReLULayer
from ._match_activations import ActivationPatterns
from ._match_tf2onnx_layer_norm import Tf2onnxLayerNormPatterns
from ._parsed import ParsedLayer

_NORM_OPS = {"BatchNormalization", "LayerNormalization", "PRelu"}


class KindPatterns(Tf2onnxLayerNormPatterns, ActivationPatterns):
    """Everything after a dense layer's activation and before the next dense layer (or the tail)."""

    def _after_layers(self, layer: ParsedLayer, cur: str, width: int) -> str:
        while True:
            cur = self._skip_noops(cur, width)
            decomposed, out = self._tf2onnx_layer_norm(cur, width)
            if decomposed is None:
                decomposed, out = self._decomposed_layer_norm(cur, width)
            if decomposed is not None:
                layer.after.append(decomposed)
                cur = out
                continue
            composed, out = self._composed_prelu(cur, width)
            if composed is None:
                composed, out = self._tf2onnx_prelu(cur, width)
            if composed is None:
                composed, out = self._affine_batch_norm(cur, width)
            if composed is not None:
                layer.after.append(composed)
                cur = out
                continue
            index = self.sole_consumer(cur)
            if index is not None and self.op(index) in _NORM_OPS:
                found, out = self._norm_layer(index, cur, width)
                if found is None:
                    return cur
                layer.after.append(found)
                cur = out
                continue
            if index is not None and self.op(index) == "Exp" and self._follows_log_softmax_node(cur):
                return cur  # a log_softmax head's probabilities: the tail's
            probe = ParsedLayer(np.zeros((0, 0)), None, "", "", "")
            out = self._activation(probe, cur)
            if out == cur:
                return cur
            if not layer.after and layer.activation.value == "identity":
                layer.activation, layer.params = probe.activation, probe.params
            else:
                name = self.nodes[self.producer[out]].name or out
                layer.after.append(ActivationLayer(probe.activation, probe.params, name=name))
            cur = out

    def _follows_log_softmax_node(self, tensor: str) -> bool:
        index = self.producer.get(tensor)
        return index is not None and self.nodes[index].op_type == "LogSoftmax"

    def _norm_layer(self, index: int, cur: str, width: int) -> tuple[Any, str]:
        node, attrs = self.nodes[index], self.attrs(index)
        op = node.op_type
        if node.input[0] != cur:
            return None, cur
        constants = [self.constant(name) if name else None for name in node.input[1:]]
        self.used.add(index)
        if any(c is None for c in constants[:4 if op == "BatchNormalization" else 1]):
            self.problem(index, f"{op} with parameters computed at run time; nnconvert reads constant ones")
            return None, cur
        if len([o for o in node.output[1:] if o and self.consumers.get(o)]) or attrs.get("training_mode", 0):
            self.problem(index, f"{op} in training mode (its running statistics are outputs)")
            return None, cur
        vectors: list[Any] = [None if c is None else np.broadcast_to(np.asarray(c).reshape(-1), (width,)).copy() for c in constants]
        name = node.name or node.output[0]
        if op == "PRelu":
            return PReLULayer(vectors[0], name=name), node.output[0]
        if op == "BatchNormalization":
            scale, offset, mean, variance = vectors[:4]
            return BatchNormLayer(mean, variance, float(attrs.get("epsilon", 1e-5)), scale, offset, name=name), node.output[0]
        if attrs.get("axis", -1) not in (-1, 1):
            self.problem(index, f"LayerNormalization over axis {attrs.get('axis')}; only the feature axis (-1) is read")
            return None, cur
        offset = vectors[1] if len(vectors) > 1 else None
        return LayerNormLayer(float(attrs.get("epsilon", 1e-5)), vectors[0], offset, name=name), node.output[0]

    def _decomposed_layer_norm(self, cur: str, width: int) -> tuple[Any, str]:
        """torch.onnx below opset 17: ReduceMean, Sub, Pow 2, ReduceMean, Add eps, Sqrt, Div, [Mul scale], [Add offset]."""
        if cur in self.output_names:
            return None, cur
        readers = [i for i in self.consumers.get(cur, []) if i not in self.used]
        ops = sorted(self.nodes[i].op_type for i in readers)
        if ops != ["ReduceMean", "Sub"]:
            return None, cur
        mean_index = next(i for i in readers if self.nodes[i].op_type == "ReduceMean")
        sub_index = next(i for i in readers if self.nodes[i].op_type == "Sub")
        chain = [mean_index, sub_index]
        sub = self.nodes[sub_index]
        if list(sub.input) != [cur, self.nodes[mean_index].output[0]]:
            return None, cur
        centred = sub.output[0]
        square = self._reader_of(centred, ("Pow", "Mul"), exclude_op="Div")
        if square is None or not self._squares(square, centred):
            return None, cur
        var_mean = self._reader_of(self.nodes[square].output[0], ("ReduceMean",))
        add = self._reader_of(self.nodes[var_mean].output[0], ("Add",)) if var_mean is not None else None
        sqrt = self._reader_of(self.nodes[add].output[0], ("Sqrt",)) if add is not None else None
        div = self._reader_of(self.nodes[sqrt].output[0], ("Div",)) if sqrt is not None else None
        if None in (var_mean, add, sqrt, div):
            return None, cur
        assert var_mean is not None and add is not None and sqrt is not None and div is not None
        epsilon = next((self.constant(n) for n in self.nodes[add].input if self.is_constant(n)), None)
        if epsilon is None or epsilon.size != 1 or list(self.nodes[div].input) != [centred, self.nodes[sqrt].output[0]]:
            return None, cur
        chain += [square, var_mean, add, sqrt, div]
        out = self.nodes[div].output[0]
        scale = offset = None
        mul = self._reader_of(out, ("Mul",))
        if mul is not None and (value := self._other_constant(mul, out)) is not None:
            scale, out = value, self.nodes[mul].output[0]
            chain.append(mul)
        add_offset = self._reader_of(out, ("Add",))
        if add_offset is not None and (value := self._other_constant(add_offset, out)) is not None:
            offset, out = value, self.nodes[add_offset].output[0]
            chain.append(add_offset)
        self.used.update(chain)
        vector = lambda v: None if v is None else np.broadcast_to(np.asarray(v).reshape(-1), (width,)).copy()  # noqa: E731
        name = self.nodes[mean_index].name or out
        return LayerNormLayer(float(epsilon.ravel()[0]), vector(scale), vector(offset), name=name), out

    def _composed_prelu(self, cur: str, width: int) -> tuple[Any, str]:
        """nnconvert's float64 PReLU: Add(Max(x, 0), Mul(Min(x, 0), slopes))."""
        readers = [i for i in self.consumers.get(cur, []) if i not in self.used]
        if cur in self.output_names or sorted(self.nodes[i].op_type for i in readers) != ["Max", "Min"]:
            return None, cur
        by_op = {self.nodes[i].op_type: i for i in readers}
        if any(not _is_zero(self._other_constant(i, cur)) for i in by_op.values()):
            return None, cur
        mul = self._reader_of(self.nodes[by_op["Min"]].output[0], ("Mul",))
        slopes = self._other_constant(mul, self.nodes[by_op["Min"]].output[0]) if mul is not None else None
        add = self._reader_of(self.nodes[mul].output[0], ("Add",)) if mul is not None else None
        if mul is None or slopes is None or add is None or sorted(self.nodes[add].input) != sorted([self.nodes[by_op["Max"]].output[0], self.nodes[mul].output[0]]):
            return None, cur
        self.used.update([*by_op.values(), mul, add])
        vector = np.broadcast_to(np.asarray(slopes).reshape(-1), (width,)).copy()
        return PReLULayer(vector, name=self.nodes[mul].name or cur), self.nodes[add].output[0]

    def _affine_pair(self, cur: str, width: int) -> tuple[int, int, np.ndarray, np.ndarray] | None:
        """Mul(x, per-unit constant) then Add(per-unit constant): tf2onnx's inference batch norm."""
        mul = self.sole_consumer(cur)
        if mul is None or self.nodes[mul].op_type != "Mul":
            return None
        scale = self._other_constant(mul, cur)
        add = self.sole_consumer(self.nodes[mul].output[0])
        if scale is None or scale.size != width or add is None or self.nodes[add].op_type != "Add":
            return None
        offset = self._other_constant(add, self.nodes[mul].output[0])
        if offset is None or offset.size not in (1, width):
            return None
        return mul, add, scale, offset

    def _affine_batch_norm(self, cur: str, width: int) -> tuple[Any, str]:
        """The pair as a batch norm with mean 0, variance 1 and epsilon 0: x * 1 * scale + offset, the same rounding."""
        found = self._affine_pair(cur, width)
        if found is None:
            return None, cur
        mul, add, scale, offset = found
        self.used.update([mul, add])
        dtype = scale.dtype
        vector = lambda v: np.broadcast_to(np.asarray(v).reshape(-1), (width,)).astype(dtype)  # noqa: E731
        layer = BatchNormLayer(np.zeros(width, dtype), np.ones(width, dtype), 0.0, vector(scale), vector(offset),
                               name=self.nodes[mul].name or cur)
        return layer, self.nodes[add].output[0]

    def _tf2onnx_prelu(self, cur: str, width: int) -> tuple[Any, str]:
        """tf2onnx's Keras PReLU: Add(Relu(x), Mul(Relu(Neg(x)), -slopes))."""
        readers = [i for i in self.consumers.get(cur, []) if i not in self.used]
        if cur in self.output_names or sorted(self.nodes[i].op_type for i in readers) != ["Neg", "Relu"]:
            return None, cur
        by_op = {self.nodes[i].op_type: i for i in readers}
        relu_neg = self._reader_of(self.nodes[by_op["Neg"]].output[0], ("Relu",))
        mul = self._reader_of(self.nodes[relu_neg].output[0], ("Mul",)) if relu_neg is not None else None
        negated = self._other_constant(mul, self.nodes[relu_neg].output[0]) if mul is not None and relu_neg is not None else None
        add = self._reader_of(self.nodes[mul].output[0], ("Add",)) if mul is not None else None
        if relu_neg is None or mul is None or negated is None or add is None:
            return None, cur
        if sorted(self.nodes[add].input) != sorted([self.nodes[by_op["Relu"]].output[0], self.nodes[mul].output[0]]):
            return None, cur
        self.used.update([*by_op.values(), relu_neg, mul, add])
        slopes = -np.broadcast_to(np.asarray(negated).reshape(-1), (width,))
        return PReLULayer(slopes.copy(), name=self.nodes[mul].name or cur), self.nodes[add].output[0]

    def _squares(self, index: int, tensor: str) -> bool:
        node = self.nodes[index]
        if node.op_type == "Mul":
            return list(node.input) == [tensor, tensor]
        exponent = self.constant(node.input[1]) if len(node.input) > 1 else None
        return node.input[0] == tensor and exponent is not None and exponent.size == 1 and float(exponent.ravel()[0]) == 2.0

    def _reader_of(self, tensor: str, ops: tuple[str, ...], exclude_op: str | None = None) -> int | None:
        readers = [i for i in self.consumers.get(tensor, []) if i not in self.used and self.nodes[i].op_type != exclude_op]
        if len(readers) != 1 or self.nodes[readers[0]].op_type not in ops:
            return None
        return readers[0]

    def _other_constant(self, index: int, tensor: str) -> np.ndarray | None:
        others = [n for n in self.nodes[index].input if n != tensor]
        if len(others) != 1 or not self.is_constant(others[0]):
            return None
        return self.constant(others[0])


def _is_zero(value: np.ndarray | None) -> bool:
    return value is not None and value.size == 1 and float(value.ravel()[0]) == 0.0
