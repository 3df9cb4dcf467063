"""Verification: run the original and the converted model side by side and report parity.

    >>> report = nnconvert.verify(estimator, "model.onnx", X)
    >>> report.passed, print(report.summary())

``nnconvert.verify`` is both this package and the function: importing a
submodule (``nnconvert.verify.command``) rebinds the package attribute to the
module, so the module itself is made callable and forwards to :func:`verify`.
Its names load on first use, so the command line's parser can import
``nnconvert.verify.command`` without paying for numpy.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__all__ = ["verify", "Report", "write_test_data", "read_test_data"]

_LAZY = {
    "verify": "nnconvert.verify.stream",  # core.verify, or with data= the streamed run
    "Report": "nnconvert.verify.report",
    "write_test_data": "nnconvert.verify.onnx.evidence",
    "read_test_data": "nnconvert.verify.onnx.evidence",
}

if TYPE_CHECKING:  # pragma: no cover
    from .onnx.evidence import read_test_data, write_test_data
    from .report import Report
    from .stream import verify


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'nnconvert.verify' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from .stream import verify

        return verify(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
