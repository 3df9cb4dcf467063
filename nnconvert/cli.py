"""The ``nnconvert`` command line: convert, inspect, formats, verify.

This is the one place that prints errors and picks exit codes (DESIGN.md):
0 success, 1 verification mismatch, 2 usage error, 3 input error,
4 missing optional dependency. Heavy modules are imported only once a
subcommand runs, so ``nnconvert --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
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
    parser.add_argument("--trust-pickle", action="store_true", help="allow loading pickle/joblib files and .pt files holding a whole torch module: this runs code stored in the file")
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
    """One flag per declared reader/writer option name.

    Formats declaring the same option share its flag even when they mean different
    things by it (the c target's ``precision`` float32..int8, another's float16/int8):
    the flag takes the union of the choices, its help names each format's meaning, and
    the value is checked against the chosen format's own declaration when it is used
    (:func:`nnconvert.registry.check_options`). A ``parse`` runs after the command line
    is read, with the format known (:func:`_format_options`).
    """
    from .registry import formats

    by_flag: dict[str, list[tuple[str, Any]]] = {}
    for spec in formats().values():
        for option in spec.read_options if verb == "reader" else spec.write_options:
            if option.flag:
                by_flag.setdefault(option.flag, []).append((spec.name, option))
    group = parser.add_argument_group(f"{verb} options (from the formats' declarations)")
    declarations: dict[str, dict[str, Any]] = {}
    for flag, declared in by_flag.items():
        option = declared[0][1]
        dest = f"{verb}_option_{option.name}"
        declarations[dest] = {name: o for name, o in declared}
        settings: dict[str, Any] = {"dest": dest, "help": _shared_help(declared)}
        if option.flag_value is not None or option.type is bool:
            settings.update(action="store_const", const=True if option.flag_value is None else option.flag_value)
        else:
            choices = list(dict.fromkeys(choice for _, o in declared for choice in o.choices))
            parsed_later = any(o.parse is not None for _, o in declared)
            settings.update(type=str if parsed_later else option.type, metavar=option.metavar or option.name.upper())
            if choices:
                settings.update(choices=choices, metavar=None)
        group.add_argument(flag, **settings)
    parser.set_defaults(**{f"_declared_{verb}_options": declarations})


def _shared_help(declared: list[tuple[str, Any]]) -> str:
    """``help (fmt, fmt)``; per format when their helps or choices differ: ``a (c); b (onnx)``."""
    def meaning(option: Any) -> str:
        return option.help + (f" [{'|'.join(map(str, option.choices))}]" if option.choices else "")

    by_meaning: dict[str, list[str]] = {}
    for name, option in declared:
        by_meaning.setdefault(meaning(option) if len(declared) > 1 else option.help, []).append(name)
    if len(by_meaning) == 1:
        return f"{declared[0][1].help} ({', '.join(dict.fromkeys(name for name, _ in declared))})"
    return "; ".join(f"{text} ({', '.join(names)})" for text, names in by_meaning.items())


def _format_options(args: argparse.Namespace, verb: str, spec_name: Any = None) -> dict[str, Any]:
    """The reader/writer options given on the command line, by option name.

    A flag whose value an option ``parse`` s is parsed here with the declaration of the
    format in use: ``spec_name()`` names it (called only when the formats sharing the
    flag parse it differently).

    Raises:
        UsageError: a value the parse refuses, or a shared flag whose format cannot be told.
    """
    from .errors import NnconvertError, UsageError

    prefix = f"{verb}_option_"
    declarations = getattr(args, f"_declared_{verb}_options", {})
    options: dict[str, Any] = {}
    for key, value in vars(args).items():
        if not key.startswith(prefix) or value is None:
            continue
        declared = declarations.get(key, {})
        parses = {o.parse for o in declared.values() if o.parse is not None}
        if isinstance(value, str) and parses:
            name = spec_name() if len(parses) > 1 and spec_name is not None else None
            option = declared.get(name) if name else next(o for o in declared.values() if o.parse is not None)
            if len(parses) > 1 and option is None:
                raise UsageError(f"{next(iter(declared.values())).flag} means different things to {', '.join(declared)}: name the format")
            if option.parse is not None:
                try:
                    value = option.parse(value)
                except NnconvertError:
                    raise
                except (TypeError, ValueError) as exc:
                    raise UsageError(f"{option.flag} {value}: {exc}") from None
        options[key[len(prefix) :]] = value
    return options


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
    parser.add_argument("--dequantize", action="store_true", help="write an int8 model's float32 equivalent (to formats that cannot hold int8, e.g. scikit-learn)")
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
    return _format_options(args, "reader", lambda: args.from_format)


def _write_options(args: argparse.Namespace, dst: Path | None = None) -> dict[str, Any]:
    def written() -> str | None:
        if args.to_format:
            return str(args.to_format)
        spec = None if dst is None else _written_format(None, dst)
        return None if spec is None else spec.name

    options = _format_options(args, "writer", written)
    if getattr(args, "dequantize", False):
        options["dequantize"] = True
    return options


def _written_format(to_format: str | None, dst: Path) -> Any:
    """The spec ``save`` wrote ``dst`` with: ``--to``, else the writable one its suffix names."""
    from . import registry

    return registry.get(to_format) if to_format else registry.format_for_suffix(dst, writable=True)


def _inspected_format(path: Path, from_format: str | None) -> Any:
    """The spec that describes ``path`` itself (``inspect_file``): named by ``--from``, or the
    write-only format its suffix names when no reader claims that suffix; None otherwise (then the file is loaded)."""
    from . import registry

    spec: Any
    if from_format:
        spec = registry.get(from_format)
    elif registry.format_for_suffix(path) is None:
        spec = registry.format_for_suffix(path, writable=True)
    else:
        return None
    return spec if spec is not None and spec.inspect_file is not None else None


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
    pairs = [(src, args.out_dir / (src.stem + spec.suffixes[0])) for src in paths]
    _refuse_collisions(pairs)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    return pairs


def _refuse_collisions(pairs: list[tuple[Path, Path]]) -> None:
    """Two sources mapping to one output would lose the first conversion: refused before converting anything."""
    from .errors import WriteError

    by_output: dict[str, list[Path]] = {}
    for src, dst in pairs:
        by_output.setdefault(os.path.normcase(os.path.abspath(dst)), []).append(src)
    clashes = {dst: srcs for dst, srcs in by_output.items() if len(srcs) > 1}
    if clashes:
        listed = "; ".join(f"{', '.join(map(str, srcs))} -> {dst}" for dst, srcs in clashes.items())
        raise WriteError(f"--out-dir: several inputs would be written to the same output ({listed}); nothing was converted")


def _read_timeout(args: argparse.Namespace, path: Path) -> float | None:
    """--read-timeout, or the default for this file (a limit only where libhdf5 reads it); 0 is None."""
    if args.read_timeout is None:
        from .api import default_read_timeout

        return default_read_timeout(path, args.from_format)
    return args.read_timeout or None


def _convert_one(args: argparse.Namespace, src: Path, dst: Path) -> int:
    from .api import check_destination, load, save

    _verify_command().check_convert_target(dst, args)
    check_destination(src, dst, args.from_format, args.to_format)
    args.read_options = _read_options(args)  # verify_after_convert checks whether they changed the reading
    model = load(src, format=args.from_format, trust=args.trust_pickle, timeout=_read_timeout(args, src), **args.read_options)
    if getattr(args, "emit_test_data", False):  # the model and its evidence land together or not at all
        return int(_verify_command().convert_with_evidence(src, dst, args, model, lambda path: save(model, path, format=args.to_format, **_write_options(args, dst))))
    save(model, dst, format=args.to_format, **_write_options(args, dst))
    print(f"{src} -> {dst}")
    summary = _written_format(args.to_format, dst).summary
    if summary is not None:  # what the format tells about the written file (the c target: sizes)
        print(summary(dst))
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

    spec = _inspected_format(args.file, args.from_format)
    if spec is not None and spec.inspect_file is not None:  # the format describes its files itself (write-only c)
        info, text = spec.inspect_file(args.file)
        print(json.dumps(info, indent=2) if args.json else text)
        return 0
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
        installed = "yes" if row["available"] else "no: pip install " + " ".join(f'"{m}"' if "[" in m else m for m in row["missing"])
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
    from ._io.signals import Terminated, terminate_like_interrupt

    try:
        with terminate_like_interrupt():  # SIGTERM/SIGHUP clean up like Ctrl-C: no .part file, no child left
            return _COMMANDS[args.command](args)
    except BrokenPipeError:  # the reader of our output went away (e.g. `| head`)
        sys.stderr.close()
        return 0
    except KeyboardInterrupt as exc:
        how = f"terminated by {exc}" if isinstance(exc, Terminated) else "interrupted"
        print(f"{PROG}: {how}; no output was written", file=sys.stderr)
        return 128 + exc.signum if isinstance(exc, Terminated) else 130
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
