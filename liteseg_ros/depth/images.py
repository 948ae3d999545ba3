"""Depth images as ROS drivers publish them: ``16UC1`` millimetres (0 = no measurement) or ``32FC1`` metres
(NaN, inf and values <= 0 = no measurement), read as zero-copy views of the message's buffer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from liteseg_ros.errors import DepthError
from liteseg_ros.images.camera_encodings import checked_buffer

DEPTH_DTYPES = {"16UC1": np.dtype(np.uint16), "32FC1": np.dtype(np.float32)}
DEPTH_ENCODINGS = tuple(DEPTH_DTYPES)


@dataclass(frozen=True)
class DepthImage:
    """One depth image: its raw values (H x W ``uint16`` millimetres or ``float32`` metres), encoding, stamp (ns)
    and frame id."""

    values: np.ndarray
    encoding: str
    stamp_ns: int
    frame_id: str

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.values.shape[0]), int(self.values.shape[1])


def depth_values(data: Any, height: int, width: int, encoding: str, step: int,
                 is_bigendian: bool = False) -> np.ndarray:
    """The H x W depth values of a raw buffer (a read-only view when ``data`` is read-only, native byte order).

    Raises DepthError for another encoding than 16UC1 / 32FC1 and ImageError for a buffer that does not hold the
    image its fields describe."""
    dtype = DEPTH_DTYPES.get(encoding)
    if dtype is None:
        raise DepthError(f"depth image encoding {encoding!r} is not a depth encoding: publish 16UC1 (millimetres) or "
                         "32FC1 (metres), e.g. a registered or aligned depth image")
    buffer = checked_buffer(data, height, width, encoding, step, width * dtype.itemsize, height)
    if step % dtype.itemsize:
        raise DepthError(f"step {step} of a {encoding} depth image is not a multiple of {dtype.itemsize} bytes")
    ordered = dtype.newbyteorder(">" if is_bigendian else "<")
    values = np.ndarray((height, width), dtype=ordered, buffer=buffer, strides=(step, dtype.itemsize))
    return values if ordered.isnative else values.astype(dtype)


def depth_image_from_msg(msg: Any, stamp_ns: int) -> DepthImage:
    """A :class:`DepthImage` from a sensor_msgs/Image (rclpy's or rosbags' message)."""
    values = depth_values(msg.data, msg.height, msg.width, msg.encoding, msg.step, bool(msg.is_bigendian))
    return DepthImage(values, msg.encoding, stamp_ns, msg.header.frame_id)
