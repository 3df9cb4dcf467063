"""The task/classes reader options are one policy (nnconvert/head.py), applied alike by every reader.

The readers are found through the registry: any format declaring a ``classes``
read option is covered here without being named.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import nnconvert
from nnconvert import cli, registry
from nnconvert.errors import UsageError
from nnconvert.ir import DenseLayer, Head, InputSpec, Model, Task

FIXTURES = Path(__file__).parent / "fixtures"
# formats nnconvert reads but does not write: a file of a model with raw (linear) outputs
READ_ONLY_RAW_FILES = {"keras": FIXTURES / "keras" / "regression.keras"}


def _readers_with_head_options() -> list[str]:
    return sorted(
        name
        for name, spec in registry.formats().items()
        if spec.read is not None and {"task", "classes"} <= {option.name for option in spec.read_options}
    )


def _raw_model() -> Model:
    rng = np.random.default_rng(3)
    layers = (
        DenseLayer(rng.normal(size=(4, 5)).astype(np.float32), rng.normal(size=5).astype(np.float32), "relu", "hidden"),
        DenseLayer(rng.normal(size=(5, 2)).astype(np.float32), rng.normal(size=2).astype(np.float32), "identity", "out"),
    )
    return Model(layers=layers, head=Head(Task.RAW), input=InputSpec(4))


def _raw_file(format_name: str, tmp_path: Path) -> Path:
    if format_name in READ_ONLY_RAW_FILES:
        return READ_ONLY_RAW_FILES[format_name]
    spec = registry.get(format_name)
    assert spec.write is not None, f"{format_name} is read-only: add a raw-output file to READ_ONLY_RAW_FILES"
    return nnconvert.save(_raw_model(), tmp_path / f"raw{spec.suffixes[0]}", format=format_name)


def test_the_readers_with_head_options_are_found() -> None:
    assert {"onnx", "keras-h5", "keras"} <= set(_readers_with_head_options())


@pytest.mark.parametrize("format_name", _readers_with_head_options())
def test_task_and_classes_options_are_applied_alike(format_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _raw_file(format_name, tmp_path)
    plain = nnconvert.load(path, format=format_name)
    assert plain.task in (Task.RAW, Task.REGRESSION) and plain.layers[-1].activation.value == "identity"
    # labels for a model whose outputs are not class scores: refused, not dropped
    with pytest.raises(UsageError, match="does not look like a classifier"):
        nnconvert.load(path, format=format_name, classes=["a", "b"])
    with pytest.raises(UsageError, match="classes make no sense for task='raw'"):
        nnconvert.load(path, format=format_name, task="raw", classes=["a", "b"])
    # a classifier task the output layer cannot compute (linear outputs are no probabilities)
    with pytest.raises(UsageError, match="does not fit the output layer"):
        nnconvert.load(path, format=format_name, task="multiclass")
    with pytest.raises(UsageError, match="task must be one of"):
        nnconvert.load(path, format=format_name, task="clustering")
    assert nnconvert.load(path, format=format_name, task="regression").task == Task.REGRESSION
    # the command line gives the same refusal as a usage error
    assert cli.main(["inspect", str(path), "--from", format_name, "--classes", "a,b"]) == 2
    assert "does not look like a classifier" in capsys.readouterr().err
