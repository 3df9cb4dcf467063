"""Activations after a dense layer: one node, or an elementwise composition (silu, gelu...) recognised by its values."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ...ir import ACTIVATION_DEFAULTS, Activation, apply_activation
from ._graph_index import GraphIndex, is_scalar
from ._parsed import ParsedLayer

_SIMPLE_ACTIVATIONS = {
    "Relu": Activation.RELU,
    "Tanh": Activation.TANH,
    "Sigmoid": Activation.LOGISTIC,
    "Softmax": Activation.SOFTMAX,
    "Exp": Activation.EXP,
    "LeakyRelu": Activation.LEAKY_RELU,
    "Elu": Activation.ELU,
    "Selu": Activation.SELU,
    "Softplus": Activation.SOFTPLUS,
    "HardSigmoid": Activation.HARD_SIGMOID,
    "Gelu": Activation.GELU,
    "HardSwish": Activation.HARDSWISH,
    "Mish": Activation.MISH,
    "Softsign": Activation.SOFTSIGN,
    "LogSoftmax": Activation.LOG_SOFTMAX,
    "Clip": Activation.CLIP,
}
# the ONNX attribute defaults, which are the float32 roundings of the IR's
_ONNX_ACTIVATION_DEFAULTS = {
    Activation.LEAKY_RELU: {"alpha": 0.01},
    Activation.ELU: {"alpha": 1.0},
    Activation.SELU: {"alpha": 1.67326319217681884765625, "gamma": 1.05070102214813232421875},
    Activation.HARD_SIGMOID: {"alpha": 0.2, "beta": 0.5},
}
# elementwise ops a multi-node activation (x * sigmoid(x), erf/tanh gelu) is made of
_COMPOSITE_OPS = {
    "Mul", "Add", "Sub", "Div", "Pow", "Erf", "Tanh", "Sigmoid", "Neg", "Exp", "Reciprocal", "Sqrt", "Max", "Min", "Abs", "Log",
    "Softplus", "Greater", "Where", "HardSigmoid", "Clip", "Relu",
}
_COMPOSITE_MAX_NODES = 24


class ActivationPatterns(GraphIndex):
    """Recognises the activation that follows a dense layer."""

    def _activation(self, layer: ParsedLayer, cur: str) -> str:
        index = self.sole_consumer(cur)
        if index is not None and (bound := self._single_bound(index, cur)) is not None:
            self.used.add(index)
            layer.activation, layer.params = Activation.CLIP, bound
            return self.nodes[index].output[0]
        if index is not None and self.nodes[index].op_type in _SIMPLE_ACTIVATIONS and self.nodes[index].domain in ("", "ai.onnx"):
            if self.nodes[index].input[0] == cur and self._simple_activation(index, layer):
                self.used.add(index)
                return self.nodes[index].output[0]
        composite = self._composite_activation(cur)
        if composite is None:
            return cur
        activation, params, out = composite
        layer.activation, layer.params = activation, params
        return out

    def _simple_activation(self, index: int, layer: ParsedLayer) -> bool:
        """Set the layer's activation from one node; False when the node is not one (a Clip with run-time bounds)."""
        op, attrs = self.nodes[index].op_type, self.attrs(index)
        activation = _SIMPLE_ACTIVATIONS[op]
        if op == "Clip":
            bounds = self._clip_bounds(index)
            if bounds is None:
                return False
            layer.activation, layer.params = activation, bounds
            return True
        layer.activation = activation
        if op in ("Softmax", "LogSoftmax"):
            axis = attrs.get("axis", -1 if self.opset() >= 13 else 1)
            if axis not in (1, -1):
                self.problem(index, f"{op} over axis {axis}; a dense layer's softmax runs over the features (axis 1)")
        elif op == "Gelu":
            layer.params = {"approximate": attrs.get("approximate", "none")}
        elif activation in _ONNX_ACTIVATION_DEFAULTS:
            layer.params = {key: float(attrs.get(key, default)) for key, default in _ONNX_ACTIVATION_DEFAULTS[activation].items()}
        return True

    def _single_bound(self, index: int, cur: str) -> dict[str, float] | None:
        """Max(x, c) or Min(x, c) alone: a one-sided clip."""
        node = self.nodes[index]
        if node.op_type not in ("Max", "Min") or len(node.input) != 2 or cur not in node.input:
            return None
        other = node.input[1] if node.input[0] == cur else node.input[0]
        value = self.constant(other)
        if not is_scalar(value):
            return None
        return {"min" if node.op_type == "Max" else "max": float(value.ravel()[0])}

    def _evaluate_node(self, index: int, args: list[Any]) -> np.ndarray:
        op, attrs = self.nodes[index].op_type, self.attrs(index)
        if op == "HardSigmoid":
            return np.clip(args[0] * attrs.get("alpha", 0.2) + attrs.get("beta", 0.5), 0, 1)
        if op == "Clip":
            bounds = self._clip_bounds(index) or {}
            return np.minimum(np.maximum(args[0], bounds.get("min", -np.inf)), bounds.get("max", np.inf))
        return _ELEMENTWISE[op](*args)

    def _clip_bounds(self, index: int) -> dict[str, float] | None:
        """Clip's min/max: attributes before opset 11, optional constant inputs from 11; None when computed."""
        node, attrs = self.nodes[index], self.attrs(index)
        bounds: dict[str, float] = {}
        for position, key in ((1, "min"), (2, "max")):
            if key in attrs:
                bounds[key] = float(attrs[key])
            elif len(node.input) > position and node.input[position]:
                value = self.constant(node.input[position])
                if not is_scalar(value):
                    return None
                bounds[key] = float(value.ravel()[0])
        return bounds

    def _composite_activation(self, start: str) -> tuple[Activation, dict[str, Any], str] | None:
        """A few elementwise nodes computing one IR activation (found by structure, confirmed by value).

        Exporters compose silu and gelu (and nnconvert's float64 graphs leaky_relu,
        elu, selu, softplus, hard_sigmoid) from elementwise nodes; the region's
        values on a probe decide which one it is, with parameters taken from the
        region's own constants.
        """
        region, exits = self._elementwise_region(start)
        if len(region) < 2:
            return None
        if len(exits) == 1 and (found := self._matched_region(region, start, exits[0])) is not None:
            return found
        # the region ran into the next layer's elementwise nodes: try its prefixes, longest first
        for size in range(len(region) - 1, 1, -1):
            prefix = region[:size]
            prefix_exits = self._region_exits(prefix, start)
            if not all(c in prefix for c in self.consumers.get(start, [])):
                continue
            if len(prefix_exits) == 1 and (found := self._matched_region(prefix, start, prefix_exits[0])) is not None:
                return found
        return None

    def _matched_region(self, region: list[int], start: str, exit_name: str) -> tuple[Activation, dict[str, Any], str] | None:
        computed = self._evaluate_region(region, start, exit_name, _PROBE_ALL)
        if computed is None or not np.isfinite(computed).all():
            return None
        constants = [
            float(self.known_constant(n).ravel()[0]) for i in region for n in self.nodes[i].input if n and self.is_constant(n)
        ]
        for activation, params in _candidate_activations(computed[: len(_PROBE)], constants):
            expected = _PROBE_ALL.copy().reshape(1, -1)
            apply_activation(expected, activation, {**ACTIVATION_DEFAULTS.get(activation, {}), **params})
            if np.allclose(computed, expected.ravel(), rtol=1e-5, atol=1e-6):
                self.used.update(region)
                return activation, params, exit_name
        return None

    def _region_exits(self, region: list[int], start: str) -> list[str]:
        produced = {self.nodes[i].output[0] for i in region}
        inside = set(region)
        return [t for t in produced if t in self.output_names or any(c not in inside for c in self.consumers.get(t, []))]

    def _elementwise_region(self, start: str) -> tuple[list[int], list[str]]:
        tensors = {start}
        region: list[int] = []
        changed = True
        while changed and len(region) <= _COMPOSITE_MAX_NODES:
            changed = False
            for index in sorted({i for t in tensors for i in self.consumers.get(t, [])} - set(region) - self.used):
                node = self.nodes[index]
                if node.op_type not in _COMPOSITE_OPS or node.domain not in ("", "ai.onnx"):
                    continue
                if all(name in tensors or (self.is_constant(name) and is_scalar(self.constant(name))) for name in node.input if name):
                    region.append(index)
                    tensors.add(node.output[0])
                    changed = True
        produced = {self.nodes[i].output[0] for i in region}
        exits = [
            t for t in produced
            if t in self.output_names or any(c not in region for c in self.consumers.get(t, []))
        ]
        if any(c not in region for c in self.consumers.get(start, [])):
            return [], []
        return region, exits

    def _evaluate_region(self, region: list[int], start: str, exit_name: str, probe: np.ndarray) -> np.ndarray | None:
        values: dict[str, np.ndarray] = {start: probe}
        pending = list(region)
        with np.errstate(all="ignore"):
            while pending:
                ready = [i for i in pending if all(n in values or self.is_constant(n) for n in self.nodes[i].input if n)]
                if not ready:
                    return None
                for index in ready:
                    node = self.nodes[index]
                    args = [values[n] if n in values else np.float64(self.known_constant(n).ravel()[0]) for n in node.input if n]
                    values[node.output[0]] = self._evaluate_node(index, args)
                    pending.remove(index)
        return values.get(exit_name)


# probe points for composite activations; the named ones are read by _candidate_activations
_PROBE_POINTS = {"minus50": -50.0, "minus1": -1.0, "zero": 0.0, "one": 1.0, "minus_delta": -0.01, "delta": 0.01}
_PROBE = np.concatenate([np.array(list(_PROBE_POINTS.values())), np.linspace(-6.0, 6.0, 241)])
_AT = {name: index for index, name in enumerate(_PROBE_POINTS)}
# and far points, so that a bound beyond the probe's range (a clip at 10) is not mistaken for none
_PROBE_ALL = np.concatenate([_PROBE, [-1000.0, -100.0, -20.0, 7.0, 10.0, 20.0, 100.0, 1000.0]])
_HARD_SIGMOID_MAX_CONSTANTS = 8  # bounds the (alpha, beta) pairs tried on a region: 8 constants give 64


def _snapped(value: float, constants: Sequence[float]) -> float:
    """The graph's own constant when one matches the fitted value (no rounding of ours)."""
    for constant in constants:
        if math.isclose(constant, value, rel_tol=1e-6):
            return constant
    return value


def _candidate_activations(f: np.ndarray, constants: Sequence[float]) -> list[tuple[Activation, dict[str, Any]]]:
    """Every activation the values ``f`` on ``_PROBE`` might be, with fitted parameters."""
    at = {name: float(f[index]) for name, index in _AT.items()}
    gamma = at["one"] or 1.0
    slope = (at["delta"] - at["minus_delta"]) / 0.02
    return [
        (Activation.HARDSWISH, {}),
        (Activation.MISH, {}),
        (Activation.SOFTSIGN, {}),
        *_clip_candidates(constants),
        *_relu_candidates(constants),
        *[(Activation.SOFTPLUS, {"beta": beta}) for beta in list(dict.fromkeys([*constants, 1.0]))[:8] if beta > 0],
        *[(Activation.SOFTPLUS, {"beta": beta, "threshold": threshold})
          for beta in list(dict.fromkeys([*constants, 1.0]))[:8] if beta > 0
          for threshold in list(dict.fromkeys([*constants, 20.0]))[:8]],
        (Activation.SILU, {}),
        (Activation.GELU, {"approximate": "none"}),
        (Activation.GELU, {"approximate": "tanh"}),
        (Activation.SOFTPLUS, {}),
        (Activation.LEAKY_RELU, {"alpha": _snapped(-at["minus1"], constants)}),
        (Activation.ELU, {"alpha": _snapped(-at["minus50"], constants)}),
        (Activation.SELU, {"alpha": _snapped(-at["minus50"] / gamma, constants), "gamma": _snapped(gamma, constants)}),
        (Activation.HARD_SIGMOID, {"alpha": _snapped(slope, constants), "beta": _snapped(at["zero"], constants)}),
        *_hard_sigmoid_candidates(f, constants),
    ]


def _clip_candidates(constants: Sequence[float]) -> list[tuple[Activation, dict[str, Any]]]:
    """clip with bounds among the region's own constants (the probe alone cannot see a bound beyond 6)."""
    distinct = list(dict.fromkeys(constants))[:_HARD_SIGMOID_MAX_CONSTANTS]
    pairs = [{"min": a, "max": b} for a in distinct for b in distinct if a < b]
    return [(Activation.CLIP, params) for params in pairs]


def _relu_candidates(constants: Sequence[float]) -> list[tuple[Activation, dict[str, Any]]]:
    """Keras' relu(x, negative_slope, max_value, threshold) with parameters among the region's constants."""
    distinct = [c for c in dict.fromkeys(constants) if c > 0][:6]
    candidates = []
    for slope in [0.0, *distinct]:
        for threshold in [0.0, *distinct]:
            for max_value in [None, *distinct]:
                params = {"negative_slope": slope, "threshold": threshold}
                candidates.append((Activation.RELU, params if max_value is None else params | {"max_value": max_value}))
    return candidates


def _hard_sigmoid_candidates(f: np.ndarray, constants: Sequence[float]) -> list[tuple[Activation, dict[str, Any]]]:
    """hard_sigmoid parameters when the probe's centre is saturated (beta outside 0..1, a steep alpha).

    The line alpha * x + beta is fitted on the probe points strictly between
    0 and 1; when fewer than two are, every ordered pair of the region's own
    constants is tried (a steep line can fall between two probe points).
    Each candidate is still confirmed on the whole probe by the caller.
    """
    inside = np.flatnonzero((f > 0) & (f < 1))
    candidates = []
    if len(inside) >= 2:
        first, last = inside[np.argmin(_PROBE[inside])], inside[np.argmax(_PROBE[inside])]
        if _PROBE[last] != _PROBE[first]:
            alpha = (f[last] - f[first]) / (_PROBE[last] - _PROBE[first])
            beta = f[first] - alpha * _PROBE[first]
            candidates.append({"alpha": _snapped(float(alpha), constants), "beta": _snapped(float(beta), constants)})
    distinct = list(dict.fromkeys(constants))[:_HARD_SIGMOID_MAX_CONSTANTS]
    candidates += [{"alpha": a, "beta": b} for a in distinct for b in distinct if a != 0]
    return [(Activation.HARD_SIGMOID, params) for params in candidates]


def _erf(x: np.ndarray) -> np.ndarray:
    try:
        from scipy.special import erf
    except ImportError:  # pragma: no cover - scipy comes with scikit-learn
        return np.vectorize(math.erf, otypes=[np.float64])(x)
    return erf(x)


_ELEMENTWISE: dict[str, Callable[..., np.ndarray]] = {
    "Mul": np.multiply,
    "Add": np.add,
    "Sub": np.subtract,
    "Div": np.divide,
    "Pow": np.power,
    "Erf": _erf,
    "Tanh": np.tanh,
    "Sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "Neg": np.negative,
    "Exp": np.exp,
    "Reciprocal": np.reciprocal,
    "Sqrt": np.sqrt,
    "Max": np.maximum,
    "Min": np.minimum,
    "Abs": np.abs,
    "Log": np.log,
    "Softplus": lambda x: np.logaddexp(x, 0),
    "Greater": np.greater,
    "Where": np.where,
    "Relu": lambda x: np.maximum(x, 0),
}
