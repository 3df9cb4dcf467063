"""In-memory framework objects <-> IR."""

from __future__ import annotations

from typing import Any

from ..errors import UnsupportedModelError
from ..ir import Model

__all__ = ["from_object"]


def from_object(obj: Any) -> Model:
    """The IR of a framework object (a scikit-learn estimator or a torch nn.Module)."""
    module = type(obj).__module__.split(".")[0]
    if module == "sklearn":
        from .sklearn import from_sklearn

        return from_sklearn(obj)
    if any(cls.__module__.startswith("torch.nn") for cls in type(obj).__mro__):
        from .torch import from_torch

        return from_torch(obj)
    raise UnsupportedModelError(
        f"cannot convert a {type(obj).__module__}.{type(obj).__qualname__}; expected a file path, "
        "an nnconvert Model, a scikit-learn MLPClassifier/MLPRegressor (or a Pipeline ending in one) or a torch nn.Module"
    )
