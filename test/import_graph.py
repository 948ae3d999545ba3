"""The package's imports as a graph, read from the source (every import, those inside functions too): modules
(``liteseg_ros.inference.cache``; ``training/`` is installed as ``liteseg_ros.training``) and rooms (a folder
directly under ``liteseg_ros/``, ``training/``, or a top-level module of its own: ``liteseg_ros/metrics.py``), and
their strongly connected parts (cycles)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Module name -> its file, for liteseg_ros/ and training/."""
    files = {}
    for path in sorted((root / "liteseg_ros").rglob("*.py")) + sorted((root / "training").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        parts = ["liteseg_ros"] + parts if parts[0] == "training" else parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def import_edges(files: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (``from package import name`` counts as the submodule when
    ``name`` is one, else as the package)."""

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    edges = {}
    for module, path in files.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {resolve(alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        package = package.rpartition(".")[0]
                    base = f"{package}.{base}" if base else package
                found |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else resolve(base)
                          for alias in node.names}
        edges[module] = {name for name in found if name and name != module}
    return edges


def room_of(module: str, files: dict[str, Path]) -> str:
    """``liteseg_ros/<folder>/`` (``training/`` for liteseg_ros.training), or a top-level module's file name."""
    parts = module.split(".")
    if len(parts) == 1:
        return "liteseg_ros/__init__.py"
    if parts[1] == "training":
        return "training/"
    if len(parts) > 2 or files[module].name == "__init__.py":
        return f"liteseg_ros/{parts[1]}/"
    return f"liteseg_ros/{parts[1]}.py"


def room_edges(edges: dict[str, set[str]], files: dict[str, Path]) -> dict[str, dict[str, list[tuple[str, str]]]]:
    """Room -> room -> the module imports that make the arrow."""
    rooms: dict[str, dict[str, list[tuple[str, str]]]] = {}
    for source, targets in edges.items():
        for target in targets:
            a, b = room_of(source, files), room_of(target, files)
            if a != b:
                rooms.setdefault(a, {}).setdefault(b, []).append((source, target))
    return rooms


def cycles(graph: dict[str, set[str] | dict]) -> list[list[str]]:
    """The strongly connected parts of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            part = []
            while True:
                other = stack.pop()
                part.append(other)
                if other == node:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for node in list(graph):
        if node not in index:
            visit(node)
    return found
