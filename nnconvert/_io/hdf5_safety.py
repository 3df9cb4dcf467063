"""Safety checks shared by the HDF5-based formats, applied before any weight is read.

A hostile HDF5 file can point outside itself (external links, external
storage, virtual datasets) or declare terabytes it does not store (sparse
chunks); these checks refuse both without reading the data. h5py is imported
only by the functions that need it.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import NnconvertError, ReadError, WriteError
from .budget import charge

__all__ = ["SIGNATURE", "has_signature", "outside_data_problem", "unstored_data_problem", "refuse_outside_data",
           "hdf5_write_errors"]

SIGNATURE = b"\x89HDF\r\n\x1a\n"
_MAX_FILTER_RATIO = 1100  # deflate cannot shrink data more than ~1032:1


def outside_data_problem(dataset: Any) -> str | None:
    """Why ``dataset``'s data lives outside the file (virtual, external storage), or None."""
    if dataset.is_virtual:
        return "is a virtual dataset"
    if dataset.external:
        return f"is stored in external file(s) {', '.join(str(entry[0]) for entry in dataset.external)}"
    return None


def unstored_data_problem(dataset: Any) -> str | None:
    """Why reading ``dataset`` would allocate more than the file holds, or None.

    A chunked dataset whose chunks were never written is a few bytes on disk
    whatever shape it declares; filters (gzip) cannot expand data more than ~1032:1.
    """
    declared = (dataset.size or 0) * dataset.dtype.itemsize
    stored = dataset.id.get_storage_size()
    filtered = dataset.id.get_create_plist().get_nfilters() > 0
    if declared > (stored * _MAX_FILTER_RATIO if filtered else stored):
        return f"declares shape {list(dataset.shape)} ({declared} bytes) but the file stores only {stored} bytes of it"
    # filters stay within their own ratio; the whole file stays within one budget whatever the nesting
    charge(declared, f"dataset {dataset.name}")
    return None


def has_signature(head: bytes, path: Path) -> bool:
    """HDF5's signature at offset 0, or after a user block of 512, 1024, 2048... bytes."""
    if head.startswith(SIGNATURE):
        return True
    size = path.stat().st_size
    offset = 512
    with open(path, "rb") as handle:
        while offset + len(SIGNATURE) <= size:
            if head[offset : offset + len(SIGNATURE)] == SIGNATURE:
                return True
            if offset + len(SIGNATURE) > len(head):
                handle.seek(offset)
                if handle.read(len(SIGNATURE)) == SIGNATURE:
                    return True
            offset *= 2
    return False


def refuse_outside_data(handle: Any, path: Path, format_name: str) -> None:
    """Refuse external links, external storage and virtual datasets anywhere in the file, before reading weights.

    A walk over each group's own links, each object visited once: linear in
    the file's size (looking every name up from the root, as
    ``visititems_links`` + ``handle.get(name)`` does, is quadratic in the nesting depth).
    """
    import h5py

    def refuse(problem: str) -> ReadError:
        return ReadError(f"{problem}; nnconvert reads only data stored inside the file", path=path, format=format_name)

    seen = {handle.id}
    pending = [(handle, "")]
    while pending:
        group, prefix = pending.pop()
        for name in group:
            full = f"{prefix}{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise refuse(f"{full!r} is an external link to {link.filename}:{link.path}")
            if not isinstance(link, h5py.HardLink):
                continue  # a soft link names an object inside the file, checked where it is stored
            node = group.get(name)
            if node is None or node.id in seen:
                continue
            seen.add(node.id)
            if isinstance(node, h5py.Dataset):
                problem = outside_data_problem(node)
                if problem is not None:
                    raise refuse(f"{full!r} {problem}")
            elif isinstance(node, h5py.Group):
                pending.append((node, f"{full}/"))


@contextlib.contextmanager
def hdf5_write_errors(target: str | os.PathLike[str]) -> Iterator[None]:
    """libhdf5's write failures (a full disk, a file size limit) as a :class:`WriteError` naming ``target``.

    libhdf5 reports them as RuntimeError/OSError carrying the C errno in the
    text ("unable to extend file properly, errno = 28, ..."); h5py adds
    nothing better to catch.
    """
    try:
        yield
    except NnconvertError:
        raise
    except (RuntimeError, OSError) as exc:
        found = re.search(r"errno = (\d+)", str(exc))
        reason = os.strerror(int(found.group(1))) if found else str(exc)
        raise WriteError(f"{target}: cannot write the HDF5 file: {reason} ({exc})") from None
