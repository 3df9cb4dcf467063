"""The classifier head as ONNX nodes: probabilities, labels (ArgMax, Gather) and the optional ZipMap."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import InvalidModelError, UnsupportedModelError
from ...ir import Model, Task
from ._common import ML_DOMAIN
from ._write_layers import GraphBuilder


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


def value_info(name: str, elem_type: int, shape: list[Any]) -> Any:
    from onnx import helper

    return helper.make_tensor_value_info(name, elem_type, shape)


def classifier_head(b: GraphBuilder, y: str, model: Model, zipmap: bool) -> list[Any]:
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
        label_info = value_info("output_label", TensorProto.INT64, ["N", n_classes])
    else:
        labels = label_tensor(classes)
        index = b.node("ArgMax", [probabilities], "head", axis=1, keepdims=0)
        if not _labels_are_indices(classes, labels):
            b.node("Gather", [b.initializer("head/classes", labels, cast=False), index], "head", axis=0)
        b.rename_output(b.nodes[-1].output[0], "output_label")
        label_info = value_info("output_label", helper.np_dtype_to_tensor_dtype(_label_dtype(labels)), ["N"])
    if not zipmap:
        return [label_info, value_info("output_probability", b.elem_type, ["N", n_classes])]
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
