"""Several cameras on one model (the ``cameras`` parameter), in real node processes: each camera's outputs are
the Segmenter's for its own images with its own headers, a silent camera does not stop the others, each has
its own /diagnostics status, and one process serving two cameras uses far less memory than two processes."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image
from test_node_io import raw_message, same_stamp, scene

from liteseg_ros.images import conversions

from conftest import spawn_node

pytestmark = pytest.mark.ros

NAMESPACE = "/multi"
CAMERAS = ("front", "rear", "side")
SIZE = {"input_height": 64, "input_width": 128, "device": "cpu"}


@pytest.fixture(scope="module")
def three_cameras(ros_client, tiny_weights, tmp_path_factory):
    process = spawn_node(tmp_path_factory.mktemp("cameras"), NAMESPACE,
                         {**SIZE, "weights": str(tiny_weights), "cameras": "[front, rear, side]"})
    ros_client.wait_for(lambda: all(ros_client.node.count_subscribers(f"{NAMESPACE}/{c}/image") for c in CAMERAS)
                        or process.process.poll() is not None, 60, "subscriptions of the three cameras")
    assert process.process.poll() is None, process.stderr()
    publishers = {camera: ros_client.publisher(Image, f"{NAMESPACE}/{camera}/image") for camera in CAMERAS}
    masks = {camera: ros_client.collector(Image, f"{NAMESPACE}/liteseg/{camera}/mask") for camera in CAMERAS}
    yield process, publishers, masks
    process.stop(signal.SIGINT)


@pytest.fixture(scope="module")
def reference(tiny_weights):
    from liteseg_ros.inference.segmenter import Segmenter

    return Segmenter(str(tiny_weights), device="cpu", input_size=(64, 128))


def send_until_answered(client, publisher, collector, msg, timeout: float = 30.0) -> Image:
    """Publish ``msg`` (again every second while discovery completes) until its mask arrives."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        publisher.publish(msg)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            found = collector.find(lambda m: same_stamp(m.header, msg.header))
            if found is not None:
                return found
            time.sleep(0.02)
    raise AssertionError(f"no mask for {msg.header.frame_id}")


def test_each_camera_gets_the_mask_of_its_own_image_with_its_own_header(three_cameras, ros_client, reference):
    _, publishers, masks = three_cameras
    images = {camera: scene(seed=10 + index) for index, camera in enumerate(CAMERAS)}
    sent = {camera: raw_message(images[camera], "rgb8", frame_id=f"{camera}_optical") for camera in CAMERAS}
    answers = {camera: send_until_answered(ros_client, publishers[camera], masks[camera], sent[camera])
               for camera in CAMERAS}
    expected = {camera: reference.segment(images[camera]).mask for camera in CAMERAS}
    assert len({e.tobytes() for e in expected.values()}) == 3, "the three images must give three masks"
    for camera in CAMERAS:
        assert answers[camera].header.frame_id == f"{camera}_optical"
        np.testing.assert_array_equal(conversions.image_msg_to_array(answers[camera]), expected[camera])


def test_a_silent_camera_does_not_stop_the_others(three_cameras, ros_client):
    _, publishers, masks = three_cameras
    front = raw_message(scene(seed=20), "rgb8", frame_id="front_optical")
    send_until_answered(ros_client, publishers["front"], masks["front"], front)  # front then falls silent
    for index in range(5):  # rear and side go on at 10 Hz
        for camera in ("rear", "side"):
            msg = raw_message(scene(seed=30 + index), "rgb8", frame_id=f"{camera}_optical")
            send_until_answered(ros_client, publishers[camera], masks[camera], msg, timeout=10.0)
        time.sleep(0.1)


def test_each_camera_has_its_own_diagnostics_status(three_cameras, ros_client):
    diagnostics = ros_client.collector(DiagnosticArray, "/diagnostics", depth=20)

    def names():
        ours = f"{NAMESPACE}/liteseg:"
        arrays = [a for a in diagnostics.snapshot() if any(s.name.startswith(ours) for s in a.status)]
        return {s.name for s in arrays[-1].status} if arrays else None

    found = ros_client.wait_for(names, 10.0, "the multi-camera node's diagnostics")
    assert found == {f"{NAMESPACE}/liteseg: model"} | {f"{NAMESPACE}/liteseg: segmentation {c}" for c in CAMERAS}


def resident_mb(pid: int) -> float:
    """Resident memory of a process (VmRSS), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_one_process_with_two_cameras_uses_far_less_memory_than_two_processes(ros_client, tiny_weights, tmp_path):
    """Both layouts serve two cameras; each answers a frame per camera before memory is read."""
    common = {**SIZE, "weights": str(tiny_weights)}
    shared = spawn_node(tmp_path / "shared", "/mem_shared", {**common, "cameras": "[front, rear]"})
    single = [spawn_node(tmp_path / name, f"/mem_{name}", common) for name in ("front", "rear")]
    try:
        for namespace, cameras in [("/mem_shared", ("front/", "rear/")), ("/mem_front", ("",)), ("/mem_rear", ("",))]:
            for prefix in cameras:
                publisher = ros_client.publisher(Image, f"{namespace}/{prefix}image")
                collector = ros_client.collector(Image, f"{namespace}/liteseg/{prefix}mask")
                send_until_answered(ros_client, publisher, collector, raw_message(scene(), "rgb8"), timeout=60.0)
        one, two = resident_mb(shared.process.pid), sum(resident_mb(n.process.pid) for n in single)
        print(f"resident memory: one process with two cameras {one:.0f} MB, two single-camera processes {two:.0f} MB")
        assert one < 0.65 * two, (one, two)
    finally:
        for node in (shared, *single):
            node.stop(signal.SIGINT)
