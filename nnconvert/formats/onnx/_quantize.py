"""Reduced-precision ONNX graphs: float16 storage, int8 dynamic (onnxruntime's quantizer), int8 static QDQ.

Every variant starts from the float32 graph the writer builds for the model
and changes only the dense layers, so preprocessing, activations and the
classifier head stay the writer's own.

- float16: weights and biases stored as float16, each followed by a Cast to
  float32, so onnxruntime computes in float32 (the Casts are folded once at
  session start). Measured on CPU, float16 compute (onnxruntime.transformers'
  ``convert_float_to_float16``) was no faster and is less accurate
  (docs/benchmarks.md), so storage-only float16 is what this writes.
- int8 dynamic: ``onnxruntime.quantization.quantize_dynamic`` (per channel,
  int8 weights) on the float32 MatMul graph, via a temporary file; then its
  weight initializers are replaced by the IR's own int8 values, scales and
  zero points, so that the file holds exactly the quantized model that the
  JSON and HDF5 files hold (normally they are already identical).
- int8 static: a QDQ graph written here (QuantizeLinear/DequantizeLinear on
  each dense layer's input with the calibrated scale, DequantizeLinear on the
  int8 weights, per channel). Written directly because the IR already holds
  the calibrated scales: ``quantize_static`` would need the calibration rows
  again at every write, and would choose its own scales for every tensor, so a
  model read from JSON could not be written back to the same ONNX file.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import UnsupportedModelError, WriteError
from ...ir import Model
from ...quantization import QuantizedWeights, parameter_bytes, precision_of, quantization_mode
from ._write_model import build_model_proto
from ._write_options import WriteOptions

__all__ = ["build_reduced_precision", "is_reduced_precision", "write_reduced_precision"]

QDQ_MIN_OPSET = 13  # per-channel DequantizeLinear (axis) arrived in opset 13


def is_reduced_precision(model: Model) -> bool:
    return precision_of(model) in ("float16", "int8")


def build_reduced_precision(model: Model, options: WriteOptions) -> Any:
    """The ModelProto of a float16 or int8 model, float32 (or float16 with io_dtype) at its inputs and outputs."""
    if precision_of(model) == "float16":
        proto = build_model_proto(model.astype(np.float32), replace(options, dtype=np.dtype(np.float32)))
        _store_float16(proto)
    else:
        proto = _build_int8(model, options)
    if options.io_dtype == np.float16:
        _float16_interface(proto)
    _describe(proto, model)
    return proto


# -- float16 -------------------------------------------------------------------


def _store_float16(proto: Any) -> None:
    """Dense weights and biases as float16 initializers, each cast to float32 where it is used."""
    from onnx import TensorProto, helper, numpy_helper

    casts = []
    for tensor in proto.graph.initializer:
        if not tensor.name.startswith("layers/") or tensor.data_type != TensorProto.FLOAT:
            continue
        values = numpy_helper.to_array(tensor).astype(np.float16)
        stored = f"{tensor.name}/float16"
        casts.append(helper.make_node("Cast", [stored], [tensor.name], name=f"{tensor.name}/Cast", to=TensorProto.FLOAT))
        tensor.CopyFrom(numpy_helper.from_array(values, stored))
    _prepend_nodes(proto, casts)


def _float16_interface(proto: Any) -> None:
    """float16 input and float outputs (on request): Casts at the graph's edges, float32 inside."""
    from onnx import TensorProto, helper

    graph = proto.graph
    first: list[Any] = []
    for value in graph.input:
        if value.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        inner = f"{value.name}/float32"
        for node in graph.node:
            node.input[:] = [inner if name == value.name else name for name in node.input]
        first.append(helper.make_node("Cast", [value.name], [inner], name=f"{value.name}/Cast", to=TensorProto.FLOAT))
        value.type.tensor_type.elem_type = TensorProto.FLOAT16
    _prepend_nodes(proto, first)
    for value in graph.output:
        if value.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        inner = f"{value.name}/float32"
        for node in graph.node:
            node.output[:] = [inner if name == value.name else name for name in node.output]
            node.input[:] = [inner if name == value.name else name for name in node.input]
        graph.node.append(helper.make_node("Cast", [inner], [value.name], name=f"{value.name}/Cast", to=TensorProto.FLOAT16))
        value.type.tensor_type.elem_type = TensorProto.FLOAT16


def _prepend_nodes(proto: Any, nodes: list[Any]) -> None:
    existing = list(proto.graph.node)
    del proto.graph.node[:]
    proto.graph.node.extend(nodes + existing)


# -- int8 ------------------------------------------------------------------------


def _layer_quantizations(model: Model) -> dict[int, QuantizedWeights]:
    """Each dense layer's int8 form by its index in ``model.layers`` (the index its array keys carry)."""
    found = {index: getattr(layer, "quantization", None) for index, layer in enumerate(model.layers) if layer.kind == "dense"}
    quantized = {index: q for index, q in found.items() if q is not None}
    modes = {q.mode for q in quantized.values()}
    if len(quantized) != len(found) or len(modes) != 1:
        raise UnsupportedModelError(
            "the ONNX writer needs every dense layer quantized the same way (all dynamic or all static); "
            f"this model has {len(quantized)} of {len(found)} dense layers quantized ({', '.join(sorted(modes)) or 'none'})"
        )
    return quantized


def _build_int8(model: Model, options: WriteOptions) -> Any:
    quantized = _layer_quantizations(model)
    opset = max(options.opset, QDQ_MIN_OPSET)
    float_options = replace(options, dtype=np.dtype(np.float32), linear="matmul", opset=opset, zipmap=options.zipmap)
    proto = build_model_proto(model.dequantized(), float_options)
    if next(iter(quantized.values())).mode == "dynamic":
        producer = (proto.producer_name, proto.producer_version)
        proto = _quantize_dynamic(proto)
        proto.producer_name, proto.producer_version = producer  # the quantizer signs as itself
        _adopt_ir_values(proto, quantized)
    else:
        _write_qdq(proto, quantized)
    return proto


def _quantize_dynamic(proto: Any) -> Any:
    """onnxruntime's dynamic quantizer on the float32 graph, through temporary files (its interface)."""
    import onnx

    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        from ...errors import MissingDependencyError

        raise MissingDependencyError("onnxruntime", "int8 dynamic quantization of ONNX files") from exc
    with tempfile.TemporaryDirectory(prefix="nnconvert-int8-") as folder:
        source, target = Path(folder, "float32.onnx"), Path(folder, "int8.onnx")
        onnx.save_model(proto, str(source))
        import logging

        quiet = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # its "please run pre-processing" advice is for CNNs
        try:
            quantize_dynamic(source, target, per_channel=True, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
        finally:
            logging.getLogger().setLevel(quiet)
        return onnx.load_model(str(target))


def _adopt_ir_values(proto: Any, quantized: dict[int, QuantizedWeights]) -> None:
    """Put the IR's int8 values, scales and zero points in place of the quantizer's."""
    from onnx import numpy_helper

    initializers = {tensor.name: tensor for tensor in proto.graph.initializer}
    for index, q in quantized.items():
        stem = f"layers/{index}/weights"
        for suffix, values in (("_quantized", q.values), ("_scale", q.scale), ("_zero_point", q.zero_point)):
            tensor = initializers.get(stem + suffix)
            if tensor is None:
                raise WriteError(
                    f"onnxruntime's quantizer did not produce {stem + suffix!r} for dense layer {index}; "
                    "this onnxruntime version lays out quantized graphs differently: please report this"
                )
            theirs = numpy_helper.to_array(tensor)
            if theirs.shape != values.shape or theirs.dtype != values.dtype:
                raise WriteError(f"onnxruntime's quantizer made {stem + suffix!r} {theirs.dtype} {theirs.shape}, expected {values.dtype} {values.shape}")
            tensor.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(values), tensor.name))
    _drop_zero_weight_zero_points(proto)


def _drop_zero_weight_zero_points(proto: Any) -> None:
    """MatMulInteger's weight zero point is optional (default 0): symmetric weights need none stored."""
    from onnx import numpy_helper

    initializers = {tensor.name: tensor for tensor in proto.graph.initializer}
    dropped = set()
    for node in proto.graph.node:
        if node.op_type != "MatMulInteger" or len(node.input) < 4 or node.input[3] not in initializers:
            continue
        if not numpy_helper.to_array(initializers[node.input[3]]).any():
            dropped.add(node.input[3])
            del node.input[3]
    if dropped:
        kept = [tensor for tensor in proto.graph.initializer if tensor.name not in dropped]
        del proto.graph.initializer[:]
        proto.graph.initializer.extend(kept)


def _write_qdq(proto: Any, quantized: dict[int, QuantizedWeights]) -> None:
    """Replace each layer's float MatMul by the QDQ form of its calibrated int8 layer."""
    from onnx import helper, numpy_helper

    graph = proto.graph
    kept = [tensor for tensor in graph.initializer if not (tensor.name.startswith("layers/") and tensor.name.endswith("/weights"))]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes: list[Any] = []
    for node in graph.node:
        if node.op_type != "MatMul" or not node.input[1].endswith("/weights"):
            nodes.append(node)
            continue
        stem = node.input[1]
        q = quantized[int(stem.split("/")[1])]
        assert q.input_scale is not None and q.input_zero_point is not None  # static mode, checked above
        arrays = {
            f"{stem}/quantized": q.values,
            f"{stem}/scale": q.scale,
            f"{stem}/zero_point": q.zero_point,
            f"{stem}/input_scale": np.float32(q.input_scale),
            f"{stem}/input_zero_point": np.uint8(q.input_zero_point),
        }
        graph.initializer.extend(numpy_helper.from_array(np.asarray(v), k) for k, v in arrays.items())
        x = node.input[0]
        nodes += [
            helper.make_node("QuantizeLinear", [x, f"{stem}/input_scale", f"{stem}/input_zero_point"], [f"{stem}/input_q"], name=f"{stem}/QuantizeInput"),
            helper.make_node("DequantizeLinear", [f"{stem}/input_q", f"{stem}/input_scale", f"{stem}/input_zero_point"], [f"{stem}/input_dq"], name=f"{stem}/DequantizeInput"),
            helper.make_node("DequantizeLinear", [f"{stem}/quantized", f"{stem}/scale", f"{stem}/zero_point"], [f"{stem}/dequantized"], name=f"{stem}/DequantizeWeights", axis=1),
        ]
        node.input[:] = [f"{stem}/input_dq", f"{stem}/dequantized"]
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)


def _describe(proto: Any, model: Model) -> None:
    """Record the precision in metadata_props (read by ``inspect`` and by people)."""
    entries = {"precision": precision_of(model), "parameter_bytes": str(parameter_bytes(model))}
    mode = quantization_mode(model)
    if mode is not None:
        entries["quantization"] = mode
    props = {entry.key: entry for entry in proto.metadata_props}
    for key, value in entries.items():
        if key in props:
            props[key].value = value
        else:
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value


def write_reduced_precision(model: Model, path: str | os.PathLike[str], options: WriteOptions, check: bool) -> None:
    """Write the float16/int8 graph to ``path`` (one message: quantized weights are at most half of float32's)."""
    proto = build_reduced_precision(model, options)
    try:
        data = proto.SerializeToString()
    except ValueError as exc:  # protobuf's 2 GB limit
        raise UnsupportedModelError(f"the reduced-precision graph is too large for one ONNX file: {exc}") from None
    with open(path, "wb") as handle:
        handle.write(data)
    if check:
        import onnx

        try:
            onnx.checker.check_model(str(path), full_check=True)
        except Exception as exc:  # noqa: BLE001 - a checker failure is a writer bug
            raise WriteError(f"the reduced-precision ONNX graph fails onnx.checker ({type(exc).__name__}: {exc}); please report this") from exc
