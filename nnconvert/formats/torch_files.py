"""``torch``: PyTorch checkpoints (``.pt``/``.pth``) holding a state dict, or a whole pickled module.

Reading always starts with ``torch.load(..., weights_only=True)``, torch's
restricted unpickler: it builds tensors and plain containers only and refuses
every other global, so a hostile file runs nothing. A file that needs full
unpickling (a whole ``nn.Module`` saved with ``torch.save(net, ...)``) is
loaded only with ``trust=True`` (``--trust-pickle``), like scikit-learn pickles,
and then converted with :func:`nnconvert.converters.torch.from_torch`.

A state dict is nnconvert's own when its ``_metadata`` (the attribute torch
keeps on every ``state_dict()``) has an ``nnconvert`` entry holding the model
document: that read is lossless. Any other state dict is read with ``arch``,
exactly as foreign safetensors files. Checkpoint dicts that wrap the state dict
(``{"state_dict": ...}``, ``{"model_state_dict": ...}``, ``{"model": ...}``) are unwrapped.
Writing mirrors the safetensors writer: ``to_torch(model).state_dict()``'s keys, plus the document.
"""

from __future__ import annotations

import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
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
from ..errors import ReadError, UntrustedInputError, UsageError
from ..head import READ_OPTIONS
from ..ir import Model
from ..registry import FormatSpec, Option, register

__all__ = ["read_torch", "write_torch", "sniff_torch"]

FORMAT = "torch"
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
# torch.save's legacy (non-zip) files start with a pickled magic number
_LEGACY_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19"


def read_torch(path: str | Path, *, arch: Any = None, task: Any = None, classes: Any = None, trust: bool = False) -> Model:
    """Read a torch checkpoint.

    Args:
        path: the ``.pt``/``.pth`` file.
        arch: the architecture of a foreign state dict (``"relu,relu,softmax"`` or a JSON module list).
        task: the head's task (foreign files and modules).
        classes: the class labels in output order (foreign files and modules).
        trust: allow full unpickling, for files holding a whole module (runs code from the file).

    Raises:
        UntrustedInputError: the file needs full unpickling and ``trust`` is False (nothing was run).
        ReadError: not a checkpoint, or tensors that do not fit ``arch`` (key and shapes named).
        UsageError: a foreign state dict without ``arch``.
    """
    import torch

    path = Path(path)
    try:
        content = _load(path, weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trust:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            reason = next((line for line in lines if "global" in line.lower()), lines[-1] if lines else "")[:300]
            raise UntrustedInputError(
                f"{path}: the file is not a plain state_dict: loading it needs full unpickling, which runs code stored "
                f"in it (torch's safe loader refused: {reason}). Load it only if you trust its source, with trust=True "
                "(--trust-pickle on the command line), or save net.state_dict() instead and give --arch"
            ) from None
        content = _load(path, weights_only=False)
    if isinstance(content, torch.nn.Module):
        from ..converters.torch import from_torch

        if arch is not None:
            raise UsageError(f"{path}: the file holds a whole {type(content).__name__}, which says its architecture; drop arch")
        return from_torch(content, task=task, classes=classes)
    state = _state_dict(content, path)
    document = _own_document(state)
    tensors = _numpy_tensors(state, path)
    if document is not None:
        if arch is not None:
            raise UsageError(f"{path}: the file is nnconvert's own and says its architecture; drop arch")
        return model_from_own_file(document, tensors, path, FORMAT, task=task, classes=classes)
    return model_from_state_dict(tensors, arch, path=path, format=FORMAT, task=task, classes=classes)


def _load(path: Path, *, weights_only: bool) -> Any:
    """``torch.load``; a damaged file is a ReadError (the restricted unpickler's refusals pass through)."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except pickle.UnpicklingError:
        raise
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        detail = str(exc).split(". ")[0] or type(exc).__name__
        raise ReadError(f"not a readable torch checkpoint (torch.save file): {detail}", path=path, format=FORMAT) from None


def _state_dict(content: Any, path: Path) -> Mapping[str, Any]:
    import torch

    if isinstance(content, Mapping):
        if content and all(isinstance(v, torch.Tensor) for v in content.values()):
            return content
        for key in _WRAPPER_KEYS:
            inner = content.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return inner
    raise ReadError(
        f"expected a state_dict (names -> tensors) or a checkpoint dict holding one under "
        f"{', '.join(repr(k) for k in _WRAPPER_KEYS)}; got a {type(content).__name__}",
        path=path,
        format=FORMAT,
    )


def _own_document(state: Mapping[str, Any]) -> str | None:
    entry = (getattr(state, "_metadata", None) or {}).get(DOCUMENT_KEY)
    document = entry.get("document") if isinstance(entry, Mapping) else None
    return document if isinstance(document, str) else None


def _numpy_tensors(state: Mapping[str, Any], path: Path) -> dict[str, np.ndarray]:
    import torch

    tensors = {}
    for name, tensor in state.items():
        if tensor.dtype == torch.bfloat16 or tensor.is_complex() or tensor.layout != torch.strided:
            raise ReadError(f"key {name!r} holds a {tensor.dtype} {tensor.layout} tensor; expected float16/32/64 weights", path=path, format=FORMAT)
        tensors[str(name)] = tensor.detach().cpu().numpy()
    return tensors


def write_torch(model: Model, output: Output | str | Path) -> None:
    """Write ``to_torch(model).state_dict()`` with ``torch.save``, the model document in its ``_metadata``.

    Raises:
        UnsupportedModelError: an activation torch has no standard module for.
    """
    import torch

    arrays, document = state_dict_and_document(model)
    state: OrderedDict[str, Any] = OrderedDict((name, torch.from_numpy(array.copy())) for name, array in arrays.items())
    # torch keeps per-module versions in _metadata; an extra entry is ignored by load_state_dict
    state._metadata = OrderedDict({DOCUMENT_KEY: {"document": document}})  # type: ignore[attr-defined]
    with open(as_output(output).path, "wb") as handle:  # a file object: the archive's inner folder is "archive", not the temp name
        torch.save(state, handle)


def sniff_torch(head: bytes, path: Path) -> bool:
    """True for torch.save's zip (an ``<name>/data.pkl`` member) or its legacy pickle magic number."""
    if head.startswith(_LEGACY_MAGIC):
        return True
    if not head.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/data.pkl") and name.count("/") == 1 for name in archive.namelist())
    except Exception:  # noqa: BLE001 - a probe never raises
        return False


register(
    FormatSpec(
        name=FORMAT,
        suffixes=(".pt", ".pth"),
        description="PyTorch checkpoint: a state_dict (nnconvert's own: lossless; others: with --arch); "
        "a whole pickled module only with --trust-pickle",
        read=read_torch,
        write=write_torch,
        sniff=sniff_torch,
        requires={"torch": "nnconvert[torch]"},
        # trust is load()'s own keyword, passed on to this reader; no flag of its own (--trust-pickle)
        read_options=(*READ_OPTIONS, ARCH_OPTION, Option("trust", bool, default=False, help="allow full unpickling", flag=None)),
    )
)
