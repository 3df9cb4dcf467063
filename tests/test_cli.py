"""The command line: subcommands, exit codes, error messages without tracebacks, lazy imports."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn_variants import get_variant

import nnconvert
from nnconvert.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nnconvert", *args], capture_output=True, text=True, cwd=ROOT)


@pytest.fixture(scope="module")
def iris_pickle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "iris.pkl"
    path.write_bytes(pickle.dumps(get_variant("iris-labels-str").estimator))
    return path


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys\n"
        "from nnconvert.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('numpy', 'onnx', 'onnxruntime', 'sklearn', 'h5py', 'torch', 'keras') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_import_nnconvert_is_lazy() -> None:
    code = "import sys, nnconvert; print([m for m in ('numpy', 'onnx', 'sklearn', 'h5py') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_formats_lists_every_registered_format(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["formats", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {row["name"] for row in rows}
    assert {"onnx", "json", "hdf5", "keras-h5", "keras", "sklearn-pickle", "skops"} <= names
    pickle_row = next(row for row in rows if row["name"] == "sklearn-pickle")
    assert pickle_row["needs_trust"] and pickle_row["read"] and pickle_row["write"]
    assert main(["formats"]) == 0
    assert "onnx" in capsys.readouterr().out


def test_convert_pickle_to_onnx_and_inspect(iris_pickle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "iris.onnx"
    assert main(["convert", str(iris_pickle), str(target), "--trust-pickle", "--opset", "13"]) == 0
    assert target.is_file()
    assert main(["inspect", str(target), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert info["format"] == "onnx"
    assert info["task"] == "multiclass"
    assert info["classes"] == ["setosa", "versicolor", "virginica-long-label-name"]
    assert [layer["shape"] for layer in info["layers"]] == [[4, 8], [8, 3]]
    assert main(["inspect", str(target)]) == 0
    text = capsys.readouterr().out
    assert "multiclass" in text and "parameters" in text


def test_untrusted_pickle_is_refused_with_exit_3(iris_pickle: Path, tmp_path: Path) -> None:
    result = run_cli("convert", str(iris_pickle), str(tmp_path / "out.onnx"))
    assert result.returncode == 3
    assert "nnconvert: error:" in result.stderr and "--trust-pickle" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.onnx").exists()


@pytest.mark.parametrize(
    ("content", "name"),
    [(b"", "empty.onnx"), (b"garbage that is no model", "garbage.json"), (b"\x00" * 64, "zeros.bin")],
)
def test_bad_input_exits_3_without_traceback(tmp_path: Path, content: bytes, name: str) -> None:
    source = tmp_path / name
    source.write_bytes(content)
    result = run_cli("convert", str(source), str(tmp_path / "out.json"))
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("nnconvert: error:") and str(source) in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.json").exists()


def test_missing_file_exits_3(tmp_path: Path) -> None:
    result = run_cli("inspect", str(tmp_path / "nope.onnx"))
    assert result.returncode == 3
    assert "no such file" in result.stderr


def test_usage_errors_exit_2(tmp_path: Path, iris_pickle: Path) -> None:
    assert run_cli("convert").returncode == 2
    assert run_cli("convert", "a", "b", "c").returncode == 2
    result = run_cli("convert", str(iris_pickle), str(tmp_path / "x.json"), "--trust-pickle", "--opset", "13")
    assert result.returncode == 2 and "opset" in result.stderr
    assert run_cli("convert", str(iris_pickle), str(tmp_path / "x.unknownsuffix"), "--trust-pickle").returncode == 2


def test_existing_target_survives_a_failed_conversion(tmp_path: Path) -> None:
    target = tmp_path / "keep.onnx"
    target.write_bytes(b"precious bytes")
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "nnconvert-json-weights", "format_version": "1.0"}')
    result = run_cli("convert", str(broken), str(target))
    assert result.returncode == 3
    assert target.read_bytes() == b"precious bytes"
    assert {p.name for p in tmp_path.iterdir()} == {"keep.onnx", "broken.json"}


def test_out_dir_converts_several_models(tmp_path: Path) -> None:
    sources = []
    for variant_id in ("iris-10", "regression-1"):
        path = tmp_path / f"{variant_id}.json"
        nnconvert.save(nnconvert.from_sklearn(get_variant(variant_id).estimator), path)
        sources.append(str(path))
    out_dir = tmp_path / "out"
    assert main(["convert", *sources, "--out-dir", str(out_dir), "--to", "onnx"]) == 0
    written = sorted(p.name for p in out_dir.iterdir())
    assert written == ["iris-10.onnx", "regression-1.onnx"]
    import onnxruntime as ort

    variant = get_variant("regression-1")
    session = ort.InferenceSession(str(out_dir / "regression-1.onnx"), providers=["CPUExecutionProvider"])
    (values,) = session.run(None, {"X": variant.X_test.astype(np.float32)})
    np.testing.assert_allclose(values.ravel(), variant.estimator.predict(variant.X_test), rtol=1e-5, atol=1e-4)


def _several_sources(tmp_path: Path) -> tuple[list[Path], Path, Path]:
    """good1.json, broken.json, good2.json, missing.json, untrusted.pkl: two good inputs among three bad ones."""
    good1, good2 = tmp_path / "good1.json", tmp_path / "good2.json"
    nnconvert.save(nnconvert.from_sklearn(get_variant("iris-10").estimator), good1)
    nnconvert.save(nnconvert.from_sklearn(get_variant("regression-1").estimator), good2)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    untrusted = tmp_path / "untrusted.pkl"
    untrusted.write_bytes(pickle.dumps([1, 2, 3]))
    return [good1, broken, good2, tmp_path / "missing.json", untrusted], broken, untrusted


def test_keep_going_converts_every_input_and_reports_each_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sources, broken, untrusted = _several_sources(tmp_path)
    out_dir = tmp_path / "out"
    code = main(["convert", *map(str, sources), "--out-dir", str(out_dir), "--to", "onnx", "--keep-going"])
    assert code == 3
    assert sorted(p.name for p in out_dir.iterdir()) == ["good1.onnx", "good2.onnx"]
    captured = capsys.readouterr()
    errors = captured.err.splitlines()
    assert len(errors) == 3 and all(line.startswith("nnconvert: error: ") for line in errors), errors
    assert str(broken) in errors[0] and "missing.json" in errors[1] and str(untrusted) in errors[2]
    assert "Traceback" not in captured.err
    assert captured.out.splitlines() == [f"{sources[0]} -> {out_dir / 'good1.onnx'}", f"{sources[2]} -> {out_dir / 'good2.onnx'}"]
    for name, variant_id in (("good1.onnx", "iris-10"), ("good2.onnx", "regression-1")):
        model = nnconvert.load(out_dir / name)
        assert model.n_features == get_variant(variant_id).X_test.shape[1]


def test_without_keep_going_the_first_failure_stops(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sources, broken, _ = _several_sources(tmp_path)
    out_dir = tmp_path / "out"
    assert main(["convert", *map(str, sources), "--out-dir", str(out_dir), "--to", "onnx"]) == 3
    assert sorted(p.name for p in out_dir.iterdir()) == ["good1.onnx"]
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 1 and str(broken) in errors[0]


def test_keep_going_exits_with_the_highest_code(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing dependency (4) outranks a bad input (3); all good inputs give 0."""
    import dataclasses

    from nnconvert import registry
    from nnconvert.errors import MissingDependencyError

    sources, _, _ = _several_sources(tmp_path)
    out_dir = tmp_path / "out"
    assert main(["convert", str(sources[0]), str(sources[2]), "--out-dir", str(out_dir), "--to", "json", "--keep-going"]) == 0
    spec = registry.get("json")

    def read(path, **options):
        if path.name == "good2.json":
            raise MissingDependencyError("imaginary", "reading this file")
        return spec.read(path, **options)

    monkeypatch.setitem(registry._REGISTRY, "json", dataclasses.replace(spec, read=read))
    capsys.readouterr()
    assert main(["convert", *map(str, sources), "--out-dir", str(out_dir), "--to", "onnx", "--keep-going"]) == 4
    assert "pip install imaginary" in capsys.readouterr().err


def test_emit_test_data_for_a_non_onnx_target_is_refused_before_writing(tmp_path: Path) -> None:
    source = tmp_path / "iris.json"
    nnconvert.save(nnconvert.from_sklearn(get_variant("iris-10").estimator), source)
    target = tmp_path / "out.h5"
    result = run_cli("convert", str(source), str(target), "--emit-test-data")
    assert result.returncode == 2 and "--emit-test-data" in result.stderr
    assert not target.exists()
