"""The model as an SVG diagram: input, preprocessing, each layer, the head and its classes.

Drawn from the dict ``nnconvert inspect --json`` prints (``describe``), which is also each
side's ``model`` in a verify report. With the report's ``layers`` (verify's per-layer
comparison) every stage is coloured by its error relative to its tolerance and the first
stage out of tolerance is marked. ``inspect --html`` draws it alone (:func:`diagram_page`).
"""

from __future__ import annotations

import math
from typing import Any

from .markup import esc, fig, page, short

__all__ = ["model_diagram", "diagram_page", "write_diagram_page", "error_colour"]

WIDTH = 460
BOX_HEIGHT = 54
ERROR_LINE = 18  # a compared stage's third line: its error
GAP = 22
CLASSES_SHOWN = 12

DIAGRAM_CSS = """
.stage rect{stroke:#8c959f;stroke-width:1}
.stage.fail rect{stroke:var(--bad);stroke-width:3}
.stage .t{font-weight:600;font-size:14px}.stage .d{font-size:12.5px}.stage .e{font-size:12.5px;font-weight:600}
.arrow{stroke:#8c959f;stroke-width:1.5;fill:none}
svg .bad{fill:var(--bad)}
.legend text{font-size:11.5px;fill:var(--muted)}
"""


def error_colour(entry: dict[str, Any] | None) -> str:
    """Fill of a stage: grey (not compared), green far within tolerance, to amber near it, red outside."""
    if entry is None:
        return "#eef1f4"
    if not entry.get("passed") or "error" in entry:
        return "#ffd3d0"
    error = entry.get("max_abs_error", {}).get("value")
    atol = entry.get("tolerance", {}).get("atol") or 0
    if not isinstance(error, (int, float)) or error <= 0 or atol <= 0:
        return "#d6f5dd"
    closeness = min(1.0, max(0.0, (math.log10(error / atol) + 4) / 4))  # 1e-4 of atol or less: green; atol: amber
    hue = 135 - 95 * closeness
    return f"hsl({hue:.0f},70%,86%)"


def _stages(model: dict[str, Any]) -> list[dict[str, Any]]:
    """Each box of the diagram: title, detail line, and the per-layer index it is compared at."""
    n_features = model["n_features"]
    stages = [
        {
            "title": f"input {short(model['input']['name'], 30)}",
            "detail": f"{fig(n_features, tag='tspan')} features · {esc(model['dtype'])}",
            "index": -1 if not model["steps"] else None,
        }
    ]
    for position, step in enumerate(model["steps"]):
        last = position == len(model["steps"]) - 1
        stages.append(
            {
                "title": f"preprocessing · {short(step['kind'], 24)}"
                + (f" {short(step['name'], 20)}" if step["name"] and step["name"] != step["kind"] else ""),
                "detail": "operations: " + esc(", ".join(step["ops"])),
                "index": -1 if last else None,  # verify compares the input after the whole preprocessing
            }
        )
    for layer in model["layers"]:
        params = "".join(f" {esc(k)}={fig(v, tag='tspan') if isinstance(v, (int, float)) else short(v, 8)}" for k, v in layer["activation_params"].items())
        stages.append(
            {
                "title": f"layer {fig(layer['index'], tag='tspan')} · {short(layer['name'], 36)}",
                "detail": f"dense {fig(layer['shape'][0], tag='tspan')} → {fig(layer['shape'][1], tag='tspan')} · "
                f"{esc(layer['activation'])}{params} · {fig(layer['n_parameters'], tag='tspan')} parameters",
                "index": layer["index"],
            }
        )
    stages.append(_head_stage(model))
    return stages


def _head_stage(model: dict[str, Any]) -> dict[str, Any]:
    classes = model.get("classes")
    if classes is None:
        detail = f"outputs: {fig(model['n_outputs'], tag='tspan')}"
    else:
        shown = ", ".join(short(c, 16) for c in classes[:CLASSES_SHOWN])
        more = ", …" if len(classes) > CLASSES_SHOWN else ""
        detail = f"classes: {shown}{more}"
    return {"title": f"head · {esc(model['task'])}", "detail": detail, "index": None}


def _error_text(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return ""
    if "error" in entry:
        return "shape differs"
    text = f"max |error| {fig(entry['max_abs_error']['value'], tag='tspan')} · atol {fig(entry['tolerance']['atol'], tag='tspan')}"
    if entry.get("mismatches"):
        text += f" · {fig(entry['mismatches'], tag='tspan')} values out"
    return text


def model_diagram(model: dict[str, Any], layers: dict[str, Any] | None = None) -> str:
    """The SVG markup of ``model`` (a ``describe`` dict), coloured by ``layers`` when compared."""
    entries = {e["index"]: e for e in (layers or {}).get("entries", [])} if (layers or {}).get("compared") else {}
    failing = (layers or {}).get("first_failing")
    failing_index = None if failing is None else failing["index"]
    stages = _stages(model)
    box_height = BOX_HEIGHT + (ERROR_LINE if entries else 0)
    height = len(stages) * (box_height + GAP) - GAP + (34 if entries else 4)
    parts = [
        f'<svg class="diagram" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" '
        f'aria-label="model diagram" xmlns="http://www.w3.org/2000/svg">'
    ]
    for position, stage in enumerate(stages):
        top = position * (box_height + GAP)
        entry = entries.get(stage["index"]) if stage["index"] is not None else None
        marked = stage["index"] is not None and stage["index"] == failing_index
        parts.append(_box(stage, top, box_height, entry if entries else None, marked))
        if position < len(stages) - 1:
            y = top + box_height
            parts.append(f'<path class="arrow" d="M{WIDTH / 2} {y + 2} V{y + GAP - 3} m-5 -6 l5 6 l5 -6"/>')
    if entries:
        parts.append(_legend(height - 26))
    parts.append("</svg>")
    return "".join(parts)


def _box(stage: dict[str, Any], top: float, height: float, entry: dict[str, Any] | None, marked: bool) -> str:
    classes = "stage fail" if marked else "stage"
    fill = error_colour(entry) if entry is not None or stage["index"] is not None else "#ffffff"
    error = _error_text(entry)
    attrs = f' data-layer="{stage["index"]}"' if stage["index"] is not None else ""
    flag = ' <tspan class="bad">◀ first out of tolerance</tspan>' if marked else ""
    return (
        f'<g class="{classes}"{attrs}><rect x="1" y="{top + 1}" width="{WIDTH - 2}" height="{height - 2}" rx="7" fill="{fill}"/>'
        f'<text class="t" x="12" y="{top + 21}">{stage["title"]}{flag}</text>'
        f'<text class="d" x="12" y="{top + 40}">{stage["detail"]}</text>'
        + (f'<text class="e" x="12" y="{top + 58}">{error}</text>' if error else "")
        + "</g>"
    )


def _legend(top: float) -> str:
    swatches = [("#d6f5dd", "far within tolerance"), (error_colour_at(1.0), "near tolerance"), ("#ffd3d0", "out of tolerance")]
    parts = ['<g class="legend">']
    x = 2.0
    for colour, label in swatches:
        parts.append(f'<rect x="{x}" y="{top + 8}" width="14" height="14" rx="3" fill="{colour}" stroke="#8c959f"/>')
        parts.append(f'<text x="{x + 19}" y="{top + 19}">{label}</text>')
        x += 30 + 6.2 * len(label)
    parts.append("</g>")
    return "".join(parts)


def error_colour_at(closeness: float) -> str:
    return f"hsl({135 - 95 * closeness:.0f},70%,86%)"


def diagram_page(model: dict[str, Any], title: str) -> str:
    """A self-contained HTML page with the diagram alone (``nnconvert inspect --html``)."""
    metadata = model.get("metadata") or {}
    producer = metadata.get("producer")
    body = (
        f"<h1>{esc(title)}</h1>"
        f'<p class="muted">{esc(model["task"])} · {esc(model["dtype"])} · {fig(model["n_parameters"])} parameters'
        + (f" · produced by {esc(producer)}" if producer else "")
        + f"</p>{model_diagram(model)}"
    )
    return page(title, body, DIAGRAM_CSS)


def write_diagram_page(info: dict[str, Any], path: Any) -> None:
    """Write :func:`diagram_page` of ``info`` (``describe`` plus ``file``) to ``path``.

    Raises:
        WriteError: the page cannot be written.
    """
    from .markup import write_page

    write_page(path, diagram_page(info, f"nnconvert inspect: {info.get('file', 'model')}"))
