"""The whole ModelProto: graph, opset imports, nnconvert's metadata; weights kept apart as payloads."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ...errors import UnsupportedModelError
from ...head import classes_dtype_name
from ...ir import Activation, Model, require_supported
from ...serde import json_default, model_to_document
from ._common import DESCRIPTION_KEY, FORMAT_VERSION, FORMAT_VERSION_KEY, ML_DOMAIN
from ._wire import Payload
from ._write_head import classifier_head, value_info
from ._write_kinds import layer_nodes, unsupported_layers
from ._write_layers import ONNX_LAYER_KINDS, GraphBuilder, preprocess
from ._write_options import WriteOptions, ir_version

ML_OPSET = 1  # ZipMap has not changed since ai.onnx.ml 1


def _metadata_props(model: Model, options: WriteOptions) -> dict[str, str]:
    # arrays are named, not stored: the reader takes them from the graph
    document = model_to_document(model, lambda array, key: key, dtype=options.dtype)
    sizes = [model.n_features] + [n_out for _, n_out in model.layer_shapes()]
    props = {
        DESCRIPTION_KEY: json.dumps(document, sort_keys=True, default=json_default),
        FORMAT_VERSION_KEY: FORMAT_VERSION,
        "task": model.task.value,
        "n_features": str(model.n_features),
        "layers": "-".join(str(size) for size in sizes),
        "activations": ",".join(layer.activation.value for layer in model.layers),
        "dtype": options.dtype.name,
        "source_dtype": model.metadata.source_dtype or model.dtype.name,
    }
    if model.classes is not None:
        props["classes"] = json.dumps(model.classes.tolist(), default=json_default)
        props["classes_dtype"] = classes_dtype_name(model.classes)
    source = [model.metadata.source_framework, model.metadata.source_class, model.metadata.source_version]
    if any(source):
        props["source"] = " ".join(part for part in source if part)
    return props


def _doc_string(model: Model) -> str:
    sizes = "-".join(str(size) for size in [model.n_features] + [n_out for _, n_out in model.layer_shapes()])
    activations = ", ".join(layer.activation.value for layer in model.layers)
    return f"{model.task.value} MLP {sizes} ({activations}) written by nnconvert"


def build_skeleton(model: Model, options: WriteOptions) -> tuple[Any, list[Payload | None]]:
    """The ModelProto with numeric initializers still empty, and their arrays in initializer order.

    Keeping the weights out of the protobuf message lets the file writer send
    them from numpy straight to the file, without two more copies.
    """
    from onnx import helper

    from ... import __version__

    require_supported(model, f"ONNX opset {options.opset}", ONNX_LAYER_KINDS)
    problems = unsupported_layers(model, options.opset)
    if problems:
        raise UnsupportedModelError(f"the model cannot be written as ONNX opset {options.opset}", problems)
    b = GraphBuilder(options.dtype, options.opset)
    x = "X"
    for index, step in enumerate(model.steps):
        x = preprocess(b, x, step, index)
    for index, (layer, (n_in, _)) in enumerate(zip(model.layers, model.layer_shapes(), strict=True)):
        x = layer_nodes(b, x, layer, index, options.linear, n_in)
    if model.head.is_classifier and model.output_activation == Activation.LOG_SOFTMAX:
        x = b.node("Exp", [x], "head")  # output_probability holds probabilities, as scikit-learn's predict_proba
    if model.head.is_classifier:
        outputs = classifier_head(b, x, model, options.zipmap)
    else:
        b.rename_output(x, "variable")
        outputs = [value_info("variable", b.elem_type, ["N", model.n_outputs])]
    inputs = [value_info("X", b.elem_type, ["N", model.n_features])]
    graph = helper.make_graph(b.nodes, "nnconvert_mlp", inputs, outputs)
    opset_imports = [helper.make_opsetid("", options.opset)]
    if options.zipmap and model.head.is_classifier:
        opset_imports.append(helper.make_opsetid(ML_DOMAIN, ML_OPSET))
    proto = helper.make_model(graph, opset_imports=opset_imports, ir_version=ir_version(opset_imports))
    proto.producer_name = "nnconvert"
    proto.producer_version = __version__
    proto.doc_string = _doc_string(model)
    helper.set_model_props(proto, _metadata_props(model, options))
    return proto, _add_initializers(proto.graph, b.initializers)


def _add_initializers(graph: Any, initializers: list[tuple[str, np.ndarray, np.dtype]]) -> list[Payload | None]:
    """Describe each tensor in place; return the numeric ones' payloads (None for strings)."""
    from onnx import helper, numpy_helper

    payloads: list[Payload | None] = []
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
        payloads.append(Payload(array, dtype))
    return payloads


def build_model_proto(model: Model, options: WriteOptions) -> Any:
    """The ONNX ModelProto of ``model`` (weights inline, as raw little-endian bytes).

    Raises:
        UnsupportedModelError: an activation or the labels cannot be expressed at these options.
    """
    proto, payloads = build_skeleton(model, options)
    for tensor, payload in zip(proto.graph.initializer, payloads, strict=True):
        if payload is not None:
            tensor.raw_data = payload.tobytes()
    return proto
