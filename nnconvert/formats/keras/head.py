"""The head of a Keras model: nnconvert's stored head or the output layer, then the user's options.

The rules themselves (which task fits which output layer, what the
``task``/``classes`` options may say, the labels' dtype spelling) are the
package-wide head policy in :mod:`nnconvert.head`; this module only says
where a Keras file keeps its head.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...head import classes_from_numpy_spelling, default_head, head_with_options, numpy_dtype_spelling, task_from_output
from ...ir import Activation, Head, Model
from ...serde import recorded_source_dtype

__all__ = ["Output", "choose_head", "head_document"]


@dataclass(frozen=True)
class Output:
    """What the head depends on: the output layer's name, the model's width and the last activation."""

    name: str
    n_outputs: int
    activation: Activation


def choose_head(last: Output, task: Any, classes: Any, stored: Mapping[str, Any]) -> Head:
    """The head: nnconvert's own stored head, else the output layer's task; then the user's options."""
    if stored.get("task"):
        current = Head(stored["task"], classes_from_numpy_spelling(stored.get("classes"), stored.get("classes_dtype")))
    else:
        current = default_head(task_from_output(last), last)
    return head_with_options(current, last, task, classes)


def head_document(model: Model, dtype: np.dtype) -> dict[str, Any]:
    """What nnconvert stores beside a Keras file's config (the labels' dtype in numpy's spelling).

    ``dtype`` is the dtype the file's weights are written in.
    """
    classes = model.head.classes
    document: dict[str, Any] = {
        "task": model.task.value,
        "classes": None if classes is None else classes.tolist(),
        "classes_dtype": None if classes is None else numpy_dtype_spelling(classes),
        "feature_names": None if model.input.feature_names is None else list(model.input.feature_names),
    }
    source_dtype = recorded_source_dtype(model, dtype)
    if source_dtype is not None:  # a float32 model written as float64: readers can restore it
        document["source_dtype"] = source_dtype
    return document


def validated_stored_head(stored: Any, path: Any, format_name: str) -> dict[str, Any] | None:
    """nnconvert's own head attribute with every field checked at read time (the field named); None when absent.

    The labels come back as an array checked against their declared dtype
    (exact, finite, an allowed label dtype), so no writer meets them unchecked later.
    """
    from ...head import LabelCodecError, labels_from_numpy_spelling
    from ...ir import Task
    from ...serde import DocumentReader
    from .config import HEAD_ATTRIBUTE

    if stored is None:
        return None
    reader = DocumentReader(path, format_name)
    if not isinstance(stored, dict):
        raise reader.fail(HEAD_ATTRIBUTE, f"expected an object, got {type(stored).__name__}")
    tasks = [t.value for t in Task]
    task = stored.get("task")
    if task is not None and task not in tasks:
        raise reader.fail(f"{HEAD_ATTRIBUTE}.task", f"expected one of {tasks}, got {task!r:.60}")
    classes = stored.get("classes")
    if classes is not None:
        if not isinstance(classes, list):
            raise reader.fail(f"{HEAD_ATTRIBUTE}.classes", f"expected a list, got {type(classes).__name__}")
        dtype = stored.get("classes_dtype")
        if not isinstance(dtype, str):
            raise reader.fail(f"{HEAD_ATTRIBUTE}.classes_dtype", f"expected a dtype name, got {dtype!r:.60}")
        try:
            classes = labels_from_numpy_spelling(classes, dtype)
        except LabelCodecError as exc:
            raise reader.fail(f"{HEAD_ATTRIBUTE}.classes.{exc.part}", str(exc)) from None
    names = stored.get("feature_names")
    if names is not None and not (isinstance(names, list) and all(isinstance(name, str) for name in names)):
        raise reader.fail(f"{HEAD_ATTRIBUTE}.feature_names", "expected a list of strings")
    return {**stored, "classes": classes}
