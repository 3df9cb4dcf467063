"""verify's overhead over the two models' own inference (not a test).

A 784-feature MLPClassifier (784-128-10) and its float32 ONNX conversion run
on 100,000 rows: each model alone (scikit-learn predict_proba; onnxruntime on
the rows cast to float32, as any caller must; its session is made outside the
timing), then ``nnconvert.verify`` on the same rows, and ``verify`` followed by
``report.summary()``, which is what the command line does and what the target
(<= 1.25 x both models) applies to. ``verify`` itself loads the ONNX file and
makes its session once, inside its time.

The four measurements are interleaved, round after round, so that a burst of
load from other processes hits all of them alike; best of ``--repeat`` rounds,
with the median beside it as a measure of the noise.

    python benchmarks/verify_overhead.py [--rows 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _timed(function: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall and CPU time (every thread of the process) of one call, and its result."""
    start, cpu = time.perf_counter(), time.process_time()
    result = function()
    return time.perf_counter() - start, time.process_time() - cpu, result


def _line(name: str, times: list[float], own: tuple[float, list[float]] | None = None, note: str = "") -> str:
    """``own``: both models' best time and their time in each round."""
    best, median = min(times), statistics.median(times)
    ratio = ""
    if own is not None:
        per_round = statistics.median(t / o for t, o in zip(times, own[1], strict=True))
        ratio = f"  ratio {best / own[0]:.2f} best/best, {per_round:.2f} median of rounds"
    return f"{name:<24}{best:7.3f} s  (median {median:.3f}){ratio}{note}"


def _measure(estimator: Any, session: Any, path: Path, X: np.ndarray, repeat: int) -> dict[str, Any]:
    import nnconvert

    wall: dict[str, list[float]] = {"reference": [], "candidate": [], "verify": [], "verify+summary": [], "console": []}
    cpu: dict[str, list[float]] = {key: [] for key in wall}
    stages: list[dict[str, float]] = []
    calls = {
        "reference": lambda: estimator.predict_proba(X),
        "candidate": lambda: session.run(None, {"X": X.astype(np.float32)}),
        "verify": lambda: nnconvert.verify(estimator, path, X),
        "verify+summary": lambda: (lambda report: (report, report.summary()))(nnconvert.verify(estimator, path, X)),
        # what `nnconvert verify` does when it writes no report: no sha256 of the inputs
        "console": lambda: nnconvert.verify(estimator, path, X, hash_inputs=False).summary(),
    }
    for _ in range(repeat):
        for key, call in calls.items():
            elapsed, used, result = _timed(call)
            wall[key].append(elapsed)
            cpu[key].append(used)
            if key == "verify+summary":
                stages.append(result[0].to_dict()["timings"])
                summary = result[1]
                passed = result[0].passed
    return {"wall": wall, "cpu": cpu, "stages": stages, "summary": summary, "passed": passed}


def _print(measured: dict[str, Any], rows: int, repeat: int) -> None:
    wall, cpu, stages = measured["wall"], measured["cpu"], measured["stages"]
    rounds = [r + c for r, c in zip(wall["reference"], wall["candidate"], strict=True)]
    own = (min(wall["reference"]) + min(wall["candidate"]), rounds)
    print(f"rows x features         {rows} x 784 (float64 data, float32 ONNX), {repeat} interleaved rounds")
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"load average            {load} on {os.cpu_count()} cores (other processes add noise)")
    print(_line("scikit-learn alone", wall["reference"]))
    print(_line("onnxruntime alone", wall["candidate"], note="  (cast to float32 included)"))
    print(f"{'both models':<24}{own[0]:7.3f} s  (median {statistics.median(rounds):.3f})")
    print(_line("nnconvert.verify", wall["verify"], own))
    print(_line("verify + summary()", wall["verify+summary"], own, "  (with the inputs' sha256)"))
    print(_line("no hash + summary()", wall["console"], own, "  <- target <= 1.25: the console run of `nnconvert verify`"))
    print(f"passed={measured['passed']}")
    own_cpu = min(cpu["reference"]) + min(cpu["candidate"])
    verify_cpu = min(cpu["verify+summary"])
    hash_cpu = min(s.get("sha256_cpu_s", 0.0) for s in stages)
    print(
        f"CPU time, all threads   both models {own_cpu:.3f} s; verify + summary() {verify_cpu:.3f} s, of which the "
        f"sha256 thread {hash_cpu:.3f} s; without it {(verify_cpu - hash_cpu) / own_cpu:.2f} x the models"
    )
    print("  (the sha256 runs beside the models: hidden when a core is free, +its CPU time when none is)")
    best = {key: min(s.get(key, 0.0) for s in stages) for key in stages[0]}
    print("verify's stages, best of the rounds (s):")
    print("  " + ", ".join(f"{key.removesuffix('_s')} {value:.3f}" for key, value in best.items()))
    print(measured["summary"].splitlines()[3])


def main() -> None:
    import onnxruntime as ort
    from sklearn.neural_network import MLPClassifier

    import nnconvert

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train = rng.random((3000, 784)), rng.integers(0, 10, 3000)
        estimator = MLPClassifier((128,), max_iter=5, random_state=0).fit(*train)
    X = rng.random((args.rows, 784))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mnist-like.onnx"
        nnconvert.save(nnconvert.from_sklearn(estimator), path, dtype="float32")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        nnconvert.verify(estimator, path, X[:1000]).summary()  # imports and first-call costs, not measured
        measured = _measure(estimator, session, path, X, args.repeat)
    _print(measured, args.rows, args.repeat)


if __name__ == "__main__":
    main()
