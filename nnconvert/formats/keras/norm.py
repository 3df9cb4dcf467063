"""Keras BatchNormalization, LayerNormalization and PReLU layers as IR layers (config and weights as data)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ...errors import ReadError
from ...ir import BatchNormLayer, LayerNormLayer, PReLULayer
from .config import Layer, is_number

NORM_LAYERS = frozenset({"BatchNormalization", "LayerNormalization", "PReLU"})

Weights = list[tuple[str, np.ndarray]]
Fail = Callable[[str], ReadError]


def _feature_axis(axis: Any) -> bool:
    return axis in (-1, 1, [-1], [1])


def _arrays(weights: Weights, roles: Sequence[str], where: str, fail: Fail) -> dict[str, np.ndarray]:
    """The saved arrays by role: by name when every weight is named after a role, else by position."""
    named = dict(weights)
    if len(named) == len(weights) and set(named) <= set(roles):
        if set(named) != set(roles):
            raise fail(f"{where} saved weights {sorted(named)}, expected {list(roles)}")
        return {role: np.asarray(named[role]).reshape(-1) for role in roles}
    if len(weights) != len(roles):
        raise fail(f"{where} has {len(weights)} saved weights, expected {len(roles)} ({', '.join(roles)})")
    return {role: np.asarray(array).reshape(-1) for role, (_, array) in zip(roles, weights, strict=True)}


def read_norm_layer(layer: Layer, weights: Weights, where: str, fail: Fail) -> BatchNormLayer | LayerNormLayer | PReLULayer | str:
    """The IR layer, or the reason the configuration cannot be expressed."""
    config = layer.config
    if layer.class_name == "PReLU":
        shared = config.get("shared_axes")
        if shared not in (None, [], [1]):
            return f"PReLU with shared_axes={shared!r}"
        slopes = _arrays(weights, ("alpha",), where, fail)["alpha"]
        return PReLULayer(slopes, name=layer.name)
    if not _feature_axis(config.get("axis", -1)):
        return f"{layer.class_name} over axis {config.get('axis')!r} (only the feature axis is)"
    epsilon = config.get("epsilon", 1e-3)
    if not is_number(epsilon):
        return f"{layer.class_name} with epsilon {epsilon!r}"
    center, scale = config.get("center", True) is not False, config.get("scale", True) is not False
    roles = (["gamma"] if scale else []) + (["beta"] if center else [])
    if layer.class_name == "LayerNormalization":
        if config.get("rms_scaling"):
            return "LayerNormalization with rms_scaling=True"
        found = _arrays(weights, roles, where, fail) if roles else {}
        return LayerNormLayer(float(epsilon), found.get("gamma"), found.get("beta"), name=layer.name)
    found = _arrays(weights, roles + ["moving_mean", "moving_variance"], where, fail)
    return BatchNormLayer(
        found["moving_mean"],
        found["moving_variance"],
        float(epsilon),
        found.get("gamma"),
        found.get("beta"),
        name=layer.name,
    )
