"""Child process of the memory benchmark: build the large model, convert it once, print peak memory as JSON.

    python benchmarks/_memory_child.py {nnconvert,skl2onnx,lower_bound} OUTPUT

The peak is the process' high-water mark (VmHWM) during the conversion alone:
after the model is built and the conversion libraries imported, the mark is
reset through /proc/self/clear_refs (Linux >= 4.0), so that neither building
the model nor importing counts. Where the reset is unavailable the baseline
falls back to the resident size before the model existed, i.e. the
measurement then includes the source weights and building them.
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def _import_tool(tool: str) -> None:
    import numpy  # noqa: F401

    if tool == "nnconvert":
        import onnx  # noqa: F401

        import nnconvert.converters.sklearn  # noqa: F401
        import nnconvert.formats.onnx  # noqa: F401
        import nnconvert.formats.onnx._writer  # noqa: F401
    elif tool == "skl2onnx":
        import skl2onnx  # noqa: F401


def main(argv: list[str]) -> None:
    tool, output = argv[0], Path(argv[1])
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import large_mlp, weights_nbytes
    from _conversion import lower_bound, nnconvert_to_onnx, skl2onnx_to_onnx

    _import_tool(tool)
    gc.collect()
    before_model = _status_kib("VmRSS")
    estimator, X = large_mlp()
    gc.collect()
    reset = _reset_peak()
    baseline = _status_kib("VmRSS") if reset else before_model
    if tool == "nnconvert":
        nnconvert_to_onnx(estimator, output)
    elif tool == "skl2onnx":
        skl2onnx_to_onnx(estimator, X, output)
    else:
        lower_bound(estimator, output)
    peak = _status_kib("VmHWM")
    result = {
        "tool": tool,
        "reset": reset,
        "extra_bytes": (peak - baseline) * 1024,
        "peak_bytes": peak * 1024,
        "source_bytes": weights_nbytes(estimator),
        "output_bytes": output.stat().st_size,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
