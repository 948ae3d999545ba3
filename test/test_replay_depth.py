"""liteseg-replay on a bag with a registered depth image: the output bag records /liteseg/points, one cloud per frame
with the depth image's header, whose labels are the frame's mask and whose x, y, z the projection computed here;
offline, and live through a real node (which records the node's own clouds)."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
from depth_fixtures import POINT_FIELD_DTYPES, reference_xyz
from test_replay import replay, weights  # noqa: F401 (the module's weights fixture)

from bag_factory import DEPTH_INFO_TOPIC, DEPTH_TOPIC, depth_intrinsics, needs_rosbags, read_bag, write_bag
from conftest import installed_script, spawn_node

pytestmark = needs_rosbags
HEIGHT, WIDTH = 64, 96


def cloud_points(msg) -> np.ndarray:
    """A rosbags PointCloud2's points, read from its own fields."""
    dtype = np.dtype({"names": [f.name for f in msg.fields],
                      "formats": [POINT_FIELD_DTYPES[f.datatype] for f in msg.fields],
                      "offsets": [f.offset for f in msg.fields], "itemsize": msg.point_step})
    return np.frombuffer(np.asarray(msg.data, dtype=np.uint8).tobytes(), dtype=dtype).reshape(msg.height, msg.width)


def stamp(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def check_clouds(out_bag, in_bag, encoding: str, frames: int) -> None:
    out, recorded = read_bag(out_bag), read_bag(in_bag)
    assert {DEPTH_TOPIC, DEPTH_INFO_TOPIC} <= set(out)  # copied as recorded
    clouds = {stamp(m): m for _, m in out["/liteseg/points"]}
    masks = {stamp(m): np.asarray(m.data).reshape(HEIGHT, WIDTH) for _, m in out["/liteseg/mask"]}
    depths = {stamp(m): m for _, m in recorded[DEPTH_TOPIC]}
    assert len(clouds) == frames and set(clouds) == set(depths) == set(masks)
    for key, cloud in clouds.items():
        assert cloud.header.frame_id == "camera_depth" and (cloud.height, cloud.width) == (HEIGHT, WIDTH)
        points = cloud_points(cloud)
        dtype = np.uint16 if encoding == "16UC1" else np.float32
        values = np.frombuffer(np.asarray(depths[key].data, dtype=np.uint8).tobytes(), dtype=dtype)
        expected = reference_xyz(values.reshape(HEIGHT, WIDTH), encoding, **depth_intrinsics(HEIGHT, WIDTH))
        for name, reference in zip("xyz", expected):
            np.testing.assert_allclose(points[name], reference, rtol=2e-6, atol=1e-6, equal_nan=True)
        assert (points["label"] == masks[key]).all()


def test_offline_replay_records_a_cloud_per_frame(tmp_path, weights):  # noqa: F811
    bag = write_bag(tmp_path / "in", frames=3, depth="16UC1")
    run = replay(bag, tmp_path / "out", weights)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["depth"]["topic"] == DEPTH_TOPIC and report["depth"]["clouds"] == 3
    assert (report["depth"]["unpaired_frames"], report["depth"]["unusable_depth"]) == (0, 0)
    check_clouds(tmp_path / "out" / "bag", bag, "16UC1", 3)
    assert "3 clouds on /liteseg/points" in (tmp_path / "out" / "report.md").read_text()


def test_live_replay_records_the_nodes_clouds(tmp_path, weights):  # noqa: F811
    bag = write_bag(tmp_path / "in", frames=4, depth="32FC1")
    node = spawn_node(tmp_path / "node", "/depthreplay",
                      {"weights": str(weights), "device": "cpu", "input_height": 64, "input_width": 96,
                       "publish_mask": "always"},
                      extra_args=("-r", "image:=/camera/image_raw", "-r", f"depth/image:={DEPTH_TOPIC}",
                                  "-r", f"depth/camera_info:={DEPTH_INFO_TOPIC}"))
    try:
        run = subprocess.run([installed_script("liteseg-replay"), bag, "--out", tmp_path / "out", "--live",
                              "--rate", "0.3", "--node-namespace", "/depthreplay/liteseg", "--json"],
                             capture_output=True, text=True, timeout=180, env=dict(os.environ))
    finally:
        assert node.stop() == 0, node.stderr()
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["frames"] == 4
    check_clouds(tmp_path / "out" / "bag", bag, "32FC1", 4)


@pytest.mark.parametrize("option, message", [(("--depth-topic", "/camera/image_raw2"), "no such topic"),
                                             (("--depth-topic", DEPTH_TOPIC, "--depth-info-topic", "/nope"),
                                              "camera_info /nope is not in bag")])
def test_a_depth_topic_that_is_not_there_is_a_one_line_error(tmp_path, weights, option, message):  # noqa: F811
    bag = write_bag(tmp_path / "in", frames=1, depth="16UC1")
    run = replay(bag, tmp_path / "out", weights, *option)
    assert run.returncode == 2 and message in run.stderr and len(run.stderr.strip().splitlines()) == 1
