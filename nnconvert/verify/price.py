"""The price of reduced precision: a float16/int8 file measured against the ORIGINAL model.

Parity (``verify``) asks whether two models compute the same thing within
rounding; a quantized model never does, so the question becomes how much it
costs: errors per output, label agreement, flips by the original's margin, the
task metric when labels are given, file sizes, and which layer the error
first grows in. Thresholds on label disagreement and metric drop decide pass or
fail, with defaults per precision (docs/verify.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from .metric import same_labels

__all__ = ["PriceReport", "measure_price", "declared_precision", "DEFAULT_THRESHOLDS", "LAYER_TOLERANCE"]

# (max label disagreement, max metric drop), as fractions: float16 should change
# essentially nothing; int8 may flip near-ties and cost up to a point of accuracy.
DEFAULT_THRESHOLDS: dict[str, tuple[float, float]] = {
    "float32": (0.001, 0.001),
    "float16": (0.001, 0.001),
    "int8": (0.01, 0.01),
}
# a layer's relative error (max |quantized - original| / max |original|) beyond which it is named
LAYER_TOLERANCE = {"float32": 1e-5, "float16": 5e-3, "int8": 5e-2}
MARGIN_BINS = (0.01, 0.05, 0.1, 0.25, 0.5)  # flips counted by the original's top-2 probability margin


@dataclass
class PriceReport:
    """What reduced precision costs, measured on the given rows."""

    precision: str
    mode: str | None
    n_rows: int
    outputs: list[dict[str, Any]]
    label_agreement: float | None
    flips_by_margin: dict[str, int] | None
    metric: dict[str, Any] | None
    sizes: dict[str, Any]
    layers: list[dict[str, Any]]
    first_layer_beyond_tolerance: str | None
    thresholds: dict[str, float]
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "passed": self.passed}

    def summary(self) -> str:
        """Lines for the console: the price, then PASS/FAIL with each broken threshold."""
        mode = f" ({self.mode})" if self.mode else ""
        lines = [f"price of {self.precision}{mode} against the original model, {self.n_rows} rows:"]
        for out in self.outputs:
            lines.append(f"  {out['name']:<14} max abs error {out['max_abs_error']:.3g}, mean {out['mean_abs_error']:.3g}")
        if self.label_agreement is not None:
            flips = ", ".join(f"{k}: {v}" for k, v in (self.flips_by_margin or {}).items() if v)
            lines.append(f"  label agreement {self.label_agreement:.4%}" + (f" (flips by original margin: {flips})" if flips else ""))
        if self.metric is not None:
            m = self.metric
            lines.append(f"  {m['name']}: original {m['original']:.4f}, {self.precision} {m['quantized']:.4f} (drop {m['drop']:+.4f})")
        s = self.sizes
        if s.get("float32_bytes"):
            lines.append(f"  file size: {s['written_bytes']:,} B vs {s['float32_bytes']:,} B as float32 ({s['ratio']:.2f}x smaller)")
        if s.get("source_bytes"):
            lines.append(f"  source file: {s['source_bytes']:,} B")
        if self.layers:
            worst = ", ".join(f"{layer['name']} {layer['relative_error']:.2g}" for layer in self.layers)
            lines.append(f"  relative error per layer: {worst}")
        if self.first_layer_beyond_tolerance:
            lines.append(f"  error first grows beyond {self.thresholds['layer_tolerance']:g} at layer {self.first_layer_beyond_tolerance}")
        verdict = "PASS" if self.passed else "FAIL: " + "; ".join(self.failures)
        lines.append(
            f"{verdict} (thresholds: label disagreement <= {self.thresholds['max_label_disagreement']:.2%}, "
            f"metric drop <= {self.thresholds['max_metric_drop']:.4f})"
        )
        return "\n".join(lines)


def measure_price(
    original: Any,
    written: str | os.PathLike[str],
    X: Any,
    *,
    y: Any = None,
    written_model: Any = None,
    source_path: str | os.PathLike[str] | None = None,
    max_label_disagreement: float | None = None,
    max_metric_drop: float | None = None,
    trust: bool = False,
) -> PriceReport:
    """Run the original and the written reduced-precision file on ``X`` and price the difference.

    Args:
        original: the original model (estimator, Model, or a file ``verify`` can run).
        written: the float16/int8 file (ONNX runs in onnxruntime, JSON/HDF5 in the IR).
        X: input rows.
        y: true labels (classifiers: accuracy) or targets (regressors: R²); optional.
        written_model: the IR of the written file (for the per-layer localisation and sizes).
        source_path: the original's file, for its size.
        max_label_disagreement / max_metric_drop: thresholds (fractions); per-precision defaults.
        trust: allow loading pickles.

    Raises:
        UsageError: X of the wrong width, y of the wrong length, negative thresholds.
    """
    from ..quantization import precision_of, quantization_mode
    from .runners import IRRunner, make_runner

    written = Path(written)
    X = np.asarray(X, dtype=np.float64)
    reference = make_runner(original, trust=trust, role="reference")
    candidate = make_runner(written, trust=trust, role="candidate")
    if written_model is None and written.suffix.lower() != ".onnx":
        from ..api import load

        written_model = load(written)
    if written_model is not None:
        precision, mode = precision_of(written_model), quantization_mode(written_model)
    else:  # an ONNX file: what nnconvert's writer declared in it
        declared, mode = declared_precision(candidate)
        precision = declared or "float32"
    thresholds = _thresholds(precision, max_label_disagreement, max_metric_drop)
    ref_out, cand_out = reference.run(X), candidate.run(X)
    report = PriceReport(
        precision=precision,
        mode=mode,
        n_rows=len(X),
        outputs=_output_errors(ref_out, cand_out),
        label_agreement=None,
        flips_by_margin=None,
        metric=None,
        sizes=_sizes(written, written_model, source_path),
        layers=[],
        first_layer_beyond_tolerance=None,
        thresholds=thresholds,
    )
    if "labels" in ref_out:
        _labels(report, ref_out, cand_out)
    if y is not None:
        report.metric = _metric(ref_out, cand_out, np.asarray(y), len(X))
    original_model = getattr(reference, "model", None) or (reference._as_ir() if hasattr(reference, "_as_ir") else None)
    if written_model is not None and original_model is not None:
        _localise(report, IRRunner(original_model), IRRunner(written_model), X[:256], LAYER_TOLERANCE.get(precision, 1e-5))
    _judge(report)
    return report


def declared_precision(runner: Any) -> tuple[str | None, str | None]:
    """(precision, quantization mode) of the model a verify runner runs: its IR's, or what nnconvert's
    ONNX writer declared in the file's metadata; (None, None) when unknown (another producer's file)."""
    from ..ir import Model
    from ..quantization import precision_of, quantization_mode

    model = getattr(runner, "model", None)
    if isinstance(model, Model):
        return precision_of(model), quantization_mode(model)
    proto = getattr(runner, "proto", None)
    declared = {entry.key: entry.value for entry in proto.metadata_props} if proto is not None else {}
    return declared.get("precision"), declared.get("quantization") or None


def _thresholds(precision: str, label: float | None, metric: float | None) -> dict[str, float]:
    default_label, default_metric = DEFAULT_THRESHOLDS.get(precision, DEFAULT_THRESHOLDS["float32"])
    chosen = {
        "max_label_disagreement": default_label if label is None else float(label),
        "max_metric_drop": default_metric if metric is None else float(metric),
        "layer_tolerance": LAYER_TOLERANCE.get(precision, 1e-5),
    }
    for name, value in chosen.items():
        if not value >= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be a number >= 0, got {value!r}")
    return chosen


def _output_errors(ref: dict[str, np.ndarray], cand: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    errors = []
    for name in ("probabilities", "values"):
        if name in ref and name in cand:
            diff = np.abs(np.asarray(ref[name], np.float64) - np.asarray(cand[name], np.float64))
            errors.append({"name": name, "max_abs_error": float(diff.max()), "mean_abs_error": float(diff.mean())})
    return errors


def _labels(report: PriceReport, ref: dict[str, np.ndarray], cand: dict[str, np.ndarray]) -> None:
    same = np.asarray(ref["labels"]) == np.asarray(cand["labels"])
    same = same.reshape(len(same), -1).all(axis=1)
    report.label_agreement = float(same.mean())
    flips = {f"<{edge:g}": 0 for edge in MARGIN_BINS} | {f">={MARGIN_BINS[-1]:g}": 0}
    proba = ref.get("probabilities")
    if proba is not None and np.ndim(proba) == 2 and proba.shape[1] >= 2:
        top2 = np.sort(np.asarray(proba, np.float64), axis=1)[:, -2:]
        margins = top2[:, 1] - top2[:, 0]
        for margin in margins[~same]:
            bucket = next((f"<{edge:g}" for edge in MARGIN_BINS if margin < edge), f">={MARGIN_BINS[-1]:g}")
            flips[bucket] += 1
    report.flips_by_margin = flips


def _metric(ref: dict[str, np.ndarray], cand: dict[str, np.ndarray], y: np.ndarray, n_rows: int) -> dict[str, Any]:
    if len(y) != n_rows:
        raise UsageError(f"the labels have {len(y)} rows but the data has {n_rows}")
    if "labels" in ref:
        def score(out: dict[str, np.ndarray]) -> float:
            return float(np.mean(same_labels(np.asarray(out["labels"]).ravel(), y.ravel())))

        name = "accuracy"
    else:
        def score(out: dict[str, np.ndarray]) -> float:
            predicted = np.asarray(out["values"], np.float64).reshape(n_rows, -1)
            truth = y.astype(np.float64).reshape(n_rows, -1)
            residual = ((truth - predicted) ** 2).sum(axis=0)
            total = ((truth - truth.mean(axis=0)) ** 2).sum(axis=0)
            return float(np.mean(1 - residual / np.where(total == 0, 1, total)))  # uniform average, as r2_score

        name = "r2"
    original, quantized = score(ref), score(cand)
    return {"name": name, "original": original, "quantized": quantized, "drop": original - quantized}


def _sizes(written: Path, written_model: Any, source_path: Any) -> dict[str, Any]:
    sizes: dict[str, Any] = {"written_bytes": written.stat().st_size, "source_bytes": None, "float32_bytes": None, "ratio": None}
    if source_path is not None and Path(source_path).is_file():
        sizes["source_bytes"] = Path(source_path).stat().st_size
    if written_model is not None:
        sizes["float32_bytes"] = _float32_size(written_model, written)
        sizes["ratio"] = sizes["float32_bytes"] / sizes["written_bytes"]
    return sizes


def _float32_size(model: Any, written: Path) -> int:
    """The size of the same model written at float32 in the same format (the fair 'before')."""
    import tempfile

    from ..api import save

    with tempfile.TemporaryDirectory(prefix="nnconvert-price-") as folder:
        target = Path(folder, "float32" + written.suffix)
        save(model.dequantized().astype(np.float32), target)
        return target.stat().st_size


def _localise(report: PriceReport, original: Any, quantized: Any, X: np.ndarray, tolerance: float) -> None:
    ref_layers, cand_layers = original.intermediates(X), quantized.intermediates(X)
    for (name, a), (_, b) in zip(ref_layers[1:], cand_layers[1:], strict=True):
        scale = float(np.abs(a).max()) or 1.0
        relative = float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max()) / scale
        report.layers.append({"name": name, "relative_error": relative})
        if report.first_layer_beyond_tolerance is None and relative > tolerance:
            report.first_layer_beyond_tolerance = name


def _judge(report: PriceReport) -> None:
    t = report.thresholds
    if report.label_agreement is not None and 1 - report.label_agreement > t["max_label_disagreement"] + 1e-12:
        report.failures.append(
            f"label disagreement {1 - report.label_agreement:.2%} > {t['max_label_disagreement']:.2%} (--max-label-disagreement)"
        )
    if report.metric is not None and report.metric["drop"] > t["max_metric_drop"] + 1e-12:
        report.failures.append(f"{report.metric['name']} drop {report.metric['drop']:.4f} > {t['max_metric_drop']:.4f} (--max-metric-drop)")
