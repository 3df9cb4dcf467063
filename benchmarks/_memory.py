"""Peak resident memory of each large conversion, one child process per measurement."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHILD = Path(__file__).resolve().parent / "_memory_child.py"


def peak_memory(tool: str, output: Path) -> dict[str, int | bool | str]:
    """Run one conversion in a fresh interpreter; its memory figures (bytes)."""
    completed = subprocess.run(
        [sys.executable, str(CHILD), tool, str(output)], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"memory child for {tool} failed:\n{completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])
