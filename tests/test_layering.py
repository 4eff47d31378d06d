"""The package's shape as a specification: the pipeline's layers only import downward, no
module imports itself back through a cycle, and the torch-free layers stay torch-free."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vitbench"

#: The pipeline, bottom to top: a module may import its own layer and those below it.
LAYERS = [
    {"vitbench.errors", "vitbench.files", "vitbench.conventions"},
    {"vitbench.stats", "vitbench.records", "vitbench.env", "vitbench.nvml"},
    {"vitbench.config"},
    {"vitbench.build"},
    {"vitbench.measure"},
    {"vitbench.run"},
    {"vitbench.report"},
    {"vitbench.history"},
    {"vitbench.gate"},
    {"vitbench.tools"},
    {"vitbench.cli"},
]

#: Modules that must import without torch (run with torch made unimportable).
TORCH_FREE_PACKAGES = ("vitbench.config", "vitbench.report", "vitbench.gate", "vitbench.history")
#: ... except these, which start or are model/plot code by design.
TORCH_ALLOWED = ("vitbench.gate.ab", "vitbench.gate.lockstep", "vitbench.gate.selftest",
                 "vitbench.report.plots")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every vitbench module ``path`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("vitbench"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in modules else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("vitbench")}
    return {m for m in found if m in modules}


def layer_of(module: str) -> int | None:
    for index, layer in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in layer):
            return index
    return None


def test_no_relative_imports():
    relative = [f"{module_name(p)}:{node.lineno}" for p in PACKAGE.rglob("*.py")
                for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
                if isinstance(node, ast.ImportFrom) and node.level]
    assert relative == []


def test_every_module_belongs_to_a_layer():
    modules = all_modules()
    unplaced = [m for m in modules if layer_of(m) is None
                and m not in ("vitbench", "vitbench.__main__")]
    assert unplaced == []


def test_layers_only_import_downward():
    modules = all_modules()
    upward = []
    for name, path in modules.items():
        own = layer_of(name)
        if own is None:
            continue
        for target in imports_of(path, modules):
            if target == "vitbench":  # the package itself: __version__
                continue
            if layer_of(target) is not None and layer_of(target) > own:
                upward.append(f"{name} -> {target}")
    assert upward == []


def test_import_graph_has_no_cycles():
    modules = all_modules()
    graph = {name: imports_of(path, modules) - {name, "vitbench"} for name, path in modules.items()}
    # A package __init__ that re-exports its submodules is not a cycle with them.
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target, stack + [target])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_no_private_name_is_imported_from_another_module():
    private = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vitbench"):
                private += [f"{module_name(path)}: {node.module}.{a.name}" for a in node.names
                            if a.name.startswith("_") and not a.name.startswith("__")]
    assert private == []


def test_no_module_grows_past_the_size_that_hides_several_jobs():
    too_long = {module_name(p): n for p in PACKAGE.rglob("*.py")
                if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert too_long == {}


TORCH_BLOCKED = """
import importlib, sys

class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")

sys.meta_path.insert(0, BlockTorch())
import vitbench
assert vitbench.load_suite and vitbench.RunResult and vitbench.ExitCode
for name in {names!r}:
    importlib.import_module(name)
print("ok")
"""


def test_the_data_layers_import_without_torch():
    names = ["vitbench", "vitbench.errors", "vitbench.files", "vitbench.records",
             "vitbench.stats", "vitbench.conventions",
             *sorted(m for m in all_modules() if m.startswith(TORCH_FREE_PACKAGES)
                     and not m.startswith(TORCH_ALLOWED))]
    result = subprocess.run([sys.executable, "-c", TORCH_BLOCKED.format(names=names)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize("module", ["vitbench.cli"])
def test_the_cli_starts_without_importing_torch(module):
    code = f"import sys; import {module}; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.strip() == "False", result.stderr[-2000:]
