"""Loading an ONNX file's protobuf, and the checks made before any tensor is read.

The protobuf is parsed without its external data; versions and text fields
are checked, and every external-data location must stay inside the model's
folder (nothing is read from it here).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from ...errors import ReadError
from ._common import FORMAT

EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


def load_proto(path: Path) -> Any:
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except OSError as exc:
        raise ReadError(f"cannot read the file: {exc.strerror or exc}", path=path, format=FORMAT) from None
    except Exception as exc:  # noqa: BLE001 - protobuf raises its own DecodeError and friends
        raise ReadError(
            f"not a valid ONNX model (the protobuf does not parse: {type(exc).__name__}); the file may be truncated or corrupt",
            path=path,
            format=FORMAT,
        ) from None
    if not proto.HasField("graph") or len(proto.graph.node) == 0:
        raise ReadError(
            "not an ONNX model: no graph or an empty graph (is this a truncated file or another kind of protobuf?)",
            path=path,
            format=FORMAT,
        )
    _check_versions(proto, path)
    _check_text(proto, path)
    if len(proto.graph.output) == 0:
        raise ReadError("the graph declares no outputs; a model's graph must name its outputs", path=path, format=FORMAT)
    return proto


def _check_text(proto: Any, path: Path) -> None:
    """Refuse names that are not UTF-8: protobuf hands them over as bytes instead of failing."""
    graph = proto.graph

    def fail(where: str, value: bytes) -> ReadError:
        return ReadError(f"{where} is not valid UTF-8 text: {value[:40]!r}", path=path, format=FORMAT)

    for index, node in enumerate(graph.node):
        for label, values in (("name", [node.name]), ("op_type", [node.op_type]), ("domain", [node.domain]),
                              ("input", node.input), ("output", node.output), ("attribute", [a.name for a in node.attribute])):
            for value in values:
                if isinstance(value, bytes):
                    raise fail(f"node {index} ({node.op_type!s:.40}) {label}", value)
    for label, items in (("input", graph.input), ("output", graph.output), ("initializer", graph.initializer)):
        for index, item in enumerate(items):
            if isinstance(item.name, bytes):
                raise fail(f"graph {label} {index} name", item.name)
    for prop in proto.metadata_props:
        for value in (prop.key, prop.value):
            if isinstance(value, bytes):
                raise fail(f"metadata_props entry {prop.key!s:.40}", value)
    for value in (proto.producer_name, proto.producer_version, proto.domain, graph.name):
        if isinstance(value, bytes):
            raise fail("the model's producer/domain/graph name", value)


def _check_versions(proto: Any, path: Path) -> None:
    """Refuse an IR version or ai.onnx opset newer than the installed onnx knows (as onnxruntime does)."""
    import onnx
    import onnx.defs

    if proto.ir_version > onnx.IR_VERSION:
        raise ReadError(
            f"ir_version {proto.ir_version} is newer than this onnx ({onnx.__version__}) knows (up to {onnx.IR_VERSION}); "
            "upgrade onnx or re-export the model with an older IR version",
            path=path,
            format=FORMAT,
        )
    newest = onnx.defs.onnx_opset_version()
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx") and entry.version > newest:
            raise ReadError(
                f"opset_import: ai.onnx opset {entry.version} is newer than this onnx knows (up to {newest}); "
                "upgrade onnx or export the model with an older opset",
                path=path,
                format=FORMAT,
            )


def _tensors_with_data(proto: Any) -> list[tuple[Any, str]]:
    """Every tensor of the main graph with a description for error messages."""
    tensors = [(t, f"initializer {t.name!r}") for t in proto.graph.initializer]
    for node in proto.graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                tensors.append((attr.t, f"{node.op_type} node {node.name!r} attribute {attr.name!r}"))
    return tensors


def check_external_locations(proto: Any, path: Path) -> None:
    """Refuse any external-data location that leaves the model's folder (before reading anything)."""
    for tensor, where in _tensors_with_data(proto):
        if tensor.data_location == EXTERNAL:
            external_file(tensor, where, path)


def external_info(tensor: Any) -> dict[str, str]:
    return {entry.key: entry.value for entry in tensor.external_data}


def external_file(tensor: Any, where: str, path: Path) -> Path:
    location = external_info(tensor).get("location", "")

    def refuse(reason: str) -> ReadError:
        return ReadError(f"{where}: external data location {location!r} {reason}", path=path, format=FORMAT)

    if not location or "\x00" in location:
        raise refuse("is empty or invalid")
    posix, windows = PurePosixPath(location), PureWindowsPath(location)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or location.startswith(("/", "\\")):
        raise refuse("is an absolute path; only paths relative to the model's folder are allowed")
    if ".." in posix.parts or ".." in windows.parts:
        raise refuse("contains '..'; external data must stay inside the model's folder")
    base = Path(os.path.abspath(path)).parent.resolve()
    target = (base / location).resolve()
    if not target.is_relative_to(base):
        raise refuse(f"resolves to {target}, outside the model's folder {base} (a symbolic link?)")
    if not target.is_file():
        raise refuse(f"does not name an existing file in {base}")
    return target
