"""Reading camera bags and writing segmented bags with ``rosbags``.

Input: ROS 1 ``.bag`` files and rosbag2 bags (sqlite3 or mcap, zstd-compressed or not), through one reader
(``rosbags.highlevel.AnyReader``). Output: a rosbag2 bag whose topics carry QoS profiles in metadata.yaml
(the recorded ones where the input has them), so ``ros2 bag play`` offers what the camera offered.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from liteseg_ros.depth.camera import camera_info_topic
from liteseg_ros.errors import BagError
from liteseg_ros.files import atomic_folder
from liteseg_ros.images.conversions import (
    compressed_msg_to_segmenter_input,
    image_msg_to_array,
    image_msg_to_segmenter_input,
)
from liteseg_ros.logs import get_logger
from liteseg_ros.outputs import OUTPUT_ENCODINGS, OUTPUT_QOS_DEPTH, OUTPUT_TABLE, replay_topic

LOG = get_logger(__name__)
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
CLOUD_TYPE = "sensor_msgs/msg/PointCloud2"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
COMPRESSIONS = ("none", "zstd")


def typestore():
    """The ROS 2 Jazzy type store of rosbags (imported lazily: rosbags is only needed for replay)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


@dataclass(frozen=True)
class BagMessage:
    """One deserialised message of the replayed bag."""

    topic: str
    msgtype: str
    timestamp_ns: int  # the bag's receive time
    msg: Any
    rawdata: bytes


def decode_image(message: BagMessage) -> tuple[np.ndarray, str]:
    """(image, encoding) for the Segmenter from an Image or CompressedImage message; ImageError if unusable."""
    if message.msgtype == COMPRESSED_TYPE:
        return compressed_msg_to_segmenter_input(message.msg)
    return image_msg_to_segmenter_input(message.msg)


def ground_truth_array(message: BagMessage) -> np.ndarray:
    """The mono8 label image of a ground-truth message (a zero-copy view); BagError for another encoding."""
    if message.msg.encoding not in ("mono8", "8UC1"):
        raise BagError(
            f"ground-truth topic {message.topic} has encoding {message.msg.encoding}; expected mono8 label ids"
        )
    return image_msg_to_array(message.msg)


class BagSource:
    """An open input bag: its topics, the chosen image and ground-truth topics, and their messages in time order."""

    def __init__(self, path: str | Path, image_topic: str | None = None, gt_topic: str | None = None,
                 depth_topic: str | None = None, depth_info_topic: str | None = None, choose_image: bool = True):
        """Open the bag; ``choose_image`` False leaves ``image_topic`` None unless one is asked for (a caller that
        picks among the bag's camera topics itself)."""
        from rosbags.highlevel import AnyReader

        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist")
        self.typestore = typestore()
        try:
            self._reader = AnyReader([self.path], default_typestore=self.typestore)
            self._reader.open()
        except Exception as error:  # rosbags raises AnyReaderError, but also yaml / sqlite / mcap errors
            raise BagError(f"{self.path} is not a readable rosbag2 bag or ROS 1 .bag: {error}") from None
        self.is_ros1 = not self._reader.is2
        self.topics = {c.topic: c.msgtype for c in self._reader.connections}
        self.image_topic = self._choose_image_topic(image_topic) if choose_image or image_topic else None
        self.gt_topic = self._check_gt_topic(gt_topic)
        self.camera_info_topics = sorted(t for t, kind in self.topics.items() if kind == CAMERA_INFO_TYPE)
        self.depth_topic, self.depth_info_topic = self._choose_depth_topics(depth_topic, depth_info_topic)

    def _choose_image_topic(self, requested: str | None) -> str:
        images = sorted(t for t, kind in self.topics.items() if kind in IMAGE_TYPES)
        if requested:
            if requested not in self.topics:
                raise BagError(f"bag {self.path} has no topic {requested}; image topics: {', '.join(images) or 'none'}")
            if self.topics[requested] not in IMAGE_TYPES:
                raise BagError(f"topic {requested} carries {self.topics[requested]}, not an Image or CompressedImage")
            return requested
        candidates = [t for t in images if not looks_like_label_topic(t)]
        if not images:
            raise BagError(
                f"bag {self.path} has no Image or CompressedImage topic (topics: {', '.join(self.topics) or 'none'})"
            )
        if len(candidates) != 1:
            raise BagError(
                f"bag {self.path} has several image topics ({', '.join(images)}): pick one with --image-topic"
            )
        return candidates[0]

    def _check_gt_topic(self, requested: str | None) -> str | None:
        if requested is None:
            return None
        if self.topics.get(requested) != IMAGE_TYPE:
            found = self.topics.get(requested, "no such topic")
            raise BagError(f"ground-truth topic {requested} must be a mono8 sensor_msgs/msg/Image ({found})")
        return requested

    def _choose_depth_topics(self, requested: str | None, requested_info: str | None) -> tuple[str | None, str | None]:
        """The registered depth image topic (asked for, or the one Image topic named like depth whose camera_info
        is beside it; "" for none) and its camera_info topic; (None, None) for none."""
        if requested == "":
            return None, None
        if requested:
            if self.topics.get(requested) != IMAGE_TYPE:
                raise BagError(f"depth topic {requested} must be a sensor_msgs/msg/Image in bag {self.path} "
                               f"({self.topics.get(requested, 'no such topic')})")
            info = requested_info or camera_info_topic(requested)
            if self.topics.get(info) != CAMERA_INFO_TYPE:
                raise BagError(f"the depth image's camera_info {info} is not in bag {self.path}: give it with "
                               "--depth-info-topic")
            return requested, info
        found = [(t, requested_info or camera_info_topic(t)) for t, kind in self.topics.items()
                 if kind == IMAGE_TYPE and _looks_like_depth(t) and t != self.image_topic]
        found = found if self.image_topic is not None else []
        found = [(t, info) for t, info in found if self.topics.get(info) == CAMERA_INFO_TYPE]
        return found[0] if len(found) == 1 else (None, None)

    @property
    def image_msgtype(self) -> str:
        return self.topics[self.image_topic]

    def first_timestamp_ns(self) -> int:
        """The bag's first receive time (ns)."""
        return int(self._reader.start_time)

    def time_span_ns(self) -> tuple[int, int]:
        """(first receive time, last receive time + 1) of the bag's messages, in ns (from its index)."""
        return int(self._reader.start_time), int(self._reader.end_time)

    def message_count(self, topic: str) -> int:
        """How many messages the bag holds on ``topic`` (from its index)."""
        return sum(c.msgcount for c in self._reader.connections if c.topic == topic)

    @property
    def image_count(self) -> int:
        return self.message_count(self.image_topic)

    def offered_qos(self, topic: str) -> list[Any]:
        """The QoS profiles recorded for ``topic`` (rosbag2 only; empty for ROS 1 bags)."""
        for connection in self._reader.connections:
            if connection.topic == topic:
                return list(getattr(connection.ext, "offered_qos_profiles", None) or [])
        return []

    def messages(self, only: Sequence[str] | None = None, start_ns: int | None = None,
                 stop_ns: int | None = None) -> Iterator[BagMessage]:
        """Image, ground-truth, depth and camera_info messages (``only`` these topics, when given) in bag order,
        received in ``[start_ns, stop_ns)`` when given; a corrupt record raises BagError.

        ``rawdata`` is always CDR (ROS 2): messages of a ROS 1 bag are converted field by field.
        """
        topics = only or (self.image_topic, self.gt_topic, self.depth_topic, *self.camera_info_topics)
        wanted = [c for c in self._reader.connections if c.topic in topics]
        iterator = self._reader.messages(connections=wanted, start=start_ns, stop=stop_ns)
        while True:
            try:
                connection, timestamp, rawdata = next(iterator)
                msg = self._reader.deserialize(rawdata, connection.msgtype)
                if self.is_ros1:
                    msg = to_typestore(msg, self.typestore)
                    rawdata = self.typestore.serialize_cdr(msg, connection.msgtype)
            except StopIteration:
                return
            except Exception as error:
                raise BagError(f"bag {self.path} is corrupt or truncated: {type(error).__name__}: {error}") from None
            yield BagMessage(connection.topic, connection.msgtype, timestamp, msg, rawdata)

    def close(self) -> None:
        self._reader.close()


def to_typestore(value: Any, store: Any) -> Any:
    """A message of another type store (a ROS 1 bag's) rebuilt with ``store``'s classes (ROS 2 Jazzy).

    Fields are matched by name (ROS 1's upper-case CameraInfo ``D``, ``K``, ``R``, ``P`` included); fields ROS 2
    dropped (``Header.seq``) are left out.
    """
    msgtype = getattr(value, "__msgtype__", None)
    if msgtype is None:
        return value
    cls = store.types[msgtype]
    values = {}
    for field in dataclasses.fields(cls):
        item = getattr(value, field.name if hasattr(value, field.name) else field.name.upper())
        is_list = isinstance(item, list)
        values[field.name] = [to_typestore(v, store) for v in item] if is_list else to_typestore(item, store)
    return cls(**values)


def _looks_like_ground_truth(topic: str) -> bool:
    return any(word in topic.lower() for word in ("label", "ground_truth", "groundtruth", "/gt", "semantic"))


def _looks_like_depth(topic: str) -> bool:
    return "depth" in topic.lower()


def looks_like_label_topic(topic: str) -> bool:
    """Whether an Image topic is by its name ground truth or depth rather than a camera (the automatic choice)."""
    return _looks_like_ground_truth(topic) or _looks_like_depth(topic)


class BagSink:
    """The output bag: the input's camera, ground-truth, depth and camera_info topics as recorded, plus the
    segmentation outputs with the input headers (and ``/liteseg/points`` when the input has depth).

    It is written beside its path and moved there when closed (:func:`liteseg_ros.files.atomic_folder`), so the path
    is always a complete, closed bag whose data file is named like a finished recording (``<name>.db3`` /
    ``<name>.mcap``).
    """

    def __init__(self, path: str | Path, source: BagSource, storage: str = "sqlite3", compression: str = "none"):
        from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"output bag {self.path} already exists: remove it or choose another --out")
        if compression not in COMPRESSIONS:
            raise BagError(f"compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}")
        with contextlib.ExitStack() as placing:  # an error before the bag is open leaves nothing behind
            staging = placing.enter_context(atomic_folder(self.path, create=False))
            self.typestore = typestore()
            plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
            self._writer = Writer(staging, version=Writer.VERSION_LATEST, storage_plugin=plugin)
            if compression == "zstd":
                self._writer.set_compression(CompressionMode.MESSAGE, CompressionFormat.ZSTD)
            self._writer.open()
            self._placing = placing.pop_all()  # closed (the bag moved into place) by close()
        copied = [source.image_topic, source.gt_topic, source.depth_topic, *source.camera_info_topics]
        self._copies = {
            topic: self._connection(topic, source.topics[topic], source.offered_qos(topic) or [default_qos(1)])
            for topic in copied if topic
        }
        recorded = [o for o in OUTPUT_TABLE if o.kind == "image" or (o.kind == "cloud" and source.depth_topic)]
        self._outputs = {output.name: self._connection(replay_topic(output.name), output.message_type,
                                                       [default_qos(OUTPUT_QOS_DEPTH)]) for output in recorded}
        self.frames = 0

    def _connection(self, topic: str, msgtype: str, qos: Sequence[Any]) -> Any:
        return self._writer.add_connection(topic, msgtype, typestore=self.typestore, offered_qos_profiles=qos)

    def write_copy(self, message: BagMessage) -> None:
        """Copy an input message (camera image, ground truth, camera_info) as it was recorded."""
        self._writer.write(self._copies[message.topic], message.timestamp_ns, message.rawdata)

    def write_outputs(self, timestamp_ns: int, header: Any, outputs: dict[str, np.ndarray | None]) -> None:
        """Write each non-None output as a sensor_msgs/Image with ``header`` unchanged."""
        image_cls = self.typestore.types[IMAGE_TYPE]
        for name, array in outputs.items():
            if array is None:
                continue
            array = np.ascontiguousarray(array)
            channels = 1 if array.ndim == 2 else array.shape[2]
            msg = image_cls(
                header=header,
                height=array.shape[0],
                width=array.shape[1],
                encoding=OUTPUT_ENCODINGS[name],
                is_bigendian=0,
                step=array.shape[1] * channels,
                data=array.reshape(-1),
            )
            self._writer.write(self._outputs[name], timestamp_ns, self.typestore.serialize_cdr(msg, IMAGE_TYPE))
        self.frames += 1

    def write_cloud(self, timestamp_ns: int, header: Any, cloud: Any) -> None:
        """Write a :class:`liteseg_ros.depth.cloud.Cloud` as sensor_msgs/PointCloud2 with ``header``."""
        types = self.typestore.types
        fields = [types["sensor_msgs/msg/PointField"](name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
                  for f in cloud.layout.fields]
        points = np.ascontiguousarray(cloud.points)
        msg = types[CLOUD_TYPE](header=header, height=cloud.height, width=cloud.width, fields=fields,
                                is_bigendian=False, point_step=cloud.layout.point_step,
                                row_step=cloud.layout.point_step * cloud.width,
                                data=points.view(np.uint8).reshape(-1), is_dense=cloud.is_dense)
        self._writer.write(self._outputs["points"], timestamp_ns, self.typestore.serialize_cdr(msg, CLOUD_TYPE))

    def write_raw(self, name: str, timestamp_ns: int, rawdata: bytes) -> None:
        """Write an already serialised message of output ``name`` (live replay records the node's own)."""
        self._writer.write(self._outputs[name], timestamp_ns, rawdata)

    def close(self) -> Path:
        """Close the bag and move it into place."""
        try:
            self._writer.close()
        finally:
            self._placing.close()
        return self.path


def default_qos(depth: int) -> Any:
    """Reliable, keep-last ``depth``, volatile: what the node's outputs offer (and a default for ROS 1 topics)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    unspecified = QosTime(sec=0, nsec=0)
    return Qos(history=QosHistory.KEEP_LAST, depth=depth, reliability=QosReliability.RELIABLE,
               durability=QosDurability.VOLATILE, deadline=unspecified, lifespan=unspecified,
               liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=unspecified,
               avoid_ros_namespace_conventions=False)
