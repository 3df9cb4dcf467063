"""Folding inference batch normalization into the adjacent dense layer, for targets without normalization layers.

Only on request (``fold_batchnorm=True``, ``--fold-batchnorm``): folding changes the rounding, so the
result is close to the original, not identical; ``verify`` reports by how much. A batch norm that
follows a dense layer without activation is folded into it (``W * m``, ``b * m + s``); one that follows
an activation is folded into the next dense layer (``m[:, None] * W``, ``s @ W + b``). An activation
layer that then directly follows a dense layer without activation becomes that layer's activation.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .errors import UnsupportedModelError
from .ir import Activation, ActivationLayer, BatchNormLayer, DenseLayer, Layer, Model, layer_names

__all__ = ["fold_batch_norms"]


def fold_batch_norms(model: Model) -> tuple[Model, list[str]]:
    """``model`` without batch norm layers, and one note per fold.

    Raises:
        UnsupportedModelError: a batch norm has no dense layer to fold into (every such layer named).
    """
    names = layer_names(model.layers)
    layers: list[Layer] = list(model.layers)
    notes: list[str] = []
    problems: list[str] = []
    index = 0
    while index < len(layers):
        layer = layers[index]
        if not isinstance(layer, BatchNormLayer):
            index += 1
            continue
        label = f"layer {model.layers.index(layer)} ({names[model.layers.index(layer)]!r})"
        previous = layers[index - 1] if index > 0 else None
        following = layers[index + 1] if index + 1 < len(layers) else None
        multiplier, shift = layer.multiplier_and_shift()
        if isinstance(previous, DenseLayer) and previous.activation == Activation.IDENTITY:
            layers[index - 1] = replace(previous, weights=previous.weights * multiplier, bias=previous.bias * multiplier + shift)
            notes.append(f"{label}: batch norm folded into the dense layer {previous.name!r} before it")
        elif isinstance(following, DenseLayer):
            weights = multiplier[:, np.newaxis] * following.weights
            layers[index + 1] = replace(following, weights=weights, bias=shift @ following.weights + following.bias)
            notes.append(f"{label}: batch norm folded into the dense layer {following.name!r} after it")
        else:
            problems.append(f"{label}: batch norm with no dense layer to fold into (none without activation before it, none after it)")
            index += 1
            continue
        del layers[index]
    if problems:
        raise UnsupportedModelError("cannot fold every batch normalization", problems)
    return replace(model, layers=tuple(_fused_activations(layers))), notes


def _fused_activations(layers: list[Layer]) -> list[Layer]:
    fused: list[Layer] = []
    for layer in layers:
        previous = fused[-1] if fused else None
        if isinstance(layer, ActivationLayer) and isinstance(previous, DenseLayer) and previous.activation == Activation.IDENTITY:
            fused[-1] = replace(previous, activation=layer.activation, activation_params=layer.activation_params)
        else:
            fused.append(layer)
    return fused
