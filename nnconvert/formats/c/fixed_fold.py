"""What the integer precisions can hold: the model brought to dense layers with integer activations.

The fixed-point code is a chain of dense layers, each followed by one activation
computed in integers. Before planning, the model is rewritten (at generation
time, in float64, by :func:`nnconvert.fold.fold_batch_norms`):

- an inference batch norm is folded into the adjacent dense layer (the one
  before it when that has no activation, else the one after it);
- an activation layer directly after a dense layer without activation becomes
  that layer's activation, and so does a PReLU layer (per-unit slopes).

The folding changes rounding only; the error bound in the header is measured
against the original float64 graph, so it includes it. Everything else is
refused by name with the reason and the float precision to use instead; the
integer code never approximates silently.
"""

from __future__ import annotations

from ...errors import UnsupportedModelError
from ...fold import fold_batch_norms
from ...ir import Activation, ActivationLayer, DenseLayer, LayerNormLayer, Model, PReLULayer, layer_names

__all__ = ["FIXED_ACTIVATIONS", "fixed_layers", "activation_problem"]

# format 1.0's activations, and the 1.1 elementwise ones that are piecewise linear, a table or one division
FIXED_ACTIVATIONS = frozenset(list(Activation)[: list(Activation).index(Activation.HARD_SIGMOID) + 1]) | {
    Activation.CLIP, Activation.SOFTSIGN, Activation.HARDSWISH, Activation.MISH
}  # fmt: skip
HINT = "use precision float32 (--precision float32) for this model"


def activation_problem(activation: Activation, params: dict, precision: str) -> str | None:
    """Why ``activation`` cannot be computed in integers, or None."""
    if activation == Activation.LOG_SOFTMAX:
        return f"activation log_softmax is not supported at precision {precision}: the integer code has no logarithm; {HINT}"
    if activation not in FIXED_ACTIVATIONS:
        return f"activation {activation.value} is not supported at precision {precision}; {HINT}"
    if activation == Activation.SOFTPLUS and params.get("beta", 1.0) < 1.0:
        # the table ends at 16 and continues as the line y = x, off by log1p(exp(-16 beta)) / beta there
        return f"activation softplus with beta {params['beta']} < 1 is not supported at precision {precision}; {HINT}"
    return None


def fixed_layers(model: Model, precision: str) -> tuple[Model | None, list[str], list[str]]:
    """``(the model with dense layers only and PReLU after an identity dense, notes, problems)``.

    The model is None when there are problems (each names its layer).
    """
    names = layer_names(model.layers)
    problems = []
    for index, layer in enumerate(model.layers):
        where = f"layer {index} ({names[index]!r})"
        if isinstance(layer, LayerNormLayer):
            problems.append(f"{where}: layer_norm is not supported at precision {precision}: it needs a square root and "
                            f"a division per row, which a power-of-two fixed-point scheme cannot hold; {HINT}")  # fmt: skip
            continue
        if isinstance(layer, (DenseLayer, ActivationLayer)):
            problem = activation_problem(layer.activation, dict(layer.activation_params), precision)
            if problem:
                problems.append(f"{where}: {problem}")
    try:
        folded, notes = fold_batch_norms(model)
    except UnsupportedModelError as exc:
        return None, [], problems + [f"{problem} at precision {precision}; {HINT}" for problem in exc.problems]
    for position, layer in enumerate(folded.layers):
        if isinstance(layer, (DenseLayer, LayerNormLayer)):  # layer norm: refused above
            continue
        previous = folded.layers[position - 1] if position else None
        if isinstance(previous, DenseLayer) and previous.activation == Activation.IDENTITY and isinstance(layer, PReLULayer):
            continue
        index = _original_index(model, layer, position)
        what = "a prelu layer" if isinstance(layer, PReLULayer) else f"an activation layer ({layer.activation.value})"
        problems.append(f"layer {index} ({names[index]!r}): {what} is supported at precision {precision} only directly after a "
                        f"dense layer without activation (or a batch norm folded into one); {HINT}")  # fmt: skip
    return (None if problems else folded), notes, problems


def _original_index(model: Model, layer: object, position: int) -> int:
    # the folded model's layers are validated copies: find the original by kind and name
    for index, original in enumerate(model.layers):
        if original.kind == getattr(layer, "kind", None) and original.name and original.name == getattr(layer, "name", None):
            return index
    return position
