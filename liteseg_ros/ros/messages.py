"""numpy -> sensor_msgs/Image and CompressedImage (the node's and live replay's outputs), without cv_bridge.

A message's ``data`` field holds an ``array.array('B')``: assigned one, rclpy keeps it as it is (no copy), while
bytes are copied into a new one and an ndarray or a memoryview is converted element by element (~100x slower for
a 720p frame). The node's outputs are written by the post-processing straight into such arrays
(:class:`OutputBuffers`), so a published frame is copied once, by rclpy into its C message.
"""

from __future__ import annotations

import array
import io
from typing import Any

import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from liteseg_ros.errors import ImageError

CHANNELS_OF_ENCODING = {"mono8": 1, "rgb8": 3}  # the encodings this layer publishes


def array_to_image_msg(array: np.ndarray, encoding: str, header: Any = None) -> Any:
    """Build a sensor_msgs/Image (``mono8`` from H x W, ``rgb8`` from H x W x 3 uint8 arrays).

    ``header`` is copied by reference (stamp and frame_id unchanged). The pixel data is copied
    once, with ``tobytes()``, which is the fast path into rclpy's ``array.array`` field.
    """
    channels = CHANNELS_OF_ENCODING.get(encoding)
    if channels is None:
        raise ImageError(f"cannot publish encoding {encoding!r}; use one of {', '.join(CHANNELS_OF_ENCODING)}")
    expected_ndim = 2 if channels == 1 else 3
    if array.dtype != np.uint8 or array.ndim != expected_ndim or (channels > 1 and array.shape[2] != channels):
        raise ImageError(
            f"{encoding} needs a uint8 array of {'H x W' if channels == 1 else 'H x W x 3'}, "
            f"got {array.dtype} {array.shape}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageError(f"cannot publish a zero-size image {array.shape}")
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = msg.width * channels
    msg.data = np.ascontiguousarray(array).tobytes()
    return msg


class OutputBuffers:
    """Reusable message data for one camera's outputs: an ``array.array('B')`` per output and its numpy view of
    the output's shape. A buffer may be reused once the message that holds it has been published (rclpy copies
    the data into its own message then); one thread (the node's output stage) uses them."""

    def __init__(self) -> None:
        self._buffers: dict[str, tuple[array.array, np.ndarray]] = {}

    def view(self, output: str, shape: tuple[int, ...]) -> np.ndarray:
        """The uint8 array of ``shape`` to write output ``output`` into (its buffer, made or resized here)."""
        held = self._buffers.get(output)
        if held is None or held[1].shape != tuple(shape):
            data = array.array("B", bytes(int(np.prod(shape))))
            held = self._buffers[output] = (data, np.frombuffer(data, dtype=np.uint8).reshape(shape))
        return held[1]

    def image_msg(self, output: str, encoding: str, header: Any) -> Any:
        """A sensor_msgs/Image of the output last written into :meth:`view`, holding its buffer, with ``header``."""
        data, view = self._buffers[output]
        msg = Image(height=view.shape[0], width=view.shape[1], encoding=encoding, is_bigendian=0,
                    step=view.shape[1] * CHANNELS_OF_ENCODING[encoding])
        if header is not None:
            msg.header = header
        msg.data = data
        return msg


class CloudBuffer:
    """The reusable data of one camera's organised ``~/points``: an ``array.array('B')`` and its structured numpy
    view (reused once the message holding it was published, as :class:`OutputBuffers`)."""

    def __init__(self) -> None:
        self._held: tuple[array.array, np.ndarray] | None = None

    def view(self, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
        """The structured array of ``shape`` points of ``dtype`` to write the cloud into."""
        if self._held is None or self._held[1].shape != tuple(shape) or self._held[1].dtype != dtype:
            data = array.array("B", bytes(int(np.prod(shape)) * dtype.itemsize))
            self._held = (data, np.frombuffer(data, dtype=dtype).reshape(shape))
        return self._held[1]

    def data_of(self, points: np.ndarray) -> array.array | bytes:
        """The message data of ``points``: this buffer when they are its view, else their bytes."""
        if self._held is not None and points is self._held[1]:
            return self._held[0]
        return np.ascontiguousarray(points).tobytes()


def point_cloud_msg(cloud: Any, header: Any, data: Any) -> Any:
    """A sensor_msgs/PointCloud2 of a :class:`liteseg_ros.depth.cloud.Cloud` whose bytes are ``data``."""
    from sensor_msgs.msg import PointCloud2, PointField

    msg = PointCloud2(height=cloud.height, width=cloud.width, is_bigendian=False, point_step=cloud.layout.point_step,
                      row_step=cloud.layout.point_step * cloud.width, is_dense=cloud.is_dense)
    msg.header = header
    msg.fields = [PointField(name=field.name, offset=field.offset, datatype=field.datatype, count=field.count)
                  for field in cloud.layout.fields]
    msg.data = data
    return msg


def array_to_compressed_msg(array: np.ndarray, fmt: str = "png", header: Any = None) -> Any:
    """Encode an RGB (H x W x 3) or mono (H x W) uint8 array as a sensor_msgs/CompressedImage."""
    from PIL import Image as PILImage

    codec = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG"}.get(fmt.lower())
    if codec is None:
        raise ImageError(f"cannot compress to {fmt!r}; use png or jpeg")
    buffer = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(array)).save(buffer, format=codec)
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = "jpeg" if codec == "JPEG" else "png"
    msg.data = buffer.getvalue()
    return msg
