"""The IR as a plain document (dicts, lists, strings, numbers) and back.

This is the lossless native dump of the model graph. The JSON-weights format
is this document with arrays written inline; the HDF5 layout stores it as a
JSON attribute with arrays as datasets; the ONNX writer puts it (without
arrays) into ``metadata_props``. Arrays are delegated to the caller through
``encode_array(array, key)`` / ``decode_array(encoded, key)``, where ``key`` is
a stable slash path such as ``layers/0/weights`` (:mod:`nnconvert.array_keys`).

Reading validates every field's type before use and names the field at fault.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from os import PathLike
from typing import Any

import numpy as np

from . import array_keys
from .errors import InvalidModelError, ReadError
from .head import LabelCodecError, encode_classes
from .head import decode_classes as decode_labels
from .ir import (
    LAYER_KINDS,
    ActivationLayer,
    BatchNormLayer,
    DenseLayer,
    ElementwiseOp,
    Head,
    InputSpec,
    Layer,
    LayerNormLayer,
    Metadata,
    Model,
    PReLULayer,
    PreprocessStep,
    layer_arrays,
)
from .quantization import QuantizedWeights

__all__ = [
    "DOCUMENT_VERSION",
    "model_to_document",
    "model_from_document",
    "encode_classes",
    "decode_classes",
    "DocumentReader",
    "encode_layer",
    "UnknownLayerKindsError",
    "encode_metadata",
    "json_default",
    "recorded_source_dtype",
]

# 1.1: layers carry a "kind" (absent: dense, as in 1.0); batch_norm, layer_norm, activation and prelu layers;
# activations clip, softsign, hardswish, mish, log_softmax; optional relu/softplus parameters.
DOCUMENT_VERSION = "1.1"

ArrayEncoder = Callable[[np.ndarray, str], Any]
ArrayDecoder = Callable[[Any, str], np.ndarray]


# -- writing -------------------------------------------------------------------


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for the numpy values and mappings a document may hold."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON-serializable")


def encode_metadata(metadata: Metadata, source_dtype: str | None = None) -> dict[str, Any]:
    """The provenance fields of a model, as a plain dict (``source_dtype`` only when given)."""
    encoded: dict[str, Any] = {
        "producer": metadata.producer,
        "source_framework": metadata.source_framework,
        "source_class": metadata.source_class,
        "source_version": metadata.source_version,
    }
    if source_dtype is not None:
        encoded["source_dtype"] = source_dtype
    encoded["properties"] = dict(metadata.properties)
    return encoded


def recorded_source_dtype(model: Model, file_dtype: Any = None) -> str | None:
    """The source dtype a file holding ``model`` in ``file_dtype`` (default: its own) records.

    Only a source narrower than the file is recorded: that is the one case a
    reader can act on (restore the exact original), and files whose dtype is
    the source's (or rounded from it) keep the bytes they had before the field existed.
    """
    file_dtype = model.dtype if file_dtype is None else np.dtype(file_dtype)
    source = np.dtype(model.metadata.source_dtype or model.dtype)
    return source.name if source.itemsize < file_dtype.itemsize else None


def model_to_document(model: Model, encode_array: ArrayEncoder, *, dtype: Any = None) -> dict[str, Any]:
    """The document form of ``model``; arrays become whatever ``encode_array`` returns.

    ``dtype`` is the dtype the file stores the arrays in when the writer casts them (default: the model's).
    """
    return {
        "input": {
            "name": model.input.name,
            "n_features": model.input.n_features,
            "feature_names": None if model.input.feature_names is None else list(model.input.feature_names),
        },
        "steps": [
            {
                "kind": step.kind,
                "name": step.name,
                "params": dict(step.params),
                "ops": [
                    {"op": op.op, "operand": encode_array(op.operand, array_keys.step_operand(s, o))}
                    for o, op in enumerate(step.ops)
                ],
            }
            for s, step in enumerate(model.steps)
        ],
        "layers": [encode_layer(layer, array_keys.layer_prefix(i), encode_array) for i, layer in enumerate(model.layers)],
        "head": {"task": model.head.task.value, "classes": encode_classes(model.head.classes)},
        "metadata": encode_metadata(model.metadata, recorded_source_dtype(model, dtype)),
    }


def encode_layer(layer: Layer, key: str, encode_array: ArrayEncoder) -> dict[str, Any]:
    """``{"kind", "name", <settings>, <arrays>}``; an absent optional array is ``None``."""
    document: dict[str, Any] = {"kind": layer.kind, "name": layer.name, **layer.settings()}
    quantization = getattr(layer, "quantization", None)
    for name, array in layer_arrays(layer).items():
        if quantization is not None and name == "weights":
            document["quantization"] = _encode_quantization(quantization, key, encode_array)
            continue  # the int8 values are the weights; their float form is derived, not stored
        document[name] = None if array is None else encode_array(array, f"{key}/{name}")
    return document


# -- reading -------------------------------------------------------------------

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", list: "a list", dict: "an object", bool: "a boolean"}


class DocumentReader:
    """Typed access to a document's fields; every failure names the field and the file."""

    def __init__(self, path: str | PathLike[str] | None = None, format: str | None = None):
        self.path = path
        self.format = format

    def fail(self, field: str, message: str) -> ReadError:
        return ReadError(f"field '{field}': {message}", path=self.path, format=self.format)

    def get(self, mapping: Any, key: str, field: str, kind: type, *, optional: bool = False, default: Any = None) -> Any:
        """``mapping[key]`` checked to be of ``kind`` (None allowed when ``optional``)."""
        if not isinstance(mapping, Mapping):
            raise self.fail(field.rsplit(".", 1)[0] if "." in field else field, "expected an object")
        if key not in mapping or mapping[key] is None:
            if optional:
                return default
            raise self.fail(field, "is missing")
        value = mapping[key]
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise self.fail(field, f"expected {_TYPE_NAMES.get(kind, kind.__name__)}, got {type(value).__name__} {_short(value)}")
        return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def decode_classes(encoded: Any, reader: DocumentReader, field: str = "head.classes") -> np.ndarray | None:
    """The labels of a document's ``{"dtype", "values"}`` object (see :func:`nnconvert.head.decode_classes`)."""
    if encoded is None:
        return None
    dtype_name = reader.get(encoded, "dtype", f"{field}.dtype", str)
    values = reader.get(encoded, "values", f"{field}.values", list)
    try:
        return decode_labels(dtype_name, values)
    except LabelCodecError as exc:
        raise reader.fail(f"{field}.{exc.part}", str(exc)) from None


def model_from_document(
    document: Any,
    decode_array: ArrayDecoder,
    *,
    path: str | PathLike[str] | None = None,
    format: str | None = None,
) -> Model:
    """Rebuild the IR from its document form.

    Raises:
        ReadError: a field is missing or of the wrong type, or the graph is invalid.
    """
    r = DocumentReader(path, format)
    if not isinstance(document, Mapping):
        raise r.fail("(root)", f"expected an object, got {type(document).__name__}")
    input_doc = r.get(document, "input", "input", dict)
    feature_names = r.get(input_doc, "feature_names", "input.feature_names", list, optional=True)
    for position, name in enumerate(feature_names or ()):
        if not isinstance(name, str):
            raise r.fail(f"input.feature_names[{position}]", f"expected a string, got {_short(name)}")
    try:
        input_spec = InputSpec(
            n_features=r.get(input_doc, "n_features", "input.n_features", int),
            name=r.get(input_doc, "name", "input.name", str, optional=True, default="X"),
            feature_names=None if feature_names is None else tuple(feature_names),
        )
        steps = [_read_step(r, step, i, decode_array) for i, step in enumerate(r.get(document, "steps", "steps", list, optional=True, default=[]))]
        layers_doc = r.get(document, "layers", "layers", list)
        if not layers_doc:
            raise r.fail("layers", "a model needs at least one layer")
        _check_kinds(r, layers_doc)
        layers = [_read_layer(r, layer, i, decode_array) for i, layer in enumerate(layers_doc)]
        head_doc = r.get(document, "head", "head", dict)
        head = Head(
            task=r.get(head_doc, "task", "head.task", str),
            classes=decode_classes(head_doc.get("classes"), r),
        )
        meta_doc = r.get(document, "metadata", "metadata", dict, optional=True, default={})
        metadata = Metadata(
            producer=r.get(meta_doc, "producer", "metadata.producer", str, optional=True, default="unknown"),
            source_framework=r.get(meta_doc, "source_framework", "metadata.source_framework", str, optional=True),
            source_class=r.get(meta_doc, "source_class", "metadata.source_class", str, optional=True),
            source_version=r.get(meta_doc, "source_version", "metadata.source_version", str, optional=True),
            properties=_scalar_properties(r, r.get(meta_doc, "properties", "metadata.properties", dict, optional=True, default={})),
            source_dtype=r.get(meta_doc, "source_dtype", "metadata.source_dtype", str, optional=True),
        )
        return Model(layers=tuple(layers), head=head, input=input_spec, steps=tuple(steps), metadata=metadata)
    except InvalidModelError as exc:
        raise ReadError(f"invalid model: {exc}", path=path, format=format) from None


def _scalar_properties(r: DocumentReader, properties: dict[str, Any]) -> dict[str, Any]:
    """Metadata properties are flat key/value text: a nested value is refused, not stringified."""
    for key, value in properties.items():
        if not (value is None or isinstance(value, (str, int, float, bool))):
            raise r.fail(f"metadata.properties.{key}", f"expected a string or number, got {type(value).__name__}")
    return properties


def _read_step(r: DocumentReader, step: Any, index: int, decode_array: ArrayDecoder) -> PreprocessStep:
    field = f"steps[{index}]"
    ops_doc = r.get(step, "ops", f"{field}.ops", list)
    ops = []
    for o, op_doc in enumerate(ops_doc):
        op_name = r.get(op_doc, "op", f"{field}.ops[{o}].op", str)
        if "operand" not in op_doc:
            raise r.fail(f"{field}.ops[{o}].operand", "is missing")
        operand = decode_array(op_doc["operand"], array_keys.step_operand(index, o))
        try:
            ops.append(ElementwiseOp(op_name, operand))
        except InvalidModelError as exc:
            raise r.fail(f"{field}.ops[{o}]", str(exc)) from None
    return PreprocessStep(
        kind=r.get(step, "kind", f"{field}.kind", str),
        ops=tuple(ops),
        name=r.get(step, "name", f"{field}.name", str, optional=True, default=""),
        params=r.get(step, "params", f"{field}.params", dict, optional=True, default={}),
    )


class UnknownLayerKindsError(ReadError):
    """The document holds layer kinds this version does not know (written by a newer nnconvert)."""


def _check_kinds(r: DocumentReader, layers_doc: list[Any]) -> None:
    unknown = []
    for index, layer in enumerate(layers_doc):
        kind = layer.get("kind", "dense") if isinstance(layer, Mapping) else "dense"
        if kind not in LAYER_KINDS:
            unknown.append(f"layers[{index}] ({layer.get('name', '')!r}): {kind!r}")
    if unknown:
        raise UnknownLayerKindsError(
            f"layer kinds this nnconvert does not know: {'; '.join(unknown)} (it reads {', '.join(LAYER_KINDS)}); "
            "the file was probably written by a newer nnconvert",
            path=r.path,
            format=r.format,
        )


def _encode_quantization(q: QuantizedWeights, key: str, encode_array: ArrayEncoder) -> dict[str, Any]:
    return {
        "values": encode_array(q.values, f"{key}/quantization/values"),
        "scale": encode_array(q.scale, f"{key}/quantization/scale"),
        "zero_point": encode_array(q.zero_point, f"{key}/quantization/zero_point"),
        "input_scale": q.input_scale,
        "input_zero_point": q.input_zero_point,
    }


def _read_quantization(r: DocumentReader, layer: Mapping[str, Any], index: int, decode_array: ArrayDecoder) -> QuantizedWeights:
    field = f"layers[{index}].quantization"
    document = r.get(layer, "quantization", field, dict)
    arrays = {}
    for name in ("values", "scale", "zero_point"):
        if name not in document:
            raise r.fail(f"{field}.{name}", "is missing")
        arrays[name] = decode_array(document[name], f"layers/{index}/quantization/{name}")
    return QuantizedWeights(
        **arrays,
        input_scale=r.get(document, "input_scale", f"{field}.input_scale", float, optional=True),
        input_zero_point=r.get(document, "input_zero_point", f"{field}.input_zero_point", int, optional=True),
    )


def _read_layer(r: DocumentReader, layer: Any, index: int, decode_array: ArrayDecoder) -> Layer:
    field = f"layers[{index}]"
    kind = r.get(layer, "kind", f"{field}.kind", str, optional=True, default="dense")
    name = r.get(layer, "name", f"{field}.name", str, optional=True, default="")
    key = array_keys.layer_prefix(index)

    def array(array_name: str, *, optional: bool = False) -> Any:
        # a required array is decoded even when null (ONNX metadata describes arrays without their data)
        if optional and layer.get(array_name) is None:
            return None
        if array_name not in layer:
            raise r.fail(f"{field}.{array_name}", "is missing")
        return decode_array(layer[array_name], f"{key}/{array_name}")

    if kind == "dense":
        quantized = "quantization" in layer and "weights" not in layer
        quantization = _read_quantization(r, layer, index, decode_array) if quantized else None
        return DenseLayer(
            quantization=quantization,
            # a quantized layer's float weights are derived from its int8 values at validation
            weights=np.zeros((0, 0), np.float32) if quantized else array("weights"),
            bias=array("bias"),
            activation=r.get(layer, "activation", f"{field}.activation", str),
            name=name,
            activation_params=_activation_params(r, layer, field),
        )
    if kind == "activation":
        return ActivationLayer(
            activation=r.get(layer, "activation", f"{field}.activation", str),
            activation_params=_activation_params(r, layer, field),
            name=name,
        )
    if kind == "prelu":
        return PReLULayer(slopes=array("slopes"), name=name)
    epsilon = r.get(layer, "epsilon", f"{field}.epsilon", float)
    if kind == "batch_norm":
        return BatchNormLayer(
            mean=array("mean"),
            variance=array("variance"),
            epsilon=epsilon,
            scale=array("scale", optional=True),
            offset=array("offset", optional=True),
            name=name,
        )
    return LayerNormLayer(
        epsilon=epsilon,
        scale=array("scale", optional=True),
        offset=array("offset", optional=True),
        axis=r.get(layer, "axis", f"{field}.axis", int, optional=True, default=-1),
        name=name,
    )


def _activation_params(r: DocumentReader, layer: Any, field: str) -> dict[str, Any]:
    return r.get(layer, "activation_params", f"{field}.activation_params", dict, optional=True, default={})
