"""The array-key scheme: one stable slash path per array of the model graph (and layers' display names).

Every format that stores arrays by name uses these keys: the IR document
(:mod:`nnconvert.serde`) hands them to its array encoder, HDF5 names its
datasets after them, ONNX names its initializers after them, and readers
turn them back into the document's field paths for their error messages.

    layers/<i>/weights    layers/<i>/bias    steps/<s>/ops/<o>
    layers/<i>/mean  .../variance  .../scale  .../offset  (batch_norm, layer_norm)    layers/<i>/slopes (prelu)
    layers/<i>/quantization/values|scale|zero_point   (int8 layers, nnconvert.quantization)

Changing a spelling here changes files on disk: the keys are part of the
formats (docs/formats.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["LAYER_ARRAYS", "layer_array", "layer_prefix", "step_operand", "role", "field_path", "layer_names"]

# every array field of every layer kind (nnconvert._layers: each kind's ARRAYS)
LAYER_ARRAYS = ("weights", "bias", "mean", "variance", "scale", "offset", "slopes")


def layer_prefix(index: int) -> str:
    """``layers/<index>``: the group of layer ``index``'s arrays."""
    return f"layers/{index}"


def layer_array(index: int, role: str) -> str:
    """``layers/<index>/<role>`` for a role of :data:`LAYER_ARRAYS` (``weights``, ``bias``, ``mean``...)."""
    if role not in LAYER_ARRAYS:
        raise ValueError(f"a layer holds {LAYER_ARRAYS}, not {role!r}")
    return f"{layer_prefix(index)}/{role}"


def step_operand(step: int, op: int) -> str:
    """``steps/<step>/ops/<op>``: the operand of a preprocessing operation."""
    return f"steps/{step}/ops/{op}"


def role(key: str) -> str:
    """What a key's array is: one of :data:`LAYER_ARRAYS` or ``"operand"`` (``""`` for keys this scheme does not make)."""
    parts = key.strip("/").split("/")
    if len(parts) == 4 and parts[0] == "steps" and parts[2] == "ops":
        return "operand"
    if len(parts) == 3 and parts[0] == "layers" and parts[2] in LAYER_ARRAYS:
        return parts[2]
    return ""


def field_path(key: str) -> str:
    """A key as the document's field path, for messages: ``layers/0/weights`` -> ``layers[0].weights``.

    Keys this scheme does not make are returned unchanged.
    """
    parts = key.strip("/").split("/")
    if len(parts) == 4 and parts[0] == "steps" and parts[2] == "ops":
        return f"steps[{parts[1]}].ops[{parts[3]}].operand"
    if len(parts) >= 3 and parts[0] == "layers":  # also layers/<i>/quantization/values
        return f"layers[{parts[1]}]." + ".".join(parts[2:])
    return key


def layer_names(layers: Sequence[Any]) -> list[str]:
    """Display names of layers (anything with a ``name``): the layer's own or ``<kind>_<index>`` (``dense_0``)."""
    return [layer.name or f"{getattr(layer, 'kind', 'dense')}_{index}" for index, layer in enumerate(layers)]
