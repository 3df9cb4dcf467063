"""One conformance suite, parametrized over the format registry.

Every registered format gets, for free: IR -> file -> IR round trips
(bit-identical where the format is lossless), conversion from every readable
format to every writable one, detection without a format name, and a check
that writing never modifies the input model. A new format only has to say,
in ``PROFILES``, whether its round trip is exact and whether it may refuse
a model; until it does, it runs under the strictest profile that needs no
knowledge of it (weights, activations and predictions kept) and
``test_every_format_has_a_profile`` names it. In ``tests/format_profiles.py``
it says which models it documents it cannot hold: a refusal must be one of
those, and every other model must be written. Trust and the dtype option
come from its registration.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from format_profiles import assert_documented_refusal, refusal_problems
from sklearn_variants import get_variant

import nnconvert
from nnconvert import registry
from nnconvert.errors import UnsupportedModelError
from nnconvert.ir import (
    ActivationLayer,
    BatchNormLayer,
    DenseLayer,
    ElementwiseOp,
    Head,
    InputSpec,
    LayerNormLayer,
    Metadata,
    Model,
    PReLULayer,
    PreprocessStep,
    layer_arrays,
)

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass(frozen=True)
class Profile:
    """What a format keeps: ``exact`` formats give Model.equals; others keep what is listed."""

    exact: bool
    may_refuse: bool = False  # may refuse a model it cannot express (naming what)


PROFILES: dict[str, Profile] = {
    "onnx": Profile(exact=True),  # with dtype = the model's own dtype
    "json": Profile(exact=True),
    "hdf5": Profile(exact=True),
    # scikit-learn objects have no place for layer names or foreign provenance: exact for
    # models that came from scikit-learn, weights and predictions for the others
    "sklearn-pickle": Profile(exact=False, may_refuse=True),
    "skops": Profile(exact=False, may_refuse=True),
    "keras-h5": Profile(exact=False, may_refuse=True),  # Keras has no place for provenance; weights kept bit for bit
    "keras": Profile(exact=False, may_refuse=True),
    # the model document rides in the header / state_dict metadata: lossless
    "safetensors": Profile(exact=True),
    "torch": Profile(exact=True),
}
DEFAULT_PROFILE = Profile(exact=False)
# read-only formats: a file to read (nnconvert cannot write one)
READ_ONLY_SAMPLES = {"keras": FIXTURES / "keras" / "multiclass.keras"}


def _profile(format_name: str) -> Profile:
    return PROFILES.get(format_name, DEFAULT_PROFILE)


def _trust(format_name: str) -> bool:
    return registry.get(format_name).needs_trust


def _takes_dtype(format_name: str) -> bool:
    return any(option.name == "dtype" for option in registry.get(format_name).write_options)


def writable_formats() -> list[str]:
    return sorted(name for name, spec in registry.formats().items() if spec.write is not None)


def round_trip_formats() -> list[str]:
    """Writable formats that can be read back (write-only targets, like c, have their own tests)."""
    return sorted(name for name, spec in registry.formats().items() if spec.write is not None and spec.read is not None)


def readable_formats() -> list[str]:
    return sorted(name for name, spec in registry.formats().items() if spec.read is not None)


def test_every_format_has_a_profile() -> None:
    # round trips need a reader: write-only targets (c) are compared against the frameworks in their own tests
    lacking = sorted(set(round_trip_formats()) - set(PROFILES))
    assert not lacking, (
        f"format(s) {lacking} run the conformance suite under the default profile (weights and predictions "
        "kept, never refusing): add an entry to PROFILES in tests/test_conformance.py saying what they keep"
    )
    unreadable = sorted(set(readable_formats()) - set(writable_formats()) - set(READ_ONLY_SAMPLES))
    assert not unreadable, f"read-only format(s) {unreadable} need a file in READ_ONLY_SAMPLES to be tested"


def _suffix(format_name: str) -> str:
    return registry.get(format_name).suffixes[0]


def _save(model: Model, path: Path, format_name: str) -> None:
    options = {"dtype": model.dtype.name} if _takes_dtype(format_name) else {}
    nnconvert.save(model, path, format=format_name, **options)


def _hand_built_model() -> Model:
    rng = np.random.default_rng(7)
    return Model(
        layers=(
            DenseLayer(rng.normal(size=(3, 5)), rng.normal(size=5), "relu", "hidden"),
            DenseLayer(rng.normal(size=(5, 2)), rng.normal(size=2), "softmax", "out"),
        ),
        head=Head("multiclass", np.array(["cat", "dog"])),
        input=InputSpec(3, name="features", feature_names=("a", "b", "c")),
        steps=(
            PreprocessStep(
                "standard_scaler",
                (ElementwiseOp("sub", rng.normal(size=3)), ElementwiseOp("div", rng.uniform(1, 2, size=3))),
                name="scaler",
                params={"with_mean": True, "with_std": True},
            ),
        ),
        metadata=Metadata(producer="nnconvert 0.1.0", source_framework="scikit-learn", properties={"k": "v"}),
    )


def _foreign_activation_model() -> Model:
    """A torch-style MLP (tanh-approximated gelu, raw logits) that scikit-learn and Keras cannot hold."""
    rng = np.random.default_rng(11)
    return Model(
        layers=(
            DenseLayer(rng.normal(size=(3, 4)), rng.normal(size=4), "gelu", "fc0", {"approximate": "tanh"}),
            DenseLayer(rng.normal(size=(4, 2)), rng.normal(size=2), "identity", "fc1"),
        ),
        head=Head("raw"),
        input=InputSpec(3),
    )


def _batch_norm_model() -> Model:
    """Format 1.1 kinds: Dense, BatchNormalization, a ReLU layer, LayerNormalization, PReLU (Keras holds them, scikit-learn not)."""
    rng = np.random.default_rng(12)
    return Model(
        layers=(
            DenseLayer(rng.normal(size=(3, 5)), rng.normal(size=5), "identity", "fc0"),
            BatchNormLayer(rng.normal(size=5), rng.uniform(0.5, 2, 5), 1e-3, rng.normal(size=5), rng.normal(size=5), name="bn"),
            ActivationLayer("relu", name="act"),
            LayerNormLayer(1e-5, rng.normal(size=5), None, name="ln"),
            PReLULayer(rng.uniform(0, 0.3, 5), name="prelu"),
            DenseLayer(rng.normal(size=(5, 3)), rng.normal(size=3), "softmax", "out"),
        ),
        head=Head("multiclass", np.array([0, 1, 2])),
        input=InputSpec(3),
    )


MODELS = {
    "iris-10": lambda: nnconvert.from_sklearn(get_variant("iris-10").estimator),
    "binary-bool": lambda: nnconvert.from_sklearn(get_variant("binary-bool").estimator),
    "iris-float32": lambda: nnconvert.from_sklearn(get_variant("iris-float32").estimator),
    "regression-3": lambda: nnconvert.from_sklearn(get_variant("regression-3").estimator),
    "pipeline-standard": lambda: nnconvert.from_sklearn(get_variant("pipeline-standard").estimator),
    "hand-built": _hand_built_model,
    "gelu-tanh-raw": _foreign_activation_model,
    "batch-norm": _batch_norm_model,
}


def _model_bytes(model: Model) -> list[bytes]:
    arrays = [a for layer in model.layers for a in layer_arrays(layer).values() if a is not None]
    arrays += [op.operand for step in model.steps for op in step.ops]
    return [np.ascontiguousarray(a).tobytes() for a in arrays]


def _inputs(model: Model) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(25, model.n_features)) * 2


@pytest.mark.parametrize("model_id", sorted(MODELS))
@pytest.mark.parametrize("format_name", round_trip_formats())
def test_round_trip(format_name: str, model_id: str, tmp_path: Path) -> None:
    model = MODELS[model_id]()
    before = _model_bytes(model)
    profile = _profile(format_name)
    path = tmp_path / f"model{_suffix(format_name)}"
    if refusal_problems(format_name, model):
        # a format refuses only what it documents it cannot hold, names it, and leaves no file
        assert profile.may_refuse, f"{format_name} documents refusals but its profile says it never refuses"
        with pytest.raises(UnsupportedModelError) as refused:
            _save(model, path, format_name)
        assert_documented_refusal(format_name, model, refused.value)
        assert not path.exists() and _model_bytes(model) == before
        return
    _save(model, path, format_name)
    assert _model_bytes(model) == before, "writing modified the input model"
    if registry.get(format_name).read is None:  # write-only: the same model gives the same bytes
        again = tmp_path / f"again{_suffix(format_name)}"
        _save(model, again, format_name)
        assert again.read_bytes() == path.read_bytes(), f"{format_name}: writing is not deterministic"
        return
    restored = nnconvert.load(path, format=format_name, trust=_trust(format_name))
    X = _inputs(model)
    from_sklearn = "sklearn.params" in model.metadata.properties
    if profile.exact or (format_name in {"sklearn-pickle", "skops"} and from_sklearn):
        assert restored.equals(model), f"{format_name} round trip is not lossless"
        np.testing.assert_array_equal(restored.forward(X), model.forward(X))
        return
    for mine, theirs in zip(model.layers, restored.layers, strict=True):
        assert mine.kind == theirs.kind
        for (role, array), (_, restored_array) in zip(layer_arrays(mine).items(), layer_arrays(theirs).items(), strict=True):
            np.testing.assert_array_equal(array, restored_array, err_msg=role)
        assert mine.activation == theirs.activation
    assert restored.task == model.task
    if model.classes is not None:
        np.testing.assert_array_equal(restored.classes, model.classes)
        assert restored.classes.dtype == model.classes.dtype
    np.testing.assert_allclose(restored.forward(X), model.forward(X), rtol=1e-6, atol=1e-7)


# of the eight conformance models, how many each format must hold (the rest it documents it cannot)
MIN_HELD = {"onnx": 7, "json": 7, "hdf5": 7, "sklearn-pickle": 6, "skops": 6, "keras-h5": 6, "keras": 6, "c": 7, "safetensors": 8, "torch": 8}


@pytest.mark.parametrize("format_name", writable_formats())
def test_each_format_holds_most_conformance_models(format_name: str) -> None:
    assert format_name in MIN_HELD, f"say in MIN_HELD how many conformance models {format_name} must hold"
    held = [model_id for model_id, make in MODELS.items() if not refusal_problems(format_name, make())]
    assert len(held) >= MIN_HELD[format_name], f"{format_name} holds only {held}"


def _source_files(tmp_path: Path) -> dict[str, Path]:
    model = MODELS["iris-10"]()
    sources = {}
    for format_name in readable_formats():
        if format_name in READ_ONLY_SAMPLES:
            sources[format_name] = READ_ONLY_SAMPLES[format_name]
            continue
        path = tmp_path / f"source{_suffix(format_name)}"
        if format_name == "keras-h5":
            path = tmp_path / "source_keras.h5"
        _save(model, path, format_name)
        sources[format_name] = path
    return sources


@pytest.fixture(scope="module")
def source_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _source_files(tmp_path_factory.mktemp("sources"))


@pytest.mark.parametrize(
    ("source_format", "target_format"), list(itertools.product(readable_formats(), round_trip_formats()))
)
def test_every_readable_to_every_writable(
    source_format: str, target_format: str, source_files: dict[str, Path], tmp_path: Path
) -> None:
    source = source_files[source_format]
    trust = _trust(source_format)
    original = nnconvert.load(source, format=source_format, trust=trust)
    target = tmp_path / f"target{_suffix(target_format)}"
    nnconvert.convert(source, target, from_format=source_format, to_format=target_format, trust=trust)
    if registry.get(target_format).read is None:  # write-only: written is all there is to check
        assert target.stat().st_size > 0
        return
    converted = nnconvert.load(target, format=target_format, trust=_trust(target_format))
    X = _inputs(original)
    np.testing.assert_allclose(converted.forward(X), original.forward(X), rtol=1e-5, atol=1e-6)
    if original.head.is_classifier:
        np.testing.assert_array_equal(converted.predict(X), original.predict(X))


@pytest.mark.parametrize("format_name", readable_formats())
def test_detection_without_format_name(format_name: str, source_files: dict[str, Path]) -> None:
    source = source_files[format_name]
    assert registry.detect(source).name == format_name
    trust = _trust(format_name)
    detected = nnconvert.load(source, trust=trust)
    named = nnconvert.load(source, format=format_name, trust=trust)
    assert detected.equals(named)


@pytest.mark.parametrize("format_name", readable_formats())
def test_detection_ignores_a_misleading_suffix(format_name: str, source_files: dict[str, Path], tmp_path: Path) -> None:
    misnamed = tmp_path / "model.json"
    if format_name == "json":
        misnamed = tmp_path / "model.onnx"
    misnamed.write_bytes(source_files[format_name].read_bytes())
    assert registry.detect(misnamed).name == format_name


@pytest.mark.parametrize("format_name", writable_formats())
def test_save_leaves_the_input_object_unmodified(format_name: str, tmp_path: Path) -> None:
    estimator = get_variant("pipeline-standard").estimator
    snapshot = copy.deepcopy(estimator)
    model = nnconvert.from_sklearn(estimator)
    try:
        _save(model, tmp_path / f"m{_suffix(format_name)}", format_name)
    except UnsupportedModelError as exc:
        assert _profile(format_name).may_refuse
        assert_documented_refusal(format_name, model, exc)
    X = get_variant("pipeline-standard").X_test
    np.testing.assert_array_equal(estimator.predict_proba(X), snapshot.predict_proba(X))
    for mine, theirs in zip(estimator[-1].coefs_, snapshot[-1].coefs_, strict=True):
        np.testing.assert_array_equal(mine, theirs)
