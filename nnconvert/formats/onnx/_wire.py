"""Hand-written protobuf wire format: a ModelProto streamed to a file with its weights sent straight from numpy.

The file is the exact bytes ``SerializeToString`` would give for the model
with its raw data filled in (fields in number order; raw_data, field 9, is
the last field nnconvert sets in a tensor), but the weights go from numpy to
the file without passing through the protobuf message.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Bytes cast and written at a time: small enough to stay in cache, large enough
# that the per-call cost vanishes.
_CHUNK_BYTES = 1 << 22


class Payload:
    """A numeric tensor's values, cast to the file's little-endian dtype only as they are written.

    Writing chunk by chunk means a float64 model saved as float32 never holds a
    second, full-size copy of its weights, and a model already in the file's
    dtype is written straight from its own memory.
    """

    __slots__ = ("array", "dtype")

    def __init__(self, array: np.ndarray, dtype: np.dtype):
        self.dtype = dtype.newbyteorder("<")
        # the rare non-C-ordered array is copied once, in the (usually smaller) target dtype
        self.array = array if array.flags.c_contiguous else np.ascontiguousarray(array, dtype=self.dtype)

    @property
    def nbytes(self) -> int:
        return self.array.size * self.dtype.itemsize

    def chunks(self) -> Any:
        """The raw little-endian bytes, as uint8 arrays of at most ``_CHUNK_BYTES``."""
        flat = self.array.reshape(-1)
        step = max(1, _CHUNK_BYTES // self.dtype.itemsize)
        for start in range(0, flat.size, step):
            yield flat[start : start + step].astype(self.dtype, copy=False).view(np.uint8)

    def write_to(self, handle: Any) -> None:
        for chunk in self.chunks():
            handle.write(chunk)

    def tobytes(self) -> bytes:
        return np.ascontiguousarray(self.array, dtype=self.dtype).tobytes()


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _length_delimited_tag(number: int) -> bytes:
    return _varint(number << 3 | 2)


def _split_fields(message: Any, number: int) -> tuple[bytes, bytes]:
    """``message`` serialized as its fields before ``number`` and its fields after it."""
    before, after = type(message)(), type(message)()
    before.CopyFrom(message)
    after.CopyFrom(message)
    for field, _ in message.ListFields():
        if field.number >= number:
            before.ClearField(field.name)
        if field.number <= number:
            after.ClearField(field.name)
    return before.SerializeToString(), after.SerializeToString()


def _piece_size(piece: bytes | Payload) -> int:
    return piece.nbytes if isinstance(piece, Payload) else len(piece)


def _tensor_pieces(tensor: Any, payload: Payload | None) -> list[bytes | Payload]:
    skeleton = tensor.SerializeToString()
    if payload is None:
        return [skeleton]
    raw_tag = _length_delimited_tag(tensor.DESCRIPTOR.fields_by_name["raw_data"].number)
    return [skeleton, raw_tag + _varint(payload.nbytes), payload]


def stream_model(proto: Any, payloads: list[Payload | None], handle: Any) -> None:
    graph = proto.graph
    initializer_number = graph.DESCRIPTOR.fields_by_name["initializer"].number
    graph_number = proto.DESCRIPTOR.fields_by_name["graph"].number
    graph_before, graph_after = _split_fields(graph, initializer_number)
    pieces: list[bytes | Payload] = [graph_before]
    for tensor, payload in zip(graph.initializer, payloads, strict=True):
        body = _tensor_pieces(tensor, payload)
        pieces.append(_length_delimited_tag(initializer_number) + _varint(sum(_piece_size(p) for p in body)))
        pieces.extend(body)
    pieces.append(graph_after)
    model_before, model_after = _split_fields(proto, graph_number)
    handle.write(model_before)
    handle.write(_length_delimited_tag(graph_number) + _varint(sum(_piece_size(p) for p in pieces)))
    for piece in pieces:
        if isinstance(piece, Payload):
            piece.write_to(handle)
        else:
            handle.write(piece)
    handle.write(model_after)
