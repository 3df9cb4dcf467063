"""A reader's or writer's option, declared once.

Formats list their :class:`Option` s in their :class:`~nnconvert.registry.FormatSpec`;
the API checks every given value against the declaration
(:func:`nnconvert.registry.check_options`) and the command line builds its
flags from the same declarations, so a format never re-validates its
options and the CLI never lists them by hand.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import UsageError

__all__ = ["Option", "OPTION_TYPES", "check_values"]

OPTION_TYPES = (str, int, float, bool, list)


@dataclass(frozen=True)
class Option:
    """One reader or writer option, declared once: the API validates it and the CLI builds its flag from it.

    Attributes:
        name: the keyword (``opset``).
        type: str, int, float, bool or list; values of another type are refused (no "yes" for True).
        choices: the allowed values, when they are few.
        default: what the reader/writer does when the option is not given (for help texts).
        help: one line, without the format names (the CLI adds them).
        flag: the command-line flag, ``--<name>`` by default; None keeps the option off the CLI.
        flag_value: the flag takes no argument and sets this value (``--matmul`` sets linear="matmul").
        parse: turns the flag's text into the value (``--classes a,b``); ``type`` by default.
        metavar: the flag's placeholder in --help.
        also: further types a value may have, checked by the format itself (``compression=zipfile.ZIP_DEFLATED``).
    """

    name: str
    type: builtins.type = str
    choices: tuple[Any, ...] = ()
    default: Any = None
    help: str = ""
    flag: str | None = ""
    flag_value: Any = None
    parse: Callable[[str], Any] | None = None
    metavar: str | None = None
    also: tuple[builtins.type, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in OPTION_TYPES:
            raise ValueError(f"option {self.name}: type must be one of {[t.__name__ for t in OPTION_TYPES]}")
        if self.flag == "":
            object.__setattr__(self, "flag", "--" + self.name.replace("_", "-"))

    def check(self, value: Any, owner: str) -> Any:
        """``value`` if it is of the declared type (and among the choices); :class:`UsageError` otherwise."""
        if self.also and isinstance(value, self.also):
            return value
        if not _has_type(value, self.type):
            raise UsageError(f"{owner} option {self.name} must be {_TYPE_WORDS[self.type]}, got {value!r}")
        if self.choices and value not in self.choices:
            raise UsageError(f"{owner} option {self.name} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        return value


_TYPE_WORDS = {str: "a string", int: "an integer", float: "a number", bool: "True or False", list: "a list"}


def _has_type(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind in (int, float) and isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, (int, float))
    if kind is list:  # any sequence of values: a list, a tuple, a numpy array
        return isinstance(value, Iterable) and not isinstance(value, (str, bytes))
    return isinstance(value, kind)


def check_values(declared: Iterable[Option], given: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """``given`` checked against ``declared``: names known, values of the declared type and choices.

    None values mean "not given" and are dropped. ``owner`` names the reader or
    writer in messages (``"the onnx writer"``).

    Raises:
        UsageError: an option not declared, or a value of the wrong type or not among the choices.
    """
    by_name = {option.name: option for option in declared}
    values = {key: value for key, value in given.items() if value is not None}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise UsageError(f"{owner} does not take option(s) {', '.join(unknown)}; it takes: {', '.join(by_name) or 'none'}")
    return {key: by_name[key].check(value, f"{owner}'s") for key, value in values.items()}
