"""Depth images, camera_infos and clouds for the depth tests, written from the ROS message definitions and
depth_image_proc's arithmetic, not from liteseg_ros.depth (the code they test)."""

from __future__ import annotations

from typing import Any

import numpy as np

POINT_FIELD_DTYPES = {1: "i1", 2: "u1", 3: "<i2", 4: "<u2", 5: "<i4", 6: "<u4", 7: "<f4", 8: "<f8"}
INTRINSICS = dict(fx=100.0, fy=104.0, cx=79.5, cy=58.25)


def depth_scene(height: int, width: int, encoding: str, seed: int = 0) -> np.ndarray:
    """Depth values with invalid pixels: 16UC1 millimetres with zeros; 32FC1 metres with NaN, inf, 0 and < 0."""
    rng = np.random.default_rng(seed)
    metres = 0.5 + 6.0 * rng.random((height, width))
    if encoding == "16UC1":
        values = np.round(metres * 1000).astype(np.uint16)
        values[rng.random((height, width)) < 0.1] = 0
        return values
    values = metres.astype(np.float32)
    for bad in (np.nan, np.inf, -np.inf, 0.0, -1.5):
        values[rng.random((height, width)) < 0.03] = bad
    return values


def depth_message(values: np.ndarray, encoding: str, header: Any) -> Any:
    """A sensor_msgs/Image of depth ``values`` (little-endian, no row padding)."""
    from sensor_msgs.msg import Image

    data = np.ascontiguousarray(values).astype(values.dtype.newbyteorder("<"))
    return Image(header=header, height=values.shape[0], width=values.shape[1], encoding=encoding, is_bigendian=0,
                 step=values.shape[1] * values.dtype.itemsize, data=data.tobytes())


def camera_info_message(height: int, width: int, header: Any, fx: float, fy: float, cx: float, cy: float,
                        k_only: bool = False, k: tuple[float, ...] | None = None) -> Any:
    """A sensor_msgs/CameraInfo with these intrinsics in P (and K, unless ``k`` is given); ``k_only``: P zero."""
    from sensor_msgs.msg import CameraInfo

    info = CameraInfo(header=header, height=height, width=width, distortion_model="plumb_bob")
    info.k = list(k) if k is not None else [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    info.p = [0.0] * 12 if k_only else [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    return info


def read_cloud(msg: Any) -> np.ndarray:
    """The points of a PointCloud2 as a structured array (height x width), read from the message's own fields."""
    dtype = np.dtype({"names": [f.name for f in msg.fields],
                      "formats": [POINT_FIELD_DTYPES[f.datatype] for f in msg.fields],
                      "offsets": [f.offset for f in msg.fields], "itemsize": msg.point_step})
    assert not msg.is_bigendian and msg.row_step == msg.point_step * msg.width
    return np.frombuffer(bytes(msg.data), dtype=dtype).reshape(msg.height, msg.width)


def depth_image_proc_xyz(values: np.ndarray, encoding: str, fx: float, fy: float, cx: float, cy: float
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, y, z as depth_image_proc's convertDepth computes them (float32, its operation order), NaN where the
    depth is invalid (0 for 16UC1; NaN, inf and <= 0 for 32FC1, as the issue defines)."""
    unit = float(np.float32(0.001)) if encoding == "16UC1" else 1.0
    center_x, center_y = np.float32(cx), np.float32(cy)
    constant_x, constant_y = np.float32(unit / fx), np.float32(unit / fy)
    depth = values.astype(np.float32)
    invalid = values == 0 if encoding == "16UC1" else ~np.isfinite(depth) | (depth <= 0)
    u = np.arange(values.shape[1], dtype=np.float32)[None, :]
    v = np.arange(values.shape[0], dtype=np.float32)[:, None]
    x = ((u - center_x) * depth) * constant_x
    y = ((v - center_y) * depth) * constant_y
    z = depth * np.float32(0.001) if encoding == "16UC1" else depth.copy()
    for array in (x, y, z):
        array[invalid] = np.nan
    return x, y, z


def reference_xyz(values: np.ndarray, encoding: str, fx: float, fy: float, cx: float, cy: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pinhole projection in float64: z in metres, x = (u - cx) z / fx, y = (v - cy) z / fy; NaN if invalid."""
    z = values.astype(np.float64) * (0.001 if encoding == "16UC1" else 1.0)
    z[(values == 0) if encoding == "16UC1" else ~(np.isfinite(z) & (z > 0))] = np.nan
    v, u = np.mgrid[0:values.shape[0], 0:values.shape[1]]
    return (u - cx) * z / fx, (v - cy) * z / fy, z


def packed_rgb(colour_image: np.ndarray) -> np.ndarray:
    """rgb8 pixels as the uint32 PCL and depth_image_proc put in a float ``rgb`` field: r << 16 | g << 8 | b."""
    rgb = colour_image.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
