"""What a saved report adds to the metrics: the files, the models, error histograms, input rows.

These parts exist for a reader of ``--report-json`` / ``--report-html`` (provenance, the
model diagram, the error distribution, the inputs of the worst rows). The console summary
needs none of them, so :class:`~nnconvert.verify.report.Report` fills them in on its first
``to_dict()`` / ``to_json()`` / ``to_html()``, not during ``verify`` itself.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from .compare import _abs_error
from .runners import Runner

__all__ = ["add_details", "FORMAT_VERSION", "BINS_PER_DECADE", "ROW_FEATURES"]

FORMAT_VERSION = "1.2"  # minor 1: files, models, histograms, input rows; minor 2: the task metric (all optional; version stays 1)
BINS_PER_DECADE = 4
ROW_FEATURES = 32  # input values kept per listed row: enough to recognise a row, small for 784-pixel images


def add_details(document: dict[str, Any], sets: list[dict[str, Any]], reference: Runner | None, candidate: Runner) -> None:
    """Add ``file`` and ``model`` to both sides, ``histogram`` and rows' ``x`` to the checks (in place)."""
    document["format_version"] = FORMAT_VERSION
    for key, runner in (("reference", reference), ("candidate", candidate)):
        document[key]["file"] = None if runner is None else _file_info(getattr(runner, "path", None))
        document[key]["model"] = None if runner is None else _model_summary(runner)
    by_name = {entry["name"]: entry for entry in sets}
    for output in document["outputs"]:
        for check in output["checks"]:
            entry = by_name.get(check["inputs"])
            if entry is None or "error" in check:
                continue  # batch-1 rows are the main set's first rows; a shape error has no rows to show
            if output["kind"] == "values":
                check["histogram"] = error_histogram(entry["reference"][output["name"]], entry["candidate"][output["name"]])
            for row in check.get("worst_samples", []) + check.get("flips", []):
                row["x"] = np.asarray(entry["X"][row["row"], :ROW_FEATURES], dtype=np.float64).tolist()


def error_histogram(reference: Any, candidate: Any) -> dict[str, Any]:
    """Counts of ``|candidate - reference|`` in log-scale bins (``BINS_PER_DECADE`` per decade).

    Bin ``i`` holds errors in ``[edges[i], edges[i+1])``; exact agreement (``exact``) and
    non-finite errors (``nonfinite``) have no place on a log axis and are counted apart.
    """
    ref, cand = np.asarray(reference), np.asarray(candidate)
    diff = _abs_error(ref, cand).ravel()
    finite = np.isfinite(diff)
    positive = diff[finite & (diff > 0)]
    result: dict[str, Any] = {
        "bins_per_decade": BINS_PER_DECADE,
        "edges": [],
        "counts": [],
        "exact": int(np.count_nonzero(diff == 0)),
        "nonfinite": int(np.count_nonzero(~finite)),
    }
    if positive.size:
        steps = np.floor(np.log10(positive) * BINS_PER_DECADE).astype(np.int64)
        low = int(steps.min())
        counts = np.bincount(steps - low)
        result["edges"] = [10.0 ** ((low + i) / BINS_PER_DECADE) for i in range(len(counts) + 1)]
        result["counts"] = counts.tolist()
    return result


def _file_info(path: Any) -> dict[str, Any] | None:
    if path is None:
        return None
    path = Path(path)
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        size = path.stat().st_size
    except OSError:  # the file went away after verify ran: provenance says so rather than failing the report
        return {"path": str(path), "size": None, "sha256": None}
    return {"path": str(path), "size": size, "sha256": digest.hexdigest()}


def _model_summary(runner: Runner) -> dict[str, Any] | None:
    """The model's structure (``describe``) when the side can be read as an nnconvert model."""
    from ..describe import describe

    model = _as_model(runner)
    if model is None:
        return None
    summary = describe(model)
    summary["steps"] = [{k: step[k] for k in ("kind", "name", "ops")} for step in summary["steps"]]
    proto = getattr(runner, "proto", None)
    if proto is not None:  # the ONNX file's own producer fields, as written
        summary["metadata"]["producer_name"] = proto.producer_name or None
        summary["metadata"]["producer_version"] = proto.producer_version or None
    return summary


def _as_model(runner: Runner) -> Any:
    from ..errors import NnconvertError

    model = getattr(runner, "model", None)
    if model is not None and runner.kind == "ir":
        return model
    as_ir = getattr(runner, "_as_ir", None)
    if as_ir is not None:  # scikit-learn: the estimator's own structure
        return as_ir()
    path = getattr(runner, "path", None)
    if path is None:
        return None
    from ..api import load

    try:
        return load(path)
    except (ImportError, NnconvertError):  # a graph nnconvert cannot read is still verified, only not drawn
        return None
