"""Safety checks shared by the HDF5-based formats, applied before any weight is read.

A hostile HDF5 file can point outside itself (external links, external
storage, virtual datasets) or declare terabytes it does not store (sparse
chunks); these checks refuse both without reading the data. h5py is imported
only by the functions that need it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ReadError

__all__ = ["SIGNATURE", "has_signature", "outside_data_problem", "unstored_data_problem", "refuse_outside_data"]

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
    """Refuse external links, external storage and virtual datasets anywhere in the file, before reading weights."""
    import h5py

    def check(name: str, link: Any) -> str | None:
        if isinstance(link, h5py.ExternalLink):
            return f"{name!r} is an external link to {link.filename}:{link.path}"
        if isinstance(link, h5py.HardLink):
            node = handle.get(name)
            if isinstance(node, h5py.Dataset):
                problem = outside_data_problem(node)
                return None if problem is None else f"{name!r} {problem}"
        return None

    problem = handle.visititems_links(check)
    if problem is not None:
        raise ReadError(f"{problem}; nnconvert reads only data stored inside the file", path=path, format=format_name)
