"""The mutation fuzzer (tests/fuzz.py), bounded for CI.

NNCONVERT_FUZZ_CASES sets the number of cases (default 800, about 13 s on
two cores) and NNCONVERT_FUZZ_SEED the seed (default 0, so CI is
repeatable; any other value explores new cases). For long runs:
``python tests/fuzz.py --cases 100000 --seed 7 --keep /tmp/fuzz-failures``.

Every case must convert, or fail with an nnconvert error (exit code 3)
naming the file, leaving nothing written; exceptions of any other type,
api.load's generic wrapper, hangs and interpreter crashes fail the test.
Cases are read as the command line reads them: HDF5-based files in a child
process with a time limit, because libhdf5 itself can spin forever on a
corrupt variable-length string attribute (inside H5Aread, where no Python
code runs; seed 0 hits one at case 781). Such a file must end in
nnconvert's ReadError ("reading took longer than ..."), never in a hang.
``python tests/fuzz.py --no-isolation`` shows libhdf5's own hangs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fuzz  # noqa: E402

CASES = int(os.environ.get("NNCONVERT_FUZZ_CASES", "800"))
SEED = int(os.environ.get("NNCONVERT_FUZZ_SEED", "0"))
TIMEOUT = 3.0  # seconds per case (the isolated read gets half); reading a small file takes milliseconds


def test_fuzzed_files_end_in_nnconvert_errors():
    failures = fuzz.run(CASES, SEED, timeout=TIMEOUT)
    assert failures == [], "\n".join(str(f) for f in failures)


def test_mutations_change_the_seed_and_are_repeatable(tmp_path):
    seeds = fuzz.make_seeds(tmp_path)
    assert {seed.format for seed in seeds} >= {"onnx", "json", "hdf5", "keras-h5", "keras", "sklearn-pickle", "skops"}
    first = [fuzz.mutate(seeds[i % len(seeds)], fuzz._case_rng(SEED, i), seeds) for i in range(50)]
    again = [fuzz.mutate(seeds[i % len(seeds)], fuzz._case_rng(SEED, i), seeds) for i in range(50)]
    assert first == again
    assert sum(data != seeds[i % len(seeds)].data for i, (data, _) in enumerate(first)) >= 45
