"""Inputs of a verification: user data or seeded random rows, plus edge cases.

Random rows are drawn uniformly in a per-feature range derived from the
reference model's preprocessing (or given), rounded to float32 when either side
computes in float32 so that both sides see exactly the same numbers. Edge cases
(zeros, the range's corners, magnitudes that saturate logistic/softmax/tanh,
rows next to a decision boundary) are a few dozen rows run separately: they
never cost a full-size pass.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ReadError, UsageError
from .runners import DEFAULT_RANGE, Runner

__all__ = ["Inputs", "load_data", "random_inputs", "feature_range", "edge_cases", "InputHasher"]

LARGE_FACTORS = (10.0, 1e3)
BOUNDARY_PAIRS = 6
BISECTION_STEPS = 20


@dataclass
class Inputs:
    """The rows both models see: the main block and the small edge-case block."""

    X: np.ndarray
    source: str  # "data", "random" or "test-data"
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    range_source: str = ""
    edge: np.ndarray | None = None
    edge_kinds: list[str] = field(default_factory=list)


def load_data(path: str | Path) -> np.ndarray:
    """A 2-D float array from .npy, .npz (key ``X`` or the first array) or .csv (header optional).

    Raises:
        ReadError: the file is missing, unreadable or not a numeric 2-D table.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
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
    except (OSError, ValueError) as exc:
        if isinstance(exc, ReadError):
            raise
        raise ReadError(f"cannot read the data: {exc}", path=path) from exc
    return _checked_table(data, path)


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


def feature_range(
    reference: Runner, n_features: int, value_range: tuple[float, float] | None
) -> tuple[np.ndarray, np.ndarray, str]:
    """Per-feature (low, high) and where it came from: the user, the preprocessing, or the default."""
    if value_range is not None:
        low, high = (float(v) for v in value_range)
        if not low < high:
            raise UsageError(f"the input range must have low < high, got {low} {high}")
        return np.full(n_features, low), np.full(n_features, high), "given"
    derived = reference.input_range()
    if derived is not None:
        return np.asarray(derived[0], float), np.asarray(derived[1], float), derived[2]
    low, high = DEFAULT_RANGE
    return np.full(n_features, low), np.full(n_features, high), f"default [{low}, {high}] (no preprocessing to derive it from)"


def random_inputs(n_samples: int, low: np.ndarray, high: np.ndarray, seed: int, float32: bool) -> np.ndarray:
    """``n_samples`` uniform rows in [low, high), float32-representable when ``float32``."""
    rng = np.random.default_rng(seed)
    X = rng.random((n_samples, low.size))
    X *= high - low
    X += low
    return X.astype(np.float32).astype(np.float64) if float32 else X


def edge_cases(inputs: Inputs, reference: Runner | None, seed: int, float32: bool) -> tuple[np.ndarray, list[str]]:
    """Rows that stress a conversion, each with its kind, for :attr:`Inputs.edge`."""
    low, high = inputs.low, inputs.high
    center, half = (low + high) / 2, (high - low) / 2
    rng = np.random.default_rng(seed + 1)
    rows = [np.zeros_like(center), center, low, high]
    kinds = ["zeros", "center", "range-low", "range-high"]
    for factor in LARGE_FACTORS:
        for sign in (1.0, -1.0):
            direction = rng.choice([-1.0, 1.0], size=center.size)
            rows.append(center + sign * factor * half * direction)
            kinds.append(f"large-x{factor:g}")
    if reference is not None and reference.is_classifier:
        boundary = _boundary_rows(inputs.X, reference, rng)
        rows.extend(boundary)
        kinds.extend(["decision-boundary"] * len(boundary))
    edge = np.vstack(rows)
    return (edge.astype(np.float32).astype(np.float64) if float32 else edge), kinds


def _labels(reference: Runner, X: np.ndarray) -> np.ndarray:
    labels = np.asarray(reference.run(X)["labels"])
    return labels.reshape(len(X), -1)


def _boundary_rows(X: np.ndarray, reference: Runner, rng: np.random.Generator) -> list[np.ndarray]:
    """Bisect between rows with different reference labels: two rows straddling each boundary."""
    sample = X[rng.choice(len(X), size=min(len(X), 64), replace=False)]
    labels = _labels(reference, sample)
    pairs = [(i, j) for i in range(len(sample)) for j in range(i + 1, len(sample)) if (labels[i] != labels[j]).any()]
    if not pairs:
        return []
    chosen = [pairs[k] for k in rng.choice(len(pairs), size=min(BOUNDARY_PAIRS, len(pairs)), replace=False)]
    start = sample[[i for i, _ in chosen]]
    end = sample[[j for _, j in chosen]]
    start_labels = labels[[i for i, _ in chosen]]
    lo, hi = np.zeros((len(chosen), 1)), np.ones((len(chosen), 1))
    for _ in range(BISECTION_STEPS):
        mid = (lo + hi) / 2
        same = (_labels(reference, start + mid * (end - start)) == start_labels).all(axis=1, keepdims=True)
        lo, hi = np.where(same, mid, lo), np.where(same, hi, mid)
    return list(start + lo * (end - start)) + list(start + hi * (end - start))


class InputHasher:
    """sha256 of the inputs, computed on first use (a report that is never serialised never pays for it).

    Hashing 100,000 x 784 float64 rows costs about as much as one model's inference,
    so verify defers it to ``Report.to_dict()`` / ``summary()``.
    """

    def __init__(self, arrays: list[np.ndarray]):
        self._arrays = arrays
        self._digest: str | None = None

    def result(self) -> str:
        if self._digest is None:
            digest = hashlib.sha256()
            for array in self._arrays:
                digest.update(f"{array.dtype.str}{array.shape}".encode())
                for block in _row_blocks(array):
                    digest.update(memoryview(block).cast("B"))
            self._digest = digest.hexdigest()
            self._arrays = []
        return self._digest


def _row_blocks(array: np.ndarray, rows: int = 65536) -> Any:
    if array.flags.c_contiguous:
        yield array
        return
    for start in range(0, len(array), rows):
        yield np.ascontiguousarray(array[start : start + rows])
