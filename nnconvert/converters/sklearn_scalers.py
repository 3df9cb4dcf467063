"""scikit-learn's scalers <-> the graph's preprocessing steps, op for op.

StandardScaler, MinMaxScaler and MaxAbsScaler read into steps that perform the same
elementwise operations in the same order (so float64 results stay bit-identical), and
steps of those kinds rebuilt as fitted scalers; steps from other sources (ai.onnx.ml
Scaler, Keras, ONNX constants) split into runs that scalers compute. Kept apart from the MLP converter in
``sklearn.py``, which decides what a step may be.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ..errors import UnsupportedModelError
from ..ir import ElementwiseOp, PreprocessStep

__all__ = ["SCALER_KINDS", "KIND_CLASSES", "scaler_step", "as_scaler_steps", "build_scaler", "python_number", "per_feature"]

SCALER_KINDS = {
    "StandardScaler": "standard_scaler",
    "MinMaxScaler": "minmax_scaler",
    "MaxAbsScaler": "maxabs_scaler",
}
KIND_CLASSES = {kind: cls for cls, kind in SCALER_KINDS.items()}


def scaler_step(name: str, scaler: Any, dtype: np.dtype) -> PreprocessStep | None:
    """The graph step performing a fitted scaler's arithmetic, op for op (None for an identity scaler)."""
    kind = SCALER_KINDS[_scaler_class_name(scaler)]
    if kind == "standard_scaler":
        ops, params = _standard_ops(scaler, dtype)
    elif kind == "minmax_scaler":
        ops, params = _minmax_ops(scaler)
    else:
        ops, params = _maxabs_ops(scaler)
    if not ops:
        return None  # StandardScaler(with_mean=False, with_std=False) is the identity
    return PreprocessStep(kind=kind, ops=tuple(ops), name=name, params=params)


def _scaler_class_name(scaler: Any) -> str:
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

    for cls in (StandardScaler, MinMaxScaler, MaxAbsScaler):
        if isinstance(scaler, cls):
            return cls.__name__
    raise UnsupportedModelError(f"unsupported scaler {type(scaler).__module__}.{type(scaler).__qualname__}")  # pragma: no cover - checked before


def _standard_ops(scaler: Any, dtype: np.dtype) -> tuple[list[ElementwiseOp], dict[str, Any]]:
    # StandardScaler.transform casts mean_ and scale_ to the input's dtype before operating;
    # the IR computes in the model's dtype, so the operands are cast the same way.
    ops = []
    if scaler.with_mean:
        ops.append(ElementwiseOp("sub", np.asarray(scaler.mean_).astype(dtype)))
    if scaler.with_std:
        ops.append(ElementwiseOp("div", np.asarray(scaler.scale_).astype(dtype)))
    return ops, {"with_mean": bool(scaler.with_mean), "with_std": bool(scaler.with_std)}


def _minmax_ops(scaler: Any) -> tuple[list[ElementwiseOp], dict[str, Any]]:
    # operands keep the fitted dtype: transform multiplies by scale_ as stored
    scale = np.array(scaler.scale_, copy=True)
    ops = [ElementwiseOp("mul", scale), ElementwiseOp("add", np.array(scaler.min_, copy=True))]
    feature_range = [python_number(v) for v in scaler.feature_range]
    clip = bool(getattr(scaler, "clip", False))
    if clip:
        ops.append(ElementwiseOp("clip", np.asarray(feature_range, dtype=scale.dtype)))
    return ops, {"feature_range": feature_range, "clip": clip}


def _maxabs_ops(scaler: Any) -> tuple[list[ElementwiseOp], dict[str, Any]]:
    scale = np.array(scaler.scale_, copy=True)
    ops = [ElementwiseOp("div", scale)]
    clip = bool(getattr(scaler, "clip", False))  # MaxAbsScaler has clip since scikit-learn 1.8
    if clip:
        ops.append(ElementwiseOp("clip", np.asarray([-1.0, 1.0], dtype=scale.dtype)))
    return ops, {"clip": clip}


# Steps from other sources (Keras Normalization/Rescaling, ai.onnx.ml Scaler, foreign ONNX
# constants) become a run of scikit-learn scalers whose transforms compute the same operations
# in the same order. StandardScaler computes ``x - mean_`` then ``/ scale_`` (either may be
# off); MinMaxScaler ``x * scale_ + min_`` then an optional clip to its feature range.
_STANDARD_RUN = ("sub", "div")
_MINMAX_RUN = ("mul", "add", "clip")


def as_scaler_steps(step: PreprocessStep) -> tuple[PreprocessStep, ...]:
    """``step`` as consecutive scikit-learn scaler steps doing the same operations.

    Covering an operation a MinMaxScaler always performs adds a neutral one: ``* 1`` is exact;
    ``+ 0`` is exact except that it turns -0.0 into +0.0, which compare equal and change no
    later sum (ai.onnx.ml Scaler's ``(x - offset) * scale`` is such a case). A step
    with an operation no scaler performs is returned unchanged, and refused by name afterwards.
    """
    if step.kind in KIND_CLASSES:
        return (step,)
    runs = _scaler_runs(list(step.ops))
    if runs is None:
        return (step,)
    return tuple(replace(step, kind=kind, ops=tuple(ops), params={}) for kind, ops in runs)


def _scaler_runs(ops: list[ElementwiseOp]) -> list[tuple[str, list[ElementwiseOp]]] | None:
    """Split ``ops`` into the longest runs one scaler computes (None when an op fits no scaler)."""
    runs: list[tuple[str, list[ElementwiseOp]]] = []
    while ops:
        kind, order = ("standard_scaler", _STANDARD_RUN) if ops[0].op in _STANDARD_RUN else ("minmax_scaler", _MINMAX_RUN)
        run = _leading_run(ops, order)
        if not run:
            return None
        ops = ops[len(run) :]
        runs.append((kind, _complete_minmax(run) if kind == "minmax_scaler" else run))
    return runs


def _leading_run(ops: list[ElementwiseOp], order: tuple[str, ...]) -> list[ElementwiseOp]:
    """The longest prefix of ``ops`` whose op names appear in ``order``'s order, each at most once."""
    run: list[ElementwiseOp] = []
    position = 0
    for op in ops:
        if op.op not in order[position:]:
            break
        position = order.index(op.op, position) + 1
        run.append(op)
    return run


def _complete_minmax(run: list[ElementwiseOp]) -> list[ElementwiseOp]:
    """A MinMaxScaler's mul, add (and clip): absent ones as neutral operands of the run's dtype."""
    present = {op.op: op for op in run}
    dtype = run[0].operand.dtype
    ops = [present.get("mul") or ElementwiseOp("mul", np.ones((), dtype)), present.get("add") or ElementwiseOp("add", np.zeros((), dtype))]
    return ops + ([present["clip"]] if "clip" in present else [])


def python_number(value: Any) -> int | float:
    value = value.item() if isinstance(value, np.generic) else value
    return value if isinstance(value, int) and not isinstance(value, bool) else float(value)


def per_feature(operand: np.ndarray, n_features: int, dtype: Any = None) -> np.ndarray:
    """A writeable per-feature array (a scalar operand is broadcast, which computes the same)."""
    values = np.array(operand, dtype=dtype, copy=True)
    return np.full(n_features, values.reshape(-1)[0], dtype=values.dtype) if values.size == 1 else values.reshape(-1)


def build_scaler(step: PreprocessStep, n_features: int, settings: dict[str, Any]) -> Any:
    """A fitted scikit-learn scaler computing ``step`` (``settings``: its constructor arguments, checked by the caller)."""
    operands = {op.op: op.operand for op in step.ops}
    if step.kind == "standard_scaler":
        scaler = _standard_scaler(settings, operands, n_features)
    elif step.kind == "minmax_scaler":
        scaler = _minmax_scaler(settings, operands, n_features)
    else:
        scaler = _maxabs_scaler(settings, operands, n_features)
    scaler.n_features_in_ = n_features
    # the number of samples the scaler was fitted on is not part of the graph
    scaler.n_samples_seen_ = 0
    return scaler


def _standard_scaler(settings: dict[str, Any], operands: dict[str, np.ndarray], n_features: int) -> Any:
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler(**settings)
    # float64 like a fitted scaler's; transform casts them to the input's dtype, which gives back
    # the operands exactly. mean_ is unknown (None) when the step does not center.
    scaler.mean_ = per_feature(operands["sub"], n_features, np.float64) if settings["with_mean"] else None
    if settings["with_std"]:
        scaler.scale_ = per_feature(operands["div"], n_features, np.float64)
        scaler.var_ = scaler.scale_**2
    else:
        scaler.scale_ = None
        scaler.var_ = None
    return scaler


def _minmax_scaler(settings: dict[str, Any], operands: dict[str, np.ndarray], n_features: int) -> Any:
    from sklearn.preprocessing import MinMaxScaler

    scaler = MinMaxScaler(**settings)
    scaler.scale_ = per_feature(operands["mul"], n_features)
    scaler.min_ = per_feature(operands["add"], n_features)
    low, high = settings["feature_range"]
    # inverting scale_ = (high - low) / data_range_ and min_ = low - data_min_ * scale_
    scaler.data_range_ = (high - low) / scaler.scale_
    scaler.data_min_ = (low - scaler.min_) / scaler.scale_
    scaler.data_max_ = scaler.data_min_ + scaler.data_range_
    return scaler


def _maxabs_scaler(settings: dict[str, Any], operands: dict[str, np.ndarray], n_features: int) -> Any:
    from sklearn.preprocessing import MaxAbsScaler

    scaler = MaxAbsScaler(**settings) if settings["clip"] else MaxAbsScaler()
    scaler.scale_ = per_feature(operands["div"], n_features)
    scaler.max_abs_ = scaler.scale_.copy()
    return scaler
