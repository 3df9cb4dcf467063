"""Input rows read in chunks: Parquet files and folders (pyarrow), CSV, memory-mapped .npy.

Every source knows its row count and width before the first chunk (Parquet
metadata, the .npy header, one pass over the CSV's lines), yields chunks of
exactly ``rows`` rows (the last one shorter) whatever the files' own row
groups, and gives the values the in-memory reader (``inputs.load_data``) gives:
float columns as they are stored, anything else as float64.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingDependencyError, ReadError, UsageError

__all__ = ["DataSource", "open_data", "parquet_files", "STREAMED_SUFFIXES"]

STREAMED_SUFFIXES = (".parquet", ".pq", ".csv", ".txt", ".npy")


@dataclass
class DataSource:
    """A table of rows that can be read chunk by chunk."""

    path: Path
    n_rows: int
    n_features: int
    dtype: np.dtype
    kind: str  # "parquet", "csv" or "npy"
    columns: list[str] | None = None  # Parquet: the feature columns
    label_column: str | None = None  # the ground truth's column, not a feature
    label_index: int | None = None  # CSV: its position

    def labelled_chunks(self, rows: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Like :meth:`chunks`, with the label column's values of the same rows (text kept as text)."""
        if self.label_column is None:
            raise RuntimeError("labelled_chunks needs a label column")  # callers check label_column first
        pieces = self._csv_pieces(rows) if self.kind == "csv" else self._parquet_pieces(rows)
        yield from _rechunk(pieces, rows)

    def chunks(self, rows: int) -> Iterator[np.ndarray]:
        """Consecutive blocks of exactly ``rows`` rows (the last may be shorter), in file order."""
        if self.kind == "npy":
            array = np.load(self.path, mmap_mode="r", allow_pickle=False).reshape(self.n_rows, self.n_features)
            for start in range(0, self.n_rows, rows):
                yield np.array(array[start : start + rows], dtype=self.dtype)  # a private copy of just this block
            return
        pieces = self._csv_pieces(rows) if self.kind == "csv" else self._parquet_pieces(rows)
        yield from (piece[0] if isinstance(piece, tuple) else piece for piece in _rechunk(pieces, rows))

    def _parquet_pieces(self, rows: int) -> Iterator[Any]:
        pq = _pyarrow_parquet()
        wanted = self.columns if self.label_column is None else [*(self.columns or []), self.label_column]
        for file in parquet_files(self.path):
            try:
                # a buffered stream, not the whole row group's bytes up front (pyarrow still decodes a row group at a time)
                handle = pq.ParquetFile(file, buffer_size=1 << 22, pre_buffer=False)
                for batch in handle.iter_batches(batch_size=rows, columns=wanted):
                    if self.label_column is None:
                        yield _batch_to_array(batch, self.dtype, file)
                        continue
                    labels = column_values([batch.column(self.label_column)], [self.label_column], file)
                    yield _batch_to_array(batch.drop_columns([self.label_column]), self.dtype, file), labels
            except OSError as exc:
                raise ReadError(f"cannot read the data: {exc}", path=file) from exc

    def _csv_pieces(self, rows: int) -> Iterator[Any]:
        features = None if self.label_index is None else [i for i in range(self.n_features + 1) if i != self.label_index]
        with open(self.path, encoding="utf-8") as handle:
            if _has_header(self.path):
                handle.readline()
            while True:
                lines = list(islice(handle, rows))
                if not lines:
                    return
                try:
                    # quotechar: a quoted text label may hold a comma (as the ground-truth reader, truth.py, allows)
                    block = np.loadtxt(lines, delimiter=",", dtype=np.float64, ndmin=2, usecols=features, quotechar='"')
                    labels = None if self.label_index is None else np.loadtxt(lines, delimiter=",", dtype=str, ndmin=2, usecols=[self.label_index], quotechar='"')
                except ValueError as exc:
                    raise ReadError(f"cannot read the data: {exc}", path=self.path) from exc
                if not block.size:
                    continue
                if labels is None:
                    yield block
                else:
                    yield block, typed_cells(np.char.strip(labels))


def open_data(path: str | Path, label_column: str | None = None) -> DataSource:
    """The chunked reader of a data file or Parquet folder; ``label_column``: the ground truth's column, not a feature.

    Raises:
        ReadError: missing, unreadable, empty, non-numeric, or of a type that is not streamed; no such label column.
        UsageError: ``label_column`` for an .npy (it has no column names).
        MissingDependencyError: Parquet without pyarrow.
    """
    path = Path(path)
    if not path.exists():
        raise ReadError("no such file or folder", path=path)
    suffix = path.suffix.lower()
    try:
        if path.is_dir() or suffix in (".parquet", ".pq"):
            return _open_parquet(path, label_column)
        if suffix == ".npy" and label_column is not None:
            raise UsageError(f"{path} is an .npy: it has no column names; give the ground truth as a file of its own (--labels FILE, labels=)")
        if suffix == ".npy":
            return _open_npy(path)
        if suffix in (".csv", ".txt"):
            return _open_csv(path, label_column)
    except OSError as exc:
        raise ReadError(f"cannot read the data: {exc}", path=path) from exc
    raise ReadError(f"unknown data file type {suffix!r}; expected .parquet (or a folder of them), .csv, .npy or .npz", path=path)


def parquet_files(path: Path) -> list[Path]:
    """The Parquet files of a folder in path order, skipping Spark's ``_``/``.`` bookkeeping files."""
    if path.is_file():
        return [path]
    files = sorted(
        (p for p in path.rglob("*") if p.is_file() and not any(part.startswith(("_", ".")) for part in p.relative_to(path).parts)),
        key=str,
    )
    return [p for p in files if p.suffix.lower() in (".parquet", ".pq") or not p.suffix]


def column_values(columns: list[Any], names: list[str], file: Path) -> np.ndarray:
    """Arrow columns as one numpy table (rows, columns), text kept as text."""
    arrays = []
    for name, column in zip(names, columns, strict=True):
        if column.null_count:
            raise ReadError(f"column {name!r} has {column.null_count} missing values", path=file)
        values = column.to_numpy(zero_copy_only=False)
        arrays.append(values.astype(str) if values.dtype == object else values)
    return arrays[0][:, None] if len(arrays) == 1 else np.column_stack(arrays)


def typed_cells(cells: np.ndarray) -> np.ndarray:
    """CSV cells as numbers when they all are, else as text."""
    try:
        return cells.astype(np.float64)
    except ValueError:
        return cells


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependencyError("pyarrow", "reading Parquet data", "'nnconvert[parquet]'") from exc
    return pq


def _open_parquet(path: Path, label_column: str | None = None) -> DataSource:
    pq = _pyarrow_parquet()
    files = parquet_files(path)
    if not files:
        raise ReadError("the folder holds no Parquet files", path=path)
    n_rows, schema = 0, None
    for file in files:
        try:
            metadata = pq.ParquetFile(file).metadata
        except Exception as exc:  # noqa: BLE001 - pyarrow raises its own ArrowInvalid for a corrupt footer
            raise ReadError(f"not a readable Parquet file: {exc}", path=file) from exc
        file_schema = metadata.schema.to_arrow_schema()
        if schema is None:
            schema = file_schema
        elif file_schema.names != schema.names:
            raise ReadError(f"its columns {file_schema.names} differ from those of {files[0].name}: {schema.names}", path=file)
        n_rows += metadata.num_rows
    assert schema is not None
    features = [name for name in schema.names if name != label_column]
    if label_column is not None and len(features) == len(schema.names):
        raise ReadError(f"no label column {label_column!r}; its columns: {', '.join(schema.names)}", path=files[0])
    dtype = _columns_dtype([schema.field(name) for name in features], files[0])
    if n_rows == 0:
        raise ReadError("the data holds no rows", path=path)
    return DataSource(path, n_rows, len(features), dtype, "parquet", features, label_column)


def _columns_dtype(schema: Any, file: Path) -> np.dtype:
    import pyarrow as pa

    bad = [f"{f.name} ({f.type})" for f in schema if not (pa.types.is_floating(f.type) or pa.types.is_integer(f.type) or pa.types.is_boolean(f.type))]
    if bad:
        raise ReadError(f"expected numeric columns, got {', '.join(bad)}", path=file)
    kinds = {f.type for f in schema}
    if kinds == {pa.float32()}:
        return np.dtype(np.float32)
    if kinds == {pa.float16()}:
        return np.dtype(np.float16)
    return np.dtype(np.float64)  # float64, ints, bools, or a mix: as load_data converts a mixed table


def _batch_to_array(batch: Any, dtype: np.dtype, file: Path) -> np.ndarray:
    out = np.empty((batch.num_rows, batch.num_columns), dtype=dtype)
    for index, column in enumerate(batch.columns):
        if column.null_count:
            raise ReadError(f"column {batch.schema.names[index]!r} has {column.null_count} missing values", path=file)
        out[:, index] = column.to_numpy(zero_copy_only=False)
    return out


def _open_npy(path: Path) -> DataSource:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise ReadError(f"cannot read the data: {exc}", path=path) from exc
    if array.dtype.kind not in "fiub":
        raise ReadError(f"expected numbers, got an array of dtype {array.dtype}", path=path)
    if array.ndim == 1:
        shape = (1, array.shape[0])
    elif array.ndim == 2 and array.shape[0] > 0:
        shape = array.shape
    else:
        raise ReadError(f"expected a 2-D table (rows, features), got shape {array.shape}", path=path)
    dtype = array.dtype if array.dtype.kind == "f" else np.dtype(np.float64)
    return DataSource(path, int(shape[0]), int(shape[1]), np.dtype(dtype), "npy")


def _has_header(path: Path) -> bool:
    with open(path, encoding="utf-8") as handle:
        first = handle.readline()
    try:
        [float(cell) for cell in _csv_cells(first.strip())]
    except ValueError:
        return True
    return False


def _csv_cells(line: str) -> list[str]:
    """One CSV line's fields (quotes honoured, as np.loadtxt(quotechar='"') reads them)."""
    return next(csv.reader([line]), [])


def _open_csv(path: Path, label_column: str | None = None) -> DataSource:
    header = _has_header(path)
    label_index = None
    if label_column is not None:
        with open(path, encoding="utf-8") as handle:
            names = [cell.strip() for cell in _csv_cells(handle.readline())] if header else []
        if label_column not in names:
            found = f"its columns: {', '.join(names)}" if names else "it has no header line naming its columns"
            raise ReadError(f"no label column {label_column!r}; {found}", path=path)
        label_index = names.index(label_column)
    n_rows, width = 0, None
    with open(path, "rb") as handle:
        if header:
            handle.readline()
        for line in handle:
            stripped = line.strip()
            if stripped and not stripped.startswith(b"#"):  # loadtxt skips blank and comment lines
                if width is None:
                    width = len(_csv_cells(stripped.decode("utf-8", "replace")))
                n_rows += 1
    if n_rows == 0 or width is None:
        raise ReadError(f"expected a 2-D table (rows, features), got shape {(0,)}", path=path)
    n_features = width - (label_index is not None)
    return DataSource(path, n_rows, n_features, np.dtype(np.float64), "csv", None, label_column, label_index)


def _rechunk(pieces: Iterator[Any], rows: int) -> Iterator[Any]:
    """Blocks of exactly ``rows`` rows from pieces of any size (files and row groups do not line up).

    A piece is an array, or a tuple of arrays of the same rows (features and labels), cut alike.
    """
    pending: list[tuple[np.ndarray, ...]] = []
    held = 0
    for piece in pieces:
        parts = piece if isinstance(piece, tuple) else (piece,)
        while len(parts[0]):
            take = min(rows - held, len(parts[0]))
            pending.append(tuple(part[:take] for part in parts))
            held += take
            parts = tuple(part[take:] for part in parts)
            if held == rows:
                yield _joined(pending, isinstance(piece, tuple))
                pending, held = [], 0
    if held:
        yield _joined(pending, isinstance(piece, tuple))


def _joined(pending: list[tuple[np.ndarray, ...]], as_tuple: bool) -> Any:
    joined = tuple(group[0] if len(pending) == 1 else np.concatenate(group) for group in zip(*pending, strict=True))
    return joined if as_tuple else joined[0]
