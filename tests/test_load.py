"""Many conversions in one process, from several threads, and byte-for-byte determinism.

- 1,000 conversions (every writable format in turn, with a verification every
  25th) in a fresh child process grow its resident memory by less than 50 MB
  after warm-up (about 5 s here);
- threads converting at once give the same bytes as converting each alone;
- the same input gives byte-identical files for every writable format, also
  when written seconds apart (zip and HDF5 timestamps);
- ``nnconvert convert --out-dir`` over several inputs writes what single
  conversions write.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_bad_inputs  # noqa: E402

import nnconvert  # noqa: E402
from nnconvert import cli, registry  # noqa: E402
from nnconvert.ir import Activation, DenseLayer, Head, InputSpec, Model, Task  # noqa: E402

WRITABLE = tuple(name for name, spec in registry.formats().items() if spec.write is not None)
SUFFIX = {name: registry.get(name).suffixes[0] for name in WRITABLE}
RSS_GROWTH_LIMIT = 50 * 2**20

_MANY_CONVERSIONS = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
from pathlib import Path
import nnconvert

source, folder, count, formats = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(",")

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

def convert(i):
    fmt = formats[i % len(formats)]
    target = folder / f"out_{fmt}{'.h5' if 'h5' in fmt or fmt == 'hdf5' else '.c' if fmt == 'c' else ''}"
    nnconvert.convert(source, target, to_format=fmt)
    if i % 25 == 0:
        report = nnconvert.verify(source, target, n_samples=64, trust=True)
        assert report.passed, report

for i in range(100):  # warm-up: imports, caches, allocator pools
    convert(i)
before, start = rss(), time.perf_counter()
for i in range(count):
    convert(i)
print(json.dumps({"before": before, "after": rss(), "seconds": time.perf_counter() - start}))
"""


def test_a_thousand_conversions_hold_memory_flat(tmp_path):
    source = make_bad_inputs.write_valid_files(tmp_path / "valid")["json"]
    result = subprocess.run(
        [sys.executable, "-c", _MANY_CONVERSIONS, str(source), str(tmp_path), "1000", ",".join(WRITABLE)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout)
    growth = measured["after"] - measured["before"]
    print(f"1000 conversions in {measured['seconds']:.1f} s; RSS {measured['before'] / 2**20:.0f} -> {measured['after'] / 2**20:.0f} MB")
    assert growth < RSS_GROWTH_LIMIT, f"RSS grew by {growth / 2**20:.1f} MB over 1000 conversions"


def _models() -> list[Model]:
    models = [make_bad_inputs.tiny_model(), make_bad_inputs.tiny_model(np.float32, ("a", "b", "c"))]
    rng = np.random.default_rng(5)
    layers = (DenseLayer(rng.normal(size=(5, 7)), rng.normal(size=7), Activation.TANH, "h"), DenseLayer(rng.normal(size=(7, 2)), rng.normal(size=2)))
    models.append(Model(layers=layers, head=Head(Task.REGRESSION), input=InputSpec(5)))
    return models


def _sources(folder: Path) -> list[Path]:
    paths = []
    for index, model in enumerate(_models()):
        path = folder / f"model{index}.json"
        nnconvert.save(model, path)
        paths.append(path)
    return paths


def test_threads_give_the_same_bytes_as_converting_alone(tmp_path):
    sources = _sources(tmp_path)
    jobs = [(source, fmt) for source in sources for fmt in WRITABLE]
    alone = {}
    for source, fmt in jobs:
        target = tmp_path / "alone" / f"{source.stem}_{fmt}{SUFFIX[fmt]}"
        target.parent.mkdir(exist_ok=True)
        nnconvert.convert(source, target, to_format=fmt)
        alone[(source, fmt)] = target.read_bytes()
    errors: list[BaseException] = []
    results: dict[tuple[Path, str, int], bytes] = {}

    def work(thread: int) -> None:
        try:
            folder = tmp_path / f"thread{thread}"
            folder.mkdir()
            for round_ in range(3):
                for source, fmt in jobs[thread % len(jobs) :] + jobs[: thread % len(jobs)]:
                    target = folder / f"{source.stem}_{fmt}{SUFFIX[fmt]}"
                    nnconvert.convert(source, target, to_format=fmt)
                    results[(source, fmt, thread * 10 + round_)] = target.read_bytes()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(results) == 4 * 3 * len(jobs)
    for (source, fmt, _), data in results.items():
        assert data == alone[(source, fmt)], f"{source.name} -> {fmt} differs when converted in a thread"


def test_outputs_are_deterministic_even_seconds_apart(tmp_path):
    sources = _sources(tmp_path)
    first = {}
    for source in sources:
        for fmt in WRITABLE:
            target = tmp_path / "first" / f"{source.stem}_{fmt}{SUFFIX[fmt]}"
            target.parent.mkdir(exist_ok=True)
            nnconvert.convert(source, target, to_format=fmt)
            first[(source, fmt)] = target.read_bytes()
    time.sleep(2.1)  # zip timestamps have a 2-second resolution
    for source in sources:
        for fmt in WRITABLE:
            target = tmp_path / "second" / f"{source.stem}_{fmt}{SUFFIX[fmt]}"
            target.parent.mkdir(exist_ok=True)
            nnconvert.convert(source, target, to_format=fmt)
            assert target.read_bytes() == first[(source, fmt)], f"{fmt} output is not deterministic"


@pytest.mark.parametrize("fmt", ["onnx", "json", "hdf5"])
def test_out_dir_matches_single_conversions(tmp_path, capsys, fmt):
    sources = _sources(tmp_path)
    out_dir = tmp_path / "out"
    assert cli.main(["convert", *map(str, sources), "--to", fmt, "--out-dir", str(out_dir)]) == 0
    capsys.readouterr()
    for source in sources:
        single = tmp_path / f"single{SUFFIX[fmt]}"
        nnconvert.convert(source, single, to_format=fmt)
        assert (out_dir / (source.stem + SUFFIX[fmt])).read_bytes() == single.read_bytes()
