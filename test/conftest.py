"""Shared fixtures: an isolated ROS 2 graph for this test run, a client node, node processes.

Every run gets its own ROS_DOMAIN_ID (from the pid, skipping domains whose first participant port is
taken on this host) and ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, set in os.environ before any
rclpy.init, so child processes inherit them. Nothing here mocks ROS.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from liteseg_ros.ros.environment import isolated_ros_environment, node_command

ROOT = Path(__file__).resolve().parent.parent


def installed_script(name: str) -> Path:
    """A console script of this package: beside this Python (pip, the venv), in the ament prefix's
    lib/liteseg_ros (colcon, for `colcon test`), or on PATH."""
    candidates = [Path(sys.executable).parent / name]
    try:
        from ament_index_python.packages import get_package_prefix

        candidates.append(Path(get_package_prefix("liteseg_ros")) / "lib" / "liteseg_ros" / name)
    except Exception:  # ament_index_python missing, or the package not on AMENT_PREFIX_PATH
        pass
    on_path = shutil.which(name)
    candidates += [Path(on_path)] if on_path else []
    return next((path for path in candidates if path.is_file()), candidates[0])


_SESSION_ROS_ENV: dict[str, str] = {}

# A suite started in the background by a non-interactive shell (`make test &`, nohup, some CI runners) inherits
# SIGINT ignored, and so would every process it starts: a tool or node would then not see the Ctrl-C a test sends
# it (Python installs its KeyboardInterrupt handler only where SIGINT is not ignored). Handled here, it is reset
# to the default in each started program, as under a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Every process a test starts (start_process) is ended when the test ends, pass or fail: those started while a
# test function runs right after it, those started by fixtures (module or session scope; their finalizers stop
# them first) at the end of the session, and at interpreter exit whatever is left. Each runs in its own process
# group, which is killed as a whole.
SESSION = "session"
_STARTED: dict[str, list[subprocess.Popen]] = {}
_RUNNING_TEST = [SESSION]


def start_process(args: list[Any], **popen_options: Any) -> subprocess.Popen:
    """subprocess.Popen in a new process group, ended at the latest when the test that started it ends."""
    process = subprocess.Popen(args, start_new_session=True, **popen_options)
    _STARTED.setdefault(_RUNNING_TEST[0], []).append(process)
    return process


def end_processes(processes: list[subprocess.Popen]) -> None:
    """Kill the process group of each process still running and reap it."""
    for process in processes:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass


def _end_all_processes() -> None:
    for key in list(_STARTED):
        end_processes(_STARTED.pop(key))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    _RUNNING_TEST[0] = item.nodeid
    try:
        yield
    finally:
        _RUNNING_TEST[0] = SESSION
        end_processes(_STARTED.pop(item.nodeid, []))


def pytest_configure(config):
    """The suite's own package cache (prepared networks, fetched weights): nothing read from or left in the user's,
    and every node process started inherits it."""
    folder = tempfile.mkdtemp(prefix="liteseg-test-cache.")
    os.environ["XDG_CACHE_HOME"] = folder
    atexit.register(shutil.rmtree, folder, True)


def pytest_sessionfinish(session, exitstatus):
    _end_all_processes()


atexit.register(_end_all_processes)


@pytest.fixture(scope="session", autouse=True)
def ros_environment() -> dict[str, str]:
    """Isolate this test run's ROS graph; returns the variables set.

    They are also remembered: the client node and every node process use them even if a test
    (e.g. one running the demo in-process) changes os.environ later.
    """
    requested = os.environ.get("LITESEG_TEST_DOMAIN_ID")
    _SESSION_ROS_ENV.update(isolated_ros_environment(int(requested) if requested else None))
    return dict(_SESSION_ROS_ENV)


class RosClient:
    """A client node spun by a background executor; helpers to publish, collect and call services."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import MultiThreadedExecutor

        self.context = Context()
        rclpy.init(context=self.context, domain_id=int(_SESSION_ROS_ENV["ROS_DOMAIN_ID"]))
        self.node = rclpy.create_node(f"liteseg_test_client_{os.getpid()}", context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def publisher(self, msg_type: Any, topic: str, reliable: bool = True, depth: int = 10) -> Any:
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        reliability = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
        return self.node.create_publisher(msg_type, topic, QoSProfile(depth=depth, reliability=reliability))

    def collector(self, msg_type: Any, topic: str, depth: int = 50) -> "Collector":
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        collector = Collector()
        collector.subscription = self.node.create_subscription(
            msg_type, topic, collector.add, QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE))
        return collector

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def set_parameters(self, node_name: str, values: dict[str, Any], timeout: float = 10.0) -> list[Any]:
        """Call <node>/set_parameters (rcl_interfaces/SetParameters); return the results."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        client = self.node.create_client(SetParameters, f"{node_name}/set_parameters")
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise AssertionError(f"{node_name}/set_parameters is not available")
            request = SetParameters.Request(
                parameters=[Parameter(name, value=value).to_parameter_msg() for name, value in values.items()])
            future = client.call_async(request)
            self.wait_for(future.done, timeout, f"{node_name}/set_parameters")
            return list(future.result().results)
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()
        self._thread.join(timeout=5)


@dataclass
class Collector:
    """Messages received on one topic, in arrival order, with arrival times (monotonic)."""

    messages: list[Any] = field(default_factory=list)
    arrival: list[float] = field(default_factory=list)
    subscription: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, msg: Any) -> None:
        with self._lock:
            self.messages.append(msg)
            self.arrival.append(time.monotonic())

    def find(self, predicate: Callable[[Any], bool]) -> Any:
        with self._lock:
            return next((m for m in self.messages if predicate(m)), None)

    def snapshot(self) -> list[Any]:
        with self._lock:
            return list(self.messages)


@pytest.fixture(scope="session")
def ros_client(ros_environment) -> RosClient:
    client = RosClient()
    yield client
    client.close()


@dataclass
class NodeProcess:
    """A segmentation_node child process with its log files."""

    process: subprocess.Popen
    log_dir: Path
    namespace: str

    @property
    def name(self) -> str:
        return f"{self.namespace}/liteseg"

    def stderr(self) -> str:
        return (self.log_dir / "stderr.txt").read_text(errors="replace")

    def stdout(self) -> str:
        return (self.log_dir / "stdout.txt").read_text(errors="replace")

    def stop(self, signum: int = signal.SIGINT, timeout: float = 20.0) -> int:
        """Send ``signum`` and wait for the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"segmentation_node did not exit {timeout} s after signal {signum}:\n{self.stderr()}")


def node_environment() -> dict[str, str]:
    """The child's environment: ROS isolation from os.environ, one torch thread (as in the tests)."""
    return {**os.environ, **_SESSION_ROS_ENV, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
            "RCUTILS_COLORIZED_OUTPUT": "0"}


def spawn_node(
    log_dir: Path, namespace: str, parameters: dict[str, Any], extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None, executable: str = "segmentation_node",
) -> NodeProcess:
    """Start segmentation_node with ``-p name:=value`` for each parameter (does not wait)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    args = node_command(parameters, namespace=namespace or "/", executable=installed_script(executable))
    args += list(extra_args)
    with open(log_dir / "stdout.txt", "wb") as out, open(log_dir / "stderr.txt", "wb") as err:
        process = start_process(args, stdout=out, stderr=err, env={**node_environment(), **(env or {})}, cwd=ROOT)
    return NodeProcess(process, log_dir, namespace)


def wait_until_ready(client: RosClient, node: NodeProcess, input_topic: str, timeout: float = 60.0) -> None:
    """Wait until the node subscribes to ``input_topic`` and advertises its outputs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.process.poll() is not None:
            raise AssertionError(f"segmentation_node exited with {node.process.returncode}:\n{node.stderr()}")
        if client.node.count_subscribers(input_topic) and client.node.count_publishers(f"{node.name}/mask"):
            return
        time.sleep(0.05)
    raise AssertionError(f"segmentation_node not ready after {timeout} s:\n{node.stderr()}")


def mask_from_node(client: RosClient, log_dir: Path, namespace: str, parameters: dict[str, Any], image: Any,
                   timeout: float = 60.0) -> tuple[Any, str]:
    """Start segmentation_node with ``parameters`` (and publish_mask always), publish the rgb8 ``image`` until
    its mask comes back, stop the node with SIGINT; return (the mask as an array, the node's log)."""
    from sensor_msgs.msg import Image
    from test_node_io import raw_message

    from liteseg_ros.images.conversions import image_msg_to_array

    node = spawn_node(log_dir, namespace, {**parameters, "publish_mask": "always"})
    try:
        wait_until_ready(client, node, f"{namespace}/image")
        masks = client.collector(Image, f"{namespace}/liteseg/mask")
        publisher = client.publisher(Image, f"{namespace}/image")
        sent = raw_message(image, "rgb8")
        answer = client.wait_for(lambda: publisher.publish(sent) or masks.find(
            lambda m: m.header.stamp == sent.header.stamp), timeout, "the node's mask")
        return image_msg_to_array(answer), node.stderr() + node.stdout()
    finally:
        node.stop(signal.SIGINT)


@pytest.fixture(scope="session")
def vision_msgs_environment() -> dict[str, str]:
    """The environment a process needs to import vision_msgs, generated from its message text
    (test/build_vision_msgs.sh, the rosidl wheels of the test extra, cmake + gcc) into build/vision_msgs."""
    out = ROOT / "build" / "vision_msgs"
    build = subprocess.run(["bash", str(ROOT / "test" / "build_vision_msgs.sh"), sys.executable, str(out)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, f"generating vision_msgs failed:\n{build.stdout}\n{build.stderr}"
    install = out / "install"
    site = install / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"

    def prepend(name: str, value: Path) -> str:
        return os.pathsep.join([str(value)] + [p for p in os.environ.get(name, "").split(os.pathsep) if p])

    return {"PYTHONPATH": prepend("PYTHONPATH", site), "LD_LIBRARY_PATH": prepend("LD_LIBRARY_PATH", install / "lib"),
            "AMENT_PREFIX_PATH": prepend("AMENT_PREFIX_PATH", install) + os.pathsep + sys.prefix}


def random_weights(path: Path, classes: Any = None) -> Path:
    """A randomly initialised MobileNetV2 LiteSeg checkpoint (fixed seed) whose masks are not constant, with the
    class set ``classes`` (default Cityscapes).

    Freshly initialised, the classifier bias decides every pixel; without it and with random
    BatchNorm statistics the argmax depends on the image, so tests can tell images apart.
    """
    import torch

    from liteseg_ros.model import CheckpointMeta, build_liteseg, save_checkpoint
    from liteseg_ros.tools.synthetic.batchnorm_statistics import with_random_batchnorm

    torch.manual_seed(0)
    model = with_random_batchnorm(build_liteseg("mobilenetv2", num_classes=len(classes) if classes else 19))
    save_checkpoint(path, model, CheckpointMeta.for_model(model, classes=classes))
    return path


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A randomly initialised Cityscapes MobileNetV2 LiteSeg checkpoint (:func:`random_weights`)."""
    return random_weights(tmp_path_factory.mktemp("weights") / "liteseg_mobilenetv2_test.pt")
