"""Ground truth (``--labels FILE``, ``labels=``) read in chunks beside the data rows.

One value per row (or one per output for a multi-output regressor or multilabel
classifier): an ``.npy`` (memory-mapped), a ``.csv`` (header line optional when the
values are numbers) or a Parquet file or folder. Class labels keep their type: text
stays text, numbers are compared as numbers (``metric.same_labels``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ReadError
from .datasource import _pyarrow_parquet, _rechunk, column_values, parquet_files, typed_cells

__all__ = ["TruthSource", "open_truth", "load_truth", "check_rows"]


@dataclass
class TruthSource:
    """A column (or a few) of true values that can be read chunk by chunk."""

    path: Path
    n_rows: int
    kind: str  # "npy", "csv" or "parquet"
    header: bool = False

    def chunks(self, rows: int) -> Iterator[np.ndarray]:
        """Consecutive blocks of exactly ``rows`` values (the last may be shorter)."""
        if self.kind == "npy":
            array = np.load(self.path, mmap_mode="r", allow_pickle=False)
            for start in range(0, self.n_rows, rows):
                yield np.array(array[start : start + rows])
            return
        yield from _rechunk(self._csv_pieces(rows) if self.kind == "csv" else self._parquet_pieces(rows), rows)

    def _csv_pieces(self, rows: int) -> Iterator[np.ndarray]:
        with open(self.path, encoding="utf-8") as handle:
            lines = (line for line in handle if line.strip() and not line.lstrip().startswith("#"))
            if self.header:
                next(lines, None)
            while True:
                block = list(islice(lines, rows))
                if not block:
                    return
                cells = [[cell.strip() for cell in row] for row in csv.reader(block)]  # quoted labels may hold commas
                if len({len(row) for row in cells}) != 1:
                    raise ReadError("rows with different numbers of values", path=self.path)
                yield typed_cells(np.array(cells, dtype=str))

    def _parquet_pieces(self, rows: int) -> Iterator[np.ndarray]:
        pq = _pyarrow_parquet()
        for file in parquet_files(self.path):
            try:
                for batch in pq.ParquetFile(file).iter_batches(batch_size=rows):
                    yield column_values(batch.columns, batch.schema.names, file)
            except OSError as exc:
                raise ReadError(f"cannot read the ground truth: {exc}", path=file) from exc


def open_truth(path: str | Path) -> TruthSource:
    """The chunked reader of a ground-truth file.

    Raises:
        ReadError: missing, unreadable, empty, or of a type that is not read.
        MissingDependencyError: Parquet without pyarrow.
    """
    path = Path(path)
    if not path.exists():
        raise ReadError("no such file or folder", path=path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            if array.ndim not in (1, 2) or len(array) == 0:
                raise ReadError(f"expected one value per row (a 1-D array, or 2-D for several outputs), got shape {array.shape}", path=path)
            return TruthSource(path, int(len(array)), "npy")
        if suffix in (".csv", ".txt"):
            return _open_csv(path)
        if path.is_dir() or suffix in (".parquet", ".pq"):
            pq = _pyarrow_parquet()
            files = parquet_files(path)
            if not files:
                raise ReadError("the folder holds no Parquet files", path=path)
            return TruthSource(path, sum(pq.ParquetFile(file).metadata.num_rows for file in files), "parquet")
    except ValueError as exc:  # numpy's refusal of a pickled (object) .npy or a bad header
        raise ReadError(f"cannot read the ground truth: {exc}", path=path) from exc
    except OSError as exc:
        raise ReadError(f"cannot read the ground truth: {exc}", path=path) from exc
    raise ReadError(f"unknown ground-truth file type {suffix!r}; expected .npy, .csv or .parquet (or a folder of them)", path=path)


def _open_csv(path: Path) -> TruthSource:
    """A header line is told from a first value: numbers follow a header line; a text label occurs again
    further down (classes repeat), a column name does not."""
    first, n_rows, repeated, numbers_follow = None, 0, False, False
    with open(path, "rb") as handle:
        for line in handle:
            stripped = line.strip()
            if not stripped or stripped.startswith(b"#"):
                continue
            n_rows += 1
            if first is None:
                first = stripped
            elif n_rows == 2:
                numbers_follow = _numeric(stripped.decode("utf-8", "replace"))
                repeated = stripped == first
            elif not repeated:
                repeated = stripped == first
    if first is None:
        raise ReadError("the ground truth holds no rows", path=path)
    header = not _numeric(first.decode("utf-8", "replace")) and (numbers_follow or not repeated)
    if n_rows - header <= 0:
        raise ReadError("the ground truth holds no rows", path=path)
    return TruthSource(path, n_rows - int(header), "csv", header)


def _numeric(line: str) -> bool:
    try:
        [float(cell) for cell in next(csv.reader([line]))]
    except ValueError:
        return False
    return True


def load_truth(path: str | Path) -> np.ndarray:
    """A whole ground-truth file in memory (for in-memory verify)."""
    source = open_truth(path)
    return np.concatenate(list(source.chunks(1 << 16)))


def check_rows(labels: str | Path, n_labels: int, data: Any, n_rows: int) -> None:
    """Refuse ground truth whose row count is not the data's, naming both.

    Raises:
        ReadError: the counts differ.
    """
    if n_labels != n_rows:
        raise ReadError(f"the ground truth has {n_labels} rows but the data {data} has {n_rows}", path=labels)
