"""The model's metadata: the producer's (foreign) properties, and nnconvert's own description laid over the graph.

nnconvert's own files carry the IR description in ``metadata_props``; it is
laid over the parsed graph (names, parameters, classes and their dtype) only
where it agrees with what the graph computes. A description that cannot be
parsed (not JSON, another format version) is ignored with a warning; one that
parses but contradicts the graph (task, classes and their count, order and
exact values, shapes, activations, preprocessing) is a forged or damaged
file, refused with the field named.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ... import array_keys, serde
from ...errors import InvalidModelError, ReadError
from ...ir import Activation, Metadata, Model, apply_activation, layer_arrays
from ._common import DESCRIPTION_KEY, FORMAT, FORMAT_VERSION, FORMAT_VERSION_KEY
from ._match_tail import same_labels

_FRAMEWORKS = {"skl2onnx": "sklearn", "pytorch": "torch", "tf2onnx": "tensorflow", "keras2onnx": "keras", "nnconvert": "nnconvert"}


def foreign_metadata(proto: Any) -> Metadata:
    properties = {p.key: p.value for p in proto.metadata_props if not p.key.startswith("nnconvert.")}
    producer = proto.producer_name or "unknown"
    # the producer's version is the converter's (skl2onnx 1.20), not the framework's: kept apart
    if proto.producer_version:
        properties["onnx.producer_version"] = proto.producer_version
    properties["onnx.ir_version"] = str(proto.ir_version)
    properties["onnx.opsets"] = ",".join(f"{e.domain or 'ai.onnx'}:{e.version}" for e in proto.opset_import)
    return Metadata(producer=producer, source_framework=_FRAMEWORKS.get(producer, "onnx"), properties=properties)


def overlay_description(model: Model, proto: Any, path: Path) -> Model:
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
        raise _refused(path, str(exc)) from None
    reason = _disagreement(described, model)
    if reason:
        raise _refused(path, reason)
    return described


def _refused(path: Path, reason: str) -> ReadError:
    return ReadError(
        f"metadata_props[{DESCRIPTION_KEY!r}] disagrees with the graph: {reason}; nnconvert uses its description only "
        "where it agrees with what the graph computes (a forged or damaged file?)",
        path=path,
        format=FORMAT,
    )


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
    described_kinds = [layer.get("kind", "dense") for layer in document.get("layers", [])]
    graph_kinds = [layer.kind for layer in model.layers]
    if described_kinds != graph_kinds:
        raise ValueError(f"it describes layers {described_kinds} and the graph computes {graph_kinds}")
    for index, layer in enumerate(model.layers):
        for name, array in layer_arrays(layer).items():
            if array is not None:
                arrays[array_keys.layer_array(index, name)] = array
    if len(document.get("layers", [])) != len(model.layers):
        raise ValueError(f"layers: it describes {len(document.get('layers', []))} layers and the graph has {len(model.layers)}")
    graph_ops = [op for step in model.steps for op in step.ops]
    described_ops = [(s, o, op["op"]) for s, step in enumerate(document.get("steps") or []) for o, op in enumerate(step["ops"])]
    if [op for _, _, op in described_ops] != [op.op for op in graph_ops]:
        raise ValueError(
            f"steps: it describes preprocessing {[op for _, _, op in described_ops]} and the graph computes {[op.op for op in graph_ops]}"
        )
    for (s, o, _), op in zip(described_ops, graph_ops, strict=True):
        arrays[array_keys.step_operand(s, o)] = op.operand
    return serde.model_from_document(document, lambda _encoded, key: arrays[key], path=path, format=FORMAT)


_PROBE = np.concatenate([np.linspace(-10.0, 10.0, 401), [-1000.0, -100.0, 100.0, 1000.0]]).reshape(1, -1)


def _same_function(mine: Any, theirs: Any) -> bool:
    """Two activations that compute the same values (on a probe), whatever their names."""
    if mine.activation == Activation.PRELU or theirs.activation == Activation.PRELU:
        return False
    a, b = _PROBE.copy(), _PROBE.copy()
    with np.errstate(all="ignore"):
        apply_activation(a, mine.activation, mine.activation_params)
        apply_activation(b, theirs.activation, theirs.activation_params)
    return bool(np.allclose(a, b, rtol=1e-6, atol=1e-7))


def _disagreement(described: Model, model: Model) -> str | None:
    if described.n_features != model.n_features:
        return f"input.n_features: it describes {described.n_features} input features and the graph reads {model.n_features}"
    for index, (mine, theirs) in enumerate(zip(described.layers, model.layers, strict=True)):
        if mine.kind != theirs.kind:
            return f"layer {index} is described as {mine.kind} but the graph computes {theirs.kind}"
        if _same_function(mine, theirs):
            continue  # e.g. relu with max_value 6 described, the graph's Clip(0, 6) read as clip
        if mine.activation != theirs.activation:
            return f"layers[{index}].activation: described as {mine.activation.value} but the graph computes {theirs.activation.value}"
        for key, value in theirs.activation_params.items():
            other = mine.activation_params.get(key)
            same = math.isclose(value, other, rel_tol=1e-6) if isinstance(value, float) and isinstance(other, float) else value == other
            if not same:
                return f"layers[{index}].activation_params.{key}: described as {other!r} but the graph uses {value!r}"
    if model.head.is_classifier != described.head.is_classifier or (model.head.is_classifier and described.task != model.task):
        return f"head.task: it describes a {described.task.value} model and the graph computes a {model.task.value} one"
    if model.classes is not None and described.classes is not None and not same_labels(model.classes, described.classes):
        return f"head.classes: it describes {described.classes.tolist()} and the graph's labels are {model.classes.tolist()}"
    return None
