"""Reading in a child process with a time limit (``load(..., timeout=...)``, the command line's --read-timeout).

libhdf5 can spin forever on a corrupt file (tests/fuzz.py finds such files);
a reader in a child process can be killed. These tests use readers
registered for the test (a reader that sleeps, crashes, warns or raises), so
that each path is deterministic, and the real formats for the round trip:
the model that comes back is the one the in-process reader gives, bit for
bit, and every error arrives as the same class with the same message.
"""

from __future__ import annotations

import dataclasses
import faulthandler
import multiprocessing
import os
import signal
import sys
import time
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_bad_inputs  # noqa: E402

import nnconvert  # noqa: E402
from nnconvert import api, cli, registry  # noqa: E402
from nnconvert.errors import MissingDependencyError, ReadError, UnsupportedModelError, UsageError  # noqa: E402
from nnconvert.registry import FormatSpec  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the test readers reach the child through fork")


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory):
    return make_bad_inputs.write_valid_files(tmp_path_factory.mktemp("valid"))


def _register(monkeypatch, name: str, reader) -> None:
    registry.formats()  # the built-ins first, so that ours is not the only one
    spec = FormatSpec(name=name, suffixes=(f".{name}",), description="a test reader", read=reader, read_options=("seconds",))
    monkeypatch.setitem(registry._REGISTRY, name, spec)


def _input(tmp_path: Path, name: str = "model.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    return path


def _sleeping_reader(path, seconds=60.0):
    Path(f"{path}.child-pid").write_text(str(os.getpid()))
    time.sleep(seconds)
    return make_bad_inputs.tiny_model()


def _assert_dead(pid: int) -> None:
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    raise AssertionError(f"the reader process {pid} is still running")


# -- the time limit ----------------------------------------------------------------------


def test_a_reader_past_the_timeout_is_killed_and_becomes_a_read_error(monkeypatch, tmp_path):
    _register(monkeypatch, "sleepy", _sleeping_reader)
    path = _input(tmp_path)
    started = time.monotonic()
    with pytest.raises(ReadError) as caught:
        nnconvert.load(path, "sleepy", timeout=0.5)
    assert time.monotonic() - started < 5
    error = caught.value
    assert str(error) == f"{path}: [sleepy] reading took longer than 0.5 s; the file is probably corrupt or hostile"
    assert (error.path, error.format) == (str(path), "sleepy")
    assert int(Path(f"{path}.child-pid").read_text()) != os.getpid(), "the reader ran in this process"
    _assert_dead(int(Path(f"{path}.child-pid").read_text()))
    assert multiprocessing.active_children() == []


def test_a_reader_within_the_timeout_returns_its_model(monkeypatch, tmp_path):
    _register(monkeypatch, "sleepy", _sleeping_reader)
    path = _input(tmp_path)
    model = nnconvert.load(path, "sleepy", timeout=30, seconds=0.1)
    assert model.equals(make_bad_inputs.tiny_model())


def test_convert_with_a_timeout_writes_nothing_when_reading_hangs(monkeypatch, tmp_path):
    _register(monkeypatch, "sleepy", _sleeping_reader)
    target = tmp_path / "out.json"
    with pytest.raises(ReadError, match="took longer than 0.5 s"):
        nnconvert.convert(_input(tmp_path), target, from_format="sleepy", timeout=0.5)
    assert not target.exists()


def test_the_timeout_also_covers_format_detection(monkeypatch, tmp_path):
    """Detection opens HDF5 files with h5py too: it runs in the child, and the error has no format yet."""
    def sleeping_sniffer(head, path):
        time.sleep(60)

    registry.formats()
    monkeypatch.setitem(registry._REGISTRY, "sleepy", FormatSpec("sleepy", (".sleepy",), "", read=_sleeping_reader, sniff=sleeping_sniffer))
    with pytest.raises(ReadError) as caught:
        nnconvert.load(_input(tmp_path), timeout=0.5)
    assert caught.value.format is None and "took longer than 0.5 s" in str(caught.value)


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), "5", True])
def test_a_bad_timeout_is_a_usage_error(valid_files, timeout):
    with pytest.raises(UsageError, match="timeout"):
        nnconvert.load(valid_files["json"], timeout=timeout)


# -- what crosses the process boundary -------------------------------------------------------


def test_every_format_comes_back_bit_identical(valid_files):
    for fmt, path in valid_files.items():
        in_process, name = api.load_with_format(path, trust=True)
        isolated, isolated_name = api.load_with_format(path, trust=True, timeout=30)
        assert isolated_name == name == fmt
        assert isolated.equals(in_process), fmt
        for ours, theirs in zip(in_process.layers, isolated.layers, strict=True):
            assert theirs.weights.dtype == ours.weights.dtype and theirs.weights.tobytes() == ours.weights.tobytes(), fmt
        if in_process.classes is not None:
            assert isolated.classes.dtype == in_process.classes.dtype, fmt
            assert isolated.classes.tolist() == in_process.classes.tolist(), fmt


def _error_cases(tmp_path: Path, valid_files: dict) -> list[tuple[Path, str | None, dict]]:
    broken_json = tmp_path / "broken.json"
    broken_json.write_text('{"format": "nnconvert-json-weights", "layers": [')
    unknown = tmp_path / "mystery.bin"
    unknown.write_bytes(b"\x00\x01 not a model")
    return [
        (broken_json, None, {}),  # ReadError with path, format, detail
        (unknown, None, {}),  # UnknownFormatError
        (valid_files["sklearn-pickle"], None, {}),  # UntrustedInputError
        (valid_files["json"], None, {"colour": "red"}),  # UsageError: unknown reader option
        (tmp_path / "missing.onnx", None, {}),  # ReadError raised before any child starts
    ]


def _raised(path, fmt, options, **kwargs) -> BaseException:
    with pytest.raises(Exception) as caught:
        nnconvert.load(path, fmt, **options, **kwargs)
    return caught.value


def test_errors_arrive_as_the_same_class_with_the_same_message(tmp_path, valid_files):
    for path, fmt, options in _error_cases(tmp_path, valid_files):
        expected = _raised(path, fmt, options)
        got = _raised(path, fmt, options, timeout=30)
        assert type(got) is type(expected), (path, got, expected)
        assert str(got) == str(expected)
        assert vars(got) == vars(expected)


def test_errors_with_attributes_keep_them(monkeypatch, tmp_path):
    def unsupported(path):
        raise UnsupportedModelError(f"{path}: not an MLP", ["node 'conv' (Conv)", "node 'pool' (MaxPool)"])

    def missing(path):
        raise MissingDependencyError("h5py", "reading the hdf5 format")

    for name, reader in (("unsupported", unsupported), ("missing", missing)):
        _register(monkeypatch, name, reader)
        path = _input(tmp_path)
        expected, got = _raised(path, name, {}), _raised(path, name, {}, timeout=30)
        assert type(got) is type(expected) and str(got) == str(expected) and vars(got) == vars(expected)
    assert got.pip_command == "pip install h5py"


def test_a_bug_in_the_reader_is_wrapped_as_in_process(monkeypatch, tmp_path):
    def buggy(path):
        return {}["layers"]

    _register(monkeypatch, "buggy", buggy)
    path = _input(tmp_path)
    expected, got = _raised(path, "buggy", {}), _raised(path, "buggy", {}, timeout=30)
    assert type(got) is type(expected) is ReadError and str(got) == str(expected)
    assert "cannot read the file: KeyError" in str(got)


def test_a_crashing_reader_becomes_a_read_error(monkeypatch, tmp_path):
    def crashing(path):
        faulthandler.disable()  # pytest's would print the child's stack
        os.kill(os.getpid(), signal.SIGSEGV)

    _register(monkeypatch, "crashing", crashing)
    path = _input(tmp_path)
    with pytest.raises(ReadError, match="killed by signal 11") as caught:
        nnconvert.load(path, "crashing", timeout=30)
    assert caught.value.path == str(path) and caught.value.format == "crashing"


def test_warnings_from_the_reader_reach_the_caller(monkeypatch, tmp_path):
    def warning_reader(path):
        warnings.warn("folded alpha into the weights", UserWarning, stacklevel=1)
        warnings.warn("odd attribute", RuntimeWarning, stacklevel=1)
        return make_bad_inputs.tiny_model()

    _register(monkeypatch, "warns", warning_reader)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nnconvert.load(_input(tmp_path), "warns", timeout=30)
    assert [(w.category, str(w.message)) for w in caught] == [
        (UserWarning, "folded alpha into the weights"),
        (RuntimeWarning, "odd attribute"),
    ]


# -- the defaults -----------------------------------------------------------------------------


def test_the_library_reads_in_process_by_default(monkeypatch, valid_files):
    def no_child(*args, **kwargs):
        raise AssertionError("load() started a child process without a timeout")

    monkeypatch.setattr(api, "load_isolated", no_child)
    for path in valid_files.values():
        nnconvert.load(path, trust=True)


def test_the_command_line_isolates_hdf5_based_inputs_only(valid_files):
    for fmt, path in valid_files.items():
        timeout = api.default_read_timeout(path)
        if fmt in ("hdf5", "keras-h5", "keras"):
            assert timeout == pytest.approx(60 + path.stat().st_size / 10e6), fmt
        else:
            assert timeout is None, fmt
    assert api.default_read_timeout(valid_files["json"], "hdf5") is not None
    assert api.default_read_timeout(valid_files["hdf5"], "json") is None


def test_a_zip_counts_when_it_holds_hdf5_or_cannot_be_listed(tmp_path, valid_files):
    assert api.reads_with_libhdf5(valid_files["keras"]) and not api.reads_with_libhdf5(valid_files["skops"])
    damaged = tmp_path / "damaged.keras"
    damaged.write_bytes(valid_files["keras"].read_bytes()[:200])
    assert api.reads_with_libhdf5(damaged)


def test_the_hdf5_signature_after_a_user_block_counts(tmp_path):
    path = tmp_path / "userblock.bin"
    path.write_bytes(b"\0" * 1024 + b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    assert api.reads_with_libhdf5(path)
    path.write_bytes(b"\0" * 1000 + b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    assert not api.reads_with_libhdf5(path)


def test_read_timeout_on_the_command_line(monkeypatch, tmp_path, capsys):
    _register(monkeypatch, "sleepy", _sleeping_reader)
    path = _input(tmp_path)
    target = tmp_path / "out.json"
    assert cli.main(["convert", str(path), str(target), "--from", "sleepy", "--read-timeout", "0.5"]) == 3
    err = capsys.readouterr().err
    assert err == f"nnconvert: error: {path}: [sleepy] reading took longer than 0.5 s; the file is probably corrupt or hostile\n"
    assert not target.exists()
    assert cli.main(["inspect", str(path), "--from", "sleepy", "--read-timeout", "0.5"]) == 3
    assert "took longer than 0.5 s" in capsys.readouterr().err


def test_read_timeout_zero_reads_in_process(monkeypatch, tmp_path, valid_files, capsys):
    def no_child(*args, **kwargs):
        raise AssertionError("a child process was started with --read-timeout 0")

    monkeypatch.setattr(api, "load_isolated", no_child)
    target = tmp_path / "out.json"
    assert cli.main(["convert", str(valid_files["hdf5"]), str(target), "--read-timeout", "0"]) == 0
    assert cli.main(["inspect", str(valid_files["keras-h5"]), "--read-timeout", "0", "--json"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("value", ["-1", "soon", "nan"])
def test_a_bad_read_timeout_is_a_usage_error(valid_files, value, capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["inspect", str(valid_files["json"]), "--read-timeout", value])
    assert caught.value.code == 2
    assert "--read-timeout" in capsys.readouterr().err


def test_inspect_names_the_format_read_in_the_child(valid_files, capsys):
    import json

    assert cli.main(["inspect", str(valid_files["keras-h5"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "keras-h5"


def test_a_spec_replaced_for_a_test_is_seen_by_the_child(monkeypatch, tmp_path, valid_files):
    """The child is forked: a format registered or patched in this process is the one it uses."""
    spec = registry.get("json")
    seen = []

    def spying_read(path, **options):
        seen.append(os.getpid())
        Path(f"{path}.pid").write_text(str(os.getpid()))
        return spec.read(path, **options)

    monkeypatch.setitem(registry._REGISTRY, "json", dataclasses.replace(spec, read=spying_read))
    copy = tmp_path / "m.json"
    copy.write_bytes(valid_files["json"].read_bytes())
    nnconvert.load(copy, timeout=30)
    assert seen == [] and int(Path(f"{copy}.pid").read_text()) != os.getpid()


def test_a_reader_exiting_the_child_becomes_a_read_error_naming_the_file(monkeypatch, tmp_path):
    def exiting(path):
        warnings.warn("about to give up", UserWarning, stacklevel=1)
        raise SystemExit(7)

    _register(monkeypatch, "exiting", exiting)
    path = _input(tmp_path)
    with warnings.catch_warnings(record=True) as caught, pytest.raises(ReadError) as error:
        warnings.simplefilter("always")
        nnconvert.load(path, "exiting", timeout=30)
    assert str(error.value) == f"{path}: [exiting] the reader process failed: 7 (SystemExit)"
    assert [str(w.message) for w in caught] == ["about to give up"], "warnings arrive even when reading fails"
