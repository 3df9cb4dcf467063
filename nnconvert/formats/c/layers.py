"""Layer and activation code of the floating-point target (float or double).

Each activation is the IR's numpy expression written in C with the same
operations in the same order, so float64 code agrees with ``Model.forward`` to
a few ulps; constants carry the precision's suffix so that float code never
computes in double.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ...ir import Activation
from .tables import CType, c_literal

__all__ = ["dense_function", "activation_function", "activation_key", "MATH_ACTIVATIONS"]

# activations that call <math.h>
MATH_ACTIVATIONS = frozenset(
    {
        Activation.TANH, Activation.LOGISTIC, Activation.SOFTMAX, Activation.EXP, Activation.ELU,
        Activation.SELU, Activation.SOFTPLUS, Activation.GELU, Activation.SILU,
        Activation.SOFTSIGN, Activation.MISH, Activation.LOG_SOFTMAX,
    }
)  # fmt: skip


def dense_function(prefix: str, ctype: CType) -> str:
    """``y = x @ W + b`` for one row, weights stored transposed (``[n_out][n_in]``) for contiguous rows."""
    t, zero = ctype.name, c_literal(0.0, ctype)
    return f"""static void {prefix}_dense(const {t} *weights, const {t} *bias, const {t} *x, {t} *y, int n_in, int n_out)
{{
    int i, j;
    for (j = 0; j < n_out; ++j) {{
        const {t} *row = weights + (long)j * n_in;
        {t} acc = {zero};
        for (i = 0; i < n_in; ++i) {{
            acc += row[i] * x[i];
        }}
        y[j] = acc + bias[j];
    }}
}}
"""


def activation_key(activation: Activation, params: Mapping[str, Any]) -> tuple[Any, ...]:
    """Layers whose keys are equal share one generated function."""
    return (activation.value, tuple(sorted(params.items())))


def _fn(name: str, ctype: CType) -> str:
    return name + ("f" if ctype.name == "float" else "")


def _element_body(activation: Activation, params: Mapping[str, Any], ctype: CType) -> str:
    """The statement applied to ``v[i]`` (every activation but softmax)."""
    lit = lambda value: c_literal(value, ctype)  # noqa: E731
    one, zero = lit(1.0), lit(0.0)
    exp, expm1 = _fn("exp", ctype), _fn("expm1", ctype)
    if activation == Activation.RELU:
        return _relu_body(params, ctype) if params else f"if (v[i] < {zero}) v[i] = {zero};"
    if activation == Activation.TANH:
        return f"v[i] = {_fn('tanh', ctype)}(v[i]);"
    if activation == Activation.LOGISTIC:
        return f"v[i] = {one} / ({one} + {exp}(-v[i]));"
    if activation == Activation.EXP:
        return f"v[i] = {exp}(v[i]);"
    if activation == Activation.LEAKY_RELU:
        return f"if (!(v[i] >= {zero})) v[i] = v[i] * {lit(params['alpha'])};"
    if activation == Activation.ELU:
        return f"if (!(v[i] > {zero})) v[i] = {lit(params['alpha'])} * {expm1}(v[i]);"
    if activation == Activation.SELU:
        gamma, alpha = lit(params["gamma"]), lit(params["alpha"])
        return f"v[i] = v[i] > {zero} ? {gamma} * v[i] : {gamma} * ({alpha} * {expm1}(v[i]));"
    if activation == Activation.SOFTPLUS:
        if params:
            return _softplus_body(params, ctype)
        return f"v[i] = {_logaddexp0('v[i]', ctype)};"
    if activation == Activation.SILU:
        return f"v[i] = v[i] * ({one} / ({one} + {exp}(-v[i])));"
    if activation == Activation.HARD_SIGMOID:
        t = f"v[i] * {lit(params['alpha'])} + {lit(params['beta'])}"
        return f"v[i] = {t};\n        if (v[i] < {zero}) v[i] = {zero};\n        if (v[i] > {one}) v[i] = {one};"
    if activation == Activation.GELU:
        half = lit(0.5)
        if params["approximate"] == "tanh":
            inner = f"{lit(math.sqrt(2 / math.pi))} * (v[i] + {lit(0.044715)} * (v[i] * v[i] * v[i]))"
            return f"v[i] = {half} * v[i] * ({one} + {_fn('tanh', ctype)}({inner}));"
        return f"v[i] = {half} * v[i] * ({one} + {_fn('erf', ctype)}(v[i] / {lit(math.sqrt(2))}));"
    return _element_body_v11(activation, params, ctype)


def _logaddexp0(value: str, ctype: CType) -> str:
    # numpy's logaddexp(x, 0): max(x, 0) + log1p(exp(-|x|)), finite for every x
    zero = c_literal(0.0, ctype)
    return f"({value} > {zero} ? {value} : {zero}) + {_fn('log1p', ctype)}({_fn('exp', ctype)}(-{_fn('fabs', ctype)}({value})))"


def _relu_body(params: Mapping[str, Any], ctype: CType) -> str:
    """Keras' relu(x, negative_slope, max_value, threshold), step for step as ``_activations._keras_relu``."""
    lit = lambda value: c_literal(value, ctype)  # noqa: E731
    zero, t = lit(0.0), ctype.name
    slope, threshold = params.get("negative_slope", 0.0), params.get("threshold", 0.0)
    lines = ["{"]
    if slope != 0:
        lines.append(f"{t} negative_part = {lit(threshold)} - v[i]; if (negative_part < {zero}) negative_part = {zero};")
    if threshold != 0:
        lines.append(f"v[i] = v[i] > {lit(threshold)} ? v[i] : {zero};")
    else:
        lines.append(f"if (v[i] < {zero}) v[i] = {zero};")
    if "max_value" in params:
        lines.append(f"if (v[i] > {lit(params['max_value'])}) v[i] = {lit(params['max_value'])};")
    if slope != 0:
        lines.append(f"v[i] = v[i] - {lit(slope)} * negative_part;")
    return "\n            ".join(lines) + "\n        }"


def _softplus_body(params: Mapping[str, Any], ctype: CType) -> str:
    """torch's softplus: logaddexp(beta x, 0) / beta, and x itself where beta x > threshold."""
    lit = lambda value: c_literal(value, ctype)  # noqa: E731
    t, beta = ctype.name, lit(params.get("beta", 1.0))
    lines = ["{", f"{t} scaled = v[i] * {beta};", f"{t} soft = ({_logaddexp0('scaled', ctype)}) / {beta};"]
    if "threshold" in params:
        lines.append(f"v[i] = scaled > {lit(params['threshold'])} ? v[i] : soft;")
    else:
        lines.append("v[i] = soft;")
    return "\n            ".join(lines) + "\n        }"


def _element_body_v11(activation: Activation, params: Mapping[str, Any], ctype: CType) -> str:
    """The model graph 1.1 activations (numpy forms in ``_activations._activation_v11``)."""
    lit = lambda value: c_literal(value, ctype)  # noqa: E731
    one, t = lit(1.0), ctype.name
    if activation == Activation.CLIP:
        lines = []
        if "min" in params:
            lines.append(f"if (v[i] < {lit(params['min'])}) v[i] = {lit(params['min'])};")
        if "max" in params:
            lines.append(f"if (v[i] > {lit(params['max'])}) v[i] = {lit(params['max'])};")
        return "\n        ".join(lines) or "(void)v[i];"
    if activation == Activation.SOFTSIGN:
        return f"v[i] = v[i] / ({one} + {_fn('fabs', ctype)}(v[i]));"
    if activation == Activation.HARDSWISH:
        # torch: x * relu6(x + 3) / 6, multiplied then divided as numpy does
        zero, six = lit(0.0), lit(6.0)
        return (f"{{\n            {t} gate = v[i] + {lit(3.0)};\n            if (gate < {zero}) gate = {zero};\n"
                f"            if (gate > {six}) gate = {six};\n            v[i] = v[i] * gate / {six};\n        }}")  # fmt: skip
    if activation == Activation.MISH:
        return f"v[i] = v[i] * {_fn('tanh', ctype)}({_logaddexp0('v[i]', ctype)});"
    raise ValueError(f"no C code for activation {activation.value}")  # options.check_supported refuses it first


def activation_function(name: str, activation: Activation, params: Mapping[str, Any], ctype: CType) -> str:
    """A ``static void name(T *v, int n)`` applying ``activation`` in place."""
    t = ctype.name
    if activation == Activation.LOG_SOFTMAX:
        return _log_softmax_function(name, ctype)
    if activation == Activation.SOFTMAX:
        # max subtraction keeps exp() finite for any logits, as scikit-learn does
        return f"""static void {name}({t} *v, int n)
{{
    int i;
    {t} largest = v[0], total = {c_literal(0.0, ctype)};
    for (i = 1; i < n; ++i) {{
        if (v[i] > largest) largest = v[i];
    }}
    for (i = 0; i < n; ++i) {{
        v[i] = {_fn('exp', ctype)}(v[i] - largest);
        total += v[i];
    }}
    for (i = 0; i < n; ++i) {{
        v[i] /= total;
    }}
}}
"""
    return f"""static void {name}({t} *v, int n)
{{
    int i;
    for (i = 0; i < n; ++i) {{
        {_element_body(activation, params, ctype)}
    }}
}}
"""


def _log_softmax_function(name: str, ctype: CType) -> str:
    """(x - max) - log(sum(exp(x - max))), the graph's operations."""
    t = ctype.name
    return f"""static void {name}({t} *v, int n)
{{
    int i;
    {t} largest = v[0], total = {c_literal(0.0, ctype)}, log_total;
    for (i = 1; i < n; ++i) {{
        if (v[i] > largest) largest = v[i];
    }}
    for (i = 0; i < n; ++i) {{
        total += {_fn('exp', ctype)}(v[i] - largest);
    }}
    log_total = {_fn('log', ctype)}(total);
    for (i = 0; i < n; ++i) {{
        v[i] = (v[i] - largest) - log_total;
    }}
}}
"""
