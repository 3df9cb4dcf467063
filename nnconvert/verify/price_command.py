"""Command-line side of the price of reduced precision (``convert --precision ... --verify``, ``verify --labels``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["add_price_options", "wants_price", "reduced_precision", "price_after_convert", "run_price"]


def add_price_options(parser: Any) -> None:
    """``--labels`` and the two thresholds (on ``verify`` and on ``convert``'s verification group)."""
    parser.add_argument(
        "--labels",
        metavar="FILE",
        help="true labels/targets of the --data rows (.npy, .csv or Parquet, one value per row): adds both models' accuracy "
        "or MSE/RMSE/MAE/R² to the report; for a float16/int8 candidate, accuracy or R² to its price",
    )
    parser.add_argument(
        "--max-label-disagreement",
        type=float,
        metavar="FRACTION",
        help="reduced precision: fail when more than this fraction of labels differ from the original's (default: 0.001 float16, 0.01 int8)",
    )
    parser.add_argument(
        "--max-metric-drop",
        type=float,
        metavar="DROP",
        help="reduced precision: fail when accuracy/R² drops by more than this against the original (default: 0.001 float16, 0.01 int8)",
    )


def wants_price(args: argparse.Namespace, *, precision_is_quantization: bool = True) -> bool:
    """Price mode: asked for by a threshold, or by --precision where it means quantization (not for generated C,
    whose --precision is the code's arithmetic and whose header states its error). --labels alone prices only a
    reduced-precision candidate (see reduced_precision); otherwise it adds the task metric to parity verify."""
    names = ("max_label_disagreement", "max_metric_drop") + (("writer_option_precision",) if precision_is_quantization else ())
    return any(getattr(args, name, None) is not None for name in names)


def reduced_precision(runner: Any) -> bool:
    """Whether a verify runner runs one of nnconvert's float16/int8 files (then ``verify --labels`` prices it)."""
    from .price import declared_precision

    return declared_precision(runner)[0] in ("float16", "int8")


def _labels(args: argparse.Namespace, data: Any, X: Any) -> Any:
    if getattr(args, "labels", None) is None:
        return None
    from .truth import check_rows, load_truth

    labels = load_truth(args.labels)
    check_rows(args.labels, len(labels), data, len(X))
    return labels.ravel() if labels.ndim == 2 and labels.shape[1] == 1 else labels


def _rows_and_truth(data: Any, args: argparse.Namespace) -> tuple[Any, Any]:
    """The --data rows in memory (the price runs both models on all of them at once) and the ground
    truth: --labels FILE, or --label-column NAME of a Parquet/CSV --data (then not a feature)."""
    column = getattr(args, "label_column", None)
    if column is None:
        from .inputs import load_data

        X = load_data(data)
        return X, _labels(args, data, X)
    import numpy as np

    from .datasource import open_data

    pairs = list(open_data(data, column).labelled_chunks(1 << 16))
    X = np.concatenate([rows for rows, _ in pairs])
    truth = np.concatenate([labels for _, labels in pairs])
    return X, truth.ravel() if truth.ndim == 2 and truth.shape[1] == 1 else truth


def price_after_convert(source: Path, original: Any, written: Path, args: argparse.Namespace, model: Any) -> int:
    """Price the written file against the source model (``original``: how verify runs it, ``model``: the
    graph the conversion read); 1 when a threshold is broken (0 with --warn-only)."""
    from ..errors import UsageError
    from ..quantization import quantize
    from .price import measure_price

    data = getattr(args, "verify_data", None)
    if data is None:
        raise UsageError("the price of --precision is measured on real rows: give them with --data FILE")
    calibration = getattr(args, "writer_option_calibration", None)
    precision = getattr(args, "writer_option_precision", None)
    if calibration is not None:
        from ..quantization import load_calibration

        calibration = load_calibration(calibration)
    written_model = quantize(model, precision, calibration)
    X, y = _rows_and_truth(data, args)
    report = measure_price(
        original,
        written,
        X,
        y=y,
        written_model=written_model,
        source_path=source,
        max_label_disagreement=getattr(args, "max_label_disagreement", None),
        max_metric_drop=getattr(args, "max_metric_drop", None),
        trust=getattr(args, "trust_pickle", False),
    )
    return _finish(report, args)


def run_price(args: argparse.Namespace) -> int:
    """``nnconvert verify ORIGINAL REDUCED --data X [--labels y | --label-column NAME]`` in price mode."""
    from ..errors import UsageError
    from .price import measure_price

    if args.candidate is None or args.data is None:
        raise UsageError("the price of reduced precision needs ORIGINAL and CANDIDATE files and --data FILE")
    X, y = _rows_and_truth(args.data, args)
    report = measure_price(
        args.reference,
        args.candidate,
        X,
        y=y,
        source_path=args.reference,
        max_label_disagreement=args.max_label_disagreement,
        max_metric_drop=args.max_metric_drop,
        trust=args.trust_pickle,
    )
    return _finish(report, args)


def _finish(report: Any, args: argparse.Namespace) -> int:
    print(report.summary())
    target = getattr(args, "verify_report_json", None) or getattr(args, "report_json", None)
    if target:
        Path(target).write_text(json.dumps(report.to_dict(), indent=2, default=str), encoding="utf-8")
    return 0 if report.passed or getattr(args, "warn_only", False) else 1
