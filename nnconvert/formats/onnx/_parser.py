"""The graph walk: follows the data flow from the single float input through preprocessing, dense layers and the tail.

Anything that does not fit is collected, and one
:class:`~nnconvert.errors.UnsupportedModelError` lists every such node.
"""

from __future__ import annotations

from ...errors import UnsupportedModelError
from ._graph_index import DENSE_OPS, SUPPORTED_OPS
from ._match_dense import DenseFolding
from ._match_kinds import KindPatterns
from ._match_preprocessing import PreprocessingPatterns
from ._match_tail import OutputTail
from ._parsed import ParsedGraph, ParsedLayer
from ._tensors import FLOAT, FLOAT_TYPES

# input element types read through a Cast to float at the input: INT32, INT64, BOOL
_CAST_INPUT_TYPES = (6, 7, 9)


class GraphParser(PreprocessingPatterns, DenseFolding, KindPatterns, OutputTail):
    """Walks one ONNX graph along the data flow; collects every misfit before failing."""

    def parse(self) -> ParsedGraph:
        self._check_op_types()
        input_name, input_type, width = self._graph_input()
        self._raise_if_problems()
        start = self._input_cast(input_name, input_type)
        steps, cur = self._preprocessing(start, width)
        layers, cur = self._dense_layers(cur, width)
        if not layers:
            self.problems.append("no dense layer (Gemm or MatMul with a constant weight matrix) follows the input")
            self._report_leftovers()
            self._raise_if_problems()
        task, classes = self._tail(cur, layers[-1].weights.shape[1])
        self._report_leftovers()
        self._raise_if_problems()
        return ParsedGraph(input_name, input_type, width, steps, layers, task, classes)

    def _raise_if_problems(self) -> None:
        if self.problems:
            raise UnsupportedModelError(
                f"{self.path}: the ONNX graph is not a supported MLP ({len(self.problems)} node(s) or part(s) do not fit)",
                self.problems,
            )

    def _check_op_types(self) -> None:
        for index, node in enumerate(self.nodes):
            domain = "" if node.domain in ("", "ai.onnx") else node.domain
            if not node.output or not node.output[0]:
                self.problem(index, "has no output")
            elif node.op_type not in SUPPORTED_OPS.get(domain, ()):
                self.problem(index, "this operator is not part of an MLP (dense layers, activations, scalers, classifier outputs)")
            elif any(attr.type in (5, 10) for attr in node.attribute):  # GRAPH, GRAPHS attributes
                self.problem(index, "control flow with subgraphs is not part of an MLP")

    def _graph_input(self) -> tuple[str, int, int | None]:
        inputs = [i for i in self.graph.input if i.name not in self.initializers]
        if len(inputs) != 1:
            names = ", ".join(repr(i.name) for i in inputs) or "none"
            self.problems.append(f"the graph has {len(inputs)} inputs ({names}); an MLP reads exactly one [N, n_features] tensor")
            return (inputs[0].name if inputs else ""), FLOAT, None
        value = inputs[0]
        tensor_type = value.type.tensor_type
        cast_input = tensor_type.elem_type in _CAST_INPUT_TYPES and self._float_cast_of(value.name) is not None
        if not value.type.HasField("tensor_type") or (tensor_type.elem_type not in FLOAT_TYPES and not cast_input):
            self.problems.append(
                f"input {value.name!r} is not a float/double tensor (elem type {tensor_type.elem_type}); an MLP reads floats"
            )
        dims = list(tensor_type.shape.dim) if tensor_type.HasField("shape") else None
        width = None
        if dims is not None:
            if len(dims) != 2:
                self.problems.append(f"input {value.name!r} has {len(dims)} dimensions; an MLP reads [N, n_features]")
            elif dims[1].HasField("dim_value"):
                width = int(dims[1].dim_value)
        return value.name, tensor_type.elem_type, width

    def _float_cast_of(self, name: str) -> int | None:
        """The Cast to float that is the only reader of an integer or boolean input (skl2onnx's)."""
        readers = self.consumers.get(name, [])
        if len(readers) != 1 or self.nodes[readers[0]].op_type != "Cast":
            return None
        return readers[0] if self.attrs(readers[0]).get("to") in FLOAT_TYPES else None

    def _input_cast(self, input_name: str, input_type: int) -> str:
        """Where the float values start: the input, or its Cast when the input holds integers or booleans."""
        if input_type in FLOAT_TYPES:
            return input_name
        index = self._float_cast_of(input_name)
        assert index is not None  # checked by _graph_input
        self.used.add(index)
        return self.nodes[index].output[0]

    def _report_leftovers(self) -> None:
        live = self._live_nodes()
        for index in sorted(live - self.used):
            if self.nodes[index].op_type != "Constant":
                self.problem(index, "is not part of the recognised MLP pattern (dense layers, activations, classifier outputs)")

    def _live_nodes(self) -> set[int]:
        """Nodes some graph output depends on (dead code is ignored)."""
        live: set[int] = set()
        stack = [self.producer[name] for name in self.output_names if name in self.producer]
        while stack:
            index = stack.pop()
            if index in live:
                continue
            live.add(index)
            stack.extend(self.producer[name] for name in self.nodes[index].input if name in self.producer)
        return live

    def _dense_layers(self, cur: str, width: int | None) -> tuple[list[ParsedLayer], str]:
        layers: list[ParsedLayer] = []
        while True:
            cur = self._skip_noops(cur, width)
            index = self.sole_consumer(cur)
            if index is None or self.nodes[index].op_type not in DENSE_OPS:
                return layers, cur
            self.used.add(index)
            layer, cur = self._dense(index, cur)
            if layer is None:
                return layers, cur
            width = layer.weights.shape[1]
            cur = self._skip_noops(self._fold_after_dense(layer, cur, bias_only=True), width)
            activated = self._activation(layer, cur)
            if activated == cur and self._affine_pair(cur, width) is None:
                # no activation here: maybe an exact scaling first, then one
                cur = self._skip_noops(self._fold_after_dense(layer, cur, bias_only=False), width)
                activated = self._activation(layer, cur)
            cur = self._after_layers(layer, activated, width)
            layers.append(layer)
