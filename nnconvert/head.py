"""The head policy: one home for every rule about a model's task and class labels.

- :func:`head_with_options`: the ``task``/``classes`` reader options applied to
  what a file says (every reader that takes those options calls it, so they
  are accepted and refused the same way everywhere);
- the class-label dtype codec (:func:`encode_classes`, :func:`decode_classes`,
  :func:`classes_dtype_name`), with the second spelling Keras files already
  hold (:func:`numpy_dtype_spelling`, :func:`classes_from_numpy_spelling`);
- how a last layer's outputs become ``predict``/``predict_proba``
  (:func:`probabilities`, :func:`labels`, :func:`predictions`, :func:`named_outputs`),
  used by the IR and by verify's runners.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

import numpy as np

from .errors import InvalidModelError, UsageError
from .options import Option

__all__ = [
    "Task",
    "Head",
    "OutputLayer",
    "TASK_CHOICES",
    "READ_OPTIONS",
    "parse_classes_text",
    "CLASSIFIER_TASKS",
    "LabelCodecError",
    "head_with_options",
    "task_from_output",
    "default_head",
    "classes_dtype_name",
    "encode_classes",
    "decode_classes",
    "numpy_dtype_spelling",
    "classes_from_numpy_spelling",
    "require_classifier",
    "probabilities",
    "labels",
    "task_labels",
    "predictions",
    "named_outputs",
]



class Task(str, Enum):
    """What the outputs mean."""

    BINARY = "binary"
    MULTICLASS = "multiclass"
    MULTILABEL = "multilabel"
    REGRESSION = "regression"
    RAW = "raw"


TASK_CHOICES: tuple[str, ...] = tuple(task.value for task in Task)
CLASSIFIER_TASKS = (Task.BINARY, Task.MULTICLASS, Task.MULTILABEL)
THRESHOLD = 0.5  # a sigmoid output above it is the positive class (as scikit-learn)




def _frozen_labels(classes: Any) -> np.ndarray:
    array = np.asarray(classes)
    if array.dtype == object:
        array = array.astype(str)
    if array.ndim != 1:
        raise InvalidModelError(f"class labels must be 1-D, got shape {array.shape}")
    if len(np.unique(array)) != len(array):
        raise InvalidModelError(f"class labels must be distinct, got {array.tolist()}")
    view = array.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, eq=False)
class Head:
    """How the last layer's outputs become predictions.

    ``classes`` keeps the labels' own dtype (int64, str, bool...). For a
    multilabel model they are the label indices.
    """

    task: Task
    classes: np.ndarray | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "task", Task(self.task))
        except ValueError:
            raise InvalidModelError(f"unknown task {self.task!r}; expected one of {list(TASK_CHOICES)}") from None
        if self.classes is None:
            if self.task in CLASSIFIER_TASKS:
                raise InvalidModelError(f"a {self.task.value} head needs class labels")
            return
        classes = _frozen_labels(self.classes)
        object.__setattr__(self, "classes", classes)
        if self.task == Task.MULTICLASS and len(classes) == 2:
            # two-class softmax (Keras Dense(2, softmax), torch) is a binary classifier: one spelling
            object.__setattr__(self, "task", Task.BINARY)

    @property
    def is_classifier(self) -> bool:
        return self.task in CLASSIFIER_TASKS


class OutputLayer(Protocol):
    """What the options need of the last layer (a :class:`~nnconvert.ir.DenseLayer` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def n_outputs(self) -> int: ...

    @property
    def activation(self) -> Any: ...


@dataclass(frozen=True)
class OutputSummary:
    """An :class:`OutputLayer` for models whose last layer is not dense: the output's name, the model's
    width and its last activation (``Model.output_summary()``)."""

    name: str
    n_outputs: int
    activation: Any


# -- task/classes options --------------------------------------------------------


def parse_classes_text(text: str) -> list[Any]:
    """``--classes a,b,c`` as labels: integers when every label is one, else strings."""
    labels_text = [label.strip() for label in text.split(",")]
    try:
        return [int(label) for label in labels_text]
    except ValueError:
        return labels_text


# The options of every reader whose files may not say what the outputs mean.
READ_OPTIONS = (
    Option("task", str, choices=TASK_CHOICES, help="state the task where the file cannot"),
    Option("classes", list, parse=parse_classes_text, metavar="A,B,...", help="comma-separated class labels where the file has none"),
)


def head_with_options(current: Head, last: OutputLayer, task: Any = None, classes: Any = None) -> Head:
    """The head a reader returns once the caller's ``task``/``classes`` options are applied.

    Args:
        current: what the file says (stored head, recognised pattern, or raw outputs).
        last: the model's last layer: its width and activation decide which tasks fit.
        task: a :class:`~nnconvert.ir.Task` or its value; None keeps ``current.task``.
        classes: labels; None keeps the current ones when they fit, else ``0..n-1``.

    Raises:
        UsageError: an unknown task, labels that are not a list, the wrong number of
            labels or repeated ones, a task the output layer cannot compute, or labels
            for a model that is not a classifier.
    """
    if task is None and classes is None:
        return current
    chosen = _task_option(task) if task is not None else current.task
    if task is None and chosen not in CLASSIFIER_TASKS:
        # labels alone for a model the file does not call a classifier: its output layer decides
        chosen = task_from_output(last)
    if chosen not in CLASSIFIER_TASKS:
        if classes is not None:
            raise UsageError(_classes_on_non_classifier(chosen, task is None, last))
        return Head(chosen)
    _check_task_fits(chosen, last)
    expected = 2 if chosen == Task.BINARY else last.n_outputs
    if classes is not None:
        labels_given = _classes_option(classes, chosen, expected, last)
    elif current.classes is not None and len(current.classes) == expected:
        labels_given = current.classes
    else:
        labels_given = np.arange(expected, dtype=np.int64)
    try:
        return Head(chosen, labels_given)
    except InvalidModelError as exc:
        raise UsageError(f"the task/classes options do not fit the model: {exc}") from None


# a log_softmax head is a classifier too: its argmax is the label, its exp the probabilities
_SOFTMAXES = ("softmax", "log_softmax")


def task_from_output(last: OutputLayer) -> Task:
    """The task an output layer computes by itself: one sigmoid is binary, softmax multiclass, anything else raw.

    A linear output may be a regression or a classifier's logits: only the caller can say which.
    """
    if last.activation == "logistic" and last.n_outputs == 1:
        return Task.BINARY
    if last.activation in _SOFTMAXES and last.n_outputs >= 2:
        return Task.MULTICLASS
    return Task.RAW


def default_head(task: Task, last: OutputLayer) -> Head:
    """A head of ``task`` with labels ``0..n-1`` for a classifier (2 for binary)."""
    if task not in CLASSIFIER_TASKS:
        return Head(task)
    return Head(task, np.arange(2 if task == Task.BINARY else last.n_outputs, dtype=np.int64))


def _value(activation: Any) -> str:
    return str(getattr(activation, "value", activation))


def _describe(last: OutputLayer) -> str:
    return f"the output layer {last.name!r} ({last.n_outputs} outputs, {_value(last.activation)})"


def _classes_on_non_classifier(task: Task, task_from_file: bool, last: OutputLayer) -> str:
    if task_from_file:
        return (
            f"classes were given but {_describe(last)} does not look like a classifier; also pass "
            "task='binary', 'multiclass' or 'multilabel'"
        )
    return f"classes make no sense for task={task.value!r}; drop them or choose a classifier task"


def _task_option(task: Any) -> Task:
    try:
        return Task(task.value if isinstance(task, Task) else task)
    except ValueError:
        raise UsageError(f"task={task!r} is not a task; expected one of {list(TASK_CHOICES)}") from None


def _check_task_fits(task: Task, last: OutputLayer) -> None:
    n_out, activation = last.n_outputs, last.activation
    fits = {
        Task.BINARY: (n_out == 1 and activation == "logistic") or (n_out == 2 and activation in _SOFTMAXES),
        Task.MULTICLASS: n_out >= 2 and activation in _SOFTMAXES,
        Task.MULTILABEL: activation == "logistic",
    }.get(task, True)
    if not fits:
        raise UsageError(
            f"task={task.value!r} does not fit {_describe(last)}; binary needs 1 sigmoid output or 2 softmax "
            "outputs, multiclass softmax outputs, multilabel sigmoid outputs"
        )


def _classes_option(classes: Any, task: Task, expected: int, last: OutputLayer) -> np.ndarray:
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Iterable):
        raise UsageError(f"classes must be a list of labels, got {classes!r}")
    labels_given = np.asarray(list(classes))
    if labels_given.ndim != 1 or len(labels_given) != expected:
        raise UsageError(
            f"task={task.value!r} with output layer {last.name!r} needs {expected} class labels, got {len(labels_given)}"
        )
    if len(np.unique(labels_given)) != len(labels_given):
        raise UsageError(f"class labels must be distinct, got {labels_given.tolist()}")
    return labels_given


# -- the class-label dtype codec --------------------------------------------------


class LabelCodecError(ValueError):
    """Stored labels that cannot be decoded; ``part`` is ``"dtype"`` or ``"values"``."""

    def __init__(self, part: str, message: str):
        super().__init__(message)
        self.part = part


def classes_dtype_name(classes: np.ndarray) -> str:
    """The labels' dtype as nnconvert's documents spell it: ``"str"`` for text, else the numpy name."""
    return "str" if classes.dtype.kind == "U" else classes.dtype.name


def encode_classes(classes: np.ndarray | None) -> dict[str, Any] | None:
    """Class labels with their dtype: ``{"dtype": "int64", "values": [...]}``; strings as ``"str"``."""
    if classes is None:
        return None
    return {"dtype": classes_dtype_name(classes), "values": classes.tolist()}


def decode_classes(dtype_name: str, values: list[Any]) -> np.ndarray:
    """Inverse of :func:`encode_classes` (given its two fields, already checked to be a str and a list).

    Raises:
        LabelCodecError: an unknown or non-label dtype, or values of another type.
    """
    if dtype_name == "str":
        if not all(isinstance(v, str) for v in values):
            raise LabelCodecError("values", "expected strings for dtype 'str'")
        return np.array(values, dtype=str) if values else np.array([], dtype="<U1")
    try:
        dtype = np.dtype(dtype_name)
    except TypeError:
        raise LabelCodecError("dtype", f"unknown dtype {dtype_name!r}") from None
    if dtype.name not in LABEL_DTYPES:
        raise LabelCodecError("dtype", f"class labels must be one of {', '.join(LABEL_DTYPES)}, got {dtype_name!r}")
    for position, value in enumerate(values):
        problem = _label_problem(value, dtype)
        if problem:
            raise LabelCodecError(f"values[{position}]", f"{value!r:.60} {problem}")
    return np.array(values, dtype=dtype)


# the dtypes every writer can hold labels in; read-time checks keep anything else out of the IR
LABEL_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64", "str")


def _label_problem(value: Any, dtype: np.dtype) -> str | None:
    """Why ``value`` is not a label of ``dtype`` exactly (2**53 + 1 in float64, 0.1 in float32, 300 in uint8), or None."""
    if dtype.kind == "b":
        return None if isinstance(value, bool) else "is not a bool"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"is not a number ({dtype.name} labels)"
    if isinstance(value, float) and not math.isfinite(value):
        return "is not finite; a class label must be a finite number"
    if dtype.kind in "iu":
        if not isinstance(value, int):
            return f"is not an integer ({dtype.name} labels)"
        info = np.iinfo(dtype)
        return None if info.min <= value <= info.max else f"does not fit {dtype.name}"
    try:
        stored = dtype.type(value)
    except OverflowError:
        return f"does not fit {dtype.name}"
    exact = math.isfinite(float(stored)) and (int(stored) == value if isinstance(value, int) else float(stored) == value)
    return None if exact else f"cannot be represented exactly in {dtype.name} (it would become {stored!r})"


def labels_from_numpy_spelling(values: list[Any], dtype_spelling: str) -> np.ndarray:
    """:func:`decode_classes` for labels whose dtype is spelt as numpy's ``dtype.str`` (``"<i8"``, ``"<U6"``).

    Raises:
        LabelCodecError: as :func:`decode_classes`.
    """
    try:
        dtype = np.dtype(dtype_spelling)
    except TypeError:
        raise LabelCodecError("dtype", f"unknown dtype {dtype_spelling!r}") from None
    return decode_classes("str" if dtype.kind == "U" else dtype.name, values)


def numpy_dtype_spelling(classes: np.ndarray) -> str:
    """The labels' dtype as nnconvert's Keras head attribute spells it: numpy's ``dtype.str`` (``"<i8"``, ``"<U6"``)."""
    return classes.dtype.str


def classes_from_numpy_spelling(values: Any, dtype_spelling: Any) -> np.ndarray | None:
    """Inverse of :func:`numpy_dtype_spelling`: ``values`` as that dtype (inferred when the spelling is empty)."""
    if values is None:
        return None
    return np.asarray(values, dtype=dtype_spelling or None)


# -- outputs -> predictions ---------------------------------------------------------


def _is_single_sigmoid_binary(head: Head, y: np.ndarray) -> bool:
    return head.task == Task.BINARY and y.shape[1] == 1 and head.classes is not None


def require_classifier(head: Head, what: str) -> None:
    """:class:`~nnconvert.errors.InvalidModelError` unless ``head`` is a classifier's (``what`` needs one)."""
    if not head.is_classifier:
        raise InvalidModelError(f"{what} needs a classifier; this model's task is {head.task.value}")


def probabilities(head: Head, y: np.ndarray) -> np.ndarray:
    """Class probabilities ``[N, C]`` from the last layer's outputs ``y``, columns in ``classes`` order.

    Raises:
        InvalidModelError: the head is not a classifier's.
    """
    require_classifier(head, "predict_proba")
    if _is_single_sigmoid_binary(head, y):
        p = y[:, 0]
        return np.stack([1 - p, p], axis=1)
    return y


def labels(head: Head, y: np.ndarray) -> np.ndarray:
    """Predicted labels of a classifier: ``classes[...]`` (``[N]``), or ``[N, L]`` 0/1 rows for multilabel.

    ``y`` is the last layer's outputs.
    """
    require_classifier(head, "labels")
    return task_labels(head.task, head.classes, y)


def task_labels(task: Task, classes: np.ndarray | None, y: np.ndarray) -> np.ndarray:
    """:func:`labels` for a classifier known only by its task and labels (a scikit-learn estimator).

    For a one-sigmoid binary model, ``y`` is ``[N, 1]``: the positive class's
    probability; with two columns the larger one wins.
    """
    if task == Task.MULTILABEL:
        return (y > THRESHOLD).astype(np.int64)
    if classes is None or task not in (Task.BINARY, Task.MULTICLASS):
        raise InvalidModelError(f"labels need a classifier with class labels; got task {task.value}")
    if task == Task.BINARY and y.shape[1] == 1:
        return classes[(y[:, 0] > THRESHOLD).astype(np.intp)]
    return classes[np.argmax(y, axis=1)]


def predictions(head: Head, y: np.ndarray) -> np.ndarray:
    """``predict``: labels for classifiers, values otherwise (``[N]`` for a one-output regression)."""
    if head.is_classifier:
        return labels(head, y)
    if head.task == Task.REGRESSION and y.shape[1] == 1:
        return y.ravel()
    return y


def named_outputs(head: Head, y: np.ndarray) -> Mapping[str, np.ndarray]:
    """verify's named outputs: ``probabilities`` and ``labels`` for classifiers, ``values`` otherwise."""
    if head.is_classifier:
        return {"probabilities": probabilities(head, y), "labels": labels(head, y)}
    return {"values": y}
