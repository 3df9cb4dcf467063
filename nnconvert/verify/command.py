"""``nnconvert verify`` and ``nnconvert convert --verify/--emit-test-data`` (wired up by cli.py).

Library errors propagate: ``cli.main`` maps them to exit codes 2/3/4.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import NnconvertError, ReadError, UsageError

__all__ = [
    "configure_parser",
    "run",
    "add_convert_options",
    "check_convert_target",
    "verify_after_convert",
    "parse_tolerances",
]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``verify`` arguments to ``parser``."""
    parser.add_argument("reference", metavar="REFERENCE", help="the original model (any format), or the ONNX file to check against its test data")
    parser.add_argument("candidate", metavar="CANDIDATE", nargs="?", help="the converted model (omit: REFERENCE is an ONNX file with test_data_set_0 next to it)")
    parser.add_argument(
        "--data",
        metavar="PATH",
        help="input rows: a Parquet file or folder, .csv (header optional) or .npy, streamed in chunks; .npz (key X) in memory",
    )
    _add_label_column(parser)
    parser.add_argument("--range", nargs=2, type=float, metavar=("LOW", "HIGH"), help="range of random inputs (default: from the preprocessing)")
    parser.add_argument("--n-samples", type=int, default=1000, help="random rows when no --data (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random rows (default 0)")
    _add_tolerance_options(parser)
    from .price_command import add_price_options

    add_price_options(parser)
    parser.add_argument("--report-json", metavar="FILE", help="write the JSON report")
    parser.add_argument("--report-md", metavar="FILE", help="write a markdown report (for a CI comment)")
    parser.add_argument("--report-html", metavar="FILE", help="write the report as one self-contained HTML page (model diagram, error histograms)")
    parser.add_argument("--save-inputs", metavar="FILE", help="save inputs and outputs to an .npz to reproduce the run")
    parser.add_argument("--plot", metavar="FILE.png", help="plot the errors (needs matplotlib)")
    parser.add_argument("--warn-only", action="store_true", help="exit 0 even when the models disagree")
    parser.add_argument("--trust-pickle", action="store_true", help="allow loading pickles (runs code from the file)")
    parser.add_argument("--no-ort-optimizations", action="store_true", help="run onnxruntime with graph optimisations off")
    parser.add_argument("--no-input-hash", action="store_true", help="skip the inputs' sha256 in --report-json/--report-md (it is computed only when a report or --save-inputs is written)")
    parser.add_argument("--reference-evaluator", action="store_true", help="also run ONNX files in onnx's reference evaluator")
    scale = parser.add_argument_group("scale (docs/scale.md)")
    scale.add_argument("--engine", choices=["local", "spark"], default="local", help="where --data is run: this process, streamed (default), or a Spark job")
    scale.add_argument("--master", metavar="URL", help="--engine spark: the Spark master (default: spark-submit's, else local[*])")
    scale.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_label_column(parser: Any) -> None:
    parser.add_argument(
        "--label-column",
        metavar="NAME",
        help="the --data column (Parquet, or CSV with a header) holding the ground truth: not a feature; adds both models' "
        "accuracy or MSE/RMSE/MAE/R² to the report (--labels FILE: the truth in a file of its own)",
    )


def _add_tolerance_options(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    for name in ("atol", "rtol"):
        parser.add_argument(
            f"--{prefix}{name}",
            action="append",
            metavar="[OUTPUT=]VALUE",
            help=f"{name} for every output, or OUTPUT=VALUE for one (repeatable; default: by dtype and magnitude)",
        )


def parse_tolerances(values: list[str] | None, option: str) -> dict[str, float] | None:
    """``["1e-5", "probabilities=1e-4"]`` -> ``{"*": 1e-5, "probabilities": 1e-4}``.

    Raises:
        UsageError: a value that is not a number.
    """
    if not values:
        return None
    parsed: dict[str, float] = {}
    for text in values:
        key, _, number = text.rpartition("=")
        try:
            parsed[key.strip() or "*"] = float(number)
        except ValueError:
            raise UsageError(f"--{option} {text!r}: expected a number or OUTPUT=NUMBER") from None
    return parsed


def run(args: argparse.Namespace) -> int:
    """Run ``nnconvert verify``; print the summary.

    Returns:
        0 when parity holds (or ``--warn-only``), 1 on a mismatch.
    """
    from .core import verify
    from .inputs import load_data
    from .price_command import run_price, wants_price

    if wants_price(args):
        return run_price(args)
    candidate, priced = _scored_candidate(args)
    if priced:  # --labels beside a float16/int8 candidate: the price of its precision
        return run_price(args)
    if _streamed(args):
        return _run_streamed(args, candidate)
    if args.engine == "spark":
        raise UsageError("--engine spark needs --data PATH (a Parquet file or folder, .csv or .npy)")
    from ..progress import ProgressBar

    if args.label_column is not None:
        raise UsageError(f"--label-column names a column of a Parquet or CSV --data; {args.data} holds arrays: give --labels FILE")
    X = None if args.data is None else load_data(args.data)
    _check_labels(args.labels, args.data, X)
    progress = ProgressBar("verify", quiet=args.quiet)
    try:
        report = verify(
            args.reference,
            candidate,
            X,
            n_samples=args.n_samples,
            seed=args.seed,
            value_range=None if args.range is None else tuple(args.range),
            atol=parse_tolerances(args.atol, "atol"),
            rtol=parse_tolerances(args.rtol, "rtol"),
            trust=args.trust_pickle,
            ort_optimizations=not args.no_ort_optimizations,
            reference_evaluator=args.reference_evaluator,
            # the digest identifies the inputs in saved evidence; a console-only run skips its extra pass
            hash_inputs=bool(args.report_json or args.report_md or args.report_html or args.save_inputs) and not args.no_input_hash,
            progress=progress.stage,
            labels=args.labels,
        )
    except UsageError as exc:
        raise _data_width_error(exc, args.data) from None
    finally:
        progress.close()
    print(report.summary())
    _write_outputs(report, args)
    return 0 if report.passed or args.warn_only else 1


def _scored_candidate(args: argparse.Namespace) -> tuple[Any, bool]:
    """The candidate to verify: its path, or with ground truth its loaded runner (so it is read once); and whether
    --labels/--label-column meets a float16/int8 candidate (nnconvert's reduced-precision files), whose price is
    measured instead."""
    labels, column = getattr(args, "labels", None), getattr(args, "label_column", None)
    if labels is None and column is None:
        return args.candidate, False
    if args.data is None or args.candidate is None:
        flag = "--labels" if labels is not None else "--label-column"
        raise UsageError(f"{flag} scores two models on real rows: give REFERENCE, CANDIDATE and --data PATH")
    if args.engine == "spark":
        return args.candidate, False
    from .price_command import reduced_precision
    from .runners import make_runner

    runner = make_runner(args.candidate, trust=args.trust_pickle, ort_optimizations=not args.no_ort_optimizations, role="candidate")
    return runner, reduced_precision(runner)


def _check_labels(labels: str | None, data: str | None, X: Any) -> None:
    """In-memory rows: the ground truth file has as many rows (both files named when not)."""
    if labels is None or X is None:
        return
    from .truth import check_rows, open_truth

    check_rows(labels, open_truth(labels).n_rows, data, len(X))


def _streamed(args: argparse.Namespace, data: str | None = None) -> bool:
    """--data that is read chunk by chunk (everything but .npz), or any --engine spark run."""
    data = args.data if data is None else data
    if data is None:
        return False
    from .datasource import STREAMED_SUFFIXES

    engine = getattr(args, "engine", "local")
    return engine == "spark" or "://" in data or Path(data).is_dir() or Path(data).suffix.lower() in STREAMED_SUFFIXES


def _run_streamed(args: argparse.Namespace, candidate: Any) -> int:
    from ..progress import ProgressBar

    if args.candidate is None:
        raise UsageError("verify with --data needs REFERENCE and CANDIDATE")
    if args.save_inputs:
        raise UsageError("--save-inputs keeps the rows in an .npz; with a streamed --data the data itself is the input to keep")
    options = {
        "seed": args.seed,
        "atol": parse_tolerances(args.atol, "atol"),
        "rtol": parse_tolerances(args.rtol, "rtol"),
        "trust": args.trust_pickle,
        "ort_optimizations": not args.no_ort_optimizations,
        "reference_evaluator": args.reference_evaluator,
        "hash_inputs": bool(args.report_json or args.report_md) and not args.no_input_hash,
        "labels": args.labels,
        "label_column": args.label_column,
    }
    if "://" in str(args.data) and args.engine != "spark":
        raise UsageError(f"--data {args.data}: a cluster path (s3a://, hdfs://...) is read by --engine spark")
    bar = ProgressBar("verify", "rows", quiet=args.quiet)
    try:
        if args.engine == "spark":
            from . import spark

            report = spark.verify(args.data, args.reference, args.candidate, master=args.master, row_progress=bar.update, **options)
        else:
            from .stream import verify_stream

            report = verify_stream(args.reference, candidate, args.data, row_progress=bar.update, **options)
    finally:
        bar.close()
    print(report.summary())
    _write_outputs(report, args)
    return 0 if report.passed or args.warn_only else 1


def _write_outputs(report: Any, args: argparse.Namespace) -> None:
    if getattr(args, "report_json", None):
        report.to_json(args.report_json)
    if getattr(args, "report_html", None):
        report.to_html(args.report_html)
    if getattr(args, "report_md", None):
        Path(args.report_md).write_text(report.to_markdown(), encoding="utf-8")
    if getattr(args, "save_inputs", None):
        report.save_inputs(args.save_inputs)
    if getattr(args, "plot", None):
        report.plot(args.plot)


def _data_width_error(exc: UsageError, data: str | None) -> NnconvertError:
    """Rows of the wrong width from a data file are an input error naming the file (exit 3), not a usage error."""
    if data is not None and str(exc).startswith("X has shape"):
        return ReadError(f"the data do not fit the models: {exc}", path=data)
    return exc


# -- convert --verify -------------------------------------------------------------


def add_convert_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--verify``, ``--emit-test-data`` and their settings to the ``convert`` parser."""
    group = parser.add_argument_group("verification")
    group.add_argument("--verify", action="store_true", help="verify the written file against the source model")
    group.add_argument(
        "--emit-test-data",
        action="store_true",
        help="write test_data_set_0 (inputs, the source's outputs) next to the ONNX output; implies --verify",
    )
    group.add_argument(
        "--data",
        "--verify-data",
        dest="verify_data",
        metavar="PATH",
        help="input rows for --verify: a Parquet file or folder, .csv or .npy, streamed in chunks as by verify --data; .npz in memory",
    )
    _add_label_column(group)
    group.add_argument("--verify-n-samples", type=int, default=1000, help="random rows for --verify (default 1000)")
    group.add_argument("--verify-seed", type=int, default=0, help="seed of the random rows (default 0)")
    group.add_argument("--verify-report-json", metavar="FILE", help="write the verification's JSON report")
    group.add_argument("--verify-report-html", "--report-html", dest="verify_report_html", metavar="FILE", help="write the verification's report as one HTML page")
    from .price_command import add_price_options

    add_price_options(group)


def _runner_of(target: Path, args: argparse.Namespace) -> str | None:
    from .. import registry

    to_format = getattr(args, "to_format", None)
    spec = registry.get(to_format) if to_format else registry.format_for_suffix(target, writable=True)
    return None if spec is None else spec.runner


def check_convert_target(target: Path, args: argparse.Namespace) -> None:
    """Refuse ``--emit-test-data`` for an output verify does not run as an ONNX file, and ground truth that does
    not fit the --data rows (checked before anything is written).

    Raises:
        UsageError: the output is not an ONNX file.
        ReadError: --labels of another row count than --data, or no such --label-column.
    """
    _check_ground_truth(args)
    if not getattr(args, "emit_test_data", False):
        return
    if _runner_of(target, args) != "onnxruntime":
        raise UsageError(f"--emit-test-data writes the ONNX test-data layout; {target} is not an .onnx file")


def _check_ground_truth(args: argparse.Namespace) -> None:
    """convert --verify --data PATH with --labels/--label-column: both readable and of one length, before DST is written."""
    data, labels, column = getattr(args, "verify_data", None), getattr(args, "labels", None), getattr(args, "label_column", None)
    if data is None or (labels is None and column is None) or getattr(args, "ground_truth_checked", False):
        return
    args.ground_truth_checked = True
    from .truth import check_rows, open_truth

    if not _streamed(args, data) or getattr(args, "emit_test_data", False):
        if column is not None:
            raise UsageError("--label-column names a column of a streamed --data (Parquet, CSV); give --labels FILE")
        if labels is not None:  # the rows are loaded (again when verify runs; such data fit in memory)
            from .inputs import load_data

            check_rows(labels, open_truth(labels).n_rows, data, len(load_data(data)))
        return
    from .datasource import open_data

    source = open_data(data, column)
    if labels is not None and column is None:
        check_rows(labels, open_truth(labels).n_rows, data, source.n_rows)


def verify_after_convert(source: str | Path, written_path: str | Path, args: argparse.Namespace, model: Any) -> int:
    """Verify ``written_path`` against ``source``; with ``--emit-test-data`` write the evidence.

    ``model`` is the source as the conversion read it: verify runs it, unless the source file
    has a runner of its own (see :func:`_source_model`), so nothing is read twice.

    Returns:
        0 when parity holds (or ``--warn-only``), 1 on a mismatch.

    Raises:
        UsageError: ``--emit-test-data`` for an output that is not ONNX.
    """
    from .core import verify
    from .inputs import load_data
    from .price_command import price_after_convert, wants_price

    written_path = Path(written_path)
    check_convert_target(written_path, args)
    if wants_price(args, precision_is_quantization=_runner_of(written_path, args) != "c") and not getattr(args, "emit_test_data", False):
        return price_after_convert(Path(source), _source_model(Path(source), args, model), written_path, args, model)
    emit = getattr(args, "emit_test_data", False)
    data = getattr(args, "verify_data", None)
    labels, column = getattr(args, "labels", None), getattr(args, "label_column", None)
    if (labels is not None or column is not None) and data is None:
        raise UsageError(f"{'--labels' if labels is not None else '--label-column'} scores the models on real rows: give them with --data PATH")
    options: dict[str, Any] = {
        "seed": getattr(args, "verify_seed", 0),
        "trust": getattr(args, "trust_pickle", False),
        "hash_inputs": bool(getattr(args, "verify_report_json", None) or getattr(args, "verify_report_html", None)),
        "labels": labels,
    }
    if data is not None and not emit and _streamed(args, data):  # the evidence of --emit-test-data is every row, in memory
        report = _verify_streamed(_source_model(Path(source), args, model), written_path, data, column, args, options)
    else:  # --label-column here was refused by check_convert_target above
        X = None if data is None else load_data(data)
        _check_labels(labels, data, X)
        try:
            report = verify(_source_model(Path(source), args, model), written_path, X, n_samples=getattr(args, "verify_n_samples", 1000), **options)
        except UsageError as exc:
            raise _data_width_error(exc, data) from None
    print(report.summary())
    if getattr(args, "verify_report_json", None):
        report.to_json(args.verify_report_json)
    if getattr(args, "verify_report_html", None):
        report.to_html(args.verify_report_html)
    if emit:
        from .onnx.evidence import emit_test_data

        for folder in emit_test_data(written_path, report):
            print(f"wrote {folder}")
    return 0 if report.passed or getattr(args, "warn_only", False) else 1


def _verify_streamed(reference: Any, written: Path, data: str, column: str | None, args: argparse.Namespace, options: dict[str, Any]) -> Any:
    """``convert --verify --data PATH``: the written file against the source on streamed rows, as ``verify --data``."""
    from ..progress import ProgressBar
    from .stream import verify_stream

    bar = ProgressBar("verify", "rows", quiet=getattr(args, "quiet", False))
    try:
        return verify_stream(reference, written, data, label_column=column, row_progress=bar.update, **options)
    finally:
        bar.close()


def convert_with_evidence(source: Path, target: Path, args: argparse.Namespace, model: Any, write: Callable[[Path], Any]) -> int:
    """``convert --emit-test-data``: the ONNX output and its ``test_data_set_*`` land together or not at all.

    ``write(path)`` writes the converted model. Everything is written into a
    staging folder this process creates beside ``target``, verified there,
    then moved into place, model last (:mod:`nnconvert._io.bundle`); evidence
    sets of the replaced model beyond the new ones are removed with it.
    """
    from .._io.bundle import staged_bundle
    from .onnx.evidence import test_data_dirs

    check_convert_target(target, args)
    with staged_bundle(target.parent) as bundle:
        staged = bundle.path(target.name)
        write(staged)
        with contextlib.redirect_stdout(io.StringIO()) as staged_output:
            status = verify_after_convert(source, staged, args, model)
        sets = [folder.name for folder in test_data_dirs(staged)]
        companions = sorted(p.name for p in bundle.staging.iterdir() if p.name != target.name and p.name not in sets)
        stale = [folder.name for folder in test_data_dirs(target) if folder.name not in sets]
        bundle.commit([*companions, *sets, target.name], retire=stale)
    print(f"{source} -> {target}")
    print(staged_output.getvalue().replace(str(bundle.staging), str(target.parent)), end="")
    return status


def _source_model(source: Path, args: argparse.Namespace, model: Any) -> Any:
    """The source as verify should run it.

    Files whose format verify runs natively (the registry's ``runner``: pickles and skops
    files as the estimator, ONNX files in onnxruntime) run as themselves, unless
    --from or a reader option (--task, --classes...) changed how the conversion read them; a pickle always runs
    as the estimator. Everything else runs as ``model``, the graph the conversion read.
    """
    from .runners import IRRunner, runner_format

    spec = runner_format(source)
    if spec is not None and spec.runner == "sklearn" and spec.needs_trust:
        return source
    read_as_given = not (getattr(args, "from_format", None) or getattr(args, "read_options", None))
    if spec is not None and spec.runner != "ir" and read_as_given:
        return source
    runner = IRRunner(model, description=str(source))
    runner.path = source  # the report's provenance names the file the conversion read
    return runner
