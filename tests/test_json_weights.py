"""nnconvert's JSON-weights format: lossless round trips, the schema, hostile input."""

from __future__ import annotations

import json
import re
import time
import tracemalloc
from pathlib import Path

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings
from sklearn_variants import get_variant, variant_ids

from nnconvert.converters.sklearn import from_sklearn, to_sklearn
from nnconvert.errors import ReadError, UsageError
from nnconvert.formats import json_weights
from nnconvert.formats.json_weights import codec, fast_read
from nnconvert.ir import Activation, DenseLayer, ElementwiseOp, Head, InputSpec, Metadata, Model, PreprocessStep, Task

SCHEMA_PATH = Path(json_weights.__file__).parents[2] / "schemas" / "json_weights.schema.json"
MODES = ("list", "base64", "auto")


@pytest.fixture(scope="module")
def validator():
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def _handmade(dtype: str = "float32", n_in: int = 3, hidden: int = 4) -> Model:
    """A model using what scikit-learn never produces: float16, parametrised activations, names, properties."""
    rng = np.random.default_rng(7)
    return Model(
        layers=(
            DenseLayer(
                rng.normal(size=(n_in, hidden)).astype(dtype),
                rng.normal(size=hidden).astype(dtype),
                Activation.LEAKY_RELU,
                "hidden",
                {"alpha": 0.2},
            ),
            DenseLayer(
                rng.normal(size=(hidden, 2)).astype(dtype),
                np.zeros(2, dtype),
                Activation.GELU,
                "out",
                {"approximate": "tanh"},
            ),
        ),
        head=Head(Task.REGRESSION),
        input=InputSpec(n_in, name="features", feature_names=tuple(f"f\u00e9ature {i}" for i in range(n_in))),
        steps=(
            PreprocessStep(
                "affine",
                (ElementwiseOp("mul", np.array(0.5, dtype)), ElementwiseOp("clip", np.array([-3.0, 3.0], dtype))),
                "scale",
                {"note": [1, "x"]},
            ),
        ),
        metadata=Metadata(source_framework="hand", source_version="0", properties={"z": "last", "a": "first \u2603"}),
    )


def _document(model: Model, arrays: str = "list") -> dict:
    return json.loads(json_weights.dumps(model, arrays=arrays))


def _read_document(document: dict) -> Model:
    return json_weights.loads(json.dumps(document))


# -- round trips ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("variant_id", variant_ids())
def test_variant_round_trip_is_lossless_and_deterministic(variant_id: str, dtype: str, tmp_path: Path) -> None:
    model = from_sklearn(get_variant(variant_id).estimator).astype(dtype)
    for mode in MODES:
        path = tmp_path / f"{mode}.json"
        json_weights.write(model, path, arrays=mode)
        loaded = json_weights.read(path)
        assert loaded.equals(model), mode
        assert json_weights.dumps(loaded, arrays=mode) == path.read_bytes(), f"{mode}: writing is not deterministic"


@pytest.mark.parametrize("variant_id", variant_ids())
def test_sklearn_predictions_survive_json(variant_id: str) -> None:
    variant = get_variant(variant_id)
    model = from_sklearn(variant.estimator)
    for mode in ("list", "base64"):
        rebuilt = to_sklearn(json_weights.loads(json_weights.dumps(model, arrays=mode)))
        np.testing.assert_array_equal(rebuilt.predict(variant.X_test), variant.estimator.predict(variant.X_test))
        if variant.kind == "classifier":
            np.testing.assert_array_equal(
                rebuilt.predict_proba(variant.X_test), variant.estimator.predict_proba(variant.X_test)
            )


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("mode", MODES)
def test_handmade_model_round_trip(dtype: str, mode: str) -> None:
    model = _handmade(dtype)
    assert json_weights.loads(json_weights.dumps(model, arrays=mode)).equals(model)


def test_list_text_is_numpy_shortest_repr_and_bit_identical() -> None:
    rng = np.random.default_rng(1)
    tiny = np.finfo(np.float32).smallest_subnormal
    special = [
        0.1,
        -0.0,
        1e-30,
        3.4e38,
        float(np.finfo(np.float32).max),
        float(tiny),
        float(tiny) * 3,
        1e-8,
        1e22,
        1e23,
        123456.79,
        16777217.0,
        1.0,
        2.5,
    ]
    weights = np.concatenate(
        [
            np.array(special, np.float32),
            rng.normal(scale=0.05, size=2000).astype(np.float32),
            rng.lognormal(sigma=20, size=2000).astype(np.float32),
        ]
    )
    weights = weights[np.isfinite(weights)]
    n = weights.size
    model = Model(
        layers=(DenseLayer(weights.reshape(n, 1), np.zeros(1, np.float32)),), head=Head(Task.RAW), input=InputSpec(n)
    )
    text = json_weights.dumps(model, arrays="list").decode()
    numbers = re.search(r'"weights": \{[^}]*"data": \[([^\]]*)\]', text).group(1).split(",")
    parsed = np.array([float(s) for s in numbers]).astype(np.float32)
    assert parsed.tobytes() == weights.tobytes()  # bit-identical, signed zero included
    for written, value in zip(numbers, weights, strict=True):
        # as short as numpy's own shortest round-trip repr of the float32 value
        digits = len(re.sub(r"e.*|[-.]", "", written).strip("0") or "0")
        reference = len(re.sub(r"e.*|[-.]", "", str(value)).strip("0") or "0")
        assert digits <= reference, (written, str(value))


def test_auto_mode_switches_to_base64_above_threshold() -> None:
    limit = json_weights.BASE64_THRESHOLD
    weights = np.ones((limit, 1), np.float32)
    small = Model(layers=(DenseLayer(weights, np.zeros(1, np.float32)),), head=Head(Task.RAW), input=InputSpec(limit))
    big = Model(
        layers=(DenseLayer(np.ones((limit + 1, 1), np.float32), np.zeros(1, np.float32)),),
        head=Head(Task.RAW),
        input=InputSpec(limit + 1),
    )
    assert "encoding" not in _document(small, "auto")["layers"][0]["weights"]
    assert _document(big, "auto")["layers"][0]["weights"]["encoding"] == "base64"
    assert "encoding" not in _document(big, "auto")["layers"][0]["bias"]


def test_small_model_is_readable_text() -> None:
    text = json_weights.dumps(_handmade(), arrays="auto").decode()
    assert text.startswith('{\n  "format": "nnconvert-json-weights",\n  "format_version": "1.0",')
    assert "NaN" not in text and "Infinity" not in text
    weights_line = next(line for line in text.splitlines() if '"weights"' in line)
    assert weights_line.strip().startswith('"weights": {"dtype": "float32", "shape": [3, 4], "data": [')
    assert "f\u00e9ature" in text  # UTF-8, not \u escapes


def test_unknown_writer_option_value() -> None:
    with pytest.raises(UsageError, match="arrays"):
        json_weights.dumps(_handmade(), arrays="csv")


# -- schema ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_written_files_follow_the_schema(mode: str, validator) -> None:
    models = [
        from_sklearn(get_variant(v).estimator)
        for v in (
            "iris-labels-str",
            "binary-bool",
            "multilabel",
            "regression-3",
            "pipeline-minmax-clip",
            "iris-float32",
        )
    ]
    models += [_handmade("float16"), _handmade("float64"), _handmade("float32", n_in=5000, hidden=2)]
    for model in models:
        validator.validate(_document(model, mode))


def test_schema_is_not_vacuous(validator) -> None:
    document = _document(_handmade(), "base64")
    assert validator.is_valid(document)
    broken = json.loads(json.dumps(document))
    broken["layers"][0]["weights"]["data"] = "not base64!"
    assert not validator.is_valid(broken)
    broken = json.loads(json.dumps(document))
    broken["layers"][0]["activation"] = "swish"
    assert not validator.is_valid(broken)
    broken = _document(_handmade(), "list")
    broken["layers"][0]["weights"]["data"][0] = "0.5"
    assert not validator.is_valid(broken)


# -- hostile and broken input ---------------------------------------------------------


def _raises_naming(field: str, document_or_text, match: str | None = None) -> ReadError:
    text = document_or_text if isinstance(document_or_text, (str, bytes)) else json.dumps(document_or_text)
    with pytest.raises(ReadError) as info:
        json_weights.loads(text, path="model.json")
    message = str(info.value)
    assert field in message, message
    assert "model.json" in message
    if match is not None:
        assert re.search(match, message), message
    return info.value


@pytest.mark.parametrize("mode", ["list", "base64"])
def test_data_not_matching_shape(mode: str) -> None:
    document = _document(_handmade(), mode)
    document["layers"][0]["weights"]["shape"] = [3, 5]
    _raises_naming("layers[0].weights.data", document, match=r"\[3, 5\]")


@pytest.mark.parametrize("mode", ["list", "base64"])
def test_huge_declared_shape_fails_fast_without_allocating(mode: str) -> None:
    document = _document(_handmade(), mode)
    document["layers"][0]["weights"]["shape"] = [1_000_000, 1_000_000]
    text = json.dumps(document)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        _raises_naming("layers[0].weights.data", text, match="1000000000000")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 1.0
    assert peak < 10_000_000


def test_unknown_major_version_is_refused_and_minor_tolerated() -> None:
    document = _document(_handmade())
    document["format_version"] = "2.0"
    _raises_naming("format_version", document, match="major version 1")
    document["format_version"] = "1.7"
    document["a_later_field"] = {"anything": [1, 2]}
    document["layers"][0]["a_later_layer_field"] = True
    assert _read_document(document).equals(_handmade())
    document["format_version"] = "one"
    _raises_naming("format_version", document)


def test_wrong_format_name() -> None:
    document = _document(_handmade())
    document["format"] = "something-else"
    _raises_naming("format", document, match="nnconvert-json-weights")


@pytest.mark.parametrize("key", ["activation", "weights", "bias"])
def test_missing_layer_field(key: str) -> None:
    document = _document(_handmade())
    del document["layers"][1][key]
    _raises_naming(f"layers[1].{key}", document, match="missing")


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["layers"][0]["weights"]["data"].__setitem__(2, "0.5"), "layers[0].weights.data[2]"),
        (lambda d: d["layers"][0]["bias"]["data"].__setitem__(0, True), "layers[0].bias.data[0]"),
        (lambda d: d["layers"][0]["weights"]["data"].__setitem__(1, [0.5]), "layers[0].weights.data[1]"),
        (lambda d: d["layers"][0]["weights"].__setitem__("shape", ["3", 4]), "layers[0].weights.shape[0]"),
        (lambda d: d["layers"][0]["weights"].__setitem__("dtype", "int32"), "layers[0].weights.dtype"),
        (lambda d: d["input"].__setitem__("n_features", "3"), "input.n_features"),
        (lambda d: d["steps"][0]["ops"][1]["operand"].__setitem__("data", "[-3, 3]"), "steps[0].ops[1].operand.data"),
        (lambda d: d["layers"][1].__setitem__("weights", [[1.0]]), "layers[1].weights"),
    ],
)
def test_wrong_types_name_the_field(edit, field: str) -> None:
    document = _document(_handmade())
    edit(document)
    _raises_naming(field, document)


def test_base64_errors_name_the_field() -> None:
    document = _document(_handmade(), "base64")
    data = document["layers"][0]["weights"]["data"]
    document["layers"][0]["weights"]["data"] = "!" + data[1:]
    _raises_naming("layers[0].weights.data", document, match="base64")
    document = _document(_handmade(), "base64")
    document["layers"][0]["weights"]["byteorder"] = "big"
    _raises_naming("layers[0].weights.byteorder", document)
    del document["layers"][0]["weights"]["byteorder"]
    _raises_naming("layers[0].weights.byteorder", document, match="missing")
    document["layers"][0]["weights"]["encoding"] = "hex"
    _raises_naming("layers[0].weights.encoding", document)


def test_non_finite_numbers_are_refused() -> None:
    text = json_weights.dumps(_handmade(), arrays="list").decode()
    first = re.search(r'"data": \[([^,\]]+)', text).group(1)
    for bad in ("NaN", "Infinity", "-Infinity"):
        _raises_naming("", text.replace(f'"data": [{first}', f'"data": [{bad}', 1), match="finite")
    _raises_naming("steps[0].ops[0].operand.data[0]", text.replace(f'"data": [{first}', '"data": [1e999', 1))
    # 1e39 is a finite float64 but no float32
    _raises_naming(
        "steps[0].ops[0].operand.data[0]", text.replace(f'"data": [{first}', '"data": [1e39', 1), match="float32"
    )


def test_deep_nesting_is_a_read_error_not_a_recursion_error() -> None:
    depth = 10_000
    text = '{"format": "nnconvert-json-weights", "format_version": "1.0", "input": ' + "[" * depth + "]" * depth + "}"
    _raises_naming("nested too deeply", text)
    text = (
        '{"format": "nnconvert-json-weights", "format_version": "1.0", "input": '
        + '{"a":' * depth
        + "1"
        + "}" * depth
        + "}"
    )
    _raises_naming("nested too deeply", text)


def test_not_json_and_not_utf8() -> None:
    _raises_naming("not valid JSON", b'{"format": "nnconvert-json-weights", ')
    _raises_naming("not UTF-8", b'{"format": "\xff"}')
    _raises_naming("(root)", b"[1, 2]")


def test_byte_order_mark_and_whitespace_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf \n" + json_weights.dumps(_handmade()))
    assert json_weights.read(path).equals(_handmade())
    assert json_weights.sniff(path.read_bytes()[:4096], path)


def test_missing_file_is_a_read_error(tmp_path: Path) -> None:
    with pytest.raises(ReadError, match="cannot read"):
        json_weights.read(tmp_path / "absent.json")


# -- sniffing -------------------------------------------------------------------


def test_sniff_claims_only_json_weights(tmp_path: Path) -> None:
    ours = json_weights.dumps(_handmade())
    assert json_weights.sniff(ours[:4096], tmp_path / "a.bin")
    others = [
        b'{"class_name": "Sequential", "config": {}}',  # a Keras config
        b'["nnconvert-json-weights", "format"]',
        b"\x89HDF\r\n\x1a\n" + b"\0" * 100,
        b"",
        b'{"format": "onnx"}',
    ]
    for head in others:
        assert not json_weights.sniff(head, tmp_path / "a.json"), head


# -- through the public API -------------------------------------------------------


def test_save_and_load_through_the_api(tmp_path: Path) -> None:
    import nnconvert

    model = from_sklearn(get_variant("pipeline-standard").estimator)
    path = nnconvert.save(model, tmp_path / "model.json", arrays="base64")
    assert nnconvert.load(path).equals(model)
    renamed = path.rename(tmp_path / "model.weights")  # detected by content, not suffix
    assert nnconvert.load(renamed).equals(model)


def test_large_lists_are_written_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _handmade("float32")
    whole = json_weights.dumps(model, arrays="list")
    monkeypatch.setattr(codec, "_LIST_CHUNK", 5)
    assert json_weights.dumps(model, arrays="list") == whole
    assert json_weights.loads(whole).equals(model)


def test_base64_is_encoded_in_pieces_that_join_into_the_same_text(monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    model = _handmade("float64", n_in=50, hidden=40)
    whole = json_weights.dumps(model, arrays="base64")
    monkeypatch.setattr(codec, "_ENCODE_CHUNK", 3)
    assert json_weights.dumps(model, arrays="base64") == whole
    expected = base64.b64encode(model.layers[0].weights.astype("<f8").tobytes()).decode()
    assert json.loads(whole)["layers"][0]["weights"]["data"] == expected


# -- reading long base64 strings straight from the bytes ---------------------------
#
# bytes are read by cutting the "data" strings out of the text and decoding them from it;
# a str goes through json.loads whole, the reference the cut path must agree with.


@pytest.fixture
def cut_everything(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Cut out every "data" string, however short, decode in pieces of 8 characters; record each one cut."""
    monkeypatch.setattr(fast_read, "_SPAN_MIN", 0)
    monkeypatch.setattr(fast_read, "_DECODE_CHUNK", 8)
    decoded: list[int] = []
    decode_span = fast_read._decode_span

    def recording(text, size: int) -> np.ndarray:
        decoded.append(len(text))
        return decode_span(text, size)

    monkeypatch.setattr(fast_read, "_decode_span", recording)
    return decoded


def _n_arrays(model: Model) -> int:
    return 2 * len(model.layers) + sum(len(step.ops) for step in model.steps)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("variant_id", variant_ids())
def test_cut_path_reads_every_variant(variant_id: str, dtype: str, cut_everything: list[int]) -> None:
    model = from_sklearn(get_variant(variant_id).estimator).astype(dtype)
    loaded = fast_read.loads_cut(json_weights.dumps(model, arrays="base64"), None)
    assert loaded is not None and loaded.equals(model)
    assert len(cut_everything) == _n_arrays(model)


@pytest.mark.parametrize(
    ("rewrite", "cut"),
    [
        (lambda text: text.replace('"data": "', '"data":"'), True),
        (lambda text: text.replace('"data": "', '"data" \r\n\t:\n  "'), True),
        (lambda text: text.replace('"data": "', '"d\\u0061ta": "', 1), True),  # that one is left to json
        (lambda text: text.replace('"data": "', '"data": "QUJD", "data": "', 1), False),  # json keeps the last
        (lambda text: re.sub(r'"data": "(.)', lambda m: f'"data": "\\u{ord(m.group(1)):04x}', text, count=1), False),
    ],
    ids=["compact", "whitespace", "escaped-key", "duplicate-key", "escaped-character"],
)
def test_cut_path_agrees_with_json_on_any_valid_layout(rewrite, cut: bool, cut_everything: list[int]) -> None:
    model = _handmade("float32", n_in=30, hidden=20)
    text = rewrite(json_weights.dumps(model, arrays="base64").decode())
    assert json_weights.loads(text).equals(model)  # the reference: json.loads over the whole text
    assert json_weights.loads(text.encode()).equals(model)
    assert (fast_read.loads_cut(text.encode(), None) is not None) == cut


@pytest.mark.parametrize("key", ["data", 'x"data'])
def test_a_data_string_that_is_not_array_data_falls_back_to_whole_json(key: str, cut_everything: list[int]) -> None:
    import base64

    model = _handmade()
    properties = {**model.metadata.properties, key: base64.b64encode(b"not weights" * 10).decode()}
    model = Model(model.layers, model.head, model.input, model.steps, Metadata(properties=properties))
    content = json_weights.dumps(model, arrays="base64")
    assert fast_read.loads_cut(content, None) is None
    loaded = json_weights.loads(content)
    assert loaded.equals(model) and loaded.metadata.properties == properties


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda data: "!" + data[1:],
        lambda data: data[:6] + "==" + data[8:],  # padding at the end of a piece decoded alone
        lambda data: data[:4] + "====" + data[8:],
        lambda data: data[:-4] + "A===",
        lambda data: data[:9] + "\u00e9" + data[10:],
        lambda data: data[:9] + "\\\\" + data[11:],
        lambda data: data[:-1] + "\\u0000",
        lambda data: data[:-8],
    ],
    ids=["character", "padding-mid", "padding-only", "bad-padding", "non-ascii", "backslash", "control", "short"],
)
def test_cut_path_errors_are_those_of_whole_json(corrupt, cut_everything: list[int]) -> None:
    document = _document(_handmade(n_in=30, hidden=20), "base64")
    document["layers"][0]["weights"]["data"] = corrupt(document["layers"][0]["weights"]["data"])
    text = json.dumps(document, ensure_ascii=False)
    reference = _raises_naming("layers[0].weights.data", text)
    assert str(_raises_naming("layers[0].weights.data", text.encode())) == str(reference)


def test_cut_path_error_outside_the_strings_is_that_of_whole_json(cut_everything: list[int]) -> None:
    text = json_weights.dumps(_handmade(), arrays="base64").decode()
    for bad in (text.replace('"format_version"', '"format_version" 1', 1), text.replace(", 2]", ", NaN]", 1)):
        assert str(_raises_naming("model.json", bad.encode())) == str(_raises_naming("model.json", bad))


def test_cutting_stops_after_many_short_strings(cut_everything: list[int], monkeypatch) -> None:
    monkeypatch.setattr(fast_read, "_SPAN_MIN", 200)
    model = _handmade("float32", n_in=30, hidden=20)
    content = json_weights.dumps(model, arrays="base64")
    assert json_weights.loads(content).equals(model) and len(cut_everything) == 2  # the two weight matrices
    cut_everything.clear()
    monkeypatch.setattr(fast_read, "_MAX_SHORT_STRINGS", 0)  # the first string is a short operand
    assert json_weights.loads(content).equals(model) and not cut_everything


@pytest.mark.parametrize("prefix", [b"", b"\xef\xbb\xbf \n"])
def test_large_files_are_read_into_mapped_memory(prefix: bytes, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(json_weights, "_MAP_MIN", 1)
    monkeypatch.setattr(fast_read, "_SPAN_MIN", 100)
    model = _handmade("float64", n_in=40, hidden=30)
    for mode in MODES:
        path = tmp_path / f"{mode}.json"
        path.write_bytes(prefix + json_weights.dumps(model, arrays=mode))
        assert json_weights.read(path).equals(model), mode


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_finite_array_round_trips_bit_for_bit(data) -> None:
    dtype = data.draw(st.sampled_from(["float16", "float32", "float64"]))
    weights = data.draw(
        hnp.arrays(
            dtype,
            hnp.array_shapes(min_dims=2, max_dims=2, max_side=6),
            elements=st.floats(allow_nan=False, allow_infinity=False, width=np.dtype(dtype).itemsize * 8),
        )
    )
    model = Model(
        layers=(DenseLayer(weights, np.zeros(weights.shape[1], dtype)),),
        head=Head(Task.RAW),
        input=InputSpec(weights.shape[0]),
    )
    for mode in ("list", "base64"):
        loaded = json_weights.loads(json_weights.dumps(model, arrays=mode))
        assert loaded.layers[0].weights.tobytes() == weights.tobytes(), mode
