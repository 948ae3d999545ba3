"""Writes a synthetic drive as a rosbag2 bag (sqlite3 or mcap) with ``rosbags``.

Per frame, all with the same header (frame_id "camera", stamps ``1/rate`` apart from a fixed start)
and a receive time equal to the header stamp:

- the camera image: ``sensor_msgs/msg/Image`` rgb8 on ``image_topic``, or with ``compressed`` a
  ``sensor_msgs/msg/CompressedImage`` (JPEG, quality 90) on ``<image_topic>/compressed``;
- the ground truth: ``sensor_msgs/msg/Image`` mono8 of Cityscapes labelIds on ``gt_topic``;
- ``sensor_msgs/msg/CameraInfo`` of the renderer's pinhole camera on ``camera_info_topic``.

The bag is written beside ``path`` and renamed into place when complete
(:func:`liteseg_ros.files.atomic_folder`), so an interrupted run never leaves a half-written bag at ``path``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from liteseg_ros.errors import ConfigError
from liteseg_ros.files import atomic_folder
from liteseg_ros.logs import get_logger
from liteseg_ros.stamps import NS_PER_S, stamp_parts
from liteseg_ros.tools.synthetic.canvas import Camera
from liteseg_ros.tools.synthetic.scene import Drive, check_seed, check_size

LOG = get_logger(__name__)

#: header stamp of the first frame (2023-11-14 22:13:20 UTC), in nanoseconds
START_NS = 1_700_000_000 * NS_PER_S
FRAME_ID = "camera"
JPEG_QUALITY = 90
STORAGES = ("sqlite3", "mcap")
DEFAULT_IMAGE_TOPIC = "/camera/image_raw"
DEFAULT_GT_TOPIC = "/camera/labels"
DEFAULT_CAMERA_INFO_TOPIC = "/camera/camera_info"
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"


@dataclass(frozen=True)
class BagSummary:
    """What :func:`write_drive_bag` wrote."""

    path: Path
    storage: str
    frames: int
    rate_hz: float
    height: int
    width: int
    seed: int
    compressed: bool
    topics: dict[str, str]  # topic -> message type
    start_ns: int
    end_ns: int
    camera_speed_mps: float


def frame_stamp_ns(index: int, rate_hz: float) -> int:
    """Header stamp (ns) of frame ``index``."""
    return START_NS + int(round(index * NS_PER_S / rate_hz))


def write_drive_bag(path: str | Path, *, frames: int, height: int, width: int, seed: int, rate_hz: float = 10.0,
                    storage: str = "sqlite3", compressed: bool = False, image_topic: str = DEFAULT_IMAGE_TOPIC,
                    gt_topic: str = DEFAULT_GT_TOPIC,
                    camera_info_topic: str = DEFAULT_CAMERA_INFO_TOPIC) -> BagSummary:
    """Render a ``frames``-long drive at ``rate_hz`` and write it as a rosbag2 bag at ``path``.

    ``path`` must not exist. The same arguments give the same messages.
    """
    path = Path(path)
    image_topic = f"{image_topic.rstrip('/')}/compressed" if compressed else image_topic
    _check_arguments(path, frames, height, width, rate_hz, storage, (image_topic, gt_topic, camera_info_topic))
    check_seed(seed)
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    drive = Drive(seed, height, width, duration_s=frames / rate_hz)
    topics = {image_topic: COMPRESSED_TYPE if compressed else IMAGE_TYPE, gt_topic: IMAGE_TYPE,
              camera_info_topic: CAMERA_INFO_TYPE}
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with atomic_folder(path, create=False) as staging, \
            Writer(staging, version=Writer.VERSION_LATEST, storage_plugin=plugin) as writer:
        connections = {topic: writer.add_connection(topic, kind, typestore=store) for topic, kind in topics.items()}
        for index in range(frames):
            ns = frame_stamp_ns(index, rate_hz)
            rgb, label_ids, _ = drive.frame(index / rate_hz, index)
            messages = _frame_messages(store, ns, rgb, label_ids, drive.camera(index / rate_hz), compressed)
            for topic, msg in zip(topics, messages):
                writer.write(connections[topic], ns, store.serialize_cdr(msg, topics[topic]))
            if (index + 1) % 100 == 0:
                LOG.info("rendered %d / %d frames", index + 1, frames)
    return BagSummary(path=path, storage=storage, frames=frames, rate_hz=rate_hz, height=height, width=width,
                      seed=seed, compressed=compressed, topics=topics, start_ns=START_NS,
                      end_ns=frame_stamp_ns(frames - 1, rate_hz), camera_speed_mps=drive.world.camera_speed)


def _check_arguments(path: Path, frames: int, height: int, width: int, rate_hz: float, storage: str,
                     topics: tuple[str, ...]) -> None:
    check_size(height, width)
    if frames < 1:
        raise ConfigError(f"a drive needs at least one frame, got frames={frames}")
    if not rate_hz > 0:
        raise ConfigError(f"the camera rate must be > 0 Hz, got {rate_hz}")
    if storage not in STORAGES:
        raise ConfigError(f"unknown bag storage {storage!r}: use one of {', '.join(STORAGES)}")
    for topic in topics:
        if not topic.startswith("/") or " " in topic or topic.endswith("/"):
            raise ConfigError(f"topic {topic!r} is not an absolute ROS topic name like /camera/image_raw")
    if len(set(topics)) != len(topics):
        raise ConfigError(f"image, ground-truth and camera-info topics must differ, got {', '.join(topics)}")
    if path.exists() or path.is_symlink():
        raise ConfigError(f"{path} exists already: choose a new bag path (bags are never overwritten)")


def _frame_messages(store: Any, ns: int, rgb: np.ndarray, label_ids: np.ndarray, camera: Camera,
                    compressed: bool) -> tuple[Any, Any, Any]:
    types = store.types
    sec, nanosec = stamp_parts(ns)
    stamp = types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)
    header = types["std_msgs/msg/Header"](stamp=stamp, frame_id=FRAME_ID)
    if compressed:
        buffer = io.BytesIO()
        Image.fromarray(rgb, "RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
        image = types[COMPRESSED_TYPE](header=header, format="jpeg", data=np.frombuffer(buffer.getvalue(), np.uint8))
    else:
        image = _image_msg(types, header, rgb, "rgb8")
    return image, _image_msg(types, header, label_ids, "mono8"), camera_info_msg(types, header, camera)


def _image_msg(types: Any, header: Any, array: np.ndarray, encoding: str) -> Any:
    channels = 1 if array.ndim == 2 else array.shape[2]
    return types[IMAGE_TYPE](header=header, height=array.shape[0], width=array.shape[1], encoding=encoding,
                             is_bigendian=0, step=array.shape[1] * channels,
                             data=np.ascontiguousarray(array, dtype=np.uint8).reshape(-1))


def camera_info_msg(types: Any, header: Any, camera: Camera) -> Any:
    """CameraInfo of the renderer's distortion-free pinhole camera."""
    f, cx, cy = camera.focal, camera.cx, camera.cy
    roi = types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return types[CAMERA_INFO_TYPE](
        header=header, height=camera.height, width=camera.width, distortion_model="plumb_bob",
        d=np.zeros(5, dtype=np.float64),
        k=np.array([f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0], dtype=np.float64),
        r=np.eye(3, dtype=np.float64).reshape(-1),
        p=np.array([f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0], dtype=np.float64),
        binning_x=0, binning_y=0, roi=roi,
    )
