"""nnconvert never runs code from a file it was not told to trust.

- an untrusted pickle's payload (which would create a file) never runs:
  through the API, the command line, and content detection under every suffix;
- skops files load only a fixed list of types; others are refused by name;
- ONNX external data cannot leave the model's folder;
- HDF5 data stored outside the file (external links, external storage,
  virtual datasets) is refused, in nnconvert's layout and in Keras files;
- Keras Lambda layers and custom objects are refused without importing Keras;
- the package source calls no eval/exec/unpickling outside the pickle reader.
"""

from __future__ import annotations

import base64
import json
import marshal
import os
import pickle
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_bad_inputs  # noqa: E402

import nnconvert  # noqa: E402
from nnconvert import cli, registry  # noqa: E402
from nnconvert.errors import NnconvertError, ReadError, UnsupportedModelError, UntrustedInputError  # noqa: E402

PACKAGE = Path(nnconvert.__file__).resolve().parent
EVERY_SUFFIX = (".pkl", ".pickle", ".joblib", ".onnx", ".json", ".h5", ".hdf5", ".keras", ".skops", ".bin", "")


# -- pickles ---------------------------------------------------------------------


def _payloads(directory: Path, marker: Path) -> list[Path]:
    """The same payload as protocol 4 and protocol 0 pickles and a compressed joblib file, under every suffix."""
    import joblib

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    paths = []
    for suffix in EVERY_SUFFIX:
        for label, data in (("p4", pickle.dumps(Payload(), protocol=4)), ("p0", pickle.dumps(Payload(), protocol=0))):
            path = directory / f"payload_{label}{suffix}"
            path.write_bytes(data)
            paths.append(path)
        compressed = directory / f"payload_joblib{suffix}"
        joblib.dump(Payload(), compressed, compress=3)
        paths.append(compressed)
    return paths


def test_untrusted_pickle_never_runs_through_the_api(tmp_path):
    marker = tmp_path / "PWNED"
    for path in _payloads(tmp_path, marker):
        with pytest.raises(NnconvertError):
            nnconvert.load(path)
        with pytest.raises(UntrustedInputError):
            nnconvert.load(path, format="sklearn-pickle")
        with pytest.raises(NnconvertError):
            nnconvert.convert(path, tmp_path / "out.onnx")
        assert not marker.exists(), f"loading {path.name} ran its payload"
    assert not (tmp_path / "out.onnx").exists()


def test_untrusted_pickle_is_refused_as_untrusted_with_a_pickle_suffix_or_header(tmp_path):
    marker = tmp_path / "PWNED"
    for path in _payloads(tmp_path, marker):
        if path.suffix in (".pkl", ".pickle", ".joblib") or "p4" in path.name:
            with pytest.raises(UntrustedInputError, match="trust"):
                nnconvert.load(path)
    assert not marker.exists()


def test_sniffing_never_unpickles(tmp_path):
    marker = tmp_path / "PWNED"
    for path in _payloads(tmp_path, marker):
        claimed = [spec.name for spec in registry.sniff_content(path)]
        assert set(claimed) <= {"sklearn-pickle"}, (path.name, claimed)
        try:
            registry.detect(path)
        except NnconvertError:
            pass
    assert not marker.exists()


def test_untrusted_pickle_never_runs_through_the_command_line(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    for path in _payloads(tmp_path, marker):
        for args in (["convert", str(path), str(tmp_path / "out.json")], ["inspect", str(path)]):
            assert cli.main(args) == 3
            assert "Traceback" not in capsys.readouterr().err
    assert not marker.exists()
    assert not (tmp_path / "out.json").exists()


def test_untrusted_pickle_never_runs_in_a_real_process(tmp_path):
    marker = tmp_path / "PWNED"
    path = make_bad_inputs.make_pickle_payload(tmp_path / "model.pkl", marker)
    result = subprocess.run(
        [sys.executable, "-m", "nnconvert", "convert", str(path), str(tmp_path / "out.onnx")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3
    assert "--trust-pickle" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


def test_trusted_pickle_does_load(tmp_path):
    """The gate is the only thing in the way: with trust, a real model pickle loads."""
    valid = make_bad_inputs.write_valid_files(tmp_path)["sklearn-pickle"]
    model = nnconvert.load(valid, trust=True)
    assert model.n_outputs == 3


# -- skops -------------------------------------------------------------------------


def test_skops_refuses_a_function_and_names_it(tmp_path):
    import skops.io
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    path = tmp_path / "model.skops"
    skops.io.dump(make_pipeline(FunctionTransformer(os.system)), path)
    with pytest.raises(UntrustedInputError, match=r"posix\.system|nt\.system"):
        nnconvert.load(path)


def test_skops_refuses_types_skops_itself_trusts_but_nnconvert_does_not_need(tmp_path):
    import numpy as np
    import skops.io
    from sklearn.linear_model import LogisticRegression

    path = tmp_path / "model.skops"
    skops.io.dump(LogisticRegression().fit(np.arange(8.0).reshape(4, 2), [0, 1, 0, 1]), path)
    assert skops.io.get_untrusted_types(file=path) == []  # skops would load it without asking
    with pytest.raises(UntrustedInputError, match="LogisticRegression"):
        nnconvert.load(path)


def test_skops_schema_naming_a_forged_type_is_refused(tmp_path):
    valid = make_bad_inputs.write_valid_files(tmp_path)["skops"]
    with zipfile.ZipFile(valid) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    schema = json.loads(members["schema.json"])
    schema["__module__"], schema["__class__"] = "subprocess", "Popen"
    members["schema.json"] = json.dumps(schema).encode()
    forged = tmp_path / "forged.skops"
    with zipfile.ZipFile(forged, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(UntrustedInputError, match=r"subprocess\.Popen"):
        nnconvert.load(forged)


# -- ONNX external data ------------------------------------------------------------


@pytest.mark.parametrize("location, reason", [("../outside.bin", r"\.\."), ("ABSOLUTE", "absolute"), ("link.bin", "outside")])
def test_onnx_external_data_cannot_leave_the_model_folder(tmp_path, location, reason):
    import onnx

    secret = tmp_path / "outside.bin"
    secret.write_bytes(b"\0" * 48)
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "link.bin").symlink_to(secret)
    valid = make_bad_inputs.write_valid_files(tmp_path / "valid")["onnx"]
    proto = onnx.load(str(valid))
    make_bad_inputs._external(proto, "layers/0/weights", str(secret) if location == "ABSOLUTE" else location)
    path = folder / "model.onnx"
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(ReadError, match=reason):
        nnconvert.load(path)


def test_onnx_external_data_inside_the_folder_is_read(tmp_path):
    import numpy as np

    from nnconvert.ir import Activation, DenseLayer, Head, InputSpec, Model, Task

    rng = np.random.default_rng(0)
    layers = (DenseLayer(rng.normal(size=(3, 256)), rng.normal(size=256), Activation.RELU), DenseLayer(rng.normal(size=(256, 2)), rng.normal(size=2)))
    model = Model(layers=layers, head=Head(Task.REGRESSION), input=InputSpec(3))
    path = tmp_path / "model.onnx"
    nnconvert.save(model, path, dtype="float64", external_data=True)
    assert any(p.name != "model.onnx" for p in tmp_path.iterdir()), "no external data file was written"
    loaded = nnconvert.load(path)
    for ours, theirs in zip(model.layers, loaded.layers, strict=True):
        assert ours.weights.tobytes() == theirs.weights.tobytes()


# -- HDF5: data outside the file -----------------------------------------------------

HDF5_CASES = [
    ("hdf5", "external-link", "external link"),
    ("hdf5", "external-storage", "external file"),
    ("hdf5", "virtual-dataset", "virtual"),
    ("keras-h5", "external-link", "external link"),
    ("keras-h5", "external-storage", "external file"),
    ("keras-h5", "virtual-dataset", "virtual"),
    ("keras", "external-link", "external link"),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    directory = tmp_path_factory.mktemp("corpus")
    return {case.name: case for case in make_bad_inputs.make_corpus(directory, ("hdf5", "keras-h5", "keras"))}


@pytest.mark.parametrize("fmt, kind, words", HDF5_CASES)
def test_hdf5_data_outside_the_file_is_refused(corpus, fmt, kind, words):
    case = corpus[f"{fmt}/{kind}"]
    with pytest.raises(ReadError, match=words) as caught:
        nnconvert.load(case.path, format=fmt)
    assert "inside the file" in str(caught.value)


# -- Keras: nothing is deserialised ----------------------------------------------------

_KERAS_PROBE = r"""
import sys, warnings
warnings.simplefilter("ignore")
import nnconvert
for path in sys.argv[2:]:
    try:
        nnconvert.load(path)
        print("LOADED", path)
    except nnconvert.UnsupportedModelError as exc:
        print("REFUSED", path, str(exc).replace("\n", " "))
print("KERAS IMPORTED" if any(m == "keras" or m.startswith(("keras.", "tensorflow")) for m in sys.modules) else "NO KERAS")
"""


def _lambda_entry(marker: Path) -> dict:
    code = compile(f"lambda x: open({str(marker)!r}, 'w') and x", "<payload>", "eval").co_consts[0]
    function = base64.b64encode(marshal.dumps(code)).decode()
    return {"class_name": "Lambda", "config": {"name": "payload", "function": [function, None, None], "function_type": "lambda"}}


def test_keras_lambda_and_custom_objects_are_refused_without_importing_keras(tmp_path):
    marker = tmp_path / "PWNED"
    entries = {
        "lambda": _lambda_entry(marker),
        "custom": {"class_name": "Custom>Payload", "module": "payload_module", "config": {"name": "custom"}},
    }
    valid = make_bad_inputs.write_valid_files(tmp_path / "valid")
    paths = []
    for label, entry in entries.items():
        def insert(config, entry=entry):
            config["config"]["layers"].insert(2, entry)

        paths.append(make_bad_inputs._h5_copy(tmp_path, valid["keras-h5"], label, make_bad_inputs._change_config(insert), "keras_h5"))
        config = make_bad_inputs._keras_config([make_bad_inputs._dense_entry("hidden", 4), entry, make_bad_inputs._dense_entry("out", 3, "softmax")])
        model = make_bad_inputs.tiny_model()
        archive = tmp_path / f"{label}.keras"
        make_bad_inputs._keras_archive(archive, config, make_bad_inputs._keras_weights(make_bad_inputs._tiny_keras_arrays(model)))
        paths.append(archive)
    result = subprocess.run(
        [sys.executable, "-c", _KERAS_PROBE, "-", *map(str, paths)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "NO KERAS", result.stdout
    assert all(line.startswith("REFUSED") for line in lines[:-1]), result.stdout
    assert any("Lambda" in line for line in lines) and any("Custom>Payload" in line for line in lines)
    assert not marker.exists()


def test_keras_refusal_lists_every_offending_layer(tmp_path):
    valid = make_bad_inputs.write_valid_files(tmp_path / "valid")["keras-h5"]

    def two(config):
        make_bad_inputs._lambda_layer(config)
        make_bad_inputs._custom_layer(config)

    path = make_bad_inputs._h5_copy(tmp_path, valid, "two", make_bad_inputs._change_config(two), "keras_h5")
    with pytest.raises(UnsupportedModelError) as caught:
        nnconvert.load(path)
    assert len(caught.value.problems) == 2


# -- the source: no eval, exec or unpickling ---------------------------------------------

FORBIDDEN = re.compile(
    r"(?<![\w.])(eval|exec|compile|__import__)\s*\("
    r"|\bpickle\.loads?\s*\(|\bmarshal\.loads?\s*\(|\bdill\.|\bcloudpickle\."
    r"|\bjoblib\.load\s*\(|allow_pickle\s*=\s*True|\byaml\.(unsafe_)?load\s*\("
    r"|\bUnpickler\b|\bsafe_mode\s*=\s*False"
)
# the pickle reader is the one place that unpickles (reached only with trust=True; verify goes through it too)
UNPICKLING_ALLOWED = {
    "formats/sklearn_files.py": ("joblib.load(",),
    # the Spark driver reads back the partial statistics its own executors pickled: a cluster
    # already runs the driver's pickled closures, so this adds no code path an attacker controls
    "verify/spark.py": ("pickle.loads(",),
}


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """Source lines without comments and docstrings' prose (tokenize keeps strings; those are fine)."""
    import tokenize

    lines = []
    with open(path, "rb") as handle:
        tokens = list(tokenize.tokenize(handle.readline))
    code_rows: dict[int, list[str]] = {}
    for token in tokens:
        if token.type in (tokenize.NAME, tokenize.OP):
            code_rows.setdefault(token.start[0], []).append(token.string)
    for row, parts in code_rows.items():
        lines.append((row, "".join(p if p in "().=" else f" {p} " for p in parts).replace(" . ", ".").replace(" (", "(")))
    return lines


def test_package_source_has_no_eval_exec_or_unpickling():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        for row, line in _code_lines(path):
            for match in FORBIDDEN.finditer(line):
                found = match.group(0).replace(" ", "")
                if any(found.startswith(ok.rstrip("(")) for ok in UNPICKLING_ALLOWED.get(relative, ())):
                    continue
                offenders.append(f"{relative}:{row}: {found}")
    assert offenders == [], "code-running calls in the package:\n" + "\n".join(offenders)


def test_the_source_scan_catches_what_it_should(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("x = eval('1')\nimport pickle\ny = pickle.loads(b'')\nmodel.eval()\n# eval(comment)\ns = 'exec(text)'\n")
    found = [FORBIDDEN.search(line).group(0) for _, line in _code_lines(sample) if FORBIDDEN.search(line)]
    assert [f.replace(" ", "") for f in found] == ["eval(", "pickle.loads("]


def test_command_line_values_are_parsed_not_evaluated(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    valid = make_bad_inputs.write_valid_files(tmp_path / "valid")["keras-h5"]
    payload = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    code = cli.main(["convert", str(valid), str(tmp_path / "out.json"), "--task", "multiclass", "--classes", f"{payload},b,c"])
    assert code == 0, capsys.readouterr().err
    assert not marker.exists()
    # the payload is kept as what it is: the text of a class label
    assert nnconvert.load(tmp_path / "out.json").classes.tolist() == [payload, "b", "c"]


def test_onnx_external_data_swapped_for_a_link_after_the_check_is_refused(tmp_path, monkeypatch):
    """The attacker's window: the location is checked, then the file becomes a link outside before the read."""
    import numpy as np

    from nnconvert.formats.onnx import _reader
    from nnconvert.ir import Activation, DenseLayer, Head, InputSpec, Model, Task

    rng = np.random.default_rng(0)
    layers = (DenseLayer(rng.normal(size=(3, 256)), rng.normal(size=256), Activation.RELU), DenseLayer(rng.normal(size=(256, 2)), rng.normal(size=2)))
    model = Model(layers=layers, head=Head(Task.REGRESSION), input=InputSpec(3))
    folder = tmp_path / "models"
    folder.mkdir()
    path = nnconvert.save(model, folder / "model.onnx", dtype="float64", external_data=True)
    sidecar = next(p for p in folder.iterdir() if p.name != "model.onnx")
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.ones(sidecar.stat().st_size // 8).tobytes())
    checked = _reader.check_external_locations

    def check_then_swap(proto, model_path):
        checked(proto, model_path)
        sidecar.unlink()
        sidecar.symlink_to(secret)

    monkeypatch.setattr(_reader, "check_external_locations", check_then_swap)
    with pytest.raises(ReadError, match="symbolic link") as caught:
        nnconvert.load(path)
    assert str(path) in str(caught.value)
