"""convert --manifest: a pool of workers, every job reported, up-to-date outputs skipped, atomic results."""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

import nnconvert
from nnconvert import cli, manifest
from tests.sklearn_variants import get_variant


def _results(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _write_jobs(path: Path, jobs: list[tuple[str, str, dict | None]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "destination", "options"])
        for source, destination, options in jobs:
            writer.writerow([source, destination, "" if options is None else json.dumps(options)])
    return path


def _onnx_probabilities(path: Path, X: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["output_probability"], {"X": X.astype(np.float32)})[0]


@pytest.fixture
def registry(tmp_path):
    variant = get_variant("iris-labels-str")
    nnconvert.save(nnconvert.from_sklearn(variant.estimator), tmp_path / "good.json")
    (tmp_path / "bad.json").write_text('{"format": "nnconvert-json", "trunc')
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(variant.estimator))
    return tmp_path, variant


def test_bad_models_are_reported_with_their_exit_code_and_the_rest_convert(registry, capsys):
    folder, variant = registry
    jobs = _write_jobs(folder / "jobs.csv", [
        ("good.json", "out/good.onnx", {"dtype": "float32"}),
        ("bad.json", "out/bad.onnx", None),
        ("good.json", "out/good.h5", {"bogus": 1}),
        ("model.pkl", "out/untrusted.onnx", None),
        ("missing.json", "out/missing.onnx", None),
        ("model.pkl", "out/trusted.onnx", {"trust": True, "dtype": "float32"}),
    ])  # fmt: skip
    code = cli.main(["convert", "--manifest", str(jobs), "--workers", "2"])
    captured = capsys.readouterr()
    rows = _results(folder / "jobs.results.csv")
    assert [(r["status"], r["exit_code"]) for r in rows] == [
        ("ok", "0"), ("failed", "3"), ("failed", "2"), ("failed", "3"), ("failed", "3"), ("ok", "0"),
    ]  # fmt: skip
    assert code == 3  # the highest exit code among the jobs
    assert "bogus" in rows[2]["message"] and "trust" in rows[3]["message"] and "no such file" in rows[4]["message"]
    assert "6 jobs: 2 converted, 0 up to date, 4 failed" in captured.out and "line 3" in captured.err
    assert "Traceback" not in captured.err
    for name in ("good", "trusted"):
        output = folder / "out" / f"{name}.onnx"
        assert rows[0 if name == "good" else 5]["output_sha256"] == manifest.file_sha256(output)
        np.testing.assert_allclose(_onnx_probabilities(output, variant.X_test), variant.estimator.predict_proba(variant.X_test), atol=1e-5)
    assert sorted(p.name for p in (folder / "out").iterdir()) == ["good.onnx", "trusted.onnx"]  # nothing from the failures


def test_rerun_skips_outputs_that_are_up_to_date_by_content(registry):
    folder, variant = registry
    jobs = [("good.json", "out/a.onnx", None), ("good.json", "out/b.json", None), ("bad.json", "out/c.onnx", None)]
    path = _write_jobs(folder / "jobs.csv", jobs)
    first = manifest.run_manifest(path, workers=1)
    assert [r["status"] for r in first] == ["ok", "ok", "failed"]
    stamps = {p: p.stat().st_mtime_ns for p in (folder / "out").iterdir()}
    second = manifest.run_manifest(path, workers=1)
    assert [r["status"] for r in second] == ["skipped", "skipped", "failed"]  # failures run again
    assert {p: p.stat().st_mtime_ns for p in (folder / "out").iterdir()} == stamps

    (folder / "out" / "b.json").write_text("{}")  # the output was changed by hand: made again
    nnconvert.save(nnconvert.from_sklearn(get_variant("multilabel").estimator), folder / "good.json")  # new source bytes
    _write_jobs(path, [("good.json", "out/a.onnx", None), ("good.json", "out/b.json", None), ("bad.json", "out/c.onnx", {"opset": 15})])
    third = manifest.run_manifest(path, workers=1)
    assert [r["status"] for r in third] == ["ok", "ok", "failed"]
    assert nnconvert.load(folder / "out" / "a.onnx").task.value == "multilabel"
    _write_jobs(path, [("good.json", "out/a.onnx", {"dtype": "float32"}), ("good.json", "out/b.json", None)])
    fourth = manifest.run_manifest(path, workers=1)
    assert [r["status"] for r in fourth] == ["ok", "skipped"]  # new options: converted again


def test_results_file_is_replaced_atomically(registry, monkeypatch):
    folder, _ = registry
    path = _write_jobs(folder / "jobs.csv", [("good.json", "out/a.onnx", None)])
    manifest.run_manifest(path, results=folder / "results.csv")
    before = (folder / "results.csv").read_bytes()
    (folder / "out" / "a.onnx").unlink()

    def fail(self, rows):
        raise OSError("disk full")

    monkeypatch.setattr(csv.DictWriter, "writerows", fail)
    with pytest.raises(OSError, match="disk full"):
        manifest.run_manifest(path, results=folder / "results.csv")
    assert (folder / "results.csv").read_bytes() == before  # the old results, whole
    assert sorted(p.name for p in folder.iterdir()) == sorted(["bad.json", "good.json", "model.pkl", "jobs.csv", "out", "results.csv"])


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("src,dst\na,b\n", ".csv", "needs a header line with the columns source,destination"),
        ("source,destination\na.json,x.onnx\nb.json,x.onnx\n", ".csv", "destination"),
        ('{"source": "a.json", "destination": "x.onnx"}\nnot json\n', ".jsonl", "line 2: not JSON"),
        ('{"source": "a.json", "destination": "x.onnx", "options": [1]}\n', ".jsonl", "options must be a JSON object"),
    ],
)
def test_a_bad_manifest_is_a_clear_input_error(tmp_path, capsys, content, suffix, message):
    path = tmp_path / f"jobs{suffix}"
    path.write_text(content)
    assert cli.main(["convert", "--manifest", str(path)]) == 3
    err = capsys.readouterr().err
    assert message in err and str(path) in err and "Traceback" not in err
    assert not list(tmp_path.glob("*.results.*"))


def test_manifest_and_paths_together_is_a_usage_error(tmp_path, capsys):
    assert cli.main(["convert", "a.json", "b.onnx", "--manifest", str(tmp_path / "jobs.csv")]) == 2
    assert "--manifest" in capsys.readouterr().err


class _KillsItsReader:
    """A pickle whose loading ends the process that loads it (as a crash in a native reader would)."""

    def __reduce__(self):
        import os

        return (os._exit, (7,))


def test_a_job_that_kills_its_worker_is_reported_and_the_others_convert(registry):
    folder, variant = registry
    (folder / "killer.pkl").write_bytes(pickle.dumps(_KillsItsReader()))
    path = _write_jobs(folder / "jobs.csv", [
        ("good.json", "out/a.onnx", None),
        ("killer.pkl", "out/killer.onnx", {"trust": True}),
        ("model.pkl", "out/b.onnx", {"trust": True}),
    ])  # fmt: skip
    rows = manifest.run_manifest(path, workers=2)
    assert [(r["status"], r["exit_code"]) for r in rows] == [("ok", 0), ("failed", 3), ("ok", 0)]
    assert "worker process died" in rows[1]["message"]
    np.testing.assert_allclose(_onnx_probabilities(folder / "out" / "b.onnx", variant.X_test), variant.estimator.predict_proba(variant.X_test), atol=1e-5)
