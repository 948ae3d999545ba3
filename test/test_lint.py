"""The linter, run by `make test` and by `colcon test` as ament_flake8 would be: the tree is clean under ruff.

Settings (rules, line length 120) are in ruff.toml. Skipped where ruff is not installed (rosdep key
python3-ruff-pip, or the `test` extra).
"""

from __future__ import annotations

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
