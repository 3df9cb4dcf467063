"""The verification report: a versioned document plus the arrays behind it."""

from __future__ import annotations

import copy
import functools
import importlib.metadata
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import VerificationError, WriteError

__all__ = ["Report", "library_versions"]

_LIBRARIES = ("nnconvert", "numpy", "onnx", "onnxruntime", "scikit-learn", "skl2onnx", "keras", "torch")


def library_versions() -> dict[str, str | None]:
    """Versions of Python and of every library that may have run a side (None: not installed)."""
    return dict(_library_versions())


@functools.lru_cache(maxsize=1)
def _library_versions() -> dict[str, str | None]:
    # reading eight packages' metadata costs ~10 ms; installed versions do not change under a running process
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


class Report:
    """What :func:`nnconvert.verify` found.

    Attributes:
        passed: True when every output is within tolerance on every input set.
    """

    def __init__(self, document: dict[str, Any], sets: list[dict[str, Any]], sides: tuple[Any, Any] | None = None):
        self._document = document
        self._sets = sets
        self._sides = sides  # (reference, candidate) runners: the details below are read from them once

    def _complete(self) -> dict[str, Any]:
        """The document with the saved report's details (files, models, histograms, rows), added on first use."""
        if self._sides is not None:
            from .details import add_details

            reference, candidate = self._sides
            self._sides = None
            add_details(self._document, self._sets, reference, candidate)
        return self._document

    @property
    def passed(self) -> bool:
        return bool(self._document["passed"])

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return f"<Report {'PASSED' if self.passed else 'FAILED'}: {', '.join(self.failed_outputs) or 'all outputs within tolerance'}>"

    @property
    def input_sets(self) -> list[dict[str, Any]]:
        """Each input set run: ``name``, ``X`` and both sides' outputs (``reference``, ``candidate``)."""
        return list(self._sets)

    @property
    def failed_outputs(self) -> list[str]:
        """Names of the outputs out of tolerance."""
        return [o["name"] for o in self._document["outputs"] if not o["passed"]]

    @property
    def first_failing_layer(self) -> dict[str, Any] | None:
        """The first layer (index -1: the preprocessed input) out of tolerance, when layers were compared."""
        return self._document["layers"].get("first_failing")

    @property
    def metric(self) -> dict[str, Any] | None:
        """Both models' task metric against the ground truth (``labels=``, ``label_column=``), or None without it."""
        metric = self._document.get("metric")
        return None if metric is None else copy.deepcopy(metric)

    def output(self, name: str) -> dict[str, Any]:
        """The result of one output (``probabilities``, ``labels``, ``values``)."""
        for entry in self._document["outputs"]:
            if entry["name"] == name:
                return entry
        raise KeyError(f"no output {name!r} was compared; compared: {[o['name'] for o in self._document['outputs']]}")

    def to_dict(self) -> dict[str, Any]:
        """The versioned JSON-safe document (schema: nnconvert/schemas/verify_report.schema.json)."""
        return _json_safe(copy.deepcopy(self._complete()))

    def to_json(self, path: str | Path | None = None) -> str:
        """The document as JSON text, also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        if path is not None:
            _write_text(path, text + "\n")
        return text

    def raise_for_failure(self) -> None:
        """Raise :class:`VerificationError` (carrying this report) when parity does not hold."""
        if not self.passed:
            raise VerificationError(f"verification failed: {', '.join(self.failed_outputs)} out of tolerance", self)

    def summary(self) -> str:
        """Readable console text: PASSED/FAILED per output, a table, the worst samples."""
        from .text import summary_text

        return summary_text(self._document)

    def to_markdown(self) -> str:
        """A markdown table for a CI comment."""
        from .text import markdown_text

        return markdown_text(self._document)

    def to_html(self, path: str | Path | None = None) -> str:
        """One self-contained HTML page (inline SVG and CSS, no scripts), also written to ``path`` when given.

        It is rendered from :meth:`to_dict`'s document: every figure on the page is in the JSON report.
        """
        from .html import render_report

        text = render_report(self.to_dict())
        if path is not None:
            from .markup import write_page

            write_page(path, text)
        return text

    def save_inputs(self, path: str | Path) -> Path:
        """Save every input set and both sides' outputs to an ``.npz`` to reproduce the run.

        ``X`` holds the main rows (``--data`` reads it back); ``X_<set>`` the others;
        ``reference_<set>_<output>`` / ``candidate_<set>_<output>`` the outputs.
        """
        # Any, not ndarray: unpacked into savez_compressed, whose allow_pickle: bool a key could also fill
        arrays: dict[str, Any] = {}
        for index, entry in enumerate(self._sets):
            key = "X" if index == 0 else f"X_{entry['name']}"
            arrays[key] = entry["X"]
            for side in ("reference", "candidate"):
                for name, value in entry[side].items():
                    arrays[f"{side}_{entry['name']}_{name}"] = _storable(value)
        arrays["seed"] = np.asarray(self._document["seed"])
        path = Path(path)
        try:
            with open(path, "wb") as handle:
                np.savez_compressed(handle, **arrays)
        except OSError as exc:
            raise WriteError(f"{path}: cannot save the inputs: {exc}") from exc
        return path

    def plot(self, path: str | Path) -> Path:
        """Save a PNG: per output, the error distribution and error against output magnitude.

        Raises:
            MissingDependencyError: matplotlib is not installed.
        """
        from .plot import plot_report

        return plot_report(self._document, self._sets, Path(path))


def _storable(value: Any) -> np.ndarray:
    array = np.asarray(value)
    return array.astype(str) if array.dtype == object else array


def _write_text(path: str | Path, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise WriteError(f"{path}: cannot write the report: {exc}") from exc


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value
