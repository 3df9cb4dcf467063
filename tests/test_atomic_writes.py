"""Nothing lost: a conversion that fails at any stage leaves no output and an existing target intact.

Stages: the input is bad, the model cannot be expressed by the target, the
disk fills up midway through the format's write (OSError ENOSPC after some
bytes), the user presses Ctrl-C inside the write, fsync fails, the final
rename fails. After each: no output file (or the old one, byte-identical),
and no temporary file left in the folder. On success the data is fsynced
before the rename.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_bad_inputs  # noqa: E402

import nnconvert  # noqa: E402
from nnconvert import cli, registry  # noqa: E402
from nnconvert._io import atomic as _atomic  # noqa: E402
from nnconvert.errors import NnconvertError, UnsupportedModelError, WriteError  # noqa: E402
from nnconvert.ir import Activation, DenseLayer, Head, InputSpec, Model, Task  # noqa: E402

WRITABLE = tuple(name for name, spec in registry.formats().items() if spec.write is not None)
SUFFIX = {name: registry.get(name).suffixes[0] for name in WRITABLE}
ORIGINAL = b"the previous model, which must survive\n" * 10
COMPANIONS = {"c": ["model.h"]}  # files a format writes beside its target, each atomically


@pytest.fixture
def target_dir(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def _existing(folder: Path, fmt: str) -> Path:
    target = folder / f"model{SUFFIX[fmt]}"
    target.write_bytes(ORIGINAL)
    return target


def _assert_untouched(folder: Path, target: Path | None) -> None:
    names = sorted(p.name for p in folder.iterdir())
    if target is None:
        assert names == [], f"left behind: {names}"
    else:
        assert names == [target.name], f"left behind: {names}"
        assert target.read_bytes() == ORIGINAL


def _gelu_model() -> Model:
    rng = np.random.default_rng(0)
    layer = DenseLayer(rng.normal(size=(3, 2)), rng.normal(size=2), Activation.GELU, "gelu")
    return Model(layers=(layer,), head=Head(Task.REGRESSION), input=InputSpec(3))


def _patch_writer(monkeypatch, fmt: str, writer) -> None:
    spec = registry.get(fmt)
    monkeypatch.setitem(registry._REGISTRY, fmt, dataclasses.replace(spec, write=writer))


def _half_then(exc: BaseException):
    """A writer that writes the real output's first half, then fails like a full disk or a Ctrl-C."""
    def writer(model, path, *, final_path=None, **options):
        with open(path, "wb") as handle:
            handle.write(ORIGINAL[:10] + b"\0" * 4096)
            handle.flush()
            raise exc

    return writer


# -- stage 1: reading ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", WRITABLE)
def test_bad_input_leaves_the_target_intact(tmp_path, target_dir, fmt):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "nnconvert-json-weights", "format_version": "1.0", "layers": [')
    for target in (_existing(target_dir, fmt), None):
        with pytest.raises(NnconvertError):
            nnconvert.convert(bad, target or target_dir / f"new{SUFFIX[fmt]}", to_format=fmt)
        _assert_untouched(target_dir, target)
        if target is not None:
            target.unlink()


# -- stage 2: the target cannot express the model ------------------------------------------


@pytest.mark.parametrize("fmt", ["sklearn-pickle", "skops"])
def test_unsupported_layer_leaves_the_target_intact(target_dir, fmt):
    target = _existing(target_dir, fmt)
    with pytest.raises(UnsupportedModelError):
        nnconvert.save(_gelu_model(), target, format=fmt)
    _assert_untouched(target_dir, target)
    target.unlink()
    with pytest.raises(UnsupportedModelError):
        nnconvert.save(_gelu_model(), target, format=fmt)
    _assert_untouched(target_dir, None)


# -- stage 3: the disk fills up midway ------------------------------------------------------


@pytest.mark.parametrize("fmt", WRITABLE)
def test_disk_full_midway_leaves_the_target_intact(monkeypatch, target_dir, fmt):
    _patch_writer(monkeypatch, fmt, _half_then(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))))
    target = _existing(target_dir, fmt)
    with pytest.raises(WriteError, match="No space left"):
        nnconvert.save(make_bad_inputs.tiny_model(), target, format=fmt)
    _assert_untouched(target_dir, target)
    target.unlink()
    with pytest.raises(WriteError):
        nnconvert.save(make_bad_inputs.tiny_model(), target, format=fmt)
    _assert_untouched(target_dir, None)


class _FillingFile:
    """A binary file that accepts ``room`` bytes, then fails as a full disk does."""

    def __init__(self, handle, room: int):
        self.handle, self.room = handle, room

    def write(self, data) -> int:
        data = bytes(data)
        if len(data) > self.room:
            self.handle.write(data[: self.room])
            self.handle.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.handle.write(data)

    def writelines(self, pieces) -> None:
        for piece in pieces:
            self.write(piece)

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.handle.close()


@pytest.mark.parametrize("module_name", ["nnconvert.formats.json_weights", "nnconvert.formats.onnx._writer"])
def test_disk_full_inside_the_real_writer(monkeypatch, target_dir, module_name):
    """The real JSON and ONNX writers, their file filling up after 100 bytes."""
    import importlib

    module = importlib.import_module(module_name)
    real_open = open

    def filling_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        return _FillingFile(handle, 100) if "w" in mode else handle

    monkeypatch.setattr(module, "open", filling_open, raising=False)
    fmt = "json" if module_name.endswith("json_weights") else "onnx"
    target = _existing(target_dir, fmt)
    with pytest.raises(WriteError):
        nnconvert.save(make_bad_inputs.tiny_model(), target, format=fmt)
    _assert_untouched(target_dir, target)


# -- stage 4: Ctrl-C inside the write ------------------------------------------------------


@pytest.mark.parametrize("fmt", WRITABLE)
def test_keyboard_interrupt_inside_write_leaves_the_target_intact(monkeypatch, target_dir, fmt):
    _patch_writer(monkeypatch, fmt, _half_then(KeyboardInterrupt()))
    target = _existing(target_dir, fmt)
    with pytest.raises(KeyboardInterrupt):
        nnconvert.save(make_bad_inputs.tiny_model(), target, format=fmt)
    _assert_untouched(target_dir, target)


def test_keyboard_interrupt_on_the_command_line(monkeypatch, tmp_path, target_dir, capsys):
    source = make_bad_inputs.write_valid_files(tmp_path / "valid")["json"]
    _patch_writer(monkeypatch, "onnx", _half_then(KeyboardInterrupt()))
    target = _existing(target_dir, "onnx")
    assert cli.main(["convert", str(source), str(target)]) == 130
    assert "no output was written" in capsys.readouterr().err
    _assert_untouched(target_dir, target)


# -- stages 5 and 6: fsync and rename --------------------------------------------------------


def test_failing_fsync_leaves_the_target_intact(monkeypatch, target_dir):
    def failing_fsync(path):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(_atomic, "fsync_path", failing_fsync)
    target = _existing(target_dir, "json")
    with pytest.raises(WriteError):
        nnconvert.save(make_bad_inputs.tiny_model(), target)
    _assert_untouched(target_dir, target)


def test_failing_rename_leaves_the_target_intact(monkeypatch, target_dir):
    def failing_replace(source, destination):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(_atomic.os, "replace", failing_replace)
    target = _existing(target_dir, "hdf5")
    with pytest.raises(WriteError):
        nnconvert.save(make_bad_inputs.tiny_model(), target)
    _assert_untouched(target_dir, target)


# -- success: written beside the target, fsynced, then renamed ----------------------------------


@pytest.mark.parametrize("fmt", WRITABLE)
def test_success_is_fsynced_before_the_rename(monkeypatch, target_dir, fmt):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.path.realpath(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(source, destination):
        events.append(("replace", str(source), str(destination)))
        assert Path(source).parent == Path(destination).parent, "the temporary file is not in the target's folder"
        return real_replace(source, destination)

    monkeypatch.setattr(_atomic.os, "fsync", fsync)
    monkeypatch.setattr(_atomic.os, "replace", replace)
    target = _existing(target_dir, fmt)
    nnconvert.save(make_bad_inputs.tiny_model(), target, format=fmt)
    assert target.read_bytes() != ORIGINAL
    replaced = [e for e in events if e[0] == "replace"]
    companions = COMPANIONS.get(fmt, [])
    # the target is renamed last; a companion (the c target's header) is committed the same way before it
    assert len(replaced) == 1 + len(companions) and replaced[-1][2] == str(target)
    for event in replaced:
        fsynced = ("fsync", os.path.realpath(event[1]))
        assert fsynced in events and events.index(fsynced) < events.index(event), "the data was not fsynced before the rename"
    assert sorted(p.name for p in target_dir.iterdir()) == sorted([target.name, *companions])


def test_out_dir_keeps_finished_outputs_when_a_later_input_fails(tmp_path, target_dir, capsys):
    good = make_bad_inputs.write_valid_files(tmp_path / "valid")["json"]
    bad = tmp_path / "broken.json"
    bad.write_text("{")
    code = cli.main(["convert", str(good), str(bad), "--to", "onnx", "--out-dir", str(target_dir)])
    assert code == 3
    assert sorted(p.name for p in target_dir.iterdir()) == [good.stem + ".onnx"]
    capsys.readouterr()


# -- ONNX external data: the model and its sidecar commit together ----------------------------


def _wide_model(seed: int) -> Model:
    rng = np.random.default_rng(seed)
    layers = (
        DenseLayer(rng.normal(size=(30, 64)), rng.normal(size=64), Activation.RELU, "wide"),
        DenseLayer(rng.normal(size=(64, 2)), rng.normal(size=2), Activation.IDENTITY, "out"),
    )
    return Model(layers=layers, head=Head(Task.REGRESSION), input=InputSpec(30))


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _fail_replacing(monkeypatch, target: Path, exc: BaseException) -> None:
    """os.replace fails only for the main file's final rename (the sidecar's rename succeeds)."""
    real_replace = os.replace

    def replace(source, destination):
        if Path(destination) == target:
            raise exc
        return real_replace(source, destination)

    monkeypatch.setattr(_atomic.os, "replace", replace)


@pytest.mark.parametrize("exc", [OSError(errno.EXDEV, os.strerror(errno.EXDEV)), KeyboardInterrupt()], ids=["oserror", "ctrl-c"])
def test_onnx_external_data_failing_final_rename_keeps_the_old_pair(monkeypatch, target_dir, exc):
    """The old model and its old sidecar stay byte-identical and load; the new sidecar is gone."""
    target = target_dir / "model.onnx"
    old = _wide_model(0)
    nnconvert.save(old, target, dtype="float64", external_data=True)
    before = _snapshot(target_dir)
    assert len(before) == 2, "expected a model and its sidecar"
    _fail_replacing(monkeypatch, target, exc)
    with pytest.raises(WriteError if isinstance(exc, OSError) else KeyboardInterrupt):
        nnconvert.save(_wide_model(1), target, dtype="float64", external_data=True)
    monkeypatch.undo()
    assert _snapshot(target_dir) == before
    assert nnconvert.load(target).equals(old)


def test_onnx_external_data_failing_fsync_of_the_model_removes_the_new_sidecar(monkeypatch, target_dir):
    """A new sidecar is already in place when the model's fsync fails: it is removed, the old pair kept."""
    target = target_dir / "model.onnx"
    nnconvert.save(_wide_model(0), target, dtype="float64", external_data=True)
    before = _snapshot(target_dir)

    def failing_fsync(path):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(_atomic, "fsync_path", failing_fsync)
    with pytest.raises(WriteError):
        nnconvert.save(_wide_model(1), target, dtype="float64", external_data=True)
    assert _snapshot(target_dir) == before


def test_onnx_external_data_failing_rename_of_a_new_file_leaves_nothing(monkeypatch, target_dir):
    target = target_dir / "model.onnx"
    _fail_replacing(monkeypatch, target, OSError(errno.EXDEV, os.strerror(errno.EXDEV)))
    with pytest.raises(WriteError):
        nnconvert.save(_wide_model(1), target, dtype="float64", external_data=True)
    _assert_untouched(target_dir, None)


def test_onnx_external_data_success_retires_the_old_sidecar_only(target_dir):
    """After a successful replace only the new pair remains; unrelated files and an unchanged sidecar stay."""
    import onnx

    target = target_dir / "model.onnx"
    unrelated = target_dir / "model.onnx.data"  # nnconvert's old sidecar name, but not referenced by the model
    unrelated.write_bytes(ORIGINAL)
    nnconvert.save(_wide_model(0), target, dtype="float64", external_data=True)
    first = _snapshot(target_dir)
    nnconvert.save(_wide_model(0), target, dtype="float64", external_data=True)  # same content, same sidecar
    assert _snapshot(target_dir) == first, "the same model gives the same files"
    nnconvert.save(_wide_model(1), target, dtype="float64", external_data=True)
    proto = onnx.load(target, load_external_data=False)
    locations = {e.value for t in proto.graph.initializer for e in t.external_data if e.key == "location"}
    assert sorted(p.name for p in target_dir.iterdir()) == sorted({target.name, unrelated.name, *locations})
    assert unrelated.read_bytes() == ORIGINAL
    assert nnconvert.load(target).equals(_wide_model(1))
    nnconvert.save(_wide_model(1), target, dtype="float64")  # inline again: the sidecar goes
    assert sorted(p.name for p in target_dir.iterdir()) == sorted([target.name, unrelated.name])
