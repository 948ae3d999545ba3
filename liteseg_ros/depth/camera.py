"""The pinhole intrinsics a depth image is projected with, from its sensor_msgs/CameraInfo.

As depth_image_proc (through image_geometry's PinholeCameraModel) does, the focal lengths and principal point are
read from the projection matrix P (the rectified image's camera, which a registered or aligned depth image is);
a camera_info whose P is all zeros (some drivers fill only K) gives K's."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from liteseg_ros.errors import DepthError
from liteseg_ros.sizes import format_size


@dataclass(frozen=True)
class Intrinsics:
    """fx, fy, cx, cy (pixels) of a depth image of ``height`` x ``width``."""

    fx: float
    fy: float
    cx: float
    cy: float
    height: int
    width: int

    @classmethod
    def from_camera_info(cls, msg: Any) -> "Intrinsics":
        """The intrinsics of a sensor_msgs/CameraInfo (rclpy's or rosbags' message; ROS 1's upper-case K and P
        too); DepthError when it has none."""
        p = [float(v) for v in _field(msg, "p")]
        k = [float(v) for v in _field(msg, "k")]
        if len(p) == 12 and any(p):
            fx, fy, cx, cy, source = p[0], p[5], p[2], p[6], "P"
        elif len(k) == 9:
            fx, fy, cx, cy, source = k[0], k[4], k[2], k[5], "K"
        else:
            raise DepthError("the depth camera_info has neither a 3x4 P nor a 3x3 K: publish the depth camera's "
                             "calibration")
        if not all(math.isfinite(v) for v in (fx, fy, cx, cy)) or fx <= 0 or fy <= 0:
            raise DepthError(f"the depth camera_info has no intrinsics ({source}: fx={fx:g}, fy={fy:g}): publish the "
                             "depth camera's calibration (a camera_info with K and P filled in)")
        return cls(fx, fy, cx, cy, int(msg.height), int(msg.width))

    def check_shape(self, shape: tuple[int, int]) -> None:
        """DepthError unless a depth image of ``shape`` (H, W) is the image this camera_info describes."""
        if (self.height, self.width) != tuple(shape):
            raise DepthError(f"the depth camera_info is for {format_size((self.height, self.width))} images but the "
                             f"depth image is {format_size(shape)} (HxW): publish the camera_info of the depth image "
                             "itself (for a registered image, the colour camera's at the depth image's resolution)")


def camera_info_topic(image_topic: str) -> str:
    """The camera_info beside an image topic, as image_transport finds it (``/cam/depth/image_raw`` ->
    ``/cam/depth/camera_info``)."""
    parent, _, _ = image_topic.rstrip("/").rpartition("/")
    return f"{parent}/camera_info" if parent or image_topic.startswith("/") else "camera_info"


def _field(msg: Any, name: str) -> Any:
    value = getattr(msg, name, None)
    return getattr(msg, name.upper(), ()) if value is None else value
