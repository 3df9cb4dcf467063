"""Command-line start-up: ``nnconvert --help``, a small ``nnconvert convert``, and what they import."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

_SKLEARN_CHECK = """
import sys
from nnconvert.cli import main
code = main(["convert", {source!r}, {target!r}])
heavy = sorted(name for name in ("sklearn", "scipy", "skl2onnx", "h5py", "keras", "torch") if name in sys.modules)
print(code, ",".join(heavy) or "-")
"""


def console_script() -> list[str]:
    """The installed ``nnconvert`` entry point (not a version manager's shim, which adds its own start-up)."""
    script = Path(sysconfig.get_path("scripts")) / "nnconvert"
    return [str(script)] if script.exists() else [sys.executable, "-m", "nnconvert"]


def best_wall_time(command: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def python_baseline(repeat: int) -> float:
    """``python -c pass``: the interpreter's own start-up, the floor of any command."""
    return best_wall_time([sys.executable, "-c", "pass"], repeat)


def heavy_imports_of_json_to_onnx(source: Path, target: Path) -> tuple[int, str]:
    """Exit code of ``nnconvert convert source target`` in a fresh interpreter, and the heavy modules it imported."""
    code = _SKLEARN_CHECK.format(source=str(source), target=str(target))
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                               env={**os.environ, "PYTHONWARNINGS": "ignore"})
    exit_code, heavy = completed.stdout.split()[-2:]
    return int(exit_code), "" if heavy == "-" else heavy
