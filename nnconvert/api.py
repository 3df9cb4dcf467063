"""load / save / convert: read -> IR -> write, with atomic output."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import registry
from ._io.atomic import atomic_output
from ._io.budget import file_budget
from ._io.isolation import check_timeout, default_read_timeout, load_isolated, reads_with_libhdf5
from .errors import (
    MissingDependencyError,
    NnconvertError,
    ReadError,
    UntrustedInputError,
    UsageError,
    WriteError,
)
from .ir import Model

__all__ = ["load", "load_with_format", "save", "convert", "check_destination", "default_read_timeout", "reads_with_libhdf5"]

PathLike = str | os.PathLike[str]


def _require(spec: registry.FormatSpec, purpose: str) -> None:
    missing = spec.missing_dependencies()
    if missing:
        module = next(name for name, pip in spec.requires.items() if pip == missing[0])
        # an extra such as nnconvert[torch] is quoted for shells that expand brackets
        pip_name = f'"{missing[0]}"' if "[" in missing[0] else missing[0]
        raise MissingDependencyError(module, f"{purpose} the {spec.name} format", pip_name=pip_name)


def load(
    path: PathLike, format: str | None = None, *, trust: bool = False, timeout: float | None = None, **options: Any
) -> Model:
    """Read a model file into the IR.

    Args:
        path: the file.
        format: a format name; detected from content, then suffix, when None.
        trust: allow formats whose loading runs code from the file (pickle, joblib).
        timeout: None reads in this process (the default: no overhead). A number
            of seconds reads in a child process that is killed after that long:
            libhdf5 can spin forever on some corrupt files, in C code nothing
            else can interrupt. Use it for files from untrusted sources
            (``default_read_timeout(path)`` gives the command line's choice).
        **options: reader options (e.g. ``task``/``classes`` for Keras files).

    Returns:
        The model graph.

    Raises:
        ReadError: the file is missing, unreadable or corrupt; reading took longer
            than ``timeout``; or the reader process crashed.
        UnknownFormatError: the format cannot be told.
        UntrustedInputError: the format runs code and ``trust`` is False.
        UnsupportedModelError: the file holds something that is not a supported MLP.
    """
    return load_with_format(path, format, trust=trust, timeout=timeout, **options)[0]


def load_with_format(
    path: PathLike, format: str | None = None, *, trust: bool = False, timeout: float | None = None, **options: Any
) -> tuple[Model, str]:
    """:func:`load`, also returning the name of the format the file was read as."""
    path = Path(path)
    timeout = check_timeout(timeout)
    if not path.is_file():
        raise ReadError("no such file" if not path.exists() else "not a regular file", path=path, format=format)
    if timeout is not None:
        given = {key: value for key, value in options.items() if value is not None}
        return load_isolated(path, format, trust, given, timeout, reader=_read_here)
    return _read_here(path, format, trust, options)


def _read_here(path: Path, format: str | None, trust: bool, options: dict[str, Any]) -> tuple[Model, str]:
    """The read itself, in this process (also what the isolated reader's child runs)."""
    spec = registry.get(format) if format is not None else registry.detect(path)
    if spec.read is None:
        raise UsageError(f"the {spec.name} format can be written but not read")
    options = registry.check_options(spec, options, "reader")
    if spec.needs_trust and not trust:
        raise UntrustedInputError(
            f"{path}: loading a {spec.name} file runs arbitrary code stored in it; load it only if you "
            "trust its source, with trust=True (--trust-pickle on the command line), or convert it to "
            "skops, ONNX or JSON once and share that instead"
        )
    _require(spec, "reading")
    if any(option.name == "trust" for option in spec.read_options):
        options["trust"] = trust  # the reader decides itself whether this file needs it (torch checkpoints)
    try:
        with file_budget(path, spec.name):  # one expansion limit for the whole file, however nested
            return spec.read(path, **options), spec.name
    except NnconvertError:
        raise
    except MemoryError:
        raise ReadError("the file declares more data than fits in memory", path=path, format=spec.name) from None
    except Exception as exc:  # noqa: BLE001 - anything else is still a bad input, never a traceback
        raise ReadError(f"cannot read the file: {type(exc).__name__}: {exc}", path=path, format=spec.name) from exc


def save(model: Model, path: PathLike, format: str | None = None, **options: Any) -> Path:
    """Write ``model`` to ``path`` atomically.

    Args:
        model: the model graph.
        path: the target file; replaced only when the whole write succeeds.
        format: a format name; taken from the suffix when None.
        **options: writer options (``opset``, ``dtype``...); ``precision`` ("float16" or
            "int8") and ``calibration`` (rows for int8 static quantization) for the formats
            that store reduced precision (onnx, json, hdf5); ``dequantize=True`` writes an
            int8 model's float32 equivalent to a format that cannot hold int8.

    Returns:
        The path written.

    Raises:
        UnknownFormatError: no writable format for the name or suffix.
        UnsupportedModelError: the target cannot express the model.
        WriteError: the file could not be written (the target is untouched).
    """
    path = Path(path)
    spec = registry.get(format) if format is not None else registry.format_for_suffix(path, writable=True)
    if spec is None:
        raise UsageError(f"{path}: cannot tell the output format from the suffix {path.suffix!r}; name it with format=...")
    if spec.write is None:
        raise UsageError(f"the {spec.name} format can be read but not written")
    dequantize = bool(options.pop("dequantize", False))
    options = registry.check_options(spec, options, "writer")
    _require(spec, "writing")
    from .quantization import apply_precision

    model = apply_precision(model, spec.name, options, dequantize=dequantize, write_options=spec.write_options)
    if not path.parent.is_dir():
        raise WriteError(f"{path}: the folder {path.parent} does not exist")
    try:
        with atomic_output(path) as output:
            spec.write(model, output, **options)
    except NnconvertError:
        raise
    except OSError as exc:
        raise WriteError(f"{path}: cannot write: {exc}") from exc
    return path


def convert(
    source: Any,
    destination: PathLike,
    *,
    from_format: str | None = None,
    to_format: str | None = None,
    trust: bool = False,
    timeout: float | None = None,
    read_options: dict[str, Any] | None = None,
    **write_options: Any,
) -> Model:
    """Convert ``source`` (a file, a :class:`Model` or a scikit-learn estimator) to ``destination``.

    ``timeout`` applies to reading a file source, as in :func:`load`.

    Returns:
        The model graph that was written.
    """
    if isinstance(source, (str, os.PathLike)):
        check_destination(source, destination, from_format, to_format)
    model = as_model(source, format=from_format, trust=trust, timeout=timeout, **(read_options or {}))
    save(model, destination, format=to_format, **write_options)
    return model


def check_destination(source: PathLike, destination: PathLike, from_format: str | None, to_format: str | None) -> None:
    """Refuse a destination that is the source file itself (a link or another name for it) in another format.

    Converting in place would replace the only copy of the model with a file of another kind.

    Raises:
        WriteError: the destination is the source and the formats differ.
    """
    try:
        same = os.path.samefile(source, destination)
    except OSError:  # the destination does not exist yet (or the source is missing: load reports it)
        return
    if not same:
        return
    read_as = registry.get(from_format) if from_format is not None else registry.detect(Path(source))
    write_as = registry.get(to_format) if to_format is not None else registry.format_for_suffix(Path(destination), writable=True)
    if write_as is None or write_as.name != read_as.name:
        raise WriteError(
            f"{destination} is the source file itself ({source}); writing it as "
            f"{write_as.name if write_as else 'another format'} would replace the {read_as.name} model. "
            "Choose another destination"
        )


def as_model(source: Any, format: str | None = None, *, trust: bool = False, timeout: float | None = None, **options: Any) -> Model:
    """The IR of a file path, a :class:`Model` (returned as is) or a framework object."""
    if isinstance(source, Model):
        return source
    if isinstance(source, (str, os.PathLike)):
        return load(source, format=format, trust=trust, timeout=timeout, **options)
    from .converters import from_object

    return from_object(source)
