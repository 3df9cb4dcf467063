"""nnconvert's own HDF5 layout.

The root group carries the attributes ``nnconvert_format`` ("nnconvert-hdf5"),
``format_version`` and ``document``: the :mod:`nnconvert.serde` document as a
UTF-8 JSON string in which every array is a reference
``{"dataset": "/layers/0/weights", "dtype": "float32", "shape": [784, 4096]}``
to a dataset stored in its own dtype. A document too large for an attribute
is stored in the scalar string dataset ``/document`` instead.

Reading opens only the datasets the document references, after checking each
one's shape and dtype against the document, and refuses data that lives
outside the file (external links, external storage, virtual datasets).
Keras' .h5 files have no ``nnconvert_format`` attribute: the sniffer tells
them apart by content. The exact specification is in docs/formats.md.
"""

from __future__ import annotations

import json
import math
import re
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from .. import array_keys
from .._io.atomic import Output, as_output
from .._io.budget import declare_parameters
from .._io.hdf5_safety import has_signature, hdf5_write_errors, outside_data_problem, unstored_data_problem
from ..errors import NnconvertError, ReadError, UnsupportedModelError, UsageError
from ..ir import Model
from ..quantization import PRECISION_OPTIONS
from ..registry import FormatSpec, Option, register
from ..serde import DocumentReader, json_default, model_from_document, model_to_document

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "read", "write", "sniff"]

FORMAT_NAME = "nnconvert-hdf5"
FORMAT_VERSION = "1.1"
SUPPORTED_MAJOR = 1

# HDF5 keeps attributes in the object header, whose messages are limited to
# 64 KiB; a larger document (thousands of feature names) goes to a dataset.
ATTRIBUTE_LIMIT = 32 * 1024
DOCUMENT_DATASET = "document"
COMPRESSIONS = (None, "none", "gzip")
DTYPES: dict[str, np.dtype[Any]] = {
    "float16": np.dtype("<f2"),
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
    "int8": np.dtype("i1"),  # quantized weights and zero points
}
FLOAT_NAMES = ("float16", "float32", "float64")
_VERSION_PATTERN = re.compile(r"^(\d+)\.(\d+)$")
_MAX_SOFT_LINK_HOPS = 16


# -- writing -------------------------------------------------------------------


def _document_text(document: dict[str, Any]) -> str:
    options: dict[str, Any] = {"allow_nan": False, "sort_keys": True, "separators": (",", ":"), "default": json_default}
    try:
        text = json.dumps(document, ensure_ascii=False, **options)
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:  # a lone surrogate: keep it as a \u escape
        return json.dumps(document, ensure_ascii=True, **options)
    except (TypeError, ValueError) as exc:
        raise UnsupportedModelError(f"the hdf5 format cannot store a value of this model: {exc}") from None


def _dataset_options(array: np.ndarray, compression: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {"track_times": False}  # no timestamps: the same model gives the same bytes
    if compression is not None and array.ndim > 0 and array.size > 0:
        options.update(compression=compression, shuffle=True, chunks=True)
    return options


def write(model: Model, output: Output | str | PathLike[str], *, compression: str | None = None) -> None:
    """Write ``model`` in nnconvert's HDF5 layout.

    Args:
        model: the model graph.
        output: where to write (the temporary file's :class:`~nnconvert._io.atomic.Output` when
            called by ``save``), or a path.
        compression: None or "none" (default: contiguous datasets), or "gzip" (chunked, with shuffle).

    Raises:
        UsageError: an unknown compression.
        UnsupportedModelError: the model holds a value the document cannot store.
    """
    import h5py

    if compression not in COMPRESSIONS:
        raise UsageError(f"the hdf5 writer's option compression must be 'gzip', 'none' or None, got {compression!r}")
    compression = None if compression == "none" else compression
    arrays: dict[str, np.ndarray] = {}

    def reference(array: np.ndarray, key: str) -> dict[str, Any]:
        if array.dtype.name not in DTYPES:
            raise UnsupportedModelError(f"{key}: the hdf5 format stores float16/32/64 and int8 arrays, got {array.dtype}")
        arrays["/" + key] = array
        return {"dataset": "/" + key, "dtype": array.dtype.name, "shape": list(array.shape)}

    text = _document_text(model_to_document(model, reference))
    with hdf5_write_errors(as_output(output).final_path), h5py.File(as_output(output).path, "w") as handle:
        handle.attrs["nnconvert_format"] = FORMAT_NAME
        handle.attrs["format_version"] = FORMAT_VERSION
        if len(text.encode("utf-8")) <= ATTRIBUTE_LIMIT:
            handle.attrs["document"] = text
        else:
            handle.create_dataset(DOCUMENT_DATASET, data=text, dtype=h5py.string_dtype("utf-8"), track_times=False)
        for name, array in arrays.items():
            data = np.asarray(array, dtype=DTYPES[array.dtype.name])
            handle.create_dataset(name, data=data, **_dataset_options(data, compression))


# -- reading -------------------------------------------------------------------


class _Reader:
    """Reads one open file: the document, then each referenced dataset on demand."""

    def __init__(self, handle: Any, path: str | PathLike[str]):
        self.handle = handle
        self.r = DocumentReader(path, "hdf5")
        self.n_features: int | None = None
        self.width: int | None = None  # outputs of the previous layer
        self.where = "the root group"  # what was being read, for errors about a corrupt file

    def fail(self, message: str) -> ReadError:
        return ReadError(message, path=self.r.path, format="hdf5")

    # -- root attributes and document --

    def attribute(self, name: str) -> Any:
        self.where = f"root attribute {name!r}"
        try:
            value = self.handle.attrs.get(name)
        except Exception as exc:  # noqa: BLE001 - h5py raises OSError/TypeError for unreadable attributes
            raise self.fail(f"root attribute {name!r} cannot be read: {exc}") from None
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else value

    def check_header(self) -> None:
        name = self.attribute("nnconvert_format")
        if name is None:
            raise self.fail(
                "no root attribute 'nnconvert_format': not a file in nnconvert's HDF5 layout "
                "(a Keras .h5 file? read it with format='keras-h5')"
            )
        if name != FORMAT_NAME:
            raise self.fail(f"root attribute 'nnconvert_format': expected {FORMAT_NAME!r}, got {name!r}")
        version = self.attribute("format_version")
        match = _VERSION_PATTERN.match(version) if isinstance(version, str) else None
        if match is None:
            raise self.fail(
                f"root attribute 'format_version': expected 'MAJOR.MINOR' such as {FORMAT_VERSION!r}, got {version!r}"
            )
        if int(match.group(1)) != SUPPORTED_MAJOR:
            raise self.fail(
                f"root attribute 'format_version': version {version} is not supported: this nnconvert reads "
                f"major version {SUPPORTED_MAJOR} ({SUPPORTED_MAJOR}.x); upgrade nnconvert"
            )

    def document_text(self) -> str:
        text = self.attribute("document")
        if text is None:
            dataset = self.dataset("/" + DOCUMENT_DATASET, "document")
            if dataset.shape != () or dataset.dtype.kind not in "OS":
                raise self.fail("dataset '/document': expected a scalar UTF-8 string")
            try:
                text = dataset.asstr()[()] if dataset.dtype.kind == "O" else dataset[()].decode("utf-8")
            except Exception as exc:  # noqa: BLE001 - undecodable or corrupt
                raise self.fail(f"dataset '/document' cannot be read: {exc}") from None
        if not isinstance(text, str):
            raise self.fail(f"root attribute 'document': expected a UTF-8 JSON string, got {type(text).__name__}")
        return text

    def document(self) -> Any:
        try:
            return json.loads(self.document_text(), parse_constant=_refuse_constant)
        except RecursionError:
            raise self.fail("the document is nested too deeply to be a model document") from None
        except ValueError as exc:
            raise self.fail(f"the document is not valid JSON: {exc}") from None

    # -- datasets --

    def dataset(self, name: str, field: str) -> Any:
        """The dataset at ``name``, following only links that stay inside the file."""
        import h5py

        if not isinstance(name, str) or not name.startswith("/"):
            raise self.r.fail(f"{field}.dataset", f"expected an absolute dataset path, got {name!r}")
        self.where = f"dataset {name!r} ({field})"
        node, parts, hops = self.handle, [p for p in name.split("/") if p], 0
        while parts:
            part = parts.pop(0)
            if not isinstance(node, h5py.Group):
                raise self.fail(f"dataset {name!r} ({field}): {node.name!r} is not a group")
            link = node.get(part, getlink=True)
            if link is None:
                raise self.fail(f"dataset {name!r} ({field}) does not exist in the file")
            if isinstance(link, h5py.ExternalLink):
                raise self.fail(
                    f"dataset {name!r} ({field}) is an external link to {link.filename}:{link.path}; "
                    "nnconvert reads only data stored inside the file"
                )
            if isinstance(link, h5py.SoftLink):
                hops += 1
                if hops > _MAX_SOFT_LINK_HOPS:
                    raise self.fail(f"dataset {name!r} ({field}): too many soft links (a loop?)")
                target = link.path
                node = self.handle if target.startswith("/") else node
                parts = [p for p in target.split("/") if p] + parts
                continue
            node = node[part]
        if not isinstance(node, h5py.Dataset):
            raise self.fail(f"{name!r} ({field}) is not a dataset")
        problem = outside_data_problem(node)
        if problem is not None:
            raise self.fail(f"dataset {name!r} ({field}) {problem}; nnconvert reads only data stored inside the file")
        return node

    def expected_shape(self, key: str, field: str, shape: tuple[int, ...]) -> None:
        """Refuse a declared shape the document's own sizes contradict, before reading anything."""
        kind = array_keys.role(key)
        if kind == "operand":
            if len(shape) > 1 or (len(shape) == 1 and shape[0] not in (1, 2, self.n_features)):
                raise self.r.fail(
                    f"{field}.shape",
                    f"expected [] or [{self.n_features}] (one value per input feature), got {list(shape)}",
                )
        elif kind == "weights" or key.endswith("/quantization/values"):
            if len(shape) != 2 or shape[0] != self.width:
                raise self.r.fail(
                    f"{field}.shape",
                    f"expected [{self.width}, n_out] (the previous stage gives {self.width} values), got {list(shape)}",
                )
            self.width = shape[1]
        elif shape != (self.width,):
            raise self.r.fail(
                f"{field}.shape", f"expected [{self.width}] (one per output of the layer), got {list(shape)}"
            )

    def check_stored(self, dataset: Any, name: str, field: str) -> None:
        """Refuse a dataset declaring more data than the file stores, before allocating it."""
        problem = unstored_data_problem(dataset)
        if problem is not None:
            raise self.fail(f"dataset {name!r} ({field}) {problem}")

    def decode(self, encoded: Any, key: str) -> np.ndarray:
        field = array_keys.field_path(key)
        r = self.r
        name = r.get(encoded, "dataset", f"{field}.dataset", str)
        dtype_name = r.get(encoded, "dtype", f"{field}.dtype", str)
        allowed = DTYPES if key.rsplit("/", 1)[-1] in ("values", "zero_point") else FLOAT_NAMES  # int8: quantization only
        if dtype_name not in allowed:
            raise r.fail(f"{field}.dtype", f"expected one of {', '.join(allowed)}, got {dtype_name!r}")
        shape = r.get(encoded, "shape", f"{field}.shape", list)
        if not all(isinstance(size, int) and not isinstance(size, bool) and size >= 0 for size in shape):
            raise r.fail(f"{field}.shape", f"expected a list of non-negative integers, got {shape!r:.80}")
        self.expected_shape(key, field, tuple(shape))
        dataset = self.dataset(name, field)
        if (
            dataset.shape != tuple(shape)
            or dataset.dtype.kind != DTYPES[dtype_name].kind
            or dataset.dtype.itemsize != DTYPES[dtype_name].itemsize
        ):
            raise self.fail(
                f"dataset {name!r} ({field}) is {dataset.dtype} of shape {list(dataset.shape or ())}, "
                f"but the document declares {dtype_name} of shape {shape}"
            )
        self.check_stored(dataset, name, field)
        try:
            array = dataset[()]
        except Exception as exc:  # noqa: BLE001 - corrupt data, a missing filter...
            raise self.fail(f"dataset {name!r} ({field}) cannot be read: {exc}") from None
        array = np.asarray(array)
        return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))

    def model(self) -> Model:
        self.check_header()
        document = self.document()
        input_doc = document.get("input") if isinstance(document, dict) else None
        n_features = input_doc.get("n_features") if isinstance(input_doc, dict) else None
        if isinstance(n_features, int) and not isinstance(n_features, bool):
            self.n_features = self.width = n_features
        declare_parameters(_declared_parameters(document))
        return model_from_document(document, self.decode, path=self.r.path, format="hdf5")


def _declared_parameters(document: Any) -> int:
    """How many values the document's arrays declare (malformed entries count as none: decode refuses them)."""
    total = 0
    layers = document.get("layers") if isinstance(document, dict) else None
    for layer in layers if isinstance(layers, list) else []:
        for field in ("weights", "bias"):
            encoded = layer.get(field) if isinstance(layer, dict) else None
            shape = encoded.get("shape") if isinstance(encoded, dict) else None
            if isinstance(shape, list) and all(isinstance(size, int) and size >= 0 for size in shape):
                total += math.prod(shape)
    n_features = document.get("input", {}).get("n_features") if isinstance(document, dict) and isinstance(document.get("input"), dict) else 0
    steps = document.get("steps") if isinstance(document, dict) else None
    if isinstance(n_features, int) and isinstance(steps, list):
        total += 2 * n_features * len(steps)  # preprocessing operands: at most one per feature per op
    return total


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed: weights must be finite")


def read(path: str | PathLike[str]) -> Model:
    """Read a file in nnconvert's HDF5 layout.

    Args:
        path: the file.

    Returns:
        The model graph.

    Raises:
        ReadError: not HDF5, not nnconvert's layout, an unknown major version,
            a field or dataset missing or inconsistent, or data stored outside the file.
    """
    import h5py

    try:
        handle = h5py.File(path, "r")
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError for anything unreadable
        raise ReadError(f"not a readable HDF5 file: {exc}", path=path, format="hdf5") from None
    reader = _Reader(handle, path)
    try:
        with handle:
            return reader.model()
    except NnconvertError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, SystemError) as exc:
        # h5py reports a damaged file structure with any of these, from whatever object it was opening
        raise ReadError(f"the HDF5 file is corrupt (while reading {reader.where}): {exc}", path=path, format="hdf5") from None


# -- sniffing ------------------------------------------------------------------


def sniff(head: bytes, path: Path) -> bool:
    """True for an HDF5 file whose root attribute ``nnconvert_format`` names this layout."""
    try:
        if not has_signature(head, Path(path)):
            return False
        import h5py

        with h5py.File(path, "r") as handle:
            value = handle.attrs.get("nnconvert_format")
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        return value == FORMAT_NAME
    except Exception:  # noqa: BLE001 - a probe never raises
        return False


# .h5 is also Keras' suffix: content tells the two apart; when it says nothing, this layout comes first.
HDF5_PRIORITY = 10

register(
    FormatSpec(
        name="hdf5",
        suffixes=(".h5", ".hdf5"),
        description="nnconvert's HDF5 layout: the model document as a root attribute, weights as datasets",
        read=read,
        write=write,
        sniff=sniff,
        requires={"h5py": "h5py"},
        write_options=(Option("compression", str, choices=("gzip", "none"), default="none", help="dataset compression"), *PRECISION_OPTIONS),
        isolated_reads=True,  # libhdf5 parses the file
        priority=HDF5_PRIORITY,
    )
)
