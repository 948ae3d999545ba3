"""liteseg-replay on the bags robots record: ROS 1 .bag files and zstd-compressed rosbag2 bags give the same masks
and mIoU as the plain rosbag2 bag of the same frames; the output bag is a finished recording with QoS profiles,
camera_info and ground truth copied through, optionally zstd-compressed."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import yaml

from bag_factory import TYPESTORE, needs_rosbags, read_bag, write_bag
from conftest import installed_script

pytestmark = needs_rosbags

INPUT = "64x96"


@pytest.fixture(scope="module")
def weights(tiny_weights):
    return tiny_weights


def replay(bag, out, weights, *extra) -> dict:
    run = subprocess.run([installed_script("liteseg-replay"), bag, "--out", out, "--weights", weights,
                          "--input-size", INPUT, "--device", "cpu", "--gt-topic", "/camera/labels", "--json", *extra],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def _masks(bag) -> list[np.ndarray]:
    return [np.asarray(m.data).reshape(m.height, m.width) for _, m in read_bag(bag)["/liteseg/mask"]]


def write_ros1_copy(rosbag2_path, path):
    """The same messages in a ROS 1 bag (ROS 1 Noetic types: Header.seq, CameraInfo's D/K/R/P)."""
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS1_NOETIC)
    types = store.types
    recorded = read_bag(rosbag2_path)
    with Writer(path) as writer:
        connections = {topic: writer.add_connection(topic, msgs[0][1].__msgtype__, typestore=store)
                       for topic, msgs in recorded.items()}
        rows = sorted((t, topic, m) for topic, msgs in recorded.items() for t, m in msgs)
        for seq, (timestamp, topic, msg) in enumerate(rows):
            header = types["std_msgs/msg/Header"](seq=seq, stamp=types["builtin_interfaces/msg/Time"](
                sec=msg.header.stamp.sec, nanosec=msg.header.stamp.nanosec), frame_id=msg.header.frame_id)
            if msg.__msgtype__ == "sensor_msgs/msg/Image":
                ros1 = types["sensor_msgs/msg/Image"](header=header, height=msg.height, width=msg.width,
                                                      encoding=msg.encoding, is_bigendian=msg.is_bigendian,
                                                      step=msg.step, data=msg.data)
            else:
                roi = types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                                do_rectify=False)
                ros1 = types["sensor_msgs/msg/CameraInfo"](header=header, height=msg.height, width=msg.width,
                                                           distortion_model=msg.distortion_model, D=msg.d, K=msg.k,
                                                           R=msg.r, P=msg.p, binning_x=0, binning_y=0, roi=roi)
            writer.write(connections[topic], timestamp, store.serialize_ros1(ros1, msg.__msgtype__))
    return path


@pytest.fixture(scope="module")
def plain(tmp_path_factory, weights):
    """The reference: a plain rosbag2 (sqlite3) drive and its replay."""
    root = tmp_path_factory.mktemp("plain")
    bag = write_bag(root / "in", frames=4)
    return bag, replay(bag, root / "out", weights), _masks(root / "out" / "bag")


def test_a_ros1_bag_gives_the_same_masks_and_miou(plain, tmp_path, weights):
    bag, report, masks = plain
    ros1 = write_ros1_copy(bag, tmp_path / "drive.bag")
    ros1_report = replay(ros1, tmp_path / "out", weights)
    assert (ros1_report["frames"], ros1_report["gt_frames"]) == (4, 4)
    assert ros1_report["miou"] == report["miou"] and ros1_report["per_class"] == report["per_class"]
    assert all(np.array_equal(a, b) for a, b in zip(_masks(tmp_path / "out" / "bag"), masks, strict=True))
    out = read_bag(tmp_path / "out" / "bag")  # a rosbag2 bag of ROS 2 messages, camera_info converted
    recorded = read_bag(bag)["/camera/camera_info"]
    assert [(m.header.stamp.sec, m.header.stamp.nanosec, list(m.k)) for _, m in out["/camera/camera_info"]] == \
        [(m.header.stamp.sec, m.header.stamp.nanosec, list(m.k)) for _, m in recorded]


@pytest.mark.parametrize("mode", ["file", "message"])
def test_zstd_compressed_rosbag2_input_gives_the_same_masks(plain, tmp_path, weights, mode):
    _, report, masks = plain
    bag = write_bag(tmp_path / "in", frames=4, zstd=mode)
    compressed_report = replay(bag, tmp_path / "out", weights)
    assert compressed_report["miou"] == report["miou"]
    assert all(np.array_equal(a, b) for a, b in zip(_masks(tmp_path / "out" / "bag"), masks, strict=True))


def _profiles(value) -> list:
    """offered_qos_profiles: a list (metadata version 9, Jazzy) or a YAML string (older versions)."""
    return value if isinstance(value, list) else yaml.safe_load(value)


def test_the_output_bag_is_a_finished_recording_with_qos_and_zstd(tmp_path, weights):
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    never = QosTime(sec=0, nsec=0)
    camera_qos = Qos(history=QosHistory.KEEP_LAST, depth=3, reliability=QosReliability.BEST_EFFORT,
                     durability=QosDurability.VOLATILE, deadline=never, lifespan=never,
                     liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=never,
                     avoid_ros_namespace_conventions=False)
    bag = write_bag(tmp_path / "in", frames=3, storage="mcap", camera_qos=(camera_qos,))
    replay(bag, tmp_path / "out", weights, "--storage", "mcap", "--compression", "zstd")
    out_bag = tmp_path / "out" / "bag"
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")) == []  # staging removed
    data_files = sorted(p.name for p in out_bag.iterdir() if p.name != "metadata.yaml")
    assert data_files == ["bag.mcap"], data_files  # named like a finished recording, no ".partial"
    info = yaml.safe_load((out_bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert (info["compression_format"], info["compression_mode"].upper()) == ("zstd", "MESSAGE")
    qos = {entry["topic_metadata"]["name"]: _profiles(entry["topic_metadata"]["offered_qos_profiles"])
           for entry in info["topics_with_message_count"]}
    assert set(qos) == {"/camera/image_raw", "/camera/labels", "/camera/camera_info", "/liteseg/mask",
                        "/liteseg/color_mask", "/liteseg/overlay", "/liteseg/confidence"}
    assert all(profiles for profiles in qos.values()), qos
    camera, mask = qos["/camera/image_raw"][0], qos["/liteseg/mask"][0]
    assert camera["reliability"] in (2, "best_effort") and camera["depth"] == 3  # as recorded
    assert mask["reliability"] in (1, "reliable") and mask["depth"] == 5  # as the node offers them
    out, recorded = read_bag(out_bag), read_bag(bag)
    for topic in ("/camera/image_raw", "/camera/labels", "/camera/camera_info"):
        assert len(out[topic]) == len(recorded[topic]) == 3, topic
    assert len(out["/liteseg/mask"]) == 3


def test_replay_reads_camera_encodings(tmp_path, weights):
    """A bag of yuv422 and bayer frames (built by each encoding's definition) replays like the decoded frames."""
    from rosbags.rosbag2 import Writer
    from test_camera_encodings import encode

    from liteseg_ros.images.conversions import raw_to_segmenter_input
    from liteseg_ros.inference.segmenter import Segmenter

    from bag_factory import frame, header

    rgb, _ = frame(0, 64, 96)
    sent = []
    with Writer(tmp_path / "in", version=Writer.VERSION_LATEST) as writer:
        connection = writer.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=TYPESTORE)
        for index, encoding in enumerate(("yuv422", "bayer_grbg8", "nv21")):
            rows, big = encode(rgb, encoding)
            hdr, ns = header(index)
            msg = TYPESTORE.types["sensor_msgs/msg/Image"](header=hdr, height=64, width=96, encoding=encoding,
                                                           is_bigendian=int(big), step=rows.shape[1],
                                                           data=rows.reshape(-1))
            writer.write(connection, ns, TYPESTORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))
            sent.append(raw_to_segmenter_input(rows.tobytes(), 64, 96, encoding, rows.shape[1], big))
    run = subprocess.run([installed_script("liteseg-replay"), tmp_path / "in", "--out", tmp_path / "out", "--weights",
                          weights, "--input-size", INPUT, "--device", "cpu", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["frames"] == 3 and json.loads(run.stdout)["rejected_frames"] == 0
    segmenter = Segmenter(weights, device="cpu", input_size=(64, 96))
    for (image, encoding), mask in zip(sent, _masks(tmp_path / "out" / "bag"), strict=True):
        assert np.mean(mask == segmenter.segment(image, encoding).mask) >= 0.999
