"""A model's summary for ``nnconvert inspect``: as a dict (``--json``) and as text."""

from __future__ import annotations

from typing import Any

from .head import classes_dtype_name
from .ir import Model, layer_arrays, layer_names
from .quantization import parameter_bytes, precision_of, quantization_mode
from .serde import encode_metadata
from .source_dtype import source_dtype_status

__all__ = ["describe", "format_description"]


def describe(model: Model) -> dict[str, Any]:
    """Layers, shapes, activations, parameter count, task, classes, dtype (and the source model's) and provenance."""
    names = layer_names(model.layers)
    source_dtype = source_dtype_status(model)
    return {
        "task": model.task.value,
        "classes": None if model.classes is None else model.classes.tolist(),
        "classes_dtype": None if model.classes is None else classes_dtype_name(model.classes),
        "dtype": model.dtype.name,
        # the source model's dtype when the weights are not in it, and whether it can be restored
        "source_dtype": None
        if source_dtype is None
        else {"dtype": source_dtype.source.name, "restorable": source_dtype.restorable, "reason": source_dtype.reason},
        "n_features": model.n_features,
        "n_outputs": model.n_outputs,
        "n_parameters": model.n_parameters,
        "precision": precision_of(model),
        "quantization": quantization_mode(model),
        "parameter_bytes": parameter_bytes(model),
        "input": {"name": model.input.name, "feature_names": model.input.feature_names},
        "steps": [
            {"kind": step.kind, "name": step.name, "ops": [op.op for op in step.ops], "params": dict(step.params)}
            for step in model.steps
        ],
        "layers": [
            {
                "index": index,
                "name": name,
                "kind": layer.kind,
                "shape": list(shape),
                "activation": layer.activation.value,
                "activation_params": dict(layer.activation_params),
                "settings": {k: v for k, v in layer.settings().items() if k not in ("activation", "activation_params")},
                "n_parameters": int(sum(a.size for a in layer_arrays(layer).values() if a is not None)),
                "quantization": None
                if (layer_quantization := getattr(layer, "quantization", None)) is None
                else {
                    "mode": layer_quantization.mode,
                    "scale_range": [float(layer_quantization.scale.min()), float(layer_quantization.scale.max())],
                    "input_scale": layer_quantization.input_scale,
                    "input_zero_point": layer_quantization.input_zero_point,
                },
            }
            for index, (name, layer, shape) in enumerate(zip(names, model.layers, model.layer_shapes(), strict=True))
        ],
        "metadata": encode_metadata(model.metadata),
    }


def format_description(info: dict[str, Any]) -> str:
    """Readable text of :func:`describe`'s dict (plus ``file``/``format``/``file_size`` when present)."""
    lines = []
    if "file" in info:
        lines.append(f"file:        {info['file']} ({info['format']}, {_size(info['file_size'])})")
    meta = info["metadata"]
    source = " ".join(str(part) for part in (meta["source_framework"], meta["source_class"], meta["source_version"]) if part)
    lines.append(f"producer:    {meta['producer']}" + (f" (from {source})" if source else ""))
    lines.append(f"task:        {info['task']}")
    if info["classes"] is not None:
        lines.append(f"classes:     {info['classes']} ({info['classes_dtype']})")
    source_dtype = info.get("source_dtype")
    if source_dtype is None:
        lines.append(f"dtype:       {info['dtype']}")
    else:
        restorable = "restorable" if source_dtype["restorable"] else "not restored"
        lines.append(f"dtype:       {info['dtype']} (source model: {source_dtype['dtype']}, {restorable})")
        lines.append(f"             {source_dtype['reason']}")
    lines.append(f"input:       {info['input']['name']} [N, {info['n_features']}]")
    lines.append(f"parameters:  {info['n_parameters']:,} ({_size(info['parameter_bytes'])} of weights)")
    if "precision" in info:
        mode = f", {info['quantization']} quantization, per-channel int8 weights" if info.get("quantization") else ""
        lines.append(f"precision:   {info['precision']}{mode}")
    for step in info["steps"]:
        lines.append(f"  step   {step['kind']:<16} {step['name'] or ''} ({', '.join(step['ops'])})")
    width = max(len(layer["name"]) for layer in info["layers"])
    for layer in info["layers"]:
        params = "".join(f" {k}={v}" for k, v in {**layer.get("settings", {}), **layer["activation_params"]}.items())
        shape = f"{layer['shape'][0]} -> {layer['shape'][1]}"
        what = layer["activation"] if layer.get("kind", "dense") in ("dense", "activation") else layer["kind"]
        lines.append(
            f"  layer {layer['index']:>2} {layer['name']:<{width}}  {shape:<16} {what}{params}"
            f"  ({layer['n_parameters']:,} parameters)"
        )
    return "\n".join(lines)


def _size(n_bytes: int) -> str:
    size = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n_bytes} B"  # pragma: no cover
