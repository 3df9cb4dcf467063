"""The task metric against ground truth: scikit-learn's own numbers, streamed == in memory, the CLI's errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import nnconvert
from nnconvert import cli
from nnconvert.verify import bins
from tests.sklearn_variants import get_variant
from tests.test_verify_stream import _broken, _comparable, _rows

CHUNK = 1000  # several blocks: the sums merge across chunks in every test


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch):
    monkeypatch.setattr(bins, "CHUNK_ROWS", CHUNK)


def _truth(variant, X: np.ndarray, seed: int = 5) -> np.ndarray:
    """Ground truth near the reference's predictions: some labels changed, or noise on the targets."""
    rng = np.random.default_rng(seed)
    predicted = variant.estimator.predict(X)
    if variant.kind == "regressor":
        return predicted + rng.normal(scale=0.3 * np.std(predicted), size=predicted.shape)
    changed = rng.random(len(X)) < 0.2
    truth = predicted.copy()
    if truth.ndim == 2:  # multilabel indicator rows: flip one label of the changed rows
        truth[changed, 0] = 1 - truth[changed, 0]
    else:
        classes = variant.estimator.classes_
        truth[changed] = classes[rng.integers(0, len(classes), int(changed.sum()))]
    return truth


def _onnx_predictions(path: Path, X: np.ndarray, variant) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = "variable" if variant.kind == "regressor" else "output_label"
    out = session.run([name], {"X": X.astype(np.float32)})[0]
    return out.reshape(len(X), -1) if variant.kind == "regressor" else out


def _scores(truth: np.ndarray, predicted: np.ndarray, kind: str) -> dict[str, float]:
    from sklearn import metrics

    if kind == "classifier":
        return {"accuracy": metrics.accuracy_score(truth, predicted)}
    predicted = predicted.reshape(truth.shape)
    return {
        "mse": metrics.mean_squared_error(truth, predicted),
        "rmse": metrics.root_mean_squared_error(truth, predicted),
        "mae": metrics.mean_absolute_error(truth, predicted),
        "r2": metrics.r2_score(truth, predicted),
    }


@pytest.mark.parametrize("variant_id", ["iris-labels-str", "binary-bool", "multilabel", "regression-1", "regression-3"])
def test_metric_is_scikit_learns_on_both_models(tmp_path, variant_id):
    variant = get_variant(variant_id)
    X = _rows(variant, 2500)
    truth = _truth(variant, X)
    candidate = _broken(tmp_path, variant.estimator, 0.2)  # a candidate whose metric differs from the reference's
    report = nnconvert.verify(variant.estimator, candidate, X, labels=truth, per_layer=False)
    metric = report.metric
    assert metric == report.to_dict()["metric"] and report.passed is False  # the verdict stays parity's
    expected = {
        "reference": _scores(truth, variant.estimator.predict(X), variant.kind),
        "candidate": _scores(truth, _onnx_predictions(candidate, X, variant), variant.kind),
    }
    assert metric["n_rows"] == len(X) and metric["task"] == ("regression" if variant.kind == "regressor" else "classification")
    for side in ("reference", "candidate"):
        for name, value in expected[side].items():
            assert metric[side][name] == pytest.approx(value, rel=1e-12, abs=1e-15), (side, name)
    for name in expected["reference"]:
        assert metric["difference"][name] == pytest.approx(expected["candidate"][name] - expected["reference"][name], rel=1e-9, abs=1e-15)
    if variant.kind == "classifier":
        assert metric["reference"]["correct"] == round(expected["reference"]["accuracy"] * len(X))


def _without_source(document: dict) -> dict:
    document["metric"].pop("labels")
    return document


@pytest.mark.parametrize(("variant_id", "kind"), [("iris-labels-str", "parquet"), ("regression-1", "csv"), ("binary-bool", "npy")])
def test_streamed_metric_is_the_in_memory_metric(tmp_path, variant_id, kind):
    variant = get_variant(variant_id)
    X = _rows(variant, 3500)
    truth = _truth(variant, X)
    candidate = _broken(tmp_path, variant.estimator, 0.05)
    names = [f"f{j}" for j in range(X.shape[1])]
    options: dict = {"label_column": "target"}
    if kind == "parquet":  # the label column first: it is not a feature wherever it stands
        import pyarrow as pa
        import pyarrow.parquet as pq

        (tmp_path / "rows").mkdir()
        for index, part in enumerate(np.array_split(np.arange(len(X)), 3)):
            table = pa.table({"target": truth[part].astype(str), **{n: X[part, j] for j, n in enumerate(names)}})
            pq.write_table(table, tmp_path / "rows" / f"part-{index}.parquet", row_group_size=700)
        data = tmp_path / "rows"
    elif kind == "csv":
        data = tmp_path / "rows.csv"
        np.savetxt(data, np.column_stack([X[:, :2], truth, X[:, 2:]]), delimiter=",", header=",".join([*names[:2], "target", *names[2:]]), comments="")
        X = np.loadtxt(data, delimiter=",", skiprows=1, usecols=[j for j in range(X.shape[1] + 1) if j != 2])
    else:
        data, labels = tmp_path / "rows.npy", tmp_path / "truth.npy"
        np.save(data, X)
        np.save(labels, truth)
        options = {"labels": labels}
    in_memory = nnconvert.verify(variant.estimator, candidate, X, labels=truth)
    streamed = nnconvert.verify(variant.estimator, candidate, data=data, **options)
    assert _without_source(_comparable(streamed)) == _without_source(_comparable(in_memory))  # metric included, bit for bit
    assert streamed.to_dict()["metric"]["labels"] == (str(options["labels"]) if "labels" in options else "column 'target' of the data")


def _models(tmp_path: Path, variant_id: str = "iris-labels-str") -> tuple[Path, Path]:
    variant = get_variant(variant_id)
    reference = tmp_path / "model.json"
    nnconvert.save(nnconvert.from_sklearn(variant.estimator), reference)
    candidate = tmp_path / "model.onnx"
    nnconvert.save(nnconvert.load(reference), candidate, dtype="float32")
    return reference, candidate


def test_cli_reports_the_metric_in_text_json_markdown_and_html(tmp_path, capsys):
    from sklearn.metrics import accuracy_score

    from tests.test_verify_html import assert_every_figure_in_json

    variant = get_variant("iris-labels-str")
    reference, candidate = _models(tmp_path)
    X = _rows(variant, 1500)
    truth = _truth(variant, X)
    np.savetxt(tmp_path / "rows.csv", X, delimiter=",")
    (tmp_path / "truth.csv").write_text("species\n" + "\n".join(truth) + "\n")  # text labels, a header line
    reports = [f"--report-{kind}" for kind in ("json", "md", "html")]
    args = ["verify", str(reference), str(candidate), "--data", str(tmp_path / "rows.csv"), "--labels", str(tmp_path / "truth.csv")]
    for flag in reports:
        args += [flag, str(tmp_path / f"report.{flag[9:]}")]
    assert cli.main(args) == 0, capsys.readouterr()
    printed = capsys.readouterr().out
    document = json.loads((tmp_path / "report.json").read_text())
    expected = accuracy_score(truth, variant.estimator.predict(np.loadtxt(tmp_path / "rows.csv", delimiter=",")))
    assert document["metric"]["reference"]["accuracy"] == pytest.approx(expected, rel=1e-12)
    assert document["metric"]["difference"] == {"accuracy": 0.0, "correct": 0}
    assert f"accuracy {expected:.4%}" in printed and "task metric against" in printed
    assert "| reference |" in (tmp_path / "report.md").read_text()
    page = (tmp_path / "report.html").read_text()
    assert 'id="metric"' in page
    assert_every_figure_in_json(page, document)


def test_convert_verify_streams_and_reports_as_verify_does(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    variant = get_variant("regression-1")
    X = _rows(variant, 2500)
    truth = _truth(variant, X)
    table = pa.table({**{f"f{j}": X[:, j] for j in range(X.shape[1])}, "y": truth})
    pq.write_table(table, tmp_path / "rows.parquet", row_group_size=600)
    source = tmp_path / "model.json"
    nnconvert.save(nnconvert.from_sklearn(variant.estimator), source)
    common = ["--data", str(tmp_path / "rows.parquet"), "--label-column", "y"]
    assert cli.main(["convert", str(source), str(tmp_path / "out.onnx"), "--verify", *common, "--verify-report-json", str(tmp_path / "c.json")]) == 0
    assert cli.main(["verify", str(source), str(tmp_path / "out.onnx"), *common, "--report-json", str(tmp_path / "v.json")]) == 0
    capsys.readouterr()
    converted, verified = (json.loads((tmp_path / name).read_text()) for name in ("c.json", "v.json"))
    for document in (converted, verified):
        document.pop("timings"), document.pop("created")
    assert converted == verified
    assert converted["inputs"]["n_rows"] == 2500 and converted["inputs"]["sha256"] and converted["metric"]["task"] == "regression"


def _shorter_labels(tmp_path: Path) -> list[str]:
    np.save(tmp_path / "rows.npy", np.zeros((40, 4)))
    np.save(tmp_path / "truth.npy", np.zeros(39))
    return ["--data", str(tmp_path / "rows.npy"), "--labels", str(tmp_path / "truth.npy")]


def _npz_rows(tmp_path: Path) -> list[str]:
    np.savez(tmp_path / "rows.npz", X=np.zeros((40, 4)))
    (tmp_path / "truth.csv").write_text("\n".join(["1"] * 41) + "\n")
    return ["--data", str(tmp_path / "rows.npz"), "--labels", str(tmp_path / "truth.csv")]


def _parquet_column(tmp_path: Path, column: str) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({f"f{j}": np.zeros(10) for j in range(4)} | {"y": np.ones(10)}), tmp_path / "rows.parquet")
    return ["--data", str(tmp_path / "rows.parquet"), "--label-column", column]


def _wide_labels(tmp_path: Path) -> list[str]:
    np.save(tmp_path / "rows.npy", np.zeros((10, 4)))
    np.save(tmp_path / "truth.npy", np.zeros((10, 2)))
    return ["--data", str(tmp_path / "rows.npy"), "--labels", str(tmp_path / "truth.npy")]


@pytest.mark.parametrize(
    ("make", "code", "message"),
    [
        (_shorter_labels, 3, "truth.npy: the ground truth has 39 rows but the data {tmp}/rows.npy has 40"),
        (_npz_rows, 3, "truth.csv: the ground truth has 41 rows but the data {tmp}/rows.npz has 40"),
        (lambda p: _parquet_column(p, "label"), 3, "no label column 'label'; its columns: f0, f1, f2, f3, y"),
        (_wide_labels, 3, "the ground truth has 2 value(s) per row; the models' labels have 1"),
        (lambda p: ["--labels", str(p / "truth.npy")], 2, "--labels scores two models on real rows"),
        (lambda p: _shorter_labels(p)[:2] + ["--label-column", "y"], 2, "has no column names"),
        (lambda p: _parquet_column(p, "y") + ["--labels", str(p / "truth.npy")], 2, "not both"),
        (lambda p: _parquet_column(p, "y")[:2] + ["--labels", "t.npy", "--engine", "spark"], 2, "give label_column="),
    ],
)
def test_bad_ground_truth_is_a_clear_error_and_writes_nothing(tmp_path, capsys, make, code, message):
    reference, candidate = _models(tmp_path)
    np.save(tmp_path / "truth.npy", np.zeros(10))
    args = make(tmp_path)
    assert cli.main(["verify", str(reference), str(candidate), *args, "--report-json", str(tmp_path / "r.json")]) == code
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in err and "Traceback" not in err, err
    assert not (tmp_path / "r.json").exists()


def test_labels_beside_a_reduced_precision_onnx_file_still_price_it(tmp_path, capsys):
    variant = get_variant("iris-labels-str")
    X = _rows(variant, 300)
    reference = tmp_path / "model.json"
    nnconvert.save(nnconvert.from_sklearn(variant.estimator), reference)
    nnconvert.save(nnconvert.from_sklearn(variant.estimator), tmp_path / "half.onnx", precision="float16")
    np.save(tmp_path / "rows.npy", X)
    np.save(tmp_path / "truth.npy", _truth(variant, X))
    code = cli.main(["verify", str(reference), str(tmp_path / "half.onnx"), "--data", str(tmp_path / "rows.npy"), "--labels", str(tmp_path / "truth.npy")])
    printed = capsys.readouterr().out
    assert code in (0, 1) and "price of float16" in printed and "accuracy: original" in printed


def test_the_price_takes_the_ground_truth_from_a_column_of_the_data(tmp_path, capsys):
    from sklearn.metrics import accuracy_score

    from tests.test_verify_stream import _write_parquet

    variant = get_variant("iris-labels-str")
    X = _rows(variant, 300)
    truth = _truth(variant, X)
    reference = tmp_path / "model.json"
    nnconvert.save(nnconvert.from_sklearn(variant.estimator), reference)
    nnconvert.save(nnconvert.from_sklearn(variant.estimator), tmp_path / "half.onnx", precision="float16")
    rows = _write_parquet(X, tmp_path / "rows", labels=truth)
    args = ["verify", str(reference), str(tmp_path / "half.onnx"), "--data", str(rows), "--label-column", "label"]
    assert cli.main([*args, "--report-json", str(tmp_path / "price.json")]) in (0, 1)
    assert "price of float16" in capsys.readouterr().out
    price = json.loads((tmp_path / "price.json").read_text())
    assert price["metric"]["original"] == pytest.approx(accuracy_score(truth, variant.estimator.predict(X)), rel=1e-12)


@pytest.mark.parametrize(("make", "message"), [(_shorter_labels, "has 39 rows but the data"), (_npz_rows, "has 41 rows but the data")])
def test_convert_refuses_mismatched_ground_truth_before_writing(tmp_path, capsys, make, message):
    reference, _ = _models(tmp_path)
    out = tmp_path / "out.onnx"
    assert cli.main(["convert", str(reference), str(out), "--verify", *make(tmp_path)]) == 3
    assert message in capsys.readouterr().err and not out.exists()


def test_text_labels_holding_commas_are_read_as_csv_quotes_them(tmp_path):
    import csv
    import warnings

    from sklearn.metrics import accuracy_score
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, 3))
    y = np.where(X[:, 0] + 0.3 * rng.normal(size=300) > 0, "New York, NY", "Paris, FR")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = MLPClassifier((6,), max_iter=200, random_state=0).fit(X, y)
    candidate = tmp_path / "city.json"
    nnconvert.save(nnconvert.from_sklearn(estimator), candidate)
    with open(tmp_path / "truth.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["city"], *([label] for label in y)])
    report = nnconvert.verify(estimator, candidate, X, labels=tmp_path / "truth.csv")
    assert report.metric["n_rows"] == 300
    expected = accuracy_score(y, estimator.predict(X))
    assert report.metric["reference"]["accuracy"] == pytest.approx(expected, rel=1e-12)
    # the same labels as a column of a streamed CSV, quoted among the features
    with open(tmp_path / "rows.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["a", "city", "b", "c"], *([row[0], label, row[1], row[2]] for row, label in zip(X.tolist(), y, strict=True))])
    streamed = nnconvert.verify(estimator, candidate, data=tmp_path / "rows.csv", label_column="city")
    assert streamed.metric["reference"]["accuracy"] == pytest.approx(expected, rel=1e-12)
    assert streamed.to_dict()["inputs"]["n_features"] == 3


def test_convert_refuses_a_label_column_of_in_memory_data_before_writing(tmp_path, capsys):
    reference, _ = _models(tmp_path)
    out = tmp_path / "out.onnx"
    args = _npz_rows(tmp_path)[:2] + ["--label-column", "y"]
    assert cli.main(["convert", str(reference), str(out), "--verify", *args]) == 2
    assert "--label-column names a column of a streamed --data" in capsys.readouterr().err and not out.exists()
