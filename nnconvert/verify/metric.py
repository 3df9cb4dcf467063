"""The task metric against ground truth, as a mergeable partial (in memory, streamed and on Spark).

Classifiers: accuracy, the count of rows whose ``labels`` output equals the truth
over the row count (a multilabel row counts when every label is right, as
scikit-learn's subset accuracy). Regressors: MSE, RMSE, MAE and R² of the
``values`` output, each averaged uniformly over the outputs as scikit-learn's
metrics do. Both models are scored, and the difference candidate minus reference.

A chunk adds integer counts (exact everywhere) or float64 sums per output: the
squared and absolute errors' sums, and the truth's count, mean and sum of squared
deviations from the mean (merged with Chan et al.'s pairwise update: a raw sum of
squares would cancel catastrophically when the mean is large against the spread).
The in-memory path adds the very blocks of ``bins.CHUNK_ROWS`` rows a streamed run
adds, in the same order, so both give the same floats; Spark merges its partitions
in another order (means agree within rounding). See docs/verify.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ReadError, UsageError
from . import bins

__all__ = ["MetricPartial", "task_metric", "same_labels"]

_SIDES = ("reference", "candidate")


def same_labels(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Elementwise equality of predicted labels and the truth, the label dtype handled as ``compare_labels`` does.

    Booleans count as 0/1; numbers compare as numbers (3 equals 3.0, as a CSV reads it); text
    truth against numeric labels is read as numbers when it can be, else everything as text.
    """
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    predicted = predicted.astype(np.int64) if predicted.dtype == bool else predicted
    truth = truth.astype(np.int64) if truth.dtype == bool else truth
    if predicted.dtype.kind in "iuf" and truth.dtype.kind in "OUS":
        try:
            truth = truth.astype(np.float64)
        except ValueError:
            pass
    if predicted.dtype.kind in "OUS" or truth.dtype.kind in "OUS":
        return predicted.astype(str) == truth.astype(str)
    return predicted.astype(np.float64) == truth.astype(np.float64)


@dataclass
class MetricPartial:
    """Counts and sums of the rows seen so far; ``source`` names the truth in error messages (a file, or None)."""

    source: str | None = None
    task: str | None = None  # "classification" or "regression", from the first chunk
    n_rows: int = 0
    correct: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_SIDES, 0))
    truth_mean: np.ndarray | None = None
    truth_m2: np.ndarray | None = None
    squared: dict[str, np.ndarray] = field(default_factory=dict)
    absolute: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, ref_out: dict[str, Any], cand_out: dict[str, Any], truth: np.ndarray) -> None:
        """One block of rows: both models' outputs and the truth of the same rows."""
        truth = np.asarray(truth)
        n = len(truth)
        if n == 0:
            return
        task = "classification" if "labels" in ref_out and "labels" in cand_out else "regression"
        if self.task is None:
            self.task = task
        if task == "classification":
            for side, out in zip(_SIDES, (ref_out, cand_out), strict=True):
                predicted = np.asarray(out["labels"]).reshape(n, -1)
                expected = self._fit(truth, predicted.shape[1], "labels")
                self.correct[side] += int(np.count_nonzero(same_labels(predicted, expected).all(axis=1)))
        else:
            if "values" not in ref_out or "values" not in cand_out:
                raise UsageError("the task metric needs both models' labels (classifiers) or values (regressors)")
            width = np.asarray(ref_out["values"]).reshape(n, -1).shape[1]
            y = self._numbers(self._fit(truth, width, "values"))
            self._add_truth(y)
            for side, out in zip(_SIDES, (ref_out, cand_out), strict=True):
                error = y - np.asarray(out["values"], dtype=np.float64).reshape(n, -1)
                self._accumulate(side, np.square(error).sum(axis=0), np.abs(error).sum(axis=0))
        self.n_rows += n

    def _fit(self, truth: np.ndarray, width: int, output: str) -> np.ndarray:
        table = truth.reshape(len(truth), -1)
        if table.shape[1] != width:
            self._refuse(f"the ground truth has {table.shape[1]} value(s) per row; the models' {output} have {width}")
        return table

    def _numbers(self, table: np.ndarray) -> np.ndarray:
        try:
            return table.astype(np.float64)
        except ValueError:
            self._refuse("a regressor's ground truth must be numbers")
            raise  # unreachable: _refuse raises

    def _refuse(self, message: str) -> None:
        if self.source is None:
            raise UsageError(f"labels=: {message}")
        raise ReadError(message, path=self.source)

    def _add_truth(self, y: np.ndarray) -> None:
        mean = y.mean(axis=0)
        m2 = np.square(y - mean).sum(axis=0)
        self._merge_truth(len(y), mean, m2)

    def _merge_truth(self, n: int, mean: np.ndarray, m2: np.ndarray) -> None:
        if self.truth_mean is None or self.truth_m2 is None:
            self.truth_mean, self.truth_m2 = mean, m2
            return
        total = self.n_rows + n
        delta = mean - self.truth_mean
        self.truth_mean = self.truth_mean + delta * (n / total)
        self.truth_m2 = self.truth_m2 + m2 + np.square(delta) * (self.n_rows * n / total)

    def _accumulate(self, side: str, squared: np.ndarray, absolute: np.ndarray) -> None:
        self.squared[side] = self.squared[side] + squared if side in self.squared else squared
        self.absolute[side] = self.absolute[side] + absolute if side in self.absolute else absolute

    def merge(self, other: MetricPartial) -> None:
        """Add another range of rows (another partition)."""
        if other.n_rows == 0:
            return
        self.task = self.task or other.task
        for side in _SIDES:
            self.correct[side] += other.correct[side]
            if side in other.squared:
                self._accumulate(side, other.squared[side], other.absolute[side])
        if other.truth_mean is not None and other.truth_m2 is not None:
            self._merge_truth(other.n_rows, other.truth_mean, other.truth_m2)
        self.n_rows += other.n_rows

    def finalize(self, labels: str) -> dict[str, Any] | None:
        """The report's ``metric`` entry (``labels``: where the truth came from); None without rows."""
        if self.n_rows == 0 or self.task is None:
            return None
        scores = {side: self._scores(side) for side in _SIDES}
        difference = {name: scores["candidate"][name] - scores["reference"][name] for name in scores["reference"]}
        return {"task": self.task, "labels": labels, "n_rows": self.n_rows, **scores, "difference": difference}

    def _scores(self, side: str) -> dict[str, float | int]:
        n = self.n_rows
        if self.task == "classification":
            return {"accuracy": self.correct[side] / n, "correct": self.correct[side]}
        assert self.truth_m2 is not None
        squared, absolute = self.squared[side], self.absolute[side]
        mse = squared / n
        # scikit-learn's r2_score: a constant truth scores 1 when predicted exactly, else 0
        spread = self.truth_m2
        r2 = np.where(spread != 0, 1 - squared / np.where(spread != 0, spread, 1), np.where(squared == 0, 1.0, 0.0))
        return {"mse": float(mse.mean()), "rmse": float(np.sqrt(mse).mean()), "mae": float((absolute / n).mean()), "r2": float(r2.mean())}


def task_metric(ref_out: dict[str, Any], cand_out: dict[str, Any], truth: np.ndarray, labels: str,
                source: str | None = None) -> dict[str, Any] | None:  # fmt: skip
    """The metric of rows held in memory, added in the blocks a streamed run adds (the same floats)."""
    partial = MetricPartial(source)
    for start in range(0, len(truth), bins.CHUNK_ROWS):
        block = slice(start, start + bins.CHUNK_ROWS)
        partial.add({k: v[block] for k, v in ref_out.items()}, {k: v[block] for k, v in cand_out.items()}, truth[block])
    return partial.finalize(labels)
