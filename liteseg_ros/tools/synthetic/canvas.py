"""Pinhole camera over a flat street and a canvas that paints image and labels together.

World coordinates are metres: X to the right, Y up from the road surface, Z forward along the
street. The camera looks down +Z from height ``height_m`` with a small yaw and pitch (small-angle
model: the vanishing point of the street sits at ``cx + focal * yaw``, the horizon at
``cy - focal * pitch``).

Every labelled shape is drawn with the same PIL call on the RGB image and on a 32-bit
"instance value" image (Cityscapes encoding: ``labelId * 1000 + k`` for instance classes, else the
labelId), so image and labels agree pixel for pixel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from liteseg_ros.labels import LABELS

Color = tuple[int, int, int]
Point = tuple[float, float]

#: labelIds whose objects are numbered one by one in instanceIds images.
INSTANCE_IDS = frozenset(lb.id for lb in LABELS if lb.has_instances and lb.id >= 0)

#: Nothing closer than this (metres in front of the camera) is drawn.
NEAR_CLIP_M = 0.5


@dataclass(frozen=True)
class Camera:
    """A forward-looking pinhole camera at (x, height_m, z) in world coordinates."""

    width: int
    height: int
    focal: float
    height_m: float = 1.4
    x: float = 0.0
    z: float = 0.0
    yaw: float = 0.0
    pitch: float = 0.0

    @property
    def cx(self) -> float:
        return self.width / 2.0

    @property
    def cy(self) -> float:
        return self.height / 2.0

    @property
    def horizon_v(self) -> float:
        """Image row of the horizon."""
        return self.cy - self.focal * self.pitch

    @property
    def vanishing_u(self) -> float:
        """Image column of the street's vanishing point."""
        return self.cx + self.focal * self.yaw

    def depth(self, z: float) -> float:
        """Distance along the optical axis of world depth ``z``."""
        return z - self.z

    def project(self, x: float, y: float, z: float) -> Point:
        """World point -> (u, v) pixel coordinates. ``z`` must be in front of the camera."""
        dz = z - self.z
        u = self.cx + self.focal * ((x - self.x) / dz + self.yaw)
        v = self.cy + self.focal * ((self.height_m - y) / dz - self.pitch)
        return (u, v)

    def scale_at(self, z: float) -> float:
        """Pixels per metre for something facing the camera at world depth ``z``."""
        return self.focal / (z - self.z)

    def near_z(self) -> float:
        """Smallest world depth that is drawn."""
        return self.z + NEAR_CLIP_M


class Canvas:
    """An RGB image, an instance-value image and a ground-shadow map painted in lock step."""

    def __init__(self, camera: Camera) -> None:
        size = (camera.width, camera.height)
        self.camera = camera
        self.rgb = Image.new("RGB", size)
        self.values = Image.new("I", size)
        self.shade = Image.new("L", size, 255)
        self._rgb = ImageDraw.Draw(self.rgb)
        self._values = ImageDraw.Draw(self.values)
        self._shade = ImageDraw.Draw(self.shade)
        #: pixels per metre below which a part is too small to draw
        self.min_px = max(1.0, camera.width / 512.0)
        self._instance_counts: dict[int, int] = {}

    def instance_value(self, label_id: int) -> int:
        """Cityscapes instance value of a new object: ``id * 1000 + k`` or, without instances, ``id``."""
        if label_id not in INSTANCE_IDS:
            return label_id
        k = self._instance_counts.get(label_id, 0)
        self._instance_counts[label_id] = k + 1
        return label_id * 1000 + k

    # -- labelled shapes: image and labels -------------------------------------------------
    def polygon(self, points: Sequence[Point], color: Color, value: int) -> None:
        """Fill a polygon in the image and in the labels."""
        self._rgb.polygon(points, fill=color)
        self._values.polygon(points, fill=value)

    def ellipse(self, box: Sequence[float], color: Color, value: int) -> None:
        """Fill an ellipse given its bounding box (u0, v0, u1, v1)."""
        box = _ordered_box(box)
        self._rgb.ellipse(box, fill=color)
        self._values.ellipse(box, fill=value)

    def line(self, points: Sequence[Point], color: Color, value: int, width: float) -> None:
        """A thick polyline, never thinner than ``min_px``."""
        px = max(int(round(width)), int(round(self.min_px)))
        self._rgb.line(points, fill=color, width=px, joint="curve")
        self._values.line(points, fill=value, width=px, joint="curve")

    def fill_rows(self, v0: int, v1: int, colors: np.ndarray, value: int) -> None:
        """Fill whole rows [v0, v1) with a per-row colour (``colors``: (v1 - v0) x 3 uint8)."""
        if v1 <= v0:
            return
        band = np.repeat(colors[:, None, :], self.camera.width, axis=1)
        self.rgb.paste(Image.fromarray(band, "RGB"), (0, v0))
        self._values.rectangle((0, v0, self.camera.width - 1, v1 - 1), fill=value)

    # -- appearance only: image, labels untouched -----------------------------------------
    def paint_polygon(self, points: Sequence[Point], color: Color) -> None:
        """Paint a polygon into the image only (windows, lamps, markings)."""
        self._rgb.polygon(points, fill=color)

    def paint_ellipse(self, box: Sequence[float], color: Color) -> None:
        """Paint an ellipse into the image only."""
        self._rgb.ellipse(_ordered_box(box), fill=color)

    def paint_line(self, points: Sequence[Point], color: Color, width: float) -> None:
        """Paint a polyline into the image only."""
        self._rgb.line(points, fill=color, width=max(1, int(round(width))))

    def shadow_polygon(self, points: Sequence[Point], darkness: int) -> None:
        """Mark a cast shadow on the ground (applied to ground classes when finishing)."""
        self._shade.polygon(points, fill=255 - darkness)

    # -- results -----------------------------------------------------------------------------
    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rgb uint8 HxWx3, instance values int32 HxW, shade uint8 HxW)."""
        return (
            np.asarray(self.rgb, dtype=np.uint8),
            np.asarray(self.values, dtype=np.int32),
            np.asarray(self.shade, dtype=np.uint8),
        )


def _ordered_box(box: Sequence[float]) -> tuple[float, float, float, float]:
    u0, v0, u1, v1 = box
    return (min(u0, u1), min(v0, v1), max(u0, u1), max(v0, v1))
