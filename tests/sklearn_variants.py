"""Every scikit-learn variant the foundation issue names, fitted on small real data.

Each variant is fitted once per test session (``variants()`` is cached). The
data come from scikit-learn's bundled datasets or seeded generators, so the
references are scikit-learn's own predictions, never numbers of ours.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Variant:
    id: str
    estimator: Any
    X_test: np.ndarray
    kind: str  # "classifier" or "regressor"


def _split(X: np.ndarray, y: np.ndarray, seed: int = 0):
    from sklearn.model_selection import train_test_split

    return train_test_split(X, y, test_size=0.3, random_state=seed)


def _fit(estimator: Any, X: np.ndarray, y: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: small max_iter keeps the suite fast
        return estimator.fit(X, y)


@lru_cache(maxsize=1)
def variants() -> tuple[Variant, ...]:
    from sklearn.datasets import load_iris, make_classification, make_multilabel_classification, make_regression
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

    out: list[Variant] = []
    iris = load_iris()
    Xi_tr, Xi_te, yi_tr, yi_te = _split(iris.data, iris.target)

    def clf(**kw: Any) -> MLPClassifier:
        return MLPClassifier(random_state=0, max_iter=300, **kw)

    def reg(**kw: Any) -> MLPRegressor:
        return MLPRegressor(random_state=0, max_iter=300, **kw)

    def add(id_: str, est: Any, X_tr: np.ndarray, y_tr: Any, X_te: np.ndarray, kind: str = "classifier") -> None:
        out.append(Variant(id_, _fit(est, X_tr, y_tr), X_te, kind))

    # multiclass, every hidden activation, 1..3 hidden layers
    add("iris-10", clf(hidden_layer_sizes=(10,)), Xi_tr, yi_tr, Xi_te)
    for act in ("identity", "logistic", "tanh", "relu"):
        add(f"iris-{act}-3layers", clf(hidden_layer_sizes=(16, 8, 4), activation=act), Xi_tr, yi_tr, Xi_te)
    # labels: negative non-contiguous ints, strings, bools
    labels_int = np.array([-1, 7, 42])[yi_tr]
    add("iris-labels-int", clf(hidden_layer_sizes=(8,)), Xi_tr, labels_int, Xi_te)
    labels_str = np.array(["setosa", "versicolor", "virginica-long-label-name"])[yi_tr]
    add("iris-labels-str", clf(hidden_layer_sizes=(8,)), Xi_tr, labels_str, Xi_te)
    # binary: bool labels, str labels
    Xb, yb = make_classification(n_samples=300, n_features=6, random_state=1)
    Xb_tr, Xb_te, yb_tr, yb_te = _split(Xb, yb)
    add("binary-bool", clf(hidden_layer_sizes=(12, 6)), Xb_tr, yb_tr.astype(bool), Xb_te)
    add("binary-str", clf(hidden_layer_sizes=(5,), activation="tanh"), Xb_tr, np.array(["no", "yes"])[yb_tr], Xb_te)
    add("binary-int", clf(hidden_layer_sizes=(5,)), Xb_tr, np.array([3, -2])[yb_tr], Xb_te)
    # multilabel
    Xm, ym = make_multilabel_classification(n_samples=300, n_features=8, n_classes=4, random_state=2)
    Xm_tr, Xm_te, ym_tr, ym_te = _split(Xm.astype(np.float64), ym)
    add("multilabel", clf(hidden_layer_sizes=(20,)), Xm_tr, ym_tr, Xm_te)
    # float32 data: float32 weights
    add("iris-float32", clf(hidden_layer_sizes=(10, 5)), Xi_tr.astype(np.float32), yi_tr, Xi_te.astype(np.float32))
    # regression: one and several outputs, squared error and poisson, float32
    Xr, yr = make_regression(n_samples=300, n_features=5, n_targets=1, noise=0.1, random_state=3)
    Xr_tr, Xr_te, yr_tr, yr_te = _split(Xr, yr)
    add("regression-1", reg(hidden_layer_sizes=(10,)), Xr_tr, yr_tr, Xr_te, "regressor")
    add("regression-float32", reg(hidden_layer_sizes=(10,)), Xr_tr.astype(np.float32), yr_tr.astype(np.float32), Xr_te.astype(np.float32), "regressor")
    Xr3, yr3 = make_regression(n_samples=300, n_features=5, n_targets=3, noise=0.1, random_state=4)
    Xr3_tr, Xr3_te, yr3_tr, yr3_te = _split(Xr3, yr3)
    add("regression-3", reg(hidden_layer_sizes=(10, 10), activation="tanh"), Xr3_tr, yr3_tr, Xr3_te, "regressor")
    rng = np.random.default_rng(5)
    Xp = rng.normal(size=(300, 4))
    yp = rng.poisson(np.exp(0.3 * Xp[:, 0] + 0.2 * Xp[:, 1]))
    Xp_tr, Xp_te, yp_tr, yp_te = _split(Xp, yp.astype(np.float64))
    add("regression-poisson", reg(hidden_layer_sizes=(8,), loss="poisson"), Xp_tr, yp_tr, Xp_te, "regressor")
    # pipelines of scalers before the MLP
    add("pipeline-standard", make_pipeline(StandardScaler(), clf(hidden_layer_sizes=(10,))), Xi_tr, yi_tr, Xi_te)
    add("pipeline-minmax-clip", make_pipeline(MinMaxScaler(feature_range=(-1, 2), clip=True), clf(hidden_layer_sizes=(10,))), Xi_tr, yi_tr, Xi_te * 1.3)
    add("pipeline-maxabs", make_pipeline(MaxAbsScaler(), reg(hidden_layer_sizes=(10,))), Xr_tr, yr_tr, Xr_te, "regressor")
    add(
        "pipeline-standard-minmax",
        make_pipeline(StandardScaler(with_mean=False), MinMaxScaler(), clf(hidden_layer_sizes=(6,))),
        Xb_tr,
        yb_tr,
        Xb_te,
    )
    return tuple(out)


def variant_ids() -> list[str]:
    return [v.id for v in variants()]


def get_variant(id_: str) -> Variant:
    return next(v for v in variants() if v.id == id_)
