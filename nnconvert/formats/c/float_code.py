"""The floating-point program (float or double) and the metadata every program carries."""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import __version__
from ...ir import Activation, Model, layer_names
from .bounds import float_error_bound, sample_rows
from .entry import EntrySpec, entry_code, entry_declarations
from .header import Program
from .layers import MATH_ACTIVATIONS, activation_function, activation_key, dense_function
from .options import COptions
from .preprocess import preprocess_function, preprocess_tables
from .tables import C_TYPES, Table, c_literal, label_tables

__all__ = ["float_program", "base_metadata", "base_defines", "classes_json", "buffer_plan"]


def classes_json(model: Model) -> tuple[list[Any] | None, str | None]:
    """Class labels as JSON values, and their dtype name (as ``describe`` spells it)."""
    if model.classes is None:
        return None, None
    kind = model.classes.dtype.kind
    dtype = "str" if kind == "U" else model.classes.dtype.name
    return model.classes.tolist(), dtype


def buffer_plan(model: Model) -> tuple[list[int], list[str]]:
    """Sizes of the ping-pong buffers and which buffer (or x / out) each stage reads and writes.

    Returns ``(sizes of buffer_a and buffer_b, names)`` where ``names[0]`` is where the
    preprocessed input lives and ``names[k + 1]`` is layer k's output.
    """
    names = ["buffer_a" if model.steps else "x"]
    sizes = {"buffer_a": model.n_features if model.steps else 0, "buffer_b": 0}
    for index, layer in enumerate(model.dense_layers):
        if index == len(model.dense_layers) - 1:
            names.append("out")
            break
        target = "buffer_b" if names[-1] == "buffer_a" else "buffer_a"
        sizes[target] = max(sizes[target], layer.n_outputs)
        names.append(target)
    return [sizes["buffer_a"], sizes["buffer_b"]], names


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
        "layers": [
            {"name": name, "shape": [layer.n_inputs, layer.n_outputs], "activation": layer.activation.value}
            for name, layer in zip(layer_names(model.dense_layers), model.dense_layers, strict=True)
        ],
        "source": {"framework": meta.source_framework, "class": meta.source_class, "version": meta.source_version},
        "sizes": {"weights_bytes": program.weights_bytes, "ram_bytes": ram_bytes},
        "error_bound": error,
    }


def _weight_tables(model: Model, prefix: str, precision: str) -> list[Table]:
    ctype = C_TYPES[precision]
    tables = preprocess_tables(model, prefix, ctype)
    for index, (name, layer) in enumerate(zip(layer_names(model.dense_layers), model.dense_layers, strict=True)):
        shape = f"{layer.n_inputs} -> {layer.n_outputs}"
        # stored [n_out][n_in]: each output's weights are contiguous for the dot product
        weights = np.ascontiguousarray(layer.weights.T).astype(ctype.dtype)
        tables.append(Table(f"{prefix}_layer{index}_weights", ctype, weights, f"layer {index} ({name}, {shape}) weights, [out][in]"))
        tables.append(Table(f"{prefix}_layer{index}_bias", ctype, layer.bias.astype(ctype.dtype), f"layer {index} bias"))
    return tables


def _forward_function(model: Model, prefix: str, t: str, act_names: list[str | None]) -> str:
    sizes, names = buffer_plan(model)
    lines = [f"void {prefix}_forward(const {t} *x, {t} *out)", "{"]
    for buffer, size in zip(("buffer_a", "buffer_b"), sizes, strict=True):
        if size:
            lines.append(f"    {t} {buffer}[{size}];")
    if model.steps:
        lines.append(f"    {prefix}_preprocess(x, buffer_a);")
    for index, layer in enumerate(model.dense_layers):
        source, target = names[index], names[index + 1]
        lines.append(
            f"    {prefix}_dense(&{prefix}_layer{index}_weights[0][0], {prefix}_layer{index}_bias, "
            f"{source}, {target}, {layer.n_inputs}, {layer.n_outputs});"
        )
        if act_names[index] is not None:
            lines.append(f"    {act_names[index]}({target}, {layer.n_outputs});")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _activation_functions(model: Model, prefix: str, precision: str) -> tuple[list[str], list[str | None]]:
    ctype = C_TYPES[precision]
    by_key: dict[Any, str] = {}
    functions: list[str] = []
    names: list[str | None] = []
    for layer in model.dense_layers:
        if layer.activation == Activation.IDENTITY:
            names.append(None)
            continue
        key = activation_key(layer.activation, layer.activation_params)
        if key not in by_key:
            by_key[key] = f"{prefix}_{layer.activation.value}{len(by_key)}"
            functions.append(activation_function(by_key[key], layer.activation, layer.activation_params, ctype))
        names.append(by_key[key])
    return functions, names


def float_program(model: Model, options: COptions, header_name: str) -> Program:
    """The float/double program of ``model``."""
    prefix, precision = options.prefix, options.precision
    ctype = C_TYPES[precision]
    tables = _weight_tables(model, prefix, precision)
    act_functions, act_names = _activation_functions(model, prefix, precision)
    functions = [dense_function(prefix, ctype), *act_functions]
    if model.steps:
        functions.append(preprocess_function(model, prefix, ctype))
    functions.append(_forward_function(model, prefix, ctype.name, act_names))
    spec = EntrySpec(prefix, ctype.name, ctype.name, model, f"{prefix}_forward", False,
                     c_literal(0.5, ctype), c_literal(1.0, ctype), c_literal(0.0, ctype))  # fmt: skip
    functions.append(entry_code(spec))
    public_data, label_decl = label_tables(prefix, model.classes) if model.classes is not None else ("", "")
    sizes, _ = buffer_plan(model)
    ram = (sum(sizes) + (model.n_outputs if model.head.is_classifier else 0)) * ctype.size
    rows, source = sample_rows(model, None)
    bound = float_error_bound(model, precision, rows)
    error = {"max_abs": bound, "how": f"first-order rounding bound on {len(rows)} rows sampled in {source}"}
    uses_math = any(layer.activation in MATH_ACTIVATIONS for layer in model.dense_layers)
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
    layers = " -> ".join([str(metadata["n_features"])] + [f"{layer['shape'][1]} {layer['activation']}" for layer in metadata["layers"]])
    return [
        f"{metadata['prefix']}: {metadata['task']} MLP generated by {metadata['producer']}. Do not edit.",
        f"layers: {layers}",
        f"precision: {metadata['precision']} (inputs {in_type}, outputs {out_type})",
        f"expected max abs error of the outputs vs the float64 model: {error['max_abs']:.3g}",
        f"  ({error['how']})",
        f"flash for weights: {sizes['weights_bytes']} bytes; RAM (stack) for activations: {sizes['ram_bytes']} bytes",
        "Every function is reentrant: no globals are written, nothing is allocated.",
    ]
