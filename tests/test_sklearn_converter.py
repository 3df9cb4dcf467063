"""scikit-learn estimators <-> IR: every variant against scikit-learn's own predictions."""

from __future__ import annotations

import copy
import warnings
from dataclasses import replace

import numpy as np
import pytest
from sklearn_variants import get_variant, variant_ids

import nnconvert
from nnconvert.converters.sklearn import from_sklearn, to_sklearn
from nnconvert.errors import InvalidModelError, UnsupportedModelError
from nnconvert.ir import Activation, DenseLayer, ElementwiseOp, Head, InputSpec, Model, PreprocessStep, Task


def _tolerance(model: Model) -> float:
    return 1e-12 if model.dtype == np.float64 else 1e-6


def _snapshot(estimator) -> list[np.ndarray]:
    """Copies of every fitted array of an MLP or Pipeline (coefs, intercepts, scaler statistics)."""
    steps = estimator.steps if hasattr(estimator, "steps") else [("", estimator)]
    arrays = []
    for _, step in steps:
        for key, value in sorted(vars(step).items()):
            if key.endswith("_") and isinstance(value, np.ndarray):
                arrays.append(value.copy())
            elif key in ("coefs_", "intercepts_"):
                arrays.extend(a.copy() for a in value)
    return arrays


def _mlp(estimator):
    return estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator


# -- every variant ------------------------------------------------------------


@pytest.mark.parametrize("variant_id", variant_ids())
def test_ir_matches_sklearn(variant_id: str) -> None:
    variant = get_variant(variant_id)
    estimator, X = variant.estimator, variant.X_test
    model = from_sklearn(estimator)
    tol = _tolerance(model)
    expected = estimator.predict(X)
    predicted = model.predict(X)
    if variant.kind == "classifier":
        np.testing.assert_array_equal(predicted, expected)
        assert predicted.dtype == expected.dtype
        np.testing.assert_allclose(model.predict_proba(X), estimator.predict_proba(X), rtol=0, atol=tol)
    else:
        np.testing.assert_allclose(predicted, expected, rtol=tol, atol=tol)
        assert predicted.shape == expected.shape


@pytest.mark.parametrize("variant_id", variant_ids())
def test_round_trip_is_bit_identical(variant_id: str) -> None:
    variant = get_variant(variant_id)
    estimator, X = variant.estimator, variant.X_test
    rebuilt = to_sklearn(from_sklearn(estimator))
    assert type(rebuilt) is type(estimator)
    methods = ["predict", "predict_proba"] if variant.kind == "classifier" else ["predict"]
    for method in methods:
        expected = getattr(estimator, method)(X)
        got = getattr(rebuilt, method)(X)
        assert got.dtype == expected.dtype, method
        assert np.array_equal(got, expected), method
    y = estimator.predict(X)
    assert rebuilt.score(X, y) == estimator.score(X, y)


@pytest.mark.parametrize("variant_id", variant_ids())
def test_original_is_not_modified_and_views_are_read_only(variant_id: str) -> None:
    # the documented contract: the IR views the estimator's weights read-only (no copy of a
    # large model), copy=True snapshots them, and to_sklearn always builds independent arrays
    estimator = get_variant(variant_id).estimator
    before = _snapshot(estimator)
    model = from_sklearn(estimator)
    snapshot = from_sklearn(estimator, copy=True)
    rebuilt = to_sklearn(model)
    after = _snapshot(estimator)
    assert len(before) == len(after)
    for old, new in zip(before, after, strict=True):
        assert old.dtype == new.dtype and np.array_equal(old, new)
    original_mlp, rebuilt_mlp = _mlp(estimator), _mlp(rebuilt)
    assert snapshot.equals(model)
    for index, (coef, rebuilt_coef) in enumerate(zip(original_mlp.coefs_, rebuilt_mlp.coefs_, strict=True)):
        layer, copied = model.layers[index], snapshot.layers[index]
        assert not layer.weights.flags.writeable and not layer.bias.flags.writeable
        assert coef.flags.writeable  # the estimator itself can still train
        assert not np.shares_memory(copied.weights, coef)
        assert not np.shares_memory(copied.bias, original_mlp.intercepts_[index])
        assert not np.shares_memory(rebuilt_coef, coef)
        assert not np.shares_memory(rebuilt_coef, layer.weights)
        assert rebuilt_coef.flags.writeable and rebuilt_coef.dtype == coef.dtype


def test_views_follow_further_training_and_copies_do_not() -> None:
    estimator = copy.deepcopy(get_variant("pipeline-standard").estimator)
    mlp = _mlp(estimator)
    view, snapshot = from_sklearn(estimator), from_sklearn(estimator, copy=True)
    assert np.shares_memory(view.layers[0].weights, mlp.coefs_[0])
    original = snapshot.layers[0].weights.copy()
    mlp.coefs_[0] += 1.0  # what partial_fit's in-place updates do
    assert np.array_equal(view.layers[0].weights, mlp.coefs_[0])
    assert np.array_equal(snapshot.layers[0].weights, original)


@pytest.mark.parametrize("variant_id", variant_ids())
def test_graph_round_trip_and_hyperparameters(variant_id: str) -> None:
    estimator = get_variant(variant_id).estimator
    model = from_sklearn(estimator)
    rebuilt = to_sklearn(model)
    assert from_sklearn(rebuilt).equals(model)
    original_params = _mlp(estimator).get_params()
    assert _mlp(rebuilt).get_params() == {
        **original_params,
        "hidden_layer_sizes": tuple(original_params["hidden_layer_sizes"]),
    }
    for attribute in ("n_layers_", "n_outputs_", "out_activation_", "n_features_in_"):
        assert getattr(_mlp(rebuilt), attribute) == getattr(_mlp(estimator), attribute)


def test_metadata_layers_and_tasks() -> None:
    import sklearn

    model = from_sklearn(get_variant("iris-relu-3layers").estimator)
    assert model.metadata.producer == f"nnconvert {nnconvert.__version__}"
    assert model.metadata.source_framework == "scikit-learn"
    assert model.metadata.source_class == "MLPClassifier"
    assert model.metadata.source_version == sklearn.__version__
    assert [layer.name for layer in model.layers] == ["dense_0", "dense_1", "dense_2", "dense_3"]
    assert [layer.activation for layer in model.layers] == [Activation.RELU] * 3 + [Activation.SOFTMAX]
    expected_tasks = {
        "binary-bool": Task.BINARY,
        "iris-labels-int": Task.MULTICLASS,
        "multilabel": Task.MULTILABEL,
        "regression-3": Task.REGRESSION,
        "pipeline-maxabs": Task.REGRESSION,
    }
    for variant_id, task in expected_tasks.items():
        assert from_sklearn(get_variant(variant_id).estimator).task == task, variant_id
    assert from_sklearn(get_variant("regression-poisson").estimator).output_activation == Activation.EXP
    assert from_sklearn(get_variant("pipeline-standard").estimator).metadata.source_class == "Pipeline"


def test_scaler_steps_reproduce_transform_arithmetic() -> None:
    pipeline = get_variant("pipeline-minmax-clip").estimator
    (step,) = from_sklearn(pipeline).steps
    scaler = pipeline.steps[0][1]
    assert step.kind == "minmax_scaler"
    assert [op.op for op in step.ops] == ["mul", "add", "clip"]
    assert dict(step.params) == {"feature_range": [-1, 2], "clip": True}
    standard_minmax = from_sklearn(get_variant("pipeline-standard-minmax").estimator)
    assert [s.kind for s in standard_minmax.steps] == ["standard_scaler", "minmax_scaler"]
    assert [op.op for op in standard_minmax.steps[0].ops] == ["div"]  # with_mean=False: no centring
    X = get_variant("pipeline-minmax-clip").X_test
    transformed = X.copy()
    step.apply(transformed)
    assert np.array_equal(transformed, scaler.transform(X))


def test_feature_names_are_kept() -> None:
    estimator = copy.deepcopy(get_variant("pipeline-standard").estimator)
    names = np.array(["sepal length", "sepal width", "petal length", "petal width"], dtype=object)
    estimator.steps[0][1].feature_names_in_ = names  # as fitting on a DataFrame sets it
    model = from_sklearn(estimator)
    assert model.input.feature_names == tuple(names)
    rebuilt = to_sklearn(model)
    assert list(rebuilt.feature_names_in_) == list(names)


def test_float32_pipeline_is_bit_identical_on_float32_input() -> None:
    from sklearn.datasets import load_iris
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    pipeline = make_pipeline(
        StandardScaler(), MinMaxScaler(), MaxAbsScaler(), MLPClassifier((6,), max_iter=30, random_state=0)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline.fit(X, y)
    model = from_sklearn(pipeline)
    assert model.dtype == np.float32
    np.testing.assert_allclose(model.predict_proba(X), pipeline.predict_proba(X), rtol=0, atol=1e-6)
    rebuilt = to_sklearn(model)
    assert np.array_equal(rebuilt.predict_proba(X), pipeline.predict_proba(X))


def test_rebuilt_estimator_can_keep_training() -> None:
    variant = get_variant("iris-10")
    rebuilt = to_sklearn(from_sklearn(variant.estimator))
    y = variant.estimator.predict(variant.X_test)
    rebuilt.partial_fit(variant.X_test, y)
    assert rebuilt.n_iter_ == 1


@pytest.mark.parametrize(
    "labels",
    [
        np.array([-1.0, 2.0, 7.5e3]),  # float labels (scikit-learn accepts integral values)
        np.array(["cat", "dog", "emu"], dtype=object),  # object labels, as from pandas
        np.array([False, True]),
    ],
    ids=["float", "object", "bool"],
)
@pytest.mark.parametrize("hidden", [(), (3,)], ids=["no-hidden-layer", "one-hidden-layer"])
def test_more_label_types_and_shapes(labels: np.ndarray, hidden: tuple[int, ...]) -> None:
    from sklearn.datasets import load_iris
    from sklearn.neural_network import MLPClassifier

    X, y = load_iris(return_X_y=True)
    estimator = MLPClassifier(hidden, max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(X, labels[y % len(labels)])
    model = from_sklearn(estimator)
    np.testing.assert_array_equal(model.predict(X), estimator.predict(X).astype(model.classes.dtype))
    np.testing.assert_allclose(model.predict_proba(X), estimator.predict_proba(X), rtol=0, atol=1e-12)
    rebuilt = to_sklearn(model)
    for method in ("predict", "predict_proba"):
        expected, got = getattr(estimator, method)(X), getattr(rebuilt, method)(X)
        assert got.dtype == expected.dtype and np.array_equal(got, expected), method


def _random_model(activations, task=Task.MULTICLASS, classes=("a", "b", "c"), n_out=3, steps=(), dtype=np.float64):
    rng = np.random.default_rng(0)
    sizes = [4] + [5] * (len(activations) - 1) + [n_out]
    layers = [
        DenseLayer(
            rng.normal(size=(sizes[i], sizes[i + 1])).astype(dtype),
            rng.normal(size=sizes[i + 1]).astype(dtype),
            act,
            name=f"fc{i}",
        )
        for i, act in enumerate(activations)
    ]
    head = Head(task, None if classes is None else np.array(classes))
    return Model(layers=tuple(layers), head=head, input=InputSpec(4), steps=tuple(steps))


def test_binary_head_with_two_softmax_outputs() -> None:
    model = _random_model(["tanh", "softmax"], task=Task.BINARY, classes=("no", "yes"), n_out=2)
    estimator = to_sklearn(model)
    X = np.random.default_rng(1).normal(size=(40, 4))
    assert np.array_equal(estimator.predict(X), model.predict(X))
    np.testing.assert_allclose(estimator.predict_proba(X), model.predict_proba(X), rtol=0, atol=1e-15)
    assert from_sklearn(estimator).task == Task.BINARY


# -- errors -------------------------------------------------------------------


@pytest.mark.parametrize("cls_name", ["MLPClassifier", "MLPRegressor"])
def test_unfitted_estimator(cls_name: str) -> None:
    import sklearn.neural_network

    with pytest.raises(InvalidModelError, match=f"This {cls_name} instance is not fitted yet. Call 'fit'"):
        from_sklearn(getattr(sklearn.neural_network, cls_name)())


def test_unfitted_pipeline_step_is_named() -> None:
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    with pytest.raises(
        InvalidModelError, match="pipeline step 'standardscaler': This StandardScaler instance is not fitted"
    ):
        from_sklearn(make_pipeline(StandardScaler(), MLPClassifier()))


def test_unsupported_estimator_names_class_and_alternatives() -> None:
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(UnsupportedModelError, match="LogisticRegression.*MLPClassifier, MLPRegressor"):
        from_sklearn(LogisticRegression())
    with pytest.raises(UnsupportedModelError, match="builtins.dict"):
        from_sklearn({"coefs_": []})


def test_pipeline_with_unsupported_steps_lists_each() -> None:
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    with pytest.raises(UnsupportedModelError) as excinfo:
        from_sklearn(make_pipeline(PCA(), LinearRegression()))
    assert len(excinfo.value.problems) == 2
    message = str(excinfo.value)
    assert "step 0 ('pca')" in message and "PCA" in message and "StandardScaler" in message
    assert "LinearRegression" in message and "MLPClassifier" in message


def test_to_sklearn_refuses_mixed_hidden_activations() -> None:
    model = from_sklearn(get_variant("iris-relu-3layers").estimator)
    layers = list(model.layers)
    layers[1] = replace(layers[1], activation=Activation.TANH)
    with pytest.raises(UnsupportedModelError, match=r"layer 1 \('dense_1'\): activation tanh differs from layer 0"):
        to_sklearn(replace(model, layers=tuple(layers)))


def test_to_sklearn_refuses_gelu() -> None:
    model = _random_model(["gelu", "softmax"])
    with pytest.raises(
        UnsupportedModelError, match=r"layer 0 \('fc0'\): activation gelu .*identity, logistic, tanh, relu"
    ):
        to_sklearn(model)


_NUMPY_OPS = {"sub": np.subtract, "div": np.divide, "mul": np.multiply, "add": np.add}


@pytest.mark.parametrize(
    "ops",
    [["mul"], ["sub", "mul"], ["add"], ["add", "sub"], ["div", "mul", "add", "clip"], ["clip"], ["mul", "sub", "div"]],
    ids="-".join,
)
def test_to_sklearn_writes_affine_steps_as_scalers_computing_the_same(ops: list[str]) -> None:
    # an affine step from another source (ai.onnx.ml Scaler, Keras, ONNX constants) becomes consecutive
    # StandardScaler / MinMaxScaler steps performing its operations in its order
    rng = np.random.default_rng(3)
    operands = {"sub": rng.normal(size=4), "div": rng.uniform(0.5, 2, 4), "mul": rng.uniform(0.5, 2, 4), "add": rng.normal(size=4), "clip": np.array([-1.5, 1.5])}
    step = PreprocessStep("affine", tuple(ElementwiseOp(op, operands[op]) for op in ops), name="rescale")
    model = _random_model(["relu", "softmax"], steps=[step])
    estimator = to_sklearn(model)
    scalers = [type(est).__name__ for _, est in estimator.steps[:-1]]
    assert set(scalers) <= {"StandardScaler", "MinMaxScaler"}
    X = rng.normal(size=(50, 4))
    expected = X.copy()
    for op in ops:  # what the step computes, written out
        expected = np.clip(expected, -1.5, 1.5) if op == "clip" else _NUMPY_OPS[op](expected, operands[op])
    assert np.array_equal(estimator[:-1].transform(X), expected)
    np.testing.assert_allclose(estimator.predict_proba(X), model.predict_proba(X), rtol=0, atol=1e-15)
    assert np.array_equal(estimator.predict(X), model.predict(X))


def test_to_sklearn_refuses_output_that_does_not_fit_task_and_lists_every_problem() -> None:
    model = _random_model(["relu", "elu", "logistic"])
    with pytest.raises(UnsupportedModelError) as excinfo:
        to_sklearn(model)
    problems = excinfo.value.problems
    assert len(problems) == 2
    assert "layer 1 ('fc1'): activation elu" in problems[0]
    assert "layer 2 ('fc2'), the output: activation logistic does not fit a multiclass head" in problems[1]
    with pytest.raises(UnsupportedModelError, match="activation tanh does not fit a regression head"):
        to_sklearn(_random_model(["relu", "tanh"], task=Task.REGRESSION, classes=None, n_out=1))


def test_to_sklearn_refuses_raw_task_and_float16() -> None:
    with pytest.raises(UnsupportedModelError, match="task is raw"):
        to_sklearn(_random_model(["relu", "identity"], task=Task.RAW, classes=None, n_out=2))
    with pytest.raises(UnsupportedModelError, match="float16"):
        to_sklearn(_random_model(["relu", "softmax"], dtype=np.float16))


def test_to_sklearn_refuses_scaler_whose_operations_disagree() -> None:
    ops = (
        ElementwiseOp("mul", np.ones(4)),
        ElementwiseOp("add", np.zeros(4)),
        ElementwiseOp("clip", np.array([0.0, 5.0])),
    )
    step = PreprocessStep("minmax_scaler", ops, name="mm", params={"feature_range": [0, 1], "clip": True})
    with pytest.raises(UnsupportedModelError, match=r"preprocessing step 0 \('mm'\): clips to \[0.0, 5.0\]"):
        to_sklearn(_random_model(["relu", "softmax"], steps=[step]))
