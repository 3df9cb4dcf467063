"""Streaming verify: the main rows are read, run and compared chunk by chunk.

Only partial statistics (``partials.py``) and a bounded set of rows survive a
chunk: the rows the later stages need (the first rows for the batch-1 check,
the strided sample that gives the data's range, the rows the decision-boundary
search starts from, the per-layer sample), all known from the row count before
the first chunk, plus the rows of the worst errors and of the listed flips. The
report is the in-memory report of the same rows (a test checks it), so memory
is bounded by the chunk size, whatever the number of rows.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ReadError, UsageError
from . import bins, core
from . import inputs as inputs_mod
from .core import CROSS_CHECK_ROWS, LAYER_SAMPLE_ROWS, Progress, _n_features, _Run
from .datasource import DataSource, open_data
from .metric import MetricPartial
from .partials import LabelsPartial, ToleranceSpec, ValuesPartial
from .report import Report
from .runners import Runner, make_runner
from .tolerances import ToleranceOption, check_overrides, comparison_dtype
from .truth import TruthSource

__all__ = ["verify", "verify_stream", "StreamPass", "SparseRows", "planned_rows"]

RowProgress = Callable[[int, int], None]
BOUNDARY_SAMPLE = 64  # rows the decision-boundary search draws from (inputs._boundary_rows)


def planned_rows(n_rows: int, n_features: int, seed: int, batch_one_rows: int, cross_check: bool) -> np.ndarray:
    """Every main row a later stage of verify reads, known from the row count alone."""
    parts = [np.arange(min(n_rows, max(batch_one_rows, 0))), np.arange(0, n_rows, max(1, n_rows // 4096))]
    rng = np.random.default_rng(seed + 1)  # replays inputs.edge_cases' draws up to the boundary sample
    for _ in range(2 * len(inputs_mod.LARGE_FACTORS)):
        rng.choice([-1.0, 1.0], size=n_features)
    parts.append(rng.choice(n_rows, size=min(n_rows, BOUNDARY_SAMPLE), replace=False))
    if n_rows <= LAYER_SAMPLE_ROWS:
        parts.append(np.arange(n_rows))
    else:
        parts.append(np.random.default_rng(seed + 2).choice(n_rows, size=LAYER_SAMPLE_ROWS, replace=False))
    if cross_check:
        parts.append(np.arange(min(n_rows, CROSS_CHECK_ROWS)))
    return np.unique(np.concatenate(parts).astype(np.int64))


class SparseRows:
    """``n_rows`` rows of which only some are held: indexing a row that is not held is a bug, and raises."""

    def __init__(self, n_rows: int, index: np.ndarray, data: np.ndarray):
        self.n_rows, self.index, self.data = n_rows, index, data

    def __len__(self) -> int:
        return self.n_rows

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n_rows, *self.data.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, slice):
            key = np.arange(*key.indices(self.n_rows))
        wanted = np.asarray(key, dtype=np.int64)
        position = np.searchsorted(self.index, wanted)
        position = np.minimum(position, len(self.index) - 1)
        if not np.all(self.index[position] == wanted):
            raise RuntimeError("streamed verify read a main row it did not keep")  # planned_rows is out of step
        return self.data[position]

    take_rows = __getitem__

    def with_rows(self, extra: dict[int, np.ndarray]) -> SparseRows:
        """A copy that also holds ``extra`` (row -> values)."""
        new = {row: value for row, value in extra.items() if row not in set(self.index.tolist())}
        if not new:
            return self
        index = np.concatenate([self.index, np.fromiter(new, dtype=np.int64, count=len(new))])
        data = np.concatenate([self.data, np.stack([np.asarray(v, dtype=self.data.dtype) for v in new.values()])])
        order = np.argsort(index, kind="stable")
        return SparseRows(self.n_rows, index[order], data[order])


@dataclass
class StreamPass:
    """The partial statistics of a range of rows and the planned rows within it (picklable)."""

    spec: ToleranceSpec
    dtype: str
    planned: np.ndarray
    names: list[str] | None = None
    rename: tuple[str, str] | None = None
    values: dict[str, ValuesPartial] = field(default_factory=dict)
    labels: LabelsPartial | None = None
    metric: MetricPartial | None = None  # against the ground truth, when given
    kept: list[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]] = field(default_factory=list)

    def add(self, X: np.ndarray, rows: np.ndarray, ref_out: dict[str, Any], cand_out: dict[str, Any],
            truth: np.ndarray | None = None) -> None:  # fmt: skip
        """One chunk: ``rows`` its global row numbers, increasing; ``truth`` the ground truth of its rows."""
        if truth is not None:
            if self.metric is None:
                self.metric = MetricPartial()
            self.metric.add(ref_out, cand_out, truth)  # before renaming: each model's own outputs
        cand_out = dict(cand_out)
        if self.names is None:
            self._align(ref_out, cand_out)
        if self.rename is not None and self.rename[1] in cand_out:
            cand_out[self.rename[0]] = cand_out.pop(self.rename[1])
        assert self.names is not None
        for name in self.names:
            if name == "labels":
                if self.labels is None:
                    self.labels = LabelsPartial()
                self.labels.add(ref_out["labels"], cand_out["labels"], ref_out.get("probabilities"), rows, X, self.spec)
            else:
                self.values.setdefault(name, ValuesPartial(name)).add(ref_out[name], cand_out[name], rows, X, self.spec, np.dtype(self.dtype))
        wanted = self.planned[(self.planned >= rows[0]) & (self.planned <= rows[-1])]
        position = np.searchsorted(rows, wanted)
        position = position[rows[np.minimum(position, len(rows) - 1)] == wanted]
        if len(position):
            self.kept.append((rows[position], X[position], {k: np.asarray(v)[position] for k, v in ref_out.items()},
                              {k: np.asarray(v)[position] for k, v in cand_out.items()}))  # fmt: skip

    def _align(self, ref_out: dict[str, Any], cand_out: dict[str, Any]) -> None:
        """The outputs compared, by the rule of ``_Run._aligned_names`` (which later words its warnings)."""
        ref_float = [k for k in ref_out if k != "labels"]
        cand_float = [k for k in cand_out if k != "labels"]
        if len(ref_float) == 1 and len(cand_float) == 1 and ref_float != cand_float:
            self.rename = (ref_float[0], cand_float[0])
        renamed = set(cand_out) - {cand_float[0]} | {ref_float[0]} if self.rename else set(cand_out)
        self.names = [k for k in ref_out if k in renamed]
        if not self.names:
            raise UsageError(f"the models have no output in common: reference {sorted(ref_out)}, candidate {sorted(cand_out)}")
        check_overrides(self.spec.atol, set(self.names), "atol")
        check_overrides(self.spec.rtol, set(self.names), "rtol")

    def merge(self, other: StreamPass) -> None:
        """Add the statistics and kept rows of another range of rows."""
        if other.names is None:
            return
        if self.names is None:
            self.names, self.rename = other.names, other.rename
        for name, partial in other.values.items():
            if name in self.values:
                self.values[name].merge(partial)
            else:
                self.values[name] = partial
        if other.metric is not None:
            if self.metric is None:
                self.metric = other.metric
            else:
                self.metric.merge(other.metric)
        if other.labels is not None:
            if self.labels is None:
                self.labels = other.labels
            else:
                self.labels.merge(other.labels, self.spec)
        self.kept.extend(other.kept)

    def finalize(self, name: str, warnings: list[str]) -> dict[str, Any]:
        if name == "labels":
            assert self.labels is not None
            return self.labels.finalize(self.spec, warnings)
        return self.values[name].finalize(self.spec, warnings)

    def rows_of_interest(self) -> dict[int, np.ndarray]:
        rows: dict[int, np.ndarray] = {}
        for partial in self.values.values():
            rows.update(partial.rows_of_interest())
        if self.labels is not None:
            rows.update(self.labels.rows_of_interest(self.spec))
        return rows

    def kept_rows(self, n_rows: int) -> tuple[SparseRows, dict[str, SparseRows], dict[str, SparseRows]]:
        """The planned rows as (X, reference outputs, candidate outputs), in row order."""
        index = np.concatenate([k[0] for k in self.kept])
        order = np.argsort(index, kind="stable")

        def stack(arrays: list[np.ndarray]) -> SparseRows:
            return SparseRows(n_rows, index[order], np.concatenate(arrays)[order])

        X = stack([k[1] for k in self.kept])
        sides = tuple({name: stack([k[side][name] for k in self.kept]) for name in self.kept[0][side]} for side in (2, 3))
        return X, sides[0], sides[1]


class _StreamRun(_Run):
    """A verification whose main rows were streamed: the main set holds the kept rows only."""

    stream: StreamPass | None = None
    labels_name = ""  # where the ground truth came from, as the report names it

    def spec(self) -> ToleranceSpec:
        return ToleranceSpec(self.dtype.name, self.atol, self.rtol)

    def prepare(self, ref: Runner, n_features: int, description: Any) -> None:
        self.ref = ref
        self.reference_info = ref.info()
        self.dtype = comparison_dtype(ref.dtype, self.cand.dtype)
        expected = _n_features(ref, self.cand, np.empty((0, n_features)))
        if expected != n_features:
            # rows of the wrong width are an input error about the data file (exit 3), as in-memory verify reports them
            raise ReadError(f"the data has {n_features} columns; the models take {expected} features", path=str(description))

    def from_source(self, ref: Runner, source: DataSource, plan: dict[str, Any], started: float, row_progress: RowProgress,
                    truth: TruthSource | None = None) -> None:  # fmt: skip
        self.prepare(ref, source.n_features, source.path)
        n_rows = source.n_rows
        stream = StreamPass(self.spec(), self.dtype.name, planned_rows(n_rows, source.n_features, self.seed, **plan))
        if truth is not None or source.label_column is not None:
            stream.metric = MetricPartial(str(source.path if truth is None else truth.path))
        digest = hashlib.sha256(f"{source.dtype.str}{(n_rows, source.n_features)}".encode()) if self.hash_inputs else None
        self.timings["setup_s"] = time.perf_counter() - started
        done = 0
        chunks = _labelled_chunks(source, truth)  # blocks of bins.CHUNK_ROWS: those of the in-memory mean and metric
        while True:
            with self._stage("read", "reading the data"):
                X, y = next(chunks, (None, None))
            if X is None:
                break
            if digest is not None:
                with self._stage("sha256", "hashing the data"):
                    digest.update(np.ascontiguousarray(X).data)
            ref_out = self._timed("reference", "running the reference", ref.run, X)
            cand_out = self._timed("candidate", "running the candidate", self.cand.run, X)
            with self._stage("compare", "comparing outputs"):
                stream.add(X, np.arange(done, done + len(X), dtype=np.int64), ref_out, cand_out, y)
            done += len(X)
            row_progress(done, n_rows)
        if digest is not None:
            self.timings.update(sha256_cpu_s=self.timings["sha256_s"], sha256_wait_s=0.0)
        self.finish_stream(stream, n_rows, source.dtype, None if digest is None else digest.hexdigest())

    def finish_stream(self, stream: StreamPass, n_rows: int, dtype: np.dtype, sha256: str | None) -> None:
        """Install the merged pass as the main input set."""
        self.stream = stream
        X, ref_out, cand_out = stream.kept_rows(n_rows)
        self.sets.append({"name": "data", "X": X, "reference": ref_out, "candidate": cand_out})
        sample = X[np.arange(0, n_rows, max(1, n_rows // 4096))]
        self.main_inputs = inputs_mod.Inputs(X, "data", sample.min(axis=0), sample.max(axis=0), "the data's range")  # type: ignore[arg-type]
        self.inputs_info = self._inputs_info(self.main_inputs)
        self.inputs_info["dtype"] = np.dtype(dtype).name
        self.inputs_info["sha256"] = sha256
        if stream.metric is not None:
            self.metric = stream.metric.finalize(self.labels_name)

    def _compare_sets(self, names: list[str], batch_one: tuple[dict, dict] | None) -> None:
        assert self.stream is not None
        for name in names:
            checks = [{"inputs": "data", **self.stream.finalize(name, self.warnings)}]
            checks += [self._check(name, s["name"], s["reference"], s["candidate"]) for s in self.sets[1:]]
            if batch_one is not None and name in batch_one[1]:
                checks.append(self._check(name, "batch-1", batch_one[0], batch_one[1]))
            kind = "labels" if name == "labels" else "values"
            self.outputs.append({"name": name, "kind": kind, "passed": all(c["passed"] for c in checks), "checks": checks})
        self.sets[0]["X"] = self.sets[0]["X"].with_rows(self.stream.rows_of_interest())  # for the per-layer rows

    def report(self, started: float) -> Report:
        report = super().report(started)
        main = self.sets[0]
        # the report's arrays hold the kept rows only (their numbers in "rows"): the data file itself is the input.
        # Named apart, so that the report's details (histogram, rows' x) come from the partials, not from these rows
        report._sets[0] = {"name": "data (kept rows)", "X": main["X"].data, "rows": main["X"].index,
                           "reference": {k: v.data for k, v in main["reference"].items()},
                           "candidate": {k: v.data for k, v in main["candidate"].items()}}  # fmt: skip
        return report


def verify_stream(
    reference: Any,
    candidate: Any,
    data: str | Path | DataSource,
    *,
    seed: int = 0,
    atol: ToleranceOption = None,
    rtol: ToleranceOption = None,
    trust: bool = False,
    ort_optimizations: bool = True,
    reference_evaluator: bool = False,
    per_layer: bool = True,
    edge_cases: bool = True,
    batch_one_rows: int = 8,
    hash_inputs: bool = True,
    progress: Progress | None = None,
    row_progress: RowProgress | None = None,
    labels: str | Path | None = None,
    label_column: str | None = None,
) -> Report:
    """``verify(reference, candidate, data=PATH)``: the main rows streamed from a Parquet file or folder, CSV or .npy.

    The arguments are those of :func:`nnconvert.verify`; ``row_progress(done, total)`` is called after
    each chunk. The report equals the in-memory one on the same rows. The ground truth, for the task
    metric: ``labels`` a file (.npy, .csv, Parquet) read in chunks beside the data, or ``label_column``
    a column of the data (Parquet or CSV with a header), which is then not a feature.

    Raises:
        UsageError, ReadError, MissingDependencyError: as :func:`nnconvert.verify`; pyarrow for Parquet.
        ReadError: ``labels`` whose row count is not the data's (both named).
    """
    started = time.perf_counter()
    if reference is None or candidate is None:
        raise UsageError("verify with data= needs both a reference and a candidate model")
    if labels is not None and label_column is not None:
        raise UsageError("give the ground truth as labels= (a file) or label_column= (a column of the data), not both")
    if labels is not None and not isinstance(labels, (str, Path)):
        raise UsageError("with data=, labels= is a file read beside it (.npy, .csv, Parquet), or use label_column=")
    source = data if isinstance(data, DataSource) else open_data(data, label_column)
    truth = None
    if labels is not None:
        from .truth import check_rows, open_truth

        truth = open_truth(labels)
        check_rows(labels, truth.n_rows, source.path, source.n_rows)
    run, ref = start_run(reference, candidate, seed, atol, rtol, trust, ort_optimizations, hash_inputs, progress)
    run.labels_name = str(labels) if labels is not None else f"column {label_column!r} of the data"
    plan = {"batch_one_rows": batch_one_rows, "cross_check": reference_evaluator}
    run.from_source(ref, source, plan, started, row_progress or (lambda done, total: None), truth)
    return run.finish(edge_cases, batch_one_rows, per_layer, reference_evaluator, started)


def _labelled_chunks(source: DataSource, truth: TruthSource | None) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """(rows, their ground truth or None) in blocks of ``bins.CHUNK_ROWS``."""
    if source.label_column is not None:
        yield from source.labelled_chunks(bins.CHUNK_ROWS)
    elif truth is not None:
        yield from zip(source.chunks(bins.CHUNK_ROWS), truth.chunks(bins.CHUNK_ROWS), strict=True)
    else:
        yield from ((X, None) for X in source.chunks(bins.CHUNK_ROWS))


def start_run(reference: Any, candidate: Any, seed: int, atol: ToleranceOption, rtol: ToleranceOption, trust: bool,
              ort_optimizations: bool, hash_inputs: bool, progress: Progress | None) -> tuple[_StreamRun, Runner]:  # fmt: skip
    """Load both sides (as ``verify`` does) into a streaming run."""
    notify = progress or (lambda stage: None)
    notify("loading models")
    cand = make_runner(candidate, trust=trust, ort_optimizations=ort_optimizations, role="candidate")
    run = _StreamRun(cand, seed, atol, rtol, notify)
    run.hash_inputs = hash_inputs
    ref = make_runner(reference, trust=trust, ort_optimizations=ort_optimizations, role="reference")
    return run, ref


def verify(reference: Any, candidate: Any = None, X: Any = None, *, data: str | Path | DataSource | None = None, **options: Any) -> Report:
    """``nnconvert.verify``: :func:`core.verify` on ``X`` or random rows; with ``data=``, :func:`verify_stream`.

    ``data``: a Parquet file or folder, a CSV or an .npy file, streamed in chunks (memory bounded by the
    chunk; the same report as ``X`` holding those rows; docs/scale.md). ``label_column``: with ``data``,
    the column holding the ground truth for the task metric (not a feature); ``labels`` then a file
    read beside ``data``. The other arguments are :func:`core.verify`'s.

    Raises:
        UsageError: ``data`` with ``X``, or with ``n_samples``/``value_range`` (they shape random rows).
    """
    if data is None:
        if options.get("label_column") is not None:
            raise UsageError("label_column= names a column of data=; with X, give the ground truth as labels=")
        options.pop("label_column", None)
        return core.verify(reference, candidate, X, **options)
    if X is not None:
        raise UsageError("give the rows as X= or data=, not both")
    for name in ("n_samples", "value_range"):
        if name in options:
            raise UsageError(f"{name}= shapes random rows; it does not apply with data=")
    return verify_stream(reference, candidate, data, **options)


verify.__doc__ = f"{verify.__doc__}\n\n{core.verify.__doc__}"
