"""The ``c`` target: a model as one self-contained C99 source file and its header.

``nnconvert.save(model, "model.c")`` writes ``model.c`` and ``model.h``: weights
as ``static const`` tables, the preprocessing with the graph's own operations,
no allocation, ``<math.h>`` only where an activation needs it and no library
(not even libm, no floating point) at the integer precisions. The package is
split by concern:

- ``options``: writer options and the refusal of what cannot be expressed;
- ``tables``: ``static const`` tables and exact literals;
- ``preprocess``, ``layers``: float preprocessing, dense and activation code;
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

from ...ir import Model
from ...registry import FormatSpec, register
from .header import Program, read_metadata, render_header, render_source
from .options import WRITE_OPTIONS, check_supported, parse_options
from .report import describe_file, format_file_description, summary_text

__all__ = ["write", "generate", "describe_file", "format_file_description", "summary_text", "read_metadata", "WRITE_OPTIONS"]


def generate(model: Model, *, header_name: str = "model.h", final_path: Path | None = None, **options: Any) -> tuple[str, str, dict[str, Any]]:
    """The source text, the header text and the metadata of ``model`` (nothing is written).

    Options: ``precision`` (float32, float64, int16, int8), ``prefix`` (C identifier,
    default from the file name), and for the integer precisions ``input_range`` /
    ``calibration`` (what the fixed-point formats are sized for). ``dtype`` is accepted
    as a synonym of a float ``precision``.

    Raises:
        UsageError: a bad option.
        UnsupportedModelError: a layer kind or activation the target cannot express (named).
    """
    parsed = parse_options(model, final_path, options)
    check_supported(model, parsed.precision)
    program: Program
    if parsed.is_fixed:
        from .fixed_code import fixed_program

        program = fixed_program(model, parsed, header_name)
    else:
        from .float_code import float_program

        program = float_program(model, parsed, header_name)
    return render_source(program), render_header(program), program.metadata


def write(model: Model, path: str | Path, *, final_path: str | Path | None = None, **options: Any) -> None:
    """Write ``model`` as C source to ``path`` and its header beside the final file.

    Everything is generated (and any refusal raised) before a byte is written; the
    header is committed atomically (temporary file, fsync, rename) after the source is
    complete on disk, so that a failure leaves the old pair in place.

    Raises:
        UsageError, UnsupportedModelError: as :func:`generate`.
    """
    from ..._io.atomic import atomic_output, fsync_path

    path = Path(path)
    final = Path(final_path) if final_path is not None else path
    header_path = final.with_suffix(".h")
    source, header, _ = generate(model, header_name=header_path.name, final_path=final, **options)
    with open(path, "w", encoding="ascii", newline="\n") as handle:
        handle.write(source)
    fsync_path(path)
    with atomic_output(header_path) as temp:
        with open(temp, "w", encoding="ascii", newline="\n") as handle:
            handle.write(header)


register(
    FormatSpec(
        name="c",
        suffixes=(".c",),
        description="C99 source + header for microcontrollers (write only; float32/float64/int16/int8)",
        write=write,
        write_options=WRITE_OPTIONS,
    )
)
