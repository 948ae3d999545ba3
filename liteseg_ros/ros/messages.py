"""numpy -> sensor_msgs/Image and CompressedImage (the node's and live replay's outputs), without cv_bridge.

Encoding goes through ``ndarray.tobytes()``: assigning bytes to ``Image.data`` is a single memcpy in rclpy,
while assigning an ndarray or a memoryview is converted element by element (~100x slower for a 720p frame).
"""

from __future__ import annotations

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
