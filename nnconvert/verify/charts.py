"""The error histogram of a check as inline SVG (log-scale bins from the report document)."""

from __future__ import annotations

import math
from typing import Any

from .markup import fig

__all__ = ["histogram_svg"]

WIDTH, HEIGHT = 360, 170
LEFT, RIGHT, TOP, BOTTOM = 34, 8, 10, 34


def histogram_svg(histogram: dict[str, Any], atol: float | None) -> str:
    """Bars of ``counts`` over ``edges`` (log axis), the decades labelled, ``atol`` as a dashed line."""
    edges, counts = histogram["edges"], histogram["counts"]
    if not counts:
        return '<p class="muted">every error is exactly zero or non-finite: nothing to draw on a log axis</p>'
    low, high = math.log10(edges[0]), math.log10(edges[-1])
    if atol:  # keep the tolerance on the axis: where the errors sit against it is the point
        low, high = min(low, math.floor(math.log10(atol))), max(high, math.ceil(math.log10(atol) + 0.25))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x_of(value: float) -> float:
        return LEFT + (math.log10(value) - low) / (high - low) * plot_w

    tallest = max(counts)
    parts = [f'<svg class="hist" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="histogram of absolute errors" xmlns="http://www.w3.org/2000/svg">']
    for index, count in enumerate(counts):
        if count:
            x0, x1 = x_of(edges[index]), x_of(edges[index + 1])
            bar_h = max(1.0, count / tallest * plot_h)
            parts.append(f'<rect class="bar" x="{x0 + 0.5:.1f}" y="{TOP + plot_h - bar_h:.1f}" width="{max(1.0, x1 - x0 - 1):.1f}" height="{bar_h:.1f}"/>')
    base = TOP + plot_h
    parts.append(f'<path class="axis" d="M{LEFT} {TOP} V{base} H{WIDTH - RIGHT}"/>')
    parts.append(f'<text x="{LEFT - 4}" y="{TOP + 9}" text-anchor="end">{fig(tallest, tag="tspan")}</text>')
    parts.append(f'<text x="{LEFT - 4}" y="{base}" text-anchor="end">{fig(0, tag="tspan")}</text>')
    decades = [edge for edge in edges if abs(math.log10(edge) - round(math.log10(edge))) < 1e-9]
    step = max(1, math.ceil(len(decades) / 5))  # at most ~6 labels: they must not overlap on a phone
    for edge in decades[::step]:
        x = x_of(edge)
        parts.append(f'<path class="axis" d="M{x:.1f} {base} v4"/><text x="{x:.1f}" y="{base + 16}" text-anchor="middle">{fig(edge, "exp", tag="tspan")}</text>')
    if atol:
        x = x_of(atol)
        parts.append(f'<path class="tol" d="M{x:.1f} {TOP} V{base}"/><text x="{x - 3:.1f}" y="{TOP + 10}" text-anchor="end" class="bad">atol {fig(atol, tag="tspan")}</text>')
    parts.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 2}" text-anchor="middle">|candidate − reference|</text></svg>')
    return "".join(parts)
