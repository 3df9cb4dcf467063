"""The graph as the pattern matchers see it: nodes by tensor, constants, attributes, and the problems found.

Every matcher (``_match_*``) extends :class:`GraphIndex`; the parser
(``_parser.GraphParser``) combines them and walks the graph in order.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from ...errors import ReadError
from ._common import FORMAT, ML_DOMAIN
from ._tensors import FLOAT_TYPES, tensor_array

# every (domain, op_type) the walk knows what to do with; anything else is refused up front
SUPPORTED_OPS = {
    "": {
        "Identity", "Dropout", "Cast", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Constant",
        "MatMul", "Gemm", "Transpose", "Add", "Sub", "Mul", "Div", "Clip", "Pow", "Neg", "Sqrt", "Reciprocal",
        "Relu", "Tanh", "Sigmoid", "Softmax", "Exp", "LeakyRelu", "Elu", "Selu", "Softplus", "HardSigmoid",
        "Gelu", "Erf", "LogSoftmax", "Max", "Min", "Abs", "Log",
        "ArgMax", "Gather", "Concat", "Greater",
        "Slice", "BatchNormalization", "LayerNormalization", "PRelu", "ReduceMean", "HardSwish", "Mish", "Softsign", "Where",
        # only inside tf2onnx's fused LayerNormalization (its run-time shapes); anywhere else a leftover
        "Shape", "Expand", "ReduceProd", "ReduceSumSquare",
    },
    ML_DOMAIN: {"Scaler", "ZipMap", "ArrayFeatureExtractor", "Binarizer", "LabelEncoder"},
}
NOOP_OPS = {"Identity", "Dropout", "Cast", "Flatten", "Reshape"}
DENSE_OPS = {"MatMul", "Gemm"}
ARITHMETIC_OPS = {"Sub": "sub", "Div": "div", "Mul": "mul", "Add": "add"}


class GraphIndex:
    """One ONNX graph indexed for the walk: who produces and who reads each tensor, which nodes are used."""

    def __init__(self, proto: Any, path: Path):
        self.proto = proto
        self.graph = proto.graph
        self.path = path
        self.nodes = list(self.graph.node)
        self.initializers = {t.name: t for t in self.graph.initializer}
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = defaultdict(list)
        for index, node in enumerate(self.nodes):
            for name in node.output:
                if name:
                    self.producer[name] = index
            for name in dict.fromkeys(node.input):
                if name:
                    self.consumers[name].append(index)
        self.output_names = [o.name for o in self.graph.output]
        self.used: set[int] = set()
        self.problems: list[str] = []
        self._constants: dict[str, np.ndarray | None] = {}
        self._attributes: dict[int, dict[str, Any]] = {}

    def label(self, index: int) -> str:
        node = self.nodes[index]
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        return f"{op} node {node.name!r}" if node.name else f"{op} node #{index}"

    def problem(self, index: int, reason: str) -> None:
        self.used.add(index)
        self.problems.append(f"{self.label(index)}: {reason}")

    def attrs(self, index: int) -> dict[str, Any]:
        if index not in self._attributes:
            import onnx

            values = {}
            for attr in self.nodes[index].attribute:
                value = onnx.helper.get_attribute_value(attr)
                if value is None:  # an attribute without a type: as if absent
                    continue
                values[attr.name] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            self._attributes[index] = values
        return self._attributes[index]

    def constant(self, name: str) -> np.ndarray | None:
        """The value of an initializer or Constant node output; None when computed at run time."""
        if name in self._constants:
            return self._constants[name]
        value = None
        if name in self.initializers:
            value = tensor_array(self.initializers[name], f"initializer {name!r}", self.path)
        elif name in self.producer and self.nodes[self.producer[name]].op_type == "Constant":
            value = self._constant_node_value(self.producer[name])
        elif self._identity_of_constant(name):
            # torch.onnx merges equal initializers: a repeated bias becomes Identity(first bias)
            index = self.producer[name]
            self.used.add(index)
            value = self.constant(self.nodes[index].input[0])
        self._constants[name] = value
        return value

    def _constant_node_value(self, index: int) -> np.ndarray | None:
        self.used.add(index)
        node = self.nodes[index]
        for attr in node.attribute:
            if attr.name == "value":
                return tensor_array(attr.t, f"{self.label(index)} attribute 'value'", self.path)
        attrs = self.attrs(index)
        for key, dtype in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64), ("value_ints", np.int64)):
            if key in attrs:
                return np.asarray(attrs[key], dtype=dtype)
        for key in ("value_string", "value_strings"):
            if key in attrs:
                raw = attrs[key]
                values = raw if isinstance(raw, list) else [raw]
                return np.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values])
        return None

    def known_constant(self, name: str) -> np.ndarray:
        """The value of a tensor already found to be a constant with a value.

        Raises:
            ReadError: the tensor has no constant value after all.
        """
        value = self.constant(name)
        if value is None:
            raise ReadError(f"tensor {name!r} has no constant value", path=self.path, format=FORMAT)
        return value

    def is_constant(self, name: str) -> bool:
        return (
            name in self.initializers
            or (name in self.producer and self.nodes[self.producer[name]].op_type == "Constant")
            or self._identity_of_constant(name)
        )

    def _identity_of_constant(self, name: str) -> bool:
        index = self.producer.get(name)
        if index is None or self.nodes[index].op_type != "Identity" or not self.nodes[index].input:
            return False
        source = self.nodes[index].input[0]
        return source != name and self.is_constant(source)

    def sole_consumer(self, tensor: str) -> int | None:
        """The one unused node reading ``tensor``, when it is not also a graph output."""
        readers = [i for i in self.consumers.get(tensor, []) if i not in self.used]
        if len(readers) != 1 or tensor in self.output_names:
            return None
        return readers[0]

    def op(self, index: int) -> str:
        node = self.nodes[index]
        return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"

    def opset(self, domain: str = "") -> int:
        for entry in self.proto.opset_import:
            if entry.domain in (domain, "ai.onnx" if domain == "" else domain):
                return int(entry.version)
        return 1

    def _skip_noops(self, cur: str, width: int | None) -> str:
        while (index := self.sole_consumer(cur)) is not None and self.nodes[index].op_type in NOOP_OPS:
            if self.nodes[index].input[0] != cur or self._reshape_for_batch_norm(index):
                break
            reason = self._noop_problem(index, width)
            if reason is not None:
                self.problem(index, reason)
            self.used.add(index)
            cur = self.nodes[index].output[0]
        return cur

    def _reshape_for_batch_norm(self, index: int) -> bool:
        """A Reshape to 4-D read by a BatchNormalization: no no-op, but the start of tf2onnx's layer norm
        with a fixed batch size (``_match_tf2onnx_layer_norm``), which checks it."""
        node = self.nodes[index]
        target = self.constant(node.input[1]) if node.op_type == "Reshape" and len(node.input) > 1 else None
        return target is not None and target.size == 4 and any(
            self.nodes[i].op_type == "BatchNormalization" and self.nodes[i].input[:1] == node.output[:1]
            for i in self.consumers.get(node.output[0], [])
        )

    def _noop_problem(self, index: int, width: int | None) -> str | None:
        """Why a would-be no-op changes the values (None when it does not)."""
        node, attrs = self.nodes[index], self.attrs(index)
        op = node.op_type
        if op == "Cast" and attrs.get("to") not in FLOAT_TYPES:
            return f"casts the activations to non-float type {attrs.get('to')}"
        if op == "Dropout":
            if len(node.input) > 2 and node.input[2]:
                mode = self.constant(node.input[2])
                if mode is None or bool(np.asarray(mode).ravel()[0]):
                    return "dropout in training mode changes the values"
            if len(node.output) > 1 and node.output[1] and self.consumers.get(node.output[1]):
                return "the dropout mask is used"
        if op == "Flatten" and attrs.get("axis", 1) != 1:
            return f"Flatten with axis={attrs.get('axis')} changes the shape of a 2-D tensor"
        if op == "Reshape":
            shape = self.constant(node.input[1]) if len(node.input) > 1 else None
            if shape is None or shape.ndim != 1 or len(shape) != 2 or int(shape[0]) not in (-1, 0):
                return "Reshape to anything but [N, n] is not part of an MLP"
            if width is not None and int(shape[1]) not in (-1, width):
                return f"Reshape to width {int(shape[1])} of a tensor of width {width}"
        return None


def is_scalar(array: np.ndarray | None) -> TypeGuard[np.ndarray]:
    return array is not None and array.size == 1 and array.dtype.kind in "fiu"
