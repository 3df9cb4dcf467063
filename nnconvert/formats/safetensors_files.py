"""``safetensors``: tensors by name plus a JSON header, read and written with the safetensors numpy API.

Files nnconvert writes hold every array under the name ``to_torch(model).state_dict()``
gives it (``0.weight``, ``0.bias``...) and the whole model document in the
header's ``__metadata__`` (key ``nnconvert``): reading them back is
bit-identical. Foreign files (``safetensors.torch.save_file(net.state_dict(), ...)``)
hold weights only; they are read with a user-given ``arch`` (see
:mod:`nnconvert.converters.state_dict`). torch is not needed for either.

The header is checked before any tensor is allocated: its length, each
tensor's dtype, shape and byte range against the file's size, so a hostile
file cannot make the reader allocate what the file does not hold.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np

from .._io.atomic import Output, as_output
from ..converters.state_dict import (
    ARCH_OPTION,
    DOCUMENT_KEY,
    model_from_own_file,
    model_from_state_dict,
    state_dict_and_document,
)
from ..errors import ReadError, UsageError
from ..head import READ_OPTIONS
from ..ir import Model
from ..registry import FormatSpec, register

__all__ = ["read_safetensors", "write_safetensors", "sniff_safetensors"]

FORMAT = "safetensors"
MAX_HEADER_BYTES = 100 * 2**20  # the safetensors library's own limit
_ITEMSIZE = {"F16": 2, "F32": 4, "F64": 8, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
_READABLE = {"F16", "F32", "F64", "I64"}  # I64: BatchNorm's num_batches_tracked


def read_safetensors(path: str | Path, *, arch: Any = None, task: Any = None, classes: Any = None) -> Model:
    """Read a safetensors file: nnconvert's own (lossless), or a foreign state dict with ``arch``.

    Args:
        path: the ``.safetensors`` file.
        arch: the architecture of a weights-only file (``"relu,relu,softmax"`` or a JSON module list);
            refused for nnconvert's own files, whose document says everything.
        task: override the head's task (foreign files).
        classes: the class labels in output order (foreign files).

    Raises:
        ReadError: a malformed or hostile header, a tensor that does not fit ``arch`` (key and shapes named).
        UsageError: a weights-only file without ``arch``, or a malformed ``arch``.
    """
    path = Path(path)
    header = _checked_header(path)
    metadata = header.pop("__metadata__", None) or {}
    tensors = _load_tensors(path, header)
    document = metadata.get(DOCUMENT_KEY) if isinstance(metadata, dict) else None
    if isinstance(document, str):
        if arch is not None:
            raise UsageError(f"{path}: the file is nnconvert's own and says its architecture; drop arch")
        return model_from_own_file(document, tensors, path, FORMAT, task=task, classes=classes)
    return model_from_state_dict(tensors, arch, path=path, format=FORMAT, task=task, classes=classes)


def _checked_header(path: Path) -> dict[str, Any]:
    """The header, after checking every declared size against the file's (nothing allocated from it yet)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise ReadError("the file is shorter than a safetensors header length (8 bytes)", path=path, format=FORMAT)
        (header_size,) = struct.unpack("<Q", prefix)
        if header_size > min(size - 8, MAX_HEADER_BYTES):
            raise ReadError(
                f"the header declares {header_size} bytes but the file has {size - 8} after the length field", path=path, format=FORMAT
            )
        raw = handle.read(header_size)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ReadError(f"the header is not valid JSON: {exc}", path=path, format=FORMAT) from None
    if not isinstance(header, dict):
        raise ReadError("the header is not a JSON object", path=path, format=FORMAT)
    data_size = size - 8 - header_size
    ranges = []
    for name, entry in header.items():
        if name != "__metadata__":
            ranges.append((*_check_entry(name, entry, data_size, path), name))
    _check_coverage(sorted(ranges), data_size, path)
    metadata = header.get("__metadata__")
    if metadata is not None and not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise ReadError("__metadata__ must map names to strings", path=path, format=FORMAT)
    return header


def _check_coverage(ranges: list[tuple[int, int, str]], data_size: int, path: Path) -> None:
    """The tensors' byte ranges tile the data area exactly, as the format requires: no gap, no overlap."""
    position = 0
    for begin, end, name in ranges:
        if begin != position:
            what = "overlaps the previous tensor" if begin < position else f"leaves bytes [{position}, {begin}) unused"
            raise ReadError(f"tensor {name!r}: its bytes start at {begin}: it {what}", path=path, format=FORMAT)
        position = end
    if position != data_size:
        raise ReadError(f"the tensors cover {position} of the file's {data_size} data bytes", path=path, format=FORMAT)


def _check_entry(name: str, entry: Any, data_size: int, path: Path) -> tuple[int, int]:
    def fail(message: str) -> ReadError:
        return ReadError(f"tensor {name!r}: {message}", path=path, format=FORMAT)

    if not isinstance(entry, dict):
        raise fail("its header entry is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in _ITEMSIZE:
        raise fail(f"unknown dtype {dtype!r}")
    if not (isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise fail(f"shape must be a list of sizes, got {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
        raise fail(f"data_offsets must be [begin, end], got {offsets!r}")
    begin, end = offsets
    declared = math.prod(shape) * _ITEMSIZE[dtype]
    if not 0 <= begin <= end <= data_size:
        raise fail(f"its bytes [{begin}, {end}) lie outside the file's {data_size} data bytes")
    if end - begin != declared:
        raise fail(f"shape {shape} of {dtype} needs {declared} bytes but its range holds {end - begin}")
    if dtype not in _READABLE:
        raise fail(f"dtype {dtype} is not a weight type nnconvert reads (F16, F32, F64)")
    return begin, end


def _load_tensors(path: Path, header: dict[str, Any]) -> dict[str, np.ndarray]:
    from safetensors import safe_open

    tensors: dict[str, np.ndarray] = {}
    try:
        with safe_open(str(path), framework="numpy") as handle:
            for name in header:
                tensors[name] = handle.get_tensor(name)
    except Exception as exc:  # noqa: BLE001 - the library's own refusal (SafetensorError) of what the checks above let pass
        raise ReadError(f"the safetensors library cannot read the file: {exc}", path=path, format=FORMAT) from None
    return tensors


def write_safetensors(model: Model, output: Output | str | Path) -> None:
    """Write every array under its ``state_dict`` name and the model document in ``__metadata__``.

    Raises:
        UnsupportedModelError: an activation torch has no standard module for (the file is a state dict).
    """
    from safetensors.numpy import save_file

    tensors, document = state_dict_and_document(model)
    # one metadata entry: the library keeps metadata in a hash map, so several would come out in any order
    save_file(dict(tensors), str(as_output(output).path), metadata={DOCUMENT_KEY: document})


def sniff_safetensors(head: bytes, path: Path) -> bool:
    """True for an 8-byte little-endian header length followed by a JSON object."""
    if len(head) < 10:
        return False
    (header_size,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 2 <= header_size <= MAX_HEADER_BYTES


register(
    FormatSpec(
        name=FORMAT,
        suffixes=(".safetensors",),
        description="safetensors weights (nnconvert's own: lossless; torch state_dicts: with --arch); no torch needed",
        read=read_safetensors,
        write=write_safetensors,
        sniff=sniff_safetensors,
        requires={"safetensors": "nnconvert[safetensors]"},
        read_options=(*READ_OPTIONS, ARCH_OPTION),
    )
)
