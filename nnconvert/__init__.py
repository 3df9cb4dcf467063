"""nnconvert: convert trained MLPs between scikit-learn, ONNX, JSON weights, HDF5
and Keras files through one model graph, and prove every conversion.

    >>> import nnconvert
    >>> model = nnconvert.from_sklearn(estimator)
    >>> nnconvert.save(model, "model.onnx")
    >>> report = nnconvert.verify(estimator, "model.onnx", X)

The public names are imported on first use, so ``import nnconvert`` (and the
command line's ``--help``) do not pay for numpy, onnx or scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "load": "nnconvert.api",
    "save": "nnconvert.api",
    "convert": "nnconvert.api",
    "from_sklearn": "nnconvert.converters.sklearn",
    "to_sklearn": "nnconvert.converters.sklearn",
    "from_torch": "nnconvert.converters.torch",
    "to_torch": "nnconvert.converters.torch",
    "verify": "nnconvert.verify",
    "Report": "nnconvert.verify",
    "Model": "nnconvert.ir",
    "DenseLayer": "nnconvert.ir",
    "PreprocessStep": "nnconvert.ir",
    "ElementwiseOp": "nnconvert.ir",
    "Head": "nnconvert.ir",
    "InputSpec": "nnconvert.ir",
    "Metadata": "nnconvert.ir",
    "Activation": "nnconvert.ir",
    "Task": "nnconvert.ir",
    "errors": "nnconvert.errors",
    "spark": "nnconvert.spark",  # nnconvert.spark.verify(...): pyspark loads only when called
    "manifest": "nnconvert.manifest",
}
_SUBMODULES = ("errors", "spark", "manifest")
# errors.py imports nothing heavy: its classes are listed from the module itself
from .errors import __all__ as _ERRORS  # noqa: E402

_LAZY.update({name: "nnconvert.errors" for name in _ERRORS if name != "exit_code_for"})

__all__ = sorted(_LAZY) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from .api import convert, load, save
    from .converters.sklearn import from_sklearn, to_sklearn
    from .converters.torch import from_torch, to_torch
    from .errors import *  # noqa: F403
    from .ir import Activation, DenseLayer, ElementwiseOp, Head, InputSpec, Metadata, Model, PreprocessStep, Task
    from .verify import Report, verify


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'nnconvert' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if name in _SUBMODULES else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
