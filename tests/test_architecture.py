"""The house is one-way: no import cycles, each layer imports only the layers below it, and
inference stands on models alone (docs/ARCHITECTURE.md describes the layers).

The import graph is read from the source with :mod:`ast`: every ``import`` / ``from ... import``
of a ``sketchcolor`` module, at any depth in a file (late imports inside functions count too).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "sketchcolor"

# layer -> layers it must not import (cli.py, demo.py and the other root modules are free).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "data": ("models", "losses", "training", "evaluation", "inference"),
    "models": ("losses", "training", "evaluation", "inference"),
    "losses": ("training", "evaluation", "inference"),
    "training": ("evaluation", "inference"),
    "inference": ("training", "losses", "evaluation"),
    "app": ("training", "losses", "evaluation"),  # the web app: a shell over inference
}

# The bottom layer: importable from anywhere, importing none of the layers.
ROOT_UTILITIES = tuple(f"{PACKAGE}.{m}" for m in ("atomic", "config", "device", "errors", "formats", "hashing", "jsonfile", "outputs", "version"))


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (packages by ``__init__``)."""
    found = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules that ``name`` (at ``path``) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()

    def add(target: str) -> None:
        while target and target not in modules:  # `import a.b.c` binds a, a.b and a.b.c: keep the module
            target = target.rpartition(".")[0]
        if target and target != name:
            out.add(target)

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            if source != PACKAGE and not source.startswith(PACKAGE + "."):
                continue
            for alias in node.names:  # `from a.b import c`: the module a.b.c when there is one
                full = f"{source}.{alias.name}"
                add(full if full in modules else source)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_graph_reader_sees_late_and_relative_imports(tmp_path: Path) -> None:
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .b import x\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from sketchcolor.sub import c\n    import sketchcolor.d.e\n")
    (pkg / "sub" / "c.py").write_text("from .. import d\n")
    (pkg / "d.py").write_text("")
    modules = {"sketchcolor": pkg / "__init__.py", "sketchcolor.sub": pkg / "sub" / "__init__.py",
               "sketchcolor.sub.b": pkg / "sub" / "b.py", "sketchcolor.sub.c": pkg / "sub" / "c.py",
               "sketchcolor.d": pkg / "d.py"}
    assert _imports("sketchcolor.sub", modules["sketchcolor.sub"], modules) == {"sketchcolor.sub.b"}
    assert _imports("sketchcolor.sub.b", modules["sketchcolor.sub.b"], modules) == {"sketchcolor.sub.c", "sketchcolor.d"}
    assert _imports("sketchcolor.sub.c", modules["sketchcolor.sub.c"], modules) == {"sketchcolor.d"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_graph_covers_the_package() -> None:
    graph = import_graph()
    assert {"sketchcolor.inference.pipeline", "sketchcolor.models.serialization", "sketchcolor.training.loop"} <= set(graph)
    assert "sketchcolor.models.serialization" in graph["sketchcolor.inference.pipeline"]


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_only_downward(layer: str) -> None:
    graph = import_graph()
    bad = sorted(f"{src} -> {dst}" for src, targets in graph.items() if src.split(".")[1:2] == [layer]
                 for dst in targets if dst.split(".")[1:2] and dst.split(".")[1] in FORBIDDEN[layer])
    assert not bad, f"{layer} must not import {', '.join(FORBIDDEN[layer])}:\n" + "\n".join(bad)


def test_root_utilities_stand_alone() -> None:
    """The bottom of the house (config, errors, atomic writes, ...) imports only itself."""
    graph = import_graph()
    bad = sorted(f"{src} -> {dst}" for src in ROOT_UTILITIES for dst in graph[src] if dst not in ROOT_UTILITIES)
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module", ["sketchcolor.inference", "sketchcolor.inference.pipeline"])
def test_inference_loads_no_training_losses_or_evaluation(module: str) -> None:
    code = f"import {module}, sys; print(sorted(m for m in sys.modules if m.startswith('sketchcolor.')))"
    # a fresh interpreter: this process has long imported everything. The timeout is generous
    # because importing torch on a loaded 2-core machine can take minutes.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, check=True, env=env)
    loaded = ast.literal_eval(out.stdout.strip().splitlines()[-1])
    assert "sketchcolor.models.serialization" in loaded
    bad = [m for m in loaded if m.split(".")[1] in ("training", "losses", "evaluation")]
    assert not bad, f"importing {module} loads {bad}"
