"""``verify``: run two models on the same inputs and report parity."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from . import compare
from . import inputs as inputs_mod
from .report import Report, library_versions
from .runners import Runner, make_runner
from .tolerances import ToleranceOption, check_overrides, comparison_dtype, resolve_tolerance

__all__ = ["verify"]

LAYER_ROWS = 256
CROSS_CHECK_ROWS = 2000
Progress = Callable[[str], None]


def verify(
    reference: Any,
    candidate: Any = None,
    X: Any = None,
    *,
    n_samples: int = 1000,
    seed: int = 0,
    value_range: tuple[float, float] | None = None,
    atol: ToleranceOption = None,
    rtol: ToleranceOption = None,
    trust: bool = False,
    ort_optimizations: bool = True,
    reference_evaluator: bool = False,
    per_layer: bool = True,
    edge_cases: bool = True,
    batch_one_rows: int = 8,
    progress: Progress | None = None,
) -> Report:
    """Run ``reference`` and ``candidate`` on the same inputs and compare every output.

    Args:
        reference: a model file (any format; ``.onnx`` files run in onnxruntime), an
            nnconvert Model, a scikit-learn estimator, a Keras model or a torch module.
            With ``candidate`` None, the one model given is the candidate and is checked
            against the ``test_data_set_*`` evidence next to it.
        candidate: the converted model, same kinds as ``reference``.
        X: input rows ``(n_samples, n_features)``; random rows when None.
        n_samples: number of random rows when ``X`` is None.
        seed: seed of the random rows and edge cases.
        value_range: (low, high) of the random rows; derived from the reference's
            preprocessing when None.
        atol, rtol: a number for every output or ``{output: value}`` (``"*"``: the rest);
            the dtype- and magnitude-based defaults otherwise (docs/verify.md).
        trust: allow loading pickles (they run code).
        ort_optimizations: onnxruntime graph optimisations on (off to rule them out).
        reference_evaluator: also run ONNX sides in onnx's reference evaluator.
        per_layer: compare hidden layers when both sides expose them.
        edge_cases: add zeros, large magnitudes and decision-boundary rows.
        batch_one_rows: rows also run one at a time through the candidate.
        progress: called with the name of each stage as it starts.

    Returns:
        The :class:`Report`; ``report.passed`` says whether parity holds.

    Raises:
        UsageError: bad arguments (no model, bad tolerance keys, wrong input width).
        ReadError / UnsupportedModelError / UntrustedInputError / MissingDependencyError:
            a model that cannot be loaded or run.
    """
    started = time.perf_counter()
    notify = progress or (lambda stage: None)
    if candidate is None:
        reference, candidate = None, reference
    if candidate is None:
        raise UsageError("verify needs a candidate model")
    notify("loading models")
    cand = make_runner(candidate, trust=trust, ort_optimizations=ort_optimizations, role="candidate")
    run = _Run(cand, seed, atol, rtol, notify)
    if reference is None:
        run.from_evidence(candidate, X)
    else:
        ref = make_runner(reference, trust=trust, ort_optimizations=ort_optimizations, role="reference")
        run.from_models(ref, X, n_samples, value_range, edge_cases)
    run.compare_outputs(batch_one_rows)
    if per_layer and run.ref is not None:
        run.compare_layers()
    if reference_evaluator:
        run.cross_check()
    return run.report(time.perf_counter() - started)


class _Run:
    """The state of one verification, filled stage by stage."""

    def __init__(self, cand: Runner, seed: int, atol: ToleranceOption, rtol: ToleranceOption, notify: Progress):
        self.cand = cand
        self.ref: Runner | None = None
        self.reference_info: dict[str, Any] = {}
        self.seed, self.atol, self.rtol, self.notify = seed, atol, rtol, notify
        self.sets: list[dict[str, Any]] = []  # name, X, reference outputs, candidate outputs
        self.warnings: list[str] = []
        self.timings: dict[str, float] = {}
        self.outputs: list[dict[str, Any]] = []
        self.layers: dict[str, Any] = {"compared": False, "note": "not requested"}
        self.cross_checks: list[dict[str, Any]] = []
        self.inputs_info: dict[str, Any] = {}
        self.dtype = np.dtype(np.float64)

    # -- inputs and runs ---------------------------------------------------------

    def from_models(self, ref: Runner, X: Any, n_samples: int, value_range: Any, edge_cases: bool) -> None:
        self.ref = ref
        self.reference_info = ref.info()
        self.dtype = comparison_dtype(ref.dtype, self.cand.dtype)
        n_features = _n_features(ref, self.cand, X)
        inputs = self._main_inputs(ref, X, n_features, n_samples, value_range)
        hasher = inputs_mod.InputHasher([inputs.X])
        ref_out = self._timed("reference", "running the reference", ref.run, inputs.X)
        cand_out = self._timed("candidate", "running the candidate", self.cand.run, inputs.X)
        self.sets.append({"name": inputs.source, "X": inputs.X, "reference": ref_out, "candidate": cand_out})
        if edge_cases:
            self.notify("edge cases")
            edge, kinds = inputs_mod.edge_cases(inputs, ref, self.seed, self.dtype.itemsize <= 4)
            self.sets.append({"name": "edge", "X": edge, "reference": ref.run(edge), "candidate": self.cand.run(edge), "kinds": kinds})
        self.inputs_info = self._inputs_info(inputs, hasher)

    def _main_inputs(self, ref: Runner, X: Any, n_features: int, n_samples: int, value_range: Any) -> inputs_mod.Inputs:
        if X is not None:
            X = _as_table(X, n_features)
            sample = X[:: max(1, len(X) // 4096)]  # the range of the data, from a few thousand rows
            return inputs_mod.Inputs(X, "data", sample.min(axis=0), sample.max(axis=0), "the data's range")
        if n_samples < 1:
            raise UsageError(f"n_samples must be at least 1, got {n_samples}")
        low, high, source = inputs_mod.feature_range(ref, n_features, value_range)
        self.warnings.append(
            "only random inputs were used: they need not resemble the data the model sees; "
            "pass real data (X=..., --data FILE) for a stronger check"
        )
        if source.startswith("default"):
            self.warnings.append(f"the input range is the {source}; give value_range (--range LOW HIGH)")
        X = inputs_mod.random_inputs(n_samples, low, high, self.seed, self.dtype.itemsize <= 4)
        return inputs_mod.Inputs(X, "random", low, high, source)

    def _inputs_info(self, inputs: inputs_mod.Inputs, digest: inputs_mod.InputHasher) -> dict[str, Any]:
        edge = next((s for s in self.sets if s["name"] == "edge"), None)
        return {
            "source": inputs.source,
            "n_rows": int(inputs.X.shape[0]),
            "n_features": int(inputs.X.shape[1]),
            "dtype": inputs.X.dtype.name,
            "sha256": digest,
            "range": None if inputs.low is None else {"source": inputs.range_source, "low": inputs.low.tolist(), "high": inputs.high.tolist()},
            "edge_rows": 0 if edge is None else int(len(edge["X"])),
            "edge_kinds": {} if edge is None else {k: edge["kinds"].count(k) for k in dict.fromkeys(edge["kinds"])},
            "edge_sha256": None if edge is None else inputs_mod.InputHasher([edge["X"]]).result(),
        }

    def from_evidence(self, candidate: Any, X: Any) -> None:
        from .evidence import read_test_data
        from .onnx_runners import normalise_outputs, output_names_map

        if not isinstance(candidate, (str, Path)) or Path(candidate).suffix.lower() != ".onnx":
            raise UsageError("without a reference, the candidate must be an ONNX file with test_data_set_0 next to it")
        if X is not None:
            raise UsageError("X cannot be given without a reference: the stored test data are the inputs")
        self.reference_info = {"kind": "test-data", "description": f"test_data_set_* next to {candidate}", "dtype": None}
        for name, X_set, stored in read_test_data(candidate):
            names = list(stored)
            ref_out = normalise_outputs(names, [stored[n] for n in names], output_names_map(names))
            cand_out = self._timed("candidate", "running the candidate", self.cand.run, X_set)
            self.sets.append({"name": name, "X": X_set, "reference": ref_out, "candidate": cand_out})
        self.dtype = comparison_dtype(self.cand.dtype)
        first = self.sets[0]["X"]
        self.inputs_info = {
            "source": "test-data", "n_rows": int(first.shape[0]), "n_features": int(first.shape[1]),
            "dtype": first.dtype.name, "sha256": inputs_mod.InputHasher([s["X"] for s in self.sets]),
            "range": None, "edge_rows": 0, "edge_kinds": {}, "edge_sha256": None,
        }  # fmt: skip

    def _timed(self, key: str, stage: str, function: Callable[[np.ndarray], Any], X: np.ndarray) -> Any:
        self.notify(stage)
        start = time.perf_counter()
        result = function(X)
        self.timings[f"{key}_s"] = self.timings.get(f"{key}_s", 0.0) + time.perf_counter() - start
        return result

    # -- outputs ---------------------------------------------------------------------

    def compare_outputs(self, batch_one_rows: int) -> None:
        self.notify("comparing outputs")
        names = self._aligned_names()
        check_overrides(self.atol, set(names), "atol")
        check_overrides(self.rtol, set(names), "rtol")
        batch_one = self._batch_one(batch_one_rows)
        for name in names:
            checks = [self._check(name, s["name"], s["reference"], s["candidate"]) for s in self.sets]
            if batch_one is not None and name in batch_one[1]:
                checks.append(self._check(name, "batch-1", batch_one[0], batch_one[1]))
            kind = "labels" if name == "labels" else "values"
            self.outputs.append({"name": name, "kind": kind, "passed": all(c["passed"] for c in checks), "checks": checks})

    def _aligned_names(self) -> list[str]:
        ref_out, cand_out = self.sets[0]["reference"], self.sets[0]["candidate"]
        ref_float = [k for k in ref_out if k != "labels"]
        cand_float = [k for k in cand_out if k != "labels"]
        if len(ref_float) == 1 and len(cand_float) == 1 and ref_float != cand_float:
            self.warnings.append(f"the candidate's output {cand_float[0]!r} is compared with the reference's {ref_float[0]!r}")
            for s in self.sets:
                s["candidate"][ref_float[0]] = s["candidate"].pop(cand_float[0])
        common = [k for k in ref_out if k in cand_out]
        for side, out, other in (("reference", ref_out, cand_out), ("candidate", cand_out, ref_out)):
            missing = [k for k in out if k not in other]
            if missing:
                self.warnings.append(f"not compared: the {side}'s output(s) {missing} have no counterpart")
        if not common:
            raise UsageError(f"the models have no output in common: reference {sorted(ref_out)}, candidate {sorted(cand_out)}")
        return common

    def _batch_one(self, rows: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None:
        if rows < 1:
            return None
        self.notify("batch-size check")
        main = self.sets[0]
        count = min(rows, len(main["X"]))
        singles = [self.cand.run(main["X"][i : i + 1]) for i in range(count)]
        batch = {k: v[:count] for k, v in main["candidate"].items()}
        return batch, {k: np.concatenate([s[k] for s in singles]) for k in batch}

    def _check(self, name: str, set_name: str, ref_out: dict[str, Any], cand_out: dict[str, Any]) -> dict[str, Any]:
        if name == "labels":
            probabilities = ref_out.get("probabilities")
            tolerance = None
            if probabilities is not None:
                tolerance = resolve_tolerance("probabilities", self.dtype, compare._magnitude(probabilities), self.atol, self.rtol)
            result = compare.compare_labels(ref_out[name], cand_out[name], probabilities, tolerance)
        else:
            ref, cand = np.asarray(ref_out[name]), np.asarray(cand_out[name])
            result = compare.compare_values(
                ref, cand, lambda m: resolve_tolerance(name, self.dtype, m, self.atol, self.rtol), self.dtype
            )
        return {"inputs": set_name, **result}

    # -- layers and cross-checks ---------------------------------------------------

    def compare_layers(self) -> None:
        self.notify("comparing layers")
        main = self.sets[0]
        rows = self._layer_rows(main)
        X = main["X"][rows]
        ref_layers, cand_layers = self.ref.intermediates(X), self.cand.intermediates(X)
        if ref_layers is None or cand_layers is None:
            hidden = [r.kind for r, layers in ((self.ref, ref_layers), (self.cand, cand_layers)) if layers is None]
            self.layers = {"compared": False, "note": f"intermediates are not available from: {', '.join(hidden)}"}
            return
        if len(ref_layers) != len(cand_layers):
            self.layers = {
                "compared": False,
                "note": f"the reference has {len(ref_layers) - 1} layers, the candidate {len(cand_layers) - 1}: cannot pair them",
            }
            return
        entries = compare.compare_layers(ref_layers, cand_layers, self.dtype)
        if self.ref.kind not in ("ir", "sklearn") and self.cand.kind in ("ir", "sklearn"):
            for entry, (name, _) in zip(entries, cand_layers, strict=True):
                entry["name"] = name
        failing = next((e for e in entries if not e["passed"]), None)
        self.layers = {"compared": True, "note": None, "rows": int(len(rows)), "first_failing": failing, "entries": entries}

    def _layer_rows(self, main: dict[str, Any]) -> np.ndarray:
        worst = [
            sample["row"]
            for output in self.outputs
            for check in output["checks"][:1]
            for sample in check.get("worst_samples", [])
        ]
        first = np.arange(min(LAYER_ROWS, len(main["X"])))
        return np.unique(np.concatenate([first, np.asarray(worst, dtype=np.intp)]))

    def cross_check(self) -> None:
        from .onnx_runners import OnnxRuntimeRunner, ReferenceEvaluatorRunner

        self.notify("reference evaluator")
        main = self.sets[0]
        X = main["X"][:CROSS_CHECK_ROWS]
        for side, runner in (("reference", self.ref), ("candidate", self.cand)):
            if not isinstance(runner, OnnxRuntimeRunner):
                continue
            evaluated = ReferenceEvaluatorRunner(runner.path).run(X)
            rows = len(X)
            ort_out = {k: v[:rows] for k, v in main[side].items()}
            other = {k: v[:rows] for k, v in main["candidate" if side == "reference" else "reference"].items()}
            self.cross_checks.append(self._cross_entry(side, evaluated, ort_out, other, side == "reference"))

    def _cross_entry(self, side: str, evaluated: dict, ort_out: dict, other: dict, evaluated_is_reference: bool) -> dict:
        vs_ort = [self._check(n, "onnx-reference vs onnxruntime", ort_out, evaluated) for n in ort_out if n in evaluated]
        pairs = (evaluated, other) if evaluated_is_reference else (other, evaluated)
        vs_other = [self._check(n, "onnx-reference vs other side", *pairs) for n in evaluated if n in other and n in pairs[1]]
        ort_failed = any(not o["passed"] for o in self.outputs)
        evaluator_failed = any(not c["passed"] for c in vs_other)
        if ort_failed and not evaluator_failed:
            diagnosis = "only onnxruntime disagrees: suspect an onnxruntime kernel or graph optimisation"
        elif ort_failed:
            diagnosis = "both ONNX implementations disagree: suspect the conversion"
        else:
            diagnosis = "both ONNX implementations agree with the other side"
        return {"side": side, "rows": len(next(iter(evaluated.values()))), "diagnosis": diagnosis,
                "vs_onnxruntime": _slim(vs_ort), "vs_other_side": _slim(vs_other)}  # fmt: skip

    # -- the report --------------------------------------------------------------------

    def report(self, total: float) -> Report:
        self.timings["total_s"] = total
        passed = all(o["passed"] for o in self.outputs)
        document = {
            "format": "nnconvert-verify-report",
            "version": 1,
            "passed": passed,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "reference": self.reference_info,
            "candidate": self.cand.info(),
            "comparison_dtype": self.dtype.name,
            "seed": self.seed,
            "inputs": self.inputs_info,
            "outputs": self.outputs,
            "layers": self.layers,
            "cross_checks": self.cross_checks,
            "warnings": self.warnings,
            "versions": library_versions(),
            "timings": self.timings,
        }
        return Report(document, self.sets)


def _slim(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keep = ("inputs", "passed", "max_abs_error", "mismatches", "agreement", "unexpected_flips", "error")
    return [{k: c[k] for k in keep if k in c} for c in checks]


def _n_features(ref: Runner, cand: Runner, X: Any) -> int:
    known = {r.kind: r.n_features for r in (ref, cand) if r.n_features is not None}
    widths = set(known.values())
    if len(widths) > 1:
        raise UsageError(f"the models take different numbers of features: {known}")
    if widths:
        return widths.pop()
    if X is not None:
        return int(np.shape(X)[-1])
    raise UsageError("cannot tell the number of input features from either model; pass X")


def _as_table(X: Any, n_features: int) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim == 1:
        X = X.reshape(1, -1)
    if X.ndim != 2 or X.shape[1] != n_features:
        raise UsageError(f"X has shape {X.shape}; the models take (n_samples, {n_features})")
    if X.dtype.kind not in "fiu":
        raise UsageError(f"X must be numeric, got dtype {X.dtype}")
    return X if X.dtype.kind == "f" else X.astype(np.float64)
