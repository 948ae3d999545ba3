"""The linter, run by `make test` and by `colcon test` as ament_flake8 would be: the tree is clean under ruff.

Settings (rules, line length 120) are in ruff.toml. Skipped where ruff is not installed (rosdep key
python3-ruff-pip, or the `test` extra).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _ruff() -> str | None:
    beside_python = Path(sys.executable).parent / "ruff"
    return str(beside_python) if beside_python.is_file() else shutil.which("ruff")


@pytest.mark.skipif(_ruff() is None, reason="ruff is not installed (pip install ruff; rosdep key python3-ruff-pip)")
def test_the_tree_is_clean_under_ruff():
    run = subprocess.run([_ruff(), "check", "--no-cache", "--output-format", "concise", str(ROOT)],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, f"ruff check found problems (fix them, or ruff check --fix):\n{run.stdout}{run.stderr}"


# Module-level skips allowed: launch_testing's collector plugin is only loaded where launch_testing imports.
IMPORT_SKIPS_ALLOWED = {"launch_testing", "launch_ros"}


def _module_level_skips(tree: ast.Module) -> list[str]:
    """pytest.skip(...) / pytest.importorskip(...) calls that run when the module is imported."""
    found = []
    for statement in tree.body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for call in ast.walk(statement):
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) \
                    and call.func.attr in ("skip", "importorskip") and getattr(call.func.value, "id", "") == "pytest":
                argument = call.args[0].value if call.args and isinstance(call.args[0], ast.Constant) else "?"
                if not (call.func.attr == "importorskip" and argument in IMPORT_SKIPS_ALLOWED):
                    found.append(f"line {call.lineno}: pytest.{call.func.attr}({argument!r})")
    return found


def test_test_modules_never_skip_on_import():
    """launch_testing's pytest plugin (active under `colcon test` where launch_testing is installed) imports every
    test module outside pytest's collection protection: a module-level pytest.skip/importorskip there skips the
    WHOLE run ("collected 0 items / 1 skipped"). Optional dependencies are checked with a skipif mark instead."""
    offenders = {}
    for path in sorted((ROOT / "test").glob("*.py")):
        skips = _module_level_skips(ast.parse(path.read_text(encoding="utf-8")))
        if skips:
            offenders[path.name] = skips
    assert not offenders, f"use pytestmark = pytest.mark.skipif(...) instead: {offenders}"


def test_no_function_is_over_50_lines():
    """Functions under ~50 lines (liteseg_ros/, training/ included: it is liteseg_ros/training)."""
    long = []
    paths = {path.resolve() for folder in ("liteseg_ros", "training") for path in (ROOT / folder).rglob("*.py")}
    for path in sorted(paths):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 50:
                long.append(f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})")
    assert long == [], "split these functions:\n" + "\n".join(long)
