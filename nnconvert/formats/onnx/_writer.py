"""The ONNX writer: the IR as a pure ai.onnx graph at a chosen opset.

Graph layout (docs: DESIGN.md, "ONNX as written by nnconvert"):

- input ``X`` ``[N, n_features]`` (symbolic batch dimension ``N``);
- one node per preprocessing operation (Sub/Div/Mul/Add with constant
  operands; Clip, or Max+Min where onnxruntime has no Clip kernel);
- one Gemm per dense layer (``transB=0``: the IR's ``(n_in, n_out)`` weights
  are stored as they are), or MatMul+Add with ``linear="matmul"``; then the
  activation;
- classifiers: ``output_label`` and ``output_probability`` as skl2onnx names
  them; regressors and raw models: ``variable``.

Initializers are named by the IR document's keys (``layers/0/weights``,
``layers/0/bias``, ``steps/0/ops/1/operand``, ``steps/0/ops/2/low|high`` for a
clip), so a reader can find each array by name. ``metadata_props`` carries the
IR document without arrays under ``nnconvert.model``.

Where onnxruntime's CPU provider has no float64 kernel for an operator
(LeakyRelu, Elu, Selu, Softplus, HardSigmoid; Clip before opset 13), a float64
graph composes it from operators it does have, with the same arithmetic as the
IR's numpy code. Exact GELU needs Erf, which onnxruntime only runs in float32:
a float64 graph with it is valid ONNX but runs only elsewhere (e.g.
``onnx.reference``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..._io.atomic import Output, as_output
from ...errors import WriteError
from ...ir import Model
from ._quantize import is_reduced_precision, write_reduced_precision
from ._wire import Payload, stream_model
from ._write_model import build_skeleton
from ._write_options import parse_options

__all__ = ["write_onnx", "sidecar_name"]

# protobuf cannot serialize a message of 2 GiB or more; leave room for the graph.
EXTERNAL_DATA_THRESHOLD = 2**31 - 2**24
CHECK_SIZE_LIMIT = 100 * 2**20  # the checker runs by default below this size
EXTERNAL_MIN_TENSOR_BYTES = 1024  # smaller tensors stay inside the model file
EXTERNAL_ALIGNMENT = 4096  # lets runtimes memory-map each tensor
SIDECAR_DIGEST_CHARS = 16  # hex digits of the sidecar's sha256 in its name: 64 bits
# A model with external data keeps only tensors < 1 KiB inline: an old file
# larger than this holds its weights itself and is not parsed for sidecars.
OLD_MODEL_SCAN_LIMIT = 64 * 2**20


def _payload_bytes(model: Model, dtype: np.dtype) -> int:
    """The size of every weight once cast: what decides external data and checking."""
    operands = sum(op.operand.size for step in model.steps for op in step.ops)
    return (model.n_parameters + operands) * dtype.itemsize


def _check(path: Path) -> None:
    import onnx

    try:
        # by path, so that the checker also follows external data
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # noqa: BLE001 - a checker failure is a writer bug, reported as such
        raise WriteError(f"the ONNX graph nnconvert built fails onnx.checker ({type(exc).__name__}: {exc}); please report this") from exc


def write_onnx(model: Model, output: Output | str | os.PathLike[str], **options: Any) -> None:
    """Write ``model`` as an ONNX file.

    Args:
        model: the model graph.
        output: where to write (api.save passes the :class:`~nnconvert._io.atomic.Output` of a
            temporary file beside the target; its final name names the external-data sidecar),
            or a path written directly.
        **options: see :class:`WriteOptions`.

    Raises:
        UsageError: a bad option.
        UnsupportedModelError: the model cannot be expressed at these options.
        WriteError: the file could not be written, or the built graph failed the checker.
    """
    settings = parse_options(options)
    output = as_output(output)
    path, final = output.path, output.final_path
    if is_reduced_precision(model) or settings.io_dtype == np.float16:
        _write_reduced_precision(model, output, settings)
        return
    size = _payload_bytes(model, settings.dtype)
    external = settings.external_data if settings.external_data is not None else size >= EXTERNAL_DATA_THRESHOLD
    check = settings.check if settings.check is not None else size < CHECK_SIZE_LIMIT
    proto, payloads = build_skeleton(model, settings)
    old_sidecars = _referenced_sidecars(final)  # before ``path`` (maybe ``final`` itself) is written
    sidecar = _write_external(proto, payloads, output, check) if external else None
    if not external:
        with open(path, "wb") as handle:
            stream_model(proto, payloads, handle)
        if check:
            _check(path)
    # the replaced model's sidecars go once the new model is committed (now, when written in place)
    output.retire(sorted(old_sidecars - {sidecar}))


def _write_reduced_precision(model: Model, output: Output, settings: Any) -> None:
    """float16 / int8 files: one protobuf message (at most half of float32's size), no sidecar."""
    from ...errors import UsageError
    from ...quantization import precision_of

    if not is_reduced_precision(model):
        raise UsageError("io_dtype='float16' is for float16 models: add precision='float16' (--precision float16)")
    if settings.external_data:
        raise UsageError("external_data is not available for float16/int8 ONNX files (they are written as one file)")
    size = _payload_bytes(model, np.dtype(np.float32)) // (4 if precision_of(model) == "int8" else 2)
    check = settings.check if settings.check is not None else size < CHECK_SIZE_LIMIT
    old_sidecars = _referenced_sidecars(output.final_path)
    write_reduced_precision(model, output.path, settings, check)
    output.retire(sorted(old_sidecars))


def sidecar_name(final_name: str, digest: str) -> str:
    """The external-data file of the model ``final_name`` whose tensor bytes hash to ``digest``."""
    return f"{final_name}.{digest[:SIDECAR_DIGEST_CHARS]}.data"


def _write_external(proto: Any, payloads: list[Payload | None], output: Output, check: bool) -> Path | None:
    """Large tensors into a sidecar ``<final name>.<content hash>.data`` beside the model; returns it.

    Why a content-addressed name: the sidecar must be in place before the
    model that names it, and the file being replaced must stay valid until
    the one ``os.replace`` that commits the new model (``api.save``). A new
    name means writing the new sidecar never touches the old model's
    sidecar; the hash makes the name (and so the model's bytes)
    deterministic, and when it equals the old sidecar's name the content is
    the same, so replacing that file is harmless. The order is:

    1. tensors to a temporary file (hashed as written), fsynced;
    2. renamed to its content name, folder fsynced (the old model still
       reads its own sidecar, untouched);
    3. the model naming that sidecar written to ``path`` and checked: the
       checker sees the exact bytes that will be committed;
    4. ``api.save`` replaces the target. If anything fails up to there, the
       new sidecar is removed (unless that name existed before); once the
       replace succeeds, the sidecars the replaced model referred to and the
       new one does not are removed (:meth:`Output.retire`).

    A crash between 2 and 4 leaves an unreferenced sidecar behind, never a
    model without its data.
    """
    path, final = output.path, output.final_path
    fd, temp_name = tempfile.mkstemp(prefix=f".{final.name}.data.", suffix=".part", dir=path.parent)
    temp_data = Path(temp_name)
    created: Path | None = None
    try:
        with os.fdopen(fd, "wb") as raw:
            handle = _HashingFile(raw)
            moved = _externalize(proto, payloads, handle, temp_data.name)
            raw.flush()
            os.fsync(raw.fileno())
        if not moved:  # every tensor is small: there is nothing to put aside
            temp_data.unlink()
            sidecar = None
        else:
            sidecar, created = _place_sidecar(temp_data, output, handle.hexdigest())
            for tensor in moved:
                for entry in tensor.external_data:
                    if entry.key == "location":
                        entry.value = sidecar.name
        with open(path, "wb") as model_file:
            stream_model(proto, payloads, model_file)
        if check:
            _check(path)
        return sidecar
    except BaseException:
        for leftover in [temp_data] + ([created] if created is not None else []):
            with contextlib.suppress(OSError):
                leftover.unlink()
        raise


def _place_sidecar(temp_data: Path, output: Output, digest: str) -> tuple[Path, Path | None]:
    """Rename the finished sidecar to its content name; returns it, and it again when it is new."""
    from ..._io.atomic import fsync_directory, publish_mode

    final = output.final_path
    sidecar = final.with_name(sidecar_name(final.name, digest))
    existed = sidecar.exists()  # same name, same bytes: it may be the old model's, so it must stay
    publish_mode(temp_data, final)
    os.replace(temp_data, sidecar)
    fsync_directory(sidecar.parent)  # the sidecar's name is durable before any model names it
    if existed:
        return sidecar, None
    output.add_companion(sidecar)  # the commit may still fail after this writer returns
    return sidecar, sidecar


def _referenced_sidecars(final: Path) -> set[Path]:
    """The sidecars nnconvert named for ``final`` that the file now at ``final`` refers to.

    Only files named as this writer names them (``<final>.data`` of older
    versions, ``<final>.<hash>.data``) and actually referenced by the old
    model are candidates for removal: nothing else in the folder is touched.
    An old file that is not readable ONNX, or too large to be a model with
    external data, refers to nothing (a stale sidecar stays; never a lost one).
    """
    pattern = re.compile(re.escape(final.name) + rf"(\.[0-9a-f]{{{SIDECAR_DIGEST_CHARS}}})?\.data")
    try:
        if not final.is_file() or final.stat().st_size > OLD_MODEL_SCAN_LIMIT:
            return set()
        ours = {entry.name for entry in final.parent.iterdir() if pattern.fullmatch(entry.name)}
    except OSError:
        return set()
    if not ours:
        return set()
    return {final.with_name(name) for name in _external_locations(final) & ours}


def _external_locations(path: Path) -> set[str]:
    import onnx

    try:
        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - not an ONNX model: it refers to nothing
        return set()
    return {entry.value for tensor in proto.graph.initializer for entry in tensor.external_data if entry.key == "location"}


class _HashingFile:
    """A binary file that hashes what is written to it (the sidecar's content name)."""

    def __init__(self, handle: Any):
        self.handle = handle
        self.digest = hashlib.sha256()

    def write(self, data: Any) -> int:
        self.digest.update(data)
        return self.handle.write(data)

    def tell(self) -> int:
        return self.handle.tell()

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


def _externalize(proto: Any, payloads: list[Payload | None], handle: Any, location: str) -> list[Any]:
    """Move every large payload into ``handle``; the tensors then point at it."""
    from onnx import TensorProto

    moved = []
    for index, (tensor, payload) in enumerate(zip(proto.graph.initializer, payloads, strict=True)):
        if payload is None or payload.nbytes < EXTERNAL_MIN_TENSOR_BYTES:
            continue
        offset = handle.tell()
        padding = -offset % EXTERNAL_ALIGNMENT
        handle.write(b"\0" * padding)
        payload.write_to(handle)
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", str(offset + padding)), ("length", str(payload.nbytes))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        payloads[index] = None
        moved.append(tensor)
    return moved
