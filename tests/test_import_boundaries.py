"""The import boundaries of docs/architecture.md hold, and the lint that guards them bites.

The contracts live in pyproject.toml (``[tool.importlinter]``) and CI runs
``lint-imports``. Here: the package keeps them, it has no import cycle at
module level (lazy imports inside functions included; imports for type
checkers only are not imports at run time), and a copy of the
package with one deliberately forbidden import fails the same lint.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "nnconvert"
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"]


def _lint(root: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LINT, "--no-cache", "--config", str(config)],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _strongly_connected(graph: grimp.ImportGraph, modules: set[str]) -> list[set[str]]:
    """Tarjan's algorithm over the direct imports among ``modules``: the cycles, as sets of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module) & modules):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(component)

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return found


def test_no_module_level_import_cycle() -> None:
    graph = grimp.build_graph("nnconvert", cache_dir=None, exclude_type_checking_imports=True)
    # a package's __init__ re-exporting its children is not a cycle of the design: judge modules only
    modules = {m for m in graph.modules if not (PACKAGE / Path(*m.split(".")[1:]) / "__init__.py").exists()}
    assert _strongly_connected(graph, modules) == []


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("lint")
    shutil.copytree(PACKAGE, root / "nnconvert", ignore=shutil.ignore_patterns("__pycache__"))
    config = root / "pyproject.toml"
    config.write_text((ROOT / "pyproject.toml").read_text())
    return root, config


def test_the_package_keeps_its_contracts(package_copy: tuple[Path, Path]) -> None:
    root, config = package_copy
    result = _lint(root, config)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "snippet", "contract"),
    [
        ("nnconvert/formats/json_weights/_bad_import.py", "import onnx\n", "onnx and onnxruntime only"),
        ("nnconvert/verify/_bad_import.py", "def f():\n    import h5py\n", "h5py only in the HDF5 layer"),
        ("nnconvert/formats/json_weights/_bad_import.py", "from nnconvert.formats import hdf5\n", "formats never import each other"),
        ("nnconvert/ir_bad_import.py", "import sklearn\n", "scikit-learn"),
    ],
)
def test_a_forbidden_import_fails_the_lint(package_copy: tuple[Path, Path], module: str, snippet: str, contract: str) -> None:
    root, config = package_copy
    bad = root / module
    bad.write_text(snippet)
    try:
        result = _lint(root, config)
    finally:
        bad.unlink()
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{contract}" in result.stdout and "BROKEN" in result.stdout


def test_contracts_name_every_framework() -> None:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    forbidden = {module for contract in contracts if contract["type"] == "forbidden" for module in contract["forbidden_modules"]}
    assert {"onnx", "onnxruntime", "h5py", "sklearn"} <= forbidden
    assert {contract["type"] for contract in contracts} >= {"forbidden", "independence", "layers", "acyclic_siblings"}
