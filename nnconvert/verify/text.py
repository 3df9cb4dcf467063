"""Console summary and markdown table of a report document."""

from __future__ import annotations

from typing import Any

__all__ = ["summary_text", "markdown_text", "metric_lines", "METRIC_NAMES"]

METRIC_NAMES = {"accuracy": "accuracy", "mse": "MSE", "rmse": "RMSE", "mae": "MAE", "r2": "R²"}

_COLUMNS = ("output", "inputs", "status", "max abs err (row, col)", "max rel err", "p99 abs", "max ulp", "mismatches", "atol / rtol")


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:.3g}" if value else "0"


def _row(output: dict[str, Any], check: dict[str, Any]) -> list[str]:
    status = "PASSED" if check["passed"] else "FAILED"
    if "error" in check:
        return [output["name"], check["inputs"], status, check["error"], "", "", "", "", ""]
    if output["kind"] == "labels":
        flips = f"{check['flipped']} flipped ({check['near_tie_flips']} near-tie, {check['unexpected_flips']} wide-margin)"
        return [output["name"], check["inputs"], status, f"agreement {check['agreement']:.2%}", "", "", "", flips, ""]
    worst = check["max_abs_error"]
    tolerance = check["tolerance"]
    return [
        output["name"],
        check["inputs"],
        status,
        f"{_num(worst['value'])} ({worst['row']}, {worst['column']})",
        _num(check["max_rel_error"]["value"]),
        _num(check["p99_abs_error"]),
        _num(check["max_ulp"]),
        f"{check['mismatches']} ({check['mismatch_fraction']:.2%})",
        f"{_num(tolerance['atol'])} / {_num(tolerance['rtol'])}",
    ]


def _rows(document: dict[str, Any]) -> list[list[str]]:
    return [_row(output, check) for output in document["outputs"] for check in output["checks"]]


def _side(info: dict[str, Any]) -> str:
    dtype = f" ({info['dtype']})" if info.get("dtype") else ""
    return f"{info['kind']}: {info['description']}{dtype}"


def _inputs_line(inputs: dict[str, Any], seed: int) -> str:
    text = f"{inputs['n_rows']} {inputs['source']} rows x {inputs['n_features']} features"
    if inputs.get("edge_rows"):
        text += f" + {inputs['edge_rows']} edge rows"
    digest = "not computed" if inputs.get("sha256") is None else inputs["sha256"][:16]
    return f"{text}, seed {seed}, sha256 {digest}"


def summary_text(document: dict[str, Any]) -> str:
    """The console summary."""
    lines = [
        f"nnconvert verify: {'PASSED' if document['passed'] else 'FAILED'}",
        f"  reference: {_side(document['reference'])}",
        f"  candidate: {_side(document['candidate'])}",
        f"  inputs:    {_inputs_line(document['inputs'], document['seed'])}",
        f"  compared in {document['comparison_dtype']}",
        "",
    ]
    for output in document["outputs"]:
        lines.append(f"  {output['name']}: {'PASSED' if output['passed'] else 'FAILED'}")
    lines.append("")
    lines.extend("  " + line for line in _table(_rows(document)))
    lines.extend(_worst_lines(document))
    lines.extend(metric_lines(document.get("metric")))
    lines.extend(_layer_lines(document["layers"]))
    for cross in document["cross_checks"]:
        lines.append(f"  reference evaluator ({cross['side']}): {cross['diagnosis']}")
    if document["warnings"]:
        lines.append("  warnings:")
        lines.extend(f"    - {warning}" for warning in document["warnings"])
    return "\n".join(lines)


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [list(_COLUMNS), *rows]) for i in range(len(_COLUMNS))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*_COLUMNS).rstrip(), *(fmt.format(*r).rstrip() for r in rows)]


def _worst_lines(document: dict[str, Any]) -> list[str]:
    lines = []
    for output in document["outputs"]:
        for check in output["checks"]:
            if output["kind"] == "labels":
                flips = [f for f in check.get("flips", []) if not f["near_tie"]][:3]
                for flip in flips:
                    lines.append(
                        f"    {output['name']} [{check['inputs']}] row {flip['row']}: reference {flip['reference']!r}, "
                        f"candidate {flip['candidate']!r}, reference margin {_num(flip['margin'])}"
                    )
            elif not check["passed"] and "worst_samples" in check:
                for sample in check["worst_samples"][:3]:
                    lines.append(
                        f"    {output['name']} [{check['inputs']}] row {sample['row']} col {sample['column']}: reference "
                        f"{sample['reference']:.9g}, candidate {sample['candidate']:.9g}, |error| {sample['abs_error']:.3g}"
                    )
    return ["", "  worst samples:", *lines] if lines else []


def metric_lines(metric: dict[str, Any] | None, markdown: bool = False) -> list[str]:
    """The task metric against the ground truth: both models and the difference (informational)."""
    if metric is None:
        return []
    title = f"task metric against {metric['labels']} ({metric['n_rows']} rows; informational, parity decides the verdict)"
    names = [n for n in METRIC_NAMES if n in metric["reference"]]
    if markdown:
        head = "| | " + " | ".join(METRIC_NAMES[n] for n in names) + " |"
        rows = [f"| {side} | " + " | ".join(_metric_value(metric[side][n], n, side) for n in names) + " |" for side in ("reference", "candidate", "difference")]
        return [f"**{title}**", "", head, "|---|" + "---|" * len(names), *rows, ""]
    lines = ["", f"  {title}:"]
    for side in ("reference", "candidate", "difference"):
        cells = ", ".join(f"{METRIC_NAMES[n]} {_metric_value(metric[side][n], n, side)}" for n in names)
        count = metric[side].get("correct")
        lines.append(f"    {side + ':':<12}{cells}" + ("" if count is None else f" ({count:+d} rows)" if side == "difference" else f" ({count} rows)"))
    return lines


def _metric_value(value: float, name: str, side: str) -> str:
    if name == "accuracy":
        return f"{value:+.4%}" if side == "difference" else f"{value:.4%}"
    return f"{value:+.6g}" if side == "difference" else f"{value:.6g}"


def _layer_lines(layers: dict[str, Any]) -> list[str]:
    if not layers.get("compared"):
        return [f"  per layer: not compared ({layers.get('note')})"]
    failing = layers.get("first_failing")
    rows = [f"    ({layers['note']})"] if layers.get("note") else []
    if failing is None:
        return [f"  per layer: all {len(layers['entries']) - 1} layers and the preprocessed input within tolerance", *rows]
    where = "the preprocessed input" if failing["index"] < 0 else f"layer {failing['index']} ({failing['name']!r})"
    detail = failing.get("error") or (
        f"max abs error {_num(failing['max_abs_error']['value'])} at row {failing['max_abs_error']['row']}, "
        f"column {failing['max_abs_error']['column']}"
    )
    return [f"  per layer: first out of tolerance: {where}: {detail}", *rows]


def markdown_text(document: dict[str, Any]) -> str:
    """A markdown report: headline, sides, a table of every check, layers, warnings."""
    mark = "✅ PASSED" if document["passed"] else "❌ FAILED"
    lines = [
        f"### nnconvert verify: {mark}",
        "",
        f"- reference: `{_side(document['reference'])}`",
        f"- candidate: `{_side(document['candidate'])}`",
        f"- inputs: {_inputs_line(document['inputs'], document['seed'])}; compared in {document['comparison_dtype']}",
        "",
        "| " + " | ".join(_COLUMNS) + " |",
        "|" + "---|" * len(_COLUMNS),
    ]
    lines.extend("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in _rows(document))
    lines.append("")
    lines.extend(metric_lines(document.get("metric"), markdown=True))
    lines.extend(line.strip() for line in _layer_lines(document["layers"]))
    lines.extend(f"- ⚠️ {warning}" for warning in document["warnings"])
    return "\n".join(lines) + "\n"
