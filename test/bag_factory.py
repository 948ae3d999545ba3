"""Small rosbag2 bags for replay tests, written with rosbags (sqlite3 or mcap, raw or compressed)."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

# No pytest.skip at import time in test modules: launch_testing's collector imports every test module outside
# pytest's protection, and a Skipped raised there skips the whole run (test_test_modules_never_skip_on_import).
HAVE_ROSBAGS = importlib.util.find_spec("rosbags") is not None
needs_rosbags = pytest.mark.skipif(not HAVE_ROSBAGS, reason="rosbags is not installed (pip install rosbags; "
                                   "rosdep key python3-rosbags-pip)")
if HAVE_ROSBAGS:
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

TYPESTORE = get_typestore(Stores.ROS2_JAZZY) if HAVE_ROSBAGS else None
T = TYPESTORE.types if HAVE_ROSBAGS else None
START_NS = 1_700_000_000_000_000_000


def frame(index: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic RGB frame and its labelIds: sky / building / road bands with a moving car."""
    rng = np.random.default_rng(index)
    labels = np.full((height, width), 7, np.uint8)  # road
    labels[: height // 3] = 23  # sky
    labels[height // 3: height // 2] = 11  # building
    x = (index * 7) % max(1, width - width // 4)
    labels[height // 2: height // 2 + height // 6, x: x + width // 4] = 26  # car
    labels[-2:, :] = 1  # ego vehicle (ignored)
    from liteseg_ros.labels import ID_PALETTE

    rgb = ID_PALETTE[labels].astype(np.int16) + rng.integers(-12, 12, (height, width, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8), labels


def header(index: int, rate_hz: float = 10.0):
    ns = START_NS + int(index * 1e9 / rate_hz)
    stamp = T["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
    return T["std_msgs/msg/Header"](stamp=stamp, frame_id="camera"), ns


def image_msg(array: np.ndarray, encoding: str, hdr):
    channels = 1 if array.ndim == 2 else array.shape[2]
    return T["sensor_msgs/msg/Image"](header=hdr, height=array.shape[0], width=array.shape[1], encoding=encoding,
                                      is_bigendian=0, step=array.shape[1] * channels,
                                      data=np.ascontiguousarray(array).reshape(-1))


def compressed_msg(array: np.ndarray, fmt: str, hdr):
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format="JPEG" if fmt == "jpeg" else "PNG", quality=92)
    return T["sensor_msgs/msg/CompressedImage"](header=hdr, format=fmt, data=np.frombuffer(buffer.getvalue(), np.uint8))


def write_bag(path: Path, *, frames: int = 4, height: int = 64, width: int = 96, storage: str = "sqlite3",
              compressed: str | None = None, gt: bool = True, gt_size: tuple[int, int] | None = None,
              image_topic: str = "/camera/image_raw", extra_topics: bool = True, zstd: str | None = None,
              camera_qos: tuple = (), depth: str | None = None) -> Path:
    """Write a drive of ``frames`` images (+ labelIds ground truth, camera_info) at 10 Hz; return the bag path.

    ``zstd``: "file" or "message" compression; ``camera_qos``: the offered QoS profiles recorded for the camera;
    ``depth``: also a registered depth image of this encoding (16UC1 / 32FC1, :data:`DEPTH_TOPIC`, with the frame's
    stamp) and its camera_info (:data:`DEPTH_INFO_TOPIC`, intrinsics :data:`depth_fixtures.INTRINSICS` scaled to
    the frame).
    """
    from rosbags.rosbag2 import CompressionFormat, CompressionMode

    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    image_type = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
    writer = Writer(path, version=Writer.VERSION_LATEST, storage_plugin=plugin)
    if zstd:
        writer.set_compression(CompressionMode[zstd.upper()], CompressionFormat.ZSTD)
    with writer:
        cam = writer.add_connection(image_topic, image_type, typestore=TYPESTORE, offered_qos_profiles=camera_qos)
        labels_conn = (
            writer.add_connection("/camera/labels", "sensor_msgs/msg/Image", typestore=TYPESTORE) if gt else None
        )
        info = (
            writer.add_connection("/camera/camera_info", "sensor_msgs/msg/CameraInfo", typestore=TYPESTORE)
            if extra_topics
            else None
        )
        depth_connections = _depth_connections(writer) if depth else None
        for index in range(frames):
            rgb, labels = frame(index, height, width)
            hdr, ns = header(index)
            if depth_connections:
                _write_depth(writer, depth_connections, index, depth, height, width)
            msg = compressed_msg(rgb, compressed, hdr) if compressed else image_msg(rgb, "rgb8", hdr)
            writer.write(cam, ns, TYPESTORE.serialize_cdr(msg, image_type))
            if labels_conn is not None:
                if gt_size:
                    labels = np.array(PILImage.fromarray(labels).resize(gt_size[::-1], PILImage.NEAREST))
                writer.write(
                    labels_conn, ns, TYPESTORE.serialize_cdr(image_msg(labels, "mono8", hdr), "sensor_msgs/msg/Image")
                )
            if info is not None:
                cam_info = T["sensor_msgs/msg/CameraInfo"](
                    header=hdr,
                    height=height,
                    width=width,
                    distortion_model="plumb_bob",
                    d=np.zeros(5),
                    k=np.eye(3).reshape(-1),
                    r=np.eye(3).reshape(-1),
                    p=np.zeros(12),
                    binning_x=0,
                    binning_y=0,
                    roi=T["sensor_msgs/msg/RegionOfInterest"](
                        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
                    ),
                )
                writer.write(info, ns, TYPESTORE.serialize_cdr(cam_info, "sensor_msgs/msg/CameraInfo"))
    return path


DEPTH_TOPIC, DEPTH_INFO_TOPIC = "/camera/depth/image_raw", "/camera/depth/camera_info"


def depth_intrinsics(height: int, width: int) -> dict[str, float]:
    """The depth camera's fx, fy, cx, cy for a ``height`` x ``width`` frame."""
    return {"fx": 0.8 * width, "fy": 0.8 * width, "cx": (width - 1) / 2, "cy": (height - 1) / 2}


def _depth_connections(writer):
    return (writer.add_connection(DEPTH_TOPIC, "sensor_msgs/msg/Image", typestore=TYPESTORE),
            writer.add_connection(DEPTH_INFO_TOPIC, "sensor_msgs/msg/CameraInfo", typestore=TYPESTORE))


def _write_depth(writer, connections, index: int, encoding: str, height: int, width: int) -> None:
    """The registered depth image of frame ``index`` (written before the colour frame, as drivers often do) and its
    camera_info, with the frame's stamp and the depth frame id."""
    from depth_fixtures import depth_scene

    hdr, ns = header(index)
    hdr = T["std_msgs/msg/Header"](stamp=hdr.stamp, frame_id="camera_depth")
    values = depth_scene(height, width, encoding, seed=index)
    msg = T["sensor_msgs/msg/Image"](header=hdr, height=height, width=width, encoding=encoding, is_bigendian=0,
                                     step=width * values.itemsize, data=values.view(np.uint8).reshape(-1))
    f = depth_intrinsics(height, width)
    info = T["sensor_msgs/msg/CameraInfo"](
        header=hdr, height=height, width=width, distortion_model="plumb_bob", d=np.zeros(5),
        k=np.array([f["fx"], 0, f["cx"], 0, f["fy"], f["cy"], 0, 0, 1.0]), r=np.eye(3).reshape(-1),
        p=np.array([f["fx"], 0, f["cx"], 0, 0, f["fy"], f["cy"], 0, 0, 0, 1.0, 0]), binning_x=0, binning_y=0,
        roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
    writer.write(connections[1], ns, TYPESTORE.serialize_cdr(info, "sensor_msgs/msg/CameraInfo"))
    writer.write(connections[0], ns, TYPESTORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))


def read_bag(path: Path) -> dict[str, list]:
    """topic -> list of (timestamp, deserialised message)."""
    from rosbags.rosbag2 import Reader

    topics: dict[str, list] = {}
    with Reader(path) as reader:
        for connection, timestamp, raw in reader.messages():
            topics.setdefault(connection.topic, []).append(
                (timestamp, TYPESTORE.deserialize_cdr(raw, connection.msgtype))
            )
    return topics


def dusk_camera(rgb: np.ndarray) -> np.ndarray:
    """A street frame as another camera at dusk sees it (channels swapped, darker): a domain the model does not know."""
    return (rgb[..., ::-1].astype(np.float32) * 0.6).astype(np.uint8)


def write_mining_bag(path: Path, *, height: int = 180, width: int = 320, views: int = 12, still: int = 6,
                     topic: str = "/camera/image_raw", seed: int = 21, compressed: bool = False,
                     storage: str = "sqlite3") -> tuple[Path, list[tuple[str, int]]]:
    """A recording of two domains, the street the bundled model knows and the same streets through a dusk camera,
    in alternating stretches; every view is held for ``still`` frames (a robot standing still: noise only); with
    ``compressed`` as JPEG CompressedImage. Returns the bag and, per message, (domain, view number)."""
    from liteseg_ros.tools.synthetic.scenes import unseen_frames

    streets = [frame.image for frame in unseen_frames(views, height, width, seed=seed)]
    rng = np.random.default_rng(4)
    truth, index = [], 0
    kind = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
    writer = Writer(path, version=Writer.VERSION_LATEST,
                    storage_plugin=StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3)
    with writer:
        cam = writer.add_connection(topic, kind, typestore=TYPESTORE)
        for view, street in enumerate(streets):
            domain = "dusk" if view % 2 else "street"
            base = dusk_camera(street) if domain == "dusk" else street
            for _ in range(still):
                noisy = np.clip(base.astype(np.int16) + rng.integers(-3, 4, base.shape), 0, 255).astype(np.uint8)
                hdr, ns = header(index)
                msg = compressed_msg(noisy, "jpeg", hdr) if compressed else image_msg(noisy, "rgb8", hdr)
                writer.write(cam, ns, TYPESTORE.serialize_cdr(msg, kind))
                truth.append((domain, view))
                index += 1
    return path, truth
