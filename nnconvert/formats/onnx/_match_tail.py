"""The classifier/regressor tail: what the outputs are made of, which decides the head.

Probabilities, ArgMax + class lookup, ZipMap, Binarizer, LabelEncoder...
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...ir import Task
from ._common import ML_DOMAIN
from ._graph_index import GraphIndex, is_scalar
from ._tensors import DTYPES, FLOAT_TYPES


@dataclass
class TailSymbol:
    """What a tensor of the classifier tail holds."""

    kind: str  # values, neg, probs2, index, labels, indicator, zipmap
    classes: np.ndarray | None = None


class OutputTail(GraphIndex):
    """Follows the last layer's values to the graph outputs and names the task and classes they imply."""

    def _tail(self, trunk: str, width: int) -> tuple[Task, np.ndarray | None]:
        symbols = {trunk: TailSymbol("values")}
        # a worklist over each tensor's consumers: linear in the graph's size whatever the nodes' order
        # (repeated passes over the node list were quadratic on a graph listed in reverse)
        consumers: dict[str, list[int]] = {}
        for index, node in enumerate(self.nodes):
            if index not in self.used:
                for name in dict.fromkeys(node.input):
                    consumers.setdefault(name, []).append(index)
        pending = deque([trunk])
        while pending:
            for index in consumers.get(pending.popleft(), ()):
                if index in self.used:
                    continue
                self.used.add(index)
                node = self.nodes[index]
                symbol = self._tail_node(index, symbols, width)
                if symbol is not None and node.output:
                    symbols[node.output[0]] = symbol
                    pending.append(node.output[0])
        return self._head_from_outputs(symbols, width, trunk)

    def _tail_node(self, index: int, symbols: dict[str, TailSymbol], width: int) -> TailSymbol | None:
        node, attrs = self.nodes[index], self.attrs(index)
        op = self.op(index)
        args = [symbols.get(name) for name in node.input]
        first = args[0] if args else None
        kinds = tuple(a.kind if a else None for a in args)
        if op in ("Identity", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Dropout") and first is not None:
            return first
        if op == "Slice" and first is not None and first.kind in ("values", "probs2", "column"):
            return TailSymbol("column")  # skl2onnx's zipmap="columns": one output per class
        if op == "Exp" and kinds == ("values",) and self._follows_log_softmax(node.input[0]):
            return first  # probabilities from a log_softmax head (nnconvert writes them so)
        if op == "Cast" and first is not None:
            return self._tail_cast(index, first, attrs.get("to"))
        if op == "Sub" and kinds == (None, "values") and width == 1 and _is_one(self.constant(node.input[0])):
            return TailSymbol("neg")
        if op == "Concat" and kinds == ("neg", "values") and attrs.get("axis") in (1, -1):
            return TailSymbol("probs2")
        if op == "ArgMax" and first is not None and first.kind in ("values", "probs2"):
            if attrs.get("axis", 0) in (1, -1) and not attrs.get("select_last_index", 0):
                return TailSymbol("index")
        if op in (f"{ML_DOMAIN}.ArrayFeatureExtractor", "Gather") and kinds[1:] == ("index",) and kinds[0] is None:
            classes = self.constant(node.input[0])
            if classes is not None and classes.ndim == 1 and attrs.get("axis", 0) == 0:
                return TailSymbol("labels", classes)
        if op == f"{ML_DOMAIN}.Binarizer" and kinds == ("values",) and float(attrs.get("threshold", 0.0)) == 0.5:
            return TailSymbol("indicator")
        if op == "Greater" and kinds == ("values", None) and _is_half(self.constant(node.input[1])):
            return TailSymbol("indicator")
        if op == f"{ML_DOMAIN}.ZipMap" and first is not None and first.kind in ("values", "probs2"):
            return TailSymbol("zipmap", _zipmap_classes(attrs))
        if op == f"{ML_DOMAIN}.LabelEncoder" and first is not None and first.kind in ("labels", "index"):
            return self._label_encoder(index, first, width, attrs)
        if "values" in kinds:
            self.problem(
                index,
                f"computes on the network's values after the last layer nnconvert recognised, and {op} with these "
                "inputs and attributes is neither a layer nnconvert reads (dense, normalization, PRelu, activation) "
                "nor a classifier or regressor output",
            )
        else:
            self.problem(index, "is not part of a recognised classifier or regressor output")
        return None

    def _constant_output(self, name: str) -> np.ndarray | None:
        """A graph output that is a constant 1-D array (through Identity nodes), else None."""
        index = self.producer.get(name)
        if index is not None and self.nodes[index].op_type == "Identity":
            self.used.add(index)
            name = self.nodes[index].input[0]
        value = self.constant(name)
        return value if value is not None and value.ndim == 1 else None

    def _follows_log_softmax(self, tensor: str) -> bool:
        index = self.producer.get(tensor)
        return index is not None and self.nodes[index].op_type == "LogSoftmax"

    def _tail_cast(self, index: int, symbol: TailSymbol, to: int | None) -> TailSymbol | None:
        if symbol.kind in ("values", "neg", "probs2"):
            if to in FLOAT_TYPES:
                return symbol
            self.problem(index, f"casts the model's outputs to non-float type {to}")
            return None
        if symbol.kind != "labels":  # class indices, indicators, maps: a cast keeps what they mean
            return symbol
        target = None if to is None else DTYPES.get(to)
        classes = symbol.classes  # every "labels" symbol has its classes
        if target is None or classes is None or (classes.dtype.kind == "U" and target.kind != "U"):
            self.problem(index, f"casts the class labels to type {to}")
            return None
        return TailSymbol("labels", classes.astype(target))

    def _label_encoder(self, index: int, symbol: TailSymbol, width: int, attrs: dict[str, Any]) -> TailSymbol | None:
        keys = next((attrs[k] for k in ("keys_int64s", "keys_strings", "keys_floats") if k in attrs), None)
        values = next((attrs[k] for k in ("values_int64s", "values_strings", "values_floats") if k in attrs), None)
        labels = symbol.classes if symbol.kind == "labels" else None  # every "labels" symbol has its classes
        source = labels if labels is not None else np.arange(max(width, 2), dtype=np.int64)
        if keys is None or values is None or len(keys) != len(values):
            self.problem(index, "LabelEncoder without matching key and value lists")
            return None
        mapping = {_plain(k): _plain(v) for k, v in zip(keys, values, strict=True)}
        try:
            return TailSymbol("labels", np.array([mapping[_plain(c)] for c in source.tolist()]))
        except KeyError as missing:
            self.problem(index, f"LabelEncoder has no value for class {missing}")
            return None

    def _head_from_outputs(self, symbols: dict[str, TailSymbol], width: int, trunk: str) -> tuple[Task, np.ndarray | None]:
        outputs = []
        for name in self.output_names:
            symbol = symbols.get(name)
            if symbol is None and self._constant_output(name) is not None:
                continue  # skl2onnx's output_class_labels: the class labels themselves, checked below
            if symbol is None:
                self.problems.append(f"output {name!r} is not computed from the MLP's last layer")
            else:
                outputs.append(symbol)
        kinds = {s.kind for s in outputs}
        found = [s.classes for s in outputs if s.kind in ("labels", "zipmap") and s.classes is not None]
        for classes in found[1:]:
            if not same_labels(found[0], classes):
                self.problems.append(f"the outputs disagree on the class labels: {found[0].tolist()} vs {classes.tolist()}")
        for name in self.output_names:
            constant = self._constant_output(name)
            if constant is not None and found and not same_labels(found[0], constant):
                self.problems.append(f"output {name!r} lists classes {constant.tolist()} but the labels are {found[0].tolist()}")
        if "indicator" in kinds:
            return Task.MULTILABEL, np.arange(width, dtype=np.int64)
        if found or "index" in kinds:
            classes = found[0] if found else np.arange(max(width, 2), dtype=np.int64)
            return (Task.BINARY if len(classes) == 2 else Task.MULTICLASS), classes
        if "probs2" in kinds:
            return Task.BINARY, np.arange(2, dtype=np.int64)
        return (Task.REGRESSION if self.proto.producer_name == "skl2onnx" else Task.RAW), None


def _is_one(array: np.ndarray | None) -> bool:
    return is_scalar(array) and float(array.ravel()[0]) == 1.0


def _is_half(array: np.ndarray | None) -> bool:
    return is_scalar(array) and float(array.ravel()[0]) == 0.5


def _plain(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _zipmap_classes(attrs: dict[str, Any]) -> np.ndarray | None:
    if "classlabels_int64s" in attrs:
        return np.asarray(attrs["classlabels_int64s"], dtype=np.int64)
    if "classlabels_strings" in attrs:
        return np.array([_plain(v) for v in attrs["classlabels_strings"]], dtype=str)
    return None


def same_labels(a: np.ndarray, b: np.ndarray) -> bool:
    if len(a) != len(b):
        return False
    if a.dtype.kind in "biuf" and b.dtype.kind in "biuf":
        # compared as Python numbers, exactly: in float64, 2**53 and 2**53 + 1 are one value
        return bool(a.tolist() == b.tolist())
    return bool(np.array_equal(a.astype(str), b.astype(str)))
