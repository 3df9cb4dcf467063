"""Regenerate the bundled samples: real scikit-learn models, their conversions, and held-out data.

Run from the project root: ``python samples/make_samples.py``. Everything is
seeded, so the files only change when scikit-learn or nnconvert change.

- iris_mlp.pkl: the classic example this project grew from, an
  MLPClassifier(hidden_layer_sizes=(10,)) trained on iris, saved with pickle;
  iris_mlp.{onnx,json,h5,skops}, iris_mlp_keras.h5: its conversions by nnconvert;
  iris_test.csv: the held-out rows (with a header) to verify them on.
- diabetes_mlp.pkl: a regression sample, StandardScaler + MLPRegressor on
  scikit-learn's diabetes data; diabetes_mlp.{onnx,json,h5,skops} (and _keras.h5 when exact);
  diabetes_test.csv: its held-out rows.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_diabetes, load_iris
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import nnconvert

HERE = Path(__file__).resolve().parent
CONVERSIONS = {"onnx": ".onnx", "json": ".json", "hdf5": ".h5", "skops": ".skops", "keras-h5": "_keras.h5"}


def _save_csv(path: Path, X: np.ndarray, header: list[str]) -> None:
    np.savetxt(path, X, delimiter=",", header=",".join(header), comments="", fmt="%.17g")


def _write_sample(name: str, estimator, X_test: np.ndarray, feature_names: list[str]) -> None:
    with open(HERE / f"{name}.pkl", "wb") as handle:
        pickle.dump(estimator, handle, protocol=4)
    _save_csv(HERE / f"{name.split('_')[0]}_test.csv", X_test, feature_names)
    model = nnconvert.from_sklearn(estimator)
    for format_name, suffix in CONVERSIONS.items():
        try:
            nnconvert.save(model, HERE / f"{name}{suffix}", format=format_name)
        except nnconvert.UnsupportedModelError as exc:  # e.g. a scaler Keras cannot hold exactly
            print(f"skipped {name} as {format_name}: {exc}")
    print(f"wrote {name}: pkl and its conversions; {len(X_test)} test rows")


def main() -> None:
    warnings.filterwarnings("ignore")  # ConvergenceWarning of the small examples
    iris = load_iris()
    X_train, X_test, y_train, _ = train_test_split(iris.data, iris.target, test_size=0.3, random_state=0)
    iris_mlp = MLPClassifier(hidden_layer_sizes=(10,), max_iter=1000, random_state=0).fit(X_train, y_train)
    _write_sample("iris_mlp", iris_mlp, X_test, [n.replace(" (cm)", "").replace(" ", "_") for n in iris.feature_names])

    diabetes = load_diabetes()
    X_train, X_test, y_train, _ = train_test_split(diabetes.data, diabetes.target, test_size=0.3, random_state=0)
    regressor = make_pipeline(
        StandardScaler(), MLPRegressor(hidden_layer_sizes=(32, 16), max_iter=2000, random_state=0)
    ).fit(X_train, y_train)
    _write_sample("diabetes_mlp", regressor, X_test, list(diabetes.feature_names))


if __name__ == "__main__":
    main()
