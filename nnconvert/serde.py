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
from .ir import DenseLayer, ElementwiseOp, Head, InputSpec, Metadata, Model, PreprocessStep

__all__ = [
    "DOCUMENT_VERSION",
    "model_to_document",
    "model_from_document",
    "encode_classes",
    "decode_classes",
    "DocumentReader",
    "encode_metadata",
    "json_default",
    "recorded_source_dtype",
]

DOCUMENT_VERSION = "1.0"

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
        "layers": [
            {
                "name": layer.name,
                "activation": layer.activation.value,
                "activation_params": dict(layer.activation_params),
                "weights": encode_array(layer.weights, array_keys.layer_array(i, "weights")),
                "bias": encode_array(layer.bias, array_keys.layer_array(i, "bias")),
            }
            for i, layer in enumerate(model.layers)
        ],
        "head": {"task": model.head.task.value, "classes": encode_classes(model.head.classes)},
        "metadata": encode_metadata(model.metadata, recorded_source_dtype(model, dtype)),
    }


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
            properties=r.get(meta_doc, "properties", "metadata.properties", dict, optional=True, default={}),
            source_dtype=r.get(meta_doc, "source_dtype", "metadata.source_dtype", str, optional=True),
        )
        return Model(layers=tuple(layers), head=head, input=input_spec, steps=tuple(steps), metadata=metadata)
    except InvalidModelError as exc:
        raise ReadError(f"invalid model: {exc}", path=path, format=format) from None


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


def _read_layer(r: DocumentReader, layer: Any, index: int, decode_array: ArrayDecoder) -> DenseLayer:
    field = f"layers[{index}]"
    for key in ("weights", "bias"):
        if not isinstance(layer, Mapping) or key not in layer:
            raise r.fail(f"{field}.{key}", "is missing")
    return DenseLayer(
        weights=decode_array(layer["weights"], array_keys.layer_array(index, "weights")),
        bias=decode_array(layer["bias"], array_keys.layer_array(index, "bias")),
        activation=r.get(layer, "activation", f"{field}.activation", str),
        name=r.get(layer, "name", f"{field}.name", str, optional=True, default=""),
        activation_params=r.get(layer, "activation_params", f"{field}.activation_params", dict, optional=True, default={}),
    )
