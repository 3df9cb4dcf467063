"""Reading ONNX MLP graphs into the IR.

The reader follows the data flow from the graph's single float input and
recognises the multilayer-perceptron pattern whoever produced it: nnconvert
itself, skl2onnx (MLPClassifier/MLPRegressor, with or without ZipMap, scaler
pipelines), torch.onnx (TorchScript and dynamo exporters) and tf2onnx/Keras
(MatMul + Add). The walk has three stages:

1. preprocessing: constant Sub/Div/Mul/Add/Clip and ai.onnx.ml Scaler before
   the first dense layer, kept operation for operation;
2. dense layers: Gemm or MatMul (+ Add), then an activation (one node, or a
   small elementwise composition recognised as silu or gelu);
3. the tail: what the outputs are made of (probabilities, ArgMax + class
   lookup, ZipMap, Binarizer...), which decides the head.

Anything that does not fit is collected, and one
:class:`~nnconvert.errors.UnsupportedModelError` lists every such node.

nnconvert's own files carry the IR description in ``metadata_props``; it is
laid over the parsed graph (names, parameters, classes and their dtype) when
it agrees with what the graph computes, and ignored with a warning otherwise.

External data are resolved here, not by onnx: every location must stay
inside the model's folder, and no buffer is allocated before its declared
size has been checked against the data actually present.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, TypeGuard

import numpy as np

from .. import serde
from ..errors import InvalidModelError, NnconvertError, ReadError, UnsupportedModelError, UsageError
from ..ir import (
    ACTIVATION_DEFAULTS,
    Activation,
    DenseLayer,
    ElementwiseOp,
    Head,
    InputSpec,
    Metadata,
    Model,
    PreprocessStep,
    Task,
    apply_activation,
)

__all__ = ["READ_OPTIONS", "read", "DESCRIPTION_KEY", "FORMAT_VERSION_KEY"]

READ_OPTIONS: tuple[str, ...] = ("task", "classes")

FORMAT = "onnx"
DESCRIPTION_KEY = "nnconvert.model"
FORMAT_VERSION_KEY = "nnconvert.format_version"
FORMAT_VERSION = "1"

ML_DOMAIN = "ai.onnx.ml"

# TensorProto.DataType codes (kept here so this module imports without onnx)
_FLOAT, _UINT8, _INT8, _UINT16, _INT16, _INT32, _INT64, _STRING, _BOOL, _FLOAT16, _DOUBLE, _UINT32, _UINT64 = range(1, 14)
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL

_DTYPES: dict[int, np.dtype[Any]] = {
    _FLOAT: np.dtype(np.float32),
    _DOUBLE: np.dtype(np.float64),
    _FLOAT16: np.dtype(np.float16),
    _INT64: np.dtype(np.int64),
    _INT32: np.dtype(np.int32),
    _INT16: np.dtype(np.int16),
    _INT8: np.dtype(np.int8),
    _UINT8: np.dtype(np.uint8),
    _UINT16: np.dtype(np.uint16),
    _UINT32: np.dtype(np.uint32),
    _UINT64: np.dtype(np.uint64),
    _BOOL: np.dtype(np.bool_),
    _STRING: np.dtype(str),
}
_FLOAT_TYPES = (_FLOAT, _DOUBLE, _FLOAT16)

# every (domain, op_type) the walk knows what to do with; anything else is refused up front
_SUPPORTED_OPS = {
    "": {
        "Identity", "Dropout", "Cast", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Constant",
        "MatMul", "Gemm", "Transpose", "Add", "Sub", "Mul", "Div", "Clip", "Pow", "Neg", "Sqrt", "Reciprocal",
        "Relu", "Tanh", "Sigmoid", "Softmax", "Exp", "LeakyRelu", "Elu", "Selu", "Softplus", "HardSigmoid",
        "Gelu", "Erf", "LogSoftmax", "Max", "Min", "Abs", "Log",
        "ArgMax", "Gather", "Concat", "Greater",
    },
    ML_DOMAIN: {"Scaler", "ZipMap", "ArrayFeatureExtractor", "Binarizer", "LabelEncoder"},
}
_NOOP_OPS = {"Identity", "Dropout", "Cast", "Flatten", "Reshape"}
_DENSE_OPS = {"MatMul", "Gemm"}
_ARITHMETIC = {"Sub": "sub", "Div": "div", "Mul": "mul", "Add": "add"}
_SIMPLE_ACTIVATIONS = {
    "Relu": Activation.RELU,
    "Tanh": Activation.TANH,
    "Sigmoid": Activation.LOGISTIC,
    "Softmax": Activation.SOFTMAX,
    "Exp": Activation.EXP,
    "LeakyRelu": Activation.LEAKY_RELU,
    "Elu": Activation.ELU,
    "Selu": Activation.SELU,
    "Softplus": Activation.SOFTPLUS,
    "HardSigmoid": Activation.HARD_SIGMOID,
    "Gelu": Activation.GELU,
}
# the ONNX attribute defaults, which are the float32 roundings of the IR's
_ONNX_ACTIVATION_DEFAULTS = {
    Activation.LEAKY_RELU: {"alpha": 0.01},
    Activation.ELU: {"alpha": 1.0},
    Activation.SELU: {"alpha": 1.67326319217681884765625, "gamma": 1.05070102214813232421875},
    Activation.HARD_SIGMOID: {"alpha": 0.2, "beta": 0.5},
}
# elementwise ops a multi-node activation (x * sigmoid(x), erf/tanh gelu) is made of
_COMPOSITE_OPS = {
    "Mul", "Add", "Sub", "Div", "Pow", "Erf", "Tanh", "Sigmoid", "Neg", "Exp", "Reciprocal", "Sqrt", "Max", "Min", "Abs", "Log",
}
_COMPOSITE_MAX_NODES = 24
_FRAMEWORKS = {"skl2onnx": "sklearn", "pytorch": "torch", "tf2onnx": "tensorflow", "keras2onnx": "keras", "nnconvert": "nnconvert"}


# -- entry point -------------------------------------------------------------------


def read(path: str | os.PathLike[str], **options: Any) -> Model:
    """Read an ONNX file holding an MLP into the IR.

    Args:
        path: the .onnx file. External data must sit in the model's folder.
        **options: ``task`` (a :class:`~nnconvert.ir.Task` value) and ``classes``
            (a sequence of labels) override what the graph says; useful for raw
            torch/Keras graphs whose outputs are class scores.

    Returns:
        The model graph; weights keep the file's dtype.

    Raises:
        ReadError: the file is not a readable ONNX model, its external data are
            missing or outside the model's folder, or a weight is malformed.
        UnsupportedModelError: the graph is not an MLP (every node at fault listed).
        UsageError: an unknown option or an invalid option value.
    """
    path = Path(path)
    task, classes = _parse_options(options)
    proto = _load_proto(path)
    _check_external_locations(proto, path)
    try:
        parsed = _GraphParser(proto, path).parse()
        model = _build_model(parsed, proto, path)
    except NnconvertError:
        raise
    except (IndexError, KeyError, TypeError, ValueError, AttributeError) as exc:
        # a structurally malformed graph (missing inputs, attributes of the wrong type...)
        raise ReadError(f"malformed ONNX graph: {type(exc).__name__}: {exc}", path=path, format=FORMAT) from None
    model = _overlay_description(model, proto, path)
    if task is not None or classes is not None:
        model = _apply_head_override(model, task, classes, path)
    return model


def _parse_options(options: dict[str, Any]) -> tuple[Task | None, np.ndarray | None]:
    unknown = sorted(set(options) - set(READ_OPTIONS))
    if unknown:
        raise UsageError(f"the onnx reader does not take option(s) {', '.join(unknown)}; it takes: {', '.join(READ_OPTIONS)}")
    task = options.get("task")
    if task is not None:
        try:
            task = Task(task)
        except ValueError:
            raise UsageError(f"unknown task {task!r}; expected one of {[t.value for t in Task]}") from None
    classes = options.get("classes")
    if classes is not None:
        classes = np.asarray(list(classes))
        if classes.ndim != 1 or classes.size == 0:
            raise UsageError(f"classes must be a non-empty list of labels, got {options['classes']!r}")
    return task, classes


def _apply_head_override(model: Model, task: Task | None, classes: np.ndarray | None, path: Path) -> Model:
    from dataclasses import replace

    task = task or model.task
    if task in (Task.REGRESSION, Task.RAW):
        head = Head(task, None)
    else:
        if classes is None:
            classes = model.classes
        if classes is None:
            classes = np.arange(2 if task == Task.BINARY else model.n_outputs, dtype=np.int64)
        head = Head(task, classes)
    try:
        return replace(model, head=head)
    except InvalidModelError as exc:
        raise UsageError(f"{path}: the task/classes options do not fit the graph: {exc}") from None


# -- loading and tensors -----------------------------------------------------------


def _load_proto(path: Path) -> Any:
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except OSError as exc:
        raise ReadError(f"cannot read the file: {exc.strerror or exc}", path=path, format=FORMAT) from None
    except Exception as exc:  # noqa: BLE001 - protobuf raises its own DecodeError and friends
        raise ReadError(
            f"not a valid ONNX model (the protobuf does not parse: {type(exc).__name__}); the file may be truncated or corrupt",
            path=path,
            format=FORMAT,
        ) from None
    if not proto.HasField("graph") or len(proto.graph.node) == 0:
        raise ReadError(
            "not an ONNX model: no graph or an empty graph (is this a truncated file or another kind of protobuf?)",
            path=path,
            format=FORMAT,
        )
    _check_versions(proto, path)
    _check_text(proto, path)
    if len(proto.graph.output) == 0:
        raise ReadError("the graph declares no outputs; a model's graph must name its outputs", path=path, format=FORMAT)
    return proto


def _check_text(proto: Any, path: Path) -> None:
    """Refuse names that are not UTF-8: protobuf hands them over as bytes instead of failing."""
    graph = proto.graph

    def fail(where: str, value: bytes) -> ReadError:
        return ReadError(f"{where} is not valid UTF-8 text: {value[:40]!r}", path=path, format=FORMAT)

    for index, node in enumerate(graph.node):
        for label, values in (("name", [node.name]), ("op_type", [node.op_type]), ("domain", [node.domain]),
                              ("input", node.input), ("output", node.output), ("attribute", [a.name for a in node.attribute])):
            for value in values:
                if isinstance(value, bytes):
                    raise fail(f"node {index} ({node.op_type!s:.40}) {label}", value)
    for label, items in (("input", graph.input), ("output", graph.output), ("initializer", graph.initializer)):
        for index, item in enumerate(items):
            if isinstance(item.name, bytes):
                raise fail(f"graph {label} {index} name", item.name)
    for prop in proto.metadata_props:
        for value in (prop.key, prop.value):
            if isinstance(value, bytes):
                raise fail(f"metadata_props entry {prop.key!s:.40}", value)
    for value in (proto.producer_name, proto.producer_version, proto.domain, graph.name):
        if isinstance(value, bytes):
            raise fail("the model's producer/domain/graph name", value)


def _check_versions(proto: Any, path: Path) -> None:
    """Refuse an IR version or ai.onnx opset newer than the installed onnx knows (as onnxruntime does)."""
    import onnx
    import onnx.defs

    if proto.ir_version > onnx.IR_VERSION:
        raise ReadError(
            f"ir_version {proto.ir_version} is newer than this onnx ({onnx.__version__}) knows (up to {onnx.IR_VERSION}); "
            "upgrade onnx or re-export the model with an older IR version",
            path=path,
            format=FORMAT,
        )
    newest = onnx.defs.onnx_opset_version()
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx") and entry.version > newest:
            raise ReadError(
                f"opset_import: ai.onnx opset {entry.version} is newer than this onnx knows (up to {newest}); "
                "upgrade onnx or export the model with an older opset",
                path=path,
                format=FORMAT,
            )


def _tensors_with_data(proto: Any) -> list[tuple[Any, str]]:
    """Every tensor of the main graph with a description for error messages."""
    tensors = [(t, f"initializer {t.name!r}") for t in proto.graph.initializer]
    for node in proto.graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                tensors.append((attr.t, f"{node.op_type} node {node.name!r} attribute {attr.name!r}"))
    return tensors


def _check_external_locations(proto: Any, path: Path) -> None:
    """Refuse any external-data location that leaves the model's folder (before reading anything)."""
    for tensor, where in _tensors_with_data(proto):
        if tensor.data_location == _EXTERNAL:
            _external_file(tensor, where, path)


def _external_info(tensor: Any) -> dict[str, str]:
    return {entry.key: entry.value for entry in tensor.external_data}


def _external_file(tensor: Any, where: str, path: Path) -> Path:
    location = _external_info(tensor).get("location", "")

    def refuse(reason: str) -> ReadError:
        return ReadError(f"{where}: external data location {location!r} {reason}", path=path, format=FORMAT)

    if not location or "\x00" in location:
        raise refuse("is empty or invalid")
    posix, windows = PurePosixPath(location), PureWindowsPath(location)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or location.startswith(("/", "\\")):
        raise refuse("is an absolute path; only paths relative to the model's folder are allowed")
    if ".." in posix.parts or ".." in windows.parts:
        raise refuse("contains '..'; external data must stay inside the model's folder")
    base = Path(os.path.abspath(path)).parent.resolve()
    target = (base / location).resolve()
    if not target.is_relative_to(base):
        raise refuse(f"resolves to {target}, outside the model's folder {base} (a symbolic link?)")
    if not target.is_file():
        raise refuse(f"does not name an existing file in {base}")
    return target


def _tensor_array(tensor: Any, where: str, path: Path) -> np.ndarray:
    """The tensor's values, every declared size checked against the data present first."""
    dtype = _DTYPES.get(tensor.data_type)
    if dtype is None:
        raise ReadError(f"{where}: unsupported tensor data type {tensor.data_type}", path=path, format=FORMAT)
    dims = [int(d) for d in tensor.dims]
    if any(d < 0 for d in dims):
        raise ReadError(f"{where}: negative dimension in shape {dims}", path=path, format=FORMAT)
    count = math.prod(dims)
    if tensor.data_location == _EXTERNAL:
        raw = _external_bytes(tensor, where, path, count * dtype.itemsize, dims, dtype)
        return _from_raw(raw, dtype, dims)
    if tensor.data_type == _STRING:
        values = tensor.string_data
        _check_count(len(values), count, where, dims, path)
        decoded = [v.decode("utf-8", errors="replace") for v in values]
        return np.array(decoded, dtype=str).reshape(dims) if decoded else np.zeros(dims, dtype="<U1")
    if tensor.HasField("raw_data") and (tensor.raw_data or count == 0):
        expected = count * dtype.itemsize
        if len(tensor.raw_data) != expected:
            raise ReadError(
                f"{where}: raw data hold {len(tensor.raw_data)} bytes but shape {dims} of {dtype} needs {expected}",
                path=path,
                format=FORMAT,
            )
        return _from_raw(tensor.raw_data, dtype, dims)
    return _from_typed_field(tensor, dtype, dims, count, where, path)


def _check_count(actual: int, expected: int, where: str, dims: list[int], path: Path) -> None:
    if actual != expected:
        raise ReadError(f"{where}: holds {actual} values but its shape {dims} needs {expected}", path=path, format=FORMAT)


def _from_raw(raw: bytes, dtype: np.dtype, dims: list[int]) -> np.ndarray:
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(dims)


def _from_typed_field(tensor: Any, dtype: np.dtype, dims: list[int], count: int, where: str, path: Path) -> np.ndarray:
    code = tensor.data_type
    if code == _FLOAT:
        values = tensor.float_data
    elif code == _DOUBLE:
        values = tensor.double_data
    elif code == _INT64:
        values = tensor.int64_data
    elif code in (_UINT32, _UINT64):
        values = tensor.uint64_data
    else:
        values = tensor.int32_data
    _check_count(len(values), count, where, dims, path)
    if code == _FLOAT16:  # stored as the bit patterns
        return np.array(values, dtype=np.uint16).view(np.float16).reshape(dims)
    return np.array(values).astype(dtype).reshape(dims)


def _external_bytes(tensor: Any, where: str, path: Path, expected: int, dims: list[int], dtype: np.dtype) -> bytes:
    if tensor.data_type == _STRING:
        raise ReadError(f"{where}: string tensors cannot be stored as external data", path=path, format=FORMAT)
    file = _external_file(tensor, where, path)
    info = _external_info(tensor)
    try:
        offset = int(info.get("offset", "0"))
        length = int(info["length"]) if "length" in info else expected
    except ValueError:
        raise ReadError(f"{where}: external data offset/length are not integers: {info}", path=path, format=FORMAT) from None
    if offset < 0 or length != expected:
        raise ReadError(
            f"{where}: external data declare {length} bytes at offset {offset}, but shape {dims} of {dtype} needs {expected}",
            path=path,
            format=FORMAT,
        )
    size = file.stat().st_size
    if offset + expected > size:
        raise ReadError(
            f"{where}: external data need bytes {offset}..{offset + expected} of {file.name}, which has only {size}",
            path=path,
            format=FORMAT,
        )
    with open(file, "rb") as handle:
        handle.seek(offset)
        raw = handle.read(expected)
    if len(raw) != expected:
        raise ReadError(f"{where}: external data file {file.name} ended early", path=path, format=FORMAT)
    return raw


# -- the parsed graph --------------------------------------------------------------


@dataclass
class _Layer:
    weights: np.ndarray
    bias: np.ndarray | None
    node: str  # "Gemm node 'x'" for messages
    name: str
    weight_name: str
    bias_name: str | None = None
    activation: Activation = Activation.IDENTITY
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Step:
    kind: str
    name: str
    ops: list[tuple[str, np.ndarray, str]]  # (op, operand, where)


@dataclass
class _Sym:
    """What a tensor of the classifier tail holds."""

    kind: str  # values, neg, probs2, index, labels, indicator, zipmap
    classes: np.ndarray | None = None


@dataclass
class _Parsed:
    input_name: str
    input_type: int
    declared_width: int | None
    steps: list[_Step]
    layers: list[_Layer]
    task: Task
    classes: np.ndarray | None


class _GraphParser:
    """Walks one ONNX graph along the data flow; collects every misfit before failing."""

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

    # -- helpers ---------------------------------------------------------------

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
            value = _tensor_array(self.initializers[name], f"initializer {name!r}", self.path)
        elif name in self.producer and self.nodes[self.producer[name]].op_type == "Constant":
            value = self._constant_node_value(self.producer[name])
        self._constants[name] = value
        return value

    def _constant_node_value(self, index: int) -> np.ndarray | None:
        self.used.add(index)
        node = self.nodes[index]
        for attr in node.attribute:
            if attr.name == "value":
                return _tensor_array(attr.t, f"{self.label(index)} attribute 'value'", self.path)
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
        return name in self.initializers or (name in self.producer and self.nodes[self.producer[name]].op_type == "Constant")

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

    # -- whole graph -----------------------------------------------------------

    def parse(self) -> _Parsed:
        self._check_op_types()
        input_name, input_type, width = self._graph_input()
        self._raise_if_problems()
        steps, cur = self._preprocessing(input_name, width)
        layers, cur = self._dense_layers(cur, width)
        if not layers:
            self.problems.append("no dense layer (Gemm or MatMul with a constant weight matrix) follows the input")
            self._report_leftovers()
            self._raise_if_problems()
        task, classes = self._tail(cur, layers[-1].weights.shape[1])
        self._report_leftovers()
        self._raise_if_problems()
        return _Parsed(input_name, input_type, width, steps, layers, task, classes)

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
            elif node.op_type not in _SUPPORTED_OPS.get(domain, ()):
                self.problem(index, "this operator is not part of an MLP (dense layers, activations, scalers, classifier outputs)")
            elif any(attr.type in (5, 10) for attr in node.attribute):  # GRAPH, GRAPHS attributes
                self.problem(index, "control flow with subgraphs is not part of an MLP")

    def _graph_input(self) -> tuple[str, int, int | None]:
        inputs = [i for i in self.graph.input if i.name not in self.initializers]
        if len(inputs) != 1:
            names = ", ".join(repr(i.name) for i in inputs) or "none"
            self.problems.append(f"the graph has {len(inputs)} inputs ({names}); an MLP reads exactly one [N, n_features] tensor")
            return (inputs[0].name if inputs else ""), _FLOAT, None
        value = inputs[0]
        tensor_type = value.type.tensor_type
        if not value.type.HasField("tensor_type") or tensor_type.elem_type not in _FLOAT_TYPES:
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

    # -- no-op nodes -----------------------------------------------------------

    def _skip_noops(self, cur: str, width: int | None) -> str:
        while (index := self.sole_consumer(cur)) is not None and self.nodes[index].op_type in _NOOP_OPS:
            if self.nodes[index].input[0] != cur:
                break
            reason = self._noop_problem(index, width)
            if reason is not None:
                self.problem(index, reason)
            self.used.add(index)
            cur = self.nodes[index].output[0]
        return cur

    def _noop_problem(self, index: int, width: int | None) -> str | None:
        """Why a would-be no-op changes the values (None when it does not)."""
        node, attrs = self.nodes[index], self.attrs(index)
        op = node.op_type
        if op == "Cast" and attrs.get("to") not in _FLOAT_TYPES:
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

    # -- preprocessing ---------------------------------------------------------

    def _preprocessing(self, cur: str, width: int | None) -> tuple[list[_Step], str]:
        steps: list[_Step] = []
        run: _Step | None = None
        while True:
            cur = self._skip_noops(cur, width)
            index = self.sole_consumer(cur)
            if index is None or self.nodes[index].op_type in _DENSE_OPS:
                return steps, cur
            op = self.op(index)
            self.used.add(index)
            if op == f"{ML_DOMAIN}.Scaler":
                steps.append(self._scaler_step(index))
                run = None
            elif op in _ARITHMETIC or op in ("Clip", "Max", "Min"):
                entry = self._preprocess_op(index, cur)
                if entry is not None:
                    if run is None:
                        run = _Step("affine", self.nodes[index].name, [])
                        steps.append(run)
                    _append_op(run, entry, op)
            else:
                self.problem(index, "is not a preprocessing operation (constant Sub/Div/Mul/Add/Clip or Scaler) before the first dense layer")
            cur = self.nodes[index].output[0]

    def _scaler_step(self, index: int) -> _Step:
        attrs = self.attrs(index)
        where = self.label(index)
        offset = np.asarray(attrs.get("offset", [0.0]), dtype=np.float32)
        scale = np.asarray(attrs.get("scale", [1.0]), dtype=np.float32)
        # ai.onnx.ml Scaler computes (x - offset) * scale, in float32
        return _Step("affine", self.nodes[index].name, [("sub", _squeezed(offset), where), ("mul", _squeezed(scale), where)])

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
                return None if checked is None else (_ARITHMETIC[node.op_type], checked, where)
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

    # -- dense layers ----------------------------------------------------------

    def _dense_layers(self, cur: str, width: int | None) -> tuple[list[_Layer], str]:
        layers: list[_Layer] = []
        while True:
            cur = self._skip_noops(cur, width)
            index = self.sole_consumer(cur)
            if index is None or self.nodes[index].op_type not in _DENSE_OPS:
                return layers, cur
            self.used.add(index)
            layer, cur = self._dense(index, cur)
            if layer is None:
                return layers, cur
            width = layer.weights.shape[1]
            cur = self._skip_noops(self._fold_after_dense(layer, cur, bias_only=True), width)
            activated = self._activation(layer, cur)
            if activated == cur:  # no activation here: maybe an exact scaling first, then one
                cur = self._skip_noops(self._fold_after_dense(layer, cur, bias_only=False), width)
                activated = self._activation(layer, cur)
            cur = activated
            layers.append(layer)

    def _dense(self, index: int, cur: str) -> tuple[_Layer | None, str]:
        node = self.nodes[index]
        out = node.output[0]
        if len(node.input) < 2 or node.input[0] != cur:
            self.problem(index, "the activations must be the first operand (x @ W)")
            return None, out
        weights = self._weight_matrix(index, node.input[1])
        if weights is None:
            return None, out
        layer = _Layer(weights, None, self.label(index), node.name, node.input[1])
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

    def _gemm(self, index: int, layer: _Layer) -> None:
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

    def _fold_after_dense(self, layer: _Layer, cur: str, *, bias_only: bool) -> str:
        """Fold constant Add/Sub (the bias) and, unless ``bias_only``, exact scalings after the matrix product."""
        while (index := self.sole_consumer(cur)) is not None and self.nodes[index].op_type in _ARITHMETIC:
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

    def _fold_constant(self, index: int, layer: _Layer, op: str, name: str, value: np.ndarray, *, reversed_operands: bool) -> None:
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

    # -- activations -----------------------------------------------------------

    def _activation(self, layer: _Layer, cur: str) -> str:
        index = self.sole_consumer(cur)
        if index is not None and self.nodes[index].op_type in _SIMPLE_ACTIVATIONS and self.nodes[index].domain in ("", "ai.onnx"):
            self.used.add(index)
            self._simple_activation(index, layer)
            return self.nodes[index].output[0]
        if index is not None and self.nodes[index].op_type == "LogSoftmax":
            self.problem(index, "LogSoftmax has no IR activation (log-probabilities); export with Softmax instead")
            return self.nodes[index].output[0]
        composite = self._composite_activation(cur)
        if composite is None:
            return cur
        activation, params, out = composite
        layer.activation, layer.params = activation, params
        return out

    def _simple_activation(self, index: int, layer: _Layer) -> None:
        op, attrs = self.nodes[index].op_type, self.attrs(index)
        activation = _SIMPLE_ACTIVATIONS[op]
        layer.activation = activation
        if op == "Softmax":
            axis = attrs.get("axis", -1 if self.opset() >= 13 else 1)
            if axis not in (1, -1):
                self.problem(index, f"softmax over axis {axis}; a dense layer's softmax runs over the features (axis 1)")
        elif op == "Gelu":
            layer.params = {"approximate": attrs.get("approximate", "none")}
        elif activation in _ONNX_ACTIVATION_DEFAULTS:
            layer.params = {key: float(attrs.get(key, default)) for key, default in _ONNX_ACTIVATION_DEFAULTS[activation].items()}

    def _composite_activation(self, start: str) -> tuple[Activation, dict[str, Any], str] | None:
        """A few elementwise nodes computing one IR activation (found by structure, confirmed by value).

        Exporters compose silu and gelu (and nnconvert's float64 graphs leaky_relu,
        elu, selu, softplus, hard_sigmoid) from elementwise nodes; the region's
        values on a probe decide which one it is, with parameters taken from the
        region's own constants.
        """
        region, exits = self._elementwise_region(start)
        if len(region) < 2 or len(exits) != 1:
            return None
        computed = self._evaluate_region(region, start, exits[0], _PROBE)
        if computed is None or not np.isfinite(computed).all():
            return None
        constants = [
            float(self.known_constant(n).ravel()[0]) for i in region for n in self.nodes[i].input if self.is_constant(n)
        ]
        for activation, params in _candidate_activations(computed, constants):
            expected = _PROBE.copy().reshape(1, -1)
            apply_activation(expected, activation, {**ACTIVATION_DEFAULTS.get(activation, {}), **params})
            if np.allclose(computed, expected.ravel(), rtol=1e-5, atol=1e-6):
                self.used.update(region)
                return activation, params, exits[0]
        return None

    def _elementwise_region(self, start: str) -> tuple[list[int], list[str]]:
        tensors = {start}
        region: list[int] = []
        changed = True
        while changed and len(region) <= _COMPOSITE_MAX_NODES:
            changed = False
            for index in sorted({i for t in tensors for i in self.consumers.get(t, [])} - set(region) - self.used):
                node = self.nodes[index]
                if node.op_type not in _COMPOSITE_OPS or node.domain not in ("", "ai.onnx"):
                    continue
                if all(name in tensors or (self.is_constant(name) and _scalar(self.constant(name))) for name in node.input):
                    region.append(index)
                    tensors.add(node.output[0])
                    changed = True
        produced = {self.nodes[i].output[0] for i in region}
        exits = [
            t for t in produced
            if t in self.output_names or any(c not in region for c in self.consumers.get(t, []))
        ]
        if any(c not in region for c in self.consumers.get(start, [])):
            return [], []
        return region, exits

    def _evaluate_region(self, region: list[int], start: str, exit_name: str, probe: np.ndarray) -> np.ndarray | None:
        values: dict[str, np.ndarray] = {start: probe}
        pending = list(region)
        with np.errstate(all="ignore"):
            while pending:
                ready = [i for i in pending if all(n in values or self.is_constant(n) for n in self.nodes[i].input)]
                if not ready:
                    return None
                for index in ready:
                    node = self.nodes[index]
                    args = [values[n] if n in values else np.float64(self.known_constant(n).ravel()[0]) for n in node.input]
                    values[node.output[0]] = _ELEMENTWISE[node.op_type](*args)
                    pending.remove(index)
        return values.get(exit_name)

    # -- the tail: how outputs are made ----------------------------------------

    def _tail(self, trunk: str, width: int) -> tuple[Task, np.ndarray | None]:
        symbols = {trunk: _Sym("values")}
        progress = True
        while progress:
            progress = False
            for index, node in enumerate(self.nodes):
                if index in self.used or not any(name in symbols for name in node.input):
                    continue
                self.used.add(index)
                progress = True
                symbol = self._tail_node(index, symbols, width)
                if symbol is not None and node.output:
                    symbols[node.output[0]] = symbol
        return self._head_from_outputs(symbols, width, trunk)

    def _tail_node(self, index: int, symbols: dict[str, _Sym], width: int) -> _Sym | None:
        node, attrs = self.nodes[index], self.attrs(index)
        op = self.op(index)
        args = [symbols.get(name) for name in node.input]
        first = args[0] if args else None
        kinds = tuple(a.kind if a else None for a in args)
        if op in ("Identity", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Dropout") and first is not None:
            return first
        if op == "Cast" and first is not None:
            return self._tail_cast(index, first, attrs.get("to"))
        if op == "Sub" and kinds == (None, "values") and width == 1 and _is_one(self.constant(node.input[0])):
            return _Sym("neg")
        if op == "Concat" and kinds == ("neg", "values") and attrs.get("axis") in (1, -1):
            return _Sym("probs2")
        if op == "ArgMax" and first is not None and first.kind in ("values", "probs2"):
            if attrs.get("axis", 0) in (1, -1) and not attrs.get("select_last_index", 0):
                return _Sym("index")
        if op in (f"{ML_DOMAIN}.ArrayFeatureExtractor", "Gather") and kinds[1:] == ("index",) and kinds[0] is None:
            classes = self.constant(node.input[0])
            if classes is not None and classes.ndim == 1 and attrs.get("axis", 0) == 0:
                return _Sym("labels", classes)
        if op == f"{ML_DOMAIN}.Binarizer" and kinds == ("values",) and float(attrs.get("threshold", 0.0)) == 0.5:
            return _Sym("indicator")
        if op == "Greater" and kinds == ("values", None) and _is_half(self.constant(node.input[1])):
            return _Sym("indicator")
        if op == f"{ML_DOMAIN}.ZipMap" and first is not None and first.kind in ("values", "probs2"):
            return _Sym("zipmap", _zipmap_classes(attrs))
        if op == f"{ML_DOMAIN}.LabelEncoder" and first is not None and first.kind in ("labels", "index"):
            return self._label_encoder(index, first, width, attrs)
        self.problem(index, "is not part of a recognised classifier or regressor output")
        return None

    def _tail_cast(self, index: int, symbol: _Sym, to: int | None) -> _Sym | None:
        if symbol.kind in ("values", "neg", "probs2"):
            if to in _FLOAT_TYPES:
                return symbol
            self.problem(index, f"casts the model's outputs to non-float type {to}")
            return None
        if symbol.kind != "labels":  # class indices, indicators, maps: a cast keeps what they mean
            return symbol
        target = None if to is None else _DTYPES.get(to)
        classes = symbol.classes  # every "labels" symbol has its classes
        if target is None or classes is None or (classes.dtype.kind == "U" and target.kind != "U"):
            self.problem(index, f"casts the class labels to type {to}")
            return None
        return _Sym("labels", classes.astype(target))

    def _label_encoder(self, index: int, symbol: _Sym, width: int, attrs: dict[str, Any]) -> _Sym | None:
        keys = next((attrs[k] for k in ("keys_int64s", "keys_strings", "keys_floats") if k in attrs), None)
        values = next((attrs[k] for k in ("values_int64s", "values_strings", "values_floats") if k in attrs), None)
        labels = symbol.classes if symbol.kind == "labels" else None  # every "labels" symbol has its classes
        source = labels if labels is not None else np.arange(max(width, 2), dtype=np.int64)
        if keys is None or values is None or len(keys) != len(values):
            self.problem(index, "LabelEncoder without matching key and value lists")
            return None
        mapping = {_plain(k): _plain(v) for k, v in zip(keys, values, strict=True)}
        try:
            return _Sym("labels", np.array([mapping[_plain(c)] for c in source.tolist()]))
        except KeyError as missing:
            self.problem(index, f"LabelEncoder has no value for class {missing}")
            return None

    def _head_from_outputs(self, symbols: dict[str, _Sym], width: int, trunk: str) -> tuple[Task, np.ndarray | None]:
        outputs = []
        for name in self.output_names:
            symbol = symbols.get(name)
            if symbol is None:
                self.problems.append(f"output {name!r} is not computed from the MLP's last layer")
            else:
                outputs.append(symbol)
        kinds = {s.kind for s in outputs}
        found = [s.classes for s in outputs if s.kind in ("labels", "zipmap") and s.classes is not None]
        for classes in found[1:]:
            if not _same_labels(found[0], classes):
                self.problems.append(f"the outputs disagree on the class labels: {found[0].tolist()} vs {classes.tolist()}")
        if "indicator" in kinds:
            return Task.MULTILABEL, np.arange(width, dtype=np.int64)
        if found or "index" in kinds:
            classes = found[0] if found else np.arange(max(width, 2), dtype=np.int64)
            return (Task.BINARY if len(classes) == 2 else Task.MULTICLASS), classes
        if "probs2" in kinds:
            return Task.BINARY, np.arange(2, dtype=np.int64)
        return (Task.REGRESSION if self.proto.producer_name == "skl2onnx" else Task.RAW), None


# -- small numeric helpers -----------------------------------------------------------


def _append_op(step: _Step, entry: tuple[str, np.ndarray, str], op_type: str) -> None:
    """Add an operation; Min(Max(x, low), high) becomes one clip, as np.clip computes it."""
    previous = step.ops[-1] if step.ops else None
    if op_type == "Min" and previous is not None and previous[0] == "clip" and np.isnan(previous[1][1]):
        step.ops[-1] = ("clip", np.array([previous[1][0], entry[1][1]]), previous[2])
        return
    step.ops.append(entry)


def _squeezed(array: np.ndarray) -> np.ndarray:
    return array.reshape(()) if array.size == 1 else array.reshape(-1)


# probe points for composite activations; the named ones are read by _candidate_activations
_PROBE_POINTS = {"minus50": -50.0, "minus1": -1.0, "zero": 0.0, "one": 1.0, "minus_delta": -0.01, "delta": 0.01}
_PROBE = np.concatenate([np.array(list(_PROBE_POINTS.values())), np.linspace(-6.0, 6.0, 241)])
_AT = {name: index for index, name in enumerate(_PROBE_POINTS)}
_HARD_SIGMOID_MAX_CONSTANTS = 8  # bounds the (alpha, beta) pairs tried on a region: 8 constants give 64


def _snapped(value: float, constants: Sequence[float]) -> float:
    """The graph's own constant when one matches the fitted value (no rounding of ours)."""
    for constant in constants:
        if math.isclose(constant, value, rel_tol=1e-6):
            return constant
    return value


def _candidate_activations(f: np.ndarray, constants: Sequence[float]) -> list[tuple[Activation, dict[str, Any]]]:
    """Every activation the values ``f`` on ``_PROBE`` might be, with fitted parameters."""
    at = {name: float(f[index]) for name, index in _AT.items()}
    gamma = at["one"] or 1.0
    slope = (at["delta"] - at["minus_delta"]) / 0.02
    return [
        (Activation.SILU, {}),
        (Activation.GELU, {"approximate": "none"}),
        (Activation.GELU, {"approximate": "tanh"}),
        (Activation.SOFTPLUS, {}),
        (Activation.LEAKY_RELU, {"alpha": _snapped(-at["minus1"], constants)}),
        (Activation.ELU, {"alpha": _snapped(-at["minus50"], constants)}),
        (Activation.SELU, {"alpha": _snapped(-at["minus50"] / gamma, constants), "gamma": _snapped(gamma, constants)}),
        (Activation.HARD_SIGMOID, {"alpha": _snapped(slope, constants), "beta": _snapped(at["zero"], constants)}),
        *_hard_sigmoid_candidates(f, constants),
    ]


def _hard_sigmoid_candidates(f: np.ndarray, constants: Sequence[float]) -> list[tuple[Activation, dict[str, Any]]]:
    """hard_sigmoid parameters when the probe's centre is saturated (beta outside 0..1, a steep alpha).

    The line alpha * x + beta is fitted on the probe points strictly between
    0 and 1; when fewer than two are, every ordered pair of the region's own
    constants is tried (a steep line can fall between two probe points).
    Each candidate is still confirmed on the whole probe by the caller.
    """
    inside = np.flatnonzero((f > 0) & (f < 1))
    candidates = []
    if len(inside) >= 2:
        first, last = inside[np.argmin(_PROBE[inside])], inside[np.argmax(_PROBE[inside])]
        if _PROBE[last] != _PROBE[first]:
            alpha = (f[last] - f[first]) / (_PROBE[last] - _PROBE[first])
            beta = f[first] - alpha * _PROBE[first]
            candidates.append({"alpha": _snapped(float(alpha), constants), "beta": _snapped(float(beta), constants)})
    distinct = list(dict.fromkeys(constants))[:_HARD_SIGMOID_MAX_CONSTANTS]
    candidates += [{"alpha": a, "beta": b} for a in distinct for b in distinct if a != 0]
    return [(Activation.HARD_SIGMOID, params) for params in candidates]


def _scalar(array: np.ndarray | None) -> TypeGuard[np.ndarray]:
    return array is not None and array.size == 1 and array.dtype.kind in "fiu"


def _is_one(array: np.ndarray | None) -> bool:
    return _scalar(array) and float(array.ravel()[0]) == 1.0


def _is_half(array: np.ndarray | None) -> bool:
    return _scalar(array) and float(array.ravel()[0]) == 0.5


def _is_power_of_two(values: np.ndarray) -> bool:
    """True when multiplying by every value is exact (±2**k)."""
    values = np.asarray(values, dtype=np.float64)
    if values.dtype.kind != "f" or not np.isfinite(values).all() or (values == 0).any():
        return False
    mantissa, _ = np.frexp(values)
    return bool(np.all(np.abs(mantissa) == 0.5))


def _plain(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _zipmap_classes(attrs: dict[str, Any]) -> np.ndarray | None:
    if "classlabels_int64s" in attrs:
        return np.asarray(attrs["classlabels_int64s"], dtype=np.int64)
    if "classlabels_strings" in attrs:
        return np.array([_plain(v) for v in attrs["classlabels_strings"]], dtype=str)
    return None


def _same_labels(a: np.ndarray, b: np.ndarray) -> bool:
    if len(a) != len(b):
        return False
    if a.dtype.kind in "biuf" and b.dtype.kind in "biuf":
        return bool(np.array_equal(a.astype(np.float64), b.astype(np.float64)))
    return bool(np.array_equal(a.astype(str), b.astype(str)))


def _erf(x: np.ndarray) -> np.ndarray:
    try:
        from scipy.special import erf
    except ImportError:  # pragma: no cover - scipy comes with scikit-learn
        return np.vectorize(math.erf, otypes=[np.float64])(x)
    return erf(x)


_ELEMENTWISE: dict[str, Callable[..., np.ndarray]] = {
    "Mul": np.multiply,
    "Add": np.add,
    "Sub": np.subtract,
    "Div": np.divide,
    "Pow": np.power,
    "Erf": _erf,
    "Tanh": np.tanh,
    "Sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "Neg": np.negative,
    "Exp": np.exp,
    "Reciprocal": np.reciprocal,
    "Sqrt": np.sqrt,
    "Max": np.maximum,
    "Min": np.minimum,
    "Abs": np.abs,
    "Log": np.log,
}


# -- building the IR -----------------------------------------------------------------


def _build_model(parsed: _Parsed, proto: Any, path: Path) -> Model:
    dtype = parsed.layers[0].weights.dtype
    layers = [_ir_layer(index, layer, dtype, parsed.layers, path) for index, layer in enumerate(parsed.layers)]
    n_features = layers[0].n_inputs
    if parsed.declared_width is not None and parsed.declared_width != n_features:
        raise ReadError(
            f"input {parsed.input_name!r} declares {parsed.declared_width} features but the first layer's weights "
            f"{parsed.layers[0].weight_name!r} have {n_features} rows",
            path=path,
            format=FORMAT,
        )
    steps = [_ir_step(step, dtype, path) for step in parsed.steps]
    try:
        return Model(
            layers=tuple(layers),
            head=Head(parsed.task, parsed.classes),
            input=InputSpec(n_features=n_features, name=parsed.input_name),
            steps=tuple(steps),
            metadata=_foreign_metadata(proto),
        )
    except InvalidModelError as exc:
        raise ReadError(f"the graph does not make a valid MLP: {exc}", path=path, format=FORMAT) from None


def _ir_layer(index: int, layer: _Layer, dtype: np.dtype, layers: Sequence[_Layer], path: Path) -> DenseLayer:
    def fail(what: str, name: str | None, message: str) -> ReadError:
        return ReadError(f"{layer.node} (layer {index}): {what} initializer {name!r} {message}", path=path, format=FORMAT)

    weights = layer.weights
    bias = np.zeros(weights.shape[1], dtype=dtype) if layer.bias is None else layer.bias
    if weights.dtype != dtype or bias.dtype != dtype:
        raise UnsupportedModelError(
            f"{path}: the layers mix dtypes: {layer.node} computes in {weights.dtype}/{bias.dtype} "
            f"but the first layer in {dtype}; the IR computes in one dtype",
        )
    if index > 0 and weights.shape[0] != layers[index - 1].weights.shape[1]:
        raise fail(
            "weight",
            layer.weight_name,
            f"has shape {list(weights.shape)} (as (n_in, n_out)) but the previous layer gives "
            f"{layers[index - 1].weights.shape[1]} values",
        )
    if not np.isfinite(weights).all():
        raise fail("weight", layer.weight_name, "holds non-finite values (NaN or infinity)")
    if not np.isfinite(bias).all():
        raise fail("bias", layer.bias_name, "holds non-finite values (NaN or infinity)")
    return DenseLayer(
        weights=np.ascontiguousarray(weights),
        bias=np.ascontiguousarray(bias),
        activation=layer.activation,
        name=layer.name,
        activation_params=layer.params,
    )


def _ir_step(step: _Step, dtype: np.dtype, path: Path) -> PreprocessStep:
    ops = []
    for op, operand, where in step.ops:
        if op == "clip":
            info = np.finfo(dtype)
            operand = np.where(np.isnan(operand), [info.min, info.max], operand)
        try:
            ops.append(ElementwiseOp(op, np.asarray(operand).astype(dtype)))
        except InvalidModelError as exc:
            raise ReadError(f"{where}: {exc}", path=path, format=FORMAT) from None
    return PreprocessStep(kind=step.kind, ops=tuple(ops), name=step.name)


def _foreign_metadata(proto: Any) -> Metadata:
    properties = {p.key: p.value for p in proto.metadata_props if not p.key.startswith("nnconvert.")}
    producer = proto.producer_name or "unknown"
    # the producer's version is the converter's (skl2onnx 1.20), not the framework's: kept apart
    if proto.producer_version:
        properties["onnx.producer_version"] = proto.producer_version
    properties["onnx.ir_version"] = str(proto.ir_version)
    properties["onnx.opsets"] = ",".join(f"{e.domain or 'ai.onnx'}:{e.version}" for e in proto.opset_import)
    return Metadata(producer=producer, source_framework=_FRAMEWORKS.get(producer, "onnx"), properties=properties)


# -- nnconvert's own description -----------------------------------------------------


def _overlay_description(model: Model, proto: Any, path: Path) -> Model:
    """The model with nnconvert's description laid over it, when it agrees with the graph."""
    props = {p.key: p.value for p in proto.metadata_props}
    text = props.get(DESCRIPTION_KEY)
    if text is None:
        return model
    version = props.get(FORMAT_VERSION_KEY)
    if version != FORMAT_VERSION:
        return _ignored(model, path, f"its format version is {version!r}, this reader knows {FORMAT_VERSION!r}")
    try:
        document = json.loads(text)
    except RecursionError:
        return _ignored(model, path, "it is nested too deeply to be a model description")
    except ValueError as exc:
        return _ignored(model, path, f"it is not valid JSON ({exc})")
    try:
        described = _described_model(document, model, path)
    except (ReadError, InvalidModelError, KeyError, TypeError, ValueError, AttributeError) as exc:
        return _ignored(model, path, str(exc))
    reason = _disagreement(described, model)
    return _ignored(model, path, reason) if reason else described


def _ignored(model: Model, path: Path, reason: str) -> Model:
    warnings.warn(
        f"{path}: the nnconvert description in the file's metadata is ignored because {reason}; "
        "the model is read from the graph alone",
        UserWarning,
        stacklevel=4,
    )
    return model


def _described_model(document: Any, model: Model, path: Path) -> Model:
    """The document's model with every array taken from the graph."""
    arrays: dict[str, np.ndarray] = {}
    for index, layer in enumerate(model.layers):
        arrays[f"layers/{index}/weights"] = layer.weights
        arrays[f"layers/{index}/bias"] = layer.bias
    if len(document.get("layers", [])) != len(model.layers):
        raise ValueError(f"it describes {len(document.get('layers', []))} layers and the graph has {len(model.layers)}")
    graph_ops = [op for step in model.steps for op in step.ops]
    described_ops = [(s, o, op["op"]) for s, step in enumerate(document.get("steps") or []) for o, op in enumerate(step["ops"])]
    if [op for _, _, op in described_ops] != [op.op for op in graph_ops]:
        raise ValueError(
            f"it describes preprocessing {[op for _, _, op in described_ops]} and the graph computes {[op.op for op in graph_ops]}"
        )
    for (s, o, _), op in zip(described_ops, graph_ops, strict=True):
        arrays[f"steps/{s}/ops/{o}"] = op.operand
    return serde.model_from_document(document, lambda _encoded, key: arrays[key], path=path, format=FORMAT)


def _disagreement(described: Model, model: Model) -> str | None:
    if described.n_features != model.n_features:
        return f"it describes {described.n_features} input features and the graph reads {model.n_features}"
    for index, (mine, theirs) in enumerate(zip(described.layers, model.layers, strict=True)):
        if mine.activation != theirs.activation:
            return f"layer {index} is described as {mine.activation.value} but the graph computes {theirs.activation.value}"
        for key, value in theirs.activation_params.items():
            other = mine.activation_params.get(key)
            same = math.isclose(value, other, rel_tol=1e-6) if isinstance(value, float) and isinstance(other, float) else value == other
            if not same:
                return f"layer {index}'s {key} is described as {other!r} but the graph uses {value!r}"
    if model.classes is not None and described.classes is not None and not _same_labels(model.classes, described.classes):
        return f"it describes classes {described.classes.tolist()} and the graph's are {model.classes.tolist()}"
    if model.head.is_classifier and not described.head.is_classifier:
        return f"it describes a {described.task.value} model and the graph is a {model.task.value} classifier"
    return None
