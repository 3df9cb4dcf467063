"""Mergeable partial statistics of one output, so that verify can stream its rows.

Each chunk of rows adds to a partial; partials of different chunks (or Spark
partitions) merge; ``finalize`` gives the same dict as ``compare.compare_values``
/ ``compare.compare_labels`` on all rows at once. Memory is bounded by the chunk,
not by the data (see docs/scale.md for what stays exact and why).

Two statistics depend on the tolerance, whose default atol scales with the
output's magnitude ``max|reference|`` over every row, known only at the end:
the mismatch count and the maximum relative error (taken where ``|r| > atol``).
Each chunk therefore keeps the candidates above the threshold known so far
(lower than or equal to the final one: the magnitude only grows) and the final
threshold filters them. This is exact unless more than ``MAX_CANDIDATES``
elements lie above a running threshold (a badly broken model); then the report
carries a warning saying which count is an estimate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import compare
from .bins import BINS, EXP_LOW, SUB_BITS, histogram, histogram_p99, top_indices
from .details import BINS_PER_DECADE, ROW_FEATURES
from .tolerances import Tolerance, ToleranceOption, resolve_tolerance

__all__ = ["ToleranceSpec", "ValuesPartial", "LabelsPartial", "EXP_LOW", "SUB_BITS", "histogram", "histogram_p99"]

MAX_CANDIDATES = 1 << 20  # mismatch candidates kept exactly (8 MB)
REL_CANDIDATES = 16  # largest relative errors kept per chunk
FLIP_CAP = 20_000  # flips kept with their rows before only counts are kept
# the report's error histogram (details.error_histogram): floor(log10(error) * BINS_PER_DECADE) over every float64
_DECADE_LOW = -325 * BINS_PER_DECADE
_DECADES = 635 * BINS_PER_DECADE


def _x(row: np.ndarray) -> list[float]:
    """A listed row's input values, as the report shows them (details.add_details)."""
    return np.asarray(row[:ROW_FEATURES], dtype=np.float64).tolist()


@dataclass(frozen=True)
class ToleranceSpec:
    """What resolves an output's tolerance from its magnitude (picklable, for Spark executors)."""

    dtype: str
    atol: ToleranceOption = None
    rtol: ToleranceOption = None

    def resolve(self, name: str, magnitude: float) -> Tolerance:
        return resolve_tolerance(name, self.dtype, magnitude, self.atol, self.rtol)


def _shape_error(ref_shape: tuple[int, ...], cand_shape: tuple[int, ...], n_rows: int) -> str:
    return f"shape {(n_rows, *cand_shape[1:])} differs from the reference's {(n_rows, *ref_shape[1:])}"


@dataclass
class ValuesPartial:
    """Float-output statistics of the rows seen so far."""

    name: str
    n_rows: int = 0
    n_values: int = 0
    shapes: tuple[tuple[int, ...], tuple[int, ...]] | None = None  # (reference, candidate) shapes past the rows
    magnitude: float = 0.0
    max_abs: tuple[float, int, int] = (-np.inf, 0, 0)
    sum_abs: float = 0.0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(BINS, dtype=np.int64))
    max_ulp: float = 0.0
    max_work: float = -np.inf
    candidates: np.ndarray = field(default_factory=lambda: np.empty(0))
    dropped: tuple[int, float, float] = (0, np.inf, -np.inf)  # count, min, max of candidates let go
    rel: np.ndarray = field(default_factory=lambda: np.empty((0, 4)))  # rel, |r|, row, column
    rel_risk: float = np.inf  # the final atol at or above which a truncated chunk's relative errors were all filtered out
    worst: list[dict[str, Any]] = field(default_factory=list)
    decades: np.ndarray = field(default_factory=lambda: np.zeros(_DECADES, dtype=np.int64))
    exact: int = 0
    nonfinite: int = 0

    def add(self, ref: np.ndarray, cand: np.ndarray, rows: np.ndarray, X: np.ndarray, spec: ToleranceSpec, dtype: np.dtype) -> None:
        """Add one chunk: ``rows`` are the chunk's global row numbers (increasing), ``X`` its inputs."""
        ref, cand = np.asarray(ref), np.asarray(cand)
        self.n_rows += len(rows)
        if ref.shape != cand.shape:
            self.shapes = (ref.shape[1:], cand.shape[1:])
            return
        if self.shapes is not None:
            return  # an earlier chunk already failed on shape: only count the rows
        self.n_values += ref.size
        self.magnitude = max(self.magnitude, compare._magnitude(ref))
        tolerance = spec.resolve(self.name, self.magnitude)
        diff = compare._abs_error(ref, cand)
        if diff.size == 0:
            return
        flat_worst = int(np.argmax(diff))
        self._max_abs(compare._where(flat_worst, diff.shape, diff.flat[flat_worst]), rows)
        self.sum_abs += float(diff.sum())
        self.counts += histogram(diff)
        self._add_decades(diff)
        self.max_ulp = max(self.max_ulp, compare.max_ulp(ref, cand, dtype))
        abs_ref = np.abs(ref, dtype=np.float64)
        work = np.multiply(abs_ref, -tolerance.rtol)
        work += diff
        self.max_work = max(self.max_work, float(work.max()))
        self._add_candidates(work[work > tolerance.atol], tolerance.atol)
        work.fill(0.0)
        rel = np.divide(diff, abs_ref, out=work, where=abs_ref > tolerance.atol)
        self._add_rel(rel, abs_ref, rows, tolerance.atol)
        self._add_worst(diff, ref, cand, rows, X)

    def _add_decades(self, diff: np.ndarray) -> None:
        finite = np.isfinite(diff)
        positive = diff[finite & (diff > 0)]
        steps = np.floor(np.log10(positive) * BINS_PER_DECADE).astype(np.int64)
        self.decades += np.bincount(steps - _DECADE_LOW, minlength=_DECADES)
        self.exact += int(np.count_nonzero(diff == 0))
        self.nonfinite += int(np.count_nonzero(~finite))

    def error_histogram(self) -> dict[str, Any]:
        """``details.error_histogram`` of every error added."""
        result: dict[str, Any] = {"bins_per_decade": BINS_PER_DECADE, "edges": [], "counts": [], "exact": self.exact,
                                  "nonfinite": self.nonfinite}  # fmt: skip
        filled = np.flatnonzero(self.decades)
        if filled.size:
            counts = self.decades[filled[0] : filled[-1] + 1]
            low = int(filled[0]) + _DECADE_LOW
            result["edges"] = [10.0 ** ((low + i) / BINS_PER_DECADE) for i in range(len(counts) + 1)]
            result["counts"] = counts.tolist()
        return result

    def _max_abs(self, where: dict[str, Any], rows: np.ndarray) -> None:
        entry = (where["value"], int(rows[where["row"]]), where["column"])
        self.max_abs = _earliest_max(self.max_abs, entry)

    def _add_candidates(self, values: np.ndarray, threshold: float) -> None:
        kept = self.candidates[self.candidates > threshold]  # the threshold only rises: older ones may drop out
        self.candidates = np.concatenate([kept, values])
        if self.candidates.size > MAX_CANDIDATES:
            ordered = np.partition(self.candidates, self.candidates.size - MAX_CANDIDATES)
            let_go = ordered[: ordered.size - MAX_CANDIDATES]
            count, low, high = self.dropped
            self.dropped = (count + let_go.size, min(low, float(let_go.min())), max(high, float(let_go.max())))
            self.candidates = ordered[ordered.size - MAX_CANDIDATES :]

    def _add_rel(self, rel: np.ndarray, abs_ref: np.ndarray, rows: np.ndarray, threshold: float) -> None:
        flat = rel.reshape(-1)
        positive = int(np.count_nonzero(flat > 0))
        if positive == 0:
            return
        top = top_indices(flat, min(REL_CANDIDATES, positive))
        width = rel.shape[1] if rel.ndim == 2 else 1
        entries = np.column_stack([flat[top], abs_ref.reshape(-1)[top], rows[top // width], top % width]).astype(np.float64)
        if positive > REL_CANDIDATES:
            self.rel_risk = min(self.rel_risk, float(entries[:, 1].max()))
        keep = self.rel[self.rel[:, 1] > threshold]
        self.rel = np.concatenate([keep, entries])

    def _add_worst(self, diff: np.ndarray, ref: np.ndarray, cand: np.ndarray, rows: np.ndarray, X: np.ndarray) -> None:
        per_row = compare._row_max(diff)
        for local in top_indices(per_row, compare.WORST_ROWS):
            column = int(np.argmax(diff[local])) if diff.ndim == 2 else 0
            r = ref[local, column] if ref.ndim == 2 else ref[local]
            c = cand[local, column] if cand.ndim == 2 else cand[local]
            self.worst.append({"row": int(rows[local]), "column": column, "reference": float(r), "candidate": float(c),
                               "abs_error": float(per_row[local]), "x": np.array(X[local])})  # fmt: skip
        self.worst = sorted(self.worst, key=lambda s: (-s["abs_error"], s["row"]))[: compare.WORST_ROWS]

    def __getstate__(self) -> dict[str, Any]:
        # a Spark partition ships this to the driver: the histogram's few non-empty bins, not its 82k counters
        state = dict(self.__dict__)
        for name in ("counts", "decades"):
            filled = np.flatnonzero(state[name])
            state[name] = (filled, state[name][filled], state[name].size)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name in ("counts", "decades"):
            filled, values, size = state[name]
            state[name] = np.zeros(size, dtype=np.int64)
            state[name][filled] = values
        self.__dict__.update(state)

    def merge(self, other: ValuesPartial) -> None:
        """Add another partial (another chunk range or partition) to this one."""
        self.n_rows += other.n_rows
        if other.shapes is not None and self.shapes is None:
            self.shapes = other.shapes
        self.n_values += other.n_values
        self.magnitude = max(self.magnitude, other.magnitude)
        self.max_abs = _earliest_max(self.max_abs, other.max_abs)
        self.sum_abs += other.sum_abs
        self.counts += other.counts
        self.decades += other.decades
        self.exact += other.exact
        self.nonfinite += other.nonfinite
        self.max_ulp = max(self.max_ulp, other.max_ulp)
        self.max_work = max(self.max_work, other.max_work)
        self._add_candidates(other.candidates, -np.inf)
        count, low, high = other.dropped
        if count:
            mine = self.dropped
            self.dropped = (mine[0] + count, min(mine[1], low), max(mine[2], high))
        self.rel = np.concatenate([self.rel, other.rel])
        self.rel_risk = min(self.rel_risk, other.rel_risk)
        self.worst = sorted(self.worst + other.worst, key=lambda s: (-s["abs_error"], s["row"]))[: compare.WORST_ROWS]

    def finalize(self, spec: ToleranceSpec, warnings: list[str]) -> dict[str, Any]:
        """The metrics of ``compare.compare_values`` over every row added."""
        if self.shapes is not None:
            return {"passed": False, "error": _shape_error(self.shapes[0], self.shapes[1], self.n_rows)}
        tolerance = spec.resolve(self.name, self.magnitude)
        mismatches = int(np.count_nonzero(self.candidates > tolerance.atol))
        count, low, high = self.dropped
        if count and tolerance.atol < low:
            mismatches += count
        elif count and tolerance.atol < high:
            mismatches += count
            warnings.append(f"{self.name}: the mismatch count is an upper bound ({count} of its candidates were not kept)")
        rel_value, rel_row, rel_column = 0.0, 0, 0
        qualifying = self.rel[self.rel[:, 1] > tolerance.atol]
        if qualifying.size:
            best = np.lexsort((qualifying[:, 3], qualifying[:, 2], -qualifying[:, 0]))[0]
            rel_value, rel_row, rel_column = float(qualifying[best, 0]), int(qualifying[best, 2]), int(qualifying[best, 3])
        if tolerance.atol >= self.rel_risk:
            warnings.append(f"{self.name}: the max relative error may be understated (rows of tiny magnitude)")
        if rel_value == 0.0:  # numpy's argmax of an all-zero array: the first element
            rel_row, rel_column = 0, 0
        value, row, column = self.max_abs
        return {
            "passed": mismatches == 0,
            "n_rows": self.n_rows,
            "magnitude": self.magnitude,
            "tolerance": tolerance.to_dict(),
            "max_abs_error": {"value": value, "row": row, "column": column},
            "max_rel_error": {"value": rel_value, "row": rel_row, "column": rel_column},
            "mean_abs_error": self.sum_abs / self.n_values if self.n_values else float("nan"),
            "p99_abs_error": histogram_p99(self.counts, value),
            "max_ulp": self.max_ulp,
            "mismatches": mismatches,
            "mismatch_fraction": mismatches / max(1, self.n_values),
            "min_passing_atol": max(0.0, self.max_work) if self.n_values else 0.0,
            "worst_samples": [{**{k: v for k, v in s.items() if k != "x"}, "x": _x(s["x"])} for s in self.worst],
            "histogram": self.error_histogram(),
        }

    def rows_of_interest(self) -> dict[int, np.ndarray]:
        """The input rows behind the worst samples (for the per-layer comparison)."""
        return {s["row"]: s["x"] for s in self.worst}


def _earliest_max(a: tuple[float, int, int], b: tuple[float, int, int]) -> tuple[float, int, int]:
    """The larger value; on a tie the earlier (row, column), as numpy's argmax picks."""
    if b[0] > a[0] or (b[0] == a[0] and (b[1], b[2]) < (a[1], a[2])):
        return b
    return a


@dataclass
class LabelsPartial:
    """Label agreement and flips of the rows seen so far."""

    n_rows: int = 0
    shapes: tuple[tuple[int, ...], tuple[int, ...]] | None = None
    rows_flipped: int = 0
    flipped: int = 0
    prob_magnitude: float = 0.0
    has_probabilities: bool = True
    flips: list[dict[str, Any]] = field(default_factory=list)  # row, column, margin, top, reference, candidate, x
    dropped_near: int = 0
    dropped_unexpected: int = 0
    dropped_with: Tolerance | None = None

    def add(self, ref: np.ndarray, cand: np.ndarray, probabilities: np.ndarray | None, rows: np.ndarray,
            X: np.ndarray, spec: ToleranceSpec) -> None:  # fmt: skip
        """Add one chunk of labels (``probabilities``: the reference's, for the margins)."""
        ref_l, cand_l = compare._comparable_labels(ref, cand)
        self.n_rows += len(rows)
        if ref_l.shape != cand_l.shape:
            self.shapes = (ref_l.shape[1:], cand_l.shape[1:])
            return
        if self.shapes is not None:
            return
        if probabilities is None:
            self.has_probabilities = False
        else:
            self.prob_magnitude = max(self.prob_magnitude, compare._magnitude(probabilities))
        flipped = ref_l != cand_l
        self.rows_flipped += int(np.count_nonzero(flipped.any(axis=1) if flipped.ndim == 2 else flipped))
        cells = np.argwhere(flipped) if flipped.ndim == 2 else np.flatnonzero(flipped)[:, None]
        self.flipped += len(cells)
        if len(cells) == 0:
            return
        margins, tops = _margins(cells, flipped.ndim, probabilities)
        for cell, margin, top in zip(cells, margins, tops, strict=True):
            index = tuple(int(i) for i in cell)
            self.flips.append({"row": int(rows[index[0]]), "column": index[1] if flipped.ndim == 2 else None,
                               "margin": float(margin), "top": float(top), "reference": compare._plain(ref_l[index]),
                               "candidate": compare._plain(cand_l[index]), "x": np.array(X[index[0]])})  # fmt: skip
        if len(self.flips) > FLIP_CAP:
            self._shrink(spec)

    def _tolerance(self, spec: ToleranceSpec) -> Tolerance | None:
        return spec.resolve("probabilities", self.prob_magnitude) if self.has_probabilities else None

    def _ordered(self, tolerance: Tolerance | None) -> tuple[list[dict[str, Any]], np.ndarray]:
        """The flips in listing order (unexpected first, widest margin first, then by row) and which are near-ties."""
        margins = np.array([f["margin"] for f in self.flips], dtype=np.float64)
        tops = np.array([f["top"] for f in self.flips], dtype=np.float64)
        near = margins <= _limits(tops, tolerance)
        rows = np.array([f["row"] for f in self.flips])
        columns = np.array([-1 if f["column"] is None else f["column"] for f in self.flips])
        order = np.lexsort((columns, rows, -np.nan_to_num(margins, nan=np.inf), near))
        return [self.flips[i] for i in order], near[order]

    def _shrink(self, spec: ToleranceSpec) -> None:
        """Too many flips to keep: count all but the first few listed under the tolerance known now."""
        tolerance = self._tolerance(spec)
        ordered, near = self._ordered(tolerance)
        keep = compare.FLIPS_LISTED
        self.dropped_near += int(np.count_nonzero(near[keep:]))
        self.dropped_unexpected += int(np.count_nonzero(~near[keep:]))
        self.dropped_with = tolerance
        self.flips = ordered[:keep]

    def merge(self, other: LabelsPartial, spec: ToleranceSpec) -> None:
        self.n_rows += other.n_rows
        if other.shapes is not None and self.shapes is None:
            self.shapes = other.shapes
        self.rows_flipped += other.rows_flipped
        self.flipped += other.flipped
        self.prob_magnitude = max(self.prob_magnitude, other.prob_magnitude)
        self.has_probabilities = self.has_probabilities and other.has_probabilities
        self.flips.extend(other.flips)
        self.dropped_near += other.dropped_near
        self.dropped_unexpected += other.dropped_unexpected
        self.dropped_with = self.dropped_with or other.dropped_with
        if len(self.flips) > FLIP_CAP:
            self._shrink(spec)

    def finalize(self, spec: ToleranceSpec, warnings: list[str]) -> dict[str, Any]:
        """The result of ``compare.compare_labels`` over every row added."""
        if self.shapes is not None:
            return {"passed": False, "error": _shape_error(self.shapes[0], self.shapes[1], self.n_rows)}
        tolerance = self._tolerance(spec)
        if self.dropped_with is not None and self.dropped_with != tolerance:
            warnings.append("labels: near-tie counts of flips beyond the first 20,000 used the tolerance known at the time")
        listed, near = self._ordered(tolerance) if self.flips else ([], np.zeros(0, dtype=bool))
        unexpected = int(np.count_nonzero(~near)) + self.dropped_unexpected
        flips = [
            {"row": f["row"], "column": f["column"], "reference": f["reference"], "candidate": f["candidate"],
             "margin": None if np.isnan(f["margin"]) else f["margin"], "near_tie": bool(is_near), "x": _x(f["x"])}
            for f, is_near in zip(listed[: compare.FLIPS_LISTED], near[: compare.FLIPS_LISTED], strict=True)
        ]  # fmt: skip
        return {
            "passed": unexpected == 0,
            "n_rows": self.n_rows,
            "agreement": 1.0 - self.rows_flipped / self.n_rows if self.n_rows else 1.0,
            "flipped": self.flipped,
            "near_tie_flips": self.flipped - unexpected,
            "unexpected_flips": unexpected,
            "flips": flips,
        }

    def rows_of_interest(self, spec: ToleranceSpec) -> dict[int, np.ndarray]:
        """The input rows of the listed flips (for the per-layer comparison)."""
        listed, _ = self._ordered(self._tolerance(spec)) if self.flips else ([], None)
        return {f["row"]: f["x"] for f in listed[: compare.FLIPS_LISTED]}


def _margins(cells: np.ndarray, ndim: int, probabilities: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    if probabilities is None:
        return np.full(len(cells), np.nan), np.full(len(cells), np.nan)
    rows = cells[:, 0]
    if ndim == 2:
        p = probabilities[rows, cells[:, 1]]
        return np.abs(2 * p - 1), np.maximum(p, 1 - p)
    return compare.top_two_margin(probabilities[rows])


def _limits(tops: np.ndarray, tolerance: Tolerance | None) -> np.ndarray:
    if tolerance is None:
        return np.full(len(tops), -np.inf)
    return 2 * (tolerance.atol + tolerance.rtol * tops)
