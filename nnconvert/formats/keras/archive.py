"""Reading ``keras``: Keras 3 ``.keras`` zips (config.json, metadata.json, model.weights.h5), in memory."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..._io.hdf5_safety import refuse_outside_data
from ..._io.zip_safety import ZIP_SIGNATURE, checked_members, member_bytes
from ...errors import ReadError
from ...ir import Model
from .build import Source, build_model
from .config import HEAD_ATTRIBUTE, Layer, parse_config
from .h5 import attribute_text, corrupt_hdf5_is_a_read_error, float_array

MAX_CONFIG_BYTES = 32 * 2**20


def _member(archive: zipfile.ZipFile, members: Mapping[str, zipfile.ZipInfo], name: str, path: Path, cap: int) -> bytes:
    return member_bytes(archive, members, name, path, cap, format_name="keras", expected="a Keras 3 .keras file")


def read_keras(path: str | Path, *, task: Any = None, classes: Any = None) -> Model:
    """Read a Keras 3 ``.keras`` archive without extracting it or importing Keras.

    Args:
        path: the ``.keras`` file.
        task: override the head's task (binary, multiclass, multilabel, regression, raw).
        classes: the class labels, in output order (default ``0..k-1``).

    Returns:
        The model graph.

    Raises:
        ReadError: not a Keras archive, unsafe members, or inconsistent weights.
        UnsupportedModelError: layers outside the supported list (all listed).
        UsageError: ``task``/``classes`` do not fit the model.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = checked_members(archive, path, "keras")
            config_bytes = _member(archive, members, "config.json", path, MAX_CONFIG_BYTES)
            metadata_bytes = (
                _member(archive, members, "metadata.json", path, MAX_CONFIG_BYTES) if "metadata.json" in members else b"{}"
            )
            weights_info = members.get("model.weights.h5")
            weights_cap = weights_info.file_size if weights_info is not None else 0
            weights_bytes = _member(archive, members, "model.weights.h5", path, weights_cap)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, NotImplementedError, EOFError, OSError) as exc:
        # a damaged central directory can send zipfile seeking to a negative offset (OSError EINVAL)
        raise ReadError(f"not a readable zip archive: {exc}", path=path, format="keras") from None
    config = _json_member(config_bytes, "config.json", path)
    metadata = _json_member(metadata_bytes, "metadata.json", path)
    return _read_keras_parts(config, metadata if isinstance(metadata, dict) else {}, weights_bytes, path, task, classes)


def _json_member(data: bytes, name: str, path: Path) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ReadError(f"{name} is nested too deeply to be a Keras config", path=path, format="keras") from None
    except ValueError as exc:
        raise ReadError(f"{name} is not valid JSON: {exc}", path=path, format="keras") from None


def _read_keras_parts(config: Any, metadata: Mapping[str, Any], weights: bytes, path: Path, task: Any, classes: Any) -> Model:
    import h5py

    model_class, model_name, layers = parse_config(config, path, "keras")
    try:
        handle = h5py.File(io.BytesIO(weights), "r")
    except (OSError, RuntimeError, ValueError) as exc:
        raise ReadError(f"model.weights.h5 is not a readable HDF5 file: {exc}", path=path, format="keras") from None
    with corrupt_hdf5_is_a_read_error(path, "keras"), handle:
        refuse_outside_data(handle, path, "keras")
        source = Source(
            path=path,
            format="keras",
            model_class=model_class,
            model_name=model_name,
            layers=layers,
            weights=_zip_weight_reader(handle, layers, model_class, path),
            keras_version=attribute_text(metadata.get("keras_version")),
            stored_head=metadata.get(HEAD_ATTRIBUTE) if isinstance(metadata.get(HEAD_ATTRIBUTE), dict) else None,
            properties={"file_format": "keras"},
        )
        return build_model(source, task, classes)


def _zip_weight_reader(handle: Any, layers: list[Layer], model_class: str, path: Path):
    """Weights of a layer in a Keras 3 weights file, found by path exactly as Keras 3 loads them.

    Keras 3 (``saving_lib._load_container_state``) reads layer ``i`` from
    ``layers/<key>/vars``, where the key is the snake-cased class name made
    unique in layer order (``dense``, ``dense_1``...), and ignores the
    ``name`` attribute stored beside the variables; so does nnconvert, so an
    archive whose names were swapped converts to the model Keras runs.
    Archives Keras itself could not load unambiguously are refused: two
    layers with one name, or variables under a key no layer owns.
    """
    import h5py

    def fail(message: str) -> ReadError:
        return ReadError(message, path=path, format="keras")

    seen: set[str] = set()
    for layer in layers:
        if layer.name in seen:
            raise fail(f"two layers are named {layer.name!r}; Keras requires unique layer names, so the weights are ambiguous")
        seen.add(layer.name)
    keys = _derived_keys(layers, model_class)
    root = handle.get("layers")
    if root is not None and not isinstance(root, h5py.Group):
        raise fail("model.weights.h5: 'layers' is not a group")
    owned = set(keys.values())
    for key, group in root.items() if root is not None else ():
        variables = group.get("vars") if isinstance(group, h5py.Group) else None
        if key not in owned and isinstance(variables, h5py.Group) and len(variables) > 0:
            raise fail(
                f"model.weights.h5 holds variables at 'layers/{key}/vars' that no layer of config.json owns "
                f"(Keras reads layers at {sorted(owned)}); the archive is ambiguous"
            )

    def read(layer: Layer) -> list[tuple[str, np.ndarray]]:
        key = keys.get(layer.name)
        group = root.get(key) if root is not None and key is not None else None
        variables = group.get("vars") if isinstance(group, h5py.Group) else None
        if not isinstance(variables, h5py.Group):
            return []
        indices = sorted((k for k in variables if k.isdigit()), key=int)
        if [int(k) for k in indices] != list(range(len(indices))) or len(indices) != len(variables):
            raise fail(f"layer {layer.name!r}: weights at 'layers/{key}/vars' are numbered {sorted(variables)}, expected 0..n-1")
        # vars are saved in layer.weights order; the role is unknown, so order decides
        return [(f"var{k}", float_array(variables[k], layer.name, path, "keras")) for k in indices]

    return read


def _derived_keys(layers: list[Layer], model_class: str) -> dict[str, str]:
    """Keras 3's key for each layer: its class name snake-cased, made unique in layer order (``dense``, ``dense_1``).

    Sequential models skip the InputLayer (``Sequential.layers`` omits it); functional models keep it.
    """
    keys: dict[str, str] = {}
    counts: dict[str, int] = {}
    for layer in layers:
        if layer.class_name == "InputLayer" and model_class == "Sequential":
            continue
        base = re.sub(r"\W+", "", layer.class_name)
        base = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", base)
        base = re.sub("([a-z])([A-Z])", r"\1_\2", base).lower()
        count = counts.get(base, 0)
        counts[base] = count + 1
        keys[layer.name] = base if count == 0 else f"{base}_{count}"
    return keys


def sniff_keras(head: bytes, path: Path) -> bool:
    """True for a zip holding config.json and model.weights.h5."""
    if not head.startswith(ZIP_SIGNATURE):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
        return {"config.json", "model.weights.h5"} <= names
    except Exception:  # noqa: BLE001 - a probe never raises
        return False
