"""sensor_msgs/Image and CompressedImage -> numpy, without cv_bridge and without ROS imports.

The message readers take any object with the messages' fields (rclpy's messages, rosbags' deserialised
ones); building messages is :mod:`liteseg_ros.ros.messages`.

Decoding is zero-copy where possible: the returned array is a read-only view of the message's
buffer (``np.frombuffer`` plus strides that skip the row padding given by ``step``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from liteseg_ros.errors import ImageError
from liteseg_ros.images.camera_encodings import CAMERA_ENCODINGS, camera_encoding_to_rgb, checked_buffer


@dataclass(frozen=True)
class PixelFormat:
    """Memory layout of one raw image encoding."""

    channels: int
    bytes_per_channel: int
    segmenter_encoding: str  # what the 8-bit form of this image is called for the Segmenter
    drop_alpha: bool = False

    @property
    def bytes_per_pixel(self) -> int:
        return self.channels * self.bytes_per_channel


PIXEL_FORMATS: dict[str, PixelFormat] = {
    "rgb8": PixelFormat(3, 1, "rgb8"),
    "bgr8": PixelFormat(3, 1, "bgr8"),
    "rgba8": PixelFormat(4, 1, "rgb8", drop_alpha=True),
    "bgra8": PixelFormat(4, 1, "bgr8", drop_alpha=True),
    "mono8": PixelFormat(1, 1, "mono8"),
    "8UC1": PixelFormat(1, 1, "mono8"),
    "8UC3": PixelFormat(3, 1, "bgr8"),  # OpenCV's default channel order
    "rgb16": PixelFormat(3, 2, "rgb8"),
    "bgr16": PixelFormat(3, 2, "bgr8"),
    "mono16": PixelFormat(1, 2, "mono8"),
}
"""Raw encodings read as zero-copy views. 16-bit images are reduced to 8 bits for segmentation."""

SUPPORTED_ENCODINGS = tuple(PIXEL_FORMATS) + tuple(CAMERA_ENCODINGS)


def _pixel_format(encoding: str) -> PixelFormat:
    try:
        return PIXEL_FORMATS[encoding]
    except KeyError:
        raise ImageError(
            f"unsupported image encoding {encoding!r}; publish one of "
            f"{', '.join(SUPPORTED_ENCODINGS)} (or use input_transport:=compressed)"
        ) from None


def array_from_buffer(
    data: Any, height: int, width: int, encoding: str, step: int, is_bigendian: bool = False
) -> np.ndarray:
    """View a raw image buffer as an array of shape (H, W) or (H, W, C), without copying.

    ``data`` is any object with the buffer protocol (``bytes``, ``array.array``, ...). The view is
    read-only when ``data`` is. Raises :class:`ImageError` for a zero size, an unknown encoding,
    a ``step`` shorter than one row or not a whole number of channel values, or a buffer shorter
    than ``step * height``.
    """
    pixel_format = _pixel_format(encoding)
    buffer = checked_buffer(data, height, width, encoding, step, width * pixel_format.bytes_per_pixel, height)
    if step % pixel_format.bytes_per_channel:
        raise ImageError(
            f"step {step} is not a multiple of the {pixel_format.bytes_per_channel}-byte "
            f"channel size of {encoding}"
        )
    byte_order = ">" if is_bigendian else "<"
    dtype = np.dtype(f"{byte_order}u{pixel_format.bytes_per_channel}")
    itemsize = pixel_format.bytes_per_channel
    shape: tuple[int, ...] = (height, width, pixel_format.channels)
    strides: tuple[int, ...] = (step, pixel_format.bytes_per_pixel, itemsize)
    if pixel_format.channels == 1:
        shape, strides = shape[:2], strides[:2]
    view = np.ndarray(shape=shape, dtype=dtype, buffer=buffer, offset=0, strides=strides)
    if not buffer.flags.writeable:
        view.flags.writeable = False
    return view


def to_segmenter_input(array: np.ndarray, encoding: str) -> tuple[np.ndarray, str]:
    """Return ``(uint8 image, "rgb8" | "bgr8" | "mono8")`` for the Segmenter.

    Alpha is dropped (a view, no copy); 16-bit images keep their 8 most significant bits (a copy).
    """
    pixel_format = _pixel_format(encoding)
    if pixel_format.drop_alpha:
        array = array[..., :3]
    if pixel_format.bytes_per_channel == 2:
        array = (array >> 8).astype(np.uint8)
    return array, pixel_format.segmenter_encoding


def decode_compressed(data: Any, format_hint: str = "") -> tuple[np.ndarray, str]:
    """Decode JPEG/PNG bytes into ``(H x W x 3 uint8, "rgb8")`` or ``(H x W uint8, "mono8")``.

    ``format_hint`` (CompressedImage.format) is used only in error messages: the codec is taken
    from the data itself. Raises :class:`ImageError` for empty, corrupt or truncated data.
    """
    from PIL import Image as PILImage  # pillow is a hard dependency; imported here to keep start-up light

    raw = bytes(data) if not isinstance(data, bytes) else data
    what = f"compressed image (format {format_hint!r})" if format_hint else "compressed image"
    if not raw:
        raise ImageError(f"{what} has no data")
    try:
        with PILImage.open(io.BytesIO(raw)) as pil_image:
            pil_image.load()
            if pil_image.mode not in ("L", "RGB"):
                pil_image = pil_image.convert("RGB")
            array = np.asarray(pil_image)
    except Exception as error:  # pillow raises many types (OSError, SyntaxError, ValueError, ...)
        raise ImageError(f"cannot decode {what}: {error}; the data is corrupt or not JPEG/PNG") from None
    if array.size == 0:
        raise ImageError(f"{what} decodes to a zero-size image")
    return array, ("mono8" if array.ndim == 2 else "rgb8")


def image_msg_to_array(msg: Any) -> np.ndarray:
    """View a sensor_msgs/Image as a numpy array (zero-copy; see :func:`array_from_buffer`)."""
    return array_from_buffer(
        msg.data, msg.height, msg.width, msg.encoding, msg.step, bool(msg.is_bigendian)
    )


def raw_to_segmenter_input(
    data: Any, height: int, width: int, encoding: str, step: int, is_bigendian: bool = False
) -> tuple[np.ndarray, str]:
    """Decode a raw frame of any supported encoding into the Segmenter's ``(image, encoding)``.

    Plain encodings are zero-copy views (:func:`array_from_buffer`); camera encodings (YUV, NV21/NV24, Bayer:
    :mod:`liteseg_ros.images.camera_encodings`) are converted to rgb8.
    """
    if encoding in CAMERA_ENCODINGS:
        return camera_encoding_to_rgb(data, height, width, encoding, step, is_bigendian), "rgb8"
    return to_segmenter_input(array_from_buffer(data, height, width, encoding, step, is_bigendian), encoding)


def image_msg_to_segmenter_input(msg: Any) -> tuple[np.ndarray, str]:
    """Decode a sensor_msgs/Image into the Segmenter's ``(image, encoding)``."""
    return raw_to_segmenter_input(msg.data, msg.height, msg.width, msg.encoding, msg.step, bool(msg.is_bigendian))


def compressed_msg_to_segmenter_input(msg: Any) -> tuple[np.ndarray, str]:
    """Decode a sensor_msgs/CompressedImage into the Segmenter's ``(image, encoding)``."""
    return decode_compressed(msg.data, msg.format)
