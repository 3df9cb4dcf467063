"""Markup helpers shared by the HTML report and the model diagram.

Every string that comes from a model file or a report (labels, layer names, producers,
paths) goes through :func:`esc`: those are hostile input. Every number shown goes through
:func:`fig`, which keeps the exact value in a ``data-value`` attribute, so that a test can
check each figure on the page against the JSON report it was rendered from.
"""

from __future__ import annotations

import html
import math
from typing import Any

__all__ = ["esc", "fig", "short", "page", "write_page", "BASE_CSS"]


def esc(value: Any) -> str:
    """``value`` as text safe inside HTML/SVG elements and quoted attributes."""
    return html.escape(str(value), quote=True)


def short(value: Any, limit: int = 48) -> str:
    """Escaped text cut to ``limit`` characters (with an ellipsis)."""
    text = str(value)
    return esc(text if len(text) <= limit else text[: limit - 1] + "…")


def _formatted(value: Any, style: str) -> str:
    if isinstance(value, bool) or value is None:
        return "–"
    if isinstance(value, str):  # the JSON spelling of a non-finite float
        return {"inf": "∞", "-inf": "−∞"}.get(value, value)
    if style == "percent":
        return f"{value:.2%}"
    if style == "exp":  # an axis tick: 1e-7, 1e3
        mantissa, exponent = f"{value:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    if isinstance(value, int) or style == "int":
        return f"{int(value):,}"
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:.3g}"


def fig(value: Any, style: str = "g", tag: str = "span", css: str = "") -> str:
    """A number for display, its exact value kept in ``data-value`` (``tag="tspan"`` inside SVG).

    ``style``: ``"g"`` (3 significant digits, integers with thousands separators),
    ``"int"``, ``"percent"`` (a fraction shown as a percentage) or ``"exp"`` (``1e-7``).
    """
    if value is None or isinstance(value, (bool, str)):
        return esc(_formatted(value, style))
    css_attr = f' class="{css}"' if css else ""
    return f'<{tag} data-value="{esc(repr(value))}"{css_attr}>{esc(_formatted(value, style))}</{tag}>'


BASE_CSS = """
:root{--ok:#1a7f37;--bad:#c62828;--warn:#9a6700;--ink:#1f2328;--muted:#59636e;--line:#d1d9e0;--soft:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);background:#fff}
main{max-width:980px;margin:0 auto;padding:16px}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin:1.4em 0 .5em;border-bottom:1px solid var(--line);padding-bottom:.2em}
h3{font-size:1.05em;margin:1em 0 .4em}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.88em}
.muted{color:var(--muted)}.ok{color:var(--ok)}.bad{color:var(--bad)}
svg{max-width:100%;height:auto;display:block}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;fill:var(--ink)}
@media print{body{font-size:11pt}main{max-width:none;padding:0}section,figure,tr,svg{break-inside:avoid}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
"""


def page(title: str, body: str, css: str = "") -> str:
    """A complete self-contained HTML document: no scripts, no external resources."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{esc(title)}</title><style>{BASE_CSS}{css}</style></head>\n<body><main>\n{body}\n</main></body></html>\n"
    )


def write_page(path: Any, text: str) -> None:
    """Write a page atomically (a failed write leaves no partial file behind).

    Raises:
        WriteError: the folder is missing or not writable.
    """
    from .._io.atomic import atomic_output
    from ..errors import WriteError

    try:
        with atomic_output(path) as output:
            output.path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise WriteError(f"{path}: cannot write the page: {exc}") from exc
