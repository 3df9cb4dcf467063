"""A real write failure inside libhdf5 (the file size limit, as a full disk would) is a clear WriteError naming the file.

The command line runs in a child with ``RLIMIT_FSIZE`` below the output's
size, so libhdf5's own write fails with EFBIG (errno 27) exactly where a full
disk gives ENOSPC (errno 28): exit 3, one line naming the output, nothing left behind.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import nnconvert
from nnconvert.ir import Activation, DenseLayer, Head, InputSpec, Model, Task

_LIMITED = r"""
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
from nnconvert.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE and SIGXFSZ as on Linux")
@pytest.mark.parametrize("fmt, suffix", [("hdf5", ".h5"), ("keras-h5", ".h5")])
def test_file_size_limit_in_libhdf5_is_a_write_error(tmp_path, fmt, suffix):
    rng = np.random.default_rng(0)
    layers = (DenseLayer(rng.normal(size=(3, 200)), rng.normal(size=200), Activation.RELU), DenseLayer(rng.normal(size=(200, 200)), rng.normal(size=200)))
    source = nnconvert.save(Model(layers=layers, head=Head(Task.REGRESSION), input=InputSpec(3)), tmp_path / "model.json")
    out = tmp_path / "out"
    out.mkdir()
    target = out / f"model{suffix}"
    target.write_bytes(b"previous content")
    result = subprocess.run(
        [sys.executable, "-c", _LIMITED, "convert", str(source), str(target), "--to", fmt], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("nnconvert: error: ") and "Traceback" not in result.stderr and "bug" not in result.stderr
    assert str(target) in result.stderr and "File too large" in result.stderr
    assert target.read_bytes() == b"previous content"
    assert sorted(p.name for p in out.iterdir()) == [target.name]
