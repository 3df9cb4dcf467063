"""verify: parity of real conversions, detection of corrupted models, reports, evidence, command."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import nnconvert
from nnconvert.errors import MissingDependencyError, UsageError
from nnconvert.ir import Activation, DenseLayer, Head, InputSpec, Model, Task
from nnconvert.verify import command, compare, write_test_data
from nnconvert.verify.runners import Runner
from nnconvert.verify.tolerances import Tolerance
from tests.sklearn_variants import get_variant, variant_ids

SCHEMA = Path(nnconvert.__file__).parent / "schemas" / "verify_report.schema.json"


def _onnx(tmp_path: Path, model_or_estimator, dtype: str = "float32", name: str = "model.onnx", **options) -> Path:
    model = model_or_estimator if isinstance(model_or_estimator, Model) else nnconvert.from_sklearn(model_or_estimator)
    path = tmp_path / name
    nnconvert.save(model, path, dtype=dtype, **options)
    return path


def _validate(document: dict) -> None:
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(document)


# -- real conversions pass -------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("variant_id", variant_ids())
def test_every_variant_converted_to_onnx_passes(tmp_path, variant_id, dtype):
    variant = get_variant(variant_id)
    path = _onnx(tmp_path, variant.estimator, dtype)
    report = nnconvert.verify(variant.estimator, path, variant.X_test)
    assert report.passed, report.summary()
    expected = "float64" if dtype == "float64" and variant.X_test.dtype == np.float64 else "float32"
    assert report.to_dict()["comparison_dtype"] == expected
    assert report.to_dict()["layers"]["compared"]


def test_random_inputs_come_from_the_preprocessing_and_warn(tmp_path):
    variant = get_variant("pipeline-standard")
    report = nnconvert.verify(variant.estimator, _onnx(tmp_path, variant.estimator), n_samples=200)
    document = report.to_dict()
    assert report.passed, report.summary()
    assert document["inputs"]["source"] == "random"
    assert "StandardScaler" in document["inputs"]["range"]["source"]
    scaler = variant.estimator.steps[0][1]
    np.testing.assert_allclose(document["inputs"]["range"]["low"], scaler.mean_ - 3 * scaler.scale_)
    assert any("only random inputs" in w for w in document["warnings"])
    assert document["inputs"]["edge_kinds"]["decision-boundary"] >= 2


def test_an_onnx_reference_gives_the_range_of_its_scaler(tmp_path):
    # skl2onnx writes the StandardScaler as an ai.onnx.ml Scaler: (x - mean) * (1 / scale)
    variant = get_variant("pipeline-standard")
    scaler = variant.estimator.steps[0][1]
    reference = _onnx(tmp_path, variant.estimator)
    document = nnconvert.verify(reference, nnconvert.load(reference), n_samples=50).to_dict()
    assert "preprocessing" in document["inputs"]["range"]["source"]
    np.testing.assert_allclose(document["inputs"]["range"]["low"], scaler.mean_ - 3 * scaler.scale_, rtol=1e-6)
    np.testing.assert_allclose(document["inputs"]["range"]["high"], scaler.mean_ + 3 * scaler.scale_, rtol=1e-6)


def test_skl2onnx_zipmap_output_is_compared_as_probabilities(tmp_path):
    from skl2onnx import to_onnx

    variant = get_variant("iris-labels-str")
    path = tmp_path / "zipmap.onnx"
    path.write_bytes(to_onnx(variant.estimator, variant.X_test[:1].astype(np.float32)).SerializeToString())
    report = nnconvert.verify(variant.estimator, path, variant.X_test)
    assert report.passed, report.summary()
    assert {o["name"] for o in report.to_dict()["outputs"]} == {"probabilities", "labels"}


def test_float64_tolerances_catch_a_float32_model(tmp_path):
    variant = get_variant("iris-tanh-3layers")
    as_float32 = nnconvert.from_sklearn(variant.estimator).astype(np.float32).astype(np.float64)
    report = nnconvert.verify(variant.estimator, _onnx(tmp_path, as_float32, "float64"), variant.X_test)
    assert not report.passed
    assert report.first_failing_layer["index"] == 0


# -- corrupted models fail and the report points at the fault -----------------------


def _layer_replaced(model: Model, index: int, **changes) -> Model:
    layers = list(model.layers)
    layers[index] = replace(layers[index], **changes)
    return replace(model, layers=tuple(layers))


def test_one_weight_changed_by_1e_3_fails_at_that_layer(tmp_path):
    variant = get_variant("iris-tanh-3layers")
    model = nnconvert.from_sklearn(variant.estimator)
    hidden = model.forward(variant.X_test, return_intermediates=True)[1]  # input of layer 1
    weights = model.layers[1].weights.copy()
    weights[np.argmax(np.abs(hidden).mean(axis=0)), 0] += 1e-3
    corrupted = _layer_replaced(model, 1, weights=weights)
    report = nnconvert.verify(variant.estimator, _onnx(tmp_path, corrupted), variant.X_test)
    assert not report.passed
    assert "probabilities" in report.failed_outputs
    failing = report.first_failing_layer
    assert failing["index"] == 1
    assert failing["name"] == (model.layers[1].name or "dense_1")
    assert "per layer: first out of tolerance: layer 1" in report.summary()


def test_swapped_activation_fails_at_that_layer(tmp_path):
    variant = get_variant("iris-relu-3layers")
    model = nnconvert.from_sklearn(variant.estimator)
    corrupted = _layer_replaced(model, 2, activation=Activation.TANH)
    report = nnconvert.verify(variant.estimator, _onnx(tmp_path, corrupted), variant.X_test)
    assert not report.passed
    assert report.first_failing_layer["index"] == 2


def test_class_labels_in_the_wrong_order_fail_the_labels_output(tmp_path):
    variant = get_variant("iris-labels-int")
    model = nnconvert.from_sklearn(variant.estimator)
    corrupted = replace(model, head=Head(model.task, model.classes[::-1].copy()))
    report = nnconvert.verify(variant.estimator, _onnx(tmp_path, corrupted), variant.X_test)
    assert report.failed_outputs == ["labels"]
    labels = report.output("labels")["checks"][0]
    assert labels["unexpected_flips"] > 0 and labels["flips"][0]["margin"] > 0.01
    assert "labels [data] row" in report.summary()


# -- label flips ------------------------------------------------------------------


def _tie_model(dtype) -> Model:
    # class k's logit is x_k: a row with x_0 ~= x_1 sits on the decision boundary
    layer = DenseLayer(np.eye(2, dtype=dtype), np.zeros(2, dtype=dtype), Activation.SOFTMAX, name="out")
    return Model((layer,), Head(Task.MULTICLASS, np.array([10, 20])), InputSpec(2))


def test_flip_at_a_near_tie_passes_and_is_reported(tmp_path):
    X = np.array([[0.3, 0.3 + 1e-9], [0.1, 0.9], [0.7, 0.2]])  # row 0 ties once rounded to float32
    report = nnconvert.verify(_tie_model(np.float64), _onnx(tmp_path, _tie_model(np.float64)), X, edge_cases=False)
    labels = report.output("labels")["checks"][0]
    assert report.passed, report.summary()
    assert labels["flipped"] == 1 and labels["near_tie_flips"] == 1
    assert labels["flips"][0]["row"] == 0 and labels["flips"][0]["near_tie"]


def test_compare_labels_judges_flips_by_the_reference_margin():
    probabilities = np.array([[0.5000001, 0.4999999], [0.9, 0.1], [0.2, 0.8]])
    reference = np.array(["a", "a", "b"])
    tolerance = Tolerance(atol=1e-5, rtol=1e-4, source="default")
    near = compare.compare_labels(reference, np.array(["b", "a", "b"]), probabilities, tolerance)
    wide = compare.compare_labels(reference, np.array(["a", "b", "b"]), probabilities, tolerance)
    assert near["passed"] and near["near_tie_flips"] == 1
    assert not wide["passed"] and wide["unexpected_flips"] == 1
    assert wide["flips"][0]["margin"] == pytest.approx(0.8)


def test_compare_values_locates_the_worst_element_and_the_passing_atol():
    reference = np.array([[1.0, 2.0], [3.0, 4.0]])
    candidate = reference + np.array([[0.0, 0.0], [0.5, 0.0]])
    metrics = compare.compare_values(reference, candidate, lambda m: Tolerance(0.1, 0.0, "user"), np.dtype(np.float64))
    assert not metrics["passed"] and metrics["mismatches"] == 1
    assert metrics["max_abs_error"] == {"value": 0.5, "row": 1, "column": 0}
    assert metrics["min_passing_atol"] == pytest.approx(0.5)
    assert compare.max_ulp(np.array([1.0]), np.array([np.nextafter(1.0, 2.0)]), np.dtype(np.float64)) == 1


class _BatchDependent(Runner):
    kind = "test"
    dtype = np.dtype(np.float64)
    n_features = 2

    def __init__(self, model: Model):
        self.model = model

    def run(self, X):
        y = self.model.forward(X)
        return {"values": y + (1e-3 if len(X) == 1 else 0.0)}


def test_results_depending_on_the_batch_size_fail():
    model = replace(_tie_model(np.float64), head=Head(Task.REGRESSION))
    report = nnconvert.verify(model, _BatchDependent(model), np.random.default_rng(0).random((20, 2)))
    checks = {c["inputs"]: c["passed"] for c in report.output("values")["checks"]}
    assert checks == {"data": True, "edge": True, "batch-1": False}


def test_user_tolerance_per_output_overrides_the_default(tmp_path):
    variant = get_variant("iris-tanh-3layers")
    model = nnconvert.from_sklearn(variant.estimator)
    corrupted = _layer_replaced(model, 0, bias=model.layers[0].bias + 1e-3)
    path = _onnx(tmp_path, corrupted)
    assert not nnconvert.verify(variant.estimator, path, variant.X_test).passed
    loose = nnconvert.verify(variant.estimator, path, variant.X_test, atol={"probabilities": 0.1})
    assert loose.passed
    assert loose.output("probabilities")["checks"][0]["tolerance"]["source"] == "user"
    with pytest.raises(UsageError, match="outputs compared"):
        nnconvert.verify(variant.estimator, path, variant.X_test, atol={"nope": 1.0})


# -- reports ------------------------------------------------------------------


def test_json_report_validates_and_markdown_has_a_table(tmp_path):
    variant = get_variant("binary-str")
    model = nnconvert.from_sklearn(variant.estimator)
    good = nnconvert.verify(variant.estimator, _onnx(tmp_path, model), reference_evaluator=True)
    bad_model = _layer_replaced(model, 0, activation=Activation.LOGISTIC)
    bad = nnconvert.verify(variant.estimator, _onnx(tmp_path, bad_model, name="bad.onnx"), variant.X_test)
    for report in (good, bad):
        document = json.loads(report.to_json(tmp_path / "report.json"))
        _validate(document)
        assert document["versions"]["numpy"] == np.__version__
        assert len(document["inputs"]["sha256"]) == 64
        lines = report.to_markdown().splitlines()
        header = next(i for i, line in enumerate(lines) if line.startswith("| output"))
        assert set(lines[header + 1]) <= set("|-") and lines[header + 2].startswith("| probabilities")
    assert good.to_dict()["cross_checks"][0]["diagnosis"].startswith("both ONNX implementations agree")
    assert "FAILED" in bad.summary() and "PASSED" in good.summary()


def test_save_inputs_reproduces_the_run(tmp_path):
    variant = get_variant("regression-3")
    path = _onnx(tmp_path, variant.estimator)
    report = nnconvert.verify(variant.estimator, path, n_samples=50, seed=3)
    saved = report.save_inputs(tmp_path / "inputs.npz")
    again = nnconvert.verify(variant.estimator, path, nnconvert.verify.inputs.load_data(saved))
    assert again.to_dict()["inputs"]["sha256"] == report.to_dict()["inputs"]["sha256"]
    with np.load(saved) as archive:
        np.testing.assert_array_equal(archive["reference_random_values"], variant.estimator.predict(archive["X"]))


def _block_matplotlib(monkeypatch) -> None:
    """Make ``import matplotlib`` (and its submodules) fail as it does when matplotlib is not installed."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def _plot_branch(report, path: Path) -> str:
    """Which branch ``Report.plot`` took: "png" (a PNG was written) or "missing" (it named the dependency)."""
    try:
        written = report.plot(path)
    except MissingDependencyError as exc:
        assert "pip install matplotlib" in str(exc)
        assert not path.exists()
        return "missing"
    assert written == path and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return "png"


def _matplotlib_installed() -> bool:
    import importlib.util

    return sys.modules.get("matplotlib", False) is not None and importlib.util.find_spec("matplotlib") is not None


@pytest.fixture(scope="module")
def regression_report(tmp_path_factory):
    variant = get_variant("regression-1")
    return nnconvert.verify(variant.estimator, _onnx(tmp_path_factory.mktemp("plot"), variant.estimator), variant.X_test)


def test_plot_writes_a_png_or_names_the_missing_dependency(tmp_path, regression_report):
    expected = "png" if _matplotlib_installed() else "missing"
    assert _plot_branch(regression_report, tmp_path / "errors.png") == expected


def test_plot_names_the_missing_dependency_when_matplotlib_is_absent(tmp_path, monkeypatch, regression_report):
    _block_matplotlib(monkeypatch)
    assert _plot_branch(regression_report, tmp_path / "errors.png") == "missing"


def test_verify_command_exits_4_when_plotting_without_matplotlib(tmp_path, monkeypatch, capsys):
    from nnconvert import cli

    variant = get_variant("regression-1")
    model = _onnx(tmp_path, variant.estimator, dtype="float64")
    data = tmp_path / "X.csv"
    np.savetxt(data, variant.X_test, delimiter=",")
    _block_matplotlib(monkeypatch)
    assert cli.main(["verify", str(model), str(model), "--data", str(data), "--plot", str(tmp_path / "p.png")]) == 4
    err = capsys.readouterr().err
    assert "pip install matplotlib" in err and "Traceback" not in err
    assert not (tmp_path / "p.png").exists()


# -- evidence ------------------------------------------------------------------


def test_test_data_round_trip(tmp_path):
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    variant = get_variant("iris-labels-str")
    path = _onnx(tmp_path, variant.estimator)
    outputs = {"output_label": variant.estimator.predict(variant.X_test), "output_probability": variant.estimator.predict_proba(variant.X_test)}
    folder = write_test_data(path, variant.X_test, outputs)
    # the layout onnx's backend tests read: input_0 named as the graph input, outputs in graph order
    stored = onnx.TensorProto()
    stored.ParseFromString((folder / "input_0.pb").read_bytes())
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {stored.name: numpy_helper.to_array(stored)})
    for index, graph_output in enumerate(onnx.load(str(path)).graph.output):
        expected = onnx.TensorProto()
        expected.ParseFromString((folder / f"output_{index}.pb").read_bytes())
        assert expected.name == graph_output.name
        stored_output, produced = numpy_helper.to_array(expected), got[index]
        if produced.dtype.kind == "f":
            np.testing.assert_allclose(stored_output, produced, atol=1e-5)
        else:
            np.testing.assert_array_equal(stored_output.astype(str), produced.astype(str))
    report = nnconvert.verify(path)
    assert report.passed, report.summary()
    assert report.to_dict()["reference"]["kind"] == "test-data"
    _validate(report.to_dict())


def test_convert_emit_test_data_then_verify_against_the_evidence(tmp_path, capsys):
    import joblib

    variant = get_variant("pipeline-minmax-clip")
    source = tmp_path / "model.joblib"
    joblib.dump(variant.estimator, source)
    good = _onnx(tmp_path, variant.estimator, zipmap=True)
    args = argparse.Namespace(emit_test_data=True, verify=True, trust_pickle=True, verify_data=None, verify_n_samples=100, verify_seed=0)
    assert command.verify_after_convert(source, good, args, nnconvert.load(source, trust=True)) == 0
    assert (tmp_path / "test_data_set_0" / "output_1.pb").is_file() and (tmp_path / "test_data_set_1").is_dir()
    assert nnconvert.verify(good).passed
    model = nnconvert.from_sklearn(variant.estimator)
    _onnx(tmp_path, replace(model, head=Head(model.task, model.classes[::-1].copy())), zipmap=True)  # overwrite
    assert not nnconvert.verify(good).passed
    with pytest.raises(UsageError, match="no reference"):
        nnconvert.verify(_onnx(tmp_path / "..", variant.estimator, name=f"{tmp_path.name}-lonely.onnx"))


# -- the command ------------------------------------------------------------------


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.configure_parser(parser)
    return parser.parse_args(argv)


def test_command_exit_codes_and_report_files(tmp_path, capsys):
    import joblib

    variant = get_variant("iris-10")
    source = tmp_path / "model.pkl"
    joblib.dump(variant.estimator, source)
    good = _onnx(tmp_path, variant.estimator, name="good.onnx")
    model = nnconvert.from_sklearn(variant.estimator)
    bad = _onnx(tmp_path, _layer_replaced(model, 0, activation=Activation.TANH), name="bad.onnx")
    data = tmp_path / "data.csv"
    np.savetxt(data, variant.X_test, delimiter=",", header="a,b,c,d", comments="")
    files = ["--report-json", str(tmp_path / "r.json"), "--report-md", str(tmp_path / "r.md")]
    assert command.run(_parse(str(source), str(good), "--trust-pickle", "--data", str(data), *files)) == 0
    assert "nnconvert verify: PASSED" in capsys.readouterr().out
    _validate(json.loads((tmp_path / "r.json").read_text()))
    assert "| output |" in (tmp_path / "r.md").read_text()
    assert command.run(_parse(str(source), str(bad), "--trust-pickle", "--seed", "1", "--n-samples", "64")) == 1
    assert command.run(_parse(str(source), str(bad), "--trust-pickle", "--warn-only")) == 0
    assert command.run(_parse(str(source), str(bad), "--trust-pickle", "--atol", "1e-6", "--rtol", "probabilities=1e-3", "--range", "0", "8")) == 1
    with pytest.raises(nnconvert.UntrustedInputError):
        command.run(_parse(str(source), str(good)))


def test_parse_tolerances():
    assert command.parse_tolerances(["1e-5", "probabilities=2e-4"], "atol") == {"*": 1e-5, "probabilities": 2e-4}
    with pytest.raises(UsageError, match="--rtol"):
        command.parse_tolerances(["probabilities=x"], "rtol")


# -- cost: no second full-size pass, bounded subsets, the inputs' hash -------------------


class _CountingRunner(Runner):
    """Wraps a runner and records the number of rows of every call."""

    def __init__(self, inner: Runner):
        self.inner = inner
        self.kind, self.dtype, self.n_features = inner.kind, inner.dtype, inner.n_features
        self.is_classifier = inner.is_classifier
        self.run_rows: list[int] = []
        self.layer_rows: list[int] = []

    def run(self, X):
        self.run_rows.append(len(X))
        return self.inner.run(X)

    def intermediates(self, X):
        self.layer_rows.append(len(X))
        return self.inner.intermediates(X)


def test_each_model_sees_the_full_rows_once_and_only_small_batches_besides(tmp_path, monkeypatch):
    from nnconvert.verify import core
    from nnconvert.verify.runners import make_runner

    monkeypatch.setattr(core, "LAYER_SAMPLE_ROWS", 16)
    variant = get_variant("iris-relu-3layers")
    X = np.random.default_rng(0).uniform(0, 8, (3000, 4))
    reference = _CountingRunner(make_runner(variant.estimator))
    candidate = _CountingRunner(make_runner(_onnx(tmp_path, variant.estimator)))
    report = nnconvert.verify(reference, candidate, X)
    assert report.passed, report.summary()
    for side in (reference, candidate):
        assert side.run_rows.count(3000) == 1 and max(side.run_rows[1:]) <= 64, side.run_rows
    layers = report.to_dict()["layers"]
    assert reference.layer_rows == candidate.layer_rows == [layers["rows"]]
    worst = {s["row"] for o in report.to_dict()["outputs"] for s in o["checks"][0].get("worst_samples", [])}
    assert 16 <= layers["rows"] <= 16 + len(worst) and "of 3000 rows" in layers["note"]
    assert layers["note"] in report.summary()


def test_edge_cases_reuse_the_reference_labels_without_changing_the_rows():
    from nnconvert.verify import inputs
    from nnconvert.verify.runners import make_runner

    variant = get_variant("iris-labels-str")
    runner = make_runner(variant.estimator)
    data = inputs.Inputs(variant.X_test, "data", variant.X_test.min(axis=0), variant.X_test.max(axis=0))
    computed, kinds = inputs.edge_cases(data, runner, 0, False)
    reused, same_kinds = inputs.edge_cases(data, runner, 0, False, runner.run(variant.X_test)["labels"])
    np.testing.assert_array_equal(computed, reused)
    assert kinds == same_kinds and kinds.count("decision-boundary") >= 2
    boundary = computed[[k == "decision-boundary" for k in kinds]]
    half = len(boundary) // 2
    assert (runner.run(boundary[:half])["labels"] != runner.run(boundary[half:])["labels"]).all()


def _documented_sha256(*arrays: np.ndarray) -> str:
    import hashlib

    digest = hashlib.sha256()
    for array in arrays:
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("layout", ["C", "F", "big-endian", "float32", "strided"])
def test_inputs_sha256_is_the_documented_digest_of_the_rows_as_given(layout, monkeypatch):
    from nnconvert.verify import inputs

    monkeypatch.setattr(inputs, "HASH_BLOCK_BYTES", 1000)  # several blocks, and rows split across them
    X = np.random.default_rng(1).normal(size=(300, 7))
    X = {"C": X, "F": np.asfortranarray(X), "big-endian": X.astype(">f8"), "float32": X.astype(np.float32), "strided": X[::2]}[layout]
    assert inputs.InputHasher([X]).start().result() == _documented_sha256(X)
    assert inputs.InputHasher([X, X[:3]]).result() == _documented_sha256(X, X[:3])


def test_the_report_carries_the_digest_and_a_cancelled_hash_says_so(tmp_path):
    from nnconvert.verify import inputs

    variant = get_variant("iris-10")
    report = nnconvert.verify(variant.estimator, _onnx(tmp_path, variant.estimator), variant.X_test)
    document = report.to_dict()
    assert document["inputs"]["sha256"] == _documented_sha256(variant.X_test)
    edge = report.input_sets[1]["X"]
    assert document["inputs"]["edge_sha256"] == _documented_sha256(edge)
    assert {"reference_s", "candidate_s", "compare_s", "sha256_s", "sha256_wait_s", "total_s"} <= set(document["timings"])
    hasher = inputs.InputHasher([np.zeros((4096, 4096))])
    hasher.cancel()
    with pytest.raises(RuntimeError, match="cancelled"):
        hasher.start().result()


def test_small_batches_run_blas_on_one_thread_and_restore_it(tmp_path):
    from threadpoolctl import threadpool_info

    from nnconvert.verify import core

    before = [(lib["filepath"], lib["num_threads"]) for lib in threadpool_info()]
    with core._few_threads():
        with core._few_threads():  # nested and concurrent verify calls restore once, at the last exit
            pass
        inside = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert set(inside) == {1}
    variant = get_variant("iris-10")
    with pytest.raises(UsageError):
        nnconvert.verify(variant.estimator, _onnx(tmp_path, variant.estimator), variant.X_test, atol={"nope": 1.0})
    assert [(lib["filepath"], lib["num_threads"]) for lib in threadpool_info()] == before


@pytest.mark.parametrize("variant_id", ["iris-labels-str", "multilabel", "regression-3"])
def test_onnxruntime_in_blocks_gives_the_whole_batch_results(tmp_path, monkeypatch, variant_id):
    import onnxruntime as ort

    from nnconvert.verify.onnx import runners as onnx_runners

    monkeypatch.setattr(onnx_runners, "RUN_BLOCK_ROWS", 7)
    variant = get_variant(variant_id)
    path = _onnx(tmp_path, variant.estimator, zipmap=variant_id == "iris-labels-str")
    runner = onnx_runners.OnnxRuntimeRunner(path)
    blocks = runner.run(variant.X_test)  # float64 rows: cast 7 rows at a time
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    whole = session.run(runner.output_order, {runner.input_name: variant.X_test.astype(np.float32)})
    expected = onnx_runners.normalise_outputs(runner.output_order, whole, runner.output_map)
    assert blocks.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(blocks[name], expected[name])


@pytest.mark.parametrize("shape", [(1,), (2,), (1000,), (100_000,), (70_000, 10)])
def test_percentile_is_numpys(shape):
    rng = np.random.default_rng(sum(shape))
    samples = [rng.exponential(size=shape), rng.integers(0, 3, shape).astype(float), np.sort(rng.random(shape).ravel()).reshape(shape)]
    with_inf = rng.exponential(size=shape)
    with_inf.flat[rng.integers(0, with_inf.size, 3)] = np.inf
    samples.append(with_inf)
    for values in samples:
        for q in (0, 50, 90, 99, 99.9, 100):
            with np.errstate(invalid="ignore"):  # inf - inf, in numpy's interpolation as in ours
                expected, got = np.percentile(values, q), compare.percentile(values, q)
            assert got == expected or (np.isnan(got) and np.isnan(expected)), (q, got, expected)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_max_ulp_counts_representable_steps_across_zero(dtype):
    dtype = np.dtype(dtype)
    tiny = np.finfo(dtype).smallest_subnormal
    x = np.array([1.0, -2.5, 0.0, -0.0, tiny, 3.0], dtype=dtype)
    y = x.copy()
    assert compare.max_ulp(x, y, dtype) == 0
    y[0] = np.nextafter(np.nextafter(x[0], dtype.type(2)), dtype.type(2))  # two steps up
    assert compare.max_ulp(x, y, dtype) == 2
    assert compare.max_ulp(np.array([-0.0], dtype), np.array([0.0], dtype), dtype) == 1
    assert compare.max_ulp(np.array([-tiny], dtype), np.array([tiny], dtype), dtype) == 3  # -tiny, -0, +0, +tiny
    big = np.finfo(dtype).max
    steps_to_big = np.array(big, dtype).view(np.dtype(f"u{dtype.itemsize}")).item()
    assert compare.max_ulp(np.array([-big], dtype), np.array([big], dtype), dtype) == float(2 * steps_to_big + 1)
    assert compare.max_ulp(np.array([np.inf, 1.0], dtype), np.array([np.inf, np.nextafter(dtype.type(1), dtype.type(2))], dtype), dtype) == 1


def test_input_hash_can_be_skipped_for_speed(tmp_path) -> None:
    import json

    import jsonschema
    from sklearn_variants import get_variant

    import nnconvert

    variant = get_variant("iris-10")
    path = tmp_path / "m.onnx"
    nnconvert.save(nnconvert.from_sklearn(variant.estimator), path)
    hashed = nnconvert.verify(variant.estimator, path, variant.X_test)
    skipped = nnconvert.verify(variant.estimator, path, variant.X_test, hash_inputs=False)
    assert hashed.passed and skipped.passed
    assert len(hashed.to_dict()["inputs"]["sha256"]) == 64
    assert skipped.to_dict()["inputs"]["sha256"] is None
    assert "sha256 not computed" in skipped.summary()
    schema = json.loads((Path(nnconvert.__file__).parent / "schemas" / "verify_report.schema.json").read_text())
    jsonschema.validate(skipped.to_dict(), schema)


def test_skops_file_runs_as_the_estimator_itself(tmp_path) -> None:
    from sklearn_variants import get_variant

    import nnconvert
    from nnconvert.verify.runners import SklearnRunner, make_runner

    variant = get_variant("pipeline-standard")
    skops_path, onnx_path = tmp_path / "m.skops", tmp_path / "m.onnx"
    model = nnconvert.from_sklearn(variant.estimator)
    nnconvert.save(model, skops_path)
    nnconvert.save(model, onnx_path)
    assert isinstance(make_runner(skops_path, trust=False, ort_optimizations=True, role="reference"), SklearnRunner)
    assert nnconvert.verify(skops_path, onnx_path, variant.X_test).passed
