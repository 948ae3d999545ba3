"""Raw camera encodings that are not plain RGB/BGR/mono: YUV 4:2:2, NV21/NV24 and Bayer mosaics -> rgb8.

The names and memory layouts are those of ROS's ``sensor_msgs/image_encodings.hpp``; the conversions are
OpenCV's (``cv2.cvtColor``, the codes cv_bridge uses), so a frame converts as it would in any ROS image
pipeline. NV24 (YUV 4:4:4, which OpenCV has no code for) uses the same BT.601 limited-range equations as
OpenCV's NV21. No ROS imports; OpenCV is imported on first use.

``step`` is the length of one row in bytes, as in sensor_msgs/Image: for NV21 and NV24 the row of the Y plane;
the interleaved chroma plane that follows has rows of ``step`` (NV21) or ``2 * step`` (NV24) bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from liteseg_ros.errors import ImageError


@dataclass(frozen=True)
class CameraEncoding:
    """How one camera encoding is laid out and converted."""

    kind: str  # "yuv422", "bayer", "nv21" or "nv24"
    cv_code: str = ""  # the cv2.COLOR_* constant's name
    bytes_per_sample: int = 1  # 2 for the 16-bit Bayer forms


# OpenCV names Bayer patterns by the second row's first two pixels; these are cv_bridge's codes.
_BAYER_CODES = {"rggb": "COLOR_BayerBG2RGB", "bggr": "COLOR_BayerRG2RGB", "gbrg": "COLOR_BayerGR2RGB",
                "grbg": "COLOR_BayerGB2RGB"}

CAMERA_ENCODINGS: dict[str, CameraEncoding] = {
    "yuv422": CameraEncoding("yuv422", "COLOR_YUV2RGB_UYVY"),  # U Y0 V Y1
    "uyvy": CameraEncoding("yuv422", "COLOR_YUV2RGB_UYVY"),
    "yuv422_yuy2": CameraEncoding("yuv422", "COLOR_YUV2RGB_YUY2"),  # Y0 U Y1 V
    "yuyv": CameraEncoding("yuv422", "COLOR_YUV2RGB_YUY2"),
    "nv21": CameraEncoding("nv21", "COLOR_YUV2RGB_NV21"),
    "nv24": CameraEncoding("nv24"),
    **{f"bayer_{pattern}8": CameraEncoding("bayer", code) for pattern, code in _BAYER_CODES.items()},
    **{f"bayer_{pattern}16": CameraEncoding("bayer", code, 2) for pattern, code in _BAYER_CODES.items()},
}
"""Camera encodings converted to rgb8 before segmentation (a copy; the plain ones are zero-copy views)."""


def checked_buffer(data: Any, height: int, width: int, encoding: str, step: int, row_bytes: int,
                   rows: int) -> np.ndarray:
    """``data`` as a flat uint8 array, after checking a raw frame's layout: a non-zero size, a ``step`` of at
    least ``row_bytes``, and ``step * rows`` bytes of data (``rows`` = the image's rows, more for planar
    formats). Raises ImageError saying which is wrong."""
    if height <= 0 or width <= 0:
        raise ImageError(f"image has zero size ({width}x{height}); the camera sent an empty frame")
    if step < row_bytes:
        raise ImageError(f"step {step} is shorter than one row of a {width}-pixel wide {encoding} image "
                         f"({row_bytes} bytes); the publisher filled step wrongly")
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size < step * rows:
        planar = f" ({rows} rows of data for {height} image rows)" if rows != height else ""
        raise ImageError(f"image data has {buffer.size} bytes, fewer than step x height = {step} x {rows} = "
                         f"{step * rows}{planar}; the frame is truncated")
    return buffer


def camera_encoding_to_rgb(data: Any, height: int, width: int, encoding: str, step: int,
                           is_bigendian: bool = False) -> np.ndarray:
    """Convert one raw frame in a :data:`CAMERA_ENCODINGS` encoding to an H x W x 3 uint8 RGB array.

    Raises ImageError for a zero size, an odd width (YUV 4:2:2, NV21) or height (NV21), a ``step`` shorter
    than a row, or a buffer shorter than the layout needs.
    """
    spec = CAMERA_ENCODINGS[encoding]
    if spec.kind in ("yuv422", "nv21") and width % 2:
        raise ImageError(f"{encoding} images need an even width (two pixels share their chroma), got {width}")
    if spec.kind == "nv21" and height % 2:
        raise ImageError(f"{encoding} images need an even height (two rows share their chroma), got {height}")
    row_bytes = width * {"yuv422": 2, "bayer": spec.bytes_per_sample}.get(spec.kind, 1)
    rows = {"nv21": height + height // 2, "nv24": 3 * height}.get(spec.kind, height)
    buffer = checked_buffer(data, height, width, encoding, step, row_bytes, rows)
    plane = buffer[: step * rows].reshape(rows, step)
    import cv2  # opencv-python-headless; imported on first use to keep the node's start-up light

    if spec.kind == "yuv422":
        pairs = np.ascontiguousarray(plane[:, :row_bytes]).reshape(height, width, 2)
        return cv2.cvtColor(pairs, getattr(cv2, spec.cv_code))
    if spec.kind == "nv21":
        return cv2.cvtColor(np.ascontiguousarray(plane[:, :width]), getattr(cv2, spec.cv_code))
    if spec.kind == "nv24":
        return _nv24_to_rgb(plane[:height, :width], plane[height:].reshape(height, 2 * step)[:, : 2 * width])
    mosaic = plane[:, :row_bytes]
    if spec.bytes_per_sample == 2:
        mosaic = (mosaic.view(">u2" if is_bigendian else "<u2") >> 8).astype(np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(mosaic), getattr(cv2, spec.cv_code))


def _nv24_to_rgb(luma: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    """BT.601 limited range, as OpenCV converts NV21: R = 1.164 (Y - 16) + 1.596 (V - 128), and so on."""
    y = (luma.astype(np.float32) - 16.0) * 1.164
    u = chroma[:, 0::2].astype(np.float32) - 128.0
    v = chroma[:, 1::2].astype(np.float32) - 128.0
    rgb = np.stack([y + 1.596 * v, y - 0.391 * u - 0.813 * v, y + 2.018 * u], axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
