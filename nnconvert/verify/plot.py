"""``Report.plot``: error distribution and error against magnitude, per output (matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingDependencyError, WriteError

__all__ = ["plot_report"]

MAX_POINTS = 20000


def plot_report(document: dict[str, Any], sets: list[dict[str, Any]], path: Path) -> Path:
    """Write the figure to ``path`` (PNG).

    Raises:
        MissingDependencyError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError("matplotlib", "plotting a verification report") from None
    names = [o["name"] for o in document["outputs"] if o["kind"] == "values"]
    figure, axes = plt.subplots(max(1, len(names)), 2, figsize=(11, 3.6 * max(1, len(names))), squeeze=False)
    for row, name in enumerate(names):
        reference, error = _errors(sets, name)
        _histogram(axes[row][0], error, name)
        _scatter(axes[row][1], reference, error, name)
    figure.suptitle(f"nnconvert verify: {'PASSED' if document['passed'] else 'FAILED'}")
    figure.tight_layout()
    try:
        figure.savefig(path, dpi=90)
    except OSError as exc:
        raise WriteError(f"{path}: cannot write the plot: {exc}") from exc
    finally:
        plt.close(figure)
    return path


def _errors(sets: list[dict[str, Any]], name: str) -> tuple[np.ndarray, np.ndarray]:
    refs, errors = [], []
    for entry in sets:
        ref = np.asarray(entry["reference"][name], dtype=np.float64).ravel()
        cand = np.asarray(entry["candidate"][name], dtype=np.float64).ravel()
        if ref.shape != cand.shape:
            continue
        step = max(1, ref.size // MAX_POINTS)
        refs.append(ref[::step])
        errors.append(np.abs(cand[::step] - ref[::step]))
    return np.concatenate(refs), np.concatenate(errors)


def _histogram(axis: Any, error: np.ndarray, name: str) -> None:
    positive = error[np.isfinite(error) & (error > 0)]
    if positive.size:
        bins = np.logspace(np.log10(positive.min()), np.log10(positive.max()) + 1e-9, 40)
        axis.hist(positive, bins=bins)
        axis.set_xscale("log")
    axis.set_title(f"{name}: |error| distribution ({error.size - positive.size} exact)")
    axis.set_xlabel("absolute error")
    axis.set_ylabel("elements")


def _scatter(axis: Any, reference: np.ndarray, error: np.ndarray, name: str) -> None:
    finite = np.isfinite(error) & np.isfinite(reference)
    axis.scatter(np.abs(reference[finite]), error[finite], s=3, alpha=0.4)
    axis.set_title(f"{name}: error against output magnitude")
    axis.set_xlabel("|reference output|")
    axis.set_ylabel("absolute error")
    if (error[finite] > 0).any():
        axis.set_yscale("symlog", linthresh=max(1e-18, float(error[finite][error[finite] > 0].min())))
