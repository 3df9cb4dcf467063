"""verify's overhead over the two models' own inference (not a test).

A 784-feature MLPClassifier (784-128-10) and its float32 ONNX conversion run
on 100,000 rows: first each model alone (scikit-learn predict_proba; onnxruntime
on the rows cast to float32, as any caller must), then ``nnconvert.verify`` on
the same rows. Prints the times and the ratio (target <= 1.25).

    python benchmarks/verify_overhead.py [--rows 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def _best(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    import onnxruntime as ort
    from sklearn.neural_network import MLPClassifier

    import nnconvert

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = MLPClassifier((128,), max_iter=5, random_state=0).fit(rng.random((3000, 784)), rng.integers(0, 10, 3000))
    X = rng.random((args.rows, 784))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mnist-like.onnx"
        nnconvert.save(nnconvert.from_sklearn(estimator), path, dtype="float32")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        t_reference = _best(lambda: estimator.predict_proba(X), args.repeat)
        t_candidate = _best(lambda: session.run(None, {"X": X.astype(np.float32)}), args.repeat)
        t_verify = _best(lambda: nnconvert.verify(estimator, path, X), args.repeat)
        t_verify_json = _best(lambda: nnconvert.verify(estimator, path, X).to_dict(), args.repeat)
        report = nnconvert.verify(estimator, path, X)
    own = t_reference + t_candidate
    print(f"rows x features        {args.rows} x 784 (float64 data, float32 ONNX)")
    print(f"scikit-learn alone     {t_reference:.3f} s")
    print(f"onnxruntime alone      {t_candidate:.3f} s (cast to float32 included)")
    print(f"both models            {own:.3f} s")
    print(f"nnconvert.verify       {t_verify:.3f} s  (passed={report.passed})")
    print(f"ratio verify / models  {t_verify / own:.2f}  (target <= 1.25)")
    print(f"verify + to_dict()     {t_verify_json:.3f} s  ratio {t_verify_json / own:.2f} (adds the inputs' sha256)")


if __name__ == "__main__":
    main()
