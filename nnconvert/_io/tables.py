"""Numeric tables from .npy, .npz and .csv files: verify's data rows, the c target's calibration rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ReadError

__all__ = ["load_table"]


def load_table(path: str | Path) -> np.ndarray:
    """A 2-D float array from .npy, .npz (key ``X`` or the first array) or .csv (header optional).

    Raises:
        ReadError: the file is missing, unreadable or not a numeric 2-D table.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        _check_declared_sizes(path, suffix)
        if suffix == ".npy":
            data = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                if not archive.files:
                    raise ReadError("the archive holds no arrays", path=path)
                data = archive["X" if "X" in archive.files else archive.files[0]]
        elif suffix in (".csv", ".txt"):
            data = _read_csv(path)
        else:
            raise ReadError(f"unknown data file type {suffix!r}; expected .npy, .npz or .csv", path=path)
    except (OSError, ValueError, MemoryError, EOFError) as exc:
        if isinstance(exc, ReadError):
            raise
        raise ReadError(f"cannot read the data: {type(exc).__name__}: {exc}", path=path) from exc
    return _checked_table(data, path)


def _check_declared_sizes(path: Path, suffix: str) -> None:
    """Refuse arrays declaring more than the file holds, before numpy allocates them (as model files are checked)."""
    import zipfile

    from .budget import file_budget
    from .zip_safety import charge_every_member, checked_members

    if suffix == ".npy":
        from numpy.lib import format as npy

        with open(path, "rb") as handle:
            version = npy.read_magic(handle)
            reader = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            shape, _fortran, dtype = reader(handle)
            declared = int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize
            available = path.stat().st_size - handle.tell()
        if declared > available:
            raise ReadError(f"the array declares shape {list(shape)} of {dtype} ({declared} bytes) but the file holds {available}", path=path)
    elif suffix == ".npz":
        with file_budget(path, None), zipfile.ZipFile(path) as archive:
            charge_every_member(archive, checked_members(archive, path, "npz"), path, "npz")


def _read_csv(path: Path) -> np.ndarray:
    with open(path, encoding="utf-8") as handle:
        first = handle.readline()
    try:
        [float(cell) for cell in first.strip().split(",")]
        skip = 0
    except ValueError:
        skip = 1  # a header line
    return np.loadtxt(path, delimiter=",", skiprows=skip, dtype=np.float64, ndmin=2)


def _checked_table(data: np.ndarray, path: Path) -> np.ndarray:
    if data.dtype.kind not in "fiub":
        raise ReadError(f"expected numbers, got an array of dtype {data.dtype}", path=path)
    if data.ndim == 1:
        data = data.reshape(1, -1)
    if data.ndim != 2 or data.shape[0] == 0:
        raise ReadError(f"expected a 2-D table (rows, features), got shape {data.shape}", path=path)
    return data if data.dtype.kind == "f" else data.astype(np.float64)
