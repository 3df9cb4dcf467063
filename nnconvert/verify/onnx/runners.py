"""ONNX runners: the FILE run by onnxruntime and by onnx's reference evaluator.

Outputs are named by what they hold: skl2onnx/nnconvert's ``output_probability``
(a tensor, or ZipMap's list of dicts turned back into ``[N, C]``),
``output_label`` and ``variable``. Per-layer activations come from a copy of
the graph with the hidden tensors added as outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import NnconvertError, ReadError, UnsupportedModelError
from ..runner_base import Runner, as_2d

__all__ = ["OnnxRuntimeRunner", "ReferenceEvaluatorRunner", "output_names_map", "normalise_outputs", "layer_tensors"]

RUN_BLOCK_ROWS = 8192  # rows per onnxruntime call when the rows must be cast (float64 data, float32 model)
_ONNX_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16}
_LINEAR_OPS = {"Gemm", "MatMul"}
_LAYER_TAIL_OPS = {
    "Relu", "Tanh", "Sigmoid", "Softmax", "Exp", "LeakyRelu", "Elu", "Selu", "Softplus", "Gelu",
    "HardSigmoid", "Identity",
}  # fmt: skip


def output_names_map(names: list[str]) -> dict[str, str]:
    """ONNX output name -> compared name (probabilities, labels, values, or the name itself)."""
    mapping: dict[str, str] = {}
    for name in names:
        lowered = name.lower()
        if "label" in lowered:
            mapping[name] = "labels"
        elif "prob" in lowered:
            mapping[name] = "probabilities"
        elif lowered == "variable":
            mapping[name] = "values"
    rest = [n for n in names if n not in mapping]
    if len(rest) == 1 and not {"probabilities", "values"} & set(mapping.values()):
        mapping[rest[0]] = "values"
    for name in rest:
        mapping.setdefault(name, name)
    return mapping


def _zipmap_to_array(rows: list[dict[Any, float]]) -> np.ndarray:
    # dicts keep ZipMap's classlabels order, the column order of the probabilities
    return np.array([list(row.values()) for row in rows], dtype=np.float32)


def normalise_outputs(names: list[str], values: list[Any], mapping: dict[str, str]) -> dict[str, np.ndarray]:
    """Named arrays: ZipMap lists become ``[N, C]``, values/probabilities become 2-D."""
    outputs: dict[str, np.ndarray] = {}
    for name, value in zip(names, values, strict=True):
        key = mapping[name]
        if isinstance(value, list):
            value = _zipmap_to_array(value) if value and isinstance(value[0], dict) else np.asarray(value)
        value = np.asarray(value)
        outputs[key] = value if key == "labels" else as_2d(value)
    return outputs


def layer_tensors(graph: Any) -> list[str] | None:
    """Tensor names matching ``Model.forward(return_intermediates=True)``, or None.

    Layer ``k``'s activated output is the data input of linear node ``k + 1``; the
    last layer's is found by following its bias Add and activation.
    """
    constants = {init.name for init in graph.initializer}
    constants |= {out for node in graph.node if node.op_type == "Constant" for out in node.output}
    linear = [n for n in graph.node if n.op_type in _LINEAR_OPS and len(n.input) > 1 and n.input[1] in constants]
    if not linear:
        return None
    names = [node.input[0] for node in linear]
    names.append(_layer_tail(graph, linear[-1].output[0], constants))
    return names


def _layer_tail(graph: Any, tensor: str, constants: set[str]) -> str:
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    while len(consumers.get(tensor, [])) == 1:
        node = consumers[tensor][0]
        is_bias = node.op_type == "Add" and any(name in constants for name in node.input if name != tensor)
        if node.op_type not in _LAYER_TAIL_OPS and not is_bias:
            break
        tensor = node.output[0]
    return tensor


class _OnnxRunner(Runner):
    """What both ONNX runners share: the parsed file, its input and its outputs."""

    path: Path  # always a file, unlike Runner.path

    def __init__(self, path: Path):
        import onnx

        self.path = Path(path)
        self.description = str(path)
        try:
            self.raw = self.path.read_bytes()
            self.proto = onnx.load_model_from_string(self.raw)
        except OSError as exc:
            raise ReadError(f"cannot read: {exc}", path=path, format="onnx") from exc
        except Exception as exc:  # noqa: BLE001 - protobuf errors are a bad input
            raise ReadError(f"not a valid ONNX file: {type(exc).__name__}: {exc}", path=path, format="onnx") from exc
        # external data resolved against the model's own folder with load's checks, never the working directory
        from ...formats.onnx import inline_external_data

        if inline_external_data(self.proto, self.path):
            self.raw = self.proto.SerializeToString()
        graph = self.proto.graph
        constants = {init.name for init in graph.initializer}
        inputs = [i for i in graph.input if i.name not in constants]
        if len(inputs) != 1:
            raise UnsupportedModelError(
                f"{path}: verify runs models with one input; the graph has {len(inputs)}: {[i.name for i in inputs]}"
            )
        self.input_name = inputs[0].name
        self.output_order = [o.name for o in graph.output]
        self.output_map = output_names_map(self.output_order)
        self.dtype, self.n_features = _input_type(inputs[0], path)
        self.fixed_batch = _fixed_batch(inputs[0])

    def _cast(self, X: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(X, dtype=self.dtype)

    def input_range(self) -> tuple[np.ndarray, np.ndarray, str] | None:
        """The range the graph's preprocessing (a Scaler, constant Sub/Div...) implies, when nnconvert reads the graph."""
        from ...formats.onnx import read
        from ...input_range import preprocessing_input_range

        try:
            model = read(self.path)
        except NnconvertError:
            return None  # a graph that is not an MLP nnconvert reads: the default range
        return preprocessing_input_range(model)


def _input_type(value_info: Any, path: Path) -> tuple[np.dtype, int | None]:
    from onnx import helper

    tensor_type = value_info.type.tensor_type
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
    except (KeyError, ValueError, TypeError) as exc:
        raise UnsupportedModelError(f"{path}: input {value_info.name!r} has an unsupported element type") from exc
    dims = tensor_type.shape.dim
    n_features = dims[1].dim_value if len(dims) == 2 and dims[1].HasField("dim_value") else None
    return dtype, n_features


def _fixed_batch(value_info: Any) -> int | None:
    """The batch size the graph was exported for, when its input's first dimension is a number."""
    dims = value_info.type.tensor_type.shape.dim
    return dims[0].dim_value if len(dims) == 2 and dims[0].HasField("dim_value") and dims[0].dim_value > 0 else None


def in_fixed_batches(X: np.ndarray, batch: int, run: Any) -> list[Any]:
    """``run`` on ``X`` in blocks of exactly ``batch`` rows (the last padded with copies of its last row).

    Returns each block's result with the padding rows still in; the caller trims them. A graph
    exported with a fixed batch (tf2onnx or torch.onnx without dynamic axes) accepts no other.
    """
    results = []
    for start in range(0, len(X), batch):
        block = X[start : start + batch]
        if len(block) < batch:
            block = np.concatenate([block, np.repeat(block[-1:], batch - len(block), axis=0)])
        results.append(run(block))
    return results


class OnnxRuntimeRunner(_OnnxRunner):
    """The ONNX file run by onnxruntime on CPU (graph optimisations on by default)."""

    kind = "onnxruntime"

    def __init__(self, path: Path, *, optimizations: bool = True):
        super().__init__(path)
        self.optimizations = optimizations
        self.session = self._session(self.raw)
        self._layer_session: Any = None

    def _session(self, model_bytes: bytes) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # shape-merge warnings of other producers' graphs are noise here
        if not self.optimizations:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own errors carry the node at fault
            raise ReadError(f"onnxruntime cannot load the model: {exc}", path=self.path, format="onnx") from exc

    def info(self) -> dict[str, Any]:
        return {**super().info(), "graph_optimizations": self.optimizations}

    def run(self, X: np.ndarray) -> dict[str, np.ndarray]:
        needs_copy = X.dtype != self.dtype or not X.flags.c_contiguous
        if not needs_copy or len(X) <= RUN_BLOCK_ROWS:
            return self._run_block(self._cast(X))
        # cast block by block into one reused buffer: no full-size copy (313 MB for 100,000 x 784
        # float64 rows), whose page faults cost more than the cast; each row's result is the same
        buffer = np.empty((RUN_BLOCK_ROWS, X.shape[1]), dtype=self.dtype)
        parts = []
        for start in range(0, len(X), RUN_BLOCK_ROWS):
            rows = X[start : start + RUN_BLOCK_ROWS]
            block = buffer[: len(rows)]
            np.copyto(block, rows, casting="unsafe")
            parts.append(self._run_block(block))
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}

    def _run_block(self, X: np.ndarray) -> dict[str, np.ndarray]:
        if self.fixed_batch is not None and len(X) != self.fixed_batch and len(X):
            parts = in_fixed_batches(X, self.fixed_batch, self._run_block)
            return {name: np.concatenate([part[name] for part in parts])[: len(X)] for name in parts[0]}
        values = self.session.run(self.output_order, {self.input_name: X})
        return normalise_outputs(self.output_order, values, self.output_map)

    def intermediates(self, X: np.ndarray) -> list[tuple[str, np.ndarray]] | None:
        names = layer_tensors(self.proto.graph)
        if names is None:
            return None
        if self._layer_session is None:
            self._layer_session = self._session(_with_outputs(self.proto, names, self.input_name).SerializeToString())
        x = self._cast(X)
        wanted = [n for n in dict.fromkeys(names) if n != self.input_name]
        if self.fixed_batch is not None and len(x) != self.fixed_batch and len(x):
            parts = in_fixed_batches(x, self.fixed_batch, lambda block: self._layer_session.run(wanted, {self.input_name: block}))
            values = [np.concatenate([part[i] for part in parts])[: len(x)] for i in range(len(wanted))]
        else:
            values = self._layer_session.run(wanted, {self.input_name: x})
        arrays = dict(zip(wanted, values, strict=True))
        arrays[self.input_name] = x
        return [(name, np.asarray(arrays[name])) for name in names]


def _with_outputs(proto: Any, names: list[str], input_name: str) -> Any:
    """A copy of the model whose graph also outputs ``names``."""
    import onnx
    from onnx import helper

    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    elem_types = {}
    try:
        inferred = onnx.shape_inference.infer_shapes(copy)
        elem_types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    except Exception:  # noqa: BLE001 - inference is only a hint; the input's type is the fallback
        pass
    default = next(i.type.tensor_type.elem_type for i in copy.graph.input if i.name == input_name)
    existing = {o.name for o in copy.graph.output} | {input_name}
    for name in dict.fromkeys(names):
        if name not in existing:
            copy.graph.output.append(helper.make_tensor_value_info(name, elem_types.get(name) or default, None))
    return copy


class ReferenceEvaluatorRunner(_OnnxRunner):
    """The ONNX file run by ``onnx.reference.ReferenceEvaluator``: an independent implementation."""

    kind = "onnx-reference"

    def __init__(self, path: Path):
        from onnx.reference import ReferenceEvaluator

        super().__init__(path)
        try:
            self.evaluator = ReferenceEvaluator(self.proto)
        except Exception as exc:  # noqa: BLE001 - an operator it lacks is reported, not raised raw
            raise UnsupportedModelError(f"{path}: onnx's reference evaluator cannot run the model: {exc}") from exc

    def run(self, X: np.ndarray) -> dict[str, np.ndarray]:
        values = self.evaluator.run(self.output_order, {self.input_name: self._cast(X)})
        # run's annotation covers intermediate=True too (a dict); without it the outputs come as a list
        if not isinstance(values, list):
            raise TypeError(f"onnx's ReferenceEvaluator.run returned a {type(values).__name__}, expected a list")
        return normalise_outputs(self.output_order, values, self.output_map)
