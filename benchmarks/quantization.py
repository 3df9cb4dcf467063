"""Reduced precision side by side (issue 12): nnconvert's float16/int8 ONNX files beside
``onnxruntime.quantization.quantize_dynamic`` applied to skl2onnx's float32 ONNX of the same model.

For the iris sample, a 64-256-128-10 classifier trained on scikit-learn's digits, and the
36.8M-weight model of ``_common.large_mlp``: file size, label agreement with the original
estimator and metric delta (held-out accuracy; the large model has random weights and no
labels, so only agreement), max abs probability error, onnxruntime batch-1 median latency
and batch-1024 throughput (one thread, runs interleaved). Also float16 *compute*
(onnxruntime.transformers' convert_float_to_float16 on nnconvert's float32 graph), the
alternative to nnconvert's float16 storage with float32 compute.

    PYTHONPATH=$PWD python benchmarks/quantization.py [--quick] [--no-large] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SEED, large_mlp  # noqa: E402

VARIANTS = ("float32", "float16", "float16-compute", "int8", "int8-static", "skl2onnx+quantize_dynamic")


def _iris() -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    import joblib

    root = Path(__file__).resolve().parent.parent / "samples"
    estimator = joblib.load(root / "iris_mlp.pkl")
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    return estimator, X, X, y  # calibration rows, held-out rows, labels (the sample is tiny: all rows)


def _digits() -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=SEED, stratify=y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = MLPClassifier((256, 128), max_iter=300, random_state=SEED).fit(X_train, y_train)
    return estimator, X_train[:500], X_test, y_test


def _large() -> tuple[Any, np.ndarray, np.ndarray, None]:
    estimator, _ = large_mlp()
    rng = np.random.default_rng(SEED)
    return estimator, rng.standard_normal((256, 784)), rng.standard_normal((2048, 784)), None


def _write_variants(estimator: Any, calibration: np.ndarray, folder: Path) -> dict[str, Path]:
    import onnx
    from onnxruntime.quantization import quantize_dynamic
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from skl2onnx import to_onnx

    import nnconvert

    model = nnconvert.from_sklearn(estimator)
    paths = {name: folder / f"{name}.onnx" for name in VARIANTS}
    nnconvert.save(model, paths["float32"])
    nnconvert.save(model, paths["float16"], precision="float16")
    onnx.save(convert_float_to_float16(onnx.load(str(paths["float32"])), keep_io_types=True), str(paths["float16-compute"]))
    nnconvert.save(model, paths["int8"], precision="int8")
    nnconvert.save(model, paths["int8-static"], precision="int8", calibration=calibration)
    skl = folder / "skl2onnx.onnx"
    onnx.save(to_onnx(estimator, calibration[:1].astype(np.float32), options={"zipmap": False}), str(skl))
    logging.getLogger().setLevel(logging.ERROR)
    quantize_dynamic(skl, paths["skl2onnx+quantize_dynamic"])
    paths["skl2onnx float32"] = skl
    return paths


def _session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _probabilities(session: Any, X: np.ndarray) -> np.ndarray:
    outputs = session.run(None, {session.get_inputs()[0].name: X.astype(np.float32)})
    return np.asarray(next(o for o in outputs if np.ndim(o) == 2), dtype=np.float64)


def _timings(sessions: dict[str, Any], X: np.ndarray, latency_runs: int, throughput_runs: int) -> dict[str, tuple[float, float]]:
    """(median batch-1 latency in s, best batch-1024 rows/s) per session, runs interleaved across sessions."""
    rng = np.random.default_rng(SEED)
    batch = X[rng.integers(0, len(X), 1024)].astype(np.float32)
    one = batch[:1]
    latency: dict[str, list[float]] = {name: [] for name in sessions}
    best: dict[str, float] = {name: float("inf") for name in sessions}
    for session in sessions.values():  # warm up
        session.run(None, {session.get_inputs()[0].name: one})
    for _ in range(latency_runs):
        for name, session in sessions.items():
            start = time.perf_counter()
            session.run(None, {session.get_inputs()[0].name: one})
            latency[name].append(time.perf_counter() - start)
    for _ in range(throughput_runs):
        for name, session in sessions.items():
            start = time.perf_counter()
            session.run(None, {session.get_inputs()[0].name: batch})
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: (float(np.median(latency[name])), 1024 / best[name]) for name in sessions}


def measure(label: str, case: tuple[Any, np.ndarray, np.ndarray, Any], latency_runs: int, throughput_runs: int) -> list[dict[str, Any]]:
    estimator, calibration, X_test, y_test = case
    with tempfile.TemporaryDirectory(prefix="nnconvert-bench-q-") as folder:
        paths = _write_variants(estimator, calibration, Path(folder))
        original_proba = estimator.predict_proba(X_test)
        original_labels = original_proba.argmax(axis=1)
        sessions = {name: _session(path) for name, path in paths.items() if name in VARIANTS}
        timings = _timings(sessions, X_test, latency_runs, throughput_runs)
        float32_size = paths["float32"].stat().st_size
        rows = []
        for name in VARIANTS:
            proba = _probabilities(sessions[name], X_test)
            labels = proba.argmax(axis=1)
            accuracy_delta = None
            if y_test is not None:
                classes = estimator.classes_
                accuracy_delta = float(np.mean(classes[labels] == y_test) - np.mean(classes[original_labels] == y_test))
            size = paths[name].stat().st_size
            rows.append(
                {
                    "model": label,
                    "variant": name,
                    "bytes": size,
                    "smaller": float32_size / size,
                    "agreement": float(np.mean(labels == original_labels)),
                    "accuracy_delta": accuracy_delta,
                    "max_abs_error": float(np.abs(proba - original_proba).max()),
                    "latency": timings[name][0],
                    "throughput": timings[name][1],
                    "speedup": timings[name][1] / timings["float32"][1],
                }
            )
        rows.append({"model": label, "variant": "skl2onnx float32 (size only)", "bytes": paths["skl2onnx float32"].stat().st_size})
        return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = "| model | variant | file | x smaller | label agreement | accuracy delta | max abs prob error | batch-1 latency | batch-1024 rows/s | x float32 |"
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        if "agreement" not in r:
            lines.append(f"| {r['model']} | {r['variant']} | {r['bytes']:,} B | | | | | | | |")
            continue
        delta = "n/a" if r["accuracy_delta"] is None else f"{r['accuracy_delta']:+.4f}"
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['bytes']:,} B | {r['smaller']:.2f} | {r['agreement']:.4%} | {delta} | "
            f"{r['max_abs_error']:.2e} | {r['latency'] * 1e6:.0f} us | {r['throughput']:,.0f} | {r['speedup']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--no-large", action="store_true", help="skip the 36.8M-weight model")
    parser.add_argument("--only-large", action="store_true", help="only the 36.8M-weight model")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores")
    cases = [] if args.only_large else [("iris", _iris), ("digits 64-256-128-10", _digits)]
    if not args.no_large:
        cases.append(("large 784-4096x3-10", _large))
    rows: list[dict[str, Any]] = []
    for label, make in cases:
        large = label.startswith("large")
        runs = (3, 2) if large else ((50, 5) if args.quick else (300, 20))
        rows += measure(label, make(), *runs)
        print(table([r for r in rows if r["model"] == label]), flush=True)
    load = os.getloadavg()
    footer = f"\nload average at end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    print(footer)
    if args.markdown:
        args.markdown.write_text(table(rows) + "\n" + footer + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
