"""Reading camera bags and writing segmented bags with ``rosbags`` (rosbag2: sqlite3 and mcap)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from liteseg_ros.conversions import compressed_msg_to_segmenter_input, image_msg_to_array, image_msg_to_segmenter_input
from liteseg_ros.errors import BagError

LOG = logging.getLogger(__name__)
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
OUTPUT_TOPICS = {"mask": "/liteseg/mask", "color": "/liteseg/color_mask", "overlay": "/liteseg/overlay"}
OUTPUT_ENCODINGS = {"mask": "mono8", "color": "rgb8", "overlay": "rgb8"}


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


def stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


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

    def __init__(self, path: str | Path, image_topic: str | None = None, gt_topic: str | None = None):
        from rosbags.rosbag2 import Reader

        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as error:  # rosbags raises ReaderError, but also yaml / sqlite / mcap errors
            raise BagError(f"{self.path} is not a readable rosbag2 bag: {error}") from None
        self.topics = {c.topic: c.msgtype for c in self._reader.connections}
        self.image_topic = self._choose_image_topic(image_topic)
        self.gt_topic = self._check_gt_topic(gt_topic)
        self.typestore = typestore()

    def _choose_image_topic(self, requested: str | None) -> str:
        images = sorted(t for t, kind in self.topics.items() if kind in IMAGE_TYPES)
        if requested:
            if requested not in self.topics:
                raise BagError(f"bag {self.path} has no topic {requested}; image topics: {', '.join(images) or 'none'}")
            if self.topics[requested] not in IMAGE_TYPES:
                raise BagError(f"topic {requested} carries {self.topics[requested]}, not an Image or CompressedImage")
            return requested
        candidates = [t for t in images if not _looks_like_ground_truth(t)]
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

    @property
    def image_msgtype(self) -> str:
        return self.topics[self.image_topic]

    @property
    def image_count(self) -> int:
        return sum(c.msgcount for c in self._reader.connections if c.topic == self.image_topic)

    def messages(self) -> Iterator[BagMessage]:
        """Image and ground-truth messages in bag order; a corrupt record raises BagError."""
        wanted = [c for c in self._reader.connections if c.topic in (self.image_topic, self.gt_topic)]
        iterator = self._reader.messages(connections=wanted)
        while True:
            try:
                connection, timestamp, rawdata = next(iterator)
                msg = self.typestore.deserialize_cdr(rawdata, connection.msgtype)
            except StopIteration:
                return
            except Exception as error:
                raise BagError(f"bag {self.path} is corrupt or truncated: {type(error).__name__}: {error}") from None
            yield BagMessage(connection.topic, connection.msgtype, timestamp, msg, rawdata)

    def close(self) -> None:
        self._reader.close()


def _looks_like_ground_truth(topic: str) -> bool:
    return any(word in topic.lower() for word in ("label", "ground_truth", "groundtruth", "/gt", "semantic"))


class BagSink:
    """The output bag: the input images as recorded, plus the segmentation outputs with the input headers.

    It is written to ``OUT.partial`` and renamed to OUT when closed, so OUT is always a complete, closed bag.
    """

    def __init__(self, path: str | Path, image_topic: str, image_msgtype: str, storage: str = "sqlite3"):
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"output bag {self.path} already exists: remove it or choose another --out")
        self._partial = self.path.with_name(self.path.name + ".partial")
        shutil.rmtree(self._partial, ignore_errors=True)
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self.typestore = typestore()
        self._writer = Writer(self._partial, version=Writer.VERSION_LATEST, storage_plugin=plugin)
        self._writer.open()
        self._input = self._writer.add_connection(image_topic, image_msgtype, typestore=self.typestore)
        self._outputs = {
            name: self._writer.add_connection(topic, IMAGE_TYPE, typestore=self.typestore)
            for name, topic in OUTPUT_TOPICS.items()
        }
        self.frames = 0

    def write_input(self, timestamp_ns: int, rawdata: bytes) -> None:
        self._writer.write(self._input, timestamp_ns, rawdata)

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

    def write_raw(self, name: str, timestamp_ns: int, rawdata: bytes) -> None:
        """Write an already serialised sensor_msgs/Image of output ``name`` (live replay records the node's own)."""
        self._writer.write(self._outputs[name], timestamp_ns, rawdata)

    def close(self) -> Path:
        """Close the bag and move it into place."""
        self._writer.close()
        self._partial.rename(self.path)
        return self.path
