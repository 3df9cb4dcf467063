"""Streaming verify (--data Parquet/CSV/.npy): the same report as in memory, bounded rows, progress, bad data."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

import nnconvert
from nnconvert import cli
from nnconvert.progress import ProgressBar
from nnconvert.verify import bins, partials
from tests.sklearn_variants import get_variant

CHUNK = 1000  # small chunks: every test crosses several chunk (and Parquet file) boundaries


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch):
    monkeypatch.setattr(bins, "CHUNK_ROWS", CHUNK)


def _comparable(report) -> dict:
    document = report.to_dict()
    for key in ("timings", "created"):
        document.pop(key)
    return document


def _rows(variant, n_rows: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = variant.X_test[rng.integers(0, len(variant.X_test), n_rows)]
    return X + rng.normal(scale=0.05, size=X.shape)


def _write_parquet(X: np.ndarray, folder: Path, files: int = 3, row_group: int = 777, labels: np.ndarray | None = None) -> Path:
    """``labels``: also a column ``label`` (the ground truth), written first."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir()
    for index, part in enumerate(np.array_split(np.arange(len(X)), files)):
        columns = {} if labels is None else {"label": labels[part]}
        table = pa.table(columns | {f"f{j}": X[part, j] for j in range(X.shape[1])})
        pq.write_table(table, folder / f"part-{index:05d}.parquet", row_group_size=row_group)
    (folder / "_SUCCESS").write_text("")  # Spark's marker file is skipped
    return folder


def _broken(tmp_path: Path, estimator, scale: float) -> Path:
    """The ONNX conversion with the first layer's weights nudged: real mismatches and label flips."""
    from dataclasses import replace

    model = nnconvert.from_sklearn(estimator)
    first = model.layers[0]
    rng = np.random.default_rng(1)
    nudged = replace(first, weights=first.weights * (1 + scale * rng.standard_normal(first.weights.shape)))
    path = tmp_path / "broken.onnx"
    nnconvert.save(replace(model, layers=(nudged, *model.layers[1:])), path, dtype="float32")
    return path


@pytest.mark.parametrize(
    ("variant_id", "kind", "broken"),
    [
        ("iris-labels-str", "parquet", False),
        ("iris-labels-str", "npy", True),
        ("multilabel", "csv", True),
        ("regression-3", "parquet", True),
        ("pipeline-standard", "npy", False),
    ],
)
def test_streamed_report_is_the_in_memory_report(tmp_path, variant_id, kind, broken):
    variant = get_variant(variant_id)
    X = _rows(variant, 4321)
    if broken:
        candidate = _broken(tmp_path, variant.estimator, 0.05)
    else:
        candidate = tmp_path / "model.onnx"
        nnconvert.save(nnconvert.from_sklearn(variant.estimator), candidate, dtype="float32")
    if kind == "parquet":
        data = _write_parquet(X, tmp_path / "rows")
    elif kind == "csv":
        data = tmp_path / "rows.csv"
        np.savetxt(data, X, delimiter=",", header=",".join(f"f{j}" for j in range(X.shape[1])), comments="")
        X = nnconvert.verify.inputs.load_data(data)  # the very floats the CSV holds
    else:
        data = tmp_path / "rows.npy"
        np.save(data, X)
    in_memory = nnconvert.verify(variant.estimator, candidate, X)
    streamed = nnconvert.verify(variant.estimator, candidate, data=data)
    assert _comparable(streamed) == _comparable(in_memory)
    if broken:
        assert not streamed.passed
        assert any(check.get("mismatches", 0) or check.get("flipped", 0) for o in streamed.to_dict()["outputs"] for check in o["checks"])


def test_streamed_report_keeps_only_a_bounded_set_of_rows(tmp_path):
    variant = get_variant("iris-labels-str")
    X = _rows(variant, 20_000)
    np.save(tmp_path / "rows.npy", X)
    candidate = _broken(tmp_path, variant.estimator, 0.05)
    report = nnconvert.verify(variant.estimator, candidate, data=tmp_path / "rows.npy")
    main = report.input_sets[0]
    # the range sample (every n // 4096-th row: fewer than 8192), the boundary and layer samples, batch-1 rows,
    # the worst rows and the listed flips: bounded whatever the row count
    assert len(main["X"]) <= 20_000 // (20_000 // 4096) + 256 + 64 + 8 + 20 + 3 * 5 < 20_000
    np.testing.assert_array_equal(main["X"], X[main["rows"]])
    assert report.to_dict()["inputs"]["n_rows"] == 20_000


def test_p99_is_the_upper_edge_of_its_log_bin():
    values = np.random.default_rng(0).exponential(size=100_000)
    p99 = partials.histogram_p99(partials.histogram(values), float(values.max()))
    exact = np.sort(values)[int(np.ceil(0.99 * values.size)) - 1]
    assert exact <= p99 <= exact * (1 + 2.0**-partials.SUB_BITS)
    special = np.array([0.0] * 98 + [np.inf, 1e-300])
    assert partials.histogram_p99(partials.histogram(special), np.inf) == 2.0**partials.EXP_LOW
    assert partials.histogram_p99(partials.histogram(np.zeros(10)), 0.0) == 0.0


def test_cli_streams_parquet_and_reports(tmp_path, capsys):
    variant = get_variant("iris-labels-str")
    data = _write_parquet(_rows(variant, 3000), tmp_path / "rows")
    nnconvert.save(nnconvert.from_sklearn(variant.estimator), tmp_path / "model.json")
    candidate = tmp_path / "model.onnx"
    nnconvert.save(nnconvert.load(tmp_path / "model.json"), candidate, dtype="float32")
    code = cli.main(["verify", str(tmp_path / "model.json"), str(candidate), "--data", str(data), "--report-json", str(tmp_path / "r.json")])
    assert code == 0, capsys.readouterr()
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["inputs"]["n_rows"] == 3000 and document["inputs"]["sha256"]
    assert "PASSED" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("make", "expected", "message"),
    [
        (lambda p: p / "missing.parquet", 3, "no such file"),
        (lambda p: _written(p / "bad.parquet", b"PAR1 not really"), 3, "not a readable Parquet file"),
        (lambda p: _text_column(p), 3, "expected numeric columns"),
        (lambda p: np.save(p / "narrow.npy", np.zeros((5, 2))) or p / "narrow.npy", 3, "the data has 2 columns; the models take 4"),
        (lambda p: p / "rows.parquet", 2, "--save-inputs"),
    ],
)
def test_bad_data_is_a_clear_error(tmp_path, capsys, make, expected, message):
    model = tmp_path / "model.json"
    nnconvert.save(nnconvert.from_sklearn(get_variant("iris-labels-str").estimator), model)
    data = make(tmp_path)
    extra = []
    if message == "--save-inputs":
        _write_parquet(np.zeros((10, 4)), tmp_path / "rows.parquet", files=1)
        extra = ["--save-inputs", str(tmp_path / "in.npz")]
    code = cli.main(["verify", str(model), str(model), "--data", str(data), *extra])
    err = capsys.readouterr().err
    assert code == expected and message in err and "Traceback" not in err, err
    assert not (tmp_path / "in.npz").exists()


def _written(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _text_column(folder: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = folder / "text.parquet"
    pq.write_table(pa.table({"a": [1.0], "b": ["x"], "c": [1.0], "d": [2.0]}), path)
    return path


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal_after_the_delay_and_not_quiet():
    shown = _Terminal()
    bar = ProgressBar("verify", stream=shown, delay=0.0, interval=0.0)
    bar.update(500, 1000)
    bar.close()
    assert "500/1,000 rows (50%)" in shown.getvalue() and "rows/s" in shown.getvalue() and "ETA" in shown.getvalue()
    staged = _Terminal()
    bar = ProgressBar("verify", stream=staged, delay=0.0)
    bar.stage("running the candidate")  # the in-memory verify's stage line
    bar.close()
    assert "verify: running the candidate (0 s)" in staged.getvalue() and staged.getvalue().endswith("\r\033[K")
    for bar in (ProgressBar("verify", stream=_Terminal(), quiet=True, delay=0.0), ProgressBar("verify", stream=io.StringIO(), delay=0.0),
                ProgressBar("verify", stream=_Terminal(), delay=60.0)):  # fmt: skip
        bar.update(500, 1000)
        bar.stage("loading models")
        assert bar.stream.getvalue() == ""


def test_missing_pyarrow_or_pyspark_is_exit_4(tmp_path, monkeypatch, capsys):
    import sys

    model = tmp_path / "model.json"
    nnconvert.save(nnconvert.from_sklearn(get_variant("iris-labels-str").estimator), model)
    data = _write_parquet(np.zeros((10, 4)), tmp_path / "rows", files=1)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)  # as if not installed
    assert cli.main(["verify", str(model), str(model), "--data", str(data), "--engine", "spark"]) == 4
    assert "pip install 'nnconvert[spark]'" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    assert cli.main(["verify", str(model), str(model), "--data", str(data)]) == 4
    assert "pip install 'nnconvert[parquet]'" in capsys.readouterr().err
