"""Size reports of generated files for ``nnconvert inspect`` and the convert summary.

Weights and RAM come from the metadata block (exact: the tables' bytes, and the
stack arrays of the deepest call). Code bytes are measured when a C compiler is
installed: the ``.text`` section of the file compiled with ``-Os`` for this host,
an estimate of a microcontroller build (ARM Thumb code is usually smaller).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ...errors import MissingDependencyError, ReadError
from .header import layers_text, read_metadata

__all__ = ["describe_file", "format_file_description", "summary_text"]


def describe_file(path: str | os.PathLike[str], *, measure_code: bool = True) -> dict[str, Any]:
    """The metadata block, the file's size and (with a compiler) the compiled code size.

    Raises:
        ReadError: not a file the c target generated.
    """
    path = Path(path)
    meta = read_metadata(path)
    info: dict[str, Any] = {"file": str(path), "format": "c", "file_size": path.stat().st_size, **meta}
    sizes = dict(meta.get("sizes", {}))
    sizes["code_bytes"] = None
    if measure_code:
        from .build import compile_object_size

        try:
            sections = compile_object_size(path)
            sizes["code_bytes"] = sections.get("text")
            sizes["code_measured_with"] = "host cc -Os, .text section"
        except (MissingDependencyError, ReadError) as exc:
            sizes["code_note"] = str(exc).splitlines()[0]
    info["sizes"] = sizes
    return info


def _bytes(value: Any) -> str:
    return "unknown" if value is None else f"{value:,} B"


def format_file_description(info: dict[str, Any]) -> str:
    """Readable text of :func:`describe_file`'s dict."""
    sizes, error = info["sizes"], info["error_bound"]
    layers = layers_text(info)
    lines = [
        f"file:        {info['file']} (c, header {info['header']}, prefix {info['prefix']})",
        f"producer:    {info['producer']}",
        f"task:        {info['task']}",
    ]
    if info.get("classes") is not None:
        lines.append(f"classes:     {info['classes']} ({info['classes_dtype']})")
    lines += [
        f"precision:   {info['precision']}" + (f" (inputs Q{info['fixed_point']['input_frac_bits']}, outputs Q{info['fixed_point']['output_frac_bits']} int32)" if info.get("fixed_point") else ""),
        f"layers:      {layers}",
        f"error bound: {error['max_abs']:.3g} ({error['how']})",
        summary_sizes(sizes),
    ]
    return "\n".join(lines)


def summary_sizes(sizes: dict[str, Any]) -> str:
    code = _bytes(sizes.get("code_bytes"))
    if sizes.get("code_bytes") is None and sizes.get("code_note"):
        code += f" ({sizes['code_note']})"
    return f"flash:       weights {_bytes(sizes.get('weights_bytes'))}, code {code}; RAM for activations {_bytes(sizes.get('ram_bytes'))}"


def summary_text(path: str | os.PathLike[str]) -> str:
    """The lines the convert command prints after writing a ``.c`` file."""
    info = describe_file(path)
    return f"  {info['precision']} C + {info['header']}; " + summary_sizes(info["sizes"]).replace("flash:       ", "flash: ")
