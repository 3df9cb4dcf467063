"""nnconvert's HDF5 layout: lossless round trips, laziness, refusing data outside the file, sniffing."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from sklearn_variants import get_variant, variant_ids

from nnconvert._io import hdf5_safety
from nnconvert.converters.sklearn import from_sklearn, to_sklearn
from nnconvert.errors import ReadError, UsageError
from nnconvert.formats import hdf5
from nnconvert.ir import Activation, DenseLayer, ElementwiseOp, Head, InputSpec, Metadata, Model, PreprocessStep, Task

KERAS_FIXTURES = Path(__file__).parent / "fixtures" / "keras"


def _handmade(dtype: str = "float32", n_in: int = 3, feature_names: bool = True) -> Model:
    rng = np.random.default_rng(3)
    return Model(
        layers=(
            DenseLayer(
                rng.normal(size=(n_in, 4)).astype(dtype),
                rng.normal(size=4).astype(dtype),
                Activation.ELU,
                "h",
                {"alpha": 0.5},
            ),
            DenseLayer(rng.normal(size=(4, 3)).astype(dtype), np.zeros(3, dtype), Activation.SOFTMAX, "out"),
        ),
        head=Head(Task.MULTICLASS, np.array(["\u00e9t\u00e9", "hiver", "\u2603"])),
        input=InputSpec(n_in, feature_names=tuple(f"feature {i}" for i in range(n_in)) if feature_names else None),
        steps=(
            PreprocessStep(
                "affine",
                (ElementwiseOp("sub", rng.normal(size=n_in).astype(dtype)), ElementwiseOp("div", np.array(2.0, dtype))),
            ),
        ),
        metadata=Metadata(source_framework="hand", properties={"k": "v"}),
    )


def _written(tmp_path: Path, model: Model | None = None, **options) -> Path:
    path = tmp_path / "model.h5"
    hdf5.write(model or _handmade(), path, **options)
    return path


def _raises_naming(path: Path, *needles: str) -> None:
    with pytest.raises(ReadError) as info:
        hdf5.read(path)
    for needle in (str(path), *needles):
        assert needle in str(info.value), str(info.value)


# -- round trips -----------------------------------------------------------------


@pytest.mark.parametrize("compression", [None, "gzip"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("variant_id", variant_ids())
def test_variant_round_trip_is_lossless(variant_id: str, dtype: str, compression: str | None, tmp_path: Path) -> None:
    model = from_sklearn(get_variant(variant_id).estimator).astype(dtype)
    assert hdf5.read(_written(tmp_path, model, compression=compression)).equals(model)


@pytest.mark.parametrize("variant_id", variant_ids())
def test_sklearn_predictions_survive_hdf5(variant_id: str, tmp_path: Path) -> None:
    variant = get_variant(variant_id)
    rebuilt = to_sklearn(hdf5.read(_written(tmp_path, from_sklearn(variant.estimator))))
    np.testing.assert_array_equal(rebuilt.predict(variant.X_test), variant.estimator.predict(variant.X_test))
    if variant.kind == "classifier":
        np.testing.assert_array_equal(
            rebuilt.predict_proba(variant.X_test), variant.estimator.predict_proba(variant.X_test)
        )


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_handmade_round_trip(dtype: str, tmp_path: Path) -> None:
    model = _handmade(dtype)
    assert hdf5.read(_written(tmp_path, model)).equals(model)


def test_layout(tmp_path: Path) -> None:
    model = _handmade("float32")
    with h5py.File(_written(tmp_path, model), "r") as handle:
        assert handle.attrs["nnconvert_format"] == "nnconvert-hdf5"
        assert handle.attrs["format_version"] == "1.0"
        document = json.loads(handle.attrs["document"])
        assert document["layers"][0]["weights"] == {"dataset": "/layers/0/weights", "dtype": "float32", "shape": [3, 4]}
        assert document["head"]["classes"] == {"dtype": "str", "values": ["\u00e9t\u00e9", "hiver", "\u2603"]}
        weights = handle["layers/0/weights"]
        assert weights.dtype == np.dtype("<f4") and weights.chunks is None and weights.compression is None
        np.testing.assert_array_equal(weights[()], model.layers[0].weights)
        assert handle["steps/0/ops/1"].shape == ()
        assert h5py.check_string_dtype(handle.attrs.get_id("document").dtype).encoding == "utf-8"


def test_gzip_compression_is_chunked_with_shuffle(tmp_path: Path) -> None:
    model = from_sklearn(get_variant("iris-relu-3layers").estimator)
    with h5py.File(_written(tmp_path, model, compression="gzip"), "r") as handle:
        weights = handle["layers/0/weights"]
        assert weights.compression == "gzip" and weights.shuffle and weights.chunks is not None
    with pytest.raises(UsageError, match="compression"):
        hdf5.write(model, tmp_path / "x.h5", compression="zstd")


def test_writing_is_deterministic(tmp_path: Path) -> None:
    model = _handmade()
    first = hashlib.sha256(_written(tmp_path, model, compression="gzip").read_bytes()).digest()
    time.sleep(1.1)  # object header timestamps have a one-second resolution
    assert hashlib.sha256(_written(tmp_path, model, compression="gzip").read_bytes()).digest() == first


def test_large_document_goes_to_a_dataset(tmp_path: Path) -> None:
    model = _handmade(n_in=4000)
    path = _written(tmp_path, model)
    with h5py.File(path, "r") as handle:
        assert "document" not in handle.attrs and "document" in handle
    assert hdf5.read(path).equals(model)


# -- laziness and links --------------------------------------------------------------


def test_unreferenced_objects_are_never_opened(tmp_path: Path) -> None:
    path = _written(tmp_path)
    with h5py.File(path, "a") as handle:
        handle["junk"] = h5py.ExternalLink("/nonexistent/file.h5", "/x")
        handle.create_dataset("big", data=np.zeros(10, np.int8))
    assert hdf5.read(path).equals(_handmade())


def test_soft_link_inside_the_file_is_followed(tmp_path: Path) -> None:
    path = _written(tmp_path)
    with h5py.File(path, "a") as handle:
        handle.move("layers/0/weights", "stash/w")
        handle["layers/0/weights"] = h5py.SoftLink("/stash/w")
    assert hdf5.read(path).equals(_handmade())


def test_external_link_is_refused(tmp_path: Path) -> None:
    path = _written(tmp_path)
    other = tmp_path / "other.h5"
    with h5py.File(path, "a") as handle, h5py.File(other, "w") as target:
        target["w"] = handle["layers/0/weights"][()]
        del handle["layers/0/weights"]
        handle["layers/0/weights"] = h5py.ExternalLink(str(other), "/w")
    _raises_naming(path, "/layers/0/weights", "external link")


def test_soft_link_to_an_external_link_is_refused(tmp_path: Path) -> None:
    path = _written(tmp_path)
    other = tmp_path / "other.h5"
    with h5py.File(path, "a") as handle, h5py.File(other, "w") as target:
        target.create_group("g")["w"] = handle["layers/0/weights"][()]
        del handle["layers/0/weights"]
        handle["outside"] = h5py.ExternalLink(str(other), "/g")
        handle["layers/0/weights"] = h5py.SoftLink("/outside/w")
    _raises_naming(path, "/layers/0/weights", "external link")


def test_virtual_dataset_is_refused(tmp_path: Path) -> None:
    path = _written(tmp_path)
    other = tmp_path / "source.h5"
    with h5py.File(path, "a") as handle, h5py.File(other, "w") as source:
        weights = handle["layers/0/weights"][()]
        source["w"] = weights
        layout = h5py.VirtualLayout(shape=weights.shape, dtype=weights.dtype)
        layout[:] = h5py.VirtualSource(str(other), "w", shape=weights.shape)
        del handle["layers/0/weights"]
        handle["layers/0"].create_virtual_dataset("weights", layout)
        assert handle["layers/0/weights"].is_virtual
    _raises_naming(path, "/layers/0/weights", "virtual dataset")


def test_external_storage_is_refused(tmp_path: Path) -> None:
    path = _written(tmp_path)
    raw = tmp_path / "weights.bin"
    with h5py.File(path, "a") as handle:
        weights = handle["layers/0/weights"][()]
        weights.tofile(raw)
        del handle["layers/0/weights"]
        handle["layers/0"].create_dataset(
            "weights", shape=weights.shape, dtype=weights.dtype, external=[(str(raw), 0, weights.nbytes)]
        )
    _raises_naming(path, "/layers/0/weights", "external file", str(raw))


# -- broken files ------------------------------------------------------------------------


def _edit_document(path: Path, edit) -> None:
    with h5py.File(path, "a") as handle:
        document = json.loads(handle.attrs["document"])
        edit(document)
        handle.attrs["document"] = json.dumps(document)


def test_dataset_not_matching_the_document(tmp_path: Path) -> None:
    path = _written(tmp_path)
    with h5py.File(path, "a") as handle:
        del handle["layers/0/bias"]
        handle["layers/0/bias"] = np.zeros(5, np.float32)
    _raises_naming(path, "/layers/0/bias", "layers[0].bias", "[5]", "[4]")
    path = _written(tmp_path)
    with h5py.File(path, "a") as handle:
        del handle["layers/1/bias"]
        handle["layers/1/bias"] = np.zeros(3, np.float64)
    _raises_naming(path, "/layers/1/bias", "float64", "float32")


def test_declared_shape_contradicting_the_graph_is_refused_before_reading(tmp_path: Path) -> None:
    path = _written(tmp_path)
    _edit_document(path, lambda d: d["layers"][1]["weights"].update(shape=[10**6, 10**6]))
    _raises_naming(path, "layers[1].weights.shape", "[4, n_out]")


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda d: d["layers"][0].pop("activation"), "layers[0].activation"),
        (lambda d: d["layers"][0]["weights"].update(dataset="/nowhere"), "'/nowhere'"),
        (lambda d: d["layers"][0]["weights"].update(dataset=3), "layers[0].weights.dataset"),
        (lambda d: d["layers"][0]["weights"].update(dtype="int8"), "layers[0].weights.dtype"),
        (lambda d: d["layers"][0]["weights"].update(shape=["3", 4]), "layers[0].weights.shape"),
        (lambda d: d["input"].update(n_features="3"), "input.n_features"),
        (lambda d: d["layers"][0]["weights"].update(dataset="/layers/0"), "not a dataset"),
    ],
)
def test_broken_document_names_the_field(edit, needle: str, tmp_path: Path) -> None:
    path = _written(tmp_path)
    _edit_document(path, edit)
    _raises_naming(path, needle)


def test_versions_and_foreign_files(tmp_path: Path) -> None:
    path = _written(tmp_path)
    with h5py.File(path, "a") as handle:
        handle.attrs["format_version"] = "1.3"  # a later minor version: still read
    assert hdf5.read(path).equals(_handmade())
    with h5py.File(path, "a") as handle:
        handle.attrs["format_version"] = "2.0"
    _raises_naming(path, "format_version", "major version 1")
    with h5py.File(path, "a") as handle:
        del handle.attrs["nnconvert_format"]
    _raises_naming(path, "nnconvert_format", "keras-h5")
    _raises_naming(KERAS_FIXTURES / "multiclass.h5", "nnconvert_format")
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\xff" * 600)
    _raises_naming(garbage, "not a readable HDF5 file")


def test_deeply_nested_document_is_a_read_error(tmp_path: Path) -> None:
    path = _written(tmp_path)
    with h5py.File(path, "a") as handle:
        handle.attrs["document"] = "[" * 10_000 + "]" * 10_000
    _raises_naming(path, "nested too deeply")


# -- sniffing ---------------------------------------------------------------------------


def _sniff(path: Path) -> bool:
    with open(path, "rb") as handle:
        return hdf5.sniff(handle.read(4096), path)


def test_sniff_tells_keras_files_from_ours(tmp_path: Path) -> None:
    assert _sniff(_written(tmp_path))
    keras_files = sorted(KERAS_FIXTURES.glob("*.h5"))
    assert keras_files
    for path in keras_files:  # written by real Keras 3 (and tf.keras 2's layout)
        assert not _sniff(path), path
    keras_like = tmp_path / "keras_like.h5"
    with h5py.File(keras_like, "w") as handle:
        handle.attrs["keras_version"] = "2.15.0"
        handle.attrs["backend"] = "tensorflow"
        handle.attrs["model_config"] = json.dumps({"class_name": "Sequential"})
        handle.create_group("model_weights")
    assert not _sniff(keras_like)


def test_sniff_finds_the_signature_after_a_user_block(tmp_path: Path) -> None:
    for size in (512, 8192):
        path = tmp_path / f"block{size}.h5"
        with h5py.File(path, "w", userblock_size=size) as handle:
            handle.attrs["nnconvert_format"] = "nnconvert-hdf5"
        assert not path.read_bytes().startswith(hdf5_safety.SIGNATURE)
        assert _sniff(path)


def test_sniff_never_raises(tmp_path: Path) -> None:
    cases = {
        "truncated.h5": b"\x89HDF\r\n\x1a\n\x00\x00",
        "empty.h5": b"",
        "json.h5": b'{"format": "nnconvert-json-weights"}',
        "noise.h5": bytes(range(256)) * 8,
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        assert not _sniff(path), name
    assert not hdf5.sniff(b"\x89HDF\r\n\x1a\n", tmp_path / "does-not-exist.h5")


def test_save_load_and_detect_through_the_api(tmp_path: Path) -> None:
    import nnconvert
    from nnconvert import registry

    model = from_sklearn(get_variant("binary-str").estimator)
    path = nnconvert.save(model, tmp_path / "model.h5", compression="gzip")
    assert registry.detect(path).name == "hdf5"
    assert nnconvert.load(path).equals(model)
