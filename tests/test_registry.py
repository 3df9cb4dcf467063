"""What a FormatSpec declares is what the API, the CLI and verify do.

Declared options are validated in one place (registry.check_options) and
grow the command line's flags; suffix ties are settled by priority, never by
the order in which formats were registered; verify runs a file the way its
format's spec says.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nnconvert
from nnconvert import cli, registry
from nnconvert.errors import UsageError
from nnconvert.ir import DenseLayer, Head, InputSpec, Model
from nnconvert.registry import FormatSpec, Option

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, FormatSpec]:
    """The registry, restored after the test (formats registered here do not leak)."""
    registry.formats()  # the built-ins first
    copy = dict(registry._REGISTRY)
    monkeypatch.setattr(registry, "_REGISTRY", copy)
    return copy


def _model() -> Model:
    return Model(layers=(DenseLayer(np.ones((2, 1)), np.zeros(1), "identity", "out"),), head=Head("regression"), input=InputSpec(2))


def _text_writer(written: list[dict[str, Any]]) -> Any:
    def write(model: Model, output: Any, **options: Any) -> None:
        written.append(options)
        Path(getattr(output, "path", output)).write_text("x")

    return write


def test_suffix_ties_are_settled_by_priority_not_registration_order(scratch_registry: dict[str, FormatSpec]) -> None:
    write = _text_writer([])
    registry.register(FormatSpec("tie-late", (".tie",), "registered first", write=write, priority=50))
    registry.register(FormatSpec("tie-early", (".tie",), "registered second", write=write, priority=10))
    assert registry.format_for_suffix("model.tie", writable=True).name == "tie-early"
    assert registry.format_for_suffix("model.h5").name == "hdf5"  # .h5: nnconvert's layout before Keras'
    assert registry.get("hdf5").priority < registry.get("keras-h5").priority


def test_declared_options_are_validated_in_one_place(scratch_registry: dict[str, FormatSpec], tmp_path: Path) -> None:
    written: list[dict[str, Any]] = []
    options = (Option("level", int, choices=(1, 2, 3), help="how hard"), Option("fast", bool, help="go fast"))
    registry.register(FormatSpec("declared", (".decl",), "test format", write=_text_writer(written), write_options=options))
    nnconvert.save(_model(), tmp_path / "a.decl", level=2, fast=True)
    assert written == [{"level": 2, "fast": True}]
    for bad in ({"level": "2"}, {"level": 4}, {"fast": "yes"}, {"fast": 1}, {"speed": 1}):
        with pytest.raises(UsageError, match="declared writer"):
            nnconvert.save(_model(), tmp_path / "b.decl", **bad)
    assert not (tmp_path / "b.decl").exists()


def test_the_command_line_grows_a_flag_per_declared_option(scratch_registry: dict[str, FormatSpec], tmp_path: Path) -> None:
    written: list[dict[str, Any]] = []
    options = (Option("level", int, choices=(1, 2, 3), help="how hard"), Option("fast", bool, help="go fast"))
    registry.register(FormatSpec("declared", (".decl",), "test format", write=_text_writer(written), write_options=options))
    source = SAMPLES / "diabetes_mlp.json"
    assert cli.main(["convert", str(source), str(tmp_path / "a.decl"), "--level", "3", "--fast"]) == 0
    assert written == [{"level": 3, "fast": True}]
    with pytest.raises(SystemExit):  # argparse refuses a value outside the choices: exit 2
        cli.main(["convert", str(source), str(tmp_path / "b.decl"), "--level", "9"])


def test_formats_sharing_an_option_name_share_one_flag(
    scratch_registry: dict[str, FormatSpec], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the c target's --precision/--calibration and issue 12's ONNX quantization mean different things by the same names
    written: dict[str, list[dict[str, Any]]] = {"wide": [], "narrow": []}
    for name, choices, parse in (("wide", ("float32", "int16"), lambda text: ["wide", text]), ("narrow", ("float16", "int8"), lambda text: ["narrow", text])):
        options = (Option("precision", choices=choices, help=f"{name} arithmetic"), Option("calibration", list, parse=parse, help="rows"))
        registry.register(FormatSpec(name, (f".{name}",), "test format", write=_text_writer(written[name]), write_options=options))
    source = str(SAMPLES / "diabetes_mlp.json")
    with pytest.raises(SystemExit):
        cli.main(["convert", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    # one flag each (argparse would refuse a second), choices the union, help naming each format's meaning
    # the union in registration order (which of onnx/json/hdf5 and c registers first is not the point)
    flag = re.search(r"--precision \{([^}]*)\}", help_text)
    assert flag is not None and sorted(flag.group(1).split(",")) == ["float16", "float32", "float64", "int16", "int8"]
    assert "wide arithmetic [float32|int16] (wide)" in help_text and "narrow arithmetic [float16|int8] (narrow)" in help_text
    assert "rows (wide, narrow)" in help_text
    assert cli.main(["convert", source, str(tmp_path / "a.wide"), "--precision", "int16", "--calibration", "x"]) == 0
    assert cli.main(["convert", source, str(tmp_path / "a.narrow"), "--precision", "int8", "--calibration", "x"]) == 0
    assert written == {"wide": [{"precision": "int16", "calibration": ["wide", "x"]}], "narrow": [{"precision": "int8", "calibration": ["narrow", "x"]}]}
    capsys.readouterr()
    # the union of choices passes argparse; the output format refuses what it does not take (exit 2, nothing written)
    assert cli.main(["convert", source, str(tmp_path / "b.wide"), "--precision", "float16"]) == 2
    assert "wide writer's option precision must be one of float32, int16" in capsys.readouterr().err
    assert not (tmp_path / "b.wide").exists()


def test_onnx_options_refuse_what_is_not_a_bool(tmp_path: Path) -> None:
    model = _model()
    for bad in ({"zipmap": "yes"}, {"zipmap": "on"}, {"external_data": 1}, {"opset": "15"}, {"dtype": "float16"}, {"linear": "conv"}):
        with pytest.raises(UsageError, match="onnx writer's option"):
            nnconvert.save(model, tmp_path / "m.onnx", **bad)


def test_every_builtin_option_is_declared() -> None:
    for spec in registry.formats().values():
        for option in (*spec.read_options, *spec.write_options):
            assert option.help, f"{spec.name} option {option.name} has no help text"
            assert option.type in (str, int, float, bool, list)


def test_verify_runs_each_file_as_its_spec_says() -> None:
    from nnconvert.verify.onnx.runners import OnnxRuntimeRunner
    from nnconvert.verify.runners import IRRunner, SklearnRunner, make_runner

    kinds = {"ir": IRRunner, "sklearn": SklearnRunner, "onnxruntime": OnnxRuntimeRunner}
    for name in ("iris_mlp.onnx", "iris_mlp.json", "iris_mlp.skops", "iris_mlp.pkl", "iris_mlp.h5"):
        path = SAMPLES / name
        spec = registry.detect(path)
        assert isinstance(make_runner(path, trust=True), kinds[spec.runner]), name


def test_verify_detects_by_content_not_suffix(tmp_path: Path) -> None:
    from nnconvert.verify.onnx.runners import OnnxRuntimeRunner
    from nnconvert.verify.runners import SklearnRunner, make_runner

    onnx_named_bin = tmp_path / "model.bin"
    onnx_named_bin.write_bytes((SAMPLES / "iris_mlp.onnx").read_bytes())
    assert isinstance(make_runner(onnx_named_bin), OnnxRuntimeRunner)
    skops_named_dat = tmp_path / "model.dat"
    skops_named_dat.write_bytes((SAMPLES / "iris_mlp.skops").read_bytes())
    assert isinstance(make_runner(skops_named_dat), SklearnRunner)
