"""Synthetic drives as rosbag2 bags: read back with rosbags for both storages, raw and compressed."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from liteseg_ros.errors import ConfigError
from liteseg_ros.tools.cli.synth import main as synth_main
from liteseg_ros.tools.synthetic import Drive, write_drive_bag
from liteseg_ros.tools.synthetic.bag_writer import START_NS

from bag_factory import HAVE_ROSBAGS, needs_rosbags

if HAVE_ROSBAGS:
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

pytestmark = needs_rosbags

STORE = get_typestore(Stores.ROS2_JAZZY)
H, W, FRAMES, RATE, SEED = 48, 96, 6, 5.0, 21


def read_bag(path: Path) -> tuple[dict[str, str], dict[str, list[tuple[int, object, bytes]]]]:
    """(topic -> type, topic -> [(receive ns, message, raw bytes)])."""
    with Reader(path) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        messages: dict[str, list] = {topic: [] for topic in types}
        for connection, timestamp, raw in reader.messages():
            messages[connection.topic].append((timestamp, STORE.deserialize_cdr(raw, connection.msgtype), raw))
    return types, messages


def jpeg_encode(rgb: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def jpeg_decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def stamp(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


@pytest.fixture(scope="module")
def reference() -> list[tuple[np.ndarray, np.ndarray]]:
    drive = Drive(SEED, H, W, duration_s=FRAMES / RATE)
    return [drive.frame(i / RATE, i)[:2] for i in range(FRAMES)]


@pytest.mark.parametrize("storage,compressed", [("sqlite3", False), ("mcap", True), ("mcap", False)])
def test_bag_reads_back_with_rendered_frames_and_regular_stamps(tmp_path, reference, storage, compressed) -> None:
    path = tmp_path / "drive"
    summary = write_drive_bag(path, frames=FRAMES, height=H, width=W, seed=SEED, rate_hz=RATE, storage=storage,
                              compressed=compressed)
    image_topic = "/camera/image_raw/compressed" if compressed else "/camera/image_raw"
    types, messages = read_bag(path)
    assert types == {image_topic: "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image",
                     "/camera/labels": "sensor_msgs/msg/Image", "/camera/camera_info": "sensor_msgs/msg/CameraInfo"}
    assert summary.topics == types and summary.storage == storage
    assert {topic: len(items) for topic, items in messages.items()} == {topic: FRAMES for topic in types}
    expected_ns = [START_NS + i * 200_000_000 for i in range(FRAMES)]
    for topic in types:
        assert [t for t, _, _ in messages[topic]] == expected_ns
        assert [stamp(m) for _, m, _ in messages[topic]] == expected_ns
        assert all(m.header.frame_id == "camera" for _, m, _ in messages[topic])
    for i, ((_, image, _), (_, gt, _)) in enumerate(zip(messages[image_topic], messages["/camera/labels"])):
        rgb, labels = reference[i]
        assert gt.header == image.header
        assert (gt.encoding, gt.height, gt.width, gt.step) == ("mono8", H, W, W)
        assert np.array_equal(np.asarray(gt.data).reshape(H, W), labels)
        if compressed:
            assert image.format == "jpeg"
            decoded = jpeg_decode(bytes(image.data))
            assert np.array_equal(decoded, jpeg_decode(jpeg_encode(rgb, 90)))  # exactly pillow's quality-90 JPEG
            assert np.abs(decoded.astype(np.int16) - rgb).mean() < 10.0  # ... which is close to the frame
        else:
            assert (image.encoding, image.height, image.width, image.step) == ("rgb8", H, W, 3 * W)
            assert np.array_equal(np.asarray(image.data).reshape(H, W, 3), rgb)


def test_camera_info_describes_the_rendering_camera(tmp_path) -> None:
    write_drive_bag(tmp_path / "drive", frames=2, height=H, width=W, seed=SEED, rate_hz=RATE)
    info = read_bag(tmp_path / "drive")[1]["/camera/camera_info"][0][1]
    camera = Drive(SEED, H, W, duration_s=2 / RATE).camera(0.0)
    assert (info.height, info.width, info.distortion_model) == (H, W, "plumb_bob")
    np.testing.assert_allclose(info.k, [camera.focal, 0, W / 2, 0, camera.focal, H / 2, 0, 0, 1])
    np.testing.assert_allclose(info.p[[0, 2, 5, 6, 10]], [camera.focal, W / 2, camera.focal, H / 2, 1])
    assert not np.any(info.d)


def test_drive_moves_forward_smoothly() -> None:
    drive = Drive(3, 96, 192, duration_s=3.0)
    assert drive.world.camera_speed > 5.0
    assert drive.camera(1.0).z == pytest.approx(drive.world.camera_speed)
    labels = [drive.frame(i / 10.0, i)[1] for i in (0, 1, 2, 20)]
    neighbours = [(a == b).mean() for a, b in zip(labels[:2], labels[1:3])]
    assert min(neighbours) > 0.75, neighbours  # 10 Hz: a frame later, most pixels keep their class
    assert (labels[0] == labels[3]).mean() < min(neighbours)  # two seconds later, far less


def test_same_seed_same_messages(tmp_path) -> None:
    for name in ("a", "b"):
        write_drive_bag(tmp_path / name, frames=3, height=H, width=W, seed=5, storage="mcap", compressed=True)
    first, second = (read_bag(tmp_path / name)[1] for name in ("a", "b"))
    assert {t: [raw for _, _, raw in items] for t, items in first.items()} == \
           {t: [raw for _, _, raw in items] for t, items in second.items()}


def test_custom_topics_and_rate(tmp_path) -> None:
    summary = write_drive_bag(tmp_path / "d", frames=3, height=H, width=W, seed=1, rate_hz=30.0,
                              image_topic="/front/image", gt_topic="/front/gt")
    types, messages = read_bag(tmp_path / "d")
    assert set(types) == {"/front/image", "/front/gt", "/camera/camera_info"}
    assert [t for t, _, _ in messages["/front/image"]] == [START_NS + round(i * 1e9 / 30) for i in range(3)]
    assert summary.end_ns == START_NS + round(2 * 1e9 / 30)


def test_refuses_existing_path_and_bad_options_leaving_nothing(tmp_path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(ConfigError, match="exists already"):
        write_drive_bag(tmp_path / "taken", frames=2, height=H, width=W, seed=0)
    for kwargs, message in (
        ({"storage": "rosbag1"}, "unknown bag storage"),
        ({"rate_hz": 0.0}, "rate"),
        ({"frames": 0}, "at least one frame"),
        ({"seed": -3}, "seed"),
        ({"gt_topic": "labels"}, "topic"),
        ({"gt_topic": "/camera/image_raw"}, "must differ"),
    ):
        options = {"frames": 2, "height": H, "width": W, "seed": 0, **kwargs}
        with pytest.raises(ConfigError, match=message):
            write_drive_bag(tmp_path / "new", **options)
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_cli_writes_a_bag(tmp_path, capsys) -> None:
    args = [
        "--bag",
        str(tmp_path / "cli"),
        "--frames",
        "2",
        "--height",
        str(H),
        "--width",
        str(W),
        "--seed",
        "2",
        "--storage",
        "mcap",
        "--compressed",
        "--rate",
        "20",
    ]
    assert synth_main(args) == 0
    assert "storage: mcap" in capsys.readouterr().out
    types, messages = read_bag(tmp_path / "cli")
    assert types["/camera/image_raw/compressed"] == "sensor_msgs/msg/CompressedImage"
    assert [t for t, _, _ in messages["/camera/labels"]] == [START_NS, START_NS + 50_000_000]
    assert synth_main(args) == 2
    assert "exists already" in capsys.readouterr().err
