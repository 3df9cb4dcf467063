"""Spark local[2]: verify gives the local streaming run's verdict and statistics; manifests run as Spark jobs.

One real local Spark session for the whole module (starting one costs most of this file's time).
"""

from __future__ import annotations

import json
import os
import pickle
import sys

import numpy as np
import pytest
from sklearn.metrics import accuracy_score

import nnconvert
from nnconvert import cli
from tests.sklearn_variants import get_variant
from tests.test_manifest import _KillsItsReader
from tests.test_verify_metric import _truth
from tests.test_verify_stream import _broken, _rows, _write_parquet

pyspark = pytest.importorskip("pyspark", reason="the spark extra: pip install 'nnconvert[spark]'")


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("nnconvert-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    yield session
    session.stop()


def _order_independent(document: dict) -> dict:
    """Everything but timings, the creation time, the sha256 (not computed on Spark) and the means (sum order)."""
    document = json.loads(json.dumps(document))
    for key in ("timings", "created", "warnings"):
        document.pop(key)
    document["inputs"].pop("sha256")
    means = []
    for output in document["outputs"]:
        for check in output["checks"]:
            if "mean_abs_error" in check:
                means.append(check.pop("mean_abs_error"))
    return {"document": document, "means": means}


def test_spark_verify_matches_local_streaming(spark, tmp_path, capsys):
    variant = get_variant("iris-labels-str")
    X = _rows(variant, 6000, seed=3)
    truth = _truth(variant, X)  # text labels, in a column of the data
    data = _write_parquet(X, tmp_path / "rows", files=3, row_group=500, labels=truth)
    reference = tmp_path / "reference.json"
    nnconvert.save(nnconvert.from_sklearn(variant.estimator), reference)
    candidate = _broken(tmp_path, variant.estimator, 0.3)  # wide enough to flip labels
    local = nnconvert.verify(reference, candidate, data=data, label_column="label")
    code = cli.main(["verify", str(reference), str(candidate), "--data", str(data), "--engine", "spark", "--label-column", "label",
                     "--master", "local[2]", "--report-json", str(tmp_path / "spark.json")])  # fmt: skip
    assert code == 1, capsys.readouterr()  # the nudged weights fail, on both engines
    on_spark = json.loads((tmp_path / "spark.json").read_text())
    assert not local.passed and on_spark["passed"] is False
    mine, theirs = _order_independent(local.to_dict()), _order_independent(on_spark)
    assert theirs["document"] == mine["document"]  # counts, maxima with their rows, flips, p99, edge cases, layers
    np.testing.assert_allclose(theirs["means"], mine["means"], rtol=1e-12)
    labels = next(o for o in on_spark["outputs"] if o["name"] == "labels")["checks"][0]
    assert labels["flipped"] > 0 and labels["flips"]
    metric = on_spark["metric"]  # counts: exact, part of the documents compared above
    assert metric["reference"]["accuracy"] == accuracy_score(truth, variant.estimator.predict(X)) and metric["difference"]["correct"] != 0


def test_spark_regression_metric_matches_in_memory(spark, tmp_path):
    variant = get_variant("regression-1")
    X = _rows(variant, 3000)
    truth = _truth(variant, X)
    reference = tmp_path / "reference.json"
    nnconvert.save(nnconvert.from_sklearn(variant.estimator), reference)
    candidate = _broken(tmp_path, variant.estimator, 0.1)
    rows = [(float(t), *(float(v) for v in row)) for t, row in zip(truth, X, strict=True)]
    frame = spark.createDataFrame(rows, ["target", *(f"f{j}" for j in range(X.shape[1]))]).repartition(3)
    on_spark = nnconvert.spark.verify(frame, reference, candidate, label_column="target", per_layer=False).to_dict()["metric"]
    local = nnconvert.verify(reference, candidate, X, labels=truth, per_layer=False).to_dict()["metric"]
    assert on_spark["n_rows"] == local["n_rows"] == 3000 and on_spark["task"] == "regression"
    for side in ("reference", "candidate", "difference"):
        for name in ("mse", "rmse", "mae", "r2"):
            assert on_spark[side][name] == pytest.approx(local[side][name], rel=1e-12, abs=1e-15), (side, name)  # the sums' order only


def test_spark_verify_takes_a_dataframe(spark, tmp_path):
    variant = get_variant("regression-3")
    X = _rows(variant, 3000)
    reference = tmp_path / "reference.json"
    nnconvert.save(nnconvert.from_sklearn(variant.estimator), reference)
    candidate = tmp_path / "candidate.onnx"
    nnconvert.save(nnconvert.from_sklearn(variant.estimator), candidate, dtype="float32")
    frame = spark.createDataFrame([tuple(float(v) for v in row) for row in X], [f"f{j}" for j in range(X.shape[1])])
    report = nnconvert.spark.verify(frame.repartition(2), reference, candidate)
    local = nnconvert.verify(variant.estimator, candidate, X)
    assert report.passed and local.passed
    mine, theirs = report.output("values")["checks"][0], local.output("values")["checks"][0]
    for key in ("n_rows", "magnitude", "max_ulp", "mismatches", "min_passing_atol", "p99_abs_error"):
        assert mine[key] == theirs[key], key
    assert mine["max_abs_error"]["value"] == theirs["max_abs_error"]["value"]


def test_manifest_runs_as_a_spark_job(spark, tmp_path, capsys):
    variant = get_variant("iris-labels-str")
    nnconvert.save(nnconvert.from_sklearn(variant.estimator), tmp_path / "good.json")
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "killer.pkl").write_bytes(pickle.dumps(_KillsItsReader()))
    (tmp_path / "jobs.jsonl").write_text(
        json.dumps({"source": "good.json", "destination": "out/good.onnx", "options": {"dtype": "float32"}}) + "\n"
        + json.dumps({"source": "bad.json", "destination": "out/bad.onnx"}) + "\n"
        + json.dumps({"source": "killer.pkl", "destination": "out/killer.onnx", "options": {"trust": True}}) + "\n"
    )  # fmt: skip
    code = cli.main(["convert", "--manifest", str(tmp_path / "jobs.jsonl"), "--engine", "spark", "--master", "local[2]"])
    assert code == 3, capsys.readouterr()
    rows = [json.loads(line) for line in (tmp_path / "jobs.results.jsonl").read_text().splitlines()]
    assert [(r["status"], r["exit_code"]) for r in rows] == [("ok", 0), ("failed", 3), ("failed", 3)]
    assert "not valid JSON" in rows[1]["message"]
    # a model that ends the process reading it is reported; the Spark job and the other models go on
    assert "worker process died" in rows[2]["message"]
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "out" / "good.onnx"), providers=["CPUExecutionProvider"])
    probabilities = session.run(["output_probability"], {"X": variant.X_test.astype(np.float32)})[0]
    np.testing.assert_allclose(probabilities, variant.estimator.predict_proba(variant.X_test), atol=1e-5)
    assert not (tmp_path / "out" / "bad.onnx").exists()
