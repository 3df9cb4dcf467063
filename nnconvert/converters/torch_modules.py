"""nnconvert's torch modules, for what torch has no standard module for: preprocessing steps and ``exp``.

Imported only by :mod:`nnconvert.converters.torch` (it imports torch at the top,
so that modules holding it can be pickled by reference).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

__all__ = ["Preprocessing", "Exp"]


class Preprocessing(torch.nn.Module):
    """Column-wise arithmetic before the first layer (a scikit-learn scaler, a Keras Normalization...).

    Each operation is ``x <op> operand`` (op one of sub, div, mul, add) or a clip
    to ``[low, high]``; the operands are buffers named ``op0``, ``op1``... so they
    appear in ``state_dict()``. ``kind``, ``name`` and ``params`` record the
    original transformer.
    """

    def __init__(
        self,
        ops: Sequence[str],
        operands: Sequence[torch.Tensor],
        kind: str = "affine",
        name: str = "",
        params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.ops = list(ops)
        self.kind = kind
        self.step_name = name
        self.params = dict(params or {})
        for index, operand in enumerate(operands):
            self.register_buffer(f"op{index}", operand)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index, op in enumerate(self.ops):
            operand = getattr(self, f"op{index}")
            if op == "sub":
                x = x - operand
            elif op == "div":
                x = x / operand
            elif op == "mul":
                x = x * operand
            elif op == "add":
                x = x + operand
            else:  # clip
                x = torch.clamp(x, operand[0], operand[1])
        return x

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, ops={self.ops}"


class Exp(torch.nn.Module):
    """``exp(x)``: the output activation of scikit-learn's Poisson regressor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x)
