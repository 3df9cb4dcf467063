"""verify reads a candidate's files relative to the model's own folder, with load's checks; never the working directory.

- onnxruntime is handed the model's bytes: its external data are inlined by
  nnconvert from the model's folder first (a sidecar of the same name in the
  working directory is never read);
- test-data tensors may not refer to external data at all;
- malformed test data (a protobuf that does not parse, dims the data do not
  fill) end in a ReadError naming the file: exit 3 on the command line.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_bad_inputs  # noqa: E402

import nnconvert  # noqa: E402
from nnconvert import cli  # noqa: E402
from nnconvert.errors import ReadError  # noqa: E402
from nnconvert.ir import Activation, DenseLayer, Head, InputSpec, Model, Task  # noqa: E402


def _regression(seed: int) -> Model:
    rng = np.random.default_rng(seed)
    layers = (DenseLayer(rng.normal(size=(3, 64)), rng.normal(size=64), Activation.RELU), DenseLayer(rng.normal(size=(64, 2)), rng.normal(size=2)))
    return Model(layers=layers, head=Head(Task.REGRESSION), input=InputSpec(3))


def test_candidate_external_data_comes_from_its_own_folder(tmp_path, monkeypatch):
    right, wrong = _regression(1), _regression(2)
    reference = nnconvert.save(right, tmp_path / "reference.json")
    folder = tmp_path / "models"
    folder.mkdir()
    candidate = nnconvert.save(wrong, folder / "model.onnx", dtype="float64", external_data=True)
    sidecar = next(p for p in folder.iterdir() if p.name != "model.onnx")
    # the working directory holds a sidecar of the same name with the reference's weights
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    nnconvert.save(right, elsewhere / "model.onnx", dtype="float64", external_data=True)
    planted = next(p for p in elsewhere.iterdir() if p.name != "model.onnx")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    planted.rename(cwd / sidecar.name)
    monkeypatch.chdir(cwd)
    report = nnconvert.verify(reference, candidate)
    assert not report.passed, "verify compared the working directory's sidecar, not the candidate's own"
    assert nnconvert.verify(wrong_reference := nnconvert.save(wrong, tmp_path / "wrong.json"), candidate).passed, wrong_reference


def test_candidate_external_data_outside_its_folder_is_refused(tmp_path, monkeypatch):
    import onnx

    valid = make_bad_inputs.write_valid_files(tmp_path / "valid")
    proto = onnx.load(str(valid["onnx"]))
    make_bad_inputs._external(proto, "layers/0/weights", "weights.bin")
    folder = tmp_path / "models"
    folder.mkdir()
    candidate = folder / "model.onnx"
    candidate.write_bytes(proto.SerializeToString())
    (folder / "weights.bin").symlink_to(tmp_path / "valid" / "anything.bin")
    (tmp_path / "weights.bin").write_bytes(np.zeros(12, np.float32).tobytes())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ReadError, match="symbolic link") as caught:
        nnconvert.verify(valid["json"], candidate)
    assert str(candidate) in str(caught.value)


def _evidence(tmp_path: Path) -> Path:
    model = make_bad_inputs.tiny_model()
    path = nnconvert.save(model, tmp_path / "model.onnx")
    X = np.random.default_rng(0).normal(size=(8, 3))
    from nnconvert.verify import write_test_data

    write_test_data(path, X, {"output_label": model.predict(X), "output_probability": model.predict_proba(X)})
    assert nnconvert.verify(path).passed
    return path


def test_test_data_naming_external_data_is_refused(tmp_path, monkeypatch, capsys):
    import onnx

    path = _evidence(tmp_path)
    stolen = tmp_path / "cwd" / "secret.bin"
    stolen.parent.mkdir()
    stolen.write_bytes(np.ones(24, np.float32).tobytes())
    input_file = tmp_path / "test_data_set_0" / "input_0.pb"
    tensor = onnx.TensorProto()
    tensor.ParseFromString(input_file.read_bytes())
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", "secret.bin"), ("length", str(stolen.stat().st_size))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    input_file.write_bytes(tensor.SerializeToString())
    monkeypatch.chdir(stolen.parent)
    saved = tmp_path / "saved.npz"
    assert cli.main(["verify", str(path), "--save-inputs", str(saved)]) == 3
    err = capsys.readouterr().err
    assert str(input_file) in err and "external data" in err and "Traceback" not in err
    assert not saved.exists()


@pytest.mark.parametrize("damage", ["not-a-proto", "absurd-dims", "truncated"])
def test_malformed_test_data_is_an_input_error_naming_the_file(tmp_path, capsys, damage):
    import onnx

    path = _evidence(tmp_path)
    output_file = tmp_path / "test_data_set_0" / "output_1.pb"
    data = output_file.read_bytes()
    if damage == "not-a-proto":
        output_file.write_bytes(b"\xff" * 64)
    elif damage == "truncated":
        output_file.write_bytes(data[: len(data) // 2])
    else:
        tensor = onnx.TensorProto()
        tensor.ParseFromString(data)
        del tensor.dims[:]
        tensor.dims.extend([10**6, 10**6])
        output_file.write_bytes(tensor.SerializeToString())
    assert cli.main(["verify", str(path)]) == 3
    err = capsys.readouterr().err
    assert str(output_file) in err and "Traceback" not in err and "bug" not in err


def _absurd_npy(path: Path) -> Path:
    header = __import__("io").BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})
    path.write_bytes(header.getvalue() + bytes(64))
    return path


@pytest.mark.parametrize("kind", ["npy-absurd", "npz-absurd", "wrong-width", "csv-garbage"])
def test_verify_data_files_are_input_errors_naming_the_file(tmp_path, capsys, kind):
    import zipfile

    model = make_bad_inputs.tiny_model()
    reference = nnconvert.save(model, tmp_path / "model.json")
    candidate = nnconvert.save(model, tmp_path / "model.onnx")
    if kind == "npy-absurd":
        data = _absurd_npy(tmp_path / "rows.npy")
    elif kind == "npz-absurd":
        data = tmp_path / "rows.npz"
        with zipfile.ZipFile(data, "w") as archive:
            archive.writestr("X.npy", _absurd_npy(tmp_path / "inner.npy").read_bytes())
    elif kind == "wrong-width":
        data = tmp_path / "rows.npy"
        np.save(data, np.zeros((5, 7)))
    else:
        data = tmp_path / "rows.csv"
        data.write_text("a,b,c\n1,2,x\n")
    assert cli.main(["verify", str(reference), str(candidate), "--data", str(data)]) == 3
    err = capsys.readouterr().err
    assert str(data) in err and "Traceback" not in err and "bug" not in err and "MemoryError" not in err, err
