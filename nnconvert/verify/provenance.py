"""The provenance part of the HTML report: files, producers, versions, data, warnings."""

from __future__ import annotations

from typing import Any

from .markup import esc, fig, short

__all__ = ["provenance_section"]


def provenance_section(document: dict[str, Any]) -> str:
    """Both files (size, sha256), their producers, the inputs, the library versions, warnings."""
    parts = ['<section id="provenance"><h2>Provenance</h2>', _sides_table(document), _data_table(document), _versions(document)]
    if document["cross_checks"]:
        parts.append("<h3>Reference evaluator</h3><ul>")
        parts.extend(f"<li>{esc(c['side'])}: {esc(c['diagnosis'])}</li>" for c in document["cross_checks"])
        parts.append("</ul>")
    if document["warnings"]:
        parts.append('<h3>Warnings</h3><ul class="warn">')
        parts.extend(f"<li>{esc(w)}</li>" for w in document["warnings"])
        parts.append("</ul>")
    parts.append(f'<p class="muted">Report created {esc(document["created"])}, format version {esc(document.get("format_version", document["version"]))}.</p></section>')
    return "".join(parts)


def _producer(model: dict[str, Any] | None) -> str:
    if not model:
        return "–"
    meta = model.get("metadata") or {}
    source = " ".join(str(meta[k]) for k in ("source_framework", "source_class", "source_version") if meta.get(k))
    written = " ".join(str(meta[k]) for k in ("producer_name", "producer_version") if meta.get(k))
    text = esc(meta.get("producer") or "unknown")
    if source:
        text += f" (from {esc(source)})"
    if written:
        text += f"; file says {esc(written)}"
    return text


def _sides_table(document: dict[str, Any]) -> str:
    rows = []
    for key in ("reference", "candidate"):
        side = document[key]
        file = side.get("file")
        if file is None:
            where, size, digest = f"in memory: {esc(side['description'])}", "–", "–"
        else:
            where = f"<code>{esc(file['path'])}</code>"
            size = "–" if file["size"] is None else f"{fig(file['size'])} bytes"
            digest = "–" if file["sha256"] is None else f'<span class="x">{esc(file["sha256"])}</span>'
        rows.append(
            f"<tr><th>{key}</th><td>{where}</td><td>{esc(side['kind'])}, {esc(side.get('dtype') or '–')}</td>"
            f'<td class="n">{size}</td><td>{digest}</td><td>{_producer(side.get("model"))}</td></tr>'
        )
    head = "<tr><th></th><th>file</th><th>run as</th><th>size</th><th>sha256</th><th>producer</th></tr>"
    return f'<h3>Models</h3><div class="wrap"><table class="files">{head}{"".join(rows)}</table></div>'


def _data_table(document: dict[str, Any]) -> str:
    inputs = document["inputs"]
    rows = [
        ("rows", f"{fig(inputs['n_rows'])} {esc(inputs['source'])} rows × {fig(inputs['n_features'])} features ({esc(inputs['dtype'])})"),
        ("seed", fig(document["seed"])),
        ("sha256", "not computed" if inputs.get("sha256") is None else f'<span class="x">{esc(inputs["sha256"])}</span>'),
    ]
    if inputs.get("range"):
        rows.append(("range", esc(inputs["range"]["source"])))
    if inputs.get("edge_rows"):
        kinds = ", ".join(f"{esc(kind)} {fig(count)}" for kind, count in inputs["edge_kinds"].items())
        rows.append(("edge rows", f"{fig(inputs['edge_rows'])}: {kinds}"))
        if inputs.get("edge_sha256"):
            rows.append(("edge sha256", f'<span class="x">{esc(inputs["edge_sha256"])}</span>'))
    if document["layers"].get("note"):
        rows.append(("per layer", short(document["layers"]["note"], 400)))
    body = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in rows)
    return f'<h3>Inputs</h3><div class="wrap"><table class="data">{body}</table></div>'


def _versions(document: dict[str, Any]) -> str:
    cells = "".join(
        f"<tr><th>{esc(name)}</th><td>{esc(version) if version else 'not installed'}</td></tr>" for name, version in document["versions"].items()
    )
    return f'<h3>Versions</h3><div class="wrap"><table class="versions">{cells}</table></div>'
