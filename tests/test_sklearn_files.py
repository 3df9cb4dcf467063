"""Pickle / joblib and skops files: trust, detection, round trips against scikit-learn's predictions."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
import skops.io
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn_variants import get_variant

import nnconvert
from nnconvert import registry
from nnconvert.converters.sklearn import from_sklearn
from nnconvert.errors import NnconvertError, ReadError, UnsupportedModelError, UntrustedInputError, UsageError
from nnconvert.formats.sklearn_files import sniff_pickle, sniff_skops

ROUND_TRIP_VARIANTS = [
    "binary-str",
    "multilabel",
    "iris-float32",
    "regression-poisson",
    "pipeline-minmax-clip",
    "pipeline-standard-minmax",
]


class FileCreatingPayload:
    """Unpickling this creates ``marker``: the proof that a load ran code from the file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


class Shady(TransformerMixin, BaseEstimator):
    """A transformer skops does not know; building it would run this module's code."""

    def fit(self, X, y=None):
        self.fitted_ = True
        return self

    def transform(self, X):
        return X

    def __setstate__(self, state):
        Path(state["marker"]).write_text("ran")
        self.__dict__.update(state)


def _assert_same_predictions(loaded, original, X) -> None:
    methods = ["predict", "predict_proba"] if hasattr(original, "predict_proba") else ["predict"]
    for method in methods:
        expected, got = getattr(original, method)(X), getattr(loaded, method)(X)
        assert got.dtype == expected.dtype and np.array_equal(got, expected), method


# -- pickle -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["evil.pkl", "evil.joblib", "evil.bin"])
def test_pickle_is_refused_without_trust_and_its_payload_never_runs(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "payload-ran"
    path = tmp_path / name
    path.write_bytes(pickle.dumps(FileCreatingPayload(marker), protocol=4))
    assert registry.detect(path).name == "sklearn-pickle"
    with pytest.raises(UntrustedInputError, match="trust=True"):
        nnconvert.load(path)
    with pytest.raises(UntrustedInputError):
        nnconvert.load(path, format="sklearn-pickle")
    assert not marker.exists()


def test_payload_in_a_file_named_like_another_format_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    path = tmp_path / "model.skops"
    path.write_bytes(pickle.dumps(FileCreatingPayload(marker)))
    with pytest.raises(NnconvertError):
        nnconvert.load(path)
    with pytest.raises(ReadError):
        nnconvert.load(path, format="skops")
    assert not marker.exists()


@pytest.mark.parametrize("writer", ["pickle", "joblib", "joblib-compressed"])
def test_trusted_pickle_loads(tmp_path: Path, writer: str) -> None:
    variant = get_variant("pipeline-standard")
    path = tmp_path / "model.pkl"
    if writer == "pickle":
        path.write_bytes(pickle.dumps(variant.estimator))
    else:
        joblib.dump(variant.estimator, path, compress=3 if writer == "joblib-compressed" else 0)
    assert registry.detect(path).name == "sklearn-pickle"
    model = nnconvert.load(path, trust=True)
    assert model.equals(from_sklearn(variant.estimator))


@pytest.mark.parametrize("variant_id", ROUND_TRIP_VARIANTS)
def test_pickle_write_is_the_original_estimator(tmp_path: Path, variant_id: str) -> None:
    variant = get_variant(variant_id)
    model = from_sklearn(variant.estimator)
    path = nnconvert.save(model, tmp_path / "model.joblib")
    _assert_same_predictions(joblib.load(path), variant.estimator, variant.X_test)
    assert nnconvert.load(path, trust=True).equals(model)


def test_pickle_write_options(tmp_path: Path) -> None:
    model = from_sklearn(get_variant("iris-10").estimator)
    path = nnconvert.save(model, tmp_path / "model.pkl", compress=3, protocol=2)
    assert sniff_pickle(path.read_bytes()[:16], path)
    assert nnconvert.load(path, trust=True).equals(model)
    with pytest.raises(UsageError, match="compress"):
        nnconvert.save(model, tmp_path / "bad.pkl", compress="lots")
    assert not (tmp_path / "bad.pkl").exists()


def test_trusted_pickle_of_unsupported_object_names_the_file(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    path = tmp_path / "logreg.pkl"
    path.write_bytes(pickle.dumps(LogisticRegression()))
    with pytest.raises(UnsupportedModelError, match=r"logreg\.pkl.*LogisticRegression"):
        nnconvert.load(path, trust=True)
    broken = tmp_path / "broken.pkl"
    broken.write_bytes(pickle.dumps(LogisticRegression())[:20])
    with pytest.raises(ReadError, match="broken.pkl"):
        nnconvert.load(broken, trust=True)


def test_sniff_pickle() -> None:
    for protocol in (2, 3, 4, 5):
        assert sniff_pickle(pickle.dumps([1, 2], protocol=protocol), Path("x.data"))
    assert sniff_pickle(b"\x78\x9c\x00\x00", Path("model.joblib"))
    assert not sniff_pickle(b"\x78\x9c\x00\x00", Path("model.bin"))
    assert not sniff_pickle(b"\x89HDF\r\n\x1a\n", Path("model.pkl"))
    assert not sniff_pickle(b"", Path("model.pkl"))


# -- skops --------------------------------------------------------------------


@pytest.mark.parametrize("variant_id", ROUND_TRIP_VARIANTS)
def test_skops_round_trip(tmp_path: Path, variant_id: str) -> None:
    variant = get_variant(variant_id)
    model = from_sklearn(variant.estimator)
    path = nnconvert.save(model, tmp_path / "model.skops")
    assert registry.detect(path).name == "skops"
    assert nnconvert.load(path).equals(model)
    written = skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
    _assert_same_predictions(written, variant.estimator, variant.X_test)


def test_skops_file_written_by_skops_itself(tmp_path: Path) -> None:
    variant = get_variant("pipeline-maxabs")
    path = tmp_path / "original.skops"
    skops.io.dump(variant.estimator, path)  # holds the fitted Adam optimizer and random state too
    assert nnconvert.load(path).equals(from_sklearn(variant.estimator))


def test_skops_untrusted_type_is_refused_by_name_and_never_built(tmp_path: Path) -> None:
    from sklearn.pipeline import make_pipeline

    marker = tmp_path / "setstate-ran"
    shady = Shady().fit(None)
    shady.marker = str(marker)
    pipeline = make_pipeline(shady, get_variant("iris-10").estimator)
    path = tmp_path / "shady.skops"
    skops.io.dump(pipeline, path)
    with pytest.raises(UntrustedInputError, match=r"shady\.skops.*Shady"):
        nnconvert.load(path)
    assert not marker.exists()


def test_skops_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.skops"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("schema.json", "{not json")
    with pytest.raises(ReadError, match="broken.skops"):
        nnconvert.load(path)


def test_skops_write_options(tmp_path: Path) -> None:
    model = from_sklearn(get_variant("iris-10").estimator)
    path = nnconvert.save(model, tmp_path / "model.skops", compression="deflated", compresslevel=6)
    assert {info.compress_type for info in zipfile.ZipFile(path).infolist()} == {zipfile.ZIP_DEFLATED}
    assert nnconvert.load(path).equals(model)
    with pytest.raises(UsageError, match="compression"):
        nnconvert.save(model, tmp_path / "bad.skops", compression="rar")


def test_sniff_skops(tmp_path: Path) -> None:
    skops_path = nnconvert.save(from_sklearn(get_variant("iris-10").estimator), tmp_path / "m.skops")
    assert sniff_skops(skops_path.read_bytes()[:4096], skops_path)
    other_zip = tmp_path / "other.keras"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("config.json", "{}")
    assert not sniff_skops(other_zip.read_bytes()[:4096], other_zip)
    assert not sniff_skops(b"PK\x03\x04truncated", tmp_path / "missing.skops")
    assert not sniff_skops(b"\x80\x04", skops_path)
