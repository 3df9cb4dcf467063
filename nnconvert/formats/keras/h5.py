"""Reading ``keras-h5``: Keras full-model HDF5 files (tf.keras 2 and Keras 3 ``model.save('x.h5')``)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..._io.hdf5_safety import has_signature, refuse_outside_data, unstored_data_problem
from ...errors import NnconvertError, ReadError
from ...ir import Model
from .build import Source, build_model
from .config import HEAD_ATTRIBUTE, Layer, parse_config


def attribute_text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        return attribute_text(value.item())
    return value if isinstance(value, str) else None


def _attribute_list(group: Any, name: str) -> list[str]:
    """A string-list attribute, including Keras' chunked form (``name0``, ``name1``...)."""
    if name in group.attrs:
        chunks = [group.attrs[name]]
    else:
        chunks = []
        while f"{name}{len(chunks)}" in group.attrs:
            chunks.append(group.attrs[f"{name}{len(chunks)}"])
    return [attribute_text(item) or "" for chunk in chunks for item in np.atleast_1d(chunk)]


def _json_attribute(attrs: Any, name: str, path: Path, format_name: str) -> Any:
    text = attribute_text(attrs.get(name))
    if text is None:
        return None
    try:
        return json.loads(text)
    except RecursionError:
        raise ReadError(f"the root attribute {name!r} is nested too deeply to be a Keras config", path=path, format=format_name) from None
    except ValueError as exc:
        raise ReadError(f"the root attribute {name!r} is not valid JSON: {exc}", path=path, format=format_name) from None


def _h5_weight_reader(root: Any, path: Path) -> Callable[[Layer], list[tuple[str, np.ndarray]]]:
    """Weights of a layer of a legacy full-model file, found through the ``weight_names`` attributes."""
    import h5py

    def read(layer: Layer) -> list[tuple[str, np.ndarray]]:
        group = root.get(layer.name)
        if not isinstance(group, h5py.Group):
            # layers without weights may have no group at all in tf.keras 2 files
            return []
        weights = []
        for weight_name in _attribute_list(group, "weight_names"):
            dataset = group.get(weight_name) if weight_name else None
            if not isinstance(dataset, h5py.Dataset):
                raise ReadError(
                    f"layer {layer.name!r} lists weight {weight_name!r}, which is not a dataset in "
                    f"model_weights/{layer.name}",
                    path=path,
                    format="keras-h5",
                )
            weights.append((_weight_role(weight_name), float_array(dataset, layer.name, path, "keras-h5")))
        return weights

    return read


def _weight_role(weight_name: str) -> str:
    """'kernel' from 'dense/kernel:0' or 'model/dense/kernel'."""
    return weight_name.rsplit("/", 1)[-1].split(":", 1)[0]


def float_array(dataset: Any, layer_name: str, path: Path, format_name: str) -> np.ndarray:
    def fail(message: str) -> ReadError:
        return ReadError(f"layer {layer_name!r}: weight {dataset.name} {message}", path=path, format=format_name)

    import h5py

    if not isinstance(dataset, h5py.Dataset):
        raise fail(f"is a {type(dataset).__name__}, not a dataset")
    if dataset.dtype.kind not in "fiu":
        raise fail(f"has dtype {dataset.dtype}, expected numbers")
    # checked before reading: a sparse dataset can declare terabytes in a file of a few kilobytes
    problem = unstored_data_problem(dataset)
    if problem is not None:
        raise fail(problem)
    try:
        return np.asarray(dataset[()])
    except Exception as exc:  # noqa: BLE001 - h5py reports corrupt chunks and missing filters as OSError and others
        raise fail(f"cannot be read: {exc}") from None


def read_h5(path: str | Path, *, task: Any = None, classes: Any = None) -> Model:
    """Read a Keras full-model HDF5 file (tf.keras 2 or Keras 3 ``model.save('x.h5')``).

    Args:
        path: the ``.h5`` file.
        task: override the head's task (binary, multiclass, multilabel, regression, raw).
        classes: the class labels, in output order (default ``0..k-1``).

    Returns:
        The model graph.

    Raises:
        ReadError: not a Keras full-model file, or inconsistent weights.
        UnsupportedModelError: layers outside the supported list (all listed).
        UsageError: ``task``/``classes`` do not fit the model.
    """
    import h5py

    path = Path(path)
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise ReadError(f"not a readable HDF5 file: {exc}", path=path, format="keras-h5") from None
    with corrupt_hdf5_is_a_read_error(path, "keras-h5"), handle:
        return _read_h5_file(handle, path, task, classes)


@contextlib.contextmanager
def corrupt_hdf5_is_a_read_error(path: Path, format_name: str):
    """h5py reports a damaged file structure as OSError, RuntimeError, KeyError...: make it a ReadError."""
    try:
        yield
    except NnconvertError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, SystemError) as exc:
        raise ReadError(f"the HDF5 weights are corrupt: {exc}", path=path, format=format_name) from None


def _read_h5_file(handle: Any, path: Path, task: Any, classes: Any) -> Model:
    import h5py

    if "nnconvert_format" in handle.attrs:
        raise ReadError("this is nnconvert's own HDF5 layout; read it with format='hdf5'", path=path, format="keras-h5")
    config = _json_attribute(handle.attrs, "model_config", path, "keras-h5")
    if config is None:
        raise ReadError(
            "no 'model_config' root attribute: this is not a Keras full-model file (a weights-only file "
            "from save_weights holds no architecture)",
            path=path,
            format="keras-h5",
        )
    refuse_outside_data(handle, path, "keras-h5")
    weights_root = handle.get("model_weights")
    if not isinstance(weights_root, h5py.Group):
        raise ReadError("no 'model_weights' group: the file holds no weights", path=path, format="keras-h5")
    model_class, model_name, layers = parse_config(config, path, "keras-h5")
    stored = _json_attribute(handle.attrs, HEAD_ATTRIBUTE, path, "keras-h5")
    source = Source(
        path=path,
        format="keras-h5",
        model_class=model_class,
        model_name=model_name,
        layers=layers,
        weights=_h5_weight_reader(weights_root, path),
        keras_version=attribute_text(handle.attrs.get("keras_version")) or attribute_text(weights_root.attrs.get("keras_version")),
        backend=attribute_text(handle.attrs.get("backend")) or attribute_text(weights_root.attrs.get("backend")),
        stored_head=stored if isinstance(stored, dict) else None,
        properties={"file_format": "keras-h5"},
    )
    return build_model(source, task, classes)


def sniff_h5(head: bytes, path: Path) -> bool:
    """True for an HDF5 file with Keras' root attributes and not nnconvert's own marker."""
    if not has_signature(head, path):
        return False
    try:
        import h5py

        with h5py.File(path, "r") as handle:
            attrs = handle.attrs
            if "nnconvert_format" in attrs:
                return False
            return "model_config" in attrs and ("keras_version" in attrs or "backend" in attrs or "model_weights" in handle)
    except Exception:  # noqa: BLE001 - a probe never raises
        return False
