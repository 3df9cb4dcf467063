"""State dicts (name -> array) <-> the model graph, for safetensors and torch checkpoint files.

Written files name their tensors as ``to_torch(model).state_dict()`` does
(``0.weight`` in torch's ``(out, in)`` layout, ``0.bias``, ``2.weight``...), so a
torch user can ``load_state_dict`` them, and carry the whole model document
(:mod:`nnconvert.serde`) with each array replaced by ``{"tensor": name,
"transposed": bool}``: reading such a file back is bit-identical.

Foreign state dicts hold weights only. The caller gives the architecture
(:func:`parse_arch`): ``"relu,relu,softmax"`` (the activation after each Linear,
in order) or a JSON list of modules for anything else
(``[{"type": "Linear"}, {"type": "BatchNorm1d", "eps": 1e-5}, {"type": "ReLU"}, ...]``,
an optional ``"key"`` naming a module whose key is not its index). Every key
and shape is checked against it before anything is built.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidModelError, ReadError, UnsupportedModelError, UsageError
from ..head import head_with_options
from ..ir import Metadata, Model
from ..options import Option
from ..serde import model_from_document, model_to_document
from .torch_layout import ACTIVATION_TYPES, LAYER_TYPES, SKIPPED_TYPES, TorchModule, model_to_modules, modules_to_model

__all__ = [
    "ARCH_OPTION",
    "DOCUMENT_KEY",
    "state_dict_and_document",
    "model_from_own_file",
    "model_from_state_dict",
    "parse_arch",
    "ARCH_HELP",
]

DOCUMENT_KEY = "nnconvert"  # safetensors __metadata__ key / .pt state_dict _metadata key of the model document
ARCH_HELP = (
    "give the architecture with arch= (--arch on the command line): the activation after each Linear layer, "
    "comma-separated (relu,relu,softmax; identity for none), or a JSON list of modules such as "
    '[{"type": "Linear"}, {"type": "BatchNorm1d", "eps": 1e-5}, {"type": "ReLU"}, {"type": "Linear"}]'
)

# the reader option both state-dict formats declare (one --arch flag)
ARCH_OPTION = Option(
    "arch",
    str,
    metavar="ARCH",
    help="architecture of a weights-only state_dict: the activation after each Linear layer (relu,relu,softmax) "
    "or a JSON list of modules (text or a .json file)",
    also=(list, tuple),
)

# comma-form names (and JSON type aliases) -> (torch class, settings); None: no module
_ARCH_NAMES: Mapping[str, tuple[str, dict[str, Any]] | None] = {
    "identity": None,
    "linear": None,
    "none": None,
    "relu": ("ReLU", {}),
    "tanh": ("Tanh", {}),
    "sigmoid": ("Sigmoid", {}),
    "logistic": ("Sigmoid", {}),
    "softmax": ("Softmax", {"dim": -1}),
    "leaky_relu": ("LeakyReLU", {}),
    "elu": ("ELU", {}),
    "selu": ("SELU", {}),
    "gelu": ("GELU", {}),
    "gelu_tanh": ("GELU", {"approximate": "tanh"}),
    "silu": ("SiLU", {}),
    "swish": ("SiLU", {}),
    "softplus": ("Softplus", {}),
    "hardsigmoid": ("Hardsigmoid", {}),
    "hard_sigmoid": ("Hardsigmoid", {}),
    "relu6": ("ReLU6", {}),
    "hardswish": ("Hardswish", {}),
    "mish": ("Mish", {}),
    "softsign": ("Softsign", {}),
    "log_softmax": ("LogSoftmax", {"dim": -1}),
    "prelu": ("PReLU", {}),
}
# tensors of each module type: (name, required)
_TENSORS: Mapping[str, tuple[tuple[str, bool], ...]] = {
    "Linear": (("weight", True), ("bias", False)),
    "BatchNorm1d": (("weight", False), ("bias", False), ("running_mean", True), ("running_var", True)),
    "LayerNorm": (("weight", False), ("bias", False)),
    "PReLU": (("weight", True),),
}
# settings an arch entry may give; those the graph needs are kept (the rest, e.g. momentum, are accepted and dropped)
_SETTINGS: Mapping[str, tuple[str, ...]] = {
    "Linear": ("bias", "in_features", "out_features"),
    "LeakyReLU": ("negative_slope",),
    "ELU": ("alpha",),
    "GELU": ("approximate",),
    "Softplus": ("beta", "threshold"),
    "Softmax": ("dim",),
    "LogSoftmax": ("dim",),
    "Hardtanh": ("min_val", "max_val"),
    "BatchNorm1d": ("eps", "num_features", "momentum", "affine", "track_running_stats"),
    "LayerNorm": ("eps", "normalized_shape", "elementwise_affine", "bias"),
    "PReLU": ("num_parameters", "init"),
    "Dropout": ("p",),
}
_KEPT_SETTINGS = frozenset({"bias", "negative_slope", "alpha", "approximate", "beta", "threshold", "dim", "min_val", "max_val", "eps"})
_ARCH_TYPES = frozenset({"Linear"}) | LAYER_TYPES | ACTIVATION_TYPES | SKIPPED_TYPES
# torch's per-module counters, saved with BatchNorm: carried, never part of the graph
_IGNORED_TENSORS = ("num_batches_tracked",)


# -- writing ---------------------------------------------------------------------------


def state_dict_and_document(model: Model) -> tuple[OrderedDict[str, np.ndarray], str]:
    """The state dict of ``to_torch(model)`` as numpy arrays, and the model document (JSON) naming its tensors.

    Raises:
        UnsupportedModelError: the model has an activation torch has no standard module for.
    """
    tensors: OrderedDict[str, np.ndarray] = OrderedDict()
    references: dict[int, dict[str, Any]] = {}
    for index, module in enumerate(model_to_modules(model)):
        for local, array in module.tensors.items():
            tensors[f"{index}.{local}"] = np.asarray(array, order="C")  # keeps 0-d operands 0-d
        for array_id, (local, transposed) in module.sources.items():
            references[array_id] = {"tensor": f"{index}.{local}", "transposed": transposed}

    def encode(array: np.ndarray, key: str) -> dict[str, Any]:
        return references[id(array)]

    document = model_to_document(model, encode)
    from ..serde import json_default

    return tensors, json.dumps(document, default=json_default, separators=(",", ":"))


# -- reading nnconvert's own files ----------------------------------------------------------


def model_from_own_file(
    document_text: str,
    tensors: Mapping[str, np.ndarray],
    path: str | os.PathLike[str],
    format: str,
    *,
    task: Any = None,
    classes: Any = None,
) -> Model:
    """The model a file written by :func:`state_dict_and_document` holds, bit for bit
    (then the ``task``/``classes`` options, by the head policy).

    Raises:
        ReadError: the document is not valid, or names a tensor the file does not have.
        UsageError: ``task``/``classes`` do not fit the model.
    """
    try:
        document = json.loads(document_text)
    except (ValueError, RecursionError) as exc:
        raise ReadError(f"the {DOCUMENT_KEY} model document is not valid JSON: {exc}", path=path, format=format) from None

    def decode(encoded: Any, key: str) -> np.ndarray:
        name = encoded.get("tensor") if isinstance(encoded, dict) else None
        if not isinstance(name, str) or name not in tensors:
            raise ReadError(f"the model document's array {key} names tensor {name!r}, which the file does not hold", path=path, format=format)
        array = tensors[name]
        return np.ascontiguousarray(array.T) if encoded.get("transposed") is True else array

    model = model_from_document(document, decode, path=path, format=format)
    if task is None and classes is None:
        return model
    head = head_with_options(model.head, model.output_summary(), task, classes)
    try:
        return replace(model, head=head)
    except InvalidModelError as exc:
        raise UsageError(f"{path}: the task/classes options do not fit the model: {exc}") from None


# -- architectures ---------------------------------------------------------------------------


def parse_arch(arch: Any) -> list[TorchModule]:
    """The modules an ``arch`` value describes (without tensors).

    Args:
        arch: ``"relu,relu,softmax"``; a JSON list (text, or the path of a ``.json`` file);
            or the list itself (strings for activations after Linear layers are not accepted
            there: use ``{"type": ...}`` entries).

    Raises:
        UsageError: an unknown name or type, or settings a module does not take (named).
    """
    if isinstance(arch, (str, os.PathLike)):
        text = os.fspath(arch).strip()
        if text.endswith(".json") and Path(text).is_file():
            text = Path(text).read_text(encoding="utf-8")
        if text.startswith("["):
            try:
                arch = json.loads(text)
            except ValueError as exc:
                raise UsageError(f"arch is not valid JSON: {exc}") from None
        else:
            return _comma_arch(text)
    if not isinstance(arch, Sequence) or isinstance(arch, (str, bytes)) or not arch:
        raise UsageError(f"arch must be a non-empty list of modules or a comma-separated list of activations; {ARCH_HELP}")
    return [_json_entry(entry, index) for index, entry in enumerate(arch)]


def _comma_arch(text: str) -> list[TorchModule]:
    modules: list[TorchModule] = []
    for position, raw in enumerate(text.split(",")):
        name = raw.strip().lower()
        if name not in _ARCH_NAMES:
            raise UsageError(f"arch item {position + 1} {raw.strip()!r} is not an activation; known: {', '.join(sorted(_ARCH_NAMES))}")
        modules.append(TorchModule("Linear", {}))
        found = _ARCH_NAMES[name]
        if found is not None:
            modules.append(TorchModule(found[0], dict(found[1])))
    return modules


def _json_entry(entry: Any, index: int) -> TorchModule:
    where = f"arch entry {index}"
    if not isinstance(entry, Mapping) or not isinstance(entry.get("type"), str):
        raise UsageError(f'{where}: expected an object with a "type" (a torch.nn module name), got {entry!r}')
    wanted = entry["type"]
    by_lower = {name.lower(): name for name in _ARCH_TYPES}
    type_name = by_lower.get(wanted.lower())
    if type_name is None and wanted.lower() in _ARCH_NAMES and _ARCH_NAMES[wanted.lower()] is not None:
        type_name = _ARCH_NAMES[wanted.lower()][0]  # type: ignore[index]
    if type_name is None:
        raise UsageError(f"{where}: unknown module type {wanted!r}; supported: {', '.join(sorted(_ARCH_TYPES))}")
    settings = {k: v for k, v in entry.items() if k not in ("type", "key")}
    unknown = sorted(set(settings) - set(_SETTINGS.get(type_name, ())))
    if unknown:
        raise UsageError(f"{where} ({type_name}): unknown setting(s) {unknown}; it takes {list(_SETTINGS.get(type_name, ())) or 'none'}")
    key = entry.get("key")
    if key is not None and not isinstance(key, str):
        raise UsageError(f"{where}: key must be a string, got {key!r}")
    kept = {k: v for k, v in settings.items() if k in _KEPT_SETTINGS and not (type_name == "LayerNorm" and k == "bias")}
    return TorchModule(type_name, kept, path=key or "")


# -- reading foreign state dicts ------------------------------------------------------------


def model_from_state_dict(
    tensors: Mapping[str, np.ndarray],
    arch: Any,
    *,
    path: str | os.PathLike[str],
    format: str,
    task: Any = None,
    classes: Any = None,
) -> Model:
    """The model a weights-only state dict holds, given its architecture.

    Keys are ``<index>.<tensor>`` as an ``nn.Sequential`` names them (after a common
    prefix such as ``model.``, which is dropped), or ``<key>.<tensor>`` for JSON
    entries with a ``"key"``.

    Raises:
        UsageError: ``arch`` is missing or malformed.
        ReadError: the first key that does not fit the architecture: missing, of another
            shape (both shapes named), not floating-point, or left over.
        UnsupportedModelError: the architecture has modules the graph cannot hold.
    """
    if arch is None:
        raise UsageError(f"{path}: the file holds weights only (a state_dict, no architecture); {ARCH_HELP}")
    modules = parse_arch(arch)
    prefix = _common_prefix(tensors, modules)
    matched = _matched_modules(tensors, modules, prefix, path, format)
    metadata = Metadata(producer="unknown", source_framework="torch", properties={"arch": _arch_text(arch)})
    try:
        return modules_to_model(matched, task=task, classes=classes, metadata=metadata, what=f"{path} with arch {_arch_text(arch)!r}")
    except UnsupportedModelError as exc:
        raise UnsupportedModelError(str(exc).split("\n")[0], exc.problems) from None


def _arch_text(arch: Any) -> str:
    return arch if isinstance(arch, str) else json.dumps(arch, default=str)


def _keys_of(modules: Sequence[TorchModule]) -> list[str]:
    return [module.path or str(index) for index, module in enumerate(modules)]


def _common_prefix(tensors: Mapping[str, np.ndarray], modules: Sequence[TorchModule]) -> str:
    """``model.`` when every key starts with it and the arch's keys do not (a Sequential held by an attribute)."""
    keys = list(tensors)
    if not keys:
        return ""
    expected = set(_keys_of(modules))
    if any(key.split(".", 1)[0] in expected for key in keys):
        return ""
    prefix = os.path.commonprefix(keys)
    return prefix[: prefix.rfind(".") + 1] if "." in prefix else ""


def _matched_modules(
    tensors: Mapping[str, np.ndarray], modules: Sequence[TorchModule], prefix: str, path: Any, format: str
) -> list[TorchModule]:
    used: set[str] = set()
    matched: list[TorchModule] = []
    width: int | None = None
    for module, key in zip(modules, _keys_of(modules), strict=True):
        found: dict[str, np.ndarray] = {}
        for local, required in _TENSORS.get(module.type, ()):
            name = f"{prefix}{key}.{local}"
            if module.type == "Linear" and local == "bias":
                required = module.settings.get("bias") is True
                if module.settings.get("bias") is False:
                    continue
            if name not in tensors:
                if required:
                    raise ReadError(_missing(name, module, key, tensors), path=path, format=format)
                continue
            array = tensors[name]
            _check_tensor(name, array, module, local, width, found, path, format)
            found[local] = array
            used.add(name)
        used.update(f"{prefix}{key}.{ignored}" for ignored in _IGNORED_TENSORS)
        if module.type == "Linear":
            width = int(found["weight"].shape[0])
        elif width is None and module.type == "BatchNorm1d":
            width = int(found["running_mean"].shape[0])
        settings = {k: v for k, v in module.settings.items() if k != "bias"}
        matched.append(TorchModule(module.type, settings, found, path=f"{prefix}{key}"))
    left = [name for name in tensors if name not in used]
    if left:
        name = left[0]
        raise ReadError(
            f"key {name!r} (shape {tuple(np.shape(tensors[name]))}) is not used by the architecture, which expects "
            f"{_expected_summary(modules, prefix)}; {ARCH_HELP}",
            path=path,
            format=format,
        )
    return matched


def _missing(name: str, module: TorchModule, key: str, tensors: Mapping[str, np.ndarray]) -> str:
    near = [k for k in tensors if k.endswith("." + name.rsplit(".", 1)[1])][:6]
    return (
        f"the architecture puts a {module.type} at {key!r}, so the file should hold key {name!r}, but it does not "
        f"(keys of that kind in the file: {near or 'none'}); {ARCH_HELP}"
    )


def _expected_summary(modules: Sequence[TorchModule], prefix: str) -> str:
    keys = [f"{prefix}{key}.{local}" for module, key in zip(modules, _keys_of(modules), strict=True) for local, _ in _TENSORS.get(module.type, ())]
    return ", ".join(keys) if len(keys) <= 12 else ", ".join(keys[:12]) + ", ..."


def _check_tensor(
    name: str, array: np.ndarray, module: TorchModule, local: str, width: int | None, found: Mapping[str, np.ndarray], path: Any, format: str
) -> None:
    """A mismatch names the key, the file's shape and the one the architecture needs."""
    if array.dtype.kind != "f":
        raise ReadError(f"key {name!r} holds {array.dtype} values, expected floating-point weights", path=path, format=format)
    shape = tuple(array.shape)
    if module.type == "Linear" and local == "weight":
        if len(shape) != 2 or (width is not None and shape[1] != width):
            needed = "(out_features, in_features)" if width is None else f"(out_features, {width})"
            after = "" if width is None else f", a Linear after a stage of width {width}"
            raise ReadError(f"key {name!r} has shape {shape} in the file, but the architecture needs {needed}{after}", path=path, format=format)
        return
    if module.type == "Linear":  # the bias: one per output of its weight
        needed_shape: tuple[int, ...] | None = (int(found["weight"].shape[0]),)
    elif module.type == "PReLU" and shape == (1,):  # one slope shared by every unit
        return
    elif width is None and module.type == "BatchNorm1d" and found:  # normalization first: its first tensor says the width
        needed_shape = tuple(next(iter(found.values())).shape)
    else:
        needed_shape = None if width is None else (width,)
    if needed_shape is not None and shape != needed_shape:
        raise ReadError(f"key {name!r} has shape {shape} in the file, but the architecture needs {needed_shape} here", path=path, format=format)
