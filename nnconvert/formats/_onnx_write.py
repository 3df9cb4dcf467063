"""The ONNX writer: the IR as a pure ai.onnx graph at a chosen opset.

Graph layout (docs: DESIGN.md, "ONNX as written by nnconvert"):

- input ``X`` ``[N, n_features]`` (symbolic batch dimension ``N``);
- one node per preprocessing operation (Sub/Div/Mul/Add with constant
  operands; Clip, or Max+Min where onnxruntime has no Clip kernel);
- one Gemm per dense layer (``transB=0``: the IR's ``(n_in, n_out)`` weights
  are stored as they are), or MatMul+Add with ``linear="matmul"``; then the
  activation;
- classifiers: ``output_label`` and ``output_probability`` as skl2onnx names
  them; regressors and raw models: ``variable``.

Initializers are named by the IR document's keys (``layers/0/weights``,
``layers/0/bias``, ``steps/0/ops/1/operand``, ``steps/0/ops/2/low|high`` for a
clip), so a reader can find each array by name. ``metadata_props`` carries the
IR document without arrays under ``nnconvert.model``.

Where onnxruntime's CPU provider has no float64 kernel for an operator
(LeakyRelu, Elu, Selu, Softplus, HardSigmoid; Clip before opset 13), a float64
graph composes it from operators it does have, with the same arithmetic as the
IR's numpy code. Exact GELU needs Erf, which onnxruntime only runs in float32:
a float64 graph with it is valid ONNX but runs only elsewhere (e.g.
``onnx.reference``).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidModelError, UnsupportedModelError, UsageError, WriteError
from ..ir import Activation, DenseLayer, Model, PreprocessStep, Task, layer_names
from ..serde import json_default, model_to_document

__all__ = [
    "DEFAULT_OPSET",
    "MIN_OPSET",
    "WRITE_OPTIONS",
    "FORMAT_VERSION",
    "max_opset",
    "build_model_proto",
    "write_onnx",
]

# Opset 15 is the default because every runtime in common use runs it:
# onnxruntime >= 1.10, TensorRT 8.x, OpenVINO 2022+, onnxruntime-web, and
# skl2onnx's own recent defaults; nothing an MLP needs changed after it.
DEFAULT_OPSET = 15
MIN_OPSET = 9
# onnxruntime >= 1.16 (the oldest this package accepts) runs opsets up to 19:
# only higher opsets need a probe of the installed onnxruntime.
ORT_GUARANTEED_OPSET = 19
FORMAT_VERSION = "1"
ML_DOMAIN = "ai.onnx.ml"
ML_OPSET = 1  # ZipMap has not changed since ai.onnx.ml 1

# protobuf cannot serialize a message of 2 GiB or more; leave room for the graph.
EXTERNAL_DATA_THRESHOLD = 2**31 - 2**24
CHECK_SIZE_LIMIT = 100 * 2**20  # the checker runs by default below this size
EXTERNAL_MIN_TENSOR_BYTES = 1024  # smaller tensors stay inside the model file
EXTERNAL_ALIGNMENT = 4096  # lets runtimes memory-map each tensor
SIDECAR_DIGEST_CHARS = 16  # hex digits of the sidecar's sha256 in its name: 64 bits
# A model with external data keeps only tensors < 1 KiB inline: an old file
# larger than this holds its weights itself and is not parsed for sidecars.
OLD_MODEL_SCAN_LIMIT = 64 * 2**20

WRITE_OPTIONS = ("opset", "dtype", "linear", "zipmap", "external_data", "check")
DTYPES: dict[str, np.dtype[Any]] = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}
LINEAR_FORMS = ("gemm", "matmul")


# -- options ---------------------------------------------------------------------


@dataclass(frozen=True)
class WriteOptions:
    """The writer's options, validated.

    Attributes:
        opset: the ai.onnx opset (9 to :func:`max_opset`).
        dtype: float32 or float64: the type of X, of every weight and output.
        linear: "gemm" (one Gemm per layer) or "matmul" (MatMul then Add).
        zipmap: add an ai.onnx.ml ZipMap so output_probability is a list of maps.
        external_data: True forces weights into a ``<file>.data`` sidecar, None decides by size.
        check: run onnx.checker (full_check) on the result; None: only below 100 MB.
    """

    opset: int = DEFAULT_OPSET
    dtype: np.dtype = DTYPES["float32"]
    linear: str = "gemm"
    zipmap: bool = False
    external_data: bool | None = None
    check: bool | None = None


def _as_bool(name: str, value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise UsageError(f"ONNX writer option {name} must be true or false, got {value!r}")


def _as_opset(value: Any) -> int:
    try:
        opset = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"ONNX writer option opset must be an integer, got {value!r}") from None
    if isinstance(value, float) and value != opset:
        raise UsageError(f"ONNX writer option opset must be an integer, got {value!r}")
    highest = max_opset() if opset > ORT_GUARANTEED_OPSET else ORT_GUARANTEED_OPSET
    if not MIN_OPSET <= opset <= highest:
        raise UsageError(
            f"ONNX opset {opset} is not supported: choose one from {MIN_OPSET} to {max_opset()} "
            "(the newest both the installed onnx and onnxruntime know)"
        )
    return opset


def parse_options(options: Mapping[str, Any]) -> WriteOptions:
    """Validate the writer's keyword options.

    Raises:
        UsageError: an unknown option or a bad value.
    """
    unknown = sorted(set(options) - set(WRITE_OPTIONS))
    if unknown:
        raise UsageError(f"the ONNX writer does not take option(s) {', '.join(unknown)}; it takes: {', '.join(WRITE_OPTIONS)}")
    dtype_name = str(options.get("dtype") or "float32")
    if dtype_name not in DTYPES:
        raise UsageError(f"ONNX writer option dtype must be one of {', '.join(DTYPES)}, got {dtype_name!r}")
    linear = str(options.get("linear") or "gemm").lower()
    if linear not in LINEAR_FORMS:
        raise UsageError(f"ONNX writer option linear must be one of {', '.join(LINEAR_FORMS)}, got {linear!r}")
    opset = options.get("opset")
    return WriteOptions(
        opset=DEFAULT_OPSET if opset is None else _as_opset(opset),
        dtype=DTYPES[dtype_name],
        linear=linear,
        zipmap=bool(_as_bool("zipmap", options.get("zipmap"))),
        external_data=_as_bool("external_data", options.get("external_data")),
        check=_as_bool("check", options.get("check")),
    )


# -- opsets and IR versions ----------------------------------------------------------


@lru_cache(maxsize=1)
def max_opset() -> int:
    """The newest ai.onnx opset both the installed onnx and onnxruntime support.

    onnxruntime's limit is found by loading a one-node model at decreasing
    opsets (a few milliseconds); without onnxruntime only onnx's limit counts.
    """
    import onnx

    onnx_max = int(onnx.defs.onnx_opset_version())
    ort_max = _onnxruntime_max_opset(onnx_max)
    return onnx_max if ort_max is None else min(onnx_max, ort_max)


def _onnxruntime_max_opset(upper: int) -> int | None:
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    try:
        import onnxruntime
    except Exception:  # noqa: BLE001 - a broken onnxruntime must not break writing
        return None
    for opset in range(upper, ORT_GUARANTEED_OPSET, -1):
        if _onnxruntime_loads(onnxruntime, opset):
            return opset
    return ORT_GUARANTEED_OPSET


def _onnxruntime_loads(onnxruntime: Any, opset: int) -> bool:
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info("X", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Relu", ["X"], ["Y"])], "probe", [value], [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1])])
    imports = [helper.make_opsetid("", opset)]
    probe = helper.make_model(graph, opset_imports=imports, ir_version=_ir_version(imports))
    session_options = onnxruntime.SessionOptions()
    session_options.log_severity_level = 4  # the probe's refusals are expected, not news
    try:
        onnxruntime.InferenceSession(probe.SerializeToString(), session_options, providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - any refusal means "not this opset"
        return False
    return True


def _ir_version(opset_imports: list[Any]) -> int:
    """The oldest IR version that allows these opsets: what every runtime of that era accepts."""
    from onnx import helper

    try:
        return max(4, int(helper.find_min_ir_version_for(opset_imports)))
    except (ValueError, KeyError):  # an onnx too old to know the pair: its own IR version
        import onnx

        return int(onnx.IR_VERSION)


# -- graph construction ---------------------------------------------------------------


class GraphBuilder:
    """Accumulates nodes and initializers with unique, deterministic names."""

    def __init__(self, dtype: np.dtype, opset: int):
        from onnx import helper

        self.dtype = dtype
        self.elem_type = helper.np_dtype_to_tensor_dtype(dtype)
        self.opset = opset
        self.nodes: list[Any] = []
        self.initializers: list[tuple[str, np.ndarray, np.dtype]] = []
        self._names: set[str] = {"X"}

    def _unique(self, name: str) -> str:
        candidate, index = name, 1
        while candidate in self._names:
            candidate = f"{name}_{index}"
            index += 1
        self._names.add(candidate)
        return candidate

    def initializer(self, name: str, values: Any, *, cast: bool = True) -> str:
        """A constant; float arrays are stored in the graph's dtype unless ``cast`` is False.

        The array itself is kept as given (a view of the model's weights): the
        cast happens chunk by chunk while the file is written (:class:`_Payload`).
        """
        array = np.asarray(values)
        if array.dtype.kind == "U":
            array = array.astype(object)
        dtype = array.dtype
        if array.dtype.kind == "f" and cast:
            dtype = self.dtype
            array = array.reshape(1) if array.ndim == 0 else array  # scalars are stored as [1], as ever
        name = self._unique(name)
        self.initializers.append((name, array, dtype))
        return name

    def scalar(self, name: str, value: float) -> str:
        return self.initializer(name, np.array(value, dtype=self.dtype))

    def node(self, op_type: str, inputs: list[str], prefix: str, *, domain: str = "", **attributes: Any) -> str:
        """Add one node; returns its (single) output's name."""
        from onnx import helper

        output = self._unique(f"{prefix}/{op_type}")
        self.nodes.append(
            helper.make_node(op_type, inputs, [output], name=output, domain=domain or None, **attributes)
        )
        return output

    def rename_output(self, old: str, new: str) -> None:
        """Give the last node's output a graph output's name (nothing consumes it yet)."""
        node = self.nodes[-1]
        if node.output[0] != old or new in self._names:
            raise AssertionError(f"cannot rename {old!r} to {new!r}")  # pragma: no cover - a writer bug
        node.output[0] = new
        self._names.add(new)


# -- preprocessing ------------------------------------------------------------------

_ARITHMETIC = {"sub": "Sub", "div": "Div", "mul": "Mul", "add": "Add"}


def _preprocess(b: GraphBuilder, x: str, step: PreprocessStep, index: int) -> str:
    for o, op in enumerate(step.ops):
        key = f"steps/{index}/ops/{o}"
        if op.op == "clip":
            x = _clip(b, x, float(op.operand[0]), float(op.operand[1]), key)
        else:
            operand = b.initializer(f"{key}/operand", op.operand)
            x = b.node(_ARITHMETIC[op.op], [x, operand], key)
    return x


def _clip(b: GraphBuilder, x: str, low: float, high: float, key: str) -> str:
    """np.clip(x, low, high) with the operators onnxruntime runs for this dtype and opset."""
    if b.dtype == np.float32 and b.opset < 11:
        return b.node("Clip", [x], key, min=low, max=high)
    if b.opset >= 13 or (b.dtype == np.float32 and b.opset >= 11):
        return b.node("Clip", [x, b.scalar(f"{key}/low", low), b.scalar(f"{key}/high", high)], key)
    # onnxruntime has no float64 Clip before opset 13 (and Clip-6's bounds are float32)
    lower = b.node("Max", [x, b.scalar(f"{key}/low", low)], key)
    return b.node("Min", [lower, b.scalar(f"{key}/high", high)], key)


# -- dense layers and activations ------------------------------------------------------


def _dense(b: GraphBuilder, x: str, layer: DenseLayer, index: int, linear: str) -> str:
    prefix = f"layers/{index}"
    weights = b.initializer(f"{prefix}/weights", layer.weights)
    bias = b.initializer(f"{prefix}/bias", layer.bias)
    if linear == "gemm":
        y = b.node("Gemm", [x, weights, bias], prefix)
    else:
        y = b.node("Add", [b.node("MatMul", [x, weights], prefix), bias], prefix)
    return _activation(b, y, layer, prefix)


def _activation(b: GraphBuilder, x: str, layer: DenseLayer, prefix: str) -> str:
    activation = layer.activation
    params = layer.activation_params
    if activation == Activation.IDENTITY:
        return x
    simple = {
        Activation.RELU: "Relu",
        Activation.TANH: "Tanh",
        Activation.LOGISTIC: "Sigmoid",
        Activation.EXP: "Exp",
    }
    if activation in simple:
        return b.node(simple[activation], [x], prefix)
    if activation == Activation.SOFTMAX:
        # opsets < 13 flatten to 2-D around the axis: the same thing for [N, k]
        return b.node("Softmax", [x], prefix, axis=1)
    native = b.dtype == np.float32  # onnxruntime lacks float64 kernels for the ones below
    return _COMPOSITE[activation](b, x, params, prefix, native)


def _leaky_relu(b: GraphBuilder, x: str, params: Mapping[str, Any], prefix: str, native: bool) -> str:
    if native:
        return b.node("LeakyRelu", [x], prefix, alpha=params["alpha"])
    zero = b.scalar(f"{prefix}/zero", 0.0)
    negative = b.node("Mul", [b.node("Min", [x, zero], prefix), b.scalar(f"{prefix}/alpha", params["alpha"])], prefix)
    return b.node("Add", [b.node("Max", [x, zero], prefix), negative], prefix)


def _elu_composed(b: GraphBuilder, x: str, alpha: float, prefix: str) -> str:
    # max(x, 0) + alpha * (exp(min(x, 0)) - 1): exactly x for x > 0, as the IR's where()
    zero = b.scalar(f"{prefix}/zero", 0.0)
    expm1 = b.node("Sub", [b.node("Exp", [b.node("Min", [x, zero], prefix)], prefix), b.scalar(f"{prefix}/one", 1.0)], prefix)
    negative = b.node("Mul", [b.scalar(f"{prefix}/alpha", alpha), expm1], prefix)
    return b.node("Add", [b.node("Max", [x, zero], prefix), negative], prefix)


def _elu(b: GraphBuilder, x: str, params: Mapping[str, Any], prefix: str, native: bool) -> str:
    if native:
        return b.node("Elu", [x], prefix, alpha=params["alpha"])
    return _elu_composed(b, x, params["alpha"], prefix)


def _selu(b: GraphBuilder, x: str, params: Mapping[str, Any], prefix: str, native: bool) -> str:
    if native:
        return b.node("Selu", [x], prefix, alpha=params["alpha"], gamma=params["gamma"])
    elu = _elu_composed(b, x, params["alpha"], prefix)
    return b.node("Mul", [b.scalar(f"{prefix}/gamma", params["gamma"]), elu], prefix)


def _softplus(b: GraphBuilder, x: str, params: Mapping[str, Any], prefix: str, native: bool) -> str:
    if native:
        return b.node("Softplus", [x], prefix)
    # max(x, 0) + log(1 + exp(-|x|)): no overflow, as numpy's logaddexp(x, 0)
    tail = b.node("Exp", [b.node("Neg", [b.node("Abs", [x], prefix)], prefix)], prefix)
    log = b.node("Log", [b.node("Add", [b.scalar(f"{prefix}/one", 1.0), tail], prefix)], prefix)
    return b.node("Add", [b.node("Max", [x, b.scalar(f"{prefix}/zero", 0.0)], prefix), log], prefix)


def _hard_sigmoid(b: GraphBuilder, x: str, params: Mapping[str, Any], prefix: str, native: bool) -> str:
    if native:
        return b.node("HardSigmoid", [x], prefix, alpha=params["alpha"], beta=params["beta"])
    scaled = b.node("Mul", [x, b.scalar(f"{prefix}/alpha", params["alpha"])], prefix)
    shifted = b.node("Add", [scaled, b.scalar(f"{prefix}/beta", params["beta"])], prefix)
    lower = b.node("Max", [shifted, b.scalar(f"{prefix}/zero", 0.0)], prefix)
    return b.node("Min", [lower, b.scalar(f"{prefix}/one", 1.0)], prefix)


def _silu(b: GraphBuilder, x: str, params: Mapping[str, Any], prefix: str, native: bool) -> str:
    return b.node("Mul", [x, b.node("Sigmoid", [x], prefix)], prefix)


def _gelu(b: GraphBuilder, x: str, params: Mapping[str, Any], prefix: str, native: bool) -> str:
    approximate = params["approximate"]
    if b.opset >= 20 and native:  # onnxruntime's float64 Gelu is computed less precisely
        return b.node("Gelu", [x], prefix, approximate=approximate)
    half_x = b.node("Mul", [b.scalar(f"{prefix}/half", 0.5), x], prefix)
    if approximate == "tanh":
        cube = b.node("Mul", [x, b.node("Mul", [x, x], prefix)], prefix)
        inner = b.node("Add", [x, b.node("Mul", [b.scalar(f"{prefix}/coef", 0.044715), cube], prefix)], prefix)
        inner = b.node("Mul", [b.scalar(f"{prefix}/sqrt_2_over_pi", math.sqrt(2 / math.pi)), inner], prefix)
        core = b.node("Tanh", [inner], prefix)
    else:
        core = b.node("Erf", [b.node("Div", [x, b.scalar(f"{prefix}/sqrt2", math.sqrt(2))], prefix)], prefix)
    return b.node("Mul", [half_x, b.node("Add", [b.scalar(f"{prefix}/one", 1.0), core], prefix)], prefix)


_COMPOSITE: dict[Activation, Callable[..., str]] = {
    Activation.LEAKY_RELU: _leaky_relu,
    Activation.ELU: _elu,
    Activation.SELU: _selu,
    Activation.SOFTPLUS: _softplus,
    Activation.HARD_SIGMOID: _hard_sigmoid,
    Activation.SILU: _silu,
    Activation.GELU: _gelu,
}

# The first ai.onnx opset where each activation (or everything composing it) exists.
ACTIVATION_MIN_OPSET = {activation: 6 for activation in Activation} | {Activation.GELU: 9}


def unsupported_layers(model: Model, opset: int) -> list[str]:
    """Every layer whose activation cannot be written at ``opset`` (empty when all can)."""
    names = layer_names(model.layers)
    return [
        f"layer {i} ({names[i]!r}): activation {layer.activation.value} needs opset {ACTIVATION_MIN_OPSET[layer.activation]} or newer"
        for i, layer in enumerate(model.layers)
        if ACTIVATION_MIN_OPSET[layer.activation] > opset
    ]


# -- head --------------------------------------------------------------------------------


def label_tensor(classes: np.ndarray) -> np.ndarray:
    """The class labels as ONNX can hold them: int64 for ints, bools and integral floats, else strings/floats.

    Raises:
        UnsupportedModelError: an integer label does not fit int64.
    """
    kind = classes.dtype.kind
    if kind == "U":
        return classes.astype(object)
    if kind == "b":
        return classes.astype(np.int64)
    if kind in "iu":
        if classes.size and (int(classes.max()) > np.iinfo(np.int64).max):
            raise UnsupportedModelError(f"class label {int(classes.max())} does not fit the int64 labels of ONNX")
        return classes.astype(np.int64)
    limit = float(2**53)
    if np.all(np.mod(classes, 1) == 0) and np.all(np.abs(classes) <= limit):
        return classes.astype(np.int64)
    return np.asarray(classes)


def _value_info(name: str, elem_type: int, shape: list[Any]) -> Any:
    from onnx import helper

    return helper.make_tensor_value_info(name, elem_type, shape)


def _classifier_head(b: GraphBuilder, y: str, model: Model, zipmap: bool) -> list[Any]:
    from onnx import TensorProto, helper

    classes = model.classes
    if classes is None:  # Head already refuses a classifier without labels
        raise InvalidModelError(f"a {model.task.value} head needs class labels")
    n_classes = len(classes)
    if model.task == Task.BINARY and model.n_outputs == 1:
        # [1 - p, p], as scikit-learn's predict_proba
        negative = b.node("Sub", [b.scalar("head/one", 1.0), y], "head")
        y = b.node("Concat", [negative, y], "head", axis=1)
    probabilities = "probabilities" if zipmap else "output_probability"
    b.rename_output(y, probabilities)
    if model.task == Task.MULTILABEL:
        above = b.node("Greater", [probabilities, b.scalar("head/threshold", 0.5)], "head")
        b.node("Cast", [above], "head", to=TensorProto.INT64)
        b.rename_output(b.nodes[-1].output[0], "output_label")
        label_info = _value_info("output_label", TensorProto.INT64, ["N", n_classes])
    else:
        labels = label_tensor(classes)
        index = b.node("ArgMax", [probabilities], "head", axis=1, keepdims=0)
        if not _labels_are_indices(classes, labels):
            b.node("Gather", [b.initializer("head/classes", labels, cast=False), index], "head", axis=0)
        b.rename_output(b.nodes[-1].output[0], "output_label")
        label_info = _value_info("output_label", helper.np_dtype_to_tensor_dtype(_label_dtype(labels)), ["N"])
    if not zipmap:
        return [label_info, _value_info("output_probability", b.elem_type, ["N", n_classes])]
    return [label_info, _zipmap(b, probabilities, classes)]


def _labels_are_indices(classes: np.ndarray, labels: np.ndarray) -> bool:
    """Integer labels 0..n-1: ArgMax's int64 output already is the label, a Gather would only copy it.

    Dropping that Gather saves a kernel per run (about 10% of a small
    model's batch-1024 time in onnxruntime); the outputs are identical.
    """
    return classes.dtype.kind in "iu" and labels.dtype == np.int64 and np.array_equal(labels, np.arange(len(labels)))


def _label_dtype(labels: np.ndarray) -> np.dtype:
    return np.dtype(str) if labels.dtype == object else labels.dtype


def _zipmap(b: GraphBuilder, probabilities: str, classes: np.ndarray) -> Any:
    from onnx import TensorProto, helper

    keys = label_tensor(classes)
    attributes: dict[str, Any]
    if keys.dtype == object:
        attributes = {"classlabels_strings": [str(k) for k in keys]}
        key_type = TensorProto.STRING
    elif keys.dtype == np.int64:
        attributes = {"classlabels_int64s": [int(k) for k in keys]}
        key_type = TensorProto.INT64
    else:
        raise UnsupportedModelError(
            f"zipmap=True needs integer or string class labels; this model's are non-integral floats "
            f"{classes.tolist()}: write it without zipmap"
        )
    if b.dtype != np.float32:  # ZipMap takes float32 only
        probabilities = b.node("Cast", [probabilities], "head", to=TensorProto.FLOAT)
    b.nodes.append(helper.make_node("ZipMap", [probabilities], ["output_probability"], name="head/ZipMap", domain=ML_DOMAIN, **attributes))
    map_type = helper.make_map_type_proto(key_type, helper.make_tensor_type_proto(TensorProto.FLOAT, None))
    return helper.make_value_info("output_probability", helper.make_sequence_type_proto(map_type))


# -- the model ----------------------------------------------------------------------------


def _metadata_props(model: Model, options: WriteOptions) -> dict[str, str]:
    document = model_to_document(model, lambda array, key: None, dtype=options.dtype)
    sizes = [model.n_features] + [layer.n_outputs for layer in model.layers]
    props = {
        "nnconvert.model": json.dumps(document, sort_keys=True, default=json_default),
        "nnconvert.format_version": FORMAT_VERSION,
        "task": model.task.value,
        "n_features": str(model.n_features),
        "layers": "-".join(str(size) for size in sizes),
        "activations": ",".join(layer.activation.value for layer in model.layers),
        "dtype": options.dtype.name,
        "source_dtype": model.metadata.source_dtype or model.dtype.name,
    }
    if model.classes is not None:
        props["classes"] = json.dumps(model.classes.tolist(), default=json_default)
        props["classes_dtype"] = "str" if model.classes.dtype.kind == "U" else model.classes.dtype.name
    source = [model.metadata.source_framework, model.metadata.source_class, model.metadata.source_version]
    if any(source):
        props["source"] = " ".join(part for part in source if part)
    return props


def _doc_string(model: Model) -> str:
    sizes = "-".join(str(size) for size in [model.n_features] + [layer.n_outputs for layer in model.layers])
    activations = ", ".join(layer.activation.value for layer in model.layers)
    return f"{model.task.value} MLP {sizes} ({activations}) written by nnconvert"


def build_model_proto(model: Model, options: WriteOptions) -> Any:
    """The ONNX ModelProto of ``model`` (weights inline, as raw little-endian bytes).

    Raises:
        UnsupportedModelError: an activation or the labels cannot be expressed at these options.
    """
    proto, payloads = _build_skeleton(model, options)
    for tensor, payload in zip(proto.graph.initializer, payloads, strict=True):
        if payload is not None:
            tensor.raw_data = payload.tobytes()
    return proto


# Bytes cast and written at a time: small enough to stay in cache, large enough
# that the per-call cost vanishes.
_CHUNK_BYTES = 1 << 22


class _Payload:
    """A numeric tensor's values, cast to the file's little-endian dtype only as they are written.

    Writing chunk by chunk means a float64 model saved as float32 never holds a
    second, full-size copy of its weights, and a model already in the file's
    dtype is written straight from its own memory.
    """

    __slots__ = ("array", "dtype")

    def __init__(self, array: np.ndarray, dtype: np.dtype):
        self.dtype = dtype.newbyteorder("<")
        # the rare non-C-ordered array is copied once, in the (usually smaller) target dtype
        self.array = array if array.flags.c_contiguous else np.ascontiguousarray(array, dtype=self.dtype)

    @property
    def nbytes(self) -> int:
        return self.array.size * self.dtype.itemsize

    def chunks(self) -> Any:
        """The raw little-endian bytes, as uint8 arrays of at most ``_CHUNK_BYTES``."""
        flat = self.array.reshape(-1)
        step = max(1, _CHUNK_BYTES // self.dtype.itemsize)
        for start in range(0, flat.size, step):
            yield flat[start : start + step].astype(self.dtype, copy=False).view(np.uint8)

    def write_to(self, handle: Any) -> None:
        for chunk in self.chunks():
            handle.write(chunk)

    def tobytes(self) -> bytes:
        return np.ascontiguousarray(self.array, dtype=self.dtype).tobytes()


def _build_skeleton(model: Model, options: WriteOptions) -> tuple[Any, list[_Payload | None]]:
    """The ModelProto with numeric initializers still empty, and their arrays in initializer order.

    Keeping the weights out of the protobuf message lets the file writer send
    them from numpy straight to the file, without two more copies.
    """
    from onnx import helper

    from .. import __version__

    problems = unsupported_layers(model, options.opset)
    if problems:
        raise UnsupportedModelError(f"the model cannot be written as ONNX opset {options.opset}", problems)
    b = GraphBuilder(options.dtype, options.opset)
    x = "X"
    for index, step in enumerate(model.steps):
        x = _preprocess(b, x, step, index)
    for index, layer in enumerate(model.layers):
        x = _dense(b, x, layer, index, options.linear)
    if model.head.is_classifier:
        outputs = _classifier_head(b, x, model, options.zipmap)
    else:
        b.rename_output(x, "variable")
        outputs = [_value_info("variable", b.elem_type, ["N", model.n_outputs])]
    inputs = [_value_info("X", b.elem_type, ["N", model.n_features])]
    graph = helper.make_graph(b.nodes, "nnconvert_mlp", inputs, outputs)
    opset_imports = [helper.make_opsetid("", options.opset)]
    if options.zipmap and model.head.is_classifier:
        opset_imports.append(helper.make_opsetid(ML_DOMAIN, ML_OPSET))
    proto = helper.make_model(graph, opset_imports=opset_imports, ir_version=_ir_version(opset_imports))
    proto.producer_name = "nnconvert"
    proto.producer_version = __version__
    proto.doc_string = _doc_string(model)
    helper.set_model_props(proto, _metadata_props(model, options))
    return proto, _add_initializers(proto.graph, b.initializers)


def _add_initializers(graph: Any, initializers: list[tuple[str, np.ndarray, np.dtype]]) -> list[_Payload | None]:
    """Describe each tensor in place; return the numeric ones' payloads (None for strings)."""
    from onnx import helper, numpy_helper

    payloads: list[_Payload | None] = []
    for name, array, dtype in initializers:
        tensor = graph.initializer.add()
        if array.dtype == object:
            tensor.CopyFrom(numpy_helper.from_array(array, name))
            payloads.append(None)
            continue
        tensor.name = name
        tensor.data_type = helper.np_dtype_to_tensor_dtype(dtype)
        tensor.dims.extend(array.shape)
        # ONNX raw data is little-endian whatever the machine
        payloads.append(_Payload(array, dtype))
    return payloads


# -- files -----------------------------------------------------------------------------------


def _payload_bytes(model: Model, dtype: np.dtype) -> int:
    """The size of every weight once cast: what decides external data and checking."""
    operands = sum(op.operand.size for step in model.steps for op in step.ops)
    return (model.n_parameters + operands) * dtype.itemsize


def _check(path: Path) -> None:
    import onnx

    try:
        # by path, so that the checker also follows external data
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # noqa: BLE001 - a checker failure is a writer bug, reported as such
        raise WriteError(f"the ONNX graph nnconvert built fails onnx.checker ({type(exc).__name__}: {exc}); please report this") from exc


def write_onnx(model: Model, path: str | os.PathLike[str], *, final_path: str | os.PathLike[str] | None = None, **options: Any) -> None:
    """Write ``model`` as an ONNX file.

    Args:
        model: the model graph.
        path: the file to write (api.save passes a temporary file beside the target).
        final_path: the name the file will end up with; names the external-data sidecar.
        **options: see :class:`WriteOptions`.

    Raises:
        UsageError: a bad option.
        UnsupportedModelError: the model cannot be expressed at these options.
        WriteError: the file could not be written, or the built graph failed the checker.
    """
    settings = parse_options(options)
    path = Path(path)
    final = Path(final_path) if final_path is not None else path
    size = _payload_bytes(model, settings.dtype)
    external = settings.external_data if settings.external_data is not None else size >= EXTERNAL_DATA_THRESHOLD
    check = settings.check if settings.check is not None else size < CHECK_SIZE_LIMIT
    proto, payloads = _build_skeleton(model, settings)
    old_sidecars = _referenced_sidecars(final)  # before ``path`` (maybe ``final`` itself) is written
    sidecar = _write_external(proto, payloads, path, final, check) if external else None
    if not external:
        with open(path, "wb") as handle:
            _stream_model(proto, payloads, handle)
        if check:
            _check(path)
    _retire(old_sidecars - {sidecar}, path, final)


def sidecar_name(final_name: str, digest: str) -> str:
    """The external-data file of the model ``final_name`` whose tensor bytes hash to ``digest``."""
    return f"{final_name}.{digest[:SIDECAR_DIGEST_CHARS]}.data"


def _write_external(proto: Any, payloads: list[_Payload | None], path: Path, final: Path, check: bool) -> Path | None:
    """Large tensors into a sidecar ``<final name>.<content hash>.data`` beside the model; returns it.

    Why a content-addressed name: the sidecar must be in place before the
    model that names it, and the file being replaced must stay valid until
    the one ``os.replace`` that commits the new model (``api.save``). A new
    name means writing the new sidecar never touches the old model's
    sidecar; the hash makes the name (and so the model's bytes)
    deterministic, and when it equals the old sidecar's name the content is
    the same, so replacing that file is harmless. The order is:

    1. tensors to a temporary file (hashed as written), fsynced;
    2. renamed to its content name, folder fsynced (the old model still
       reads its own sidecar, untouched);
    3. the model naming that sidecar written to ``path`` and checked: the
       checker sees the exact bytes that will be committed;
    4. ``api.save`` replaces the target. If anything fails up to there, the
       new sidecar is removed (unless that name existed before); once the
       replace succeeds, the sidecars the replaced model referred to and the
       new one does not are removed (see :func:`_retire`).

    A crash between 2 and 4 leaves an unreferenced sidecar behind, never a
    model without its data.
    """
    fd, temp_name = tempfile.mkstemp(prefix=f".{final.name}.data.", suffix=".part", dir=path.parent)
    temp_data = Path(temp_name)
    created: Path | None = None
    try:
        with os.fdopen(fd, "wb") as raw:
            handle = _HashingFile(raw)
            moved = _externalize(proto, payloads, handle, temp_data.name)
            raw.flush()
            os.fsync(raw.fileno())
        if not moved:  # every tensor is small: there is nothing to put aside
            temp_data.unlink()
            sidecar = None
        else:
            sidecar, created = _place_sidecar(temp_data, final, handle.hexdigest(), path)
            for tensor in moved:
                for entry in tensor.external_data:
                    if entry.key == "location":
                        entry.value = sidecar.name
        with open(path, "wb") as model_file:
            _stream_model(proto, payloads, model_file)
        if check:
            _check(path)
        return sidecar
    except BaseException:
        for leftover in [temp_data] + ([created] if created is not None else []):
            with contextlib.suppress(OSError):
                leftover.unlink()
        raise


def _place_sidecar(temp_data: Path, final: Path, digest: str, path: Path) -> tuple[Path, Path | None]:
    """Rename the finished sidecar to its content name; returns it, and it again when it is new."""
    from .._atomic import fsync_directory, pending_output, publish_mode

    sidecar = final.with_name(sidecar_name(final.name, digest))
    existed = sidecar.exists()  # same name, same bytes: it may be the old model's, so it must stay
    publish_mode(temp_data, final)
    os.replace(temp_data, sidecar)
    fsync_directory(sidecar.parent)  # the sidecar's name is durable before any model names it
    if existed:
        return sidecar, None
    output = pending_output(path)
    if output is not None:  # the commit may still fail after this writer returns
        output.discard_on_failure.append(sidecar)
    return sidecar, sidecar


def _referenced_sidecars(final: Path) -> set[Path]:
    """The sidecars nnconvert named for ``final`` that the file now at ``final`` refers to.

    Only files named as this writer names them (``<final>.data`` of older
    versions, ``<final>.<hash>.data``) and actually referenced by the old
    model are candidates for removal: nothing else in the folder is touched.
    An old file that is not readable ONNX, or too large to be a model with
    external data, refers to nothing (a stale sidecar stays; never a lost one).
    """
    pattern = re.compile(re.escape(final.name) + rf"(\.[0-9a-f]{{{SIDECAR_DIGEST_CHARS}}})?\.data")
    try:
        if not final.is_file() or final.stat().st_size > OLD_MODEL_SCAN_LIMIT:
            return set()
        ours = {entry.name for entry in final.parent.iterdir() if pattern.fullmatch(entry.name)}
    except OSError:
        return set()
    if not ours:
        return set()
    return {final.with_name(name) for name in _external_locations(final) & ours}


def _external_locations(path: Path) -> set[str]:
    import onnx

    try:
        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - not an ONNX model: it refers to nothing
        return set()
    return {entry.value for tensor in proto.graph.initializer for entry in tensor.external_data if entry.key == "location"}


def _retire(sidecars: set[Path], path: Path, final: Path) -> None:
    """Remove the replaced model's sidecars once the new model is committed.

    Under ``api.save`` that is after its ``os.replace``; when ``path`` is the
    final file it is now; otherwise the caller commits later and they stay.
    """
    from .._atomic import pending_output

    output = pending_output(path)
    if output is not None:
        output.retire_after_commit.extend(sorted(sidecars))
    elif path.resolve() == final.resolve():
        for sidecar in sidecars:
            with contextlib.suppress(OSError):
                sidecar.unlink()


class _HashingFile:
    """A binary file that hashes what is written to it (the sidecar's content name)."""

    def __init__(self, handle: Any):
        self.handle = handle
        self.digest = hashlib.sha256()

    def write(self, data: Any) -> int:
        self.digest.update(data)
        return self.handle.write(data)

    def tell(self) -> int:
        return self.handle.tell()

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


def _externalize(proto: Any, payloads: list[_Payload | None], handle: Any, location: str) -> list[Any]:
    """Move every large payload into ``handle``; the tensors then point at it."""
    from onnx import TensorProto

    moved = []
    for index, (tensor, payload) in enumerate(zip(proto.graph.initializer, payloads, strict=True)):
        if payload is None or payload.nbytes < EXTERNAL_MIN_TENSOR_BYTES:
            continue
        offset = handle.tell()
        padding = -offset % EXTERNAL_ALIGNMENT
        handle.write(b"\0" * padding)
        payload.write_to(handle)
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", str(offset + padding)), ("length", str(payload.nbytes))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        payloads[index] = None
        moved.append(tensor)
    return moved


# -- protobuf streaming ------------------------------------------------------------------------
# The file is the exact bytes ``SerializeToString`` would give for the model
# with its raw data filled in (fields in number order; raw_data, field 9, is
# the last field nnconvert sets in a tensor), but the weights go from numpy to
# the file without passing through the protobuf message.


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _length_delimited_tag(number: int) -> bytes:
    return _varint(number << 3 | 2)


def _split_fields(message: Any, number: int) -> tuple[bytes, bytes]:
    """``message`` serialized as its fields before ``number`` and its fields after it."""
    before, after = type(message)(), type(message)()
    before.CopyFrom(message)
    after.CopyFrom(message)
    for field, _ in message.ListFields():
        if field.number >= number:
            before.ClearField(field.name)
        if field.number <= number:
            after.ClearField(field.name)
    return before.SerializeToString(), after.SerializeToString()


def _piece_size(piece: bytes | _Payload) -> int:
    return piece.nbytes if isinstance(piece, _Payload) else len(piece)


def _tensor_pieces(tensor: Any, payload: _Payload | None) -> list[bytes | _Payload]:
    skeleton = tensor.SerializeToString()
    if payload is None:
        return [skeleton]
    raw_tag = _length_delimited_tag(tensor.DESCRIPTOR.fields_by_name["raw_data"].number)
    return [skeleton, raw_tag + _varint(payload.nbytes), payload]


def _stream_model(proto: Any, payloads: list[_Payload | None], handle: Any) -> None:
    graph = proto.graph
    initializer_number = graph.DESCRIPTOR.fields_by_name["initializer"].number
    graph_number = proto.DESCRIPTOR.fields_by_name["graph"].number
    graph_before, graph_after = _split_fields(graph, initializer_number)
    pieces: list[bytes | _Payload] = [graph_before]
    for tensor, payload in zip(graph.initializer, payloads, strict=True):
        body = _tensor_pieces(tensor, payload)
        pieces.append(_length_delimited_tag(initializer_number) + _varint(sum(_piece_size(p) for p in body)))
        pieces.extend(body)
    pieces.append(graph_after)
    model_before, model_after = _split_fields(proto, graph_number)
    handle.write(model_before)
    handle.write(_length_delimited_tag(graph_number) + _varint(sum(_piece_size(p) for p in pieces)))
    for piece in pieces:
        if isinstance(piece, _Payload):
            piece.write_to(handle)
        else:
            handle.write(piece)
    handle.write(model_after)
