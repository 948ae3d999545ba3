"""The node on a CPU without native bf16 (LITESEG_CPU_FLAGS), in its own process: weights without an INT8 version are
calibrated on the frames it segments while it keeps publishing every frame in fp32, and it switches to INT8 once
the check passed, saying so in its log and /diagnostics; with ``overlap`` its outputs keep their frames' order."""

from __future__ import annotations

import shutil
import threading
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image
from test_node_io import raw_message

from liteseg_ros.inference.plan import Machine
from liteseg_ros.inference.runners import package_available
from liteseg_ros.model.bundled import bundled_model_path
from liteseg_ros.tools.synthetic.scenes import unseen_frames

from conftest import spawn_node, wait_until_ready

pytestmark = pytest.mark.ros
needs_int8 = pytest.mark.skipif(
    not all(package_available(name) for name in ("openvino", "onnx", "onnxruntime")) or not Machine.detect().x86_64,
    reason="INT8 runs on OpenVINO on x86-64 (and calibrating needs onnx and onnxruntime)")


def model_values(diagnostics, node_name: str) -> dict[str, str]:
    """The last ``<node>: model`` status's values."""
    for array in reversed(diagnostics.snapshot()):
        for status in array.status:
            if status.name == f"{node_name}: model":
                return {value.key: value.value for value in status.values}
    return {}


class Camera(threading.Thread):
    """Publishes ``frames`` in a loop at ``rate`` Hz, each with a new stamp, until stopped."""

    def __init__(self, client, topic: str, frames: list[np.ndarray], rate: float):
        super().__init__(daemon=True)
        self.publisher, self.frames, self.period = client.publisher(Image, topic), frames, 1.0 / rate
        self.sent: list[float] = []
        self.running = True

    def run(self) -> None:
        index = 0
        while self.running:
            msg = raw_message(self.frames[index % len(self.frames)], "rgb8")
            self.publisher.publish(msg)
            self.sent.append(time.monotonic())
            index += 1
            time.sleep(self.period)


@needs_int8
def test_the_node_calibrates_without_holding_frames_back_and_switches_to_int8(ros_client, tmp_path):
    weights = tmp_path / "robot.pt"
    shutil.copyfile(bundled_model_path(), weights)  # the bundled model's weights without their twin
    env = {"LITESEG_CPU_FLAGS": "avx2 fma", "XDG_CACHE_HOME": str(tmp_path / "xdg"), "OMP_NUM_THREADS": "2"}
    node = spawn_node(tmp_path / "logs", "/calibrating", {"weights": str(weights), "device": "cpu",
                                                          "publish_mask": "always", "summary_period": 0.0}, env=env)
    diagnostics = ros_client.collector(DiagnosticArray, "/diagnostics", depth=20)
    masks = ros_client.collector(Image, "/calibrating/liteseg/mask")
    camera = Camera(ros_client, "/calibrating/image", [f.image for f in unseen_frames(40, 360, 640)], rate=10.0)
    try:
        wait_until_ready(ros_client, node, "/calibrating/image", timeout=180)
        camera.start()
        values = ros_client.wait_for(lambda: (v := model_values(diagnostics, node.name)).get(
            "plan precision", "").startswith("int8") and v, timeout=300, what="the switch to INT8")
    finally:
        camera.running = False
        node.stop()
    arrivals = np.array(masks.arrival)
    assert len(arrivals) >= 0.8 * len(camera.sent), (len(arrivals), len(camera.sent))  # fp32 kept publishing
    assert np.diff(arrivals).max() < 2.0, "a frame was held back while the node calibrated"
    assert values["plan precision"].startswith("int8 (switched to INT8 at ")
    assert "calibrated on 32 frames" in values["plan history"] and "plan pending" not in values
    log = node.stderr() + node.stdout()
    assert "INT8: calibrating on 32 frames in a helper process (fp32 keeps running meanwhile)" in log
    assert log.count("precision: switched to INT8 at ") == 1, log


def test_overlapped_stages_publish_in_the_frames_order(ros_client, tiny_weights, tmp_path):
    node = spawn_node(tmp_path, "/overlapped", {"weights": str(tiny_weights), "device": "cpu", "overlap": True,
                                                "input_height": 96, "input_width": 160, "publish_mask": "always",
                                                "publish_overlay": "always"})
    masks = ros_client.collector(Image, "/overlapped/liteseg/mask", depth=100)
    overlays = ros_client.collector(Image, "/overlapped/liteseg/overlay", depth=100)
    frames = [np.ascontiguousarray(np.broadcast_to(np.uint8(value), (720, 1280, 3))) for value in range(0, 250, 25)]
    camera = Camera(ros_client, "/overlapped/image", frames, rate=60.0)  # post-processing at 720p: frames queue
    try:
        wait_until_ready(ros_client, node, "/overlapped/image")
        camera.start()
        ros_client.wait_for(lambda: len(overlays.snapshot()) >= 40, timeout=120, what="40 overlays")
    finally:
        camera.running = False
        node.stop()
    for collected in (masks, overlays):
        stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in collected.snapshot()]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert len(camera.sent) > len(overlays.snapshot())  # frames came faster than one frame's latency: some dropped
    assert "the network and the outputs on two threads (overlap)" in node.stderr() + node.stdout()
