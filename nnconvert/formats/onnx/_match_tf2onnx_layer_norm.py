"""tf2onnx's Keras LayerNormalization, read as the IR's layer norm.

tf2onnx 1.17 (opsets up to 18) never writes ONNX's LayerNormalization for it: it converts what
tf.keras computes, which is one of two subgraphs (``x`` is ``[N, F]``):

- **fused** (``epsilon >= 1.001e-5``, Keras' default 1e-3): tf's fused batch norm over the rows of
  ``x`` seen as NCHW ``r = Reshape(x, [1, -1, F, 1])``, channel n = sample n::

      mean = ReduceMean(r, axes [0, 2, 3], keepdims 1)
      var = ReduceSumSquare(r - mean, axes [0, 2, 3], keepdims 0) / ReduceProd(Gather(Shape(r), [0, 2, 3]))
      n = Unsqueeze(ReduceProd(Slice(Shape(x), 0:1)))              # the run-time batch size
      y = BatchNormalization(r, Expand(1, n), Expand(0, n), Squeeze(mean, [0, 2, 3]), var, epsilon)
      out = Reshape(y, Shape(x)) [* gamma] [+ beta]

  Exported with a fixed batch size B, tf2onnx folds the shapes: ``[1, B, F, 1]``, ones and zeros of
  length B, and ``[B, F]`` for the way back are constants.

- **moments** (smaller epsilon, 1e-5 included): ``tf.nn.moments`` + ``tf.nn.batch_normalization``::

      mean = ReduceMean(x, [-1]); var = ReduceMean((x - mean) * (x - mean), [-1])
      m = Reciprocal(Sqrt(var + epsilon)) [* gamma]
      out = x * m + (beta - mean * m)        # without beta: x * m + Neg(mean) * m

Both are :class:`~nnconvert.ir.LayerNormLayer`'s ``(x - mean) / sqrt(var + epsilon) * gamma + beta``
over the features (biased variance, epsilon inside the root; the moments form is its very arithmetic).
Once a subgraph's start is seen (a Reshape feeding a BatchNormalization; ReduceMean + Sub + Mul on the
same tensor), every node's op, operands, axes, attributes and constants are checked, and a deviation is
refused naming the node: a near-miss is never read as layer norm.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ...ir import LayerNormLayer
from ._graph_index import GraphIndex
from ._tensors import FLOAT_TYPES

_INT_TYPES = (6, 7)  # INT32, INT64: tf2onnx casts shapes between them, losslessly for any real shape
_ROW_AXES = [0, 2, 3]  # of [1, N, F, 1]: everything but the sample


class _Mismatch(Exception):
    """A node of a recognised tf2onnx layer norm that does not compute what the pattern needs."""

    def __init__(self, index: int, reason: str):
        super().__init__(reason)
        self.index = index
        self.reason = reason


class _Found(NamedTuple):
    nodes: list[int]
    epsilon: float
    scale: np.ndarray | None
    offset: np.ndarray | None
    out: str
    name: str


class Tf2onnxLayerNormPatterns(GraphIndex):
    """The two subgraphs tf2onnx writes for a Keras LayerNormalization."""

    def _tf2onnx_layer_norm(self, cur: str, width: int) -> tuple[LayerNormLayer | None, str]:
        """(layer, its output) when ``cur`` starts one of the subgraphs; (None, cur) when it starts neither,
        or when it deviates (the deviating node is then a problem)."""
        if cur in self.output_names:
            return None, cur
        readers = self._unused_readers(cur)
        ops = sorted(self.nodes[i].op_type for i in readers)
        try:
            if ops in (["Reshape"], ["Reshape", "Shape"]) and self._feeds_batch_norm(readers):
                found = self._fused(cur, width, readers)
            elif ops == ["Mul", "ReduceMean", "Sub"] and self._centres(cur, readers):
                found = self._moments(cur, width, readers)
            else:
                return None, cur
        except _Mismatch as mismatch:
            self.problem(mismatch.index, f"{mismatch.reason}; not read as tf2onnx's LayerNormalization")
            return None, cur
        self.used.update(found.nodes)
        layer = LayerNormLayer(found.epsilon, _vector(found.scale, width), _vector(found.offset, width), name=found.name)
        return layer, found.out

    # -- the two forms ---------------------------------------------------------------------------

    def _feeds_batch_norm(self, readers: list[int]) -> bool:
        reshape = next(i for i in readers if self.nodes[i].op_type == "Reshape")
        out = self.nodes[reshape].output[0]
        return any(self.nodes[i].op_type == "BatchNormalization" and self._input(i, 0) == out
                   for i in self._unused_readers(out))

    def _centres(self, cur: str, readers: list[int]) -> bool:
        mean = next(i for i in readers if self.nodes[i].op_type == "ReduceMean")
        sub = next(i for i in readers if self.nodes[i].op_type == "Sub")
        return list(self.nodes[sub].input) == [cur, self.nodes[mean].output[0]]

    def _fused(self, x: str, width: int, readers: list[int]) -> _Found:
        shape_x = next((i for i in readers if self.nodes[i].op_type == "Shape"), None)
        reshape = next(i for i in readers if self.nodes[i].op_type == "Reshape")
        if shape_x is not None:
            self._whole_shape(shape_x)
        batch = self._rows_as_channels(reshape, x, width)
        r = self.nodes[reshape].output[0]
        by_op = self._readers_by_op(r, ["BatchNormalization", "ReduceMean", "Shape", "Sub"], reshape)
        bn, mean, shape_r, sub = by_op["BatchNormalization"], by_op["ReduceMean"], by_op["Shape"], by_op["Sub"]
        self._whole_shape(shape_r)
        self._reduction(mean, _ROW_AXES, keepdims=1, ndim=4)
        mean_out = self.nodes[mean].output[0]
        self._operands(sub, [r, mean_out], "subtracts the mean from the reshaped input")
        square_sum = self._sole_reader(self.nodes[sub].output[0], "ReduceSumSquare", sub)
        self._reduction(square_sum, _ROW_AXES, keepdims=0, ndim=4)
        div = self._sole_reader(self.nodes[square_sum].output[0], "Div", square_sum)
        if self._input(div, 0) != self.nodes[square_sum].output[0]:
            raise _Mismatch(div, "does not divide the sum of squares by the element count")
        count_cast = self._producer_op(self._input(div, 1), "Cast", div)
        if self.attrs(count_cast).get("to") not in FLOAT_TYPES:
            raise _Mismatch(count_cast, "does not cast the element count to float")
        count = self._producer_op(self._input(count_cast, 0), "ReduceProd", count_cast)
        self._reduction(count, [0], keepdims=0, ndim=1)
        gather = self._producer_op(self._input(count, 0), "Gather", count)
        if self.attrs(gather).get("axis", 0) != 0 or not self._constant_is(self._input(gather, 1), _ROW_AXES):
            raise _Mismatch(gather, f"does not pick dimensions {_ROW_AXES} of the reshaped input's shape (the features)")
        if self._input(gather, 0) != self.nodes[shape_r].output[0]:
            raise _Mismatch(gather, "does not read the reshaped input's shape")
        self._check_batch_norm(bn, r, self.nodes[div].output[0])
        squeeze = self._producer_op(self._input(bn, 3), "Squeeze", bn)
        if self._input(squeeze, 0) != mean_out or self._axes(squeeze, ndim=4) != _ROW_AXES:
            raise _Mismatch(squeeze, f"is not the per-sample mean squeezed over axes {_ROW_AXES}")
        fills = [*self._filled(bn, 1, 1.0, batch, shape_x), *self._filled(bn, 2, 0.0, batch, shape_x)]
        back = self._sole_reader(self.nodes[bn].output[0], "Reshape", bn)
        if self._input(back, 0) != self.nodes[bn].output[0]:
            raise _Mismatch(back, "does not reshape the batch norm's result")
        back_shape = self._back_shape(back, batch, width, shape_x)
        out = self.nodes[back].output[0]
        chain = [reshape, bn, mean, shape_r, sub, square_sum, div, count_cast, count, gather, squeeze, back, *back_shape, *fills]
        if shape_x is not None:
            chain.append(shape_x)
        scale, offset, out, affine = self._gamma_beta(out, width)
        epsilon = float(self.attrs(bn).get("epsilon", 1e-5))
        return _Found([*chain, *affine], epsilon, scale, offset, out, self.nodes[bn].name or out)

    def _moments(self, x: str, width: int, readers: list[int]) -> _Found:
        mean = next(i for i in readers if self.nodes[i].op_type == "ReduceMean")
        sub = next(i for i in readers if self.nodes[i].op_type == "Sub")
        mul_x = next(i for i in readers if self.nodes[i].op_type == "Mul")
        self._reduction(mean, [1], keepdims=1, ndim=2)
        mean_out, centred = self.nodes[mean].output[0], self.nodes[sub].output[0]
        square = self._sole_reader(centred, "Mul", sub)
        self._operands(square, [centred, centred], "squares the centred input")
        variance = self._sole_reader(self.nodes[square].output[0], "ReduceMean", square)
        self._reduction(variance, [1], keepdims=1, ndim=2)
        add_eps = self._sole_reader(self.nodes[variance].output[0], "Add", variance)
        epsilon = self._other_scalar(add_eps, self.nodes[variance].output[0])
        sqrt = self._sole_reader(self.nodes[add_eps].output[0], "Sqrt", add_eps)
        reciprocal = self._sole_reader(self.nodes[sqrt].output[0], "Reciprocal", sqrt)
        multiplier, chain = self.nodes[reciprocal].output[0], [mean, sub, mul_x, square, variance, add_eps, sqrt, reciprocal]
        scale = None
        after = self._unused_readers(multiplier)
        if len(after) == 1 and self.nodes[after[0]].op_type == "Mul":  # * gamma
            scale = self._per_feature(after[0], self._other_constant_of(after[0], multiplier), width, "gamma")
            multiplier = self.nodes[after[0]].output[0]
            chain.append(after[0])
        muls = self._unused_readers(multiplier)
        if len(muls) != 2 or mul_x not in muls or any(self.nodes[i].op_type != "Mul" for i in muls):
            raise _Mismatch(reciprocal, "its multiplier is not read by exactly the two Mul nodes x * m and mean * m")
        self._operands(mul_x, [x, multiplier], "multiplies the input by the multiplier", any_order=True)
        mul_mean = next(i for i in muls if i != mul_x)
        mean_side = next((n for n in self.nodes[mul_mean].input if n != multiplier), "")
        self._operands(mul_mean, [mean_side, multiplier], "multiplies the mean by the multiplier", any_order=True)
        chain.append(mul_mean)
        offset = None
        if mean_side == mean_out:  # beta - mean * m
            shift_node = self._sole_reader(self.nodes[mul_mean].output[0], "Sub", mul_mean)
            if self._input(shift_node, 1) != self.nodes[mul_mean].output[0]:
                raise _Mismatch(shift_node, "does not compute beta - mean * m")
            beta = self._constant_operand(shift_node, self._input(shift_node, 0), "beta")
            offset = self._per_feature(shift_node, beta, width, "beta")
            shift = self.nodes[shift_node].output[0]
            chain.append(shift_node)
        else:  # Neg(mean) * m
            neg = self._producer_op(mean_side, "Neg", mul_mean)
            if self._input(neg, 0) != mean_out:
                raise _Mismatch(neg, "does not negate the mean")
            shift = self.nodes[mul_mean].output[0]
            chain.append(neg)
        final = self._sole_reader(self.nodes[mul_x].output[0], "Add", mul_x)
        self._operands(final, [self.nodes[mul_x].output[0], shift], "adds x * m and the shift", any_order=True)
        chain.append(final)
        out = self.nodes[final].output[0]
        return _Found(chain, epsilon, scale, offset, out, self.nodes[mean].name or out)

    # -- the checks --------------------------------------------------------------------------------

    def _check_batch_norm(self, index: int, r: str, variance: str) -> None:
        node = self.nodes[index]
        if len(node.input) != 5 or node.input[0] != r or node.input[4] != variance:
            raise _Mismatch(index, "does not normalise the reshaped input with its own per-sample mean and variance")
        if self.attrs(index).get("training_mode", 0) or any(o and self.consumers.get(o) for o in node.output[1:]):
            raise _Mismatch(index, "is in training mode (its running statistics are outputs)")

    def _rows_as_channels(self, reshape: int, x: str, width: int) -> int:
        """The batch size in ``Reshape(x, [1, batch, F, 1])``: -1 (run time) or the fixed one tf2onnx folded in."""
        if self._input(reshape, 0) != x:
            raise _Mismatch(reshape, "does not reshape the layer's input")
        target = self.constant(self._input(reshape, 1))
        found = None if target is None else target.ravel().tolist()
        if found is None or len(found) != 4 or found[::2] != [1, width] or found[3] != 1 or not (found[1] == -1 or found[1] > 0):
            raise _Mismatch(reshape, f"reshapes [N, {width}] to {found or 'a run-time shape'}, not [1, N, {width}, 1] "
                                     "(one channel per sample)")
        return int(found[1])

    def _filled(self, bn: int, position: int, value: float, batch: int, shape_x: int | None) -> list[int]:
        """The batch norm's scale (ones) or offset (zeros): a constant of the fixed batch size, or a scalar
        expanded to the run-time batch size."""
        role = "scale" if position == 1 else "offset"
        constant = self.constant(self._input(bn, position))
        if constant is not None:
            if batch < 1 or constant.shape != (batch,) or np.any(constant != value):
                raise _Mismatch(bn, f"its {role} must be {value:g} for each of the {batch if batch > 0 else 'N'} samples")
            return []
        if shape_x is None:
            raise _Mismatch(bn, f"its {role} is computed at run time, but not from the layer input's shape")
        expand = self._producer_op(self._input(bn, position), "Expand", bn)
        filler = self.constant(self._input(expand, 0))
        if filler is None or filler.size != 1 or float(filler.ravel()[0]) != value:
            found = "a run-time value" if filler is None else filler.ravel().tolist()
            raise _Mismatch(expand, f"the batch norm's {role} must be {value:g} everywhere; it expands {found}")
        size, casts = self._through_int_casts(self._input(expand, 1))
        unsqueeze = self._expect_op(size, "Unsqueeze", expand)
        if self._axes(unsqueeze, ndim=1) != [0]:
            raise _Mismatch(unsqueeze, "does not make the batch size a 1-D shape")
        product = self._producer_op(self._input(unsqueeze, 0), "ReduceProd", unsqueeze)
        self._reduction(product, [0], keepdims=0, ndim=1)
        slice_ = self._producer_op(self._input(product, 0), "Slice", product)
        if self._slice_args(slice_) != [[0], [1], [0], [1]]:
            raise _Mismatch(slice_, "does not take the first dimension (the batch size) of the input's shape")
        source, shape_casts = self._through_int_casts(self._input(slice_, 0))
        if source != shape_x:
            raise _Mismatch(slice_, "does not slice the layer input's shape")
        return [expand, *casts, unsqueeze, product, slice_, *shape_casts]

    def _back_shape(self, back: int, batch: int, width: int, shape_x: int | None) -> list[int]:
        """The nodes giving the shape the result is reshaped back to: the input's (from ``Shape(x)``), or
        the constant [batch, F] of a fixed batch size."""
        target = self.constant(self._input(back, 1))
        if target is not None:
            if batch < 1 or target.ravel().tolist() != [batch, width]:
                raise _Mismatch(back, f"reshapes the result to {target.ravel().tolist()}, not the input's [{batch}, {width}]")
            return []
        source, casts = self._through_int_casts(self._input(back, 1))
        if shape_x is None or source != shape_x:
            raise _Mismatch(back, "does not reshape the result back to the input's own shape")
        return casts

    def _gamma_beta(self, cur: str, width: int) -> tuple[np.ndarray | None, np.ndarray | None, str, list[int]]:
        """Keras' ``outputs * gamma`` and ``outputs + beta`` after the fused form, each optional."""
        found: dict[str, Any] = {"Mul": None, "Add": None}
        nodes = []
        for op in ("Mul", "Add"):
            index = self.sole_consumer(cur)
            inputs = list(self.nodes[index].input) if index is not None else []
            if index is None or self.nodes[index].op_type != op or len(inputs) != 2 or inputs.count(cur) != 1:
                continue
            other = inputs[1] if inputs[0] == cur else inputs[0]
            value = self.constant(other) if self.is_constant(other) else None
            if value is None or value.dtype.kind != "f" or value.shape not in _per_feature_shapes(width):
                continue
            found[op], cur = value, self.nodes[index].output[0]
            nodes.append(index)
        return found["Mul"], found["Add"], cur, nodes

    def _whole_shape(self, index: int) -> None:
        attrs = self.attrs(index)
        if attrs.get("start", 0) != 0 or "end" in attrs:
            raise _Mismatch(index, "takes part of the shape (start/end); the pattern needs the whole shape")

    def _reduction(self, index: int, axes: list[int], *, keepdims: int, ndim: int) -> None:
        op = self.nodes[index].op_type
        found = self._axes(index, ndim=ndim)
        if found != axes:
            raise _Mismatch(index, f"{op} over axes {found if found is not None else 'all'}; the pattern reduces over axes {axes}")
        if self.attrs(index).get("keepdims", 1) != keepdims:
            raise _Mismatch(index, f"{op} with keepdims={self.attrs(index).get('keepdims', 1)}; the pattern needs keepdims={keepdims}")

    def _axes(self, index: int, *, ndim: int) -> list[int] | None:
        """A reduction's or (un)squeeze's axes, from the attribute (older opsets) or the input, made non-negative."""
        node, attrs = self.nodes[index], self.attrs(index)
        if "axes" in attrs:
            raw = attrs["axes"]
        elif len(node.input) > 1 and node.input[1]:
            value = self.constant(node.input[1])
            if value is None:
                raise _Mismatch(index, "has axes computed at run time")
            raw = value.ravel().tolist()
        else:
            return None
        if any(not -ndim <= int(a) < ndim for a in raw):
            raise _Mismatch(index, f"has axes {list(raw)} outside a {ndim}-D tensor")
        return sorted(int(a) % ndim for a in raw)

    def _slice_args(self, index: int) -> list[list[int]] | None:
        """A Slice's starts, ends, axes and steps, from attributes (opset < 10) or constant inputs."""
        node, attrs = self.nodes[index], self.attrs(index)
        if "starts" in attrs:
            return [list(attrs["starts"]), list(attrs.get("ends", [])), list(attrs.get("axes", [0])), [1]]
        names = [*node.input[1:5], *[""] * (5 - len(node.input))]
        defaults = {2: [0], 3: [1]}  # of a 1-D shape
        args = []
        for position, name in enumerate(names):
            value = self.constant(name) if name else None
            if value is None and (name or position not in defaults):
                return None
            args.append(defaults[position] if value is None else value.ravel().tolist())
        return args

    def _through_int_casts(self, tensor: str) -> tuple[int | None, list[int]]:
        """The producer of ``tensor`` behind any Casts between integer types, and those Casts."""
        casts: list[int] = []
        index = self.producer.get(tensor)
        while index is not None and self.nodes[index].op_type == "Cast" and self.attrs(index).get("to") in _INT_TYPES:
            casts.append(index)
            index = self.producer.get(self._input(index, 0))
        return index, casts

    def _operands(self, index: int, expected: list[str], what: str, *, any_order: bool = False) -> None:
        found = list(self.nodes[index].input)
        if (sorted(found) != sorted(expected)) if any_order else (found != expected):
            raise _Mismatch(index, f"is expected to be the node that {what}; it reads {found}")

    def _other_scalar(self, index: int, tensor: str) -> float:
        value = self._other_constant_of(index, tensor)
        if value.size != 1:
            raise _Mismatch(index, f"adds {value.size} values to the variance; epsilon is one number")
        return float(value.ravel()[0])

    def _other_constant_of(self, index: int, tensor: str) -> np.ndarray:
        inputs = list(self.nodes[index].input)
        if len(inputs) != 2 or inputs.count(tensor) != 1:
            raise _Mismatch(index, f"does not combine {tensor!r} with one constant")
        return self._constant_operand(index, inputs[1] if inputs[0] == tensor else inputs[0], "constant")

    def _constant_operand(self, index: int, name: str, role: str) -> np.ndarray:
        value = self.constant(name) if self.is_constant(name) else None
        if value is None or value.dtype.kind != "f":
            raise _Mismatch(index, f"its {role} {name!r} is not a float constant")
        return value

    def _per_feature(self, index: int, value: np.ndarray, width: int, role: str) -> np.ndarray:
        if value.shape not in _per_feature_shapes(width):
            raise _Mismatch(index, f"its {role} has shape {list(value.shape)}; one value per feature is shape [{width}]")
        return value

    def _constant_is(self, name: str, expected: list[int]) -> bool:
        value = self.constant(name)
        return value is not None and value.ravel().tolist() == expected

    def _input(self, index: int, position: int) -> str:
        """The name of a node's input, "" when it has none there (a malformed graph is refused, not an IndexError)."""
        inputs = self.nodes[index].input
        return inputs[position] if position < len(inputs) else ""

    def _unused_readers(self, tensor: str) -> list[int]:
        return [i for i in self.consumers.get(tensor, []) if i not in self.used]

    def _readers_by_op(self, tensor: str, ops: list[str], near: int) -> dict[str, int]:
        readers = self._unused_readers(tensor)
        found = sorted(self.nodes[i].op_type for i in readers)
        if found != ops:
            raise _Mismatch(near, f"its output is read by {found}; the pattern reads it with {ops}")
        return {self.nodes[i].op_type: i for i in readers}

    def _sole_reader(self, tensor: str, op: str, near: int) -> int:
        readers = self._unused_readers(tensor)
        if tensor in self.output_names or len(readers) != 1 or self.nodes[readers[0]].op_type != op:
            found = [self.nodes[i].op_type for i in readers]
            raise _Mismatch(near, f"its output is read by {found}; the pattern reads it with one {op}")
        return readers[0]

    def _producer_op(self, tensor: str, op: str, near: int) -> int:
        return self._expect_op(self.producer.get(tensor), op, near, tensor)

    def _expect_op(self, index: int | None, op: str, near: int, tensor: str = "") -> int:
        if index is None or self.nodes[index].op_type != op:
            found = "a graph input or constant" if index is None else self.label(index)
            raise _Mismatch(near, f"reads {tensor or 'a tensor'!r} from {found}; the pattern has a {op} there")
        return index


def _per_feature_shapes(width: int) -> tuple[tuple[int, ...], ...]:
    """Shapes that broadcast along the features of [N, width] without changing the output's shape."""
    return (), (1,), (width,), (1, 1), (1, width)


def _vector(value: np.ndarray | None, width: int) -> np.ndarray | None:
    return None if value is None else np.broadcast_to(np.asarray(value).reshape(-1), (width,)).copy()
