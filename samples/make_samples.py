"""Regenerate the bundled samples: real scikit-learn models, their conversions, and held-out data.

Run from the project root: ``python samples/make_samples.py [--output-dir DIR] [--conversions-only]``.
Everything is seeded, so the files only change when scikit-learn or nnconvert change.
``--conversions-only`` rewrites the conversions from the pickles already in the folder
(training again can differ in the last bits on another machine's BLAS).
tests/test_samples.py checks that this script reproduces the committed files.

- iris_mlp.pkl: the classic example this project grew from, an
  MLPClassifier(hidden_layer_sizes=(10,)) trained on iris, saved with pickle;
  iris_mlp.{onnx,json,h5,skops}, iris_mlp_keras.h5: its conversions by nnconvert;
  iris_test.csv: the held-out rows (with a header) to verify them on.
- diabetes_mlp.pkl: a regression sample, StandardScaler + MLPRegressor on
  scikit-learn's diabetes data; diabetes_mlp.{onnx,json,h5,skops}, diabetes_mlp_keras.h5;
  diabetes_test.csv: its held-out rows.
"""

from __future__ import annotations

import argparse
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np

import nnconvert

HERE = Path(__file__).resolve().parent
SAMPLES = ("iris_mlp", "diabetes_mlp")
CONVERSIONS = {"onnx": ".onnx", "json": ".json", "hdf5": ".h5", "skops": ".skops", "keras-h5": "_keras.h5"}


def _save_csv(path: Path, X: np.ndarray, header: list[str]) -> None:
    np.savetxt(path, X, delimiter=",", header=",".join(header), comments="", fmt="%.17g")


def held_out_path(name: str, output_dir: Path = HERE) -> Path:
    """The held-out rows of sample ``name``."""
    return output_dir / f"{name.split('_')[0]}_test.csv"


def train(name: str) -> tuple[Any, np.ndarray, list[str]]:
    """(fitted estimator, held-out rows, feature names) of sample ``name``."""
    from sklearn.datasets import load_diabetes, load_iris
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning of the small examples
        if name == "iris_mlp":
            iris = load_iris()
            X_train, X_test, y_train, _ = train_test_split(iris.data, iris.target, test_size=0.3, random_state=0)
            estimator = MLPClassifier(hidden_layer_sizes=(10,), max_iter=1000, random_state=0).fit(X_train, y_train)
            return estimator, X_test, [n.replace(" (cm)", "").replace(" ", "_") for n in iris.feature_names]
        if name == "diabetes_mlp":
            diabetes = load_diabetes()
            X_train, X_test, y_train, _ = train_test_split(diabetes.data, diabetes.target, test_size=0.3, random_state=0)
            estimator = make_pipeline(
                StandardScaler(), MLPRegressor(hidden_layer_sizes=(32, 16), max_iter=2000, random_state=0)
            ).fit(X_train, y_train)
            return estimator, X_test, list(diabetes.feature_names)
    raise ValueError(f"unknown sample {name!r}; the samples are {SAMPLES}")


def write_trained(name: str, output_dir: Path = HERE) -> Any:
    """Train sample ``name``, write its pickle and held-out rows; returns the estimator."""
    estimator, X_test, feature_names = train(name)
    with open(output_dir / f"{name}.pkl", "wb") as handle:
        pickle.dump(estimator, handle, protocol=4)
    _save_csv(held_out_path(name, output_dir), X_test, feature_names)
    return estimator


def write_conversions(name: str, estimator: Any, output_dir: Path = HERE) -> list[Path]:
    """Write every conversion of ``estimator`` by nnconvert; every format must hold it."""
    model = nnconvert.from_sklearn(estimator)
    return [nnconvert.save(model, output_dir / f"{name}{suffix}", format=fmt) for fmt, suffix in CONVERSIONS.items()]


def main(output_dir: Path = HERE, conversions_only: bool = False) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    for name in SAMPLES:
        if conversions_only:
            with open(output_dir / f"{name}.pkl", "rb") as handle:
                estimator = pickle.load(handle)  # our own sample, written by this script
        else:
            estimator = write_trained(name, output_dir)
        written = write_conversions(name, estimator, output_dir)
        print(f"wrote {name}: {', '.join(p.name for p in written)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=HERE, help="where to write (default: samples/)")
    parser.add_argument("--conversions-only", action="store_true", help="convert the pickles already there, do not train")
    arguments = parser.parse_args()
    main(arguments.output_dir, arguments.conversions_only)
