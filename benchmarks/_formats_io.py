"""Write and read time of nnconvert's json and hdf5 files against raw numpy and raw h5py.

The model is the large one in its own dtype (float64, as scikit-learn trained
it). nnconvert writes through ``nnconvert.save`` (atomic, fsynced) and reads
through ``nnconvert.load`` (which validates the model); the baselines write the
same arrays with ``ndarray.tofile`` / ``h5py`` create_dataset and fsync too, and
read them back with ``np.fromfile`` / ``dataset[()]``, every array kept until
the read ends, as a loaded model keeps them (dropping each at once would let
the allocator reuse its pages and flatter the baseline). A third baseline,
"raw base64", is the floor of any base64 text file in CPython: ``binascii``
over each array, one line each, no JSON. Reads follow writes, so
both sides read from the page cache.
"""

from __future__ import annotations

import binascii
from pathlib import Path
from typing import Any

import numpy as np
from _common import best_of, fsync_file


def raw_numpy(arrays: list[np.ndarray], path: Path) -> tuple[Any, Any]:
    def write() -> None:
        with open(path, "wb") as handle:
            for array in arrays:
                array.tofile(handle)
        fsync_file(path)

    def read() -> list[np.ndarray]:
        with open(path, "rb") as handle:
            return [np.fromfile(handle, dtype=a.dtype, count=a.size).reshape(a.shape) for a in arrays]

    return write, read


def raw_h5py(arrays: list[np.ndarray], path: Path) -> tuple[Any, Any]:
    import h5py

    def write() -> None:
        with h5py.File(path, "w") as handle:
            for index, array in enumerate(arrays):
                handle.create_dataset(f"a{index}", data=array)
        fsync_file(path)

    def read() -> list[np.ndarray]:
        with h5py.File(path, "r") as handle:
            return [handle[f"a{index}"][()] for index in range(len(arrays))]

    return write, read


def raw_base64(arrays: list[np.ndarray], path: Path) -> tuple[Any, Any]:
    """The floor of any base64 text format in CPython: binascii over each array's bytes, one line each."""

    def write() -> None:
        with open(path, "wb") as handle:
            for array in arrays:
                handle.write(binascii.b2a_base64(array.reshape(-1).view(np.uint8), newline=True))
        fsync_file(path)

    def read() -> list[np.ndarray]:
        with open(path, "rb") as handle:
            content = memoryview(handle.read())
        decoded, start = [], 0
        for array in arrays:  # slices of one buffer: no copy of the text before decoding it
            end = start + 4 * -(-array.nbytes // 3)
            decoded.append(np.frombuffer(binascii.a2b_base64(content[start:end]), dtype=array.dtype).reshape(array.shape))
            start = end + 1
        return decoded

    return write, read


def nnconvert_format(model: Any, path: Path, **options: Any) -> tuple[Any, Any]:
    import nnconvert

    def write() -> None:
        nnconvert.save(model, path, **options)

    def read() -> Any:
        return nnconvert.load(path)

    return write, read


def measure(model: Any, arrays: list[np.ndarray], workdir: Path, repeat: int, *, json_list: bool) -> dict[str, dict[str, float]]:
    """{name: {"write": s, "read": s, "bytes": n}} for each format and baseline."""
    cases = {
        "raw numpy": raw_numpy(arrays, workdir / "raw.bin"),
        "raw h5py": raw_h5py(arrays, workdir / "raw.h5"),
        "raw base64": raw_base64(arrays, workdir / "raw.b64"),
        "hdf5": nnconvert_format(model, workdir / "model.h5", format="hdf5"),
        "json base64": nnconvert_format(model, workdir / "model_b64.json", format="json", arrays="base64"),
    }
    if json_list:
        cases["json list"] = nnconvert_format(model, workdir / "model_list.json", format="json", arrays="list")
    paths = {
        "raw numpy": workdir / "raw.bin",
        "raw h5py": workdir / "raw.h5",
        "raw base64": workdir / "raw.b64",
        "hdf5": workdir / "model.h5",
        "json base64": workdir / "model_b64.json",
        "json list": workdir / "model_list.json",
    }
    results = {}
    for name, (write, read) in cases.items():
        times = {"write": best_of(write, 1 if name == "json list" else repeat)}
        times["read"] = best_of(read, 1 if name == "json list" else repeat)
        times["bytes"] = paths[name].stat().st_size
        results[name] = times
    return results
