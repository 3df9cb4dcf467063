"""Readers are linear in the file's size: size-scaled cases of the corpus (tests/make_bad_inputs.py).

Each case is one shape of file at two sizes, the repeated part 4x larger in
the second. Reading must take about 4x as long, not 16x: the assertion is a
loose ratio of the best of three timings (below 8x), never a wall-clock limit.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_bad_inputs  # noqa: E402

import nnconvert  # noqa: E402

MAX_RATIO = 8.0  # linear gives ~4 (less, with fixed costs); quadratic 16


@pytest.fixture(scope="module")
def scaled(tmp_path_factory):
    return make_bad_inputs.make_scaled_cases(tmp_path_factory.mktemp("scaled"))


def _best_time(path: Path, fmt: str | None) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nnconvert.load(path, format=fmt)
        best = min(best, time.perf_counter() - start)
    return best


def test_scaled_cases_read_in_linear_time(scaled):
    assert {case.name for case in scaled} >= {"onnx/reversed-tail", "keras-h5/nested-groups"}
    for case in scaled:
        _best_time(case.small, case.format)  # imports and caches
        small, large = _best_time(case.small, case.format), _best_time(case.large, case.format)
        ratio = large / small
        print(f"{case.name}: {small * 1000:.0f} ms -> {large * 1000:.0f} ms for 4x the size ({ratio:.1f}x)")
        assert ratio < MAX_RATIO, f"{case.name}: 4x the size took {ratio:.1f}x as long ({small:.3f} s -> {large:.3f} s)"
