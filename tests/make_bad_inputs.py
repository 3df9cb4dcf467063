"""Generate the corpus of bad model files, for every readable format.

Nothing here is hand-copied bytes: every bad file is derived from a valid file
that nnconvert (or h5py/zipfile/onnx for the containers) writes at generation
time, then broken in one specific way. The tests call :func:`make_corpus` into
a temporary folder (it takes about a second); run this file to keep a copy:

    python tests/make_bad_inputs.py OUT_DIR

Each :class:`BadInput` names the file, the format to read it with (None:
detected), and the words its error message must contain (the field, layer or
node at fault).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import sys
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")

__all__ = [
    "BadInput",
    "ScaledCase",
    "make_scaled_cases",
    "tiny_model",
    "write_valid_files",
    "make_corpus",
    "make_pickle_payload",
    "READABLE_FORMATS",
    "SPECIFIC_CASES",
    "VALID_FILE_WRITERS",
]



def _registered() -> dict[str, Any]:
    from nnconvert import registry

    return dict(registry.formats())


# Every readable format of the registry: a newly registered one gets the common cases
# (empty, truncated, wrong magic) at once; test_bad_inputs says when it lacks its own.
READABLE_FORMATS = tuple(sorted(name for name, spec in _registered().items() if spec.read is not None))
SUFFIXES = {name: spec.suffixes[0] for name, spec in _registered().items() if spec.suffixes}
NEEDS_TRUST = {name for name, spec in _registered().items() if spec.needs_trust}
HUGE = 10**6  # a declared shape of HUGE x HUGE is 10^12 elements
TRUNCATION_POINTS = (1, 8, 0.25, 0.5, -2)  # byte counts, or fractions of the file


@dataclass(frozen=True)
class BadInput:
    """One broken file and what reading it must report.

    Attributes:
        name: ``format/what-is-wrong``.
        path: the file.
        format: the format to read it as (None: let detection choose, as a user would).
        expect: words the error message must contain (compared case-insensitively).
        trust: pass ``trust=True`` (pickles: the corpus tests the reader, not the trust gate).
    """

    name: str
    path: Path
    format: str | None
    expect: tuple[str, ...] = ()
    trust: bool = False


# -- valid files ------------------------------------------------------------------


def tiny_model(dtype: Any = np.float64, classes: Any = (0, 1, 2)) -> Any:
    """3 features -> 4 relu -> 3 softmax, a multiclass classifier (deterministic weights)."""
    from nnconvert.ir import Activation, DenseLayer, Head, InputSpec, Model, Task

    rng = np.random.default_rng(1234)
    layers = (
        DenseLayer(rng.normal(size=(3, 4)).astype(dtype), rng.normal(size=4).astype(dtype), Activation.RELU, "hidden"),
        DenseLayer(rng.normal(size=(4, 3)).astype(dtype), rng.normal(size=3).astype(dtype), Activation.SOFTMAX, "out"),
    )
    return Model(layers=layers, head=Head(Task.MULTICLASS, np.array(classes)), input=InputSpec(3))


def _keras_archive(path: Path, config: Any, weights: Callable[[Any], None], extra: dict[str, bytes] | None = None) -> Path:
    """A Keras 3 ``.keras`` zip: config.json, metadata.json and a weights file filled by ``weights(h5file)``."""
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        weights(handle)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.5.0"}))
        archive.writestr("config.json", config if isinstance(config, (bytes, str)) else json.dumps(config))
        archive.writestr("model.weights.h5", buffer.getvalue())
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return path


def _keras_config(layers: list[dict[str, Any]]) -> dict[str, Any]:
    entries = [{"class_name": "InputLayer", "config": {"batch_shape": [None, 3], "dtype": "float32", "name": "input"}}]
    entries += layers
    return {"module": "keras", "class_name": "Sequential", "config": {"name": "tiny", "layers": entries}}


def _dense_entry(name: str, units: Any, activation: Any = "relu") -> dict[str, Any]:
    return {"module": "keras.layers", "class_name": "Dense", "config": {"name": name, "units": units, "activation": activation, "use_bias": True}}


def _keras_weights(arrays: list[tuple[str, list[np.ndarray]]]) -> Callable[[Any], None]:
    def fill(handle: Any) -> None:
        for index, (name, values) in enumerate(arrays):
            group = handle.create_group(f"layers/dense{'_' + str(index) if index else ''}/vars")
            group.attrs["name"] = name
            for position, value in enumerate(values):
                group.create_dataset(str(position), data=value)

    return fill


def _tiny_keras_arrays(model: Any) -> list[tuple[str, list[np.ndarray]]]:
    return [(layer.name, [layer.weights.astype(np.float32), layer.bias.astype(np.float32)]) for layer in model.layers]


def write_valid_keras(path: Path, model: Any = None) -> Path:
    """A Keras 3 archive of :func:`tiny_model`, laid out as Keras 3 saves it."""
    model = model or tiny_model()
    config = _keras_config([_dense_entry("hidden", 4), _dense_entry("out", 3, "softmax")])
    return _keras_archive(path, config, _keras_weights(_tiny_keras_arrays(model)))


def write_valid_files(directory: str | os.PathLike[str], model: Any = None) -> dict[str, Path]:
    """One valid file per readable format, of ``model`` (default :func:`tiny_model`)."""
    import nnconvert

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = model or tiny_model()
    files = {}
    for name in READABLE_FORMATS:
        path = directory / f"valid_{name.replace('-', '_')}{SUFFIXES[name]}"
        if name in VALID_FILE_WRITERS:
            VALID_FILE_WRITERS[name](path, model)
        elif nnconvert.registry.get(name).write is not None:
            nnconvert.save(model, path, format=name)
        else:
            raise AssertionError(
                f"the read-only format {name} has no valid-file writer: add one to VALID_FILE_WRITERS in tests/make_bad_inputs.py"
            )
        files[name] = path
    return files


# Formats nnconvert cannot write (or whose files it should not write itself): how to make a valid file.
VALID_FILE_WRITERS: dict[str, Callable[[Path, Any], Path]] = {"keras": write_valid_keras}


def make_pickle_payload(path: str | os.PathLike[str], marker: str | os.PathLike[str]) -> Path:
    """A pickle that, when unpickled, creates the file ``marker`` (and nothing else)."""

    class _Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (open, (str(marker), "w"))

    Path(path).write_bytes(pickle.dumps(_Payload(), protocol=4))
    return Path(path)


# -- helpers to break files -------------------------------------------------------


def _truncations(data: bytes) -> Iterator[tuple[str, bytes]]:
    for point in TRUNCATION_POINTS:
        size = int(len(data) * point) if isinstance(point, float) else (point if point > 0 else len(data) + point)
        yield f"truncated-{size}", data[:size]


def _common_cases(directory: Path, fmt: str, valid: Path) -> Iterator[BadInput]:
    """Empty, truncated and wrong-magic files of ``fmt``, read both as that format and by detection."""
    suffix = SUFFIXES[fmt]
    trust = fmt in NEEDS_TRUST
    stem = fmt.replace("-", "_")
    empty = directory / f"{stem}_empty{suffix}"
    empty.write_bytes(b"")
    yield BadInput(f"{fmt}/empty", empty, fmt, (), trust)
    yield BadInput(f"{fmt}/empty-detected", empty, None, (), trust)
    data = valid.read_bytes()
    for label, content in _truncations(data):
        path = directory / f"{stem}_{label}{suffix}"
        path.write_bytes(content)
        yield BadInput(f"{fmt}/{label}", path, fmt, (), trust)
    garbage = directory / f"{stem}_wrong_magic{suffix}"
    garbage.write_bytes(b"GIF89a" + bytes(range(256)) * 4)
    yield BadInput(f"{fmt}/wrong-magic", garbage, fmt, (), trust)
    yield BadInput(f"{fmt}/wrong-magic-detected", garbage, None, (), trust)


# -- JSON -------------------------------------------------------------------------


def _json_cases(directory: Path, valid: Path) -> Iterator[BadInput]:
    document = json.loads(valid.read_text())

    def variant(name: str, change: Callable[[dict[str, Any]], Any], expect: tuple[str, ...]) -> BadInput:
        doc = json.loads(json.dumps(document))
        replaced = change(doc)
        path = directory / f"json_{name}.json"
        path.write_text(json.dumps(doc if replaced is None else replaced))
        return BadInput(f"json/{name}", path, None if name != "other-kind" else "json", expect)

    def set_weights(layer: int, rows: int, cols: int, value: Any = 0.5) -> Callable[[dict[str, Any]], None]:
        def change(doc: dict[str, Any]) -> None:
            doc["layers"][layer]["weights"] = {"dtype": "float64", "shape": [rows, cols], "data": [value] * (rows * cols)}

        return change

    def set_field(*keys: Any, value: Any) -> Callable[[dict[str, Any]], None]:
        def change(doc: dict[str, Any]) -> None:
            target = doc
            for key in keys[:-1]:
                target = target[key]
            if value is _DELETE:
                del target[keys[-1]]
            else:
                target[keys[-1]] = value

        return change

    yield variant("other-kind", lambda d: {"name": "left-pad", "version": "1.3.0", "dependencies": {}}, ("format",))
    yield variant("a-list", lambda d: [1, 2, 3], ("root",))
    yield variant("keras-config", lambda d: {"class_name": "Sequential", "config": {"layers": []}}, ("format",))
    yield variant("shape-mismatch", set_weights(1, 5, 3), ("layer 1", "weights"))
    yield variant("bias-wrong-length", set_field("layers", 0, "bias", value={"dtype": "float64", "shape": [7], "data": [0.0] * 7}), ("layer", "0", "bias"))
    nan_weights = np.full((3, 4), np.nan).astype("<f8").tobytes()
    import base64

    b64 = {"dtype": "float64", "shape": [3, 4], "encoding": "base64", "byteorder": "little", "data": base64.b64encode(nan_weights).decode()}
    yield variant("non-finite-base64", set_field("layers", 0, "weights", value=b64), ("layer", "0", "non-finite"))
    path = directory / "json_non-finite-token.json"
    path.write_text(valid.read_text().replace('"data": [', '"data": [NaN, ', 1))
    yield BadInput("json/non-finite-token", path, None, ("nan",))
    yield variant("unknown-activation", set_field("layers", 1, "activation", value="swishy"), ("layer 1", "swishy"))
    yield variant("missing-head", set_field("head", value=_DELETE), ("head",))
    yield variant("missing-classes", set_field("head", "classes", value=None), ("classes",))
    yield variant("missing-layers", set_field("layers", value=_DELETE), ("layers",))
    yield variant("unknown-version", set_field("format_version", value="9.0"), ("format_version", "9.0"))
    yield variant("version-not-a-string", set_field("format_version", value=1.0), ("format_version",))
    yield variant("absurd-shape-list", set_field("layers", 0, "weights", "shape", value=[HUGE, HUGE]), ("layers[0].weights",))
    absurd_b64 = dict(b64, shape=[HUGE, HUGE])
    yield variant("absurd-shape-base64", set_field("layers", 0, "weights", value=absurd_b64), ("layers[0].weights",))
    yield variant("absurd-n-features", set_field("input", "n_features", value=HUGE * HUGE), ("layer", "0"))
    yield variant("string-in-data", set_field("layers", 0, "bias", "data", value=["0.1", "0.2", "0.3", "0.4"]), ("layers[0].bias.data[0]",))
    yield variant("string-n-features", set_field("input", "n_features", value="3"), ("input.n_features",))
    yield variant("string-shape", set_field("layers", 0, "weights", "shape", value=["3", "4"]), ("layers[0].weights.shape",))
    yield variant("bool-in-data", set_field("layers", 0, "bias", "data", value=[True, False, True, False]), ("layers[0].bias.data",))
    yield variant("unknown-dtype", set_field("layers", 0, "weights", "dtype", value="float128"), ("layers[0].weights.dtype",))
    yield variant("unknown-task", set_field("head", "task", value="clustering"), ("task", "clustering"))
    yield variant("duplicate-classes", set_field("head", "classes", "values", value=[1, 1, 2]), ("class",))
    yield variant("layer-not-object", set_field("layers", 0, value=42), ("layers[0]",))
    # every field validated at read time: labels exactly in their dtype, finite; names are strings; flat properties
    yield variant("labels-float16", set_field("head", "classes", value={"dtype": "float16", "values": [0.0, 1.0, 2.0]}), ("head.classes.dtype",))
    yield variant("labels-inexact-float32", set_field("head", "classes", value={"dtype": "float32", "values": [0.1, 1.0, 2.0]}), ("head.classes.values[0]",))
    yield variant("labels-inexact-float64", set_field("head", "classes", value={"dtype": "float64", "values": [2**53 + 1, 1, 2]}), ("head.classes.values[0]",))
    yield variant("labels-overflow-uint8", set_field("head", "classes", value={"dtype": "uint8", "values": [0, 1, 300]}), ("head.classes.values[2]",))
    yield variant("labels-object", set_field("head", "classes", value={"dtype": "object", "values": [0, 1, 2]}), ("head.classes.dtype",))
    path = directory / "json_labels-non-finite.json"
    non_finite = json.loads(valid.read_text())
    non_finite["head"]["classes"] = {"dtype": "float64", "values": ["NAN_HERE", 1.0, 2.0]}
    path.write_text(json.dumps(non_finite).replace('"NAN_HERE"', "NaN"))
    yield BadInput("json/labels-non-finite", path, None, ("nan",))  # the JSON reader refuses the token itself
    yield variant("feature-names-not-strings", set_field("input", "feature_names", value=["a", 2, "c"]), ("input.feature_names[1]",))
    yield variant("properties-nested", set_field("metadata", "properties", value={"deep": {"a": [1, {"b": 2}]}}), ("metadata.properties.deep",))
    deep = directory / "json_nested-deep.json"
    deep.write_text('{"format": "nnconvert-json-weights", "format_version": "1.0", "input": ' + "[" * 100_000 + "]" * 100_000 + "}")
    yield BadInput("json/nested-deep", deep, None, ("nested",))
    deep_plain = directory / "json_nested-deep-plain.json"
    deep_plain.write_text("[" * 100_000 + "]" * 100_000)
    yield BadInput("json/nested-deep-plain", deep_plain, "json", ("nested",))
    not_utf8 = directory / "json_not-utf8.json"
    not_utf8.write_bytes(valid.read_bytes().replace(b'"hidden"', b'"hid\xffden"'))
    yield BadInput("json/not-utf8", not_utf8, None, ("utf-8",))


_DELETE = object()


# -- HDF5 (nnconvert's layout) ----------------------------------------------------


def _h5_copy(directory: Path, valid: Path, name: str, change: Callable[[Any], None], prefix: str = "hdf5") -> Path:
    import h5py

    path = directory / f"{prefix}_{name}.h5"
    path.write_bytes(valid.read_bytes())
    with h5py.File(path, "r+") as handle:
        change(handle)
    return path


def _replace_dataset(handle: Any, name: str, data: Any = None, **options: Any) -> None:
    del handle[name]
    handle.create_dataset(name, data=data, **options)


def _change_document(change: Callable[[dict[str, Any]], Any]) -> Callable[[Any], None]:
    def apply(handle: Any) -> None:
        document = json.loads(handle.attrs["document"])
        replaced = change(document)
        handle.attrs["document"] = json.dumps(document if replaced is None else replaced)

    return apply


def _external_storage(directory: Path, prefix: str, name: str) -> Callable[[Any], None]:
    outside = directory / f"{prefix}_outside_raw.bin"
    np.zeros(64, dtype="<f8").tofile(outside)

    def apply(handle: Any) -> None:
        shape, dtype = handle[name].shape, handle[name].dtype
        del handle[name]
        handle.create_dataset(name, shape=shape, dtype=dtype, external=[(str(outside), 0, 8 * 64)])

    return apply


def _external_link(directory: Path, prefix: str, name: str) -> Callable[[Any], None]:
    import h5py

    outside = directory / f"{prefix}_outside_link.h5"

    def apply(handle: Any) -> None:
        data = handle[name][()]
        with h5py.File(outside, "w") as other:
            other.create_dataset("stolen", data=data)
        del handle[name]
        handle[name] = h5py.ExternalLink(str(outside), "/stolen")

    return apply


def _virtual(directory: Path, prefix: str, name: str) -> Callable[[Any], None]:
    import h5py

    outside = directory / f"{prefix}_outside_virtual.h5"

    def apply(handle: Any) -> None:
        data = handle[name][()]
        with h5py.File(outside, "w") as other:
            other.create_dataset("source", data=data)
        layout = h5py.VirtualLayout(shape=data.shape, dtype=data.dtype)
        layout[...] = h5py.VirtualSource(str(outside), "source", shape=data.shape)
        del handle[name]
        handle.create_virtual_dataset(name, layout)

    return apply


def _sparse_huge(name: str, shape: tuple[int, ...]) -> Callable[[Any], None]:
    """A chunked dataset declaring ``shape`` whose chunks were never written: a tiny file, 10^12 elements."""

    def apply(handle: Any) -> None:
        dtype = handle[name].dtype
        del handle[name]
        handle.create_dataset(name, shape=shape, dtype=dtype, chunks=(1,) * (len(shape) - 1) + (min(shape[-1], 1024),))

    return apply


BOMB_SHAPE = (4, 4_000_000)  # 128 MB of float64 zeros, a few hundred KB once gzip-compressed


def _gzip_bomb(name: str, shape: tuple[int, int] = BOMB_SHAPE) -> Callable[[Any], None]:
    """Replace dataset ``name`` by a gzip-compressed dataset of zeros of ``shape``; every chunk is really stored.

    The chunks are written directly from one precompressed chunk, so the file takes milliseconds to make.
    """
    import zlib

    chunk = (1, 1 << 18)
    compressed = zlib.compress(np.zeros(chunk, "<f8").tobytes(), 9)

    def apply(handle: Any) -> None:
        del handle[name]
        dataset = handle.create_dataset(name, shape=shape, dtype="<f8", chunks=chunk, compression="gzip")
        for row in range(shape[0]):
            for column in range(0, shape[1], chunk[1]):
                dataset.id.write_direct_chunk((row, column), compressed)

    return apply


def _hdf5_cases(directory: Path, valid: Path) -> Iterator[BadInput]:
    import h5py

    def case(name: str, change: Callable[[Any], None], expect: tuple[str, ...], fmt: str | None = None) -> BadInput:
        return BadInput(f"hdf5/{name}", _h5_copy(directory, valid, name, change), fmt, expect)

    def neither(handle: Any) -> None:
        for key in list(handle.attrs):
            del handle.attrs[key]
        for key in list(handle):
            del handle[key]
        handle.create_dataset("temperature", data=np.arange(10.0))

    yield case("neither-layout", neither, ("nnconvert_format",), "hdf5")
    yield case("neither-layout-detected", neither, (), None)
    yield case("document-not-json", lambda h: h.attrs.__setitem__("document", "{not json"), ("document",))
    yield case("document-other-kind", _change_document(lambda d: {"name": "left-pad"}), ("input",))
    yield case("document-a-number", lambda h: h.attrs.__setitem__("document", "42"), ("root",))
    yield case("document-not-a-string", lambda h: h.attrs.__setitem__("document", np.arange(3)), ("document",))
    yield case("unknown-version", lambda h: h.attrs.__setitem__("format_version", "2.0"), ("format_version", "2.0"))
    yield case("version-a-number", lambda h: h.attrs.__setitem__("format_version", 1.0), ("format_version",))

    def shape_mismatch(handle: Any) -> None:
        _replace_dataset(handle, "layers/1/weights", np.zeros((5, 3)))
        _change_document(lambda d: d["layers"][1]["weights"].__setitem__("shape", [5, 3]))(handle)

    yield case("shape-mismatch", shape_mismatch, ("layers[1].weights",))
    yield case("dataset-shape-disagrees", lambda h: _replace_dataset(h, "layers/1/weights", np.zeros((4, 5))), ("layers/1/weights",))

    def bias_wrong(handle: Any) -> None:
        _replace_dataset(handle, "layers/0/bias", np.zeros(7))
        _change_document(lambda d: d["layers"][0]["bias"].__setitem__("shape", [7]))(handle)

    yield case("bias-wrong-length", bias_wrong, ("layers[0].bias",))
    yield case("non-finite", lambda h: h["layers/0/weights"].__setitem__((0, 1), np.inf), ("layer 0", "non-finite"))
    yield case("unknown-activation", _change_document(lambda d: d["layers"][0].__setitem__("activation", "swishy")), ("layer 0", "swishy"))
    yield case("missing-head", _change_document(lambda d: d.pop("head")), ("head",))
    yield case("missing-classes", _change_document(lambda d: d["head"].pop("classes")), ("classes",))
    yield case("missing-dataset", lambda h: h.__delitem__("layers/0/bias"), ("layers/0/bias",))
    yield case("dataset-path-relative", _change_document(lambda d: d["layers"][0]["bias"].__setitem__("dataset", "layers/0/bias")), ("layers[0].bias.dataset",))
    yield case("absurd-declared-shape", _change_document(lambda d: d["layers"][0]["weights"].__setitem__("shape", [HUGE, HUGE])), ("layers[0].weights",))

    def absurd_real(handle: Any) -> None:
        _sparse_huge("layers/0/weights", (HUGE, HUGE))(handle)

        def document(d: dict[str, Any]) -> None:
            d["input"]["n_features"] = HUGE
            d["layers"][0]["weights"]["shape"] = [HUGE, HUGE]

        _change_document(document)(handle)

    yield case("absurd-sparse-dataset", absurd_real, ("layers/0/weights",))
    yield case("string-dataset", lambda h: _replace_dataset(h, "layers/0/bias", np.array([b"a", b"b", b"c", b"d"])), ("layers/0/bias",))
    yield case("string-n-features", _change_document(lambda d: d["input"].__setitem__("n_features", "3")), ("input.n_features",))
    yield case("string-in-shape", _change_document(lambda d: d["layers"][0]["weights"].__setitem__("shape", ["3", "4"])), ("layers[0].weights.shape",))
    yield case("integer-dataset", lambda h: _replace_dataset(h, "layers/0/bias", np.arange(4)), ("layers/0/bias",))
    yield case(
        "nested-deep",
        lambda h: h.attrs.__setitem__("document", "[" * 50_000 + "]" * 50_000),
        ("nested",),
    )
    def gzip_bomb(handle: Any) -> None:
        _gzip_bomb("layers/1/weights")(handle)
        _replace_dataset(handle, "layers/1/bias", np.zeros(BOMB_SHAPE[1]), compression="gzip", compression_opts=1)

        def declare(document: dict[str, Any]) -> None:
            document["layers"][1]["weights"]["shape"] = list(BOMB_SHAPE)
            document["layers"][1]["bias"]["shape"] = [BOMB_SHAPE[1]]

        _change_document(declare)(handle)

    yield case("gzip-bomb", gzip_bomb, ("layers/1/weights", "whole-file limit"))
    yield case("external-link", _external_link(directory, "hdf5", "layers/0/weights"), ("external link",))
    yield case("external-storage", _external_storage(directory, "hdf5", "layers/0/weights"), ("external",))
    yield case("virtual-dataset", _virtual(directory, "hdf5", "layers/0/weights"), ("virtual",))
    del h5py


# -- Keras .h5 --------------------------------------------------------------------


def _keras_h5_weight(handle: Any, layer: str, role: str) -> str:
    found = []
    handle["model_weights"][layer].visit(lambda name: found.append(name) if name.rsplit("/", 1)[-1].startswith(role) else None)
    return f"model_weights/{layer}/{found[0]}"


def _change_config(change: Callable[[dict[str, Any]], Any]) -> Callable[[Any], None]:
    def apply(handle: Any) -> None:
        config = json.loads(handle.attrs["model_config"])
        replaced = change(config)
        handle.attrs["model_config"] = json.dumps(config if replaced is None else replaced)

    return apply


def _lambda_layer(config: dict[str, Any]) -> None:
    # what Keras writes for Lambda(lambda x: ...): marshalled bytecode, base64, which load_model would run
    code = "4wEAAAAAAAAAAAAAAAEAAAADAAAAQwAAAHMIAAAAdABkAYMBUwApAk7aAnB3bmVkKQHaBG9wZW4pAdoBeKkAcgQAAAD6AAAA"
    entry = {"class_name": "Lambda", "config": {"name": "evil", "function": [code, None, None], "function_type": "lambda", "output_shape": None}}
    config["config"]["layers"].insert(2, entry)


def _custom_layer(config: dict[str, Any]) -> None:
    entry = {"class_name": "MyDense", "module": "evil_package.layers", "registered_name": "Custom>MyDense", "config": {"name": "custom", "units": 3}}
    config["config"]["layers"].insert(2, entry)


def _keras_h5_cases(directory: Path, valid: Path) -> Iterator[BadInput]:
    fmt = "keras-h5"

    def case(name: str, change: Callable[[Any], None], expect: tuple[str, ...], explicit: bool = False) -> BadInput:
        path = _h5_copy(directory, valid, name, change, prefix="keras_h5")
        return BadInput(f"keras-h5/{name}", path, fmt if explicit else None, expect)

    def kernel(handle: Any, layer: str = "out") -> str:
        return _keras_h5_weight(handle, layer, "kernel")

    def bias(handle: Any, layer: str = "hidden") -> str:
        return _keras_h5_weight(handle, layer, "bias")

    yield case("no-model-config", lambda h: h.attrs.__delitem__("model_config"), ("model_config",), explicit=True)
    yield case("config-not-json", lambda h: h.attrs.__setitem__("model_config", "{oops"), ("model_config",))
    yield case("config-other-kind", _change_config(lambda c: {"name": "left-pad"}), ("class_name",))
    yield case("config-nested-deep", lambda h: h.attrs.__setitem__("model_config", "[" * 50_000 + "]" * 50_000), ("model_config",))
    yield case("lambda-layer", _change_config(_lambda_layer), ("lambda",))
    yield case("custom-layer", _change_config(_custom_layer), ("mydense",))
    yield case("subclassed-model", _change_config(lambda c: c.__setitem__("class_name", "MyModel")), ("mymodel",))
    yield case("unknown-activation", _change_config(lambda c: c["config"]["layers"][1]["config"].__setitem__("activation", "swishy")), ("hidden", "swishy"))
    yield case("custom-activation", _change_config(lambda c: c["config"]["layers"][1]["config"].__setitem__("activation", {"class_name": "evil>act", "config": {}})), ("hidden",))
    yield case("units-a-string", _change_config(lambda c: c["config"]["layers"][1]["config"].__setitem__("units", "4")), ("hidden",))
    yield case("no-weights-group", lambda h: h.__delitem__("model_weights"), ("model_weights",))
    yield case("missing-weight", lambda h: h.__delitem__(kernel(h)), ("out",))

    def shape_mismatch(handle: Any) -> None:
        _replace_dataset(handle, kernel(handle), np.zeros((5, 3), dtype=np.float32))

    yield case("shape-mismatch", shape_mismatch, ("out",))
    yield case("bias-wrong-length", lambda h: _replace_dataset(h, bias(h), np.zeros(7, dtype=np.float32)), ("hidden", "bias"))
    yield case("non-finite", lambda h: h[kernel(h)].__setitem__((0, 0), np.nan), ("out", "non-finite"))
    yield case("string-weights", lambda h: _replace_dataset(h, bias(h), np.array([b"a", b"b", b"c", b"d"])), ("hidden",))
    yield case("absurd-sparse-dataset", lambda h: _sparse_huge(kernel(h), (HUGE, HUGE))(h), ("out",))
    yield case("external-link", lambda h: _external_link(directory, "keras_h5", kernel(h))(h), ("external link",))
    yield case("external-storage", lambda h: _external_storage(directory, "keras_h5", kernel(h))(h), ("external",))
    yield case("virtual-dataset", lambda h: _virtual(directory, "keras_h5", kernel(h))(h), ("virtual",))
    yield case("missing-head", lambda h: h.attrs.__setitem__("nnconvert_head", "[1, 2"), ("nnconvert_head",))

    def head(**fields: Any) -> Callable[[Any], None]:
        document = {"task": "multiclass", "classes": [0, 1, 2], "classes_dtype": "<i8", "feature_names": None, **fields}
        return lambda h: h.attrs.__setitem__("nnconvert_head", json.dumps(document))

    yield case("head-labels-float16", head(classes=[0.0, 1.0, 2.0], classes_dtype="<f2"), ("nnconvert_head.classes.dtype",))
    yield case("head-labels-inexact", head(classes=[0.1, 1.0, 2.0], classes_dtype="<f4"), ("nnconvert_head.classes.values[0]",))
    yield case("head-labels-non-finite", head(classes=[float("nan"), 1.0, 2.0], classes_dtype="<f8"), ("nnconvert_head.classes.values[0]", "finite"))
    yield case("head-unknown-task", head(task="clustering"), ("nnconvert_head.task",))
    yield case("head-feature-names-not-strings", head(feature_names=[1, 2, 3]), ("nnconvert_head.feature_names",))


# -- Keras .keras -----------------------------------------------------------------


def _keras_cases(directory: Path, valid: Path) -> Iterator[BadInput]:
    model = tiny_model()
    good_config = _keras_config([_dense_entry("hidden", 4), _dense_entry("out", 3, "softmax")])
    good_weights = _tiny_keras_arrays(model)

    def case(name: str, expect: tuple[str, ...], config: Any = None, arrays: Any = None, weights: Any = None, extra: Any = None) -> BadInput:
        path = directory / f"keras_{name}.keras"
        fill = weights or _keras_weights(arrays if arrays is not None else good_weights)
        _keras_archive(path, good_config if config is None else config, fill, extra)
        return BadInput(f"keras/{name}", path, None, expect)

    lambda_config = json.loads(json.dumps(good_config))
    _lambda_layer(lambda_config)
    custom_config = json.loads(json.dumps(good_config))
    _custom_layer(custom_config)
    yield case("lambda-layer", ("lambda",), config=lambda_config)
    yield case("custom-layer", ("mydense",), config=custom_config)
    yield case("config-not-json", ("config.json",), config="{oops")
    yield case("config-other-kind", ("class_name",), config={"name": "left-pad"})
    yield case("config-nested-deep", ("config.json",), config="[" * 50_000 + "]" * 50_000)
    bad_activation = _keras_config([_dense_entry("hidden", 4, "swishy"), _dense_entry("out", 3, "softmax")])
    yield case("unknown-activation", ("hidden", "swishy"), config=bad_activation)
    wrong = [good_weights[0], ("out", [np.zeros((5, 3), np.float32), np.zeros(3, np.float32)])]
    yield case("shape-mismatch", ("out",), arrays=wrong)
    short_bias = [("hidden", [good_weights[0][1][0], np.zeros(7, np.float32)]), good_weights[1]]
    yield case("bias-wrong-length", ("hidden", "bias"), arrays=short_bias)
    nan = [("hidden", [np.full((3, 4), np.nan, np.float32), good_weights[0][1][1]]), good_weights[1]]
    yield case("non-finite", ("hidden", "non-finite"), arrays=nan)
    strings = [("hidden", [good_weights[0][1][0], np.array([b"a", b"b", b"c", b"d"])]), good_weights[1]]
    yield case("string-weights", ("hidden",), arrays=strings)

    def sparse(handle: Any) -> None:
        _keras_weights(good_weights)(handle)
        _sparse_huge("layers/dense/vars/0", (HUGE, HUGE))(handle)

    yield case("absurd-sparse-dataset", ("hidden",), weights=sparse)

    def linked(handle: Any) -> None:
        _keras_weights(good_weights)(handle)
        _external_link(directory, "keras", "layers/dense/vars/0")(handle)

    yield case("external-link", ("external link",), weights=linked)

    def gzip_hdf5(handle: Any) -> None:
        _keras_weights(good_weights)(handle)
        _gzip_bomb("layers/dense/vars/0")(handle)

    duplicate = _keras_config([_dense_entry("same", 4), _dense_entry("same", 3, "softmax")])
    yield case("duplicate-layer-names", ("same",), config=duplicate)

    def unowned(handle: Any) -> None:
        _keras_weights(good_weights)(handle)
        handle.create_dataset("layers/dense_7/vars/0", data=np.zeros((4, 3), np.float32))

    yield case("variables-no-layer-owns", ("layers/dense_7/vars",), weights=unowned)
    yield case("gzip-hdf5-bomb", ("layers/dense/vars/0", "whole-file limit"), weights=gzip_hdf5)
    yield _keras_not_hdf5(directory, good_config)
    traversal = directory / "keras_path-traversal.keras"
    write_valid_keras(traversal, model)
    with zipfile.ZipFile(traversal, "a") as archive:
        archive.writestr("../../evil.txt", "x")
    yield BadInput("keras/path-traversal", traversal, None, ("../../evil.txt",))
    bomb = directory / "keras_zip-bomb.keras"
    write_valid_keras(bomb, model)
    with zipfile.ZipFile(bomb, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("padding.bin", b"\0" * (200 * 2**20))
    yield BadInput("keras/zip-bomb", bomb, None, ("padding.bin",))
    no_config = directory / "keras_no-config.keras"
    with zipfile.ZipFile(no_config, "w") as archive:
        archive.writestr("model.weights.h5", b"")
        archive.writestr("metadata.json", "{}")
    yield BadInput("keras/no-config", no_config, "keras", ("config.json",))


def _keras_not_hdf5(directory: Path, config: Any) -> BadInput:
    path = directory / "keras_weights-not-hdf5.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", b"this is not hdf5")
    return BadInput("keras/weights-not-hdf5", path, None, ("model.weights.h5",))


# -- ONNX -------------------------------------------------------------------------


def _onnx_cnn(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "conv.weight")
    node = helper.make_node("Conv", ["image", "conv.weight"], ["features"], name="conv1", kernel_shape=[3, 3])
    relu = helper.make_node("Relu", ["features"], ["activated"], name="relu1")
    graph = helper.make_graph(
        [node, relu],
        "cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("activated", TensorProto.FLOAT, ["N", 2, 6, 6])],
        [weights],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)]), str(path))
    return path


def _onnx_cases(directory: Path, valid: Path) -> Iterator[BadInput]:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def case(name: str, change: Callable[[Any], None], expect: tuple[str, ...]) -> BadInput:
        proto = onnx.load(str(valid))
        change(proto)
        path = directory / f"onnx_{name}.onnx"
        path.write_bytes(proto.SerializeToString())
        return BadInput(f"onnx/{name}", path, None, expect)

    def initializer(proto: Any, name: str) -> Any:
        return next(t for t in proto.graph.initializer if t.name == name)

    def set_array(name: str, array: np.ndarray) -> Callable[[Any], None]:
        def change(proto: Any) -> None:
            initializer(proto, name).CopyFrom(numpy_helper.from_array(array, name))

        return change

    def set_dims(name: str, dims: list[int]) -> Callable[[Any], None]:
        def change(proto: Any) -> None:
            tensor = initializer(proto, name)
            del tensor.dims[:]
            tensor.dims.extend(dims)

        return change

    def drop_description(proto: Any) -> None:
        keep = [p for p in proto.metadata_props if not p.key.startswith("nnconvert")]
        del proto.metadata_props[:]
        proto.metadata_props.extend(keep)

    def relabel(op_from: str, op_to: str, domain: str = "") -> Callable[[Any], None]:
        def change(proto: Any) -> None:
            node = next(n for n in proto.graph.node if n.op_type == op_from)
            node.op_type, node.domain = op_to, domain

        return change

    yield BadInput("onnx/cnn", _onnx_cnn(directory / "onnx_cnn.onnx"), None, ("conv",))
    yield case("shape-mismatch", set_array("layers/1/weights", np.zeros((5, 3), np.float32)), ("layers/1",))
    yield case("bias-wrong-length", set_array("layers/0/bias", np.zeros(7, np.float32)), ("layers/0/bias",))
    yield case("non-finite", set_array("layers/0/weights", np.full((3, 4), np.inf, np.float32)), ("layers/0/weights", "inf"))
    yield case("unknown-activation", relabel("Relu", "Swishy"), ("swishy",))
    yield case("custom-domain-op", relabel("Relu", "Relu", "com.evil"), ("com.evil",))
    yield case("no-head", lambda p: p.graph.node.pop(), ("output_label",))
    yield case("no-outputs", lambda p: p.graph.ClearField("output"), ("output",))
    yield case("no-inputs", lambda p: p.graph.ClearField("input"), ("input",))
    yield case("missing-initializer", lambda p: p.graph.initializer.pop(0), ("layers/0/weights",))
    yield case("unknown-ir-version", lambda p: setattr(p, "ir_version", 99), ("ir_version", "99"))
    yield case("unknown-opset", lambda p: setattr(p.opset_import[0], "version", 99), ("opset", "99"))
    yield case("absurd-dims", set_dims("layers/0/weights", [HUGE, HUGE]), ("layers/0/weights",))

    def absurd_input(proto: Any) -> None:
        drop_description(proto)
        dim = proto.graph.input[0].type.tensor_type.shape.dim[1]
        dim.dim_value = HUGE * HUGE

    yield case("absurd-input-dim", absurd_input, ("x",))
    yield case("string-weights", set_array("layers/0/weights", np.array([["a"] * 4] * 3, dtype=object)), ("layers/0/weights",))
    yield case("integer-weights", set_array("layers/0/weights", np.ones((3, 4), np.int64)), ("layers/0/weights",))
    yield case("unknown-data-type", lambda p: setattr(initializer(p, "layers/0/weights"), "data_type", 999), ("layers/0/weights",))

    def attribute_wrong_type(proto: Any) -> None:
        node = next(n for n in proto.graph.node if n.op_type == "Gemm")
        node.attribute.append(helper.make_attribute("transB", "yes"))

    yield case("attribute-wrong-type", attribute_wrong_type, ("gemm",))
    del TensorProto
    yield from _onnx_description_cases(directory, valid)
    yield from _onnx_external_cases(directory, valid)


def _onnx_description_cases(directory: Path, valid: Path) -> Iterator[BadInput]:
    """nnconvert's description in metadata_props forged to contradict the graph: refused, the field named."""
    import onnx

    import nnconvert

    def forged(name: str, source: Path, change: Callable[[dict[str, Any]], None], expect: tuple[str, ...]) -> BadInput:
        proto = onnx.load(str(source))
        for prop in proto.metadata_props:
            if prop.key == "nnconvert.model":
                document = json.loads(prop.value)
                change(document)
                prop.value = json.dumps(document)
        path = directory / f"onnx_{name}.onnx"
        path.write_bytes(proto.SerializeToString())
        return BadInput(f"onnx/{name}", path, None, expect)

    yield forged("description-task-multilabel", valid, lambda d: d["head"].__setitem__("task", "multilabel"), ("head.task", "multilabel"))
    yield forged("description-classes-reordered", valid, lambda d: d["head"]["classes"]["values"].reverse(), ("head.classes",))
    yield forged("description-extra-layer", valid, lambda d: d["layers"].append(d["layers"][-1]), ("layers",))
    big = directory / "valid" / "onnx_labels_2_53.onnx"
    nnconvert.save(tiny_model(classes=(2**53, 2**53 + 1, 5)), big)
    swapped = [2**53 + 1, 2**53, 5]  # one value in float64: a float comparison would take the swap
    yield forged("description-labels-collide-in-float64", big, lambda d: d["head"]["classes"].__setitem__("values", swapped), ("head.classes",))


def _external(proto: Any, name: str, location: str, **extra: str) -> None:
    from onnx import TensorProto

    tensor = next(t for t in proto.graph.initializer if t.name == name)
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.ClearField("double_data")
    tensor.data_location = TensorProto.EXTERNAL
    del tensor.external_data[:]
    for key, value in {"location": location, **extra}.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value


def _onnx_external_cases(directory: Path, valid: Path) -> Iterator[BadInput]:
    import onnx

    outside = directory / "outside_secret.bin"
    outside.write_bytes(np.zeros(64, np.float32).tobytes())
    inner = directory / "onnx_models"
    inner.mkdir(exist_ok=True)
    (inner / "link.bin").unlink(missing_ok=True)
    (inner / "link.bin").symlink_to(outside)
    (inner / "short.bin").write_bytes(b"\0" * 8)

    def case(name: str, location: str, expect: tuple[str, ...], **extra: str) -> BadInput:
        proto = onnx.load(str(valid))
        _external(proto, "layers/0/weights", location, **extra)
        path = inner / f"onnx_{name}.onnx"
        path.write_bytes(proto.SerializeToString())
        return BadInput(f"onnx/{name}", path, None, expect)

    yield case("external-dotdot", "../outside_secret.bin", ("..",))
    yield case("external-absolute", str(outside), ("outside_secret.bin",))
    yield case("external-symlink-outside", "link.bin", ("link.bin",))
    yield case("external-missing", "nothing_here.bin", ("nothing_here.bin",))
    yield case("external-too-short", "short.bin", ("short.bin",))
    yield case("external-absurd-length", "short.bin", ("layers/0/weights",), length=str(10**15))
    yield case("external-offset-not-int", "short.bin", ("layers/0/weights",), offset="zero")


# -- scikit-learn pickles and skops ----------------------------------------------


def _pickle_cases(directory: Path, valid: Path) -> Iterator[BadInput]:
    import warnings

    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    def case(name: str, obj: Any, expect: tuple[str, ...]) -> BadInput:
        path = directory / f"pickle_{name}.pkl"
        path.write_bytes(pickle.dumps(obj, protocol=4))
        return BadInput(f"sklearn-pickle/{name}", path, None, expect, trust=True)

    yield case("a-dict", {"weights": [1, 2, 3]}, ("dict",))
    yield case("unfitted-mlp", MLPClassifier(), ("fit",))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = LogisticRegression().fit(np.arange(8.0).reshape(4, 2), [0, 1, 0, 1])
    yield case("logistic-regression", fitted, ("logisticregression",))
    missing = directory / "pickle_missing-class.pkl"
    missing.write_bytes(b"\x80\x04\x95\x20\x00\x00\x00\x00\x00\x00\x00\x8c\x0bno_such_mod\x94\x8c\x04Evil\x94\x93\x94.")
    yield BadInput("sklearn-pickle/missing-class", missing, None, ("no_such_mod",), trust=True)


def _skops_cases(directory: Path, valid: Path) -> Iterator[BadInput]:
    import warnings

    import skops.io
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logistic = LogisticRegression().fit(np.arange(8.0).reshape(4, 2), [0, 1, 0, 1])
    path = directory / "skops_untrusted-estimator.skops"
    skops.io.dump(logistic, path)
    yield BadInput("skops/untrusted-estimator", path, None, ("logisticregression",))
    path = directory / "skops_function-payload.skops"
    skops.io.dump(make_pipeline(FunctionTransformer(os.system)), path)
    yield BadInput("skops/function-payload", path, None, ("system",))
    from nnconvert import to_sklearn

    incomplete = to_sklearn(tiny_model())
    del incomplete.coefs_  # what a damaged or forged file gives: an MLP without its weights
    path = directory / "skops_incomplete-mlp.skops"
    skops.io.dump(incomplete, path)
    yield BadInput("skops/incomplete-mlp", path, None, ("mlpclassifier",))
    yield from _skops_npy_cases(directory, valid)
    path = directory / "skops_no-schema.skops"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("other.json", "{}")
    yield BadInput("skops/no-schema", path, "skops", ("schema",))
    path = directory / "skops_schema-not-json.skops"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("schema.json", "{oops")
    yield BadInput("skops/schema-not-json", path, None, ("schema",))
    path = directory / "skops_schema-nested-deep.skops"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("schema.json", "[" * 50_000 + "]" * 50_000)
    yield BadInput("skops/schema-nested-deep", path, None, ("schema",))


def _skops_npy_cases(directory: Path, valid: Path) -> Iterator[BadInput]:
    """A skops file whose first ``.npy`` member is a deflated 128 MB of zeros, and one whose header lies."""
    with zipfile.ZipFile(valid) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    target = next(name for name in members if name.endswith(".npy"))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (BOMB_SHAPE[0] * BOMB_SHAPE[1],)})
    for name, content in (("npy-bomb", header.getvalue() + bytes(8 * BOMB_SHAPE[0] * BOMB_SHAPE[1])), ("npy-header-lies", header.getvalue() + bytes(64))):
        path = directory / f"skops_{name}.skops"
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            for member, data in members.items():
                archive.writestr(member, content if member == target else data)
        yield BadInput(f"skops/{name}", path, None, (target,))


# -- the corpus -------------------------------------------------------------------

def _safetensors_file(path: Path, header: dict[str, Any], data: bytes) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data)
    return path


def _own_state_dict(edit: Callable[[dict[str, np.ndarray], str], tuple[dict[str, np.ndarray], str]]) -> tuple[dict[str, np.ndarray], str]:
    """tiny_model's state dict and model document as nnconvert writes them, after ``edit``."""
    from nnconvert.converters.state_dict import state_dict_and_document

    tensors, document = state_dict_and_document(tiny_model())
    return edit(dict(tensors), document)


def _missing_tensor(tensors: dict[str, np.ndarray], document: str) -> tuple[dict[str, np.ndarray], str]:
    return tensors, document.replace('"2.weight"', '"9.weight"')


def _nan_weights(tensors: dict[str, np.ndarray], document: str) -> tuple[dict[str, np.ndarray], str]:
    return {**tensors, "0.weight": np.full_like(tensors["0.weight"], np.nan)}, document


def _int_weights(tensors: dict[str, np.ndarray], document: str) -> tuple[dict[str, np.ndarray], str]:
    return {**tensors, "0.bias": np.arange(4, dtype=np.int64)}, document


def _safetensors_cases(directory: Path, valid: Path) -> Iterator[BadInput]:
    from safetensors.numpy import save_file

    def case(name: str, header: dict[str, Any], data: bytes, expect: tuple[str, ...]) -> BadInput:
        return BadInput(f"safetensors/{name}", _safetensors_file(directory / f"st_{name}.safetensors", header, data), None, expect)

    yield case("offsets-outside-file", {"w": {"dtype": "F32", "shape": [HUGE, HUGE], "data_offsets": [0, 4 * HUGE * HUGE]}}, b"\0" * 16, ("'w'", "outside"))
    yield case("shape-needs-more-bytes", {"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 16]}}, b"\0" * 16, ("'w'", "4000 bytes"))
    yield case("unknown-dtype", {"w": {"dtype": "F7", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 16, ("'w'", "dtype"))
    yield case("metadata-not-strings", {"__metadata__": {"nnconvert": 5}}, b"", ("__metadata__",))
    lying = directory / "st_header-length-lies.safetensors"
    lying.write_bytes((10**9).to_bytes(8, "little") + b"{}")
    yield BadInput("safetensors/header-length-lies", lying, None, ("1000000000",))
    for name, edit, expect in (
        ("document-names-missing-tensor", _missing_tensor, ("9.weight",)),
        ("non-finite", _nan_weights, ("non-finite",)),
        ("integer-bias", _int_weights, ("floating-point",)),
    ):
        tensors, document = _own_state_dict(edit)
        path = directory / f"st_{name}.safetensors"
        save_file(tensors, str(path), metadata={"nnconvert": document})
        yield BadInput(f"safetensors/{name}", path, None, expect)
    broken = directory / "st_document-not-json.safetensors"
    save_file(_own_state_dict(lambda t, d: (t, d))[0], str(broken), metadata={"nnconvert": "{oops"})
    yield BadInput("safetensors/document-not-json", broken, None, ("not valid JSON",))


def _torch_cases(directory: Path, valid: Path) -> Iterator[BadInput]:
    import torch

    def save(name: str, content: Any) -> Path:
        path = directory / f"torch_{name}.pt"
        torch.save(content, path)
        return path

    yield BadInput("torch/not-a-state-dict", save("not-a-state-dict", [1, 2, 3]), None, ("state_dict",))
    yield BadInput("torch/empty-dict", save("empty-dict", {}), None, ("state_dict",))
    for name, edit, expect in (
        ("document-names-missing-tensor", _missing_tensor, ("9.weight",)),
        ("non-finite", _nan_weights, ("non-finite",)),
    ):
        tensors, document = _own_state_dict(edit)
        state: Any = OrderedDict((key, torch.from_numpy(array.copy())) for key, array in tensors.items())
        state._metadata = OrderedDict({"nnconvert": {"document": document}})
        yield BadInput(f"torch/{name}", save(name, state), None, expect)
    bfloat = OrderedDict({"0.weight": torch.zeros(2, 2, dtype=torch.bfloat16)})
    yield BadInput("torch/bfloat16", save("bfloat16", bfloat), None, ("bfloat16",))


SPECIFIC_CASES: dict[str, Callable[[Path, Path], Iterator[BadInput]]] = {
    "safetensors": _safetensors_cases,
    "torch": _torch_cases,
    "json": _json_cases,
    "hdf5": _hdf5_cases,
    "keras-h5": _keras_h5_cases,
    "keras": _keras_cases,
    "onnx": _onnx_cases,
    "sklearn-pickle": _pickle_cases,
    "skops": _skops_cases,
}


def make_corpus(directory: str | os.PathLike[str], formats: tuple[str, ...] = READABLE_FORMATS) -> list[BadInput]:
    """Write every bad file of ``formats`` into ``directory``; returns the cases."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    valid = write_valid_files(directory / "valid")
    cases: list[BadInput] = []
    for fmt in formats:
        cases.extend(_common_cases(directory, fmt, valid[fmt]))
        if fmt in SPECIFIC_CASES:  # test_bad_inputs names a readable format that has none
            cases.extend(SPECIFIC_CASES[fmt](directory, valid[fmt]))
    names = [case.name for case in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    return cases


# -- size-scaled cases: readers must be linear (or n log n) in the file's size ------------


@dataclass(frozen=True)
class ScaledCase:
    """One shape of file at two sizes, ``n`` and ``4n`` of the repeated part: reading must scale ~4x, not ~16x."""

    name: str
    small: Path
    large: Path
    format: str | None = None


def _onnx_reversed_tail(directory: Path, n: int) -> Path:
    """A regression graph whose output passes through ``n`` Squeeze nodes, listed in reverse order."""
    import onnx
    from onnx import helper

    import nnconvert
    from nnconvert.ir import Activation, DenseLayer, Head, InputSpec, Model, Task

    rng = np.random.default_rng(0)
    layers = (DenseLayer(rng.normal(size=(3, 4)), rng.normal(size=4), Activation.RELU), DenseLayer(rng.normal(size=(4, 2)), rng.normal(size=2)))
    base = nnconvert.save(Model(layers=layers, head=Head(Task.REGRESSION), input=InputSpec(3)), directory / f"onnx_tail_base_{n}.onnx")
    proto = onnx.load(str(base))
    output = proto.graph.output[0].name
    producer = next(node for node in proto.graph.node if output in node.output)
    producer.output[list(producer.output).index(output)] = "tail0"
    nodes = [helper.make_node("Squeeze", [f"tail{i}"], [f"tail{i + 1}" if i < n - 1 else output], name=f"squeeze{i}") for i in range(n)]
    proto.graph.node.extend(reversed(nodes))
    path = directory / f"onnx_reversed_tail_{n}.onnx"
    path.write_bytes(proto.SerializeToString())
    base.unlink()
    return path


def _nested_groups(directory: Path, valid: Path, n: int, prefix: str) -> Path:
    """A valid Keras HDF5 file plus ``n`` groups nested in one another."""

    def nest(handle: Any) -> None:
        group = handle.create_group("junk")
        for _ in range(n):
            group = group.create_group("g")

    return _h5_copy(directory, valid, f"nested_{n}", nest, prefix=prefix)


def make_scaled_cases(directory: str | os.PathLike[str], n: int = 250) -> list[ScaledCase]:
    """Valid files at sizes ``n`` and ``4n`` for the readers a hostile file could make quadratic."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    valid = write_valid_files(directory / "valid")
    return [
        ScaledCase("onnx/reversed-tail", _onnx_reversed_tail(directory, 4 * n), _onnx_reversed_tail(directory, 16 * n)),
        ScaledCase("keras-h5/nested-groups", _nested_groups(directory, valid["keras-h5"], n, "keras_h5"),
                   _nested_groups(directory, valid["keras-h5"], 4 * n, "keras_h5")),
    ]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tests/make_bad_inputs.py OUT_DIR", file=sys.stderr)
        return 2
    cases = make_corpus(argv[0])
    for case in cases:
        print(f"{case.name:45} {case.path}")
    print(f"{len(cases)} bad inputs in {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
