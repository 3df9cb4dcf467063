"""Runners: each side of a comparison, run by its own framework, with named outputs.

Every runner returns a dict of named outputs with fixed shapes:
``probabilities`` ``[N, C]``, ``labels`` ``[N]`` (``[N, L]`` indicator rows for
multilabel) and ``values`` ``[N, k]`` for regression. Runners that can expose
intermediates return ``[(name, array)]``: the preprocessed input, then each
layer's activated output, the layout of ``Model.forward(return_intermediates=True)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import head as head_policy
from ..errors import NnconvertError, UntrustedInputError, UsageError
from ..input_range import preprocessing_input_range as ir_input_range
from ..ir import Model, Task, layer_names
from ..registry import FormatSpec
from .runner_base import Runner, as_2d

__all__ = ["Runner", "IRRunner", "SklearnRunner", "KerasRunner", "TorchRunner", "make_runner", "runner_format", "as_2d"]

DEFAULT_RANGE = (-3.0, 3.0)


# -- the IR ------------------------------------------------------------------


def model_outputs(model: Model, y: np.ndarray) -> dict[str, np.ndarray]:
    """verify's named outputs of a model's last-layer outputs ``y`` (a log_softmax head's are log-probabilities)."""
    if model.head.is_classifier and model.output_activation.value == "log_softmax":
        y = np.exp(y)
    return dict(head_policy.named_outputs(model.head, y))


class IRRunner(Runner):
    """An nnconvert :class:`Model`, run by its numpy forward pass."""

    kind = "ir"

    def __init__(self, model: Model, description: str = "nnconvert Model"):
        self.model = model
        self.description = description
        self.dtype = model.dtype
        self.n_features = model.n_features
        self.is_classifier = model.head.is_classifier

    def run(self, X: np.ndarray) -> dict[str, np.ndarray]:
        return model_outputs(self.model, self.model.forward(X))

    def intermediates(self, X: np.ndarray) -> list[tuple[str, np.ndarray]]:
        arrays = self.model.forward(X, return_intermediates=True)
        return list(zip(["input (preprocessed)", *layer_names(self.model.layers)], arrays, strict=True))

    def input_range(self) -> tuple[np.ndarray, np.ndarray, str] | None:
        return ir_input_range(self.model)


# -- scikit-learn ---------------------------------------------------------------


class SklearnRunner(Runner):
    """A fitted scikit-learn estimator (or Pipeline), run by its own predict/predict_proba."""

    kind = "sklearn"

    def __init__(self, estimator: Any, description: str | None = None):
        self.estimator = estimator
        self.final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
        self.description = description or _sklearn_name(estimator)
        coefs = getattr(self.final, "coefs_", None)
        self.dtype = np.dtype(coefs[0].dtype) if coefs else np.dtype(np.float64)
        n_features = getattr(estimator, "n_features_in_", None)
        self.n_features = None if n_features is None else int(n_features)
        self.is_classifier = hasattr(estimator, "predict_proba") and hasattr(self.final, "classes_")
        self._ir: Model | None | bool = False  # False: not tried yet

    def run(self, X: np.ndarray) -> dict[str, np.ndarray]:
        if not self.is_classifier:
            return {"values": as_2d(self.estimator.predict(X))}
        proba = self.estimator.predict_proba(X)
        return {"probabilities": proba, "labels": self._labels(X, proba)}

    def _labels(self, X: np.ndarray, proba: np.ndarray) -> np.ndarray:
        # MLPClassifier.predict thresholds/argmaxes the same forward pass predict_proba returns,
        # so deriving the labels here saves a second full inference (see docs/verify.md)
        activation = getattr(self.final, "out_activation_", None)
        classes = self.final.classes_
        if activation == "softmax":
            return head_policy.task_labels(Task.MULTICLASS, classes, proba)
        if activation == "logistic" and getattr(self.final, "n_outputs_", 0) == 1:
            return head_policy.task_labels(Task.BINARY, classes, proba[:, 1:])  # the positive class's column
        if activation == "logistic":
            return head_policy.task_labels(Task.MULTILABEL, classes, proba)
        return self.estimator.predict(X)

    def intermediates(self, X: np.ndarray) -> list[tuple[str, np.ndarray]] | None:
        model = self._as_ir()
        return None if model is None else IRRunner(model).intermediates(X)

    def _as_ir(self) -> Model | None:
        if self._ir is False:
            try:
                from ..converters.sklearn import from_sklearn

                self._ir = from_sklearn(self.estimator)
            except (ImportError, NnconvertError):
                self._ir = None
        return self._ir  # type: ignore[return-value]

    def input_range(self) -> tuple[np.ndarray, np.ndarray, str] | None:
        if not hasattr(self.estimator, "steps") or len(self.estimator.steps) < 2:
            return None
        return _scaler_range(self.estimator.steps[0][1])


def _sklearn_name(estimator: Any) -> str:
    if hasattr(estimator, "steps"):
        return "Pipeline(" + ", ".join(type(step).__name__ for _, step in estimator.steps) + ")"
    return type(estimator).__name__


def _scaler_range(scaler: Any) -> tuple[np.ndarray, np.ndarray, str] | None:
    name = type(scaler).__name__
    if name == "StandardScaler" and getattr(scaler, "scale_", None) is not None:
        mean = scaler.mean_ if getattr(scaler, "mean_", None) is not None else 0.0
        mean = np.broadcast_to(mean, scaler.scale_.shape) if scaler.with_mean else np.zeros_like(scaler.scale_)
        return mean - 3 * scaler.scale_, mean + 3 * scaler.scale_, "StandardScaler mean ± 3 scale"
    if name == "MinMaxScaler":
        return scaler.data_min_, scaler.data_max_, "MinMaxScaler training data range"
    if name == "MaxAbsScaler":
        return -scaler.max_abs_, scaler.max_abs_, "MaxAbsScaler ± max_abs"
    return None


# -- Keras and torch -------------------------------------------------------------


class KerasRunner(Runner):
    """An in-memory Keras model, run by ``model.predict``; its one output is compared as ``values``."""

    kind = "keras"

    def __init__(self, model: Any):
        self.model = model
        self.description = f"Keras {type(model).__name__} {getattr(model, 'name', '')}".strip()
        weights = model.get_weights()
        self.dtype = np.dtype(weights[0].dtype) if weights else np.dtype(np.float32)
        shape = getattr(model, "input_shape", None)
        self.n_features = shape[-1] if isinstance(shape, tuple) and isinstance(shape[-1], int) else None

    def run(self, X: np.ndarray) -> dict[str, np.ndarray]:
        values = self.model.predict(np.asarray(X, dtype=self.dtype), verbose=0, batch_size=max(1, min(len(X), 8192)))
        return {"values": as_2d(np.asarray(values))}


class TorchRunner(Runner):
    """An in-memory torch module, run under ``torch.no_grad`` in eval mode.

    When nnconvert can read the module (``from_torch``), its head names the outputs
    (probabilities and labels for a classifier); the numbers are always torch's own.
    Otherwise its one output is compared as ``values``.
    """

    kind = "torch"

    def __init__(self, module: Any):
        import torch

        self.module = module
        self.description = f"torch {type(module).__name__}"
        params = list(module.parameters())
        self.dtype = np.dtype(str(params[0].dtype).replace("torch.", "")) if params else np.dtype(np.float32)
        linear = next((m for m in module.modules() if isinstance(m, torch.nn.Linear)), None)
        self.n_features = None if linear is None else int(linear.in_features)
        self.model: Model | None = None
        try:
            from ..converters.torch import from_torch

            self.model = from_torch(module)
            self.is_classifier = self.model.head.is_classifier
        except NnconvertError:  # still runnable: compared as raw values
            self.model = None

    def run(self, X: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        self.module.eval()
        with torch.no_grad():
            out = as_2d(self.module(torch.from_numpy(np.ascontiguousarray(X, dtype=self.dtype))).numpy())
        return {"values": out} if self.model is None else model_outputs(self.model, out)

    def input_range(self) -> tuple[np.ndarray, np.ndarray, str] | None:
        return None if self.model is None else ir_input_range(self.model)


# -- the factory -------------------------------------------------------------------


def make_runner(source: Any, *, trust: bool = False, ort_optimizations: bool = True, role: str = "model") -> Runner:
    """A runner for a path, a :class:`Model`, an estimator, a Keras model or a torch module.

    Raises:
        UsageError: ``source`` is none of those.
        UntrustedInputError: a pickle without ``trust``.
        ReadError / UnsupportedModelError: the file cannot be run.
    """
    if isinstance(source, Runner):
        return source
    if isinstance(source, Model):
        return IRRunner(source)
    if isinstance(source, (str, os.PathLike)):
        return _runner_for_path(Path(source), trust=trust, ort_optimizations=ort_optimizations)
    module = type(source).__module__.split(".")[0]
    if module == "sklearn":
        return SklearnRunner(source)
    if module == "keras" or (module == "tf_keras"):
        return KerasRunner(source)
    if module == "torch" or _is_torch_module(source):
        return TorchRunner(source)
    raise UsageError(
        f"the {role} is a {type(source).__module__}.{type(source).__qualname__}; expected a file path, an nnconvert "
        "Model, a scikit-learn estimator, a Keras model or a torch module"
    )


def _is_torch_module(source: Any) -> bool:
    return any(cls.__module__.startswith("torch.nn") for cls in type(source).__mro__)


def runner_format(path: Path, format: str | None = None) -> FormatSpec | None:
    """The format verify runs ``path`` as: ``format`` if named, else content detection as ``load`` does.

    None when the file may be parsed by libhdf5 (detection itself opens such files, so it runs
    in the isolated reader of :func:`nnconvert.load`, which then reads it into the IR) or when no
    format claims it (``load`` then raises its usual error); a write-only format with a native runner claims its suffix.
    """
    from .. import registry
    from ..api import default_read_timeout
    from ..errors import UnknownFormatError

    if format is not None:
        return registry.get(format)
    if default_read_timeout(path) is not None:
        return None
    try:
        return registry.detect(path)
    except UnknownFormatError:
        # no reader claims it: a write-only format that runs its files natively (generated C) by suffix
        spec = registry.format_for_suffix(path, writable=True)
        return spec if spec is not None and spec.read is None and spec.runner != "ir" else None


def _runner_for_path(path: Path, *, trust: bool, ort_optimizations: bool) -> Runner:
    from ..api import default_read_timeout, load
    from ..errors import ReadError

    if not path.is_file():
        raise ReadError("no such file" if not path.exists() else "not a regular file", path=path)
    spec = runner_format(path)
    if spec is not None and spec.runner == "c":  # generated C runs compiled
        from .c_runner import CRunner

        return CRunner(path)
    if spec is not None and spec.runner == "onnxruntime":
        from .onnx.runners import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path, optimizations=ort_optimizations)
    # scikit-learn files run as the estimator itself, not as its IR: that is what they are compared as
    runner: Runner
    if spec is not None and spec.runner == "sklearn" and spec.load_native is not None:
        if spec.needs_trust and not trust:
            raise UntrustedInputError(
                f"{path}: loading a {spec.name} file runs arbitrary code stored in it; verify it only if you trust "
                "its source, with trust=True (--trust-pickle on the command line)"
            )
        runner = SklearnRunner(spec.load_native(path), description=f"{path.name}")
    else:
        # files libhdf5 parses are read in a child process with a time limit, as `nnconvert convert` does:
        # a corrupt one can hang libhdf5 itself (SECURITY.md)
        format_name = None if spec is None else spec.name
        runner = IRRunner(load(path, format_name, trust=trust, timeout=default_read_timeout(path)), description=str(path))
    runner.path = path
    return runner
