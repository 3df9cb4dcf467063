"""SIGTERM/SIGHUP end the command line as Ctrl-C does, and the isolated reader never outlives it.

Each case runs the real command line in a child process, with one function
patched to block (so the signal arrives at a known moment), then signals it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_bad_inputs  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")

# the reader child (forked by the isolation layer) records its pid, then blocks
_HANGING_READER = r"""
import os, sys, time
import nnconvert.api as api
from nnconvert.cli import main
parent, original = os.getpid(), api._read_here  # what the isolated child runs
def read_here(*args, **kwargs):
    if os.getpid() != parent:
        open(sys.argv[1], "w").write(str(os.getpid()))
        time.sleep(600)
    return original(*args, **kwargs)
api._read_here = read_here
sys.exit(main(sys.argv[2:]))
"""

# the writer has filled its .part file; the signal arrives before the rename
_HANGING_WRITE = r"""
import sys, time
import nnconvert._io.atomic as atomic
from nnconvert.cli import main
def fsync_path(path):
    open(sys.argv[1], "w").write(str(path))
    time.sleep(600)
atomic.fsync_path = fsync_path
sys.exit(main(sys.argv[2:]))
"""


def _wait_for(path: Path, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def _gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            with open(f"/proc/{pid}/stat") as stat:  # a zombie waiting for its (dead) parent's reaper is gone too
                if stat.read().split(")")[-1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_the_reader_child_dies_with_the_command_line(tmp_path, signum):
    valid = make_bad_inputs.write_valid_files(tmp_path / "valid")["hdf5"]
    marker = tmp_path / "child.pid"
    target = tmp_path / "out.json"
    process = subprocess.Popen([sys.executable, "-c", _HANGING_READER, str(marker), "convert", str(valid), str(target)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        child = int(_wait_for(marker))
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
        assert _gone(child), f"the reader {child} outlived the command line ({signal.Signals(signum).name})"
    finally:
        process.kill()
    if signum != signal.SIGKILL:
        assert process.returncode == 128 + signum and "Traceback" not in err, err
        assert "no output was written" in err
    assert not target.exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_termination_removes_the_part_file(tmp_path, signum):
    source = make_bad_inputs.write_valid_files(tmp_path / "valid")["json"]
    out = tmp_path / "out"
    out.mkdir()
    marker = tmp_path / "part.path"
    process = subprocess.Popen([sys.executable, "-c", _HANGING_WRITE, str(marker), "convert", str(source), str(out / "model.onnx")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        part = Path(_wait_for(marker))
        assert part.exists() and part.name.endswith(".part")
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signum, err
    assert list(out.iterdir()) == [], "a temporary file was left behind"
