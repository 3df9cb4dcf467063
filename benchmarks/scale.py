"""verify and convert at scale (issue 13; not a test): streaming memory and throughput, Spark, manifests.

1. Local streaming verify of N rows x 32 features (a Parquet folder written here, float64) of a
   32-64-64-10 MLPClassifier (the pickle, run by scikit-learn) against its float32 ONNX conversion
   (onnxruntime), for each N of ``--rows``: peak resident memory (the child process's maxrss) and
   wall time, beside the baseline: the same Parquet chunks read with pyarrow and run through the
   two models' own batched inference (``predict_proba``; an onnxruntime session on the chunk cast
   to float32), nothing else. Targets: memory < 1 GB whatever N, verify <= 1.3 x the baseline.
2. Spark ``local[2]`` verify of the largest N: wall time (session start apart) and whether the verdict
   and statistics equal the local run's.
3. ``convert --manifest`` of ``--models`` small JSON models to ONNX with 1 and 2 workers: jobs/s and
   peak memory, and the peak memory of a quarter of the jobs beside it (flat: it does not grow with jobs).

Peak memory is the child's ``VmHWM`` (``ru_maxrss`` would include its parent's peak: Linux keeps it across exec).

Each measurement runs in a fresh child process (its own peak memory).

    python benchmarks/scale.py [--rows 1000000,4000000] [--models 1000] [--no-spark]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

FEATURES = 32
FILE_ROWS = 2_000_000
ROOT = Path(__file__).resolve().parent.parent


def _child(kind: str, *args: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, __file__, "--child", kind, *args], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _peak_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from the parent across exec)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: kilobytes on most systems


# -- the children ---------------------------------------------------------------------


def child_verify(data: str, reference: str, candidate: str) -> dict[str, Any]:
    from nnconvert.verify.stream import verify_stream

    start = time.perf_counter()
    report = verify_stream(reference, candidate, data, trust=True, hash_inputs=False)
    seconds = time.perf_counter() - start
    main = {o["name"]: o["checks"][0] for o in report.to_dict()["outputs"]}
    return {"seconds": seconds, "peak_mb": _peak_mb(), "passed": report.passed, "stats": _stats(main), "timings": report.to_dict()["timings"]}


def _stats(main: dict[str, Any]) -> dict[str, Any]:
    keep = ("n_rows", "max_abs_error", "max_rel_error", "max_ulp", "mismatches", "p99_abs_error", "agreement", "flipped", "flips")
    return {name: {k: check[k] for k in keep if k in check} for name, check in main.items()}


def child_baseline(data: str, reference: str, candidate: str) -> dict[str, Any]:
    import pickle

    import onnxruntime as ort
    import pyarrow.parquet as pq

    from nnconvert.verify.bins import CHUNK_ROWS
    from nnconvert.verify.datasource import parquet_files

    start = time.perf_counter()  # loading both models counts, as it does inside verify
    with open(reference, "rb") as handle:
        estimator = pickle.load(handle)
    session = ort.InferenceSession(candidate, providers=["CPUExecutionProvider"])
    rows = 0
    for file in parquet_files(Path(data)):
        for batch in pq.ParquetFile(file).iter_batches(batch_size=CHUNK_ROWS):
            X = np.column_stack([column.to_numpy() for column in batch.columns])
            estimator.predict_proba(X)
            session.run(None, {"X": X.astype(np.float32)})
            rows += len(X)
    return {"seconds": time.perf_counter() - start, "peak_mb": _peak_mb(), "rows": rows}


def child_spark(data: str, reference: str, candidate: str) -> dict[str, Any]:
    from nnconvert import spark

    start = time.perf_counter()
    spark.session("local[2]")
    session_s = time.perf_counter() - start
    seconds = []
    for _ in range(2):  # the first run starts the Python workers and loads the models in them; the second reuses them
        start = time.perf_counter()
        report = spark.verify(data, reference, candidate, trust=True)
        seconds.append(time.perf_counter() - start)
    main = {o["name"]: o["checks"][0] for o in report.to_dict()["outputs"]}
    return {"seconds": seconds[1], "cold_s": seconds[0], "session_s": session_s, "driver_peak_mb": _peak_mb(), "passed": report.passed, "stats": _stats(main)}


def child_manifest(jobs: str, workers: str) -> dict[str, Any]:
    from nnconvert.manifest import run_manifest

    results = Path(jobs).with_suffix(f".w{workers}.results.csv")
    results.unlink(missing_ok=True)
    start = time.perf_counter()
    rows = run_manifest(jobs, results=results, workers=int(workers))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_mb": _peak_mb(), "jobs": len(rows),
            "ok": sum(r["status"] == "ok" for r in rows)}  # fmt: skip


# -- set-up ----------------------------------------------------------------------------


def make_models(folder: Path) -> tuple[Path, Path]:
    import pickle

    from sklearn.neural_network import MLPClassifier

    import nnconvert

    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, FEATURES))
    y = (X[:, :10].argmax(axis=1) + (X[:, 10] > 1)) % 10
    estimator = MLPClassifier((64, 64), max_iter=60, random_state=0).fit(X, y)
    reference = folder / "mlp.pkl"
    reference.write_bytes(pickle.dumps(estimator))
    candidate = folder / "mlp.onnx"
    nnconvert.save(nnconvert.from_sklearn(estimator), candidate, dtype="float32")
    return reference, candidate


def make_parquet(folder: Path, rows: int) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(rows)
    names = [f"f{j}" for j in range(FEATURES)]
    for index, start in enumerate(range(0, rows, FILE_ROWS)):
        count = min(FILE_ROWS, rows - start)
        with pq.ParquetWriter(folder / f"part-{index:05d}.parquet", pa.schema([(n, pa.float64()) for n in names])) as writer:
            for block in range(0, count, 500_000):
                X = rng.normal(size=(min(500_000, count - block), FEATURES))
                writer.write_table(pa.table({n: X[:, j] for j, n in enumerate(names)}))
    return folder


def make_manifest(folder: Path, models: int) -> tuple[Path, Path]:
    import nnconvert
    from nnconvert.ir import Activation, DenseLayer, Head, InputSpec, Model, Task

    rng = np.random.default_rng(1)
    (folder / "registry").mkdir(parents=True, exist_ok=True)
    lines = []
    for index in range(models):
        layers = (DenseLayer(rng.normal(size=(8, 16)), rng.normal(size=16), Activation.RELU, "dense_0"),
                  DenseLayer(rng.normal(size=(16, 3)), rng.normal(size=3), Activation.SOFTMAX, "dense_1"))  # fmt: skip
        model = Model(steps=(), layers=layers, head=Head(Task.MULTICLASS, np.array([0, 1, 2])), input=InputSpec(8))
        nnconvert.save(model, folder / "registry" / f"m{index:04d}.json")
        lines.append(json.dumps({"source": f"registry/m{index:04d}.json", "destination": f"out/m{index:04d}.onnx"}))
    full = folder / "jobs.jsonl"
    full.write_text("\n".join(lines) + "\n")
    quarter = folder / "quarter.jsonl"
    quarter.write_text("\n".join(lines[: models // 4]) + "\n")
    return full, quarter


# -- the run -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,4000000", help="comma-separated row counts (the issue's target: 20000000)")
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--no-spark", action="store_true")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        print(json.dumps(globals()[f"child_{kind}"](*rest)))
        return
    with tempfile.TemporaryDirectory(prefix="nnconvert-scale-") as scratch:
        folder = Path(scratch)
        reference, candidate = make_models(folder)
        sizes = [int(n) for n in args.rows.split(",")]
        print(f"{'rows':>11} {'verify s':>9} {'rows/s':>10} {'peak MB':>8} {'models s':>9} {'models MB':>9} {'ratio':>6}")
        runs: dict[int, tuple[Path, dict[str, Any]]] = {}
        for rows in sizes:
            data = make_parquet(folder / f"rows{rows}", rows)
            local = _child("verify", str(data), str(reference), str(candidate))
            runs[rows] = (data, local)
            base = _child("baseline", str(data), str(reference), str(candidate))
            print(f"{rows:>11,} {local['seconds']:>9.1f} {rows / local['seconds']:>10,.0f} {local['peak_mb']:>8.0f} "
                  f"{base['seconds']:>9.1f} {base['peak_mb']:>9.0f} {local['seconds'] / base['seconds']:>6.2f}")  # fmt: skip
            print("    verify stages:", {k: round(v, 1) for k, v in local["timings"].items() if v >= 0.05})
        if not args.no_spark:
            rows = min(sizes)  # Spark on this 2-core machine is the slow side: the smallest size
            data, local = runs[rows]
            remote = _child("spark", str(data), str(reference), str(candidate))
            same = remote["passed"] == local["passed"] and remote["stats"] == local["stats"]
            print(f"spark local[2], {rows:,} rows: {remote['seconds']:.1f} s ({rows / remote['seconds']:,.0f} rows/s) with warm "
                  f"workers, {remote['cold_s']:.1f} s the first time (session start {remote['session_s']:.1f} s apart); "
                  f"spark / local streaming = {remote['seconds'] / local['seconds']:.2f}; driver peak "
                  f"{remote['driver_peak_mb']:.0f} MB; verdict and statistics identical: {same}")  # fmt: skip
            for key in set(remote["stats"]) if not same else ():
                print("   ", key, remote["stats"][key], "vs", local["stats"][key])
        full, quarter = make_manifest(folder, args.models)
        for workers in (1, 2):
            result = _child("manifest", str(full), str(workers))
            small = _child("manifest", str(quarter), str(workers))
            where = "this process, which converts" if workers == 1 else "the parent, which dispatches"
            print(f"manifest, {result['jobs']} models, {workers} worker(s): {result['seconds']:.1f} s, "
                  f"{result['jobs'] / result['seconds']:.0f} jobs/s, ok {result['ok']}; peak MB of {where}: "
                  f"{result['peak_mb']:.0f} (with {small['jobs']} jobs: {small['peak_mb']:.0f})")  # fmt: skip


if __name__ == "__main__":
    main()
