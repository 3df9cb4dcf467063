"""Shared pieces of the benchmarks: timing, result rows, the benchmark models.

Not a test module: nothing here asserts, every function measures or builds.
"""

from __future__ import annotations

import gc
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# the large model of the issue: 784 inputs, three hidden layers of 4096, 10 classes (~37M weights)
LARGE_SHAPE = (784, (4096, 4096, 4096), 10)
SEED = 0


@dataclass
class Row:
    """One line of the results table: ours against a baseline, and the target it serves."""

    section: str
    what: str
    ours: str
    baseline: str
    ratio: float | None
    target: str = ""
    holds: bool | None = None
    note: str = ""


def best_of(function: Callable[[], Any], repeat: int) -> float:
    """The shortest of ``repeat`` wall-clock runs, in seconds (the least disturbed by other load)."""
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def best_of_interleaved(functions: Sequence[Callable[[], Any]], repeat: int) -> list[float]:
    """Best-of-``repeat`` of each function, run in turns so that bursts of load hit them all alike."""
    best = [float("inf")] * len(functions)
    for _ in range(repeat):
        for index, function in enumerate(functions):
            gc.collect()
            start = time.perf_counter()
            function()
            best[index] = min(best[index], time.perf_counter() - start)
    return best


def fsync_write(path: Path, payload: bytes | Sequence[bytes]) -> None:
    """Write bytes and flush them to disk, as nnconvert's atomic save does."""
    pieces = [payload] if isinstance(payload, (bytes, bytearray, memoryview)) else payload
    with open(path, "wb") as handle:
        for piece in pieces:
            handle.write(piece)
        handle.flush()
        os.fsync(handle.fileno())


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def seconds(value: float) -> str:
    if value < 1e-3:
        return f"{value * 1e6:.0f} us"
    if value < 1:
        return f"{value * 1e3:.1f} ms"
    return f"{value:.2f} s"


def megabytes(value: float) -> str:
    return f"{value / 2**20:.0f} MiB"


# -- models --------------------------------------------------------------------


def small_mlp() -> tuple[Any, np.ndarray]:
    """An MLPClassifier (10,) trained on iris, and iris' features."""
    from sklearn.datasets import load_iris
    from sklearn.neural_network import MLPClassifier

    X, y = load_iris(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: the fit's quality is irrelevant here
        estimator = MLPClassifier((10,), max_iter=300, random_state=SEED).fit(X, y)
    return estimator, X


def random_mlp(n_inputs: int, hidden: Sequence[int], n_classes: int, seed: int = SEED) -> tuple[Any, np.ndarray]:
    """A fitted MLPClassifier of the given shape with seeded random float64 weights, and a few input rows.

    Training a 37M-weight MLP is beside the point of a conversion benchmark:
    the estimator is fitted for one iteration on a few random rows at width 1
    per hidden layer (so that every fitted attribute exists), then given
    full-size seeded weights and the matching ``hidden_layer_sizes``. Its
    ``predict_proba`` works as for any fitted MLP.
    """
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((2 * n_classes, n_inputs))
    labels = np.arange(2 * n_classes) % n_classes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = MLPClassifier((1,) * len(hidden), max_iter=1, random_state=seed).fit(rows, labels)
    sizes = [n_inputs, *hidden, n_classes]
    estimator.hidden_layer_sizes = tuple(hidden)
    estimator.coefs_ = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    estimator.intercepts_ = [rng.standard_normal(b) * 0.01 for b in sizes[1:]]
    vars(estimator).pop("_optimizer", None)  # training state sized for width 1; conversion never reads it
    return estimator, rows


def large_mlp() -> tuple[Any, np.ndarray]:
    n_inputs, hidden, n_classes = LARGE_SHAPE
    return random_mlp(n_inputs, hidden, n_classes)


def weight_arrays(estimator: Any) -> list[np.ndarray]:
    return [*estimator.coefs_, *estimator.intercepts_]


def n_weights(estimator: Any) -> int:
    return sum(array.size for array in weight_arrays(estimator))


def weights_nbytes(estimator: Any) -> int:
    return sum(array.nbytes for array in weight_arrays(estimator))
