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
        return f"if (v[i] < {zero}) v[i] = {zero};"
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
        # numpy's logaddexp(x, 0): max(x, 0) + log1p(exp(-|x|)), finite for every x
        return f"v[i] = (v[i] > {zero} ? v[i] : {zero}) + {_fn('log1p', ctype)}({exp}(-{_fn('fabs', ctype)}(v[i])));"
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
    raise ValueError(f"no C code for activation {activation.value}")  # options.check_supported refuses it first


def activation_function(name: str, activation: Activation, params: Mapping[str, Any], ctype: CType) -> str:
    """A ``static void name(T *v, int n)`` applying ``activation`` in place."""
    t = ctype.name
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
