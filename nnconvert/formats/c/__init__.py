"""The ``c`` target: a model as one self-contained C99 source file and its header.

``nnconvert.save(model, "model.c")`` writes ``model.c`` and ``model.h``: weights
as ``static const`` tables, the preprocessing with the graph's own operations,
no allocation, ``<math.h>`` only where an activation needs it and no library
(not even libm, no floating point) at the integer precisions. The package is
split by concern:

- ``options``: writer options and the refusal of what cannot be expressed;
- ``tables``: ``static const`` tables and exact literals;
- ``preprocess``, ``layers``, ``norm_code``: float preprocessing, dense and activation code,
  batch norm / layer norm / PReLU code;
- ``fixed_fold``: what the integer precisions hold (batch norms folded, the rest named);
- ``fixed``, ``fixed_code``: quantization, its numpy emulation, integer code;
- ``entry``: predict / predict_proba / forward per task;
- ``header``: the header, the metadata block, file assembly;
- ``build``: compiling generated files (verify, tests, benchmarks).

Write only: the format has no reader. ``describe_file`` (``report``) reads the
metadata block back for ``nnconvert inspect`` and the convert summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..._io.atomic import Output
from ...ir import Model
from ...registry import FormatSpec, register
from .header import Program, read_metadata, render_header, render_source
from .options import WRITE_OPTIONS, check_supported, parse_options
from .report import describe_file, format_file_description, summary_text

__all__ = ["write", "generate", "describe_file", "format_file_description", "summary_text", "read_metadata", "WRITE_OPTIONS"]


def generate(model: Model, *, header_name: str = "model.h", source_name: Path | None = None, **options: Any) -> tuple[str, str, dict[str, Any]]:
    """The source text, the header text and the metadata of ``model`` (nothing is written).

    ``source_name`` is the file's name, the default prefix's origin. Options: ``precision`` (float32, float64, int16, int8), ``prefix`` (C identifier,
    default from the file name), and for the integer precisions ``input_range`` /
    ``calibration`` (what the fixed-point formats are sized for). ``dtype`` is accepted
    as a synonym of a float ``precision``.

    Raises:
        UsageError: a bad option.
        UnsupportedModelError: a layer kind or activation the target cannot express (named).
    """
    parsed = parse_options(model, source_name, options)
    check_supported(model, parsed.precision)
    program: Program
    if parsed.is_fixed:
        from .fixed_code import fixed_program

        program = fixed_program(model, parsed, header_name)
    else:
        from .float_code import float_program

        program = float_program(model, parsed, header_name)
    return render_source(program), render_header(program), program.metadata


def write(model: Model, output: Output | str | Path, **options: Any) -> None:
    """Write ``model`` as C source to ``output`` and its header beside the final file.

    Everything is generated (and any refusal raised) before a byte is written. The
    header is a companion of the source: written atomically (temporary file, fsync,
    rename) once the source is complete on disk and declared on ``output``, so that
    under ``nnconvert.save`` both land or neither does.

    Raises:
        UsageError, UnsupportedModelError: as :func:`generate`.
    """
    from ..._io.atomic import as_output, atomic_output, fsync_path

    output = as_output(output)
    header_path = output.final_path.with_suffix(".h")
    source, header, _ = generate(model, header_name=header_path.name, source_name=output.final_path, **options)
    with open(output.path, "w", encoding="ascii", newline="\n") as handle:
        handle.write(source)
    fsync_path(output.path)
    with atomic_output(header_path) as temp:
        with open(temp, "w", encoding="ascii", newline="\n") as handle:
            handle.write(header)
    output.add_companion(header_path)


def _inspect_file(path: Path) -> tuple[dict[str, Any], str]:
    info = describe_file(path)
    return info, format_file_description(info)


register(
    FormatSpec(
        name="c",
        suffixes=(".c",),
        description="C99 source + header for microcontrollers (write only; float32/float64/int16/int8)",
        write=write,
        write_options=WRITE_OPTIONS,
        runner="c",
        summary=summary_text,
        inspect_file=_inspect_file,
    )
)
