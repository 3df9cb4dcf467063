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

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InvalidModelError, NnconvertError, ReadError, UnsupportedModelError, UsageError
from ...head import READ_OPTIONS, head_with_options
from ...ir import DenseLayer, ElementwiseOp, Head, InputSpec, Model, PreprocessStep
from ...options import check_values
from ._common import FORMAT, FORMAT_VERSION_KEY
from ._load import check_external_locations, load_proto
from ._metadata import foreign_metadata, overlay_description
from ._parsed import ParsedGraph, ParsedLayer, ParsedStep
from ._parser import GraphParser

__all__ = ["read"]


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
    values = check_values(READ_OPTIONS, options, "the onnx reader")
    proto = load_proto(path)
    check_external_locations(proto, path)
    _refuse_reduced_precision(proto, path)
    try:
        parsed = GraphParser(proto, path).parse()
        model = _build_model(parsed, proto, path)
    except NnconvertError:
        raise
    except (IndexError, KeyError, TypeError, ValueError, AttributeError) as exc:
        # a structurally malformed graph (missing inputs, attributes of the wrong type...)
        raise ReadError(f"malformed ONNX graph: {type(exc).__name__}: {exc}", path=path, format=FORMAT) from None
    model = overlay_description(model, proto, path)
    if values:
        model = _apply_head_options(model, values.get("task"), values.get("classes"), path)
    return model


def _refuse_reduced_precision(proto: Any, path: Path) -> None:
    """nnconvert's own float16/int8 files are written to be run, not read back: say so plainly."""
    props = {entry.key: entry.value for entry in proto.metadata_props}
    if FORMAT_VERSION_KEY not in props or props.get("precision") not in ("float16", "int8"):
        return
    mode = f" ({props['quantization']} quantization)" if props.get("quantization") else ""
    raise UnsupportedModelError(
        f"{path} is nnconvert's {props['precision']}{mode} ONNX file ({props.get('parameter_bytes', '?')} bytes of "
        "parameters); nnconvert runs and verifies such files but does not read them back into a model: "
        "convert from the original, or from a JSON/HDF5 copy written with the same precision (lossless)",
        [],
    )


def _apply_head_options(model: Model, task: Any, classes: Any, path: Path) -> Model:
    from dataclasses import replace

    head = head_with_options(model.head, model.output_summary(), task, classes)
    try:
        return replace(model, head=head)
    except InvalidModelError as exc:
        raise UsageError(f"{path}: the task/classes options do not fit the graph: {exc}") from None


def _build_model(parsed: ParsedGraph, proto: Any, path: Path) -> Model:
    dtype = parsed.layers[0].weights.dtype
    dense = [_ir_layer(index, layer, dtype, parsed.layers, path) for index, layer in enumerate(parsed.layers)]
    layers: list[Any] = []
    for ir_layer, layer in zip(dense, parsed.layers, strict=True):
        layers += [ir_layer, *layer.after]
    n_features = dense[0].n_inputs
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
            metadata=_with_input_type(foreign_metadata(proto), parsed.input_type),
        )
    except InvalidModelError as exc:
        raise ReadError(f"the graph does not make a valid MLP: {exc}", path=path, format=FORMAT) from None


_INPUT_TYPE_NAMES = {6: "int32", 7: "int64", 9: "bool"}


def _with_input_type(metadata: Any, input_type: int) -> Any:
    """Note an integer/boolean input (cast to float at the input: the model computes in float)."""
    from dataclasses import replace

    if input_type not in _INPUT_TYPE_NAMES:
        return metadata
    return replace(metadata, properties={**metadata.properties, "onnx.input_type": _INPUT_TYPE_NAMES[input_type]})


def _ir_layer(index: int, layer: ParsedLayer, dtype: np.dtype, layers: Sequence[ParsedLayer], path: Path) -> DenseLayer:
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


def _ir_step(step: ParsedStep, dtype: np.dtype, path: Path) -> PreprocessStep:
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
