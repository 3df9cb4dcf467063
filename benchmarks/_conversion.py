"""sklearn -> ONNX conversion time: nnconvert, skl2onnx and the copy-to-disk lower bound.

Each tool is timed as a user calls it, writing a file: ``nnconvert.convert``
(which saves atomically and fsyncs), skl2onnx's ``to_onnx`` then
``SerializeToString`` and a file write (fsynced too), and the lower bound:
cast every weight to float32, ``tobytes``, write, fsync. Imports are warm
(run.py converts the small model with each tool before timing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from _common import best_of_interleaved, fsync_write, weight_arrays


def nnconvert_to_onnx(estimator: Any, path: Path) -> None:
    import nnconvert

    nnconvert.convert(estimator, path)


def skl2onnx_to_onnx(estimator: Any, X: np.ndarray, path: Path) -> None:
    from skl2onnx import to_onnx

    onx = to_onnx(estimator, X[:1].astype(np.float32), options={"zipmap": False})
    fsync_write(path, onx.SerializeToString())


def lower_bound(estimator: Any, path: Path) -> None:
    """What any converter must at least do: cast the weights, serialise them, write them."""
    fsync_write(path, [array.astype(np.float32).tobytes() for array in weight_arrays(estimator)])


def time_conversions(estimator: Any, X: np.ndarray, workdir: Path, repeat: int, *, skl2onnx_repeat: int | None = None,
                     with_lower_bound: bool = False) -> dict[str, float]:
    """Best-of times (seconds) of nnconvert, skl2onnx and optionally the lower bound, in turns."""
    ours, theirs, bound = workdir / "nnconvert.onnx", workdir / "skl2onnx.onnx", workdir / "lower_bound.bin"
    functions = [lambda: nnconvert_to_onnx(estimator, ours), lambda: skl2onnx_to_onnx(estimator, X, theirs)]
    if with_lower_bound:
        functions.append(lambda: lower_bound(estimator, bound))
    skl2onnx_repeat = repeat if skl2onnx_repeat is None else skl2onnx_repeat
    times = best_of_interleaved([functions[0], *functions[2:]], repeat)
    theirs_time = best_of_interleaved([functions[1]], skl2onnx_repeat)[0]
    result = {"nnconvert": times[0], "skl2onnx": theirs_time}
    if with_lower_bound:
        result["lower_bound"] = times[1]
    result["nnconvert_bytes"] = ours.stat().st_size
    result["skl2onnx_bytes"] = theirs.stat().st_size
    return result
