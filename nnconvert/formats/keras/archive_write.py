"""Writing ``keras``: Keras 3 ``.keras`` archives, with zipfile and h5py only (Keras is never imported).

The archive holds what Keras 3's ``saving_lib`` writes and reads:

- ``config.json``: the serialized ``Sequential`` (``module``/``class_name``/``config``
  per layer, an ``InputLayer`` first, ``build_config`` with the input shape);
- ``metadata.json``: ``keras_version`` and ``date_saved``, plus nnconvert's head
  (task, classes, feature names) under ``nnconvert_head``, which Keras ignores;
- ``model.weights.h5``: each layer's variables at ``layers/<key>/vars/<i>``, in
  the layer's ``weights`` order, where ``<key>`` is the snake-cased class name
  made unique in layer order (``dense``, ``dense_1``...; the InputLayer is not a
  layer of a Sequential there), each ``vars`` group carrying the layer's name;
  the model's own (empty) ``vars`` group at the root.

The layers themselves are those of the keras-h5 writer (:func:`.write.layer_entries`).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..._io.atomic import Output, as_output
from ...ir import Model
from .config import HEAD_ATTRIBUTE
from .head import head_document
from .write import input_layer_name, layer_entries

__all__ = ["write_keras"]

# the Keras release whose saving_lib layout this follows (any Keras 3 reads it)
WRITTEN_KERAS_VERSION = "3.0.0"
# zip members get a fixed timestamp: the same model gives the same bytes
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)


def write_keras(model: Model, output: Output | str | Path, *, dtype: str = "float32") -> None:
    """Write a ``.keras`` archive that ``keras.models.load_model`` (Keras 3) loads.

    Args:
        model: the model graph.
        output: where to write (a temporary file's :class:`~nnconvert._io.atomic.Output` during ``save``), or a path.
        dtype: "float32" (default, what Keras computes in) or "float64".

    Raises:
        UnsupportedModelError: a step or activation has no exact Keras equivalent (all listed).
        UsageError: an unknown dtype.
    """
    target, layers = layer_entries(model, dtype, "keras")
    config = _sequential_config(target, layers, dtype)
    metadata = {"keras_version": WRITTEN_KERAS_VERSION, "date_saved": "", HEAD_ATTRIBUTE: head_document(model, target.dtype)}
    weights = _weights_file(layers)
    with zipfile.ZipFile(as_output(output).path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in (
            ("metadata.json", json.dumps(metadata).encode("utf-8")),
            ("config.json", json.dumps(config).encode("utf-8")),
            ("model.weights.h5", weights),
        ):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)


def _layer_config(entry: dict[str, Any], dtype: str) -> dict[str, Any]:
    return {"module": "keras.layers", "class_name": entry["class_name"], "config": entry["config"] | {"dtype": dtype}, "registered_name": None}


def _sequential_config(model: Model, layers: list[dict[str, Any]], dtype: str) -> dict[str, Any]:
    shape = [None, model.n_features]
    input_layer = {
        "module": "keras.layers",
        "class_name": "InputLayer",
        "config": {"batch_shape": shape, "dtype": dtype, "sparse": False, "name": input_layer_name(model, layers)},
        "registered_name": None,
    }
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {
            "name": "sequential",
            "trainable": True,
            "dtype": dtype,
            "layers": [input_layer] + [_layer_config(entry, dtype) for entry in layers],
            "build_input_shape": shape,
        },
        "registered_name": None,
        "build_config": {"input_shape": shape},
        "compile_config": None,
    }


def _snake_case(class_name: str) -> str:
    # keras.src.utils.naming.to_snake_case
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _weights_file(layers: list[dict[str, Any]]) -> bytes:
    import h5py

    buffer = io.BytesIO()
    used: dict[str, int] = {}
    with h5py.File(buffer, "w") as handle:
        handle.create_group("vars").attrs["name"] = "sequential"
        group = handle.create_group("layers")
        for entry in layers:
            base = _snake_case(entry["class_name"])
            key = base if base not in used else f"{base}_{used[base] + 1}"
            used[base] = used.get(base, -1) + 1
            variables = group.create_group(key).create_group("vars")
            variables.attrs["name"] = entry["name"]
            for index, (_, array) in enumerate(entry["weights"]):
                variables.create_dataset(str(index), data=np.array(array, order="C"))
    return buffer.getvalue()
