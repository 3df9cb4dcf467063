"""onnxruntime on nnconvert's ONNX against skl2onnx's ONNX, and both against scikit-learn.

Every engine runs on one thread (onnxruntime ``intra_op_num_threads=1``,
scikit-learn's BLAS limited through threadpoolctl) so that the comparison is
between the graphs, not the scheduling, on a machine whose two cores are shared.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _interleaved(functions: dict[str, Callable[[], Any]], runs: int, warm_up: int) -> dict[str, list[float]]:
    """Run each function once per round, in turns, so that a burst of load from elsewhere hits all alike."""
    for _ in range(warm_up):
        for function in functions.values():
            function()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(runs):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return times


def measure(estimator: Any, X: np.ndarray, ours: Path, theirs: Path, *, latency_runs: int, throughput_runs: int,
            batch: int = 1024) -> dict[str, float]:
    """Batch-1 median latency (s) and batch-``batch`` throughput (rows/s) of each engine."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    rows = X[rng.integers(0, len(X), batch)] + rng.normal(0, 0.01, (batch, X.shape[1]))
    one64, many64 = rows[:1].copy(), rows
    one32, many32 = one64.astype(np.float32), many64.astype(np.float32)
    sessions = {"nnconvert": _session(ours), "skl2onnx": _session(theirs)}
    def onnx_runs(inputs: np.ndarray) -> dict[str, Callable[[], Any]]:
        return {name: (lambda s=session: s.run(None, {"X": inputs})) for name, session in sessions.items()}

    # the two ONNX files alternate; scikit-learn runs on its own, as running it between them
    # would leave whichever session follows it with cold caches
    with threadpool_limits(1):
        latencies = _interleaved(onnx_runs(one32), latency_runs, warm_up=min(50, latency_runs))
        latencies |= _interleaved({"sklearn": lambda: estimator.predict_proba(one64)}, latency_runs, warm_up=10)
        batches = _interleaved(onnx_runs(many32), throughput_runs, warm_up=1)
        batches |= _interleaved({"sklearn": lambda: estimator.predict_proba(many64)}, throughput_runs, warm_up=1)
    result: dict[str, float] = {}
    for name in latencies:
        result[f"{name}_latency"] = statistics.median(latencies[name])
        result[f"{name}_throughput"] = batch / min(batches[name])
    return result
