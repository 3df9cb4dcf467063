"""Compile a generated model with the system C compiler and run it through ctypes.

Used by ``verify`` (the runner of ``.c`` files), the tests and the benchmark.
The generated file and a small batch harness (one loop over the rows calling
the model's own entry points) are compiled together into a shared library in
a temporary folder, with the documented flags::

    cc -Wall -Wextra -Werror -std=c99 -pedantic -O2 -fPIC -shared model.c harness.c -lm
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import MissingDependencyError, ReadError
from .header import read_metadata

__all__ = ["WARNING_FLAGS", "OPTIMIZE_FLAGS", "CompiledModel", "compile_models", "find_compiler", "MissingCompilerError", "compile_object_size"]

WARNING_FLAGS = ("-Wall", "-Wextra", "-Werror", "-std=c99", "-pedantic")
OPTIMIZE_FLAGS = ("-O2",)
COMPILE_TIMEOUT_S = 300


class MissingCompilerError(MissingDependencyError):
    """No C compiler to build generated code with (exit code 4 on the command line)."""

    def __init__(self, compiler: str, purpose: str):
        self.package = compiler
        self.pip_command = "apt-get install gcc"
        ImportError.__init__(
            self,
            f"{purpose} needs a C compiler ({compiler!r} was not found); install one (Debian/Ubuntu: "
            "apt-get install gcc; Fedora: dnf install gcc; macOS: xcode-select --install) or name it with "
            "the CC environment variable",
        )


def find_compiler(compiler: str | None = None, purpose: str = "running generated C code") -> str:
    """The compiler to use: ``compiler``, else ``$CC``, else ``cc``; its full path.

    Raises:
        MissingCompilerError: it is not installed.
    """
    name = compiler or os.environ.get("CC") or "cc"
    found = shutil.which(name)
    if found is None:
        raise MissingCompilerError(name, purpose)
    return found


def _harness(meta: dict[str, Any], header: Path) -> str:
    """Batch loops over the model's own entry points, named after its prefix."""
    p = meta["prefix"]
    t_in, t_out = meta["c_types"]["input"], meta["c_types"]["output"]
    nf, no = meta["n_features"], meta["n_outputs"]
    code = [f'#include "{header}"', ""]
    loop = "{\n    long r;\n    for (r = 0; r < n; ++r) "
    code.append(f"void {p}_harness_forward(const {t_in} *x, {t_out} *out, long n)\n{loop}{p}_forward(x + r * {nf}, out + r * {no});\n}}\n")
    if meta["task"] in ("binary", "multiclass"):
        code.append(f"void {p}_harness_predict(const {t_in} *x, int *labels, long n)\n{loop}labels[r] = {p}_predict(x + r * {nf});\n}}\n")
        width = max(no, 2)
        code.append(f"void {p}_harness_proba(const {t_in} *x, {t_out} *proba, long n)\n{loop}{p}_predict_proba(x + r * {nf}, proba + r * {width});\n}}\n")
    elif meta["task"] == "multilabel":
        code.append(f"void {p}_harness_predict(const {t_in} *x, int *labels, long n)\n{loop}{p}_predict(x + r * {nf}, labels + r * {no});\n}}\n")
    return "\n".join(code)


_CTYPES = {"float": (ctypes.c_float, np.float32), "double": (ctypes.c_double, np.float64), "int32_t": (ctypes.c_int32, np.int32)}


def _compile(models: list[tuple[Path, dict[str, Any]]], compiler: str, flags: tuple[str, ...], folder: Path) -> Path:
    """One shared library of every (source, metadata) with its harness; its path.

    Several models are compiled as one translation unit that includes each file (their
    symbols all carry their own prefix): one compiler process instead of one per file.
    """
    sources = []
    for index, (source, meta) in enumerate(models):
        header = source.with_name(meta["header"])
        if not header.is_file():
            raise ReadError(f"its header {header.name} is missing (it is written beside the .c file)", path=source, format="c")
        harness = folder / f"harness_{index}.c"
        harness.write_text(_harness(meta, header.resolve()), encoding="utf-8")
        sources += [source.resolve(), harness]
    if len(models) > 1:
        unity = folder / "all_models.c"
        unity.write_text("".join(f'#include "{source}"\n' for source in sources), encoding="utf-8")
        sources = [unity]
    library = folder / "models.so"
    command = [compiler, *flags, "-fPIC", "-shared", *map(str, sources), "-o", str(library), "-lm"]
    where = models[0][0]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise ReadError(f"compiling took longer than {COMPILE_TIMEOUT_S} s", path=where, format="c") from None
    if result.returncode != 0:
        message = "\n".join((result.stderr or result.stdout).strip().splitlines()[:20])
        raise ReadError(f"{Path(compiler).name} could not compile it ({' '.join(flags)}):\n{message}", path=where, format="c")
    return library


class CompiledModel:
    """A generated ``.c`` file compiled into a shared library, run row by row by its own entry points.

    Inputs are given as float rows; at the integer precisions they are quantized to
    the input format the header states (round to nearest, saturated), and outputs
    are scaled back to real values.

    Raises:
        MissingCompilerError: no C compiler.
        ReadError: not a generated file, its header is missing, or it does not compile.
    """

    def __init__(self, source: str | os.PathLike[str], *, compiler: str | None = None, extra_flags: tuple[str, ...] = ()):
        self.source = Path(source)
        self.meta = read_metadata(self.source)
        self.compiler = find_compiler(compiler)
        self.flags = (*WARNING_FLAGS, *OPTIMIZE_FLAGS, *extra_flags)
        self._folder = tempfile.TemporaryDirectory(prefix="nnconvert-c-")
        self.library_path = _compile([(self.source, self.meta)], self.compiler, self.flags, Path(self._folder.name))
        self._bind(ctypes.CDLL(str(self.library_path)))

    def _bind(self, library: ctypes.CDLL) -> None:
        self._library = library
        self._in_ctype, self._in_dtype = _CTYPES[self.meta["c_types"]["input"]]
        self._out_ctype, self._out_dtype = _CTYPES[self.meta["c_types"]["output"]]

    # -- running -----------------------------------------------------------------

    def _inputs(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X.reshape(1, -1)
        if X.ndim != 2 or X.shape[1] != self.meta["n_features"]:
            raise ValueError(f"expected rows of {self.meta['n_features']} features, got shape {X.shape}")
        fixed = self.meta.get("fixed_point")
        if fixed is None:
            return np.ascontiguousarray(X, dtype=self._in_dtype)
        scaled = np.rint(X * 2.0 ** fixed["input_frac_bits"])
        return np.ascontiguousarray(np.clip(scaled, -(2**31), 2**31 - 1), dtype=np.int32)

    def _call(self, entry: str, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        function = getattr(self._library, f"{self.meta['prefix']}_harness_{entry}")
        function.restype = None
        function(x.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p), ctypes.c_long(len(x)))
        return out

    def forward_raw(self, X: Any) -> np.ndarray:
        """``<prefix>_forward`` on every row, in the C output type (integers unscaled)."""
        x = self._inputs(X)
        return self._call("forward", x, np.empty((len(x), self.meta["n_outputs"]), dtype=self._out_dtype))

    def forward(self, X: Any) -> np.ndarray:
        """``<prefix>_forward`` on every row, as float64 real values."""
        raw = self.forward_raw(X)
        fixed = self.meta.get("fixed_point")
        if fixed is None:
            return raw.astype(np.float64)
        return raw.astype(np.float64) / 2.0 ** fixed["output_frac_bits"]

    def predict_proba(self, X: Any) -> np.ndarray:
        """``<prefix>_predict_proba`` on every row (classifiers), as float64 real values."""
        x = self._inputs(X)
        raw = self._call("proba", x, np.empty((len(x), max(self.meta["n_outputs"], 2)), dtype=self._out_dtype))
        fixed = self.meta.get("fixed_point")
        return raw.astype(np.float64) / (2.0 ** fixed["output_frac_bits"] if fixed else 1.0)

    def predict_indices(self, X: Any) -> np.ndarray:
        """``<prefix>_predict`` on every row: class indices (``[N]``) or 0/1 indicator rows (multilabel)."""
        x = self._inputs(X)
        width = self.meta["n_outputs"] if self.meta["task"] == "multilabel" else 1
        labels = self._call("predict", x, np.empty((len(x), width), dtype=np.intc))
        return labels if width > 1 else labels[:, 0]


def compile_models(sources: list[str | os.PathLike[str]], *, compiler: str | None = None,
                   extra_flags: tuple[str, ...] = ()) -> list[CompiledModel]:  # fmt: skip
    """Several generated files (distinct prefixes) in one compiler run: one process, one library.

    Raises:
        MissingCompilerError, ReadError: as :class:`CompiledModel`.
    """
    paths = [Path(s) for s in sources]
    metas = [read_metadata(p) for p in paths]
    compiler_path = find_compiler(compiler)
    flags = (*WARNING_FLAGS, *OPTIMIZE_FLAGS, *extra_flags)
    folder = tempfile.TemporaryDirectory(prefix="nnconvert-c-")
    library_path = _compile(list(zip(paths, metas, strict=True)), compiler_path, flags, Path(folder.name))
    library = ctypes.CDLL(str(library_path))
    models = []
    for path, meta in zip(paths, metas, strict=True):
        model = CompiledModel.__new__(CompiledModel)
        model.source, model.meta, model.compiler, model.flags = path, meta, compiler_path, flags
        model._folder, model.library_path = folder, library_path
        model._bind(library)
        models.append(model)
    return models


def compile_object_size(source: str | os.PathLike[str], compiler: str | None = None, flags: tuple[str, ...] = ("-Os",)) -> dict[str, int]:
    """Section sizes (``text``: code, ``rodata``: tables) of the compiled object of ``source``.

    The host compiler's numbers: an estimate of a microcontroller build's code size.

    Raises:
        MissingCompilerError: no compiler; ReadError: it does not compile.
    """
    source = Path(source)
    compiler_path = find_compiler(compiler, "measuring the code size")
    with tempfile.TemporaryDirectory(prefix="nnconvert-c-") as folder:
        obj = Path(folder) / "model.o"
        command = [compiler_path, *WARNING_FLAGS, *flags, "-c", "-I", str(source.parent), str(source), "-o", str(obj)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S, check=False)
        if result.returncode != 0:
            raise ReadError(f"does not compile: {result.stderr.strip()[:2000]}", path=source, format="c")
        return elf_section_sizes(obj.read_bytes())


def elf_section_sizes(data: bytes) -> dict[str, int]:
    """Sizes of an ELF object's code (``.text*``), read-only data (``.rodata*``) and ``.data``/``.bss``."""
    import struct

    if data[:4] != b"\x7fELF":
        return {}
    is64, little = data[4] == 2, data[5] == 1
    end = "<" if little else ">"
    if is64:
        shoff, = struct.unpack_from(end + "Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x3A)
    else:
        shoff, = struct.unpack_from(end + "I", data, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x2E)

    def section(index: int) -> tuple[int, int, int]:
        base = shoff + index * shentsize
        if is64:
            name, _, _, _, offset, size = struct.unpack_from(end + "IIQQQQ", data, base)
        else:
            name, _, _, _, offset, size = struct.unpack_from(end + "IIIIII", data, base)
        return name, offset, size

    _, names_offset, _ = section(shstrndx)
    sizes = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    for index in range(shnum):
        name_at, _, size = section(index)
        name = data[names_offset + name_at : data.index(b"\0", names_offset + name_at)].decode("ascii", "replace")
        for key in sizes:
            if name == f".{key}" or name.startswith(f".{key}."):
                sizes[key] += size
    return sizes
