"""The public entry points of a generated model, per task.

- classifiers (binary, multiclass): ``int <p>_predict(x)`` returns the class
  index into ``<p>_class_names``; ``<p>_predict_proba(x, proba)`` fills one
  probability per class; ``<p>_forward(x, out)`` fills the last layer's outputs;
- multilabel: ``<p>_predict(x, labels)`` fills 0/1 per label;
- regression and raw outputs: ``<p>_predict(x, values)`` fills the outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...ir import Model, Task

__all__ = ["EntrySpec", "entry_code", "entry_declarations"]


@dataclass(frozen=True)
class EntrySpec:
    """What the entry points need to know.

    ``decision`` is the static function predict decides on: ``<p>_forward``
    itself (float: the same rule as the model graph, on its outputs) or a
    logits function (fixed point: no rounding of the last activation can flip
    a label). ``decision_is_logits`` says which.
    """

    prefix: str
    in_type: str
    out_type: str
    model: Model
    decision: str
    decision_is_logits: bool
    half: str  # the output value 0.5 (the decision threshold) as a C literal of out_type
    one: str  # the output value 1 as a C literal
    zero: str
    # the exp function when the outputs are log-probabilities (a log_softmax head): predict_proba takes their exp
    proba_exp: str = ""

    @property
    def binary_single(self) -> bool:
        return self.model.task == Task.BINARY and self.model.n_outputs == 1


def _argmax(spec: EntrySpec, n: int) -> str:
    return f"""    for (j = 1; j < {n}; ++j) {{
        if (out[j] > out[best]) best = j;
    }}
    return best;"""


def entry_code(spec: EntrySpec) -> str:
    """Definitions of predict / predict_proba (forward is the generator's own)."""
    p, t_in, t_out, model = spec.prefix, spec.in_type, spec.out_type, spec.model
    n = model.n_outputs
    task = model.task
    threshold = spec.zero if spec.decision_is_logits else spec.half
    if task in (Task.BINARY, Task.MULTICLASS):
        if spec.binary_single:
            predict = f"""int {p}_predict(const {t_in} *x)
{{
    {t_out} out[1];
    {spec.decision}(x, out);
    return out[0] > {threshold} ? 1 : 0;
}}
"""
            proba = f"""void {p}_predict_proba(const {t_in} *x, {t_out} *proba)
{{
    {t_out} out[1];
    {p}_forward(x, out);
    proba[0] = {spec.one} - out[0];
    proba[1] = out[0];
}}
"""
        else:
            predict = f"""int {p}_predict(const {t_in} *x)
{{
    {t_out} out[{n}];
    int j, best = 0;
    {spec.decision}(x, out);
{_argmax(spec, n)}
}}
"""
            proba = f"""void {p}_predict_proba(const {t_in} *x, {t_out} *proba)
{{
    {p}_forward(x, proba);
}}
"""
            if spec.proba_exp:
                proba = f"""void {p}_predict_proba(const {t_in} *x, {t_out} *proba)
{{
    int j;
    {p}_forward(x, proba);
    for (j = 0; j < {n}; ++j) {{
        proba[j] = {spec.proba_exp}(proba[j]);
    }}
}}
"""
        return predict + "\n" + proba
    if task == Task.MULTILABEL:
        return f"""void {p}_predict(const {t_in} *x, int *labels)
{{
    {t_out} out[{n}];
    int j;
    {spec.decision}(x, out);
    for (j = 0; j < {n}; ++j) {{
        labels[j] = out[j] > {threshold} ? 1 : 0;
    }}
}}

void {p}_predict_proba(const {t_in} *x, {t_out} *proba)
{{
    {p}_forward(x, proba);
}}
"""
    return f"""void {p}_predict(const {t_in} *x, {t_out} *values)
{{
    {p}_forward(x, values);
}}
"""


def entry_declarations(spec: EntrySpec) -> str:
    """Header prototypes with their documentation comments."""
    p, t_in, t_out, model = spec.prefix, spec.in_type, spec.out_type, spec.model
    P = p.upper()
    lines = [
        f"/* Last layer's outputs for one row: x has {P}_N_FEATURES values, out receives {P}_N_OUTPUTS. */",
        f"void {p}_forward(const {t_in} *x, {t_out} *out);",
    ]
    if model.task in (Task.BINARY, Task.MULTICLASS):
        lines += [
            f"/* Index of the predicted class in {p}_class_names (0 .. {P}_N_CLASSES - 1). */",
            f"int {p}_predict(const {t_in} *x);",
            f"/* One probability per class ({P}_N_CLASSES values, in the order of {p}_class_names). */",
            f"void {p}_predict_proba(const {t_in} *x, {t_out} *proba);",
        ]
    elif model.task == Task.MULTILABEL:
        lines += [
            f"/* labels[j] = 1 when label j is predicted ({P}_N_OUTPUTS values). */",
            f"void {p}_predict(const {t_in} *x, int *labels);",
            f"/* Probability of each label ({P}_N_OUTPUTS values). */",
            f"void {p}_predict_proba(const {t_in} *x, {t_out} *proba);",
        ]
    else:
        lines += [
            f"/* The predicted values ({P}_N_OUTPUTS of them). */",
            f"void {p}_predict(const {t_in} *x, {t_out} *values);",
        ]
    return "\n".join(lines) + "\n"
