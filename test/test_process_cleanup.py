"""Every process a test starts is ended when the test ends, pass or fail: a pytest run in a subprocess starts a
node in a test that then fails on purpose (and one in a module fixture whose test fails), and no process is left
once that run is over."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, node_environment

FAILING_TESTS = '''
import pytest
from pathlib import Path

from conftest import spawn_node

OUT = Path(__file__).parent


@pytest.fixture(scope="module")
def module_node():
    node = spawn_node(OUT / "module_node", "/cleanup_module", {})
    (OUT / "module.pid").write_text(str(node.process.pid))
    return node  # no finalizer: the session's end must stop it


def test_a_node_started_in_a_failing_test():
    node = spawn_node(OUT / "test_node", "/cleanup_test", {})
    (OUT / "test.pid").write_text(str(node.process.pid))
    assert False, "on purpose"


def test_a_node_from_a_module_fixture(module_node):
    assert False, "on purpose"
'''


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running (not zombie) process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@pytest.mark.ros
def test_no_process_is_left_after_failing_tests(tmp_path):
    (tmp_path / "test_failing.py").write_text(FAILING_TESTS)
    environment = {**node_environment(), "PYTHONPATH": os.pathsep.join([str(ROOT / "test"),
                                                                        os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest",
                          "--rootdir", str(tmp_path), str(tmp_path / "test_failing.py")],
                         capture_output=True, text=True, timeout=600, env=environment, cwd=tmp_path)
    assert run.returncode == 1 and "2 failed" in run.stdout, run.stdout + run.stderr
    pids = [int((tmp_path / name).read_text()) for name in ("test.pid", "module.pid")]
    assert not [pid for pid in pids if alive(pid)], f"left running: {pids}"
