"""Invalid start-up parameters: one clear error line, a non-zero exit, no traceback.

All the failing node processes start at once (each imports torch) to keep the module quick. The
other invalid values (transport, QoS, output switches) take the same ConfigError path; their
messages are checked without a process in test_node_config.py.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import spawn_node

pytestmark = pytest.mark.ros


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


CASES = {
    "unknown backbone": ({"backbone": "resnet50"},
                         "backbone='resnet50' is invalid: choose one of mobilenetv2, shufflenet, darknet19"),
    "missing weights file": ({"weights": "/nonexistent/liteseg.pt"},
                             "weights file /nonexistent/liteseg.pt does not exist"),
    "weights of another backbone": ({"weights": "{shufflenet}"}, "has keys for shufflenet, but backbone=mobilenetv2"),
    "CUDA asked for but absent": ({"weights": "{mobilenetv2}", "device": "cuda"}, "cuda"),
    "optimisation the device cannot run": ({"weights": "{mobilenetv2}", "device": "cpu", "optimize": "cuda_graphs"},
                                           "optimize: cuda_graphs needs device=cuda"),
    "unknown optimisation": ({"optimize": "turbo"}, "unknown optimize option 'turbo'"),
    "input size out of range": ({"input_width": 8000}, "Parameter input_width out of range"),
    "input size too small": ({"input_width": 8, "input_height": 8}, "input_width=8 is invalid: give an integer in"),
    "input size of the wrong type": ({"input_height": "tall"}, "'input_height' to 'tall' of type 'STRING'"),
}


@pytest.fixture(scope="module")
def shufflenet_weights(tmp_path_factory):
    import torch

    from liteseg_ros.model import build_liteseg, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("shufflenet") / "liteseg_shufflenet.pt"
    save_checkpoint(path, build_liteseg("shufflenet").eval())
    return path


@pytest.fixture(scope="module")
def failed_starts(tiny_weights, shufflenet_weights, tmp_path_factory):
    """name -> (exit code, stderr) of every case, run in parallel."""
    logs = tmp_path_factory.mktemp("startup")
    files = {"{shufflenet}": str(shufflenet_weights), "{mobilenetv2}": str(tiny_weights)}
    processes = {}
    for index, (name, (parameters, _)) in enumerate(CASES.items()):
        if name == "CUDA asked for but absent" and _cuda_available():
            continue
        parameters = {key: files.get(str(value), value) for key, value in parameters.items()}
        processes[name] = spawn_node(logs / f"case{index}", f"/startup{index}", parameters)
    results = {}
    for name, node in processes.items():
        try:
            code = node.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            node.process.kill()
            code = node.process.wait()
        results[name] = (code, node.stderr())
    return results


@pytest.mark.parametrize("case", list(CASES))
def test_start_up_error_is_one_clear_line(failed_starts, case):
    if case not in failed_starts:
        pytest.skip("CUDA is available on this machine")
    code, stderr = failed_starts[case]
    assert code == 1, stderr
    assert "Traceback" not in stderr
    error_lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(error_lines) == 1, stderr
    assert error_lines[0].startswith("[ERROR]") and "cannot start:" in error_lines[0]
    assert ".liteseg]: cannot start:" in error_lines[0], "logged under the node's namespaced name"
    assert CASES[case][1] in error_lines[0]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_start_up_stops_the_node_at_once(ros_client, tiny_weights, tmp_path, signum):
    """launch sends SIGINT and escalates to SIGKILL after a few seconds, so a slow start-up (a big model on a
    small CPU; here 100 warm-up passes at 1024x2048, a minute of work) must end promptly, with exit code 0."""
    namespace = f"/slow_start_{signum}"
    node = spawn_node(tmp_path, namespace, {"weights": str(tiny_weights), "device": "cpu", "input_width": 2048,
                                            "input_height": 1024, "optimize": "fold_bn,warmup=100"})
    ros_client.wait_for(lambda: "preparing the network" in node.stderr() or node.process.poll() is not None, 60,
                        "the node inside the model set-up")
    started = time.monotonic()
    code = node.stop(signum, timeout=30)
    assert code == 0, node.stderr()
    assert time.monotonic() - started < 8.0, "start-up was not interrupted"
    assert "Traceback" not in node.stderr()
    assert f"interrupted by {signal.Signals(signum).name} while starting; stopped" in node.stderr(), node.stderr()


def mapped(pid: int, library: str) -> bool:
    """Whether the process has loaded a shared library whose path contains ``library`` (it is importing it)."""
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.parametrize("importing", ["rclpy", "libtorch"])
def test_a_signal_while_the_node_is_still_importing_exits_quietly_with_0(ros_client, tiny_weights, tmp_path,
                                                                          importing):
    """Ctrl-C right after `ros2 launch` reaches the process while Python still imports rclpy (or torch) and the node:
    sent once the process has loaded that library, whatever the machine's load."""
    node = spawn_node(tmp_path, "/early_stop", {"weights": str(tiny_weights), "device": "cpu"})
    ros_client.wait_for(lambda: mapped(node.process.pid, importing) or node.process.poll() is not None, 60,
                        f"the node importing {importing}")
    assert node.stop(signal.SIGINT, timeout=30) == 0, node.stderr()
    assert "Traceback" not in node.stderr() and "KeyboardInterrupt" not in node.stderr()


SIGNAL_INSIDE_AN_IMPORT = """
import os, signal, sys, tempfile
from liteseg_ros.ros.node import _interrupt
signal.signal(signal.SIGINT, _interrupt)
folder = tempfile.mkdtemp()
with open(os.path.join(folder, "slow_extension.py"), "w") as module:
    module.write("import os, signal\\nos.kill(os.getpid(), signal.SIGINT)\\nfor _ in range(10**6): pass\\n")
sys.path.insert(0, folder)
try:
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(10**6): pass
except KeyboardInterrupt:
    print("outside an import: KeyboardInterrupt", flush=True)
import slow_extension
print("not reached", flush=True)
"""


def test_a_signal_inside_an_import_ends_the_start_up_at_once_and_elsewhere_interrupts_it(tmp_path):
    """Inside an import (torch and OpenVINO initialise C extensions there, where an exception aborts the process:
    exit -6 once in CI) the start-up ends at once with 0; elsewhere it is a KeyboardInterrupt the node handles."""
    run = subprocess.run([sys.executable, "-c", SIGNAL_INSIDE_AN_IMPORT], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["outside an import: KeyboardInterrupt"]
    assert "interrupted by SIGINT while starting; stopped" in run.stderr  # the one message, inside an import too
    assert "Traceback" not in run.stderr
