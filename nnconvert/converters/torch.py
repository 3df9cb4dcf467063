"""torch ``nn.Module`` <-> the model graph, directly (no ONNX export in between).

:func:`from_torch` reads ``nn.Sequential`` networks (nested too) and modules
whose ``forward`` is a plain chain of supported submodules. "Plain chain" is
established with ``torch.fx.symbolic_trace``: the traced graph must be one
input, then ``call_module`` nodes each taking only the previous node's
output, then the output. Anything else (functional calls such as ``F.relu``,
tensor methods, residual additions, several inputs) is refused: nnconvert
never guesses what Python code computes.

:func:`to_torch` builds a ``torch.nn.Sequential`` of standard modules (plus
nnconvert's ``Preprocessing`` for scaler steps) whose ``state_dict()`` keys are
those of hand-written code: ``0.weight``, ``0.bias``, ``2.weight``...
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import UnsupportedModelError, UsageError
from ..ir import Metadata, Model
from .torch_layout import (
    ACTIVATION_TYPES,
    LAYER_TYPES,
    OWN_MODULES,
    PREPROCESSING,
    SKIPPED_TYPES,
    TorchModule,
    model_to_modules,
    modules_to_model,
)

__all__ = ["from_torch", "to_torch", "SUPPORTED_MODULES"]

SUPPORTED_MODULES = frozenset({"Linear"}) | LAYER_TYPES | ACTIVATION_TYPES | SKIPPED_TYPES
# constructor keywords of each module read back from its attributes
_SETTINGS = {
    "Linear": ("in_features", "out_features"),
    "LeakyReLU": ("negative_slope",),
    "ELU": ("alpha",),
    "GELU": ("approximate",),
    "Softplus": ("beta", "threshold"),
    "Softmax": ("dim",),
    "LogSoftmax": ("dim",),
    "Hardtanh": ("min_val", "max_val"),
    "BatchNorm1d": ("eps",),
    "LayerNorm": ("normalized_shape", "eps"),
}


def from_torch(module: Any, *, task: Any = None, classes: Any = None) -> Model:
    """The model graph of a torch module.

    Args:
        module: an ``nn.Sequential`` (nested allowed) or a module whose ``forward`` is a plain
            chain of supported submodules (see the module docstring). Inference semantics:
            dropout is skipped and normalization uses its running statistics.
        task: binary, multiclass, multilabel, regression or raw; default: from the output
            activation (Softmax: multiclass, one Sigmoid output: binary, else raw), or the
            ``task`` attribute :func:`to_torch` sets.
        classes: the class labels in output order (default ``0..k-1``, or the ``classes`` attribute).

    Returns:
        The model graph, in the module's dtype.

    Raises:
        UnsupportedModelError: one error listing every unsupported submodule by its path.
        UsageError: ``module`` is not a torch module, or ``task``/``classes`` do not fit.
    """
    import torch

    if not isinstance(module, torch.nn.Module):
        raise UsageError(f"from_torch takes a torch.nn.Module, got {type(module).__module__}.{type(module).__qualname__}")
    problems: list[str] = []
    chain = _chain(module, "", problems)
    if problems:
        raise UnsupportedModelError(
            f"the {type(module).__name__} holds modules nnconvert cannot convert "
            f"(supported: {', '.join(sorted(SUPPORTED_MODULES))}, as nn.Sequential or a plain chain)",
            problems,
        )
    entries = [_entry(path, leaf) for path, leaf in chain]
    metadata = Metadata(
        producer="nnconvert",
        source_framework="torch",
        source_class=f"{type(module).__module__}.{type(module).__qualname__}",
        source_version=torch.__version__,
    )
    if task is None and classes is None:
        task, classes = getattr(module, "task", None), getattr(module, "classes", None)
    feature_names = getattr(module, "feature_names", None)
    return modules_to_model(
        entries,
        task=task,
        classes=classes,
        metadata=metadata,
        feature_names=None if feature_names is None else list(feature_names),
        what=f"the {type(module).__name__}",
    )


def _type_name(module: Any) -> str:
    cls = type(module)
    if cls.__module__.startswith("torch.nn.modules.") or cls.__module__ == "nnconvert.converters.torch_modules":
        return cls.__name__
    return ""


def _chain(module: Any, path: str, problems: list[str]) -> list[tuple[str, Any]]:
    """The leaf modules ``module`` applies, in order, with their paths; problems recorded by path."""
    import torch

    type_name = _type_name(module)
    if isinstance(module, torch.nn.Sequential) and type(module).forward is torch.nn.Sequential.forward:
        return [leaf for name, child in module.named_children() for leaf in _chain(child, _join(path, name), problems)]
    if type_name == "Flatten" and module.start_dim != 1:
        problems.append(f"{path or '(root)'} (Flatten): start_dim={module.start_dim} would flatten the batch dimension")
        return []
    if type_name in SUPPORTED_MODULES or type_name in OWN_MODULES:
        return [(path, module)]
    if type_name:  # a torch.nn module we do not support (Conv1d, MultiheadAttention...)
        problems.append(f"{path or '(root)'} ({type_name}): not a supported module")
        return []
    called = _traced_chain(module, path, problems)
    return [leaf for name in called for leaf in _chain(module.get_submodule(name), _join(path, name), problems)]


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _traced_chain(module: Any, path: str, problems: list[str]) -> list[str]:
    """Names of the submodules a custom module's forward calls, when it is a plain chain of them."""
    import torch.fx

    class ChildrenAsLeaves(torch.fx.Tracer):
        # stop at the direct children: each is then checked (and named) on its own
        def is_leaf_module(self, m: Any, module_qualified_name: str) -> bool:
            return True

    where = f"{path or '(root)'} ({type(module).__name__})"
    try:
        graph = ChildrenAsLeaves().trace(module)
    except Exception as exc:  # noqa: BLE001 - any tracing failure means "not a plain chain"
        problems.append(f"{where}: its forward cannot be traced as a chain of submodules ({type(exc).__name__}: {exc})")
        return []
    nodes = list(graph.nodes)
    called: list[str] = []
    previous = nodes[0] if nodes else None
    ok = bool(nodes) and nodes[0].op == "placeholder" and nodes[-1].op == "output"
    for node in nodes[1:-1]:
        if node.op != "call_module" or list(node.args) != [previous] or node.kwargs:
            ok = False
            what = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
            problems.append(f"{where}: its forward does {node.op} {what!r}, not only a chain of submodule calls")
            return []
        called.append(str(node.target))
        previous = node
    if not ok or list(nodes[-1].args) != [previous]:
        problems.append(f"{where}: its forward is not a single chain from its one input to its output")
        return []
    return called


def _entry(path: str, module: Any) -> TorchModule:
    type_name = _type_name(module)
    if type_name == PREPROCESSING:
        tensors = {f"op{i}": _array(getattr(module, f"op{i}")) for i in range(len(module.ops))}
        settings = {"ops": list(module.ops), "kind": module.kind, "name": module.step_name, "params": dict(module.params)}
        return TorchModule(PREPROCESSING, settings, tensors, path)
    settings = {key: getattr(module, key) for key in _SETTINGS.get(type_name, ())}
    tensors = {name: _array(tensor) for name, tensor in module.named_parameters(recurse=False)}
    tensors.update({name: _array(tensor) for name, tensor in module.named_buffers(recurse=False) if tensor is not None})
    return TorchModule(type_name, settings, tensors, path)


def _array(tensor: Any) -> np.ndarray:
    return tensor.detach().cpu().numpy().copy()


# -- model graph -> torch --------------------------------------------------------


def to_torch(model: Model) -> Any:
    """A ``torch.nn.Sequential`` computing ``model`` in the model's dtype, in eval mode.

    The modules are standard ``torch.nn`` ones (Linear, ReLU, Softmax...), except
    preprocessing steps and the ``exp`` output of Poisson regressors, which become
    ``nnconvert.converters.torch_modules.Preprocessing`` and ``.Exp``.
    The ``state_dict()`` keys are those of the same network written by hand
    (``0.weight``, ``0.bias``, ``2.weight``...). The head is kept as attributes:
    ``task`` (a string), ``classes`` (a numpy array, or None) and ``feature_names``
    (a list, or None); :func:`from_torch` reads them back.

    Raises:
        UnsupportedModelError: an activation or step without a torch module (all listed).
    """
    import torch

    modules = [_torch_module(entry) for entry in model_to_modules(model)]
    network = torch.nn.Sequential(*modules)
    network.eval()
    head = {
        "task": model.task.value,
        "classes": None if model.classes is None else np.array(model.classes),
        "feature_names": None if model.input.feature_names is None else list(model.input.feature_names),
    }
    for attribute, value in head.items():  # plain attributes: torch keeps them on the module, not in state_dict()
        setattr(network, attribute, value)
    return network


def build_modules(entries: Sequence[TorchModule]) -> Any:
    """A Sequential of the given entries, tensors loaded (used by the torch checkpoint format too)."""
    import torch

    return torch.nn.Sequential(*[_torch_module(entry) for entry in entries])


def _torch_module(entry: TorchModule) -> Any:
    import torch

    tensors = {name: torch.from_numpy(np.array(array)) for name, array in entry.tensors.items()}
    if entry.type == "Exp":
        from .torch_modules import Exp

        return Exp()
    if entry.type == PREPROCESSING:
        from .torch_modules import Preprocessing

        settings = entry.settings
        operands = [tensors[f"op{i}"] for i in range(len(settings["ops"]))]
        return Preprocessing(settings["ops"], operands, settings.get("kind", "affine"), settings.get("name", ""), settings.get("params"))
    module = getattr(torch.nn, entry.type)(**entry.settings)
    dtype = next((t.dtype for t in tensors.values() if t.is_floating_point()), None)
    if dtype is not None:
        module = module.to(dtype)
    if tensors:
        module.load_state_dict(tensors, strict=True)
    return module
