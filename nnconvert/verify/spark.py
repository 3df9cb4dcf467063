"""verify on Spark (``nnconvert.spark.verify``, ``verify --engine spark``; ``pip install 'nnconvert[spark]'``).

``verify(dataframe_or_path, reference, candidate, ...)`` broadcasts both model
files' bytes; every executor's Python worker loads them once (one onnxruntime
session per worker process, reused by its later tasks) and runs each Arrow
batch of its partitions through both models (``mapInArrow``), computing the
same mergeable partials as a local streaming run (``verify/partials.py``). The
driver merges the partials and finishes exactly as the local run does (edge
cases, batch-1, per-layer rows), so the report is the local report of the same
rows but for the order of floating-point sums (means agree to rounding).

Rows are numbered as the local reader numbers them: the Parquet files in path
order, then each file's rows in order (Spark's ``_metadata.row_index``).
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

from ..errors import MissingDependencyError, ReadError, UsageError

__all__ = ["verify", "session"]

_ROW = "__nnconvert_row"
_WORKER_RUNNERS: dict[str, Any] = {}  # per Python worker process: the loaded models, by payload key


def session(master: str | None = None) -> Any:
    """The active SparkSession, or a new one (``master``: e.g. ``local[2]``; default: spark-submit's, else local[*]).

    Raises:
        MissingDependencyError: pyspark is not installed.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise MissingDependencyError("pyspark", "running on Spark (--engine spark)", "'nnconvert[spark]'") from exc
    builder = SparkSession.builder.appName("nnconvert")
    if master:
        builder = builder.master(master)
    if SparkSession.getActiveSession() is None and (master or "local").startswith("local"):
        # local workers run this interpreter (with nnconvert and its dependencies), not whatever python3 is on PATH
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = builder.config("spark.sql.shuffle.partitions", "4")  # our only shuffle is a per-file row count
    return builder.getOrCreate()


def verify(
    dataframe_or_path: Any,
    reference: str | os.PathLike[str],
    candidate: str | os.PathLike[str],
    *,
    master: str | None = None,
    seed: int = 0,
    atol: Any = None,
    rtol: Any = None,
    trust: bool = False,
    ort_optimizations: bool = True,
    reference_evaluator: bool = False,
    per_layer: bool = True,
    edge_cases: bool = True,
    batch_one_rows: int = 8,
    hash_inputs: bool = False,
    progress: Callable[[str], None] | None = None,
    row_progress: Callable[[int, int], None] | None = None,
    label_column: str | None = None,
    labels: Any = None,
) -> Any:
    """Verify ``candidate`` against ``reference`` on every row of a Spark DataFrame or Parquet path.

    Args:
        dataframe_or_path: a DataFrame of numeric feature columns, or a Parquet file/folder path
            (``s3a://``, ``hdfs://``, local) that Spark reads.
        reference, candidate: model files (the driver reads them; executors get their bytes).
        master: the Spark master when no session is active.
        label_column: the column holding the ground truth (not a feature): adds the task metric
            to the report, as :func:`nnconvert.verify`'s ``label_column``.
        labels: refused: on a cluster the ground truth travels with the rows, as ``label_column``.
        hash_inputs: ignored: the inputs' sha256 is a sequential digest, not computed on a cluster
            (the report's ``sha256`` is null).
        The other arguments are those of :func:`nnconvert.verify`.

    Returns:
        The :class:`~nnconvert.verify.Report`.

    Raises:
        UsageError: models that are not files, non-numeric columns, no rows.
        MissingDependencyError: pyspark is missing.
    """
    from .stream import planned_rows, start_run

    started = time.perf_counter()
    for role, model in (("reference", reference), ("candidate", candidate)):
        if not isinstance(model, (str, os.PathLike)):
            raise UsageError(f"nnconvert.spark.verify needs model files: the {role} is a {type(model).__name__}")
    if labels is not None:
        raise UsageError("on Spark the ground truth is a column of the data: give label_column= (--label-column NAME), not labels=")
    spark = session(master)
    frame, description, n_rows = _numbered(spark, dataframe_or_path)
    columns = [c for c in frame.columns if c not in (_ROW, label_column)]
    if label_column is not None and label_column not in frame.columns:
        raise ReadError(f"no label column {label_column!r}; its columns: {', '.join(columns)}", path=description)
    dtype = _frame_dtype(frame, columns)
    if n_rows == 0:
        raise UsageError(f"{description}: the data holds no rows")
    run, ref = start_run(reference, candidate, seed, atol, rtol, trust, ort_optimizations, False, progress)
    run.prepare(ref, len(columns), description)
    payload = {
        "key": f"{os.getpid()}-{time.time_ns()}",
        "models": [(Path(m).suffix, Path(m).read_bytes()) for m in (reference, candidate)],
        "trust": trust, "ort_optimizations": ort_optimizations, "spec": run.spec(), "dtype": run.dtype.name,
        "features_dtype": dtype.str, "columns": columns, "label_column": label_column, "description": description,
        "planned": planned_rows(n_rows, len(columns), seed, batch_one_rows, reference_evaluator),
    }  # fmt: skip
    broadcast = spark.sparkContext.broadcast(payload)
    run.timings["setup_s"] = time.perf_counter() - started
    spark_started = time.perf_counter()
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(_chunk_rows()))

    def partition(batches: Iterator[Any]) -> Iterator[Any]:
        return _run_partition(broadcast.value, batches)

    partials = frame.mapInArrow(partition, "partial binary").collect()
    run.timings["spark_s"] = time.perf_counter() - spark_started
    merged = _merge([pickle.loads(row["partial"]) for row in partials], payload)
    if row_progress is not None:
        row_progress(n_rows, n_rows)
    if hash_inputs:
        run.warnings.append("the inputs' sha256 is not computed by --engine spark (a sequential digest)")
    run.labels_name = f"column {label_column!r} of the data"
    run.finish_stream(merged, n_rows, dtype, None)
    broadcast.unpersist()
    return run.finish(edge_cases, batch_one_rows, per_layer, reference_evaluator, started)


def _chunk_rows() -> int:
    from . import bins

    return bins.CHUNK_ROWS


def _numbered(spark: Any, dataframe_or_path: Any) -> tuple[Any, str, int]:
    """The frame with a global row number: file order then row order for a path, partition order for a DataFrame."""
    from pyspark.sql import functions as F

    if isinstance(dataframe_or_path, (str, os.PathLike)):
        path = str(dataframe_or_path)
        if "://" not in path and Path(path).suffix.lower() in (".csv", ".txt", ".npy", ".npz"):
            raise UsageError(f"--engine spark reads Parquet files or folders; {path} is not one (run it with --engine local)")
        try:
            frame = spark.read.parquet(path)
        except Exception as exc:  # noqa: BLE001 - Spark's AnalysisException (missing path, not Parquet) as an input error
            raise ReadError(f"Spark cannot read it as Parquet: {str(exc).splitlines()[0]}", path=path) from exc
        features = frame.columns
        located = frame.select(*features, F.col("_metadata.file_path").alias("__file"), F.col("_metadata.row_index").alias("__index"))
        counts = {row["__file"]: row["count"] for row in located.groupBy("__file").count().collect()}
        offsets, total = {}, 0
        for file in sorted(counts, key=_local_order):  # as datasource.parquet_files orders them
            offsets[file] = total
            total += counts[file]
        mapping = F.create_map(*[item for file, offset in offsets.items() for item in (F.lit(file), F.lit(offset))])
        numbered = located.select(*features, (mapping[F.col("__file")] + F.col("__index")).alias(_ROW))
        return numbered, path, total
    frame = dataframe_or_path
    with_id = frame.select("*", F.monotonically_increasing_id().alias("__id"))
    partition = F.shiftright(F.col("__id"), 33)
    counts = {row["p"]: row["count"] for row in with_id.groupBy(partition.alias("p")).count().collect()}
    offsets, total = {}, 0
    for pid in sorted(counts):
        offsets[pid] = total
        total += counts[pid]
    mapping = F.create_map(*[item for pid, offset in offsets.items() for item in (F.lit(pid), F.lit(offset))])
    row = mapping[partition] + F.col("__id").bitwiseAND((1 << 33) - 1)
    return with_id.select(*frame.columns, row.alias(_ROW)), "the DataFrame", total


def _local_order(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme in ("", "file") else uri


def _frame_dtype(frame: Any, columns: list[str]) -> np.dtype:
    from pyspark.sql import types as T

    fields = {f.name: f.dataType for f in frame.schema.fields}
    bad = [f"{c} ({fields[c].simpleString()})" for c in columns if not isinstance(fields[c], (T.NumericType, T.BooleanType))]
    if bad or any(isinstance(fields[c], T.DecimalType) for c in columns):
        raise UsageError(f"expected numeric feature columns, got {', '.join(bad) or 'decimals'}")
    return np.dtype(np.float32) if all(isinstance(fields[c], T.FloatType) for c in columns) else np.dtype(np.float64)


def _worker_models(payload: dict[str, Any]) -> tuple[Any, Any]:
    """Both runners, loaded once per Python worker process (later tasks reuse the sessions)."""
    from .runners import make_runner

    key = payload["key"]
    if key not in _WORKER_RUNNERS:
        folder = tempfile.mkdtemp(prefix="nnconvert-spark-")
        runners = []
        for index, (suffix, content) in enumerate(payload["models"]):
            path = Path(folder) / f"model{index}{suffix}"
            path.write_bytes(content)
            runners.append(make_runner(path, trust=payload["trust"], ort_optimizations=payload["ort_optimizations"]))
        _WORKER_RUNNERS.clear()  # one verification at a time per worker: drop the previous one's models
        _WORKER_RUNNERS[key] = tuple(runners)
    return _WORKER_RUNNERS[key]


def _run_partition(payload: dict[str, Any], batches: Iterator[Any]) -> Iterator[Any]:
    """One partition: its batches through both models into one pickled StreamPass."""
    import pyarrow as pa

    from .datasource import column_values
    from .metric import MetricPartial
    from .stream import StreamPass

    ref, cand = _worker_models(payload)
    stream = StreamPass(payload["spec"], payload["dtype"], payload["planned"])
    label = payload["label_column"]
    if label is not None:
        stream.metric = MetricPartial(payload["description"])
    dtype = np.dtype(payload["features_dtype"])
    for batch in batches:
        if batch.num_rows == 0:
            continue
        rows = batch.column(_ROW).to_numpy().astype(np.int64)
        order = np.argsort(rows, kind="stable")  # the partials take rows in increasing order
        X = np.empty((batch.num_rows, len(payload["columns"])), dtype=dtype)
        for index, name in enumerate(payload["columns"]):
            X[:, index] = batch.column(name).to_numpy(zero_copy_only=False)
        X, rows = X[order], rows[order]
        truth = None if label is None else column_values([batch.column(label)], [label], Path(payload["description"]))[order]
        stream.add(X, rows, ref.run(X), cand.run(X), truth)
    yield pa.RecordBatch.from_arrays([pa.array([pickle.dumps(stream)], type=pa.binary())], names=["partial"])


def _merge(passes: list[Any], payload: dict[str, Any]) -> Any:
    from .stream import StreamPass

    merged = StreamPass(payload["spec"], payload["dtype"], payload["planned"])
    for stream in passes:
        merged.merge(stream)
    if merged.names is None:
        raise UsageError("no partition returned any rows")
    return merged
