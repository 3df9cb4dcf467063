"""The whole-file expansion limit: memory stays bounded whatever a file's nesting of compressions.

Each bomb of the corpus (a ``.keras`` zip holding a gzip-compressed HDF5, a
skops file with an inflated ``.npy`` member, nnconvert's HDF5 layout with
gzip) is read in a fresh child process that measures its peak resident
memory (which counts libhdf5's and zlib's own buffers, unlike tracemalloc)
before and after the read. Each declares 128 MB of float64 zeros.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_bad_inputs  # noqa: E402

from nnconvert._io.budget import FLOOR_BYTES  # noqa: E402

BOMBS = ("keras/gzip-hdf5-bomb", "skops/npy-bomb", "hdf5/gzip-bomb")
GROWTH_CAP = 40 * 2**20  # the bombs inflate to 128 MB; reading within the limit allocates a few MB

_RSS_PROBE = r"""
import json, resource, sys, warnings
warnings.simplefilter("ignore")
import nnconvert
bomb, fmt, valid = sys.argv[1:4]
nnconvert.load(valid, format=fmt)  # imports and caches outside the measurement
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
try:
    nnconvert.load(bomb, format=fmt)
    outcome, message = "loaded", ""
except Exception as exc:
    outcome, message = type(exc).__name__, str(exc)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"growth": after - before, "outcome": outcome, "message": message}))
"""


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bombs")
    cases = make_bad_inputs.make_corpus(directory, ("hdf5", "keras", "skops"))
    valid = make_bad_inputs.write_valid_files(directory / "valid")
    return {case.name: (case, valid[case.name.split("/")[0]]) for case in cases if case.name in BOMBS}


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux only")
def test_nested_compression_keeps_memory_bounded(bombs):
    processes = {}
    for name in BOMBS:
        case, valid = bombs[name]
        fmt = name.split("/")[0]
        command = [sys.executable, "-c", _RSS_PROBE, str(case.path), fmt, str(valid)]
        processes[name] = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for name, process in processes.items():
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
        result = json.loads(out)
        print(f"{name}: peak RSS grew {result['growth'] / 2**20:.1f} MB, {result['outcome']}")
        assert result["outcome"] == "ReadError", (name, result)
        assert str(bombs[name][0].path) in result["message"]
        assert result["growth"] < GROWTH_CAP, f"{name}: reading grew memory by {result['growth'] / 2**20:.0f} MB"


def test_budget_counts_every_layer_of_a_file(tmp_path):
    """Charges from nested containers add up: two layers each under the floor together pass it."""
    from nnconvert._io.budget import charge, file_budget
    from nnconvert.errors import ReadError

    path = tmp_path / "model.keras"
    path.write_bytes(b"x" * 100)
    with file_budget(path, "keras") as budget, file_budget(path, "keras") as inner:
        assert inner is budget  # the HDF5 inside a zip charges the zip's budget
        charge(FLOOR_BYTES // 2, "archive member 'model.weights.h5'")
        with pytest.raises(ReadError, match="whole-file limit") as caught:
            charge(FLOOR_BYTES // 2 + 1, "dataset /layers/dense/vars/0")
    assert str(path) in str(caught.value)


def test_declared_parameters_bound_the_file(tmp_path):
    from nnconvert._io.budget import DECLARED_SLACK_BYTES, charge, declare_parameters, file_budget
    from nnconvert.errors import ReadError

    path = tmp_path / "model.h5"
    path.write_bytes(b"x" * 10**6)  # 200 MB by the size rule alone
    with file_budget(path, "hdf5"):
        declare_parameters(1000)
        charge(8000 + DECLARED_SLACK_BYTES, "dataset /layers/0/weights")
        with pytest.raises(ReadError, match="declared parameters"):
            charge(1, "dataset /layers/0/bias")
