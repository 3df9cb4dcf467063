"""``Report.to_html``: the verification as one self-contained page, rendered from the report document.

Verdict first (with the one-line reason on failure), then the model diagram coloured by
the per-layer errors, then per output: the checks and tolerances, the error histogram,
the worst rows with their inputs and the label flips split by margin; provenance last.
No scripts, fonts or images from elsewhere: inline SVG and CSS only (a Content-Security-
Policy forbids any load). Every number is drawn from the document (see :mod:`.markup`).
"""

from __future__ import annotations

from typing import Any

from .diagram import DIAGRAM_CSS, model_diagram
from .markup import esc, fig, page, short

__all__ = ["render_report", "failure_reason"]

CSS = """
.verdict{border-radius:10px;padding:14px 18px;margin:8px 0 4px;border:2px solid}
.verdict.pass{background:#e9f7ec;border-color:var(--ok)}.verdict.fail{background:#fdecea;border-color:var(--bad)}
.verdict h1{margin:0;font-size:1.7em}.verdict.pass h1{color:var(--ok)}.verdict.fail h1{color:var(--bad)}
.verdict p{margin:.3em 0 0}
.sides{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:10px 0}
.sides dt{color:var(--muted)}.sides dd{margin:0;overflow-wrap:anywhere}
.wrap{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:.4em 0;font-size:.92em}
th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.badge{display:inline-block;border-radius:5px;padding:0 7px;font-size:.8em;font-weight:700;color:#fff;vertical-align:.1em}
.badge.pass{background:var(--ok)}.badge.fail{background:var(--bad)}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:12px}
figure{margin:0;border:1px solid var(--line);border-radius:8px;padding:8px}figcaption{font-size:.9em;color:var(--muted)}
.hist rect.bar{fill:#4c78a8}.hist .axis{stroke:#8c959f;fill:none}.hist text{font-size:11px}.hist .tol{stroke:var(--bad);stroke-dasharray:4 3}
.hist text.bad{paint-order:stroke;stroke:#fff;stroke-width:3px;fill:var(--bad)}
table.checks td:first-child{white-space:nowrap}
.x{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em;overflow-wrap:anywhere;min-width:14em}
@media print{.wrap{overflow:visible}.charts{grid-template-columns:1fr 1fr}h2{break-after:avoid}}
ul.warn li{color:var(--warn)}
.diagram-box{max-width:560px}
"""

ROWS_SHOWN = 10


def render_report(document: dict[str, Any]) -> str:
    """The page for a report document (``Report.to_dict()``)."""
    passed = document["passed"]
    sections = [
        _verdict(document),
        _diagram_section(document),
        *(_output_section(output, document) for output in document["outputs"]),
        _metric_section(document.get("metric")),
        _provenance(document),
    ]
    return page(f"nnconvert verify: {'PASSED' if passed else 'FAILED'}", "\n".join(sections), CSS + DIAGRAM_CSS)


# -- verdict ---------------------------------------------------------------------


def failure_reason(document: dict[str, Any]) -> str:
    """One line (markup) saying why the verification failed: the first failing check and layer."""
    for output in document["outputs"]:
        for check in output["checks"]:
            if check["passed"]:
                continue
            where = f"{esc(output['name'])} on the {esc(check['inputs'])} rows"
            if "error" in check:
                reason = f"{where}: {esc(check['error'])}"
            elif output["kind"] == "labels":
                reason = f"{where}: {fig(check['unexpected_flips'])} label flips with a wide margin"
            else:
                worst, tolerance = check["max_abs_error"], check["tolerance"]
                reason = (
                    f"{where}: {fig(check['mismatches'])} values out of tolerance, max |error| "
                    f"{fig(worst['value'])} at row {fig(worst['row'])} (atol {fig(tolerance['atol'])}, rtol {fig(tolerance['rtol'])})"
                )
            return reason + _layer_reason(document["layers"])
    return "every output within tolerance"


def _layer_reason(layers: dict[str, Any]) -> str:
    failing = layers.get("first_failing")
    if not layers.get("compared") or failing is None:
        return ""
    if failing["index"] < 0:
        return "; first out of tolerance: the preprocessed input"
    return f"; first out of tolerance: layer {fig(failing['index'])} ({short(failing['name'])})"


def _side_line(side: dict[str, Any]) -> str:
    dtype = f" ({esc(side['dtype'])})" if side.get("dtype") else ""
    return f"{esc(side['kind'])}: <code>{esc(side['description'])}</code>{dtype}"


def _inputs_line(document: dict[str, Any]) -> str:
    inputs = document["inputs"]
    text = f"{fig(inputs['n_rows'])} {esc(inputs['source'])} rows × {fig(inputs['n_features'])} features"
    if inputs.get("edge_rows"):
        text += f" + {fig(inputs['edge_rows'])} edge rows"
    return f"{text}, seed {fig(document['seed'])}, compared in {esc(document['comparison_dtype'])}"


def _verdict(document: dict[str, Any]) -> str:
    passed = document["passed"]
    reason = "" if passed else f"<p><strong>Why:</strong> {failure_reason(document)}</p>"
    outputs = " ".join(
        f'{esc(o["name"])} <span class="badge {"pass" if o["passed"] else "fail"}">{"PASSED" if o["passed"] else "FAILED"}</span>'
        for o in document["outputs"]
    )
    return (
        f'<section class="verdict {"pass" if passed else "fail"}" id="verdict"><h1>nnconvert verify: '
        f'{"PASSED" if passed else "FAILED"}</h1>{reason}<p>{outputs}</p></section>'
        f'<dl class="sides"><dt>reference</dt><dd>{_side_line(document["reference"])}</dd>'
        f'<dt>candidate</dt><dd>{_side_line(document["candidate"])}</dd>'
        f"<dt>inputs</dt><dd>{_inputs_line(document)}</dd></dl>"
    )


# -- the model -------------------------------------------------------------------


def _diagram_section(document: dict[str, Any]) -> str:
    side = "reference" if document["reference"].get("model") else "candidate"
    model = document[side].get("model")
    layers = document["layers"]
    if model is None:
        return f'<section id="model"><h2>Model</h2><p class="muted">Neither side could be read as an nnconvert model to draw it. Per layer: {esc(layers.get("note") or "")}</p>{_layer_table(layers)}</section>'
    note = esc(layers.get("note") or "") if layers.get("compared") else f"not compared: {esc(layers.get('note') or '')}"
    return (
        f'<section id="model"><h2>Model <span class="muted">(as the {side} describes it)</span></h2>'
        f'<p class="muted">{esc(model["task"])} · {esc(model["dtype"])} · {fig(model["n_parameters"])} parameters. '
        f"Per-layer error: {note}</p>"
        f'<div class="diagram-box">{model_diagram(model, layers)}</div>{_layer_table(layers)}</section>'
    )


def _layer_table(layers: dict[str, Any]) -> str:
    if not layers.get("compared"):
        return ""
    rows = []
    for entry in layers["entries"]:
        where = "preprocessed input" if entry["index"] < 0 else f"layer {fig(entry['index'])}"
        if "error" in entry:
            metrics = f'<td colspan="3">{esc(entry["error"])}</td>'
        else:
            worst = entry["max_abs_error"]
            metrics = (
                f'<td class="n">{fig(worst["value"])} (row {fig(worst["row"])}, col {fig(worst["column"])})</td>'
                f'<td class="n">{fig(entry["mismatches"])}</td><td class="n">{fig(entry["tolerance"]["atol"])} / {fig(entry["tolerance"]["rtol"])}</td>'
            )
        status = "pass" if entry["passed"] else "fail"
        rows.append(
            f'<tr><td>{where}</td><td>{short(entry["name"], 40)}</td><td><span class="badge {status}">{"ok" if entry["passed"] else "OUT"}</span></td>{metrics}</tr>'
        )
    head = "<tr><th>stage</th><th>name</th><th>status</th><th>max |error|</th><th>mismatches</th><th>atol / rtol</th></tr>"
    return f'<div class="wrap"><table class="layers">{head}{"".join(rows)}</table></div>'


# -- outputs ---------------------------------------------------------------------


def _metric_section(metric: dict[str, Any] | None) -> str:
    """Both models' task metric against the ground truth, and the difference (informational)."""
    if metric is None:
        return ""
    from .text import METRIC_NAMES

    names = [n for n in METRIC_NAMES if n in metric["reference"]]
    style = "percent" if metric["task"] == "classification" else "g"
    head = "<tr><th></th>" + "".join(f"<th>{esc(METRIC_NAMES[n])}</th>" for n in names) + "</tr>"
    rows = "".join(
        f"<tr><td>{side}</td>" + "".join(f'<td class="n">{fig(metric[side][n], style)}</td>' for n in names) + "</tr>"
        for side in ("reference", "candidate", "difference")
    )
    return (
        f'<section id="metric"><h2>Task metric</h2><p class="muted">Against {esc(metric["labels"])}, on '
        f'{fig(metric["n_rows"])} rows; informational: parity decides the verdict.</p>'
        f'<div class="wrap"><table class="checks">{head}{rows}</table></div></section>'
    )



def _output_section(output: dict[str, Any], document: dict[str, Any]) -> str:
    status = "pass" if output["passed"] else "fail"
    parts = [
        f'<section class="output" id="output-{esc(output["name"])}"><h2>Output {esc(output["name"])} '
        f'<span class="badge {status}">{"PASSED" if output["passed"] else "FAILED"}</span></h2>',
        _checks_table(output),
    ]
    if output["kind"] == "values":
        charts = [_histogram_figure(check) for check in output["checks"] if "histogram" in check]
        if charts:
            parts.append(f'<h3>Distribution of |error|</h3><div class="charts">{"".join(charts)}</div>')
        parts.append(_worst_rows(output, document))
    else:
        parts.append(_flips(output, document))
    parts.append("</section>")
    return "".join(parts)


def _checks_table(output: dict[str, Any]) -> str:
    if output["kind"] == "labels":
        head = "<tr><th>inputs</th><th>status</th><th>rows</th><th>agreement</th><th>flips</th><th>near-tie</th><th>wide margin</th></tr>"
        rows = [
            f"<tr><td>{esc(c['inputs'])}</td><td>{_status(c)}</td>"
            + (
                f'<td colspan="5">{esc(c["error"])}</td></tr>'
                if "error" in c
                else f'<td class="n">{fig(c["n_rows"])}</td><td class="n">{fig(c["agreement"], "percent")}</td>'
                f'<td class="n">{fig(c["flipped"])}</td><td class="n">{fig(c["near_tie_flips"])}</td><td class="n">{fig(c["unexpected_flips"])}</td></tr>'
            )
            for c in output["checks"]
        ]
    else:
        head = (
            "<tr><th>inputs</th><th>status</th><th>max |error| (row, col)</th><th>max rel</th><th>p99 |error|</th>"
            "<th>max ulp</th><th>mismatches</th><th>atol / rtol used</th><th>smallest passing atol</th></tr>"
        )
        rows = [f"<tr><td>{esc(c['inputs'])}</td><td>{_status(c)}</td>{_value_cells(c)}</tr>" for c in output["checks"]]
    return f'<div class="wrap"><table class="checks">{head}{"".join(rows)}</table></div>'


def _status(check: dict[str, Any]) -> str:
    return f'<span class="badge {"pass" if check["passed"] else "fail"}">{"PASSED" if check["passed"] else "FAILED"}</span>'


def _value_cells(check: dict[str, Any]) -> str:
    if "error" in check:
        return f'<td colspan="7">{esc(check["error"])}</td>'
    worst, tolerance = check["max_abs_error"], check["tolerance"]
    return (
        f'<td class="n">{fig(worst["value"])} ({fig(worst["row"])}, {fig(worst["column"])})</td>'
        f'<td class="n">{fig(check["max_rel_error"]["value"])}</td><td class="n">{fig(check["p99_abs_error"])}</td>'
        f'<td class="n">{fig(check["max_ulp"])}</td><td class="n">{fig(check["mismatches"])} ({fig(check["mismatch_fraction"], "percent")})</td>'
        f'<td class="n">{fig(tolerance["atol"])} / {fig(tolerance["rtol"])} <span class="muted">{esc(tolerance["source"])}</span></td>'
        f'<td class="n">{fig(check["min_passing_atol"])}</td>'
    )


def _histogram_figure(check: dict[str, Any]) -> str:
    from .charts import histogram_svg

    histogram = check["histogram"]
    caption = (
        f"{esc(check['inputs'])} rows: elements by absolute error (log scale); besides these, {fig(histogram['exact'])} "
        f"exact and {fig(histogram['nonfinite'])} non-finite. Dashed: the atol used."
    )
    return f"<figure>{histogram_svg(histogram, check['tolerance']['atol'])}<figcaption>{caption}</figcaption></figure>"


def _row_values(row: dict[str, Any], n_features: int) -> str:
    values = row.get("x")
    if values is None:
        return "–"
    more = f" … ({fig(n_features)} features)" if len(values) < n_features else ""
    return "[" + ", ".join(fig(v) for v in values) + "]" + more


def _worst_rows(output: dict[str, Any], document: dict[str, Any]) -> str:
    n_features = document["inputs"]["n_features"]
    rows = []
    for check in output["checks"]:
        for sample in check.get("worst_samples", [])[:ROWS_SHOWN]:
            if "x" not in sample:
                continue  # batch-1 rows repeat the main set's
            rows.append(
                f"<tr><td>{esc(check['inputs'])}</td><td class=\"n\">{fig(sample['row'])}</td><td class=\"n\">{fig(sample['column'])}</td>"
                f"<td class=\"n\">{fig(sample['reference'])}</td><td class=\"n\">{fig(sample['candidate'])}</td>"
                f"<td class=\"n\">{fig(sample['abs_error'])}</td><td class=\"x\">{_row_values(sample, n_features)}</td></tr>"
            )
    if not rows:
        return ""
    head = "<tr><th>inputs</th><th>row</th><th>col</th><th>reference</th><th>candidate</th><th>|error|</th><th>input row</th></tr>"
    return f'<h3>Worst rows</h3><div class="wrap"><table class="worst">{head}{"".join(rows)}</table></div>'


def _flips(output: dict[str, Any], document: dict[str, Any]) -> str:
    n_features = document["inputs"]["n_features"]
    groups: dict[bool, list[str]] = {False: [], True: []}
    for check in output["checks"]:
        for flip in check.get("flips", []):
            if "x" not in flip:
                continue
            column = "" if flip["column"] is None else f" (col {fig(flip['column'])})"
            groups[flip["near_tie"]].append(
                f"<tr><td>{esc(check['inputs'])}</td><td class=\"n\">{fig(flip['row'])}{column}</td><td>{short(flip['reference'], 32)}</td>"
                f"<td>{short(flip['candidate'], 32)}</td><td class=\"n\">{fig(flip['margin'])}</td><td class=\"x\">{_row_values(flip, n_features)}</td></tr>"
            )
    head = "<tr><th>inputs</th><th>row</th><th>reference</th><th>candidate</th><th>reference margin</th><th>input row</th></tr>"
    parts = ["<h3>Label flips</h3>"]
    for near_tie, title in ((False, "Wide margin (a conversion error)"), (True, "Near-tie (expected rounding)")):
        rows = groups[near_tie]
        body = f'<div class="wrap"><table class="flips">{head}{"".join(rows)}</table></div>' if rows else '<p class="muted">none</p>'
        parts.append(f'<h4 class="{"muted" if near_tie else "bad"}">{title}</h4>{body}')
    return "".join(parts)


# -- provenance ------------------------------------------------------------------


def _provenance(document: dict[str, Any]) -> str:
    from .provenance import provenance_section

    return provenance_section(document)
