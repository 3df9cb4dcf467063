"""Every file of the bad-input corpus (tests/make_bad_inputs.py) ends in a specific nnconvert error.

For each broken file: the library raises an nnconvert error naming the file
and the field, layer or node at fault (never the generic "cannot read the
file: <ExcType>" wrapper that api.load puts around an unexpected exception),
within a second; the command line exits with 3, prints one line without a
traceback, and writes nothing. Files declaring absurd sizes are read in a
child process that measures the memory they make nnconvert allocate.
"""

from __future__ import annotations

import atexit
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_bad_inputs  # noqa: E402

import nnconvert  # noqa: E402
from nnconvert import cli  # noqa: E402
from nnconvert.errors import NnconvertError  # noqa: E402

# api.load's catch-all for an exception a reader let escape; it must never be what fires
GENERIC_WRAPPER = re.compile(r"cannot read the file: [A-Za-z_][\w.]*: ")
CLI_BUG = "this is a bug in nnconvert"
TIME_LIMIT = 1.0


def _corpus() -> tuple[Path, list[make_bad_inputs.BadInput]]:
    directory = Path(tempfile.mkdtemp(prefix="nnconvert-bad-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory, make_bad_inputs.make_corpus(directory)


CORPUS_DIR, CASES = _corpus()
BY_NAME = {case.name: case for case in CASES}


def _check_message(case: make_bad_inputs.BadInput, message: str) -> None:
    assert not GENERIC_WRAPPER.search(message), f"{case.name}: a reader let an exception escape: {message}"
    assert CLI_BUG not in message, message
    assert str(case.path) in message, f"{case.name}: the message does not name the file: {message}"
    for word in case.expect:
        assert word.lower() in message.lower(), f"{case.name}: the message does not name {word!r}: {message}"


@pytest.fixture(scope="module", autouse=True)
def _warm_imports():
    """Import the readers' dependencies once, so the per-file time limit measures reading."""
    valid = make_bad_inputs.write_valid_files(CORPUS_DIR / "warm")
    for name, path in valid.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nnconvert.load(path, format=name, trust=True)


def test_corpus_covers_every_readable_format():
    readable = {name for name, spec in nnconvert.registry.formats().items() if spec.read is not None}
    assert readable == set(make_bad_inputs.READABLE_FORMATS)
    lacking = sorted(readable - set(make_bad_inputs.SPECIFIC_CASES))
    assert not lacking, (
        f"readable format(s) {lacking} have only the common bad inputs (empty, truncated, wrong magic): add a "
        "generator of their own broken files to SPECIFIC_CASES in tests/make_bad_inputs.py"
    )
    for fmt in make_bad_inputs.READABLE_FORMATS:
        kinds = {case.name.split("/", 1)[1] for case in CASES if case.name.startswith(fmt + "/")}
        assert {"empty", "wrong-magic"} <= kinds and any(k.startswith("truncated") for k in kinds), fmt
    assert len(CASES) > 150


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_library_error(name, tmp_path):
    case = BY_NAME[name]
    target = tmp_path / "out.json"
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(NnconvertError) as caught:
            nnconvert.convert(case.path, target, from_format=case.format, trust=case.trust)
    elapsed = time.perf_counter() - start
    _check_message(case, str(caught.value))
    assert elapsed < TIME_LIMIT, f"{name}: took {elapsed:.2f} s"
    assert list(tmp_path.iterdir()) == [], "a failed conversion left files behind"


def _cli_args(case: make_bad_inputs.BadInput, target: Path) -> list[str]:
    args = ["convert", str(case.path), str(target)]
    if case.format:
        args += ["--from", case.format]
    if case.trust:
        args.append("--trust-pickle")
    return args


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_command_line_exit_code(name, tmp_path, capsys):
    case = BY_NAME[name]
    target = tmp_path / "out.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = cli.main(_cli_args(case, target))
    captured = capsys.readouterr()
    assert code == 3, captured.err
    assert captured.err.startswith("nnconvert: error: "), captured.err
    assert "Traceback" not in captured.err
    _check_message(case, captured.err)
    assert list(tmp_path.iterdir()) == []


# One bad file per format through the real console entry point, in parallel.
SUBPROCESS_CASES = (
    "json/truncated-8",
    "hdf5/external-link",
    "keras-h5/lambda-layer",
    "keras/path-traversal",
    "onnx/cnn",
    "skops/function-payload",
    "sklearn-pickle/truncated-8",
)


def test_command_line_in_a_real_process(tmp_path):
    processes = []
    for name in SUBPROCESS_CASES:
        case = BY_NAME[name]
        target = tmp_path / (name.replace("/", "_") + ".onnx")
        command = [sys.executable, "-m", "nnconvert", *_cli_args(case, target)]
        processes.append((case, target, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    for case, target, process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 3, (case.name, err)
        assert "Traceback" not in err and err.startswith("nnconvert: error: "), err
        _check_message(case, err)
        assert not target.exists()


# -- memory: declared sizes allocate nothing ----------------------------------------

MEMORY_LIMIT = 32 * 2**20
ABSURD = sorted(name for name in BY_NAME if "absurd" in name or "zip-bomb" in name or "nested-deep" in name)

_MEMORY_PROBE = r"""
import json, sys, tracemalloc, warnings
warnings.simplefilter("ignore")
import nnconvert
cases = json.loads(sys.argv[1])
for path, fmt, trust in cases:  # warm up imports and caches outside the measurement
    try:
        nnconvert.load(path, format=fmt, trust=trust)
    except Exception:
        pass
results = {}
tracemalloc.start()
for path, fmt, trust in cases:
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    try:
        nnconvert.load(path, format=fmt, trust=trust)
        outcome = "loaded"
    except Exception as exc:
        outcome = type(exc).__name__
    results[path] = [tracemalloc.get_traced_memory()[1] - before, outcome]
print(json.dumps(results))
"""


def _large_sparse_cases(directory: Path) -> list[tuple[str, str | None, bool]]:
    """HDF5 datasets declaring ~400 MB with nothing stored: a reader that trusts the shape allocates it."""
    import h5py
    import numpy as np

    valid = make_bad_inputs.write_valid_files(directory / "valid")
    width = 16_000_000
    cases = []

    def layout(handle):
        del handle["layers/1/weights"]
        handle.create_dataset("layers/1/weights", shape=(4, width), dtype="<f8", chunks=(1, 4096))
        document = json.loads(handle.attrs["document"])
        document["layers"][1]["weights"]["shape"] = [4, width]
        handle.attrs["document"] = json.dumps(document)

    def keras(handle):
        name = make_bad_inputs._keras_h5_weight(handle, "out", "kernel")
        del handle[name]
        handle.create_dataset(name, shape=(4, width), dtype="<f8", chunks=(1, 4096))

    for label, source, change in (("hdf5", valid["hdf5"], layout), ("keras-h5", valid["keras-h5"], keras)):
        path = make_bad_inputs._h5_copy(directory, source, "large-sparse", change, prefix=label)
        cases.append((str(path), label, False))
    del np
    del h5py
    return cases


def test_declared_sizes_allocate_nothing(tmp_path):
    cases = [(str(BY_NAME[name].path), BY_NAME[name].format, BY_NAME[name].trust) for name in ABSURD]
    cases += _large_sparse_cases(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, json.dumps(cases)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)
    for path, (peak, outcome) in measured.items():
        assert outcome != "loaded", f"{path} was accepted"
        assert outcome != "MemoryError"
        assert peak < MEMORY_LIMIT, f"{path}: reading it allocated {peak / 2**20:.0f} MB"


# -- tolerated: nnconvert's description in an ONNX file is advisory -------------------


def test_broken_onnx_description_is_ignored_with_a_warning(tmp_path):
    import onnx

    valid = make_bad_inputs.write_valid_files(tmp_path)["onnx"]
    for text in ("{oops", "[" * 50_000 + "]" * 50_000):
        proto = onnx.load(str(valid))
        for prop in proto.metadata_props:
            if prop.key == "nnconvert.model":
                prop.value = text
        path = tmp_path / "described.onnx"
        path.write_bytes(proto.SerializeToString())
        with pytest.warns(UserWarning, match="description"):
            model = nnconvert.load(path)
        assert model.n_outputs == 3
