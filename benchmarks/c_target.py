"""The c target against onnxruntime (batch 1) and emlearn, side by side (not a test).

For the iris sample (4-10-3) and a digits MLP (64-64-32-10, raw pixels), the
same fitted scikit-learn MLPClassifier goes through:

- nnconvert's c target, float32 and int16 (calibrated on the training rows);
- emlearn (``emlearn.convert(estimator).save(...)``), its float network;
- onnxruntime, nnconvert's float32 ONNX file, one row per ``session.run``.

Latency: the generated code's ``predict`` called once per row in a C loop over
the rows (one ctypes call for all of them, so Python's overhead is not counted),
best of ``--repeat`` rounds, divided by the number of rows; onnxruntime's is the
Python loop a caller of its API pays. Sizes: each tool's weight tables (bytes
of the ``static const`` arrays), the object file's ``.text`` (code) with
``cc -Os -c``, and RAM for activations (our stack arrays; emlearn's static
buffers). Accuracy: max |probability - scikit-learn's| and label agreement.

emlearn is not a dependency of nnconvert or of its tests; install it into the
environment you run this from::

    pip install emlearn
    python benchmarks/c_target.py [--repeat 5] [--rows 20000]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _models() -> list[tuple[str, Any, np.ndarray, np.ndarray]]:
    import joblib
    from sklearn.datasets import load_digits, load_iris
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    iris = joblib.load(ROOT / "samples" / "iris_mlp.pkl")  # the README's sample: a bare MLPClassifier
    X_iris = load_iris().data
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.3, random_state=0)
    digits = MLPClassifier((64, 32), random_state=0, max_iter=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        digits.fit(X_train, y_train)
    return [("iris 4-10-3", iris, X_iris, X_iris), ("digits 64-64-32-10", digits, X_train, X_test)]


def _per_row(call: Any, n_rows: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best / n_rows


def _ours(estimator: Any, X_train: np.ndarray, X: np.ndarray, folder: Path, precision: str, repeat: int) -> dict[str, Any]:
    import nnconvert
    from nnconvert.formats.c.build import CompiledModel
    from nnconvert.formats.c.report import describe_file

    path = folder / f"ours_{precision}.c"
    options = {"calibration": X_train} if precision.startswith("int") else {}
    nnconvert.save(nnconvert.from_sklearn(estimator), path, precision=precision, **options)
    program = CompiledModel(path)
    x = program._inputs(X)
    labels = np.empty(len(X), dtype=np.intc)
    latency = _per_row(lambda: program._call("predict", x, labels), len(X), repeat)
    proba = program.forward(X)
    info = describe_file(path)
    return {"latency": latency, "labels": estimator.classes_[program.predict_indices(X)], "proba": proba,
            "weights": info["sizes"]["weights_bytes"], "code": info["sizes"]["code_bytes"], "ram": info["sizes"]["ram_bytes"]}  # fmt: skip


_EML_HARNESS = """#include "{header}"
void eml_harness_predict(const float *x, int *labels, long n)
{{
    long r;
    for (r = 0; r < n; ++r) labels[r] = model_eml_predict(x + r * {nf}, {nf});
}}
void eml_harness_proba(const float *x, float *out, long n)
{{
    long r;
    for (r = 0; r < n; ++r) eml_net_predict_proba(&model_eml, x + r * {nf}, {nf}, out + r * {nc}, {nc});
}}
"""


def _emlearn(estimator: Any, X: np.ndarray, folder: Path, repeat: int) -> dict[str, Any]:
    import emlearn

    from nnconvert.formats.c.build import elf_section_sizes

    header = folder / "model_eml.h"
    previous = os.getcwd()
    os.chdir(folder)  # emlearn.convert compiles a helper into ./tmp of the working folder
    try:
        emlearn.convert(estimator, method="loadable").save(file=str(header), name="model_eml")
    finally:
        os.chdir(previous)
    text = header.read_text()
    weights = sum(int(n) * 4 for n in re.findall(r"static const float \w+\[(\d+)\]", text))
    ram = sum(int(n) * 4 for n in re.findall(r"static float \w+\[(\d+)\]", text))
    nf, nc = X.shape[1], len(estimator.classes_)
    source = folder / "eml_harness.c"
    source.write_text(_EML_HARNESS.format(header=header, nf=nf, nc=nc))
    include = ["-I", emlearn.includedir]
    strict = subprocess.run(["cc", "-Wall", "-Wextra", "-Werror", "-std=c99", "-pedantic", "-O2", *include, "-c", str(source),
                             "-o", str(folder / "strict.o")], capture_output=True, text=True)  # fmt: skip
    library = folder / "eml.so"
    subprocess.run(["cc", "-O2", "-fPIC", "-shared", *include, str(source), "-o", str(library), "-lm"], check=True)
    subprocess.run(["cc", "-Os", *include, "-c", str(source), "-o", str(folder / "eml.o")], check=True)
    sections = elf_section_sizes((folder / "eml.o").read_bytes())
    lib = ctypes.CDLL(str(library))
    x = np.ascontiguousarray(X, dtype=np.float32)
    labels = np.empty(len(X), dtype=np.intc)
    proba = np.empty((len(X), nc), dtype=np.float32)
    args = (x.ctypes.data_as(ctypes.c_void_p), labels.ctypes.data_as(ctypes.c_void_p), ctypes.c_long(len(X)))
    latency = _per_row(lambda: lib.eml_harness_predict(*args), len(X), repeat)
    lib.eml_harness_proba(x.ctypes.data_as(ctypes.c_void_p), proba.ctypes.data_as(ctypes.c_void_p), ctypes.c_long(len(X)))
    return {"latency": latency, "labels": estimator.classes_[labels], "proba": proba.astype(np.float64), "weights": weights,
            "code": sections.get("text"), "ram": ram, "strict_ok": strict.returncode == 0}  # fmt: skip


def _onnxruntime(estimator: Any, X: np.ndarray, folder: Path, repeat: int) -> float:
    import onnxruntime as ort

    import nnconvert

    path = folder / "model.onnx"
    nnconvert.save(nnconvert.from_sklearn(estimator), path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    rows = [np.ascontiguousarray(X[i : i + 1], dtype=np.float32) for i in range(min(len(X), 2000))]
    name = session.get_inputs()[0].name

    def run() -> None:
        for row in rows:
            session.run(None, {name: row})

    return _per_row(run, len(rows), repeat)


def _fmt_bytes(value: Any) -> str:
    return "n/a" if value is None else f"{value:,} B"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rows", type=int, default=20000, help="rows per latency round (the test rows, repeated)")
    args = parser.parse_args()
    try:
        import emlearn  # noqa: F401
    except ImportError:
        raise SystemExit("this benchmark compares against emlearn: pip install emlearn") from None
    for title, estimator, X_train, X_test in _models():
        X = np.resize(X_test, (args.rows, X_test.shape[1]))
        reference = estimator.predict_proba(X)
        reference_labels = estimator.predict(X)
        with tempfile.TemporaryDirectory(prefix="nnconvert-bench-c-") as name:
            folder = Path(name)
            results = {
                "nnconvert float32": _ours(estimator, X_train, X, folder, "float32", args.repeat),
                "nnconvert int16": _ours(estimator, X_train, X, folder, "int16", args.repeat),
                "emlearn float": _emlearn(estimator, X, folder, args.repeat),
            }
            ort_latency = _onnxruntime(estimator, X_test, folder, args.repeat)
        print(f"\n## {title} ({args.rows} rows, best of {args.repeat})")
        print(f"{'':20}{'per row':>10}{'weights':>12}{'code':>10}{'RAM':>9}{'max |p err|':>13}{'labels':>9}")
        for tool, result in results.items():
            error = np.abs(result["proba"] - reference).max()
            agree = np.mean(result["labels"] == reference_labels)
            print(f"{tool:20}{result['latency'] * 1e6:>8.3f}us{_fmt_bytes(result['weights']):>12}{_fmt_bytes(result['code']):>10}"
                  f"{_fmt_bytes(result['ram']):>9}{error:>13.2e}{agree:>8.2%}")  # fmt: skip
        print(f"{'onnxruntime batch-1':20}{ort_latency * 1e6:>8.3f}us  (Python loop over session.run, one row each)")
        ours, eml = results["nnconvert float32"], results["emlearn float"]
        print(f"ratios: nnconvert float32 / onnxruntime batch-1 latency {ours['latency'] / ort_latency:.4f}; "
              f"/ emlearn latency {ours['latency'] / eml['latency']:.2f}; weights / emlearn's {ours['weights'] / eml['weights']:.2f}; "
              f"int16 weights / emlearn's {results['nnconvert int16']['weights'] / eml['weights']:.2f}")  # fmt: skip
        print(f"emlearn's code compiles under -Wall -Wextra -Werror -std=c99 -pedantic: {'yes' if eml['strict_ok'] else 'no'}")


if __name__ == "__main__":
    main()
