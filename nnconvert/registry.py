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

__all__ = ["FormatSpec", "register", "get", "formats", "detect", "format_for_suffix", "HEAD_SIZE"]

HEAD_SIZE = 4096  # bytes read for content sniffing

Reader = Callable[..., Any]
Writer = Callable[..., None]
Sniffer = Callable[[bytes, Path], bool]

_BUILTIN_MODULES = (
    "nnconvert.formats.onnx",
    "nnconvert.formats.json_weights",
    "nnconvert.formats.hdf5",
    "nnconvert.formats.keras",
    "nnconvert.formats.sklearn_files",
    "nnconvert.formats.c",  # issue 15: C source target (write only)
)


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
        read_options / write_options: option names the reader / writer accepts.
        needs_trust: reading runs code from the file (pickle): only with ``trust=True``.
    """

    name: str
    suffixes: tuple[str, ...]
    description: str
    read: Reader | None = None
    write: Writer | None = None
    sniff: Sniffer | None = None
    requires: Mapping[str, str] = field(default_factory=dict)
    read_options: tuple[str, ...] = ()
    write_options: tuple[str, ...] = ()
    needs_trust: bool = False

    def missing_dependencies(self) -> list[str]:
        """pip names of the required packages that are not installed."""
        return [pip for module, pip in self.requires.items() if importlib.util.find_spec(module) is None]


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


def format_for_suffix(path: str | Path, *, writable: bool = False) -> FormatSpec | None:
    """The first format (in registration order) whose suffix matches ``path``."""
    _load_builtins()
    suffix = Path(path).suffix.lower()
    for spec in _REGISTRY.values():
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
    for spec in _REGISTRY.values():
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
