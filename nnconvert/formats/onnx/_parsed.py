"""What the graph walk found, before it becomes the IR."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...ir import Activation, Task


@dataclass
class ParsedLayer:
    """One dense layer: weights as (n_in, n_out), with its activation once recognised."""

    weights: np.ndarray
    bias: np.ndarray | None
    node: str  # "Gemm node 'x'" for messages
    name: str
    weight_name: str
    bias_name: str | None = None
    activation: Activation = Activation.IDENTITY
    params: dict[str, Any] = field(default_factory=dict)
    # IR layers (normalizations, PReLU, further activations) between this dense layer and the next
    after: list[Any] = field(default_factory=list)


@dataclass
class ParsedStep:
    """One preprocessing step: its operations in graph order, each with the node it came from."""

    kind: str
    name: str
    ops: list[tuple[str, np.ndarray, str]]  # (op, operand, where)


@dataclass
class ParsedGraph:
    """The whole walk: input, preprocessing, layers and the head the outputs imply."""

    input_name: str
    input_type: int
    declared_width: int | None
    steps: list[ParsedStep]
    layers: list[ParsedLayer]
    task: Task
    classes: np.ndarray | None
