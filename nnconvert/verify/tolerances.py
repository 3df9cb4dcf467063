"""Default tolerances: by the dtype the comparison is limited by, scaled by output magnitude.

The reasoning is in docs/verify.md. In short: rounding noise of a correct
conversion is a few ulps of the compute dtype amplified by the length of the
dot products (~1e-7..1e-5 relative in float32, ~1e-16..1e-13 in float64);
a real bug (a wrong weight, a float32 leak into a float64 model, a wrong
activation) is orders of magnitude larger. Each default sits between the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UsageError

__all__ = ["Tolerance", "DEFAULTS", "comparison_dtype", "default_tolerance", "resolve_tolerance", "check_overrides"]

# (rtol, atol per unit of output magnitude) for each comparison dtype
DEFAULTS: Mapping[str, tuple[float, float]] = {
    "float16": (1e-2, 1e-3),
    "float32": (1e-4, 1e-5),
    "float64": (1e-10, 1e-11),
}

ToleranceOption = float | Mapping[str, float] | None


@dataclass(frozen=True)
class Tolerance:
    """An element passes when ``|candidate - reference| <= atol + rtol * |reference|``."""

    atol: float
    rtol: float
    source: str  # "default" or "user"

    def to_dict(self) -> dict[str, Any]:
        return {"atol": self.atol, "rtol": self.rtol, "source": self.source}


def comparison_dtype(*dtypes: Any) -> np.dtype:
    """The least precise floating dtype among the sides: it bounds what can agree."""
    floats = [np.dtype(d) for d in dtypes if d is not None and np.dtype(d).kind == "f"]
    if not floats:
        return np.dtype(np.float64)
    return min(floats, key=lambda d: d.itemsize)


def default_tolerance(dtype: Any, magnitude: float) -> Tolerance:
    """The default tolerance for outputs of ``magnitude`` (max |reference|) compared in ``dtype``."""
    rtol, atol_unit = DEFAULTS.get(np.dtype(dtype).name, DEFAULTS["float64"])
    scale = max(1.0, float(magnitude)) if np.isfinite(magnitude) else 1.0
    return Tolerance(atol=atol_unit * scale, rtol=rtol, source="default")


def _pick(option: ToleranceOption, output: str) -> float | None:
    if option is None:
        return None
    if isinstance(option, Mapping):
        value = option.get(output, option.get("*"))
        return None if value is None else float(value)
    return float(option)


def resolve_tolerance(output: str, dtype: Any, magnitude: float, atol: ToleranceOption, rtol: ToleranceOption) -> Tolerance:
    """The default tolerance with the user's per-output (or global) atol/rtol applied."""
    base = default_tolerance(dtype, magnitude)
    user_atol, user_rtol = _pick(atol, output), _pick(rtol, output)
    if user_atol is None and user_rtol is None:
        return base
    return Tolerance(
        atol=base.atol if user_atol is None else user_atol,
        rtol=base.rtol if user_rtol is None else user_rtol,
        source="user",
    )


def check_overrides(option: ToleranceOption, known_outputs: set[str], what: str) -> None:
    """Refuse per-output values naming an output neither model has, or negative values.

    Raises:
        UsageError: naming the bad key or value and the outputs there are.
    """
    if option is None:
        return
    items = option.items() if isinstance(option, Mapping) else [("*", option)]
    for key, value in items:
        if key != "*" and key not in known_outputs:
            raise UsageError(f"{what} names the output {key!r}; the outputs compared are: {', '.join(sorted(known_outputs))}")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
            raise UsageError(f"{what} for {key!r} must be a non-negative number, got {value!r}")
