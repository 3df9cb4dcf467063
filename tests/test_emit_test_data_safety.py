"""``convert --emit-test-data``: the model and its evidence land together or not at all, never through planted links."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_bad_inputs  # noqa: E402

import nnconvert  # noqa: E402
from nnconvert import cli  # noqa: E402
from nnconvert.errors import WriteError  # noqa: E402


@pytest.fixture
def source(tmp_path):
    return nnconvert.save(make_bad_inputs.tiny_model(), tmp_path / "model.json")


def _snapshot(folder: Path) -> dict[str, bytes | str]:
    return {
        str(p.relative_to(folder)): (f"-> {p.readlink()}" if p.is_symlink() else p.read_bytes() if p.is_file() else "dir")
        for p in sorted(folder.rglob("*"))
    }


def test_planted_links_are_replaced_not_written_through(tmp_path, source, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    victim_dir = tmp_path / "victim_dir"
    victim_dir.mkdir()
    (victim_dir / "output_0.pb").write_bytes(b"also precious")
    out = tmp_path / "out"
    (out / "test_data_set_0").mkdir(parents=True)
    (out / "test_data_set_0" / "output_0.pb").symlink_to(victim)
    (out / "test_data_set_1").symlink_to(victim_dir, target_is_directory=True)
    assert cli.main(["convert", str(source), str(out / "model.onnx"), "--emit-test-data"]) == 0
    capsys.readouterr()
    assert victim.read_bytes() == b"precious"
    assert (victim_dir / "output_0.pb").read_bytes() == b"also precious" and len(list(victim_dir.iterdir())) == 1
    written = out / "test_data_set_0" / "output_0.pb"
    assert written.is_file() and not written.is_symlink()
    assert not (out / "test_data_set_1").is_symlink()
    assert nnconvert.verify(out / "model.onnx").passed
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_a_failure_after_writing_the_model_leaves_everything_as_it_was(tmp_path, source, monkeypatch, capsys):
    from nnconvert.verify.onnx import evidence

    out = tmp_path / "out"
    out.mkdir()
    target = out / "model.onnx"
    assert cli.main(["convert", str(source), str(target), "--emit-test-data"]) == 0
    before = _snapshot(out)

    def failing(onnx_path, report):
        raise WriteError(f"{onnx_path}: disk full (simulated)")

    other = nnconvert.save(make_bad_inputs.tiny_model(classes=(5, 6, 7)), tmp_path / "other.json")
    monkeypatch.setattr(evidence, "emit_test_data", failing)
    assert cli.main(["convert", str(other), str(target), "--emit-test-data"]) == 3
    assert "disk full" in capsys.readouterr().err
    assert _snapshot(out) == before


def test_write_test_data_refuses_a_linked_folder(tmp_path, source):
    import numpy as np

    from nnconvert.verify import write_test_data

    model = make_bad_inputs.tiny_model()
    path = nnconvert.save(model, tmp_path / "m.onnx")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "test_data_set_0").symlink_to(elsewhere, target_is_directory=True)
    X = np.zeros((2, 3))
    with pytest.raises(WriteError, match="symbolic link"):
        write_test_data(path, X, {"output_label": model.predict(X), "output_probability": model.predict_proba(X)})
    assert list(elsewhere.iterdir()) == []
