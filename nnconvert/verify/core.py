"""``verify``: run two models on the same inputs and report parity."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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

_LIMIT_LOCK = threading.Lock()
_LIMIT: dict[str, Any] = {"depth": 0}
LAYER_SAMPLE_ROWS = 256  # per-layer checks: this many random rows plus the worst rows of each output
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
    hash_inputs: bool = True,
    progress: Progress | None = None,
    labels: Any = None,
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
        hash_inputs: record the sha256 of the inputs (it costs about one extra pass over
            them: a third of verify's time on 100,000 x 784 rows on 2 cores); when False
            the report's ``sha256`` is null.
        progress: called with the name of each stage as it starts.
        labels: the ground truth of ``X``'s rows (an array, or a .npy/.csv/.parquet file, one
            value per row): both models' task metric (accuracy, or MSE/RMSE/MAE/R²) goes into
            the report as ``metric``. Informational: parity alone decides ``passed``.

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
    run.hash_inputs = hash_inputs
    run.labels = labels
    try:
        if reference is None:
            if labels is not None:
                raise UsageError("labels= scores two models on real rows: give a reference, a candidate and X")
            run.from_evidence(candidate, X)
        else:
            ref = make_runner(reference, trust=trust, ort_optimizations=ort_optimizations, role="reference")
            run.from_models(ref, X, n_samples, value_range, started)
        return run.finish(edge_cases, batch_one_rows, per_layer, reference_evaluator, started)
    finally:
        run.stop_hashing()


class _Run:
    """The state of one verification, filled stage by stage."""

    def __init__(self, cand: Runner, seed: int, atol: ToleranceOption, rtol: ToleranceOption, notify: Progress):
        self.cand = cand
        self.ref: Runner | None = None
        self.reference_info: dict[str, Any] = {}
        if atol is None and cand.expected_atol is not None:
            atol = cand.expected_atol  # fixed-point C states the error it is built to (streamed and Spark runs too)
        self.seed, self.atol, self.rtol, self.notify = seed, atol, rtol, notify
        self.sets: list[dict[str, Any]] = []  # name, X, reference outputs, candidate outputs
        self.warnings: list[str] = []
        self.timings: dict[str, float] = {}
        self.outputs: list[dict[str, Any]] = []
        self.layers: dict[str, Any] = {"compared": False, "note": "not requested"}
        self.cross_checks: list[dict[str, Any]] = []
        self.inputs_info: dict[str, Any] = {}
        self.main_inputs: inputs_mod.Inputs | None = None
        self.hasher: inputs_mod.InputHasher | None = None
        self.hash_inputs = True
        self.dtype = np.dtype(np.float64)
        self.labels: Any = None  # the ground truth given (array or file), for the task metric
        self.metric: dict[str, Any] | None = None

    def finish(self, edge_cases: bool, batch_one_rows: int, per_layer: bool, reference_evaluator: bool, started: float) -> Report:
        """The stages after the main rows (edge cases, outputs, hidden layers, cross-check) and the report."""
        with _few_threads():  # from here on every model run is a small batch
            if edge_cases and self.ref is not None:
                self.add_edge_cases()
            self.compare_outputs(batch_one_rows)
            if per_layer and self.ref is not None:
                self.compare_layers()
        if reference_evaluator:
            self.cross_check()
        return self.report(started)

    # -- inputs and runs ---------------------------------------------------------

    def from_models(self, ref: Runner, X: Any, n_samples: int, value_range: Any, started: float) -> None:
        self.ref = ref
        self.reference_info = ref.info()
        self.dtype = comparison_dtype(ref.dtype, self.cand.dtype)
        n_features = _n_features(ref, self.cand, X)
        inputs = self._main_inputs(ref, X, n_features, n_samples, value_range)
        truth = None if self.labels is None else self._truth(len(inputs.X), X is None)
        # the sha256 of the rows overlaps the models' inference (docs/verify.md, "Cost")
        if self.hash_inputs:
            self.hasher = inputs_mod.InputHasher([inputs.X]).start()
        self.timings["setup_s"] = time.perf_counter() - started
        ref_out = self._timed("reference", "running the reference", ref.run, inputs.X)
        cand_out = self._timed("candidate", "running the candidate", self.cand.run, inputs.X)
        self.sets.append({"name": inputs.source, "X": inputs.X, "reference": ref_out, "candidate": cand_out})
        self.main_inputs = inputs
        self.inputs_info = self._inputs_info(inputs)
        if truth is not None:
            from .metric import task_metric

            source = str(self.labels) if isinstance(self.labels, (str, Path)) else None
            with self._stage("metric", "scoring against the labels"):
                self.metric = task_metric(ref_out, cand_out, truth, source or "the labels= array", source)

    def _truth(self, n_rows: int, random_rows: bool) -> np.ndarray:
        """The ground truth of the main rows, its row count checked against theirs."""
        if random_rows:
            raise UsageError("labels= scores the models on real rows: give them as X= or data=")
        if isinstance(self.labels, (str, Path)):
            from .truth import check_rows, load_truth

            truth = load_truth(self.labels)
            check_rows(self.labels, len(truth), "X", n_rows)
            return truth
        truth = np.asarray(self.labels)
        if truth.ndim == 0 or len(truth) != n_rows:
            raise UsageError(f"labels= has {truth.shape[0] if truth.ndim else 0} rows; X has {n_rows}")
        return truth

    def add_edge_cases(self) -> None:
        """Run both models on the edge-case rows (a few dozen; see inputs.edge_cases)."""
        assert self.ref is not None and self.main_inputs is not None
        with self._stage("edge_cases", "edge cases"):
            known_labels = self.sets[0]["reference"].get("labels")
            float32 = self.dtype.itemsize <= 4
            edge, kinds = inputs_mod.edge_cases(self.main_inputs, self.ref, self.seed, float32, known_labels)
            edge, kinds = self._within_designed_range(edge, kinds)
            if len(edge):
                self.sets.append({"name": "edge", "X": edge, "reference": self.ref.run(edge), "candidate": self.cand.run(edge), "kinds": kinds})
        self.inputs_info.update(
            edge_rows=int(len(edge)),
            edge_kinds={kind: kinds.count(kind) for kind in dict.fromkeys(kinds)},
            edge_sha256=inputs_mod.InputHasher([edge]).result(),
        )

    def _within_designed_range(self, edge: np.ndarray, kinds: list[str]) -> tuple[np.ndarray, list[str]]:
        """The edge rows inside the range a fixed-point candidate is built for (it saturates beyond, by design)."""
        if self.cand.designed_range is None:
            return edge, kinds
        low, high = self.cand.designed_range
        slack = 1e-6 * np.maximum(1.0, np.maximum(np.abs(low), np.abs(high)))  # edge rows are rounded to float32
        inside = np.all((edge >= low - slack) & (edge <= high + slack), axis=1)
        if not inside.all():
            left_out = [kind for kind, keep in zip(kinds, inside, strict=True) if not keep]
            counts = ", ".join(f"{left_out.count(kind)} {kind}" for kind in dict.fromkeys(left_out))
            self.warnings.append(
                f"{len(left_out)} edge rows ({counts}) lie beyond the input range the fixed-point candidate was "
                "calibrated for and were left out: it saturates there by design (its header says so); "
                "calibrate it on a wider range to cover them"
            )
        return edge[inside], [kind for kind, keep in zip(kinds, inside, strict=True) if keep]

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

    def _inputs_info(self, inputs: inputs_mod.Inputs) -> dict[str, Any]:
        return {
            "source": inputs.source,
            "n_rows": int(inputs.X.shape[0]),
            "n_features": int(inputs.X.shape[1]),
            "dtype": inputs.X.dtype.name,
            "sha256": None,  # filled in by report(), when the background hash is done
            "range": None if inputs.low is None or inputs.high is None else {"source": inputs.range_source, "low": inputs.low.tolist(), "high": inputs.high.tolist()},
            "edge_rows": 0,
            "edge_kinds": {},
            "edge_sha256": None,
        }

    def from_evidence(self, candidate: Any, X: Any) -> None:
        from .onnx.evidence import read_test_data
        from .onnx.runners import normalise_outputs, output_names_map
        from .runners import runner_format

        spec = runner_format(Path(candidate)) if isinstance(candidate, (str, Path)) and Path(candidate).is_file() else None
        if spec is None or spec.runner != "onnxruntime":
            raise UsageError("without a reference, the candidate must be an ONNX file with test_data_set_0 next to it")
        if X is not None:
            raise UsageError("X cannot be given without a reference: the stored test data are the inputs")
        self.reference_info = {"kind": "test-data", "description": f"test_data_set_* next to {candidate}", "dtype": None}
        stored_sets = read_test_data(candidate)
        self.hasher = inputs_mod.InputHasher([X_set for _, X_set, _ in stored_sets]).start()
        for name, X_set, stored in stored_sets:
            names = list(stored)
            ref_out = normalise_outputs(names, [stored[n] for n in names], output_names_map(names))
            cand_out = self._timed("candidate", "running the candidate", self.cand.run, X_set)
            self.sets.append({"name": name, "X": X_set, "reference": ref_out, "candidate": cand_out})
        self.dtype = comparison_dtype(self.cand.dtype)
        first = self.sets[0]["X"]
        self.inputs_info = {
            "source": "test-data", "n_rows": int(first.shape[0]), "n_features": int(first.shape[1]),
            "dtype": first.dtype.name, "sha256": None,
            "range": None, "edge_rows": 0, "edge_kinds": {}, "edge_sha256": None,
        }  # fmt: skip

    def _timed(self, key: str, stage: str, function: Callable[[np.ndarray], Any], X: np.ndarray) -> Any:
        with self._stage(key, stage):
            return function(X)

    @contextmanager
    def _stage(self, key: str, stage: str) -> Iterator[None]:
        """Announce a stage and add its wall time to ``timings[key + "_s"]``."""
        self.notify(stage)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[f"{key}_s"] = self.timings.get(f"{key}_s", 0.0) + time.perf_counter() - start

    def stop_hashing(self) -> None:
        """Cancel a background hash nobody will read (verify raised before its report)."""
        if self.hasher is not None:
            self.hasher.cancel()

    # -- outputs ---------------------------------------------------------------------

    def compare_outputs(self, batch_one_rows: int) -> None:
        names = self._aligned_names()
        check_overrides(self.atol, set(names), "atol")
        check_overrides(self.rtol, set(names), "rtol")
        with self._stage("batch_one", "batch-size check"):
            batch_one = self._batch_one(batch_one_rows)
        with self._stage("compare", "comparing outputs"):
            self._compare_sets(names, batch_one)

    def _compare_sets(self, names: list[str], batch_one: tuple[dict, dict] | None) -> None:
        for name in names:
            checks = [self._check(name, s["name"], s["reference"], s["candidate"]) for s in self.sets]
            if batch_one is not None and name in batch_one[1]:
                checks.append(self._check(name, "batch-1", batch_one[0], batch_one[1]))
            kind = "labels" if name == "labels" else "values"
            self.outputs.append({"name": name, "kind": kind, "passed": all(c["passed"] for c in checks), "checks": checks})

    def _aligned_names(self) -> list[str]:
        self.renamed_candidate_outputs: dict[str, str] = {}
        ref_out, cand_out = self.sets[0]["reference"], self.sets[0]["candidate"]
        ref_float = [k for k in ref_out if k != "labels"]
        cand_float = [k for k in cand_out if k != "labels"]
        if len(ref_float) == 1 and len(cand_float) == 1 and ref_float != cand_float:
            self.warnings.append(f"the candidate's output {cand_float[0]!r} is compared with the reference's {ref_float[0]!r}")
            self.renamed_candidate_outputs[cand_float[0]] = ref_float[0]
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
        main = self.sets[0]
        count = min(rows, len(main["X"]))
        renamed = getattr(self, "renamed_candidate_outputs", {})
        singles = [
            {renamed.get(k, k): v for k, v in self.cand.run(main["X"][i : i + 1]).items()} for i in range(count)
        ]
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
        with self._stage("layers", "comparing layers"):
            self._compare_layers()

    def _compare_layers(self) -> None:
        main = self.sets[0]
        rows, note = self._layer_rows(main)
        X = main["X"][rows]
        ref = self.ref
        if ref is None:
            raise RuntimeError("comparing layers needs a reference model")  # verify() only calls this with one
        ref_layers, cand_layers = ref.intermediates(X), self.cand.intermediates(X)
        if ref_layers is None or cand_layers is None:
            hidden = [r.kind for r, layers in ((ref, ref_layers), (self.cand, cand_layers)) if layers is None]
            self.layers = {"compared": False, "note": f"intermediates are not available from: {', '.join(hidden)}"}
            return
        if len(ref_layers) != len(cand_layers):
            self.layers = {
                "compared": False,
                "note": f"the reference has {len(ref_layers) - 1} layers, the candidate {len(cand_layers) - 1}: cannot pair them",
            }
            return
        entries = compare.compare_layers(ref_layers, cand_layers, self.dtype)
        if ref.kind not in ("ir", "sklearn") and self.cand.kind in ("ir", "sklearn"):
            for entry, (name, _) in zip(entries, cand_layers, strict=True):
                entry["name"] = name
        failing = next((e for e in entries if not e["passed"]), None)
        self.layers = {"compared": True, "note": note, "rows": int(len(rows)), "first_failing": failing, "entries": entries}

    def _layer_rows(self, main: dict[str, Any]) -> tuple[np.ndarray, str]:
        """A bounded subset of the main rows: the worst rows of each output plus a seeded sample.

        Hidden layers are wider than the outputs (and an ONNX side needs a second
        session to expose them), so they are never run on every row.
        """
        n_rows = len(main["X"])
        if n_rows <= LAYER_SAMPLE_ROWS:
            return np.arange(n_rows), f"compared on all {n_rows} rows"
        worst: set[int] = set()
        for output in self.outputs:
            check = output["checks"][0]  # the main set: its rows index main["X"]
            worst.update(sample["row"] for sample in check.get("worst_samples", []))
            worst.update(flip["row"] for flip in check.get("flips", []))
        sample = np.random.default_rng(self.seed + 2).choice(n_rows, size=LAYER_SAMPLE_ROWS, replace=False)
        rows = np.unique(np.concatenate([sample, np.fromiter(worst, dtype=np.intp, count=len(worst))]))
        note = (
            f"compared on {len(rows)} of {n_rows} rows: the {len(worst)} worst rows of the outputs (largest errors, "
            f"flipped labels) and {LAYER_SAMPLE_ROWS} rows drawn at random (seed {self.seed + 2})"
        )
        return rows, note

    def cross_check(self) -> None:
        with self._stage("cross_check", "reference evaluator"):
            self._cross_check()

    def _cross_check(self) -> None:
        from .onnx.runners import OnnxRuntimeRunner, ReferenceEvaluatorRunner

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

    def report(self, started: float) -> Report:
        if self.hasher is not None:
            waited = time.perf_counter()
            self.inputs_info["sha256"] = self.hasher.result()
            self.timings["sha256_wait_s"] = time.perf_counter() - waited
            self.timings["sha256_s"] = self.hasher.seconds
            self.timings["sha256_cpu_s"] = self.hasher.cpu_seconds
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
            **({} if self.metric is None else {"metric": self.metric}),
            "layers": self.layers,
            "cross_checks": self.cross_checks,
            "warnings": self.warnings,
            "versions": library_versions(),
            "timings": self.timings,
        }
        self.timings["total_s"] = time.perf_counter() - started
        return Report(document, self.sets, sides=(self.ref, self.cand))


@contextmanager
def _few_threads() -> Iterator[None]:
    """BLAS on one thread for the small batches (edge cases, batch-1 rows, layer subsets).

    Waking OpenBLAS's worker threads for a 64-row product costs more than the product,
    and on a busy machine each wake-up can wait tens of milliseconds for a core.
    """
    controller = _threadpool_controller()
    if controller is None:
        yield
        return
    with _LIMIT_LOCK:  # concurrent verify calls: the first in limits, the last out restores
        if _LIMIT["depth"] == 0:
            _LIMIT["limiter"] = controller.limit(limits=1, user_api="blas")
        _LIMIT["depth"] += 1
    try:
        yield
    finally:
        with _LIMIT_LOCK:
            _LIMIT["depth"] -= 1
            if _LIMIT["depth"] == 0:
                _LIMIT.pop("limiter").restore_original_limits()


@functools.lru_cache(maxsize=1)
def _threadpool_controller() -> Any:
    # scanning the loaded libraries costs ~10 ms: once per process (a BLAS loaded later is left alone)
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # comes with scikit-learn; without it the small batches are only slower
        return None
    return ThreadpoolController()


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
