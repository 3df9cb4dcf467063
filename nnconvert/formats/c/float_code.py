"""The floating-point program (float or double) and the metadata every program carries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ... import __version__
from ...ir import Activation, ActivationLayer, DenseLayer, Model, layer_names
from .bounds import float_error_bound, sample_rows
from .entry import EntrySpec, entry_code, entry_declarations
from .header import Program, layers_text
from .layers import MATH_ACTIVATIONS, activation_function, activation_key, dense_function
from .norm_code import norm_function, norm_tables
from .options import COptions
from .preprocess import preprocess_function, preprocess_tables
from .tables import C_TYPES, Table, c_literal, label_tables

__all__ = ["float_program", "base_metadata", "base_defines", "classes_json", "buffer_plan", "layer_widths", "layers_metadata", "Stage"]


def classes_json(model: Model) -> tuple[list[Any] | None, str | None]:
    """Class labels as JSON values, and their dtype name (as ``describe`` spells it)."""
    if model.classes is None:
        return None, None
    kind = model.classes.dtype.kind
    dtype = "str" if kind == "U" else model.classes.dtype.name
    return model.classes.tolist(), dtype


def layer_widths(model: Model) -> list[tuple[int, int]]:
    """(inputs, outputs) of every layer; only dense layers change the width."""
    widths, width = [], model.n_features
    for layer in model.layers:
        out = layer.n_outputs if isinstance(layer, DenseLayer) else width
        widths.append((width, out))
        width = out
    return widths


@dataclass(frozen=True)
class Stage:
    """One call of the forward function: layer ``index`` reading ``source`` and writing ``target``.

    Layers other than dense work in place (``source == target``); ``index`` None is a copy of the
    input into a buffer, for a model whose first layer works in place and has no preprocessing.
    """

    index: int | None
    source: str
    target: str
    width: int


def buffer_plan(model: Model) -> tuple[list[int], list[Stage]]:
    """Sizes of the ping-pong buffers ``buffer_a``/``buffer_b`` and the stages of the forward pass.

    Dense layers alternate between the two buffers, the last one writes ``out``; every other
    layer computes in place where the previous stage wrote (the input is copied first if needed).
    """
    last_dense = max(i for i, layer in enumerate(model.layers) if isinstance(layer, DenseLayer))  # a model has one
    where = "buffer_a" if model.steps else "x"
    sizes = {"buffer_a": model.n_features if model.steps else 0, "buffer_b": 0}
    stages = []
    for index, (layer, (_, n_out)) in enumerate(zip(model.layers, layer_widths(model), strict=True)):
        if isinstance(layer, DenseLayer):
            target = "out" if index == last_dense else ("buffer_b" if where == "buffer_a" else "buffer_a")
            if target != "out":
                sizes[target] = max(sizes[target], n_out)
            stages.append(Stage(index, where, target, n_out))
            where = target
            continue
        if where == "x":  # the const input, before the first dense layer: copy it where the layer can work in place
            sizes["buffer_a"] = max(sizes["buffer_a"], n_out)
            stages.append(Stage(None, "x", "buffer_a", n_out))
            where = "buffer_a"
        stages.append(Stage(index, where, where, n_out))
    return [sizes["buffer_a"], sizes["buffer_b"]], stages


def base_defines(model: Model, options: COptions) -> list[tuple[str, str, str]]:
    P = options.prefix.upper()
    defines = [
        (f"{P}_N_FEATURES", str(model.n_features), "input values per row"),
        (f"{P}_N_OUTPUTS", str(model.n_outputs), "values forward() writes"),
    ]
    if model.head.is_classifier and model.classes is not None:
        defines.append((f"{P}_N_CLASSES", str(len(model.classes)), "entries of the class-label tables"))
    defines.append((f"{P}_PRECISION", f'"{options.precision}"', ""))
    return defines


def base_metadata(
    model: Model, options: COptions, program: Program, ram_bytes: int, error: dict[str, Any], types: tuple[str, str]
) -> dict[str, Any]:
    classes, classes_dtype = classes_json(model)
    meta = model.metadata
    return {
        "producer": f"nnconvert {__version__}",
        "prefix": options.prefix,
        "header": program.header_name,
        "precision": options.precision,
        "c_types": {"input": types[0], "output": types[1]},
        "task": model.task.value,
        "classes": classes,
        "classes_dtype": classes_dtype,
        "n_features": model.n_features,
        "n_outputs": model.n_outputs,
        "output_activation": model.output_activation.value,
        "steps": [{"kind": step.kind, "ops": [op.op for op in step.ops]} for step in model.steps],
        "layers": layers_metadata(model),
        "source": {"framework": meta.source_framework, "class": meta.source_class, "version": meta.source_version},
        "sizes": {"weights_bytes": program.weights_bytes, "ram_bytes": ram_bytes},
        "error_bound": error,
    }


def layers_metadata(model: Model) -> list[dict[str, Any]]:
    """Name, kind, (inputs, outputs) and activation of every layer, for the metadata block."""
    return [
        {"name": name, "kind": layer.kind, "shape": list(shape), "activation": layer.activation.value,
         "activation_params": dict(layer.activation_params)}
        for name, layer, shape in zip(layer_names(model.layers), model.layers, layer_widths(model), strict=True)
    ]


def _weight_tables(model: Model, prefix: str, precision: str) -> list[Table]:
    ctype = C_TYPES[precision]
    tables = preprocess_tables(model, prefix, ctype)
    for index, (name, layer) in enumerate(zip(layer_names(model.layers), model.layers, strict=True)):
        if not isinstance(layer, DenseLayer):
            if not isinstance(layer, ActivationLayer):
                tables += norm_tables(layer, f"{prefix}_layer{index}", ctype, f"layer {index} ({name})")
            continue
        shape = f"{layer.n_inputs} -> {layer.n_outputs}"
        # stored [n_out][n_in]: each output's weights are contiguous for the dot product
        weights = np.ascontiguousarray(layer.weights.T).astype(ctype.dtype)
        tables.append(Table(f"{prefix}_layer{index}_weights", ctype, weights, f"layer {index} ({name}, {shape}) weights, [out][in]"))
        tables.append(Table(f"{prefix}_layer{index}_bias", ctype, layer.bias.astype(ctype.dtype), f"layer {index} bias"))
    return tables


def _forward_function(model: Model, prefix: str, t: str, layer_calls: list[list[str]]) -> str:
    sizes, stages = buffer_plan(model)
    lines = [f"void {prefix}_forward(const {t} *x, {t} *out)", "{"]
    for buffer, size in zip(("buffer_a", "buffer_b"), sizes, strict=True):
        if size:
            lines.append(f"    {t} {buffer}[{size}];")
    if any(stage.index is None for stage in stages):
        lines.append("    int i;")
    if model.steps:
        lines.append(f"    {prefix}_preprocess(x, buffer_a);")
    for stage in stages:
        if stage.index is None:
            lines.append(f"    for (i = 0; i < {stage.width}; ++i) {stage.target}[i] = x[i];")
            continue
        layer = model.layers[stage.index]
        if isinstance(layer, DenseLayer):
            lines.append(
                f"    {prefix}_dense(&{prefix}_layer{stage.index}_weights[0][0], {prefix}_layer{stage.index}_bias, "
                f"{stage.source}, {stage.target}, {layer.n_inputs}, {layer.n_outputs});"
            )
        lines += [f"    {call.format(v=stage.target)};" for call in layer_calls[stage.index]]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _layer_functions(model: Model, prefix: str, precision: str) -> tuple[list[str], list[list[str]]]:
    """The functions of every layer but the dense product, and per layer the functions it calls in order.

    Activations are ``f(v, n)`` shared by every layer with the same activation and parameters;
    normalization and PReLU layers are one ``<p>_layer<k>(v)`` each. Calls are templates of ``{v}``.
    """
    ctype = C_TYPES[precision]
    by_key: dict[Any, str] = {}
    functions: list[str] = []
    calls: list[list[str]] = []
    for index, (layer, (_, width)) in enumerate(zip(model.layers, layer_widths(model), strict=True)):
        if not isinstance(layer, (DenseLayer, ActivationLayer)):
            name = f"{prefix}_layer{index}"
            functions.append(norm_function(layer, name, name, width, ctype))
            calls.append([name + "({v})"])
            continue
        if layer.activation == Activation.IDENTITY:
            calls.append([])
            continue
        key = activation_key(layer.activation, layer.activation_params)
        if key not in by_key:
            by_key[key] = f"{prefix}_{layer.activation.value}{len(by_key)}"
            functions.append(activation_function(by_key[key], layer.activation, layer.activation_params, ctype))
        calls.append([f"{by_key[key]}({{v}}, {width})"])
    return functions, calls


def float_program(model: Model, options: COptions, header_name: str) -> Program:
    """The float/double program of ``model``."""
    prefix, precision = options.prefix, options.precision
    ctype = C_TYPES[precision]
    tables = _weight_tables(model, prefix, precision)
    layer_functions, layer_calls = _layer_functions(model, prefix, precision)
    functions = [dense_function(prefix, ctype)] if model.dense_layers else []
    functions += layer_functions
    if model.steps:
        functions.append(preprocess_function(model, prefix, ctype))
    functions.append(_forward_function(model, prefix, ctype.name, layer_calls))
    log_probabilities = model.output_activation == Activation.LOG_SOFTMAX and model.head.is_classifier
    spec = EntrySpec(prefix, ctype.name, ctype.name, model, f"{prefix}_forward", False,
                     c_literal(0.5, ctype), c_literal(1.0, ctype), c_literal(0.0, ctype),
                     "exp" + ("f" if ctype.name == "float" else "") if log_probabilities else "")  # fmt: skip
    functions.append(entry_code(spec))
    public_data, label_decl = label_tables(prefix, model.classes) if model.classes is not None else ("", "")
    sizes, _ = buffer_plan(model)
    ram = (sum(sizes) + (model.n_outputs if model.head.is_classifier else 0)) * ctype.size
    rows, source = sample_rows(model, None)
    bound = float_error_bound(model, precision, rows)
    error = {"max_abs": bound, "how": f"first-order rounding bound on {len(rows)} rows sampled in {source}"}
    uses_math = any(layer.activation in MATH_ACTIVATIONS or layer.kind == "layer_norm" for layer in model.layers)
    program = Program(
        prefix=prefix,
        header_name=header_name,
        includes=["<math.h>"] if uses_math else [],
        header_includes=[],
        tables=tables,
        functions=functions,
        public_data=public_data,
        declarations=label_decl + ("\n" if label_decl else "") + entry_declarations(spec),
        defines=base_defines(model, options),
        notes=[],
    )
    program.metadata = base_metadata(model, options, program, ram, error, (ctype.name, ctype.name))
    program.notes = header_notes(program.metadata, ctype.name, ctype.name)
    return program


def header_notes(metadata: dict[str, Any], in_type: str, out_type: str) -> list[str]:
    """The opening comment of the header: what the model is, its precision, bound and sizes."""
    sizes, error = metadata["sizes"], metadata["error_bound"]
    layers = layers_text(metadata)
    return [
        f"{metadata['prefix']}: {metadata['task']} MLP generated by {metadata['producer']}. Do not edit.",
        f"layers: {layers}",
        f"precision: {metadata['precision']} (inputs {in_type}, outputs {out_type})",
        f"expected max abs error of the outputs vs the float64 model: {error['max_abs']:.3g}",
        f"  ({error['how']})",
        f"flash for weights: {sizes['weights_bytes']} bytes; RAM (stack) for activations: {sizes['ram_bytes']} bytes",
        "Every function is reentrant: no globals are written, nothing is allocated.",
    ]
