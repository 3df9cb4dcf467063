"""The head of a Keras model: the user's task/classes options, the stored head, or the output layer."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import UsageError
from ...ir import Activation, Head, Task


@dataclass(frozen=True)
class Output:
    """What the head depends on: the output layer's name, the model's width and the last activation."""

    name: str
    n_outputs: int
    activation: Activation


def choose_head(last: Output, task: Any, classes: Any, stored: Mapping[str, Any]) -> Head:
    """The head: from the user's options, else nnconvert's own stored head, else the output layer."""
    if task is None and classes is None and stored.get("task"):
        return Head(stored["task"], _stored_classes(stored))
    detected = _detected_task(last)
    chosen = _task_option(task) if task is not None else detected
    if task is None and classes is not None and detected == Task.RAW:
        raise UsageError(
            f"classes were given but the output layer ({last.name!r}, {last.n_outputs} outputs, "
            f"{last.activation.value}) does not look like a classifier; also pass task='binary', 'multiclass' "
            "or 'multilabel'"
        )
    _check_task_fits(chosen, last)
    return Head(chosen, _classes_option(chosen, classes, last))


def _detected_task(last: Output) -> Task:
    if last.activation == Activation.LOGISTIC and last.n_outputs == 1:
        return Task.BINARY
    if last.activation in _SOFTMAXES and last.n_outputs >= 2:
        return Task.MULTICLASS
    # a linear output may be a regression or a classifier's logits: the file does not say which
    return Task.RAW


def _task_option(task: Any) -> Task:
    try:
        return Task(task.value if isinstance(task, Task) else task)
    except ValueError:
        raise UsageError(f"task={task!r} is not a task; expected one of {[t.value for t in Task]}") from None


_SOFTMAXES = (Activation.SOFTMAX, Activation.LOG_SOFTMAX)


def _check_task_fits(task: Task, last: Output) -> None:
    n_out, activation = last.n_outputs, last.activation
    fits = {
        Task.BINARY: (n_out == 1 and activation == Activation.LOGISTIC) or (n_out == 2 and activation in _SOFTMAXES),
        Task.MULTICLASS: n_out >= 2 and activation in _SOFTMAXES,
        Task.MULTILABEL: activation == Activation.LOGISTIC,
    }.get(task, True)
    if not fits:
        raise UsageError(
            f"task={task.value!r} does not fit the output layer {last.name!r} ({n_out} outputs, {activation.value}); "
            "binary needs 1 sigmoid output or 2 softmax outputs, multiclass softmax outputs, multilabel sigmoid outputs"
        )


def _classes_option(task: Task, classes: Any, last: Output) -> np.ndarray | None:
    if task in (Task.REGRESSION, Task.RAW):
        if classes is not None:
            raise UsageError(f"classes make no sense for task={task.value!r}; drop them or choose a classifier task")
        return None
    expected = 2 if task == Task.BINARY else last.n_outputs
    if classes is None:
        return np.arange(expected, dtype=np.int64)
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Iterable):
        raise UsageError(f"classes must be a list of labels, got {classes!r}")
    labels = np.asarray(list(classes))
    if labels.ndim != 1 or len(labels) != expected:
        raise UsageError(f"task={task.value!r} with output layer {last.name!r} needs {expected} class labels, got {len(labels)}")
    if len(np.unique(labels)) != len(labels):
        raise UsageError(f"class labels must be distinct, got {labels.tolist()}")
    return labels


def _stored_classes(stored: Mapping[str, Any]) -> np.ndarray | None:
    classes = stored.get("classes")
    if classes is None:
        return None
    return np.asarray(classes, dtype=stored.get("classes_dtype") or None)
