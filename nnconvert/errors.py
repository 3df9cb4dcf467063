"""One small exception hierarchy.

Every error nnconvert raises derives from :class:`NnconvertError` and from the
built-in exception a caller would already catch (``ValueError``,
``ImportError``...), so existing ``except ValueError`` blocks keep working.
The command line maps each class to an exit code (see ``exit_code_for``).
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from typing import Any

__all__ = [
    "NnconvertError",
    "UnknownFormatError",
    "ReadError",
    "WriteError",
    "UnsupportedModelError",
    "InvalidModelError",
    "UntrustedInputError",
    "MissingDependencyError",
    "VerificationError",
    "UsageError",
    "exit_code_for",
]


class NnconvertError(Exception):
    """Base class of every error nnconvert raises on purpose."""


class UsageError(NnconvertError, ValueError):
    """The call itself is wrong: an unknown option, a bad combination of arguments."""


class UnknownFormatError(NnconvertError, ValueError):
    """No format matches the name given, or no reader claims the file."""


class ReadError(NnconvertError, ValueError):
    """A file could not be read as a model: unreadable, truncated or corrupt.

    Attributes:
        path: the file that failed.
        format: the format name that was used to read it (or None).
    """

    def __init__(self, message: str, *, path: str | PathLike[str] | None = None, format: str | None = None):
        self.path = None if path is None else str(path)
        self.format = format
        self.detail = message
        prefix = ""
        if self.path is not None:
            prefix = f"{self.path}: "
        if format is not None:
            prefix += f"[{format}] "
        super().__init__(prefix + message)


class WriteError(NnconvertError, OSError):
    """The output could not be written (the target was left untouched)."""


class InvalidModelError(NnconvertError, ValueError):
    """A model graph is inconsistent: shapes, biases, activations, weights."""


class UnsupportedModelError(NnconvertError, ValueError):
    """A model uses something the reader or target cannot express.

    Attributes:
        problems: every unsupported node or layer, collected before failing.
    """

    def __init__(self, message: str, problems: Sequence[str] = ()):
        self.problems = list(problems)
        text = message
        if self.problems:
            text += "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(text)


class UntrustedInputError(NnconvertError, ValueError):
    """Loading the input would run code from it, and it was not marked trusted."""


class MissingDependencyError(NnconvertError, ImportError):
    """An optional package needed for this operation is not installed."""

    def __init__(self, package: str, purpose: str, pip_name: str | None = None):
        self.package = package
        self.pip_command = f"pip install {pip_name or package}"
        super().__init__(f"{purpose} needs the package '{package}', which is not installed; run: {self.pip_command}")


class VerificationError(NnconvertError, AssertionError):
    """Two models disagree beyond tolerance. ``report`` holds the evidence."""

    def __init__(self, message: str, report: Any = None):
        self.report = report
        super().__init__(message)


_EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (VerificationError, 1),
    (UsageError, 2),
    (MissingDependencyError, 4),
    (NnconvertError, 3),
)


def exit_code_for(error: BaseException) -> int:
    """The command-line exit code for an nnconvert error (3 for any other input error)."""
    for cls, code in _EXIT_CODES:
        if isinstance(error, cls):
            return code
    return 3
