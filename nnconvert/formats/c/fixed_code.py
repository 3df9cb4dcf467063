"""C code of the integer precisions (int16, int8): no floating point, no library.

The program mirrors :mod:`.fixed`'s emulation operation for operation. It
assumes an arithmetic right shift of negative integers (every mainstream
compiler does it; a file-scope check refuses to compile where it does not).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...ir import Activation, Model, Task
from .bounds import sample_rows
from .entry import EntrySpec, entry_code, entry_declarations
from .fixed import (
    MONOTONE,
    SCHEMES,
    FixedLayer,
    FixedPlan,
    clip_constants,
    emulate,
    plan_fixed,
    prelu_slopes_q15,
    relu_constants,
)
from .fixed_fold import fixed_layers
from .float_code import base_defines, base_metadata, header_notes
from .header import Program
from .lut import EXP2_SEGMENT_BITS, EXP2_TABLE, EXP_FLOOR, EXP_FRAC, LOG2E_Q24, Lut
from .options import COptions
from .tables import C_TYPES, CType, Table, label_tables

__all__ = ["fixed_program"]

INT64 = CType("int64_t", 8, np.dtype(np.int64))
SHIFT = CType("int8_t", 1, np.dtype(np.int8))


def _helpers(p: str, act_t: str, act_bits: int) -> str:
    top = (1 << (act_bits - 1)) - 1
    return f"""/* right shifts of negative values must be arithmetic (this line fails to compile otherwise) */
typedef char {p}_arithmetic_shift_check[((-1) >> 1) == -1 ? 1 : -1];

/* v * 2**-s, rounded to nearest (s > 0), or v * 2**-s exactly (s <= 0) */
static int64_t {p}_rescale(int64_t v, int s)
{{
    if (s > 0) return (v + ((int64_t)1 << (s - 1))) >> s;
    if (s < 0) return v * ((int64_t)1 << -s);
    return v;
}}

static int32_t {p}_sat32(int64_t v)
{{
    if (v > 2147483647) return 2147483647;
    if (v < -2147483647 - 1) return -2147483647 - 1;
    return (int32_t)v;
}}

static {act_t} {p}_narrow(int64_t v)
{{
    if (v > {top}) return {top};
    if (v < {-top - 1}) return {-top - 1};
    return ({act_t})v;
}}
"""


def _lut_support(p: str) -> str:
    return f"""typedef struct {{
    const int32_t *table;
    int64_t low;
    int segment_shift, n_segments, extra;
    int low_line, low_shift, high_line, high_shift;
    int32_t low_slope, high_slope;
}} {p}_lut_t;

/* linear interpolation in the table; outside its domain, the edge value or a line through 0 */
static int64_t {p}_lut(const {p}_lut_t *lut, int64_t z)
{{
    int64_t t = z - lut->low, base, step;
    long segment;
    if (t < 0) {{
        return lut->low_line ? {p}_rescale(z * lut->low_slope, lut->low_shift) : {p}_rescale(lut->table[0], lut->extra);
    }}
    if (t >= ((int64_t)lut->n_segments << lut->segment_shift)) {{
        return lut->high_line ? {p}_rescale(z * lut->high_slope, lut->high_shift)
                              : {p}_rescale(lut->table[lut->n_segments], lut->extra);
    }}
    segment = (long)(t >> lut->segment_shift);
    base = lut->table[segment];
    step = ((lut->table[segment + 1] - base) * (t & (((int64_t)1 << lut->segment_shift) - 1))) >> lut->segment_shift;
    return {p}_rescale(base + step, lut->extra);
}}
"""


def _exp_support(p: str) -> str:
    return f"""/* exp(d / 2^frac) for d <= 0, in Q24: 2^(integer part of d log2 e) is a shift, 2^(fraction) a table */
static int64_t {p}_exp_neg(int64_t d, int frac)
{{
    int64_t y, f, base, v;
    long segment;
    int k;
    d = {p}_rescale(d, frac - {EXP_FRAC});
    if (d < -((int64_t){-EXP_FLOOR} << {EXP_FRAC})) return 0;
    y = d * {LOG2E_Q24};
    k = (int)(y >> 48);
    f = y - (int64_t)k * ((int64_t)1 << 48);
    segment = (long)(f >> {48 - EXP2_SEGMENT_BITS});
    base = {p}_exp2_table[segment];
    v = base + (((int64_t)({p}_exp2_table[segment + 1] - base) * ((f & (((int64_t)1 << {48 - EXP2_SEGMENT_BITS}) - 1)) >> {18 - EXP2_SEGMENT_BITS})) >> 30);
    return {p}_rescale(v, {29 - EXP_FRAC} - k);
}}
"""


def _lut_definition(p: str, name: str, lut: Lut) -> str:
    def tail(spec: tuple[Any, ...]) -> tuple[int, int, int]:
        return (1, int(spec[2]), int(spec[1])) if spec[0] == "line" else (0, 0, 0)

    low_line, low_shift, low_slope = tail(lut.low_tail)
    high_line, high_shift, high_slope = tail(lut.high_tail)
    return (
        f"static const {p}_lut_t {name} = {{{name}_table, {lut.low_q}LL, {lut.segment_shift}, {lut.n_segments}, {lut.extra}, "
        f"{low_line}, {low_shift}, {high_line}, {high_shift}, {low_slope}, {high_slope}}};\n"
    )


def _activation(p: str, index: int, layer: FixedLayer, out_t: str) -> str:
    shift, n = layer.z_frac - layer.out_frac, len(layer.bias)
    narrow = f"{p}_sat32" if layer.last else f"{p}_narrow"
    act = layer.activation
    head = f"static void {p}_activation{index}(const int32_t *z, {out_t} *y)\n{{\n    int j;\n"
    if act == Activation.SOFTMAX:
        return head + f"""    int64_t e[{n}], total = 0;
    int32_t largest = z[0];
    for (j = 1; j < {n}; ++j) {{
        if (z[j] > largest) largest = z[j];
    }}
    for (j = 0; j < {n}; ++j) {{
        e[j] = {p}_exp_neg((int64_t)z[j] - largest, {layer.z_frac});
        total += e[j];
    }}
    for (j = 0; j < {n}; ++j) {{
        y[j] = {narrow}(((e[j] << {layer.out_frac}) + total / 2) / total);
    }}
}}
"""
    if act in (Activation.RELU, Activation.CLIP, Activation.PRELU, Activation.SOFTSIGN) and (act != Activation.RELU or layer.params):
        return head + activation_v11_loop(p, index, layer, narrow) + "}\n"
    if act == Activation.IDENTITY:
        body = f"{p}_rescale(z[j], {shift})"
    elif act == Activation.RELU:
        body = f"z[j] > 0 ? {p}_rescale(z[j], {shift}) : 0"
    elif act == Activation.LEAKY_RELU:
        alpha_q = int(round(layer.params["alpha"] * (1 << 15)))
        body = f"z[j] >= 0 ? {p}_rescale(z[j], {shift}) : {p}_rescale((int64_t)z[j] * {alpha_q}, {shift + 15})"
    elif act == Activation.HARD_SIGMOID:
        alpha_q = int(round(layer.params["alpha"] * (1 << 15)))
        beta_q = int(round(layer.params["beta"] * 2.0**layer.out_frac))
        one = 1 << layer.out_frac
        return head + f"""    for (j = 0; j < {n}; ++j) {{
        int64_t v = {p}_rescale((int64_t)z[j] * {alpha_q}, {shift + 15}) + {beta_q};
        y[j] = {narrow}(v < 0 ? 0 : (v > {one} ? {one} : v));
    }}
}}
"""
    else:
        body = f"{p}_lut(&{p}_lut{index}, z[j])"
    return head + f"    for (j = 0; j < {n}; ++j) {{\n        y[j] = {narrow}({body});\n    }}\n}}\n"


def activation_v11_loop(p: str, index: int, layer: FixedLayer, narrow: str) -> str:
    """The loop of relu with parameters, clip, prelu and softsign: :func:`.fixed._activation_v11` in C."""
    shift, n, act = layer.z_frac - layer.out_frac, len(layer.bias), layer.activation
    loop = f"    for (j = 0; j < {n}; ++j) {{\n"
    if act == Activation.RELU:
        threshold_q, max_q, slope_q = relu_constants(layer)
        lines = [f"int64_t v = z[j] > {threshold_q} ? (int64_t)z[j] : 0;"]
        if max_q is not None:
            lines.append(f"if (v > {max_q}LL) v = {max_q}LL;")
        if slope_q:
            lines += [f"int64_t negative_part = {threshold_q}LL - z[j];", "if (negative_part < 0) negative_part = 0;",
                      f"v = {p}_rescale(v * 32768 - negative_part * {slope_q}, {shift + 15});"]  # fmt: skip
        else:
            lines.append(f"v = {p}_rescale(v, {shift});")
        lines.append(f"y[j] = {narrow}(v);")
    elif act == Activation.CLIP:
        low, high = clip_constants(layer)
        lines = [f"int64_t v = {p}_rescale(z[j], {shift});"]
        lines += [f"if (v < {low}LL) v = {low}LL;"] if low is not None else []
        lines += [f"if (v > {high}LL) v = {high}LL;"] if high is not None else []
        lines.append(f"y[j] = {narrow}(v);")
    elif act == Activation.PRELU:
        lines = [f"y[j] = {narrow}(z[j] >= 0 ? {p}_rescale(z[j], {shift}) : {p}_rescale((int64_t)z[j] * {p}_layer{index}_slopes[j], {shift + 15}));"]
    else:  # softsign
        lines = ["int64_t magnitude = z[j] < 0 ? -(int64_t)z[j] : (int64_t)z[j];",
                 f"int64_t denominator = ((int64_t)1 << {layer.z_frac}) + magnitude;",
                 f"int64_t quotient = ((magnitude << {layer.out_frac}) + denominator / 2) / denominator;",
                 f"y[j] = {narrow}(z[j] < 0 ? -quotient : quotient);"]  # fmt: skip
    return loop + "".join(f"        {line}\n" for line in lines) + "    }\n"


def _preprocess(p: str, plan: FixedPlan, n: int, act_t: str) -> str:
    lines = [f"static void {p}_preprocess(const int32_t *x, {act_t} *out)", "{", "    int i;"]
    if not plan.segments:
        lines.append(f"    for (i = 0; i < {n}; ++i) out[i] = {p}_narrow({p}_rescale(x[i], {plan.input_frac - plan.layers[0].in_frac}));")
        return "\n".join(lines + ["}"]) + "\n"
    lines.append(f"    int64_t u[{n}];")
    lines.append(f"    for (i = 0; i < {n}; ++i) u[i] = x[i];")
    for s, segment in enumerate(plan.segments):
        t = f"{p}_segment{s}"
        lines.append(f"    for (i = 0; i < {n}; ++i) u[i] = {p}_rescale(u[i] * {t}_mul[i] + {t}_add[i], {t}_shift[i]);")
        if segment.clip is not None:
            low, high = segment.clip
            lines.append(f"    for (i = 0; i < {n}; ++i) {{ if (u[i] < {low}LL) u[i] = {low}LL; if (u[i] > {high}LL) u[i] = {high}LL; }}")
    lines.append(f"    for (i = 0; i < {n}; ++i) out[i] = {p}_narrow(u[i]);")
    return "\n".join(lines + ["}"]) + "\n"


def _dense(p: str, w_t: str, acc_t: str, act_t: str) -> str:
    return f"""static void {p}_dense(const {w_t} *weights, const {acc_t} *bias, const int8_t *shift, const {act_t} *x, int32_t *z, int n_in, int n_out)
{{
    int i, j;
    for (j = 0; j < n_out; ++j) {{
        const {w_t} *row = weights + (long)j * n_in;
        {acc_t} acc = bias[j];
        for (i = 0; i < n_in; ++i) {{
            acc += ({acc_t})row[i] * x[i];
        }}
        z[j] = {p}_sat32({p}_rescale(acc, shift[j]));
    }}
}}
"""


def _tables(p: str, plan: FixedPlan, model: Model) -> list[Table]:
    scheme = plan.scheme
    w_type = C_TYPES[scheme.name]
    acc_type = INT64 if scheme.accumulator == "int64_t" else C_TYPES["int32"]
    tables = []
    for s, segment in enumerate(plan.segments):
        tables.append(Table(f"{p}_segment{s}_mul", INT64, segment.mul, f"preprocessing {s}: multipliers"))
        tables.append(Table(f"{p}_segment{s}_add", INT64, segment.add, f"preprocessing {s}: offsets"))
        tables.append(Table(f"{p}_segment{s}_shift", SHIFT, segment.shift, f"preprocessing {s}: shifts"))
    for k, layer in enumerate(plan.layers):
        note = f"layer {k}: x in Q{layer.in_frac}, z in Q{layer.z_frac}"
        tables.append(Table(f"{p}_layer{k}_weights", w_type, layer.weights, f"{note}; weights [out][in], per-output scales"))
        tables.append(Table(f"{p}_layer{k}_bias", acc_type, layer.bias, f"layer {k} bias"))
        tables.append(Table(f"{p}_layer{k}_shift", SHIFT, layer.shift, f"layer {k}: accumulator -> z shifts"))
        if layer.activation == Activation.PRELU:
            tables.append(Table(f"{p}_layer{k}_slopes", C_TYPES["int32"], prelu_slopes_q15(layer), f"layer {k}: prelu slopes, Q15"))
        if layer.lut is not None:
            tables.append(Table(f"{p}_lut{k}_table", C_TYPES["int32"], layer.lut.table, f"layer {k}: {layer.activation.value} table"))
    if any(layer.activation == Activation.SOFTMAX for layer in plan.layers):
        tables.append(Table(f"{p}_exp2_table", C_TYPES["int32"], EXP2_TABLE, "2^(i/128) in Q29, for softmax's exp"))
    return tables


def _logits(p: str, plan: FixedPlan, model: Model, act_t: str) -> tuple[str, int]:
    """The function computing the last layer's pre-activations, and its RAM in bytes."""
    widths = [layer.n_outputs for layer in model.dense_layers]
    hidden = max(widths[:-1], default=0)
    first = max(model.n_features, hidden)
    act_size = C_TYPES[plan.scheme.name].size
    lines = [f"static void {p}_logits(const int32_t *x, int32_t *z)", "{", f"    {act_t} buffer_a[{first}];"]
    if len(model.dense_layers) > 1:
        lines += [f"    {act_t} buffer_b[{hidden}];", f"    int32_t pre[{hidden}];"]
    lines.append(f"    {p}_preprocess(x, buffer_a);")
    current, other = "buffer_a", "buffer_b"
    for k, layer in enumerate(model.dense_layers):
        target = "z" if k == len(model.dense_layers) - 1 else "pre"
        lines.append(f"    {p}_dense({p}_layer{k}_weights[0], {p}_layer{k}_bias, {p}_layer{k}_shift, {current}, {target}, "
                     f"{layer.n_inputs}, {layer.n_outputs});")  # fmt: skip
        if target == "pre":
            lines.append(f"    {p}_activation{k}(pre, {other});")
            current, other = other, current
    ram = first * act_size + (hidden * (act_size + 4) if len(model.dense_layers) > 1 else 0)
    return "\n".join(lines + ["}"]) + "\n", ram


def _decides_on_logits(model: Model) -> bool:
    act = model.output_activation
    if model.task in (Task.BINARY, Task.MULTILABEL) and (model.n_outputs == 1 or model.task == Task.MULTILABEL):
        return act == Activation.LOGISTIC
    return act in MONOTONE


def fixed_program(original: Model, options: COptions, header_name: str) -> Program:
    """The integer program of ``original`` at ``options.precision`` (batch norms folded, see ``fixed_fold``)."""
    p, scheme = options.prefix, SCHEMES[options.precision]
    model, fold_notes, problems = fixed_layers(original, options.precision)
    assert model is not None, problems  # options.check_supported refused it before
    if options.calibration is not None:
        rows, source = options.calibration, f"{len(options.calibration)} calibration rows"
    else:
        rows, source = sample_rows(model, options.input_range)
        source = f"{len(rows)} rows sampled in {source}"
    plan = plan_fixed(model, scheme, rows)
    act_t, w_t = C_TYPES[scheme.name].name, C_TYPES[scheme.name].name
    last = plan.layers[-1]
    functions = [_helpers(p, act_t, scheme.activation_bits)]
    if any(layer.lut is not None for layer in plan.layers):
        functions.append(_lut_support(p))
        functions += [_lut_definition(p, f"{p}_lut{k}", layer.lut) for k, layer in enumerate(plan.layers) if layer.lut is not None]
    if any(layer.activation == Activation.SOFTMAX for layer in plan.layers):
        functions.append(_exp_support(p))
    functions.append(_dense(p, w_t, scheme.accumulator, act_t))
    functions.append(_preprocess(p, plan, model.n_features, act_t))
    functions += [_activation(p, k, layer, "int32_t" if layer.last else act_t) for k, layer in enumerate(plan.layers)]
    logits, ram = _logits(p, plan, model, act_t)
    functions.append(logits)
    n_out = model.n_outputs
    functions.append(f"void {p}_forward(const int32_t *x, int32_t *out)\n{{\n    int32_t z[{n_out}];\n"
                     f"    {p}_logits(x, z);\n    {p}_activation{len(plan.layers) - 1}(z, out);\n}}\n")  # fmt: skip
    on_logits = _decides_on_logits(model)
    spec = EntrySpec(p, "int32_t", "int32_t", model, f"{p}_logits" if on_logits else f"{p}_forward", on_logits,
                     str(1 << (last.out_frac - 1)), str(1 << last.out_frac), "0")  # fmt: skip
    functions.append(entry_code(spec))
    ram += 4 * n_out * 2 + (8 * model.n_features if plan.segments else 0) + (8 * n_out if last.activation == Activation.SOFTMAX else 0)
    public_data, label_decl = label_tables(p, model.classes) if model.classes is not None else ("", "")
    reference = original.astype(np.float64).forward(rows)  # the bound includes the folding
    emulated = emulate(plan, rows) / 2.0**plan.output_frac
    measured = float(np.abs(emulated - reference).max())
    error = {"max_abs": measured, "how": f"measured with the bit-exact emulation on {source}; inputs beyond saturate",
             "input_low": rows.min(axis=0).tolist(), "input_high": rows.max(axis=0).tolist()}  # fmt: skip
    program = Program(
        prefix=p,
        header_name=header_name,
        includes=[],
        header_includes=["<stdint.h>"],
        tables=_tables(p, plan, model),
        functions=functions,
        public_data=public_data,
        declarations=label_decl + ("\n" if label_decl else "") + entry_declarations(spec),
        defines=[],
        notes=[],
    )
    P = p.upper()
    program.defines = base_defines(model, options) + [
        (f"{P}_INPUT_FRAC_BITS", str(plan.input_frac), "x[i] = round(value * 2**INPUT_FRAC_BITS), int32"),
        (f"{P}_OUTPUT_FRAC_BITS", str(plan.output_frac), "value = out[j] / 2**OUTPUT_FRAC_BITS"),
    ]
    program.metadata = base_metadata(model, options, program, ram, error, ("int32_t", "int32_t"))
    program.metadata["fixed_point"] = {
        "scheme": f"{scheme.name} weights and activations, {scheme.accumulator} accumulators, power-of-two scales",
        "input_frac_bits": plan.input_frac,
        "folded": fold_notes,
        "output_frac_bits": plan.output_frac,
        "layers": [{"in_frac": layer.in_frac, "z_frac": layer.z_frac, "out_frac": layer.out_frac,
                    "table_entries": 0 if layer.lut is None else len(layer.lut.table)} for layer in plan.layers],  # fmt: skip
    }
    program.notes = header_notes(program.metadata, "int32_t", "int32_t") + [
        f"Inputs: x[i] = round(value * 2^{plan.input_frac}) ({P}_INPUT_FRAC_BITS); outputs: value = out[j] / 2^{plan.output_frac}.",
        "No floating point: tanh, logistic, exp, elu, gelu, silu, softplus, hardswish, mish are interpolated tables;",
        "softmax is exp by shift and a 2^x table + one integer division per class, softsign one division per value.",
        "Values beyond the calibrated range saturate.",
    ] + [f"Folded at generation time: {note}." for note in fold_notes]
    return program
