"""Destinations that would lose data are refused before anything is converted or written.

- ``--out-dir`` with two inputs mapping to one output (``a/model.json`` and ``b/model.json``);
- the source file itself (or a link to it) as the destination in another format.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_bad_inputs  # noqa: E402

import nnconvert  # noqa: E402
from nnconvert import cli  # noqa: E402
from nnconvert.errors import WriteError  # noqa: E402


def test_out_dir_collisions_are_refused_before_converting(tmp_path, capsys):
    model = make_bad_inputs.tiny_model()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = nnconvert.save(model, tmp_path / "a" / "model.json")
    second = nnconvert.save(make_bad_inputs.tiny_model(classes=(4, 5, 6)), tmp_path / "b" / "model.json")
    out = tmp_path / "out"
    assert cli.main(["convert", str(first), str(second), "--out-dir", str(out), "--to", "onnx"]) == 3
    err = capsys.readouterr().err
    assert str(out / "model.onnx") in err and str(first) in err and str(second) in err
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.parametrize("how", ["same-path", "symlink", "hardlink"])
def test_the_source_as_destination_in_another_format_is_refused(tmp_path, capsys, how):
    source = nnconvert.save(make_bad_inputs.tiny_model(), tmp_path / "m.json")
    before = source.read_bytes()
    destination = {"same-path": source, "symlink": tmp_path / "link.onnx", "hardlink": tmp_path / "hard.onnx"}[how]
    if how == "symlink":
        destination.symlink_to(source)
    elif how == "hardlink":
        destination.hardlink_to(source)
    assert cli.main(["convert", str(source), str(destination), "--to", "onnx"]) == 3
    err = capsys.readouterr().err
    assert str(destination) in err and "source file itself" in err
    assert source.read_bytes() == before
    with pytest.raises(WriteError, match="source file itself"):
        nnconvert.convert(source, destination, to_format="onnx")
    assert source.read_bytes() == before


def test_the_source_as_destination_in_the_same_format_is_allowed(tmp_path, capsys):
    source = nnconvert.save(make_bad_inputs.tiny_model(), tmp_path / "m.json")
    assert cli.main(["convert", str(source), str(source), "--to", "json"]) == 0
    assert nnconvert.load(source).equals(make_bad_inputs.tiny_model())
