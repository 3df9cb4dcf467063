"""The head of a Keras model: nnconvert's stored head or the output layer, then the user's options.

The rules themselves (which task fits which output layer, what the
``task``/``classes`` options may say, the labels' dtype spelling) are the
package-wide head policy in :mod:`nnconvert.head`; this module only says
where a Keras file keeps its head.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ...head import classes_from_numpy_spelling, default_head, head_with_options, numpy_dtype_spelling, task_from_output
from ...ir import DenseLayer, Head, Model
from ...serde import recorded_source_dtype

__all__ = ["choose_head", "head_document"]


def choose_head(last: DenseLayer, task: Any, classes: Any, stored: Mapping[str, Any]) -> Head:
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
