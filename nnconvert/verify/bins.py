"""The shared definitions of verify's mergeable statistics: block size, p99 histogram, deterministic top rows.

Both the in-memory comparison (``compare.py``) and the streamed partials (``partials.py``)
use these, so that a streamed run's report equals the in-memory one bit for bit.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CHUNK_ROWS", "BINS", "SUB_BITS", "EXP_LOW", "EXP_HIGH", "histogram", "histogram_p99", "blocked_mean", "top_indices"]

CHUNK_ROWS = 65536  # rows per streamed chunk; the in-memory mean sums blocks of the same size

# The p99 histogram: 256 linear sub-bins per power of two between 2**-160 and 2**160
# (relative width <= 1/256, 0.4 %), plus bins for 0, below 2**-160, above 2**160 and inf.
SUB_BITS = 8
EXP_LOW, EXP_HIGH = -160, 160
_KEY_LOW = (1023 + EXP_LOW) << SUB_BITS
_N_LOG_BINS = (EXP_HIGH - EXP_LOW) << SUB_BITS
BINS = _N_LOG_BINS + 4  # [0] zero, [1] tiny, [2 .. N+1] log bins, [N+2] huge, [N+3] inf


def histogram(diff: np.ndarray) -> np.ndarray:
    """Counts of the non-negative float64 ``diff`` in the fixed log bins (no NaN expected)."""
    flat = np.ascontiguousarray(diff, dtype=np.float64).reshape(-1)
    # the bit pattern of a non-negative float is monotone in its value: exponent and top mantissa bits index the bin
    keys = flat.view(np.int64) >> (52 - SUB_BITS)
    keys -= _KEY_LOW - 2
    np.clip(keys, 1, _N_LOG_BINS + 2, out=keys)
    counts = np.bincount(keys, minlength=BINS)
    zeros = int(np.count_nonzero(flat == 0.0))
    counts[1] -= zeros
    counts[0] += zeros
    if flat.size and np.isinf(flat.max()):
        infinite = int(np.count_nonzero(np.isinf(flat)))
        counts[_N_LOG_BINS + 2] -= infinite
        counts[_N_LOG_BINS + 3] += infinite
    return counts


def histogram_p99(counts: np.ndarray, max_value: float) -> float:
    """The 99th percentile (nearest rank, ``ceil(0.99 n)``) as the upper edge of its bin, at most ``max_value``."""
    total = int(counts.sum())
    if total == 0:
        return 0.0
    rank = (99 * total + 99) // 100
    index = int(np.searchsorted(np.cumsum(counts), rank))
    if index == 0:
        return 0.0
    if index == 1:
        edge = 2.0**EXP_LOW
    elif index <= _N_LOG_BINS + 1:
        octave, sub = divmod(index - 2, 1 << SUB_BITS)
        edge = float(np.ldexp(1.0 + (sub + 1) / (1 << SUB_BITS), EXP_LOW + octave))
    else:
        return float(max_value)
    return min(edge, float(max_value))


def blocked_mean(diff: np.ndarray) -> float:
    """The mean as the sum of ``CHUNK_ROWS``-row block sums: what a streamed run adds up, bit for bit."""
    if diff.size == 0:
        return float("nan")
    total = 0.0
    for start in range(0, diff.shape[0], CHUNK_ROWS):
        total += float(diff[start : start + CHUNK_ROWS].sum())
    return total / diff.size


def top_indices(values: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` largest values, largest first, ties by smaller index (deterministic)."""
    count = min(count, values.size)
    if count == 0:
        return np.empty(0, dtype=np.intp)
    threshold = values[np.argpartition(values, -count)[-count:]].min()
    above = np.flatnonzero(values > threshold)
    ties = np.flatnonzero(values == threshold)[: count - above.size]
    chosen = np.concatenate([above, ties])
    return chosen[np.lexsort((chosen, -values[chosen]))]
