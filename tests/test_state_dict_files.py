"""safetensors and torch checkpoint files: foreign state dicts with an architecture, trust, hostile files.

References: the torch module that saved the state dict (run by torch), and
onnxruntime running the ONNX file nnconvert writes from it.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nnconvert
from nnconvert import registry
from nnconvert.cli import main
from nnconvert.errors import ReadError, UntrustedInputError, UsageError

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")
nn = torch.nn


class Wrapped(nn.Module):
    """A hand-written module holding its Sequential as an attribute (keys ``model.0.weight``...)."""

    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.PReLU(), nn.Dropout(), nn.Linear(8, 3), nn.Softmax(dim=1))

    def forward(self, x: Any) -> Any:
        return self.model(x)


NORM_ARCH = json.dumps(
    [{"type": "Linear"}, {"type": "BatchNorm1d", "eps": 1e-5}, {"type": "PReLU"}, {"type": "Dropout", "p": 0.5}, {"type": "Linear"}, {"type": "Softmax", "dim": 1}]
)


def _mlp(dtype: Any) -> Any:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 4), nn.Softmax(dim=1)).to(dtype).eval()


def _wrapped(dtype: Any = torch.float64) -> Any:
    torch.manual_seed(1)
    net = Wrapped()
    with torch.no_grad():
        net.model[1].running_mean.uniform_(-1, 1)
        net.model[1].running_var.uniform_(0.5, 2)
        net.model[2].weight.fill_(0.1)
    return net.to(dtype).eval()


def _save(net: Any, path: Path, saver: str) -> Path:
    if saver == "torch.save":
        torch.save(net.state_dict(), path)
    else:
        safetensors_torch.save_file(net.state_dict(), str(path))
    return path


def _onnx_outputs(path: Path, X: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["output_probability"], {"X": X})[0]


@pytest.mark.parametrize("saver", ["torch.save", "safetensors"])
@pytest.mark.parametrize(("dtype", "atol"), [(torch.float64, 1e-6), (torch.float32, 1e-5)])
def test_foreign_state_dict_with_arch_converts_to_onnx_matching_torch(saver: str, dtype: Any, atol: float, tmp_path: Path) -> None:
    net = _mlp(dtype)
    source = _save(net, tmp_path / ("weights.pt" if saver == "torch.save" else "weights.safetensors"), saver)
    target = tmp_path / "model.onnx"
    dtype_name = str(dtype).replace("torch.", "")
    nnconvert.convert(source, target, read_options={"arch": "relu,tanh,softmax"}, dtype=dtype_name)
    X = np.random.default_rng(0).normal(size=(200, 6)).astype(dtype_name) * 2
    with torch.no_grad():
        expected = net(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(_onnx_outputs(target, X), expected, rtol=0, atol=atol)
    model = nnconvert.load(source, arch="relu,tanh,softmax")
    assert model.dtype == np.dtype(dtype_name) and model.task.value == "multiclass"


@pytest.mark.parametrize("saver", ["torch.save", "safetensors"])
def test_foreign_normalization_network_with_json_arch(saver: str, tmp_path: Path) -> None:
    net = _wrapped()
    source = _save(net, tmp_path / ("w.pth" if saver == "torch.save" else "w.safetensors"), saver)
    (tmp_path / "arch.json").write_text(NORM_ARCH)
    model = nnconvert.load(source, arch=str(tmp_path / "arch.json"))  # a file, or the JSON text itself
    assert [layer.kind for layer in model.layers] == ["dense", "batch_norm", "prelu", "dense"]
    X = np.random.default_rng(2).normal(size=(100, 5))
    with torch.no_grad():
        expected = net(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(model.forward(X), expected, rtol=0, atol=1e-12)
    with torch.no_grad():  # and back into torch: the same network
        np.testing.assert_allclose(nnconvert.to_torch(model)(torch.from_numpy(X)).numpy(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("saver", ["torch.save", "safetensors"])
def test_wrong_arch_is_refused_naming_the_first_key_that_does_not_fit(saver: str, tmp_path: Path) -> None:
    source = _save(_mlp(torch.float32), tmp_path / ("w.pt" if saver == "torch.save" else "w.safetensors"), saver)
    with pytest.raises(ReadError, match=r"key '4\.(weight|bias)' .* not used by the architecture"):
        nnconvert.load(source, arch="relu,softmax")  # one Linear too few
    with pytest.raises(ReadError, match=r"should hold key '6\.weight'"):
        nnconvert.load(source, arch="relu,tanh,relu,softmax")  # one too many
    from safetensors.numpy import save_file

    chained_wrong = {"0.weight": np.zeros((99, 6), np.float32), "0.bias": np.zeros(99, np.float32), "2.weight": np.zeros((8, 16), np.float32)}
    save_file(chained_wrong, str(tmp_path / "mismatch.safetensors"))
    with pytest.raises(ReadError, match=r"key '2\.weight' has shape \(8, 16\) in the file, but the architecture needs \(out_features, 99\)"):
        nnconvert.load(tmp_path / "mismatch.safetensors", arch="relu,identity")
    with pytest.raises(UsageError, match="weights only"):
        nnconvert.load(source)
    with pytest.raises(UsageError, match="not an activation"):
        nnconvert.load(source, arch="relu,swoosh")


def test_cli_arch_errors_exit_3_and_name_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _save(_mlp(torch.float32), tmp_path / "w.pt", "torch.save")
    target = tmp_path / "m.onnx"
    assert main(["convert", str(source), str(target), "--arch", "relu,softmax"]) == 3
    assert "'4." in capsys.readouterr().err and not target.exists()
    assert main(["convert", str(source), str(target), "--arch", "relu,tanh,softmax", "--classes", "a,b,c,d"]) == 0
    assert nnconvert.load(target).classes.tolist() == ["a", "b", "c", "d"]
    assert main(["inspect", str(source), "--arch", "relu,tanh,softmax"]) == 0
    assert "16 -> 8          tanh" in capsys.readouterr().out


def test_checkpoint_dicts_and_key_prefixes(tmp_path: Path) -> None:
    net = _wrapped()
    torch.save({"epoch": 3, "model_state_dict": net.state_dict(), "optimizer": {}}, tmp_path / "ckpt.pt")
    model = nnconvert.load(tmp_path / "ckpt.pt", arch=NORM_ARCH)
    assert model.layers[0].name == "model.0"


def test_whole_module_needs_trust(tmp_path: Path) -> None:
    net = _wrapped()
    torch.save(net, tmp_path / "whole.pt")
    with pytest.raises(UntrustedInputError, match="trust"):
        nnconvert.load(tmp_path / "whole.pt")
    model = nnconvert.load(tmp_path / "whole.pt", trust=True)
    X = np.random.default_rng(3).normal(size=(20, 5))
    with torch.no_grad():
        np.testing.assert_allclose(model.forward(X), net(torch.from_numpy(X)).numpy(), rtol=0, atol=1e-12)


class _CreatesAFile:
    """A pickle payload that creates a file when unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> Any:
        return (open, (self.path, "w"))


def test_pickle_payload_never_runs_without_trust(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"0.weight": torch.zeros(2, 2), "payload": _CreatesAFile(marker)}, evil)
    assert not marker.exists()
    with pytest.raises(UntrustedInputError):
        nnconvert.load(evil, arch="relu")
    assert main(["convert", str(evil), str(tmp_path / "out.onnx"), "--arch", "relu"]) == 3
    assert main(["inspect", str(evil)]) == 3
    assert main(["verify", str(evil), str(evil)]) == 3
    assert "--trust-pickle" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "out.onnx").exists()


def _header_file(path: Path, header: dict[str, Any], data: bytes = b"") -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


@pytest.mark.parametrize(
    ("header", "data", "message"),
    [
        ({"w": {"dtype": "F32", "shape": [2**40], "data_offsets": [0, 2**42]}}, b"\0" * 16, "outside the file"),
        ({"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 16]}}, b"\0" * 16, "needs 4000 bytes"),
        ({"w": {"dtype": "F99", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 16, "unknown dtype"),
        ({"w": {"dtype": "BF16", "shape": [8], "data_offsets": [0, 16]}}, b"\0" * 16, "BF16"),
        ({"w": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}, b"\0" * 16, "shape must be"),
        ({"__metadata__": {"nnconvert": 5}}, b"", "__metadata__"),
    ],
)
def test_hostile_safetensors_headers_are_refused_before_allocation(
    header: dict[str, Any], data: bytes, message: str, tmp_path: Path
) -> None:
    path = _header_file(tmp_path / "hostile.safetensors", header, data)
    with pytest.raises(ReadError, match=message):
        nnconvert.load(path, arch="relu")
    assert main(["inspect", str(path), "--arch", "relu"]) == 3


def test_truncated_and_oversized_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "lying.safetensors"
    path.write_bytes(struct.pack("<Q", 10**9) + b"{}")
    with pytest.raises(ReadError, match="header declares 1000000000 bytes"):
        nnconvert.load(path, format="safetensors")
    (tmp_path / "short.safetensors").write_bytes(b"\x01\x02")
    with pytest.raises(ReadError, match="shorter"):
        nnconvert.load(tmp_path / "short.safetensors", format="safetensors")
    (tmp_path / "junk.safetensors").write_bytes(struct.pack("<Q", 4) + b"{{{{")
    with pytest.raises(ReadError, match="not valid JSON"):
        nnconvert.load(tmp_path / "junk.safetensors")


def test_our_files_load_into_to_torch_with_torch_s_own_loaders(tmp_path: Path) -> None:
    model = nnconvert.from_torch(_wrapped())
    nnconvert.save(model, tmp_path / "m.safetensors")
    nnconvert.save(model, tmp_path / "m.pt")
    module = nnconvert.to_torch(model)
    module.load_state_dict(safetensors_torch.load_file(str(tmp_path / "m.safetensors")), strict=True)
    module.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True), strict=True)
    # and a whole foreign-looking state dict of ours is also readable with arch, like anyone's
    plain = tmp_path / "plain.safetensors"
    safetensors_torch.save_file(module.state_dict(), str(plain))
    from_plain = nnconvert.load(plain, arch=NORM_ARCH.replace(', {"type": "Dropout", "p": 0.5}', ""))
    X = np.random.default_rng(4).normal(size=(10, 5))
    np.testing.assert_array_equal(from_plain.forward(X), model.forward(X))


def test_detection_of_torch_files(tmp_path: Path) -> None:
    net = _mlp(torch.float32)
    torch.save(net.state_dict(), tmp_path / "new.bin")
    torch.save(net.state_dict(), tmp_path / "legacy.bin", _use_new_zipfile_serialization=False)
    safetensors_torch.save_file(net.state_dict(), str(tmp_path / "st.bin"))
    assert registry.detect(tmp_path / "new.bin").name == "torch"
    assert registry.detect(tmp_path / "legacy.bin").name == "torch"
    assert registry.detect(tmp_path / "st.bin").name == "safetensors"
    legacy = nnconvert.load(tmp_path / "legacy.bin", arch="relu,tanh,softmax")
    assert legacy.equals(nnconvert.load(tmp_path / "new.bin", arch="relu,tanh,softmax"))


def test_formats_lists_the_extras(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["formats", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["safetensors"]["read"] and rows["safetensors"]["write"]
    assert rows["torch"]["read"] and rows["keras"]["write"]
    assert registry.get("torch").requires == {"torch": "nnconvert[torch]"}


def test_missing_torch_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    from nnconvert.errors import MissingDependencyError

    source = _save(_mlp(torch.float32), tmp_path / "w.pt", "torch.save")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real_find_spec(name, *a))
    with pytest.raises(MissingDependencyError, match=r'pip install "nnconvert\[torch\]"'):
        nnconvert.load(source, arch="relu,tanh,softmax")
    assert main(["convert", str(source), str(tmp_path / "m.onnx"), "--arch", "relu,tanh,softmax"]) == 4
    assert main(["formats"]) == 0
    assert 'no: pip install "nnconvert[torch]"' in capsys.readouterr().out
