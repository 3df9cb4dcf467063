"""The ``nnconvert`` command line: convert, inspect, formats, verify.

This is the one place that prints errors and picks exit codes (DESIGN.md):
0 success, 1 verification mismatch, 2 usage error, 3 input error,
4 missing optional dependency. Heavy modules are imported only once a
subcommand runs, so ``nnconvert --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser"]

PROG = "nnconvert"


def _verify_command() -> Any:
    from .verify import command

    return command


class _SubcommandParser(argparse.ArgumentParser):
    """A subcommand's parser whose format-option flags are added when it is used.

    The flags come from the formats' declared options (the registry), which
    imports the format modules: done only when this subcommand runs or shows
    its help, so ``nnconvert --help`` stays fast.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.pending: list[Any] = []

    def _add_pending(self) -> None:
        while self.pending:
            self.pending.pop(0)(self)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self._add_pending()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._add_pending()
        return super().format_help()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Convert trained MLPs between scikit-learn, ONNX, JSON weights, HDF5 and Keras files, "
        "and prove each conversion numerically.",
        epilog="Exit codes: 0 success, 1 verification mismatch, 2 usage error, 3 input error, "
        "4 missing optional dependency.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_SubcommandParser)
    commands.required = True
    _add_convert(commands)
    _add_inspect(commands)
    _add_formats(commands)
    _add_verify(commands)
    return parser


def _add_read_options(parser: _SubcommandParser) -> None:
    parser.add_argument("--from", dest="from_format", metavar="FMT", help="input format (default: detected from content, then suffix)")
    parser.add_argument("--trust-pickle", action="store_true", help="allow loading pickle/joblib files: this runs code stored in the file")
    parser.pending.append(lambda p: _add_format_flags(p, "reader"))
    parser.add_argument(
        "--read-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="read each input in a child process killed after SECONDS (0: read in this process). Default: "
        "HDF5-based inputs (hdf5, keras-h5, keras) get 60 s plus 1 s per 10 MB, since libhdf5 can hang on "
        "corrupt files; other formats are read in this process",
    )


def _add_format_flags(parser: argparse.ArgumentParser, verb: str) -> None:
    """One flag per declared reader/writer option (formats sharing an option share its flag)."""
    from .registry import formats

    by_flag: dict[str, list[tuple[str, Any]]] = {}
    for spec in formats().values():
        for option in spec.read_options if verb == "reader" else spec.write_options:
            if option.flag:
                by_flag.setdefault(option.flag, []).append((spec.name, option))
    group = parser.add_argument_group(f"{verb} options (from the formats' declarations)")
    for flag, declared in by_flag.items():
        option = declared[0][1]
        owners = ", ".join(dict.fromkeys(name for name, _ in declared))
        settings: dict[str, Any] = {"dest": f"{verb}_option_{option.name}", "help": f"{option.help} ({owners})"}
        if option.flag_value is not None or option.type is bool:
            settings.update(action="store_const", const=True if option.flag_value is None else option.flag_value)
        else:
            choices = list(dict.fromkeys(choice for _, o in declared for choice in o.choices))
            settings.update(type=option.parse or option.type, metavar=option.metavar or option.name.upper())
            if choices:
                settings.update(choices=choices, metavar=None)
        group.add_argument(flag, **settings)


def _format_options(args: argparse.Namespace, verb: str) -> dict[str, Any]:
    """The reader/writer options given on the command line, by option name."""
    prefix = f"{verb}_option_"
    return {key[len(prefix) :]: value for key, value in vars(args).items() if key.startswith(prefix) and value is not None}


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0 (0 turns the limit off), got {text!r}")
    return value


def _add_convert(commands: Any) -> None:
    parser = commands.add_parser(
        "convert",
        help="convert a model file to another format",
        description="Convert SRC to DST (formats from --from/--to, else detected). With --out-dir, every "
        "positional argument is a source and each is written to the folder with the --to format's suffix.",
    )
    parser.add_argument("paths", nargs="*", metavar="SRC [DST]", help="source file(s), then the destination")
    _add_read_options(parser)
    parser.add_argument("--to", dest="to_format", metavar="FMT", help="output format (default: from DST's suffix)")
    parser.add_argument("--out-dir", type=Path, help="convert every SRC into this folder")
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="with several inputs: convert every one even when some fail, report each failure, and exit "
        "with the highest error code at the end (default: stop at the first failure)",
    )
    parser.pending.append(lambda p: _add_format_flags(p, "writer"))
    batch = parser.add_argument_group("batch (docs/scale.md)")
    batch.add_argument("--manifest", metavar="JOBS", help="convert every job of a .csv/.jsonl manifest (source, destination, options)")
    batch.add_argument("--results", metavar="FILE", help="--manifest: the results file (default: JOBS.results.csv/.jsonl)")
    batch.add_argument("--workers", type=int, default=1, metavar="N", help="--manifest: worker processes (default 1)")
    batch.add_argument("--engine", choices=["local", "spark"], default="local", help="--manifest: a local pool (default) or a Spark job")
    batch.add_argument("--master", metavar="URL", help="--engine spark: the Spark master")
    batch.add_argument("--quiet", action="store_true", help="no progress bar")
    try:
        _verify_command().add_convert_options(parser)
    except ImportError:  # pragma: no cover - verify is part of the package
        pass


def _add_inspect(commands: Any) -> None:
    parser = commands.add_parser("inspect", help="show a model file's layers, shapes, task and provenance")
    parser.add_argument("file", type=Path)
    _add_read_options(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--html", type=Path, metavar="OUT.html", help="also write the model diagram as a self-contained HTML page")


def _add_formats(commands: Any) -> None:
    parser = commands.add_parser("formats", help="list the formats, what each reads and writes")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _add_verify(commands: Any) -> None:
    parser = commands.add_parser(
        "verify",
        help="run two models side by side and report numerical parity",
        description="Run REFERENCE and CANDIDATE on the same inputs and report per-output errors.",
    )
    _verify_command().configure_parser(parser)


# -- commands -------------------------------------------------------------------


def _read_options(args: argparse.Namespace) -> dict[str, Any]:
    return _format_options(args, "reader")


def _write_options(args: argparse.Namespace) -> dict[str, Any]:
    return _format_options(args, "writer")


def _conversion_pairs(args: argparse.Namespace) -> list[tuple[Path, Path]]:
    from .errors import UsageError

    paths = [Path(p) for p in args.paths]
    if args.out_dir is None:
        if len(paths) != 2:
            raise UsageError("convert takes SRC DST (or several SRC with --out-dir)")
        return [(paths[0], paths[1])]
    if not args.to_format:
        raise UsageError("--out-dir needs --to FMT to name the output format")
    from . import registry

    spec = registry.get(args.to_format)
    if not spec.suffixes:
        raise UsageError(f"the {spec.name} format has no file suffix to name outputs with")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    return [(src, args.out_dir / (src.stem + spec.suffixes[0])) for src in paths]


def _read_timeout(args: argparse.Namespace, path: Path) -> float | None:
    """--read-timeout, or the default for this file (a limit only where libhdf5 reads it); 0 is None."""
    if args.read_timeout is None:
        from .api import default_read_timeout

        return default_read_timeout(path, args.from_format)
    return args.read_timeout or None


def _convert_one(args: argparse.Namespace, src: Path, dst: Path) -> int:
    from .api import load, save

    _verify_command().check_convert_target(dst, args)
    args.read_options = _read_options(args)  # verify_after_convert checks whether they changed the reading
    model = load(src, format=args.from_format, trust=args.trust_pickle, timeout=_read_timeout(args, src), **args.read_options)
    save(model, dst, format=args.to_format, **_write_options(args))
    print(f"{src} -> {dst}")
    if getattr(args, "verify", False) or getattr(args, "emit_test_data", False):
        return int(_verify_command().verify_after_convert(src, dst, args, model))
    return 0


def _run_convert(args: argparse.Namespace) -> int:
    if args.manifest:
        from .errors import UsageError
        from .manifest import cli_run

        if args.paths:
            raise UsageError("convert takes SRC DST or --manifest JOBS, not both")
        return cli_run(args)
    if not args.paths:
        from .errors import UsageError

        raise UsageError("convert needs SRC DST (or several SRC with --out-dir, or --manifest JOBS)")
    status = 0
    for src, dst in _conversion_pairs(args):
        if not args.keep_going:
            status = max(status, _convert_one(args, src, dst))
            continue
        try:
            status = max(status, _convert_one(args, src, dst))
        except Exception as exc:  # noqa: BLE001 - reported like main() does, then on to the next input
            status = max(status, _report(exc))
    return status


def _run_inspect(args: argparse.Namespace) -> int:
    from .api import load_with_format
    from .describe import describe, format_description

    timeout = _read_timeout(args, args.file)
    model, format_name = load_with_format(args.file, args.from_format, trust=args.trust_pickle, timeout=timeout, **_read_options(args))
    info = {"file": str(args.file), "format": format_name, "file_size": args.file.stat().st_size, **describe(model)}
    print(json.dumps(info, indent=2) if args.json else format_description(info))
    if args.html is not None:
        from .verify.diagram import write_diagram_page

        write_diagram_page(info, args.html)
    return 0


def _run_formats(args: argparse.Namespace) -> int:
    from . import registry

    rows: list[dict[str, Any]] = []
    for spec in registry.formats().values():
        missing = spec.missing_dependencies()
        rows.append(
            {
                "name": spec.name,
                "suffixes": list(spec.suffixes),
                "read": spec.read is not None,
                "write": spec.write is not None,
                "needs_trust": spec.needs_trust,
                "available": not missing,
                "missing": missing,
                "description": spec.description,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'format':<15}{'suffixes':<22}{'read':<6}{'write':<7}{'installed':<11}description")
    for row in rows:
        installed = "yes" if row["available"] else "no: pip install " + " ".join(row["missing"])
        print(
            f"{row['name']:<15}{' '.join(row['suffixes']):<22}{'yes' if row['read'] else '-':<6}"
            f"{'yes' if row['write'] else '-':<7}{installed:<11}{row['description']}"
        )
    return 0


def _run_verify(args: argparse.Namespace) -> int:
    return int(_verify_command().run(args))


_COMMANDS = {"convert": _run_convert, "inspect": _run_inspect, "formats": _run_formats, "verify": _run_verify}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (never raises for bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except BrokenPipeError:  # the reader of our output went away (e.g. `| head`)
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; no output was written", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - never a traceback on the command line
        return _report(exc)


def _report(exc: Exception) -> int:
    """Print ``exc`` as one ``nnconvert: error:`` line; its exit code."""
    from .errors import NnconvertError, exit_code_for

    if isinstance(exc, BrokenPipeError):
        raise exc
    if isinstance(exc, NnconvertError):
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    if isinstance(exc, (OSError, MemoryError, RecursionError)):
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 3
    print(
        f"{PROG}: error: unexpected {type(exc).__name__}: {exc} (this is a bug in nnconvert; please report it)",
        file=sys.stderr,
    )
    return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
