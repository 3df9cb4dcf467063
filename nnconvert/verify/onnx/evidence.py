"""Evidence that travels with an ONNX file: the ONNX backend-test data layout.

``model.onnx`` gets ``test_data_set_0/input_0.pb`` and ``output_<i>.pb`` (one per
graph output, in the graph's order) next to it: TensorProto files (a
SequenceProto of maps for a ZipMap output), as onnx's backend tests and
onnxruntime's ``onnx_test_runner`` read them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ReadError, UsageError, WriteError

__all__ = ["write_test_data", "read_test_data", "test_data_dirs", "emit_test_data"]


def test_data_dirs(onnx_path: str | Path) -> list[Path]:
    """The ``test_data_set_<n>`` folders next to ``onnx_path``, in order."""
    folder = Path(onnx_path).parent
    found = [p for p in folder.glob("test_data_set_*") if p.is_dir() and p.name.rsplit("_", 1)[1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.rsplit("_", 1)[1]))


def _graph(onnx_path: Path) -> Any:
    import onnx

    try:
        return onnx.load(str(onnx_path), load_external_data=False).graph
    except Exception as exc:  # noqa: BLE001 - protobuf errors are a bad input
        raise ReadError(f"not a valid ONNX file: {exc}", path=onnx_path, format="onnx") from exc


def write_test_data(
    onnx_path: str | Path,
    inputs: np.ndarray | Sequence[np.ndarray],
    outputs: Mapping[str, Any] | Sequence[Any],
    *,
    index: int = 0,
) -> Path:
    """Write one test data set next to an ONNX file.

    Args:
        onnx_path: the model; the folder ``test_data_set_<index>`` is created beside it.
        inputs: the input array (or one per graph input), cast to each input's element type.
        outputs: the expected outputs, by graph output name or in the graph's output order.
        index: the data set number.

    Returns:
        The data set folder.

    Raises:
        UsageError: outputs missing for a graph output, or the wrong number of inputs.
        WriteError: the files could not be written.
    """
    from onnx import helper

    onnx_path = Path(onnx_path)
    graph = _graph(onnx_path)
    constants = {init.name for init in graph.initializer}
    graph_inputs = [i for i in graph.input if i.name not in constants]
    arrays = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
    if len(arrays) != len(graph_inputs):
        raise UsageError(f"{onnx_path} has {len(graph_inputs)} inputs but {len(arrays)} input arrays were given")
    by_name = _outputs_by_name(graph, outputs, onnx_path)
    folder = onnx_path.parent / f"test_data_set_{index}"
    try:
        folder.mkdir(exist_ok=True)
        for i, (spec, array) in enumerate(zip(graph_inputs, arrays, strict=True)):
            dtype = helper.tensor_dtype_to_np_dtype(spec.type.tensor_type.elem_type)
            _write_proto(folder / f"input_{i}.pb", _tensor(np.asarray(array, dtype=dtype), spec.name))
        for i, spec in enumerate(graph.output):
            _write_proto(folder / f"output_{i}.pb", _output_proto(spec, by_name[spec.name]))
    except OSError as exc:
        raise WriteError(f"{folder}: cannot write the test data: {exc}") from exc
    return folder


def _outputs_by_name(graph: Any, outputs: Mapping[str, Any] | Sequence[Any], path: Path) -> dict[str, Any]:
    names = [o.name for o in graph.output]
    if isinstance(outputs, Mapping):
        missing = [n for n in names if n not in outputs]
        if missing:
            raise UsageError(f"{path}: no expected values for graph output(s) {missing}; got {sorted(outputs)}")
        return dict(outputs)
    if len(outputs) != len(names):
        raise UsageError(f"{path} has {len(names)} outputs {names} but {len(outputs)} arrays were given")
    return dict(zip(names, outputs, strict=True))


def _tensor(array: np.ndarray, name: str) -> Any:
    from onnx import numpy_helper

    if array.dtype.kind == "U":
        array = array.astype(object)
    return numpy_helper.from_array(array, name)


def _output_proto(spec: Any, value: Any) -> Any:
    """A TensorProto, or for ZipMap's sequence of maps a SequenceProto of MapProtos."""
    from onnx import helper, numpy_helper

    if spec.type.HasField("sequence_type"):
        if not isinstance(value, list):
            raise UsageError(f"output {spec.name!r} is a sequence of maps (ZipMap): pass its value as a list of dicts")
        import onnx

        sequence = onnx.SequenceProto(name=spec.name, elem_type=onnx.SequenceProto.MAP)
        sequence.map_values.extend(numpy_helper.from_dict({k: np.float32(v) for k, v in row.items()}) for row in value)
        return sequence
    elem_type = spec.type.tensor_type.elem_type
    array = np.asarray(value)
    if array.dtype.kind not in "UOS":
        array = array.astype(helper.tensor_dtype_to_np_dtype(elem_type))
    return _tensor(array, spec.name)


def _write_proto(path: Path, proto: Any) -> None:
    path.write_bytes(proto.SerializeToString())


def read_test_data(onnx_path: str | Path) -> list[tuple[str, np.ndarray, dict[str, Any]]]:
    """Every data set next to ``onnx_path``: (folder name, input, {output name: value}).

    Raises:
        ReadError: no data set, or a file that is not a valid proto.
    """
    import onnx
    from onnx import numpy_helper

    onnx_path = Path(onnx_path)
    folders = test_data_dirs(onnx_path)
    if not folders:
        raise UsageError(
            f"{onnx_path}: no reference was given and there is no test_data_set_0 next to the model; "
            "give a reference model, or write evidence with `nnconvert convert --emit-test-data`"
        )
    graph = _graph(onnx_path)
    sets = []
    for folder in folders:
        input_file = folder / "input_0.pb"
        X = numpy_helper.to_array(_read_proto(input_file, onnx.TensorProto()))
        outputs: dict[str, np.ndarray | list[Any]] = {}
        for i, spec in enumerate(graph.output):
            path = folder / f"output_{i}.pb"
            if spec.type.HasField("sequence_type"):
                outputs[spec.name] = list(numpy_helper.to_list(_read_proto(path, onnx.SequenceProto())))
            else:
                outputs[spec.name] = numpy_helper.to_array(_read_proto(path, onnx.TensorProto()))
        sets.append((folder.name, X, outputs))
    return sets


def _read_proto(path: Path, proto: Any) -> Any:
    try:
        proto.ParseFromString(path.read_bytes())
    except OSError as exc:
        raise ReadError(f"cannot read the test data: {exc}", path=path) from exc
    except Exception as exc:  # noqa: BLE001 - a corrupt proto is a bad input
        raise ReadError(f"not a valid {type(proto).__name__}: {exc}", path=path) from exc
    return proto


# -- convert --emit-test-data ---------------------------------------------------


def emit_test_data(onnx_path: Path, report: Any) -> list[Path]:
    """Write each input set with the SOURCE model's outputs as ``test_data_set_<n>``."""
    graph = _graph(onnx_path)
    folders = []
    for index, entry in enumerate(report.input_sets):
        outputs = {spec.name: _expected(spec, entry["reference"], graph) for spec in graph.output}
        folders.append(write_test_data(onnx_path, entry["X"], outputs, index=index))
    return folders


def _expected(spec: Any, reference: dict[str, Any], graph: Any) -> Any:
    """The reference's value for one graph output, in that output's form."""
    from .runners import output_names_map

    key = output_names_map([o.name for o in graph.output])[spec.name]
    if key not in reference:
        raise UsageError(f"the source model has no {key!r} output to store as {spec.name!r}")
    value = reference[key]
    if spec.type.HasField("sequence_type"):
        classes = _zipmap_classes(graph, spec.name)
        return [dict(zip(classes, row.tolist(), strict=True)) for row in np.asarray(value)]
    if key == "values" and len(spec.type.tensor_type.shape.dim) == 1:
        return np.asarray(value).reshape(-1)
    return value


def _zipmap_classes(graph: Any, output: str) -> list[Any]:
    node = next(n for n in graph.node if n.op_type == "ZipMap" and output in n.output)
    for attribute in node.attribute:
        if attribute.name == "classlabels_int64s":
            return list(attribute.ints)
        if attribute.name == "classlabels_strings":
            return [s.decode() for s in attribute.strings]
    raise UsageError(f"the ZipMap producing {output!r} has no class labels")
