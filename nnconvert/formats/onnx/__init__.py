"""ONNX files: read, write, sniff, registration.

The reader and the writer live in private modules imported on first use, so
that registering the format costs neither onnx nor onnxruntime:

- reading: ``_reader`` (entry point, building the IR) over ``_load`` (the
  protobuf, version and external-data path checks), ``_tensors`` (tensor
  decoding), ``_metadata`` (nnconvert's description laid over the graph) and
  ``_parser`` (the graph walk), which combines one matcher per concern on a
  shared ``_graph_index``: ``_match_preprocessing``, ``_match_dense``,
  ``_match_activations``, ``_match_tail``;
- writing: ``_writer`` (files and external-data sidecars) over
  ``_write_options``, ``_write_model`` (the ModelProto), ``_write_layers``,
  ``_write_head`` and ``_wire`` (the protobuf wire format streamed by hand).

Writer options (see ``_write_options.WriteOptions``):

- ``opset``: ai.onnx opset, 9 to the newest both onnx and onnxruntime know (default 15);
- ``dtype``: "float32" (default) or "float64";
- ``linear``: "gemm" (default, one Gemm per layer) or "matmul" (MatMul + Add);
- ``zipmap``: True adds an ai.onnx.ml ZipMap, as skl2onnx does by default;
- ``external_data``: True forces the weights into ``<file>.data`` (automatic above 2 GB);
- ``check``: run ``onnx.checker.check_model(full_check=True)`` (default: below 100 MB);
- ``io_dtype``: "float16" gives a float16 model float16 input and outputs (default: float32);
- ``precision`` / ``calibration`` (applied by ``nnconvert.save``): float16 or int8 weights, see ``_quantize``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..._io.atomic import Output
from ...head import READ_OPTIONS
from ...ir import Model
from ...registry import FormatSpec, register
from ._write_options import PRECISION_OPTIONS, WRITE_OPTIONS

__all__ = ["read", "write", "sniff", "inline_external_data", "READ_OPTIONS", "WRITE_OPTIONS"]



def inline_external_data(proto: Any, path: str | Path) -> bool:
    """Load ``proto``'s external data into it, resolved against ``path``'s folder with the reader's checks (verify)."""
    from ._tensors import inline_external_data as inline

    return inline(proto, Path(path))

def read(path: str | Path, **options: Any) -> Model:
    """Read an ONNX MLP (nnconvert's, skl2onnx's, torch.onnx's, tf2onnx's).

    Args:
        path: the .onnx file.
        **options: reader options (``READ_OPTIONS``).

    Returns:
        The model graph.

    Raises:
        ReadError: the file is not a readable ONNX model.
        UnsupportedModelError: the graph is not an MLP nnconvert understands.
    """
    from ._reader import read as _read

    return _read(path, **options)


def write(model: Model, output: Output | str | Path, **options: Any) -> None:
    """Write ``model`` as a pure ai.onnx graph.

    Args:
        model: the model graph.
        output: the :class:`~nnconvert._io.atomic.Output` ``nnconvert.save`` passes (a temporary
            file and the final name the external-data sidecar is named after), or a path.
        **options: ``WRITE_OPTIONS`` (module docstring).

    Raises:
        UsageError: a bad option value.
        UnsupportedModelError: the model cannot be expressed with these options.
        WriteError: the file could not be written.
    """
    from ._writer import write_onnx

    write_onnx(model, output, **options)


# ModelProto fields and their protobuf wire types (0 varint, 2 length-delimited):
# producer_name, producer_version, domain, model_version, doc_string, graph,
# opset_import, metadata_props, training_info, functions, configuration.
_MODEL_FIELDS = {2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}
_TEXT_FIELDS = (2, 3, 4, 6)
_IR_VERSIONS = range(3, 21)


def _varint(data: bytes, pos: int) -> tuple[int, int] | None:
    value = 0
    for shift in range(0, 70, 7):
        if pos >= len(data):
            return None
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    return None


def _looks_like_model_proto(head: bytes) -> bool:
    # serializers write fields in number order, so ir_version (field 1, varint) comes first
    if len(head) < 4 or head[0] != 0x08:
        return False
    parsed = _varint(head, 1)
    if parsed is None or parsed[0] not in _IR_VERSIONS:
        return False
    pos, fields = parsed[1], 0
    while pos < len(head) and fields < 4:
        parsed = _varint(head, pos)
        if parsed is None:
            break
        tag, pos = parsed
        number, wire = tag >> 3, tag & 7
        if _MODEL_FIELDS.get(number) != wire:
            return False
        parsed = _varint(head, pos)
        if parsed is None:
            break
        value, pos = parsed
        if wire == 2:
            if number in _TEXT_FIELDS and pos + value <= len(head):
                try:
                    head[pos : pos + value].decode("utf-8")
                except UnicodeDecodeError:
                    return False
            pos += value
        fields += 1
    return fields > 0


def sniff(head: bytes, path: Path) -> bool:
    """True when ``head`` starts like a serialized ONNX ModelProto.

    Needs field 1 (ir_version) as a varint from 3 to 20, then valid ModelProto
    fields (text ones must be UTF-8): JSON, HDF5, zip and pickle files never match.
    """
    try:
        return _looks_like_model_proto(bytes(head))
    except Exception:  # noqa: BLE001 - a probe never raises
        return False


register(
    FormatSpec(
        name="onnx",
        suffixes=(".onnx",),
        description="ONNX graph (pure ai.onnx operators; opset 9 and newer)",
        read=read,
        write=write,
        sniff=sniff,
        requires={"onnx": "onnx"},
        read_options=READ_OPTIONS,
        write_options=WRITE_OPTIONS + PRECISION_OPTIONS,
        runner="onnxruntime",
    )
)
