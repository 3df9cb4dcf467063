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
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._io.tables import load_table as load_data
from ..errors import UsageError
from .runners import DEFAULT_RANGE, Runner

__all__ = ["Inputs", "load_data", "random_inputs", "feature_range", "edge_cases", "InputHasher"]

LARGE_FACTORS = (10.0, 1e3)
BOUNDARY_PAIRS = 6
BISECTION_STEPS = 20
HASH_BLOCK_BYTES = 64 << 20  # big enough that hashlib drops the GIL, small enough to cancel fast


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


def edge_cases(
    inputs: Inputs, reference: Runner | None, seed: int, float32: bool, labels: np.ndarray | None = None
) -> tuple[np.ndarray, list[str]]:
    """Rows that stress a conversion, each with its kind, for :attr:`Inputs.edge`.

    ``labels``: the reference's labels of ``inputs.X`` when already computed (saves a run).
    """
    low, high = inputs.low, inputs.high
    if low is None or high is None:
        raise UsageError("edge cases need the inputs' per-feature range: set Inputs.low and Inputs.high")
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
        boundary = _boundary_rows(inputs.X, reference, rng, labels)
        rows.extend(boundary)
        kinds.extend(["decision-boundary"] * len(boundary))
    edge = np.vstack(rows)
    return (edge.astype(np.float32).astype(np.float64) if float32 else edge), kinds


def _labels(reference: Runner, X: np.ndarray) -> np.ndarray:
    labels = np.asarray(reference.run(X)["labels"])
    return labels.reshape(len(X), -1)


def _boundary_rows(X: np.ndarray, reference: Runner, rng: np.random.Generator, known: np.ndarray | None) -> list[np.ndarray]:
    """Bisect between rows with different reference labels: two rows straddling each boundary."""
    picked = rng.choice(len(X), size=min(len(X), 64), replace=False)
    sample = X[picked]
    if known is None:
        labels = _labels(reference, sample)
    elif hasattr(known, "take_rows"):  # a streamed run's kept rows (stream.SparseRows)
        labels = np.asarray(known.take_rows(picked)).reshape(len(picked), -1)
    else:
        labels = np.asarray(known).reshape(len(X), -1)[picked]
    differ = (labels[:, None, :] != labels[None, :, :]).any(axis=2)
    pairs = [tuple(pair) for pair in np.argwhere(np.triu(differ, k=1)).tolist()]  # (i, j), i < j, in row order
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
    """sha256 of the inputs, computed in a background thread while the models run.

    What is hashed, for each array in order: the ASCII text ``f"{dtype.str}{shape}"``
    (e.g. ``<f8(100000, 784)``), then the array's bytes in C order. The arrays are
    the rows as the user gave them (only non-float data is first converted to
    float64), which is also what ``Report.save_inputs`` stores as ``X``: verifying
    again with ``--data`` that file gives the same digest.

    hashlib releases the GIL on large buffers, so a thread started before the
    models run hashes on a core that scikit-learn / onnxruntime leave idle.
    """

    def __init__(self, arrays: list[np.ndarray]):
        self._arrays = arrays
        self._digest: str | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._cancelled = threading.Event()
        self.seconds = 0.0  # wall time spent hashing (in the thread when started)
        self.cpu_seconds = 0.0  # CPU time of the hashing thread: what a busy machine pays for it

    def start(self) -> InputHasher:
        """Hash in a daemon thread; :meth:`result` waits for it."""
        self._thread = threading.Thread(target=self._run, name="nnconvert-verify-sha256", daemon=True)
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Stop a background hash early (verify failed; nobody will read the digest)."""
        self._cancelled.set()

    def result(self) -> str:
        """The hex digest (waits for the background thread when one was started).

        Raises:
            RuntimeError: the hash was cancelled before it finished.
        """
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        elif self._digest is None and self._error is None:
            self._run()
        if self._error is not None:
            raise self._error
        assert self._digest is not None
        return self._digest

    def _run(self) -> None:
        start, cpu_start = time.perf_counter(), time.thread_time()
        try:
            self._digest = self._compute()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread by result()
            self._error = exc
        finally:
            self.seconds = time.perf_counter() - start
            self.cpu_seconds = time.thread_time() - cpu_start
            self._arrays = []

    def _compute(self) -> str:
        digest = hashlib.sha256()
        for array in self._arrays:
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            for block in _byte_blocks(array):
                if self._cancelled.is_set():
                    raise RuntimeError("the inputs' sha256 was cancelled")
                digest.update(block)
        return digest.hexdigest()


def _byte_blocks(array: np.ndarray) -> Any:
    """The C-order bytes of ``array`` in blocks of about 64 MiB (a copy only when not C-contiguous)."""
    if array.flags.c_contiguous:
        flat = array.reshape(-1).view(np.uint8).data  # any dtype, byte order included
        for start in range(0, len(flat), HASH_BLOCK_BYTES):
            yield flat[start : start + HASH_BLOCK_BYTES]
        return
    rows = max(1, HASH_BLOCK_BYTES // max(1, array[:1].nbytes))
    for start in range(0, len(array), rows):
        yield np.ascontiguousarray(array[start : start + rows]).reshape(-1).view(np.uint8).data
