"""scikit-learn estimators <-> IR.

Supported: fitted ``MLPClassifier`` (binary, multiclass, multilabel) and
``MLPRegressor`` (squared error or Poisson loss), alone or at the end of a
``Pipeline`` whose other steps are ``StandardScaler``, ``MinMaxScaler`` or
``MaxAbsScaler``. The scalers become preprocessing steps holding the exact
operations of their ``transform``, so float64 results stay bit-identical, and
:func:`to_sklearn` rebuilds fitted estimators whose ``predict`` and
``predict_proba`` match the original's bit for bit.

scikit-learn is imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..errors import InvalidModelError, UnsupportedModelError
from ..ir import (
    Activation,
    DenseLayer,
    Head,
    InputSpec,
    Metadata,
    Model,
    PreprocessStep,
    Task,
    require_supported,
)
from .sklearn_scalers import KIND_CLASSES, as_scaler_steps, build_scaler, python_number, scaler_step

__all__ = ["from_sklearn", "to_sklearn", "SUPPORTED", "SKLEARN_LAYER_KINDS"]

# scikit-learn's MLPs are dense layers only
SKLEARN_LAYER_KINDS = ("dense",)

SUPPORTED = (
    "MLPClassifier, MLPRegressor, or a Pipeline of StandardScaler / MinMaxScaler / MaxAbsScaler steps "
    "ending in one of them"
)

# scikit-learn's names for the activations its MLPs can use between layers
_HIDDEN_ACTIVATIONS = {
    "identity": Activation.IDENTITY,
    "logistic": Activation.LOGISTIC,
    "tanh": Activation.TANH,
    "relu": Activation.RELU,
}
_OUTPUT_ACTIVATIONS = {
    "identity": Activation.IDENTITY,
    "logistic": Activation.LOGISTIC,
    "softmax": Activation.SOFTMAX,
    "exp": Activation.EXP,
}
_Y_TYPE_TASKS = {"binary": Task.BINARY, "multiclass": Task.MULTICLASS, "multilabel-indicator": Task.MULTILABEL}


# Metadata properties through which a round trip keeps what the graph has no field for.
_PARAMS_KEY = "sklearn.params"
_ESTIMATOR_KEY = "sklearn.estimator"
_FINAL_STEP_KEY = "sklearn.final_step"
_CLASSES_DTYPE_KEY = "sklearn.classes_dtype"

# the dtypes scikit-learn's MLPs compute in
_SKLEARN_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Constructor parameters decided by the graph itself, never taken from the metadata.
_STRUCTURAL_PARAMS = ("hidden_layer_sizes", "activation", "loss")
# Pipeline's own constructor arguments: a step may not be named like one.
_RESERVED_STEP_NAMES = ("steps", "memory", "verbose", "transform_input")


# -- scikit-learn -> IR -----------------------------------------------------


def from_sklearn(estimator: Any, *, copy: bool = False) -> Model:
    """The IR of a fitted scikit-learn MLP (or a Pipeline of scalers ending in one).

    By default the model's weights are read-only views of the estimator's
    ``coefs_`` and ``intercepts_``: converting a large model costs no copy of
    its weights, and the model can never write into the estimator. The views
    follow the estimator, though: training it further (``partial_fit``, a
    ``warm_start`` fit) updates those arrays in place and so changes the model
    too. Convert again after training, or pass ``copy=True`` to keep a
    snapshot that later training does not touch.

    Args:
        estimator: a fitted ``MLPClassifier``/``MLPRegressor``, or a fitted
            ``Pipeline`` of StandardScaler/MinMaxScaler/MaxAbsScaler steps ending in one.
        copy: copy the weights instead of viewing them (doubles the memory the weights take).

    Returns:
        The model graph (its weights views or, with ``copy``, copies of the estimator's).

    Raises:
        UnsupportedModelError: the estimator (or one of its pipeline steps) is not supported; the
            message lists every offending step and what is supported.
        InvalidModelError: the estimator or one of its steps is not fitted (an unfitted estimator holds
            no model to convert, whatever nnconvert supports), or its fitted state is inconsistent.
    """
    named_steps = _flatten(estimator)
    scalers, mlp, mlp_name = _split_steps(estimator, named_steps)
    for name, step in [*scalers, (mlp_name, mlp)]:
        _check_fitted(step, name)
    layers = _dense_layers(mlp, copy)
    dtype = layers[0].weights.dtype
    steps = [step for name, scaler in scalers if (step := scaler_step(name, scaler, dtype)) is not None]
    first = scalers[0][1] if scalers else mlp
    return Model(
        layers=tuple(layers),
        head=_head(mlp),
        input=_input_spec(first, mlp),
        steps=tuple(steps),
        metadata=_metadata(estimator, mlp, mlp_name),
    )


def _class_path(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _flatten(estimator: Any, name: str = "") -> list[tuple[str, Any]]:
    """(name, estimator) pairs with nested pipelines expanded and passthrough steps dropped."""
    from sklearn.pipeline import Pipeline

    if not isinstance(estimator, Pipeline):
        return [(name, estimator)]
    flat = []
    for step_name, step in estimator.steps:
        if step is None or (isinstance(step, str) and step == "passthrough"):
            continue
        flat.extend(_flatten(step, str(step_name)))
    return flat


def _split_steps(estimator: Any, named_steps: list[tuple[str, Any]]) -> tuple[list[tuple[str, Any]], Any, str]:
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

    is_pipeline = isinstance(estimator, Pipeline)
    if not is_pipeline and not isinstance(estimator, (MLPClassifier, MLPRegressor)):
        raise UnsupportedModelError(f"cannot convert a {_class_path(estimator)}; nnconvert supports {SUPPORTED}")
    problems = []
    if not named_steps:
        problems.append("the pipeline has no steps")
    scaler_types = (StandardScaler, MinMaxScaler, MaxAbsScaler)
    for index, (name, step) in enumerate(named_steps[:-1]):
        if not isinstance(step, scaler_types):
            problems.append(
                f"step {index} ({name!r}): {_class_path(step)} is not supported before the MLP; "
                "supported steps are StandardScaler, MinMaxScaler, MaxAbsScaler"
            )
    if named_steps and not isinstance(named_steps[-1][1], (MLPClassifier, MLPRegressor)):
        name, step = named_steps[-1]
        problems.append(
            f"step {len(named_steps) - 1} ({name!r}): the pipeline must end in an MLPClassifier or "
            f"MLPRegressor, not a {_class_path(step)}"
        )
    if problems:
        raise UnsupportedModelError(f"cannot convert this Pipeline; nnconvert supports {SUPPORTED}:", problems)
    mlp_name, mlp = named_steps[-1]
    return named_steps[:-1], mlp, mlp_name


def _check_fitted(estimator: Any, name: str) -> None:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(estimator)
    except NotFittedError as exc:
        where = f"pipeline step {name!r}: " if name else ""
        raise InvalidModelError(f"{where}{exc} Only fitted estimators hold a model to convert.") from exc


def _dense_layers(mlp: Any, copy: bool) -> list[DenseLayer]:
    name = type(mlp).__name__
    hidden = _HIDDEN_ACTIVATIONS.get(mlp.activation)
    output = _OUTPUT_ACTIVATIONS.get(str(getattr(mlp, "out_activation_", "")))
    if hidden is None or output is None:
        raise UnsupportedModelError(
            f"cannot convert this {name}: activation {mlp.activation!r} / out_activation_ "
            f"{getattr(mlp, 'out_activation_', None)!r}; supported are {sorted(_HIDDEN_ACTIVATIONS)} "
            f"between layers and {sorted(_OUTPUT_ACTIVATIONS)} at the output"
        )
    coefs, intercepts = list(mlp.coefs_), list(mlp.intercepts_)
    if len(coefs) != len(intercepts) or not coefs:
        raise InvalidModelError(
            f"this {name} has {len(coefs)} weight matrices (coefs_) but {len(intercepts)} bias vectors (intercepts_)"
        )
    last = len(coefs) - 1
    # the IR makes read-only views of ndarrays: without ``copy`` no weight is duplicated
    return [
        DenseLayer(
            weights=np.array(weights, copy=True) if copy else np.asarray(weights),
            bias=np.array(bias, copy=True) if copy else np.asarray(bias),
            activation=output if index == last else hidden,
            name=f"dense_{index}",
        )
        for index, (weights, bias) in enumerate(zip(coefs, intercepts, strict=True))
    ]


def _head(mlp: Any) -> Head:
    from sklearn.neural_network import MLPClassifier

    if not isinstance(mlp, MLPClassifier):
        return Head(Task.REGRESSION)
    y_type = mlp._label_binarizer.y_type_
    task = _Y_TYPE_TASKS.get(y_type)
    if task is None:
        raise UnsupportedModelError(
            f"cannot convert this MLPClassifier: its targets are {y_type!r}; supported are {sorted(_Y_TYPE_TASKS)}"
        )
    classes = np.asarray(mlp.classes_)
    if task == Task.MULTICLASS and len(classes) == 2:
        task = Task.BINARY  # two softmax outputs, as to_sklearn builds for a two-output binary head
    return Head(task, classes=classes.copy())


def _input_spec(first: Any, mlp: Any) -> InputSpec:
    names = getattr(first, "feature_names_in_", None)
    n_features = getattr(first, "n_features_in_", None)
    if n_features is None:
        n_features = np.shape(mlp.coefs_[0])[0]
    return InputSpec(n_features=int(n_features), feature_names=None if names is None else tuple(names))


def _plain_params(estimator: Any) -> dict[str, Any]:
    """Constructor parameters that survive JSON unchanged (random_state=RandomState(...) does not)."""
    plain = {}
    for key, value in estimator.get_params(deep=False).items():
        if isinstance(value, tuple | list) and all(isinstance(v, int | float) for v in value):
            value = list(value)
        elif isinstance(value, np.generic):
            value = value.item()
        if value is None or isinstance(value, str | int | float | bool | list):
            plain[key] = value
    return plain


def _metadata(estimator: Any, mlp: Any, mlp_name: str) -> Metadata:
    import sklearn

    from .. import __version__

    properties = {_ESTIMATOR_KEY: type(mlp).__name__, _PARAMS_KEY: json.dumps(_plain_params(mlp), sort_keys=True)}
    if mlp_name:
        properties[_FINAL_STEP_KEY] = mlp_name
    classes = getattr(mlp, "classes_", None)
    if classes is not None and np.asarray(classes).dtype == object:
        properties[_CLASSES_DTYPE_KEY] = "object"  # the IR keeps them as str; restore the object array
    return Metadata(
        producer=f"nnconvert {__version__}",
        source_framework="scikit-learn",
        source_class=type(estimator).__name__,
        source_version=sklearn.__version__,
        properties=properties,
    )


# -- IR -> scikit-learn -----------------------------------------------------


def to_sklearn(model: Model, *, restore_source_dtype: bool = True, fold_batchnorm: bool = False) -> Any:
    """A fitted scikit-learn estimator computing exactly what ``model`` computes.

    Args:
        model: the model graph.
        fold_batchnorm: fold inference batch norm layers into the adjacent dense layer (close, not
            bit-identical: ``verify`` reports the difference); without it they are refused.
        restore_source_dtype: when the model is an exact upcast of a narrower source (a float32 estimator
            written as float64: ``model.metadata.source_dtype`` says so and every value is exactly a float32),
            rebuild the float32 original (``Model.as_source_dtype()``), whose predictions are the original
            estimator's bit for bit. False keeps the model's own dtype.

    Returns:
        A fitted ``MLPClassifier`` or ``MLPRegressor``, or a ``Pipeline`` of the rebuilt scalers ending
        in one when the model has preprocessing steps. Its weights are copies in the model's dtype (or,
        restored, in its source's).

    Raises:
        UnsupportedModelError: scikit-learn cannot express the model (mixed or unsupported hidden
            activations, an output activation that does not fit the task, preprocessing other than
            the three scalers, a raw head); every problem is listed with its layer or step.
            An int8 model is refused (scikit-learn computes in float only): pass ``model.dequantized()``.
    """
    from ..quantization import refuse_quantized

    # before folding: a fold rewrites dense weights, which an int8 layer does not hold as floats
    refuse_quantized(model, "scikit-learn", "to_sklearn(model.dequantized()), or --dequantize on the command line")
    if fold_batchnorm and "batch_norm" in model.layer_kinds:
        from ..fold import fold_batch_norms

        model = fold_batch_norms(model)[0]
    hint = "pass fold_batchnorm=True (--fold-batchnorm) to fold batch norms into dense layers" if "batch_norm" in model.layer_kinds else ""
    require_supported(model, "scikit-learn", SKLEARN_LAYER_KINDS, hint=hint)
    if restore_source_dtype:
        restored = model.as_source_dtype()
        if restored.dtype in _SKLEARN_DTYPES:  # a float16 source stays in the file's dtype
            model = restored
    model = replace(model, steps=tuple(split for step in model.steps for split in as_scaler_steps(step)))
    problems = _expressibility_problems(model)
    if problems:
        raise UnsupportedModelError(
            "scikit-learn cannot express this model (its MLPs use one hidden activation among identity, "
            "logistic, tanh, relu; softmax/logistic outputs for classifiers, identity/exp for regressors; "
            "and Pipelines of StandardScaler, MinMaxScaler, MaxAbsScaler):",
            problems,
        )
    mlp = _build_mlp(model)
    if not model.steps:
        _set_input_attributes(mlp, model)
        return mlp
    return _build_pipeline(model, mlp)


def _where(model: Model, index: int) -> str:
    layer = model.layers[index]
    return f"layer {index} ({layer.name or f'dense_{index}'!r})"


def _expressibility_problems(model: Model) -> list[str]:
    problems = _hidden_problems(model) + _output_problems(model)
    for index, step in enumerate(model.steps):
        problems.extend(_step_problems(step, index))
    if model.dtype not in _SKLEARN_DTYPES:
        problems.append(
            f"the weights are {model.dtype}; scikit-learn's MLPs compute in float32 or float64 "
            "(cast the model with model.astype('float32') first)"
        )
    return problems


def _hidden_problems(model: Model) -> list[str]:
    problems = []
    reference: tuple[int, Activation] | None = None
    for index, layer in enumerate(model.layers[:-1]):
        if layer.activation_params and layer.activation.value in _HIDDEN_ACTIVATIONS:
            problems.append(
                f"{_where(model, index)}: activation {layer.activation.value} with {dict(layer.activation_params)} "
                f"is not available in scikit-learn, whose {layer.activation.value} takes no parameters"
            )
        elif layer.activation.value not in _HIDDEN_ACTIVATIONS:
            problems.append(
                f"{_where(model, index)}: activation {layer.activation.value} is not available in scikit-learn, "
                f"whose hidden layers use one of {', '.join(_HIDDEN_ACTIVATIONS)}"
            )
        elif reference is None:
            reference = (index, layer.activation)
        elif layer.activation != reference[1]:
            problems.append(
                f"{_where(model, index)}: activation {layer.activation.value} differs from "
                f"{_where(model, reference[0])}'s {reference[1].value}; scikit-learn uses one activation "
                "for every hidden layer"
            )
    return problems


def _expected_outputs(model: Model) -> tuple[Activation, ...]:
    task = model.task
    if task == Task.BINARY:
        return (Activation.LOGISTIC,) if model.n_outputs == 1 else (Activation.SOFTMAX,)
    if task == Task.MULTICLASS:
        return (Activation.SOFTMAX,)
    if task == Task.MULTILABEL:
        return (Activation.LOGISTIC,)
    return (Activation.IDENTITY, Activation.EXP) if _sklearn_has_exp_output() else (Activation.IDENTITY,)


def _sklearn_has_exp_output() -> bool:
    from sklearn.neural_network._base import ACTIVATIONS  # loss="poisson" (exp output) came in scikit-learn 1.7

    return "exp" in ACTIVATIONS


def _output_problems(model: Model) -> list[str]:
    last = len(model.layers) - 1
    if model.task == Task.RAW:
        return [
            "head: the task is raw (outputs without a meaning); scikit-learn needs a classification task with "
            "class labels (MLPClassifier) or a regression task (MLPRegressor); set the head's task"
        ]
    expected = _expected_outputs(model)
    activation = model.output_activation
    if activation in expected and not model.layers[-1].activation_params:
        return []
    names = " or ".join(a.value for a in expected)
    return [
        f"{_where(model, last)}, the output: activation {activation.value} does not fit a {model.task.value} head "
        f"with {model.n_outputs} output(s); scikit-learn computes {names} there"
    ]


def _step_where(step: PreprocessStep, index: int) -> str:
    return f"preprocessing step {index} ({step.name or step.kind!r})"


def _step_problems(step: PreprocessStep, index: int) -> list[str]:
    where = _step_where(step, index)
    if step.kind not in KIND_CLASSES:
        source = (
            "an affine step from another source (not a scikit-learn scaler)"
            if step.kind == "affine"
            else (f"kind {step.kind!r}")
        )
        return [
            f"{where}: {source} has no scikit-learn equivalent here; supported preprocessing is "
            "StandardScaler, MinMaxScaler, MaxAbsScaler"
        ]
    try:
        _scaler_settings(step)
    except ValueError as exc:
        return [f"{where}: {exc}"]
    return []


def _op_names(step: PreprocessStep) -> list[str]:
    return [op.op for op in step.ops]


def _scaler_settings(step: PreprocessStep) -> dict[str, Any]:
    """The scaler's constructor settings, checked against its operations (ValueError when they disagree)."""
    ops = _op_names(step)
    if step.kind == "standard_scaler":
        settings = {
            "with_mean": bool(step.params.get("with_mean", "sub" in ops)),
            "with_std": bool(step.params.get("with_std", "div" in ops)),
        }
        expected = ["sub"] * settings["with_mean"] + ["div"] * settings["with_std"]
    elif step.kind == "minmax_scaler":
        settings = _minmax_settings(step)
        expected = ["mul", "add"] + ["clip"] * settings["clip"]
    else:
        settings = {"clip": bool(step.params.get("clip", "clip" in ops))}
        expected = ["div"] + ["clip"] * settings["clip"]
        _check_maxabs_clip(step, settings["clip"])
    if ops != expected:
        raise ValueError(f"a {KIND_CLASSES[step.kind]} with {settings} computes {expected}, but the step has {ops}")
    return settings


def _minmax_settings(step: PreprocessStep) -> dict[str, Any]:
    ops = _op_names(step)
    clip = bool(step.params.get("clip", "clip" in ops))
    feature_range = step.params.get("feature_range")
    if feature_range is None:
        feature_range = step.ops[-1].operand.tolist() if clip and ops[-1:] == ["clip"] else [0, 1]
    if not isinstance(feature_range, Sequence) or len(feature_range) != 2:
        raise ValueError(f"feature_range must be [low, high], got {feature_range!r}")
    feature_range = [python_number(v) for v in feature_range]
    if clip and ops[-1:] == ["clip"] and step.ops[-1].operand.tolist() != [float(v) for v in feature_range]:
        raise ValueError(
            f"clips to {step.ops[-1].operand.tolist()} but its feature_range is {feature_range}; "
            "MinMaxScaler clips to its feature_range"
        )
    return {"feature_range": tuple(feature_range), "clip": clip}


def _check_maxabs_clip(step: PreprocessStep, clip: bool) -> None:
    if not clip:
        return
    from sklearn.preprocessing import MaxAbsScaler

    if "clip" not in MaxAbsScaler().get_params():
        raise ValueError("MaxAbsScaler(clip=True) needs scikit-learn 1.8 or later")
    if step.ops[-1].op == "clip" and step.ops[-1].operand.tolist() != [-1.0, 1.0]:
        raise ValueError(f"clips to {step.ops[-1].operand.tolist()}, but MaxAbsScaler clips to [-1, 1]")


# -- building the estimators --------------------------------------------------


def _saved_params(model: Model, cls: type) -> dict[str, Any]:
    """The original constructor parameters kept in the metadata, when they were this class's."""
    properties = model.metadata.properties
    if properties.get(_ESTIMATOR_KEY) != cls.__name__:
        return {}
    try:
        saved = json.loads(properties.get(_PARAMS_KEY, "{}"))
    except ValueError:
        return {}  # they only restore hyperparameters; predictions never depend on them
    if not isinstance(saved, Mapping):
        return {}
    valid = cls().get_params(deep=False)
    return {key: value for key, value in saved.items() if key in valid and key not in _STRUCTURAL_PARAMS}


def _build_mlp(model: Model) -> Any:
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    cls = MLPClassifier if model.head.is_classifier else MLPRegressor
    hidden = model.dense_layers[0].activation.value if len(model.dense_layers) > 1 else "relu"
    structure: dict[str, Any] = {
        "hidden_layer_sizes": tuple(layer.n_outputs for layer in model.dense_layers[:-1]),
        "activation": hidden,
    }
    # MLPRegressor takes loss= since scikit-learn 1.7 (before, squared error was its only loss)
    if cls is MLPRegressor and "loss" in cls().get_params(deep=False):
        structure["loss"] = "poisson" if model.output_activation == Activation.EXP else "squared_error"
    mlp = cls(**{**_saved_params(model, cls), **structure})
    # writeable copies in the model's dtype: partial_fit updates them in place
    mlp.coefs_ = [np.array(layer.weights, copy=True) for layer in model.dense_layers]
    mlp.intercepts_ = [np.array(layer.bias, copy=True) for layer in model.dense_layers]
    mlp.n_layers_ = len(model.dense_layers) + 1
    mlp.n_outputs_ = model.n_outputs
    mlp.out_activation_ = model.output_activation.value
    mlp.n_features_in_ = model.n_features
    _set_training_state(mlp)
    if cls is MLPClassifier:
        _set_labels(mlp, model)
    return mlp


def _set_training_state(mlp: Any) -> None:
    # what fit leaves behind and partial_fit / warm_start reads; the loss history is not part of the IR
    mlp.n_iter_ = 0
    mlp.t_ = 0
    mlp.loss_curve_ = []
    mlp.best_loss_ = np.inf
    mlp.validation_scores_ = None
    mlp.best_validation_score_ = None
    mlp._no_improvement_count = 0


def _set_labels(mlp: Any, model: Model) -> None:
    from sklearn.preprocessing import LabelBinarizer

    classes = np.array(model.classes, copy=True)
    if model.metadata.properties.get(_CLASSES_DTYPE_KEY) == "object":
        classes = classes.astype(object)
    if model.task == Task.MULTILABEL:
        y_type = "multilabel-indicator"
    elif model.task == Task.BINARY and model.n_outputs == 1:
        y_type = "binary"
    else:
        y_type = "multiclass"  # argmax over the outputs, also for a binary head with two softmax outputs
    binarizer = LabelBinarizer()
    # set, not fitted: fitting on the labels would re-derive (and for float labels refuse) the target type
    binarizer.y_type_ = y_type
    binarizer.sparse_input_ = False
    binarizer.classes_ = classes
    mlp._label_binarizer = binarizer
    mlp.classes_ = classes


def _set_input_attributes(estimator: Any, model: Model) -> None:
    estimator.n_features_in_ = model.n_features
    if model.input.feature_names is not None:
        estimator.feature_names_in_ = np.asarray(model.input.feature_names, dtype=object)


def _build_pipeline(model: Model, mlp: Any) -> Any:
    from sklearn.pipeline import Pipeline

    scalers = [build_scaler(step, model.n_features, _scaler_settings(step)) for step in model.steps]
    names = [step.name for step in model.steps] + [model.metadata.properties.get(_FINAL_STEP_KEY, "")]
    defaults = [type(est).__name__.lower() for est in [*scalers, mlp]]
    _set_input_attributes(scalers[0], model)
    return Pipeline(list(zip(_step_names(names, defaults), [*scalers, mlp], strict=True)))


def _step_names(names: list[str], defaults: list[str]) -> list[str]:
    """Valid, distinct Pipeline step names: the recorded ones when usable, else make_pipeline's."""
    chosen = [
        name if name and "__" not in name and name not in _RESERVED_STEP_NAMES else default
        for name, default in zip(names, defaults, strict=True)
    ]
    counts = {name: chosen.count(name) for name in chosen}
    seen: dict[str, int] = {}
    unique = []
    for name in chosen:
        if counts[name] > 1:
            seen[name] = seen.get(name, 0) + 1
            name = f"{name}-{seen[name]}"
        unique.append(name)
    return unique


