"""~/points through real node processes: a colour frame, a registered depth image and its camera_info with one stamp
give a cloud whose x, y, z are the projection computed here, whose labels are ~/mask, whose rgb is ~/color_mask and
whose confidence is ~/confidence; 32FC1 at half resolution with invalid pixels and a stamp within depth_slop, with
output_size depth; every bad input survived (masks keep coming, counted in /diagnostics) and the cloud back on the
next good frame; a depth image arriving after its frame; several cameras."""

from __future__ import annotations

import itertools
import signal
import time

import numpy as np
import pytest
from depth_fixtures import (
    INTRINSICS,
    camera_info_message,
    depth_message,
    depth_scene,
    packed_rgb,
    read_cloud,
    reference_xyz,
)
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header
from test_node_io import raw_message

from liteseg_ros.images.conversions import image_msg_to_array
from liteseg_ros.tools.synthetic.scenes import unseen_frames

from conftest import spawn_node, wait_until_ready

pytestmark = pytest.mark.ros

HEIGHT, WIDTH = 120, 160  # the colour camera and the registered depth image
NETWORK = (64, 128)
PARAMETERS = {"device": "cpu", "input_height": NETWORK[0], "input_width": NETWORK[1], "publish_mask": "always",
              "publish_color": "always", "publish_confidence": "always", "publish_overlay": "never"}
_stamps = itertools.count(1)


def stamped(offset_ns: int = 0, frame_id: str = "camera_color_optical") -> Header:
    """A header with a new stamp (``offset_ns`` added), near the current time."""
    now = time.time_ns() // 1_000_000 * 1_000_000 + next(_stamps) * 1000 + offset_ns
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = divmod(now, 1_000_000_000)
    return header


def same(a: Header, b: Header) -> bool:
    return (a.stamp.sec, a.stamp.nanosec) == (b.stamp.sec, b.stamp.nanosec)


class DepthCamera:
    """Publishers of one camera's colour image, depth image and depth camera_info; collectors of the node's outputs."""

    def __init__(self, client, node, camera: str = "", colour_topic: str = "", depth_topic: str = "",
                 info_topic: str = ""):
        prefix = f"{camera}/" if camera else ""
        self.client, self.node = client, node
        self.colour = client.publisher(Image, colour_topic or f"{node.namespace}/{prefix}image")
        self.depth_topic = depth_topic or f"{node.namespace}/{prefix}depth/image"
        self.depth = client.publisher(Image, self.depth_topic)
        self.info = client.publisher(CameraInfo, info_topic or f"{node.namespace}/{prefix}depth/camera_info")
        outputs = f"{node.name}/{prefix}"
        self.points = client.collector(PointCloud2, outputs + "points")
        self.masks = {name: client.collector(Image, outputs + topic)
                      for name, topic in (("mask", "mask"), ("color", "color_mask"), ("confidence", "confidence"))}
        client.wait_for(lambda: client.node.count_subscribers(self.depth_topic), 30.0,
                        f"the node subscribing to {self.depth_topic} (~/points has a subscriber)")

    def send(self, image, depth_values, encoding, info=None, depth_offset_ns=0, depth_first=True) -> Header:
        """Publish a colour frame, its depth image (stamped ``depth_offset_ns`` later) and camera_info."""
        colour = raw_message(image, "rgb8")
        colour.header = stamped()
        depth_header = Header(frame_id="camera_depth_optical")
        depth_header.stamp.sec, depth_header.stamp.nanosec = divmod(
            colour.header.stamp.sec * 1_000_000_000 + colour.header.stamp.nanosec + depth_offset_ns, 1_000_000_000)
        height, width = depth_values.shape
        self.info.publish(info or camera_info_message(height, width, depth_header, **scaled(height)))
        if depth_first:
            self.depth.publish(depth_message(depth_values, encoding, depth_header))
        self.colour.publish(colour)
        if not depth_first:
            self.client.wait_for(lambda: self.output("mask", colour.header), 30.0, "the frame's mask")
            self.depth.publish(depth_message(depth_values, encoding, depth_header))
        return colour.header

    def output(self, name: str, header: Header):
        return self.masks[name].find(lambda m: same(m.header, header))

    def cloud(self, depth_header_of: Header, offset_ns: int = 0):
        target = depth_header_of.stamp.sec * 1_000_000_000 + depth_header_of.stamp.nanosec + offset_ns
        return self.points.find(lambda m: m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec == target)

    def good_pair(self, image, values, encoding, offset_ns=0, timeout=60.0, depth_first=True):
        """Send frames until one's cloud comes (the node learns the depth size from the first depth image)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            header = self.send(image, values, encoding, depth_offset_ns=offset_ns, depth_first=depth_first)
            try:
                return header, self.client.wait_for(lambda: self.cloud(header, offset_ns), 3.0, "a cloud")
            except AssertionError:
                continue
        raise AssertionError(f"no cloud on {self.node.name}/points within {timeout} s:\n{self.node.stderr()}")


def scaled(height: int) -> dict[str, float]:
    """The test intrinsics of a HEIGHT x WIDTH image, scaled to an image ``height`` rows high (same field of view)."""
    scale = height / HEIGHT
    return {"fx": INTRINSICS["fx"] * scale, "fy": INTRINSICS["fy"] * scale,
            "cx": (INTRINSICS["cx"] + 0.5) * scale - 0.5, "cy": (INTRINSICS["cy"] + 0.5) * scale - 0.5}


def check_cloud(camera: DepthCamera, header: Header, cloud, values, encoding, offset_ns=0) -> None:
    """The cloud of the frame with ``header``: the projection computed here, labels = ~/mask, rgb = ~/color_mask,
    confidence = ~/confidence."""
    points = read_cloud(cloud)
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb", "label", "confidence"]
    assert cloud.header.frame_id == "camera_depth_optical" and (cloud.height, cloud.width) == values.shape
    assert not cloud.is_dense
    for got, expected in zip((points["x"], points["y"], points["z"]),
                             reference_xyz(values, encoding, **scaled(values.shape[0]))):
        np.testing.assert_allclose(got, expected, rtol=2e-6, atol=1e-6, equal_nan=True)
    outputs = {name: camera.client.wait_for(lambda name=name: camera.output(name, header), 10.0, name)
               for name in camera.masks}
    mask = image_msg_to_array(outputs["mask"])
    assert mask.shape == values.shape and len(np.unique(mask)) > 1
    assert (points["label"] == mask).all()
    assert (points["rgb"].view(np.uint32) == packed_rgb(image_msg_to_array(outputs["color"]))).all()
    expected_confidence = image_msg_to_array(outputs["confidence"]).astype(np.float32) / np.float32(255)
    assert (points["confidence"] == expected_confidence).all()


@pytest.fixture(scope="module")
def colour_image():
    return unseen_frames(1, HEIGHT, WIDTH)[0].image


def test_a_cloud_with_the_projection_the_mask_and_its_colours(ros_client, tmp_path, colour_image):
    node = spawn_node(tmp_path, "/depth_exact", PARAMETERS,
                      extra_args=("-r", "depth/image:=/depth_exact/camera/depth", "-r",
                                  "depth/camera_info:=/depth_exact/camera/depth_info"))
    try:
        wait_until_ready(ros_client, node, "/depth_exact/image")
        camera = DepthCamera(ros_client, node, depth_topic="/depth_exact/camera/depth",
                             info_topic="/depth_exact/camera/depth_info")
        values = depth_scene(HEIGHT, WIDTH, "16UC1")
        header, cloud = camera.good_pair(colour_image, values, "16UC1")
        check_cloud(camera, header, cloud, values, "16UC1")
        header, cloud = camera.good_pair(colour_image, values, "16UC1", depth_first=False)  # the frame waited
        check_cloud(camera, header, cloud, values, "16UC1")
        bad_inputs_are_survived(camera, colour_image, values)
    finally:
        assert node.stop(signal.SIGINT) == 0


UNUSABLE = "depth images without a cloud (unusable depth or camera_info)"
UNPAIRED = "frames without a depth image (unpaired)"


def bad_inputs_are_survived(camera: DepthCamera, image, values) -> None:
    """Each bad input: counted in /diagnostics, its frame's mask still published, no cloud from it; then a good
    frame gives a cloud again."""
    diagnostics = camera.client.collector(DiagnosticArray, "/diagnostics", depth=20)

    def counts() -> dict[str, int]:
        for array in reversed(diagnostics.snapshot()):
            for status in array.status:
                pairs = {kv.key: kv.value for kv in status.values}
                if status.name.startswith(camera.node.name) and UNUSABLE in pairs:
                    return {key: int(pairs[key]) for key in (UNUSABLE, UNPAIRED, "clouds published")}
        return {}

    def counted(key: str, before: dict[str, int]) -> bool:
        return counts().get(key, 0) > before[key]

    start = camera.client.wait_for(counts, 10.0, "the depth counts in /diagnostics")
    sent = [camera.send(image, values.astype(np.uint8), "mono8")]
    camera.client.wait_for(lambda: counted(UNUSABLE, start), 10.0, "the mono8 depth image counted")
    before = counts()
    sent.append(camera.send(image, values, "16UC1", depth_offset_ns=3_000_000))  # no depth_slop: unpaired
    camera.client.wait_for(lambda: counted(UNPAIRED, before), 10.0, "the unpaired frame counted")
    for bad_info in (camera_info_message(HEIGHT, WIDTH, Header(), 0, 0, 0, 0),  # K and P zero
                     camera_info_message(60, 80, Header(), **scaled(60))):  # another size
        before = counts()
        camera.client.wait_for(lambda info=bad_info: camera.send(image, values, "16UC1", info=info) and False
                               or counted(UNUSABLE, before), 20.0, "a bad camera_info counted")
    for header in sent:
        camera.client.wait_for(lambda header=header: camera.output("mask", header), 30.0, "the mask of a bad input")
    assert not camera.cloud(sent[0]) and not camera.cloud(sent[1], 3_000_000)
    header, cloud = camera.good_pair(image, values, "16UC1")
    check_cloud(camera, header, cloud, values, "16UC1")
    log = camera.node.stderr()
    assert "16UC1 (millimetres) or 32FC1" in log and "no depth image" in log and "no intrinsics" in log


def test_float_depth_at_half_resolution_within_the_slop_with_outputs_at_its_size(ros_client, tmp_path,
                                                                                  colour_image):
    node = spawn_node(tmp_path, "/depth_half", {**PARAMETERS, "depth_slop": 0.01, "output_size": "depth",
                                                "publish_points": "always"})
    try:
        wait_until_ready(ros_client, node, "/depth_half/image")
        camera = DepthCamera(ros_client, node)  # always: depth/image subscribed though not remapped
        values = depth_scene(HEIGHT // 2, WIDTH // 2, "32FC1", seed=4)
        header, cloud = camera.good_pair(colour_image, values, "32FC1", offset_ns=4_000_000)
        check_cloud(camera, header, cloud, values, "32FC1", offset_ns=4_000_000)
    finally:
        assert node.stop(signal.SIGINT) == 0


def test_several_cameras_each_with_their_depth(ros_client, tmp_path, colour_image):
    node = spawn_node(tmp_path, "/depth_cams", {**PARAMETERS, "cameras": ["front", "rear"],
                                                "publish_points": "always"})
    try:
        ros_client.wait_for(lambda: node.process.poll() is not None or ros_client.node.count_publishers(
            f"{node.name}/rear/points"), 60.0, "the node's outputs")
        cameras = [DepthCamera(ros_client, node, name) for name in ("front", "rear")]
        for seed, camera in enumerate(cameras):
            values = depth_scene(HEIGHT, WIDTH, "16UC1", seed=seed)
            header, cloud = camera.good_pair(colour_image, values, "16UC1")
            check_cloud(camera, header, cloud, values, "16UC1")
    finally:
        assert node.stop(signal.SIGINT) == 0
