"""The format registry: names, readers, writers and content detection.

Each module in ``nnconvert.formats`` registers one or more :class:`FormatSpec`
at its bottom. The built-in modules are imported on first use, so that
``import nnconvert`` stays cheap; their heavy dependencies (onnx, h5py...) are
imported inside the read/write functions.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .errors import UnknownFormatError
from .options import Option, check_values

__all__ = [
    "Option",
    "FormatSpec",
    "RUNNER_KINDS",
    "register",
    "get",
    "formats",
    "detect",
    "format_for_suffix",
    "check_options",
    "HEAD_SIZE",
]

HEAD_SIZE = 4096  # bytes read for content sniffing

Reader = Callable[..., Any]
Writer = Callable[..., None]
Sniffer = Callable[[bytes, Path], bool]

_BUILTIN_MODULES = (
    "nnconvert.formats.onnx",
    "nnconvert.formats.json_weights",
    "nnconvert.formats.hdf5",
    "nnconvert.formats.keras",
    "nnconvert.formats.safetensors_files",
    # before sklearn_files: legacy torch.save files are pickles too, and claimed by content first
    "nnconvert.formats.torch_files",
    "nnconvert.formats.sklearn_files",
    "nnconvert.formats.c",  # issue 15: C source target (write only)
)


# How verify runs a file of a format: "ir" reads it into the model graph and runs that;
# "onnxruntime" runs the file itself; "sklearn" runs the estimator the spec's load_native returns;
# "c" compiles the generated source and runs it through ctypes.
RUNNER_KINDS = ("ir", "onnxruntime", "sklearn", "c")

def _as_options(options: tuple[Option | str, ...]) -> tuple[Option, ...]:
    # a bare name declares an option whose values the format checks itself (third-party formats)
    return tuple(option if isinstance(option, Option) else Option(option, flag=None, also=(object,)) for option in options)


@dataclass(frozen=True)
class FormatSpec:
    """One on-disk format.

    Attributes:
        name: the format's name (``--from``/``--to``).
        suffixes: file suffixes, lowercase with the dot, used when content says nothing.
        description: one line for ``nnconvert formats``.
        read: ``read(path, **options) -> Model`` or None when not readable.
        write: ``write(model, path, **options)`` or None when not writable.
        sniff: ``sniff(head_bytes, path) -> bool``; True when the content is this format's.
        requires: importable module names this format needs, with the pip name of each.
        read_options / write_options: the :class:`Option` s the reader / writer accepts.
        needs_trust: reading runs code from the file (pickle): only with ``trust=True``.
        isolated_reads: reading may run a C parser that can hang on a corrupt file (libhdf5):
            the command line reads such files in a child process with a time limit.
        runner: how verify runs a file of this format, one of :data:`RUNNER_KINDS`.
        load_native: for runner "sklearn": ``load_native(path, trust=...)`` -> the framework object.
        priority: settles suffix ties (``.h5``: hdf5 before keras-h5): lower comes first.
            Content detection decides first; the priority only orders the suffix fallback.
        summary: ``summary(path) -> str``: lines ``nnconvert convert`` prints after writing a file
            of this format (sizes, precision...), or None.
        inspect_file: ``inspect_file(path) -> (facts, text)``: what ``nnconvert inspect`` shows for
            a file the format describes itself (a write-only format has no reader to go through).
    """

    name: str
    suffixes: tuple[str, ...]
    description: str
    read: Reader | None = None
    write: Writer | None = None
    sniff: Sniffer | None = None
    requires: Mapping[str, str] = field(default_factory=dict)
    read_options: tuple[Option, ...] = ()
    write_options: tuple[Option, ...] = ()
    needs_trust: bool = False
    isolated_reads: bool = False
    runner: str = "ir"
    load_native: Callable[..., Any] | None = None
    priority: int = 100
    summary: Callable[[Path], str] | None = None
    inspect_file: Callable[[Path], tuple[dict[str, Any], str]] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "read_options", _as_options(tuple(self.read_options)))
        object.__setattr__(self, "write_options", _as_options(tuple(self.write_options)))
        if self.runner not in RUNNER_KINDS:
            raise ValueError(f"format {self.name}: runner must be one of {RUNNER_KINDS}, got {self.runner!r}")
        if self.runner == "sklearn" and self.load_native is None:
            raise ValueError(f"format {self.name}: runner 'sklearn' needs load_native")

    def missing_dependencies(self) -> list[str]:
        """pip names of the required packages that are not installed."""
        return [pip for module, pip in self.requires.items() if importlib.util.find_spec(module) is None]


def check_options(spec: FormatSpec, options: Mapping[str, Any], verb: str) -> dict[str, Any]:
    """The options of a read (``verb="reader"``) or write (``"writer"``), checked against the spec.

    None values mean "not given" and are dropped.

    Raises:
        UsageError: an option the format does not take, or a value of the wrong type or not among its choices.
    """
    declared = spec.read_options if verb == "reader" else spec.write_options
    return check_values(declared, options, f"the {spec.name} {verb}")


_REGISTRY: dict[str, FormatSpec] = {}
_loaded = False


def register(spec: FormatSpec, *, replace: bool = False) -> None:
    """Add a format. Refuses to overwrite a registered name unless ``replace``."""
    if spec.name in _REGISTRY and not replace:
        raise ValueError(f"format {spec.name!r} is already registered; pass replace=True to override it")
    _REGISTRY[spec.name] = spec


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def formats() -> Mapping[str, FormatSpec]:
    """A read-only view of every registered format, by name."""
    _load_builtins()
    return MappingProxyType(_REGISTRY)


def get(name: str) -> FormatSpec:
    """The format called ``name``; :class:`UnknownFormatError` listing the known ones otherwise."""
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownFormatError(f"unknown format {name!r}; known formats: {', '.join(sorted(_REGISTRY))}") from None


def _by_priority() -> list[FormatSpec]:
    # sorted() is stable: equal priorities keep registration order, which decides nothing for
    # the built-in formats (every tie among them is settled by a declared priority)
    return sorted(_REGISTRY.values(), key=lambda spec: spec.priority)


def format_for_suffix(path: str | Path, *, writable: bool = False) -> FormatSpec | None:
    """The format of highest priority (lowest ``priority``) whose suffix matches ``path``."""
    _load_builtins()
    suffix = Path(path).suffix.lower()
    for spec in _by_priority():
        if suffix in spec.suffixes and (spec.write if writable else spec.read) is not None:
            return spec
    return None


def _read_head(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(HEAD_SIZE)
    except OSError:
        return b""


def sniff_content(path: str | Path) -> list[FormatSpec]:
    """Every readable format whose sniffer claims the file's content.

    A sniffer that raises is reported as a warning and counts as "no": a probe
    never fails detection.
    """
    _load_builtins()
    path = Path(path)
    head = _read_head(path)
    claimed = []
    for spec in _by_priority():
        if spec.sniff is None or spec.read is None:
            continue
        try:
            if spec.sniff(head, path):
                claimed.append(spec)
        except Exception as exc:  # noqa: BLE001 - a probe never raises
            warnings.warn(f"format {spec.name} failed to probe {path}: {exc}", RuntimeWarning, stacklevel=2)
    return claimed


def detect(path: str | Path) -> FormatSpec:
    """The format of an existing file: content first, suffix second.

    Raises:
        UnknownFormatError: no format claims the file (the message lists what was tried).
    """
    claimed = sniff_content(path)
    if claimed:
        return claimed[0]
    by_suffix = format_for_suffix(path)
    if by_suffix is not None:
        return by_suffix
    tried = ", ".join(spec.name for spec in _REGISTRY.values() if spec.read is not None)
    raise UnknownFormatError(
        f"{path}: cannot tell the format from the content or the suffix (tried: {tried}); "
        "name it with format=... (--from on the command line)"
    )
