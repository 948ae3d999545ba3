"""World-space polygons, box faces, sun shading and camera-facing sprite frames."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from liteseg_ros.tools.synthetic.canvas import Camera, Point

Vec3 = tuple[float, float, float]


def clip_near(points: Sequence[Vec3], z_min: float) -> list[Vec3]:
    """Clip a planar polygon to the half space ``z >= z_min`` (Sutherland-Hodgman)."""
    out: list[Vec3] = []
    count = len(points)
    for i in range(count):
        cur, nxt = points[i], points[(i + 1) % count]
        cur_in, nxt_in = cur[2] >= z_min, nxt[2] >= z_min
        if cur_in:
            out.append(cur)
        if cur_in != nxt_in:
            t = (z_min - cur[2]) / (nxt[2] - cur[2])
            out.append(tuple(c + t * (n - c) for c, n in zip(cur, nxt)))  # type: ignore[arg-type]
    return out


def project_polygon(camera: Camera, points: Sequence[Vec3]) -> list[Point]:
    """Clip a world polygon at the near plane and project it; [] when nothing is in front."""
    clipped = clip_near(points, camera.near_z())
    if len(clipped) < 3:
        return []
    return [camera.project(*p) for p in clipped]


def polygon_extent(points: Sequence[Point]) -> float:
    """The smaller side of a projected polygon's bounding box, in pixels."""
    us = [p[0] for p in points]
    vs = [p[1] for p in points]
    return min(max(us) - min(us), max(vs) - min(vs))


@dataclass(frozen=True)
class Face:
    """A rectangle in the world: ``origin + s * s_axis + t * t_axis``, 0 <= s, t <= lengths."""

    normal: Vec3
    origin: Vec3
    s_axis: Vec3
    t_axis: Vec3
    s_len: float
    t_len: float

    def point(self, s: float, t: float) -> Vec3:
        o, a, b = self.origin, self.s_axis, self.t_axis
        return (o[0] + s * a[0] + t * b[0], o[1] + s * a[1] + t * b[1], o[2] + s * a[2] + t * b[2])

    def quad(self, s0: float, s1: float, t0: float, t1: float) -> list[Vec3]:
        """Corners of the sub-rectangle [s0, s1] x [t0, t1] of this face."""
        return [self.point(s0, t0), self.point(s1, t0), self.point(s1, t1), self.point(s0, t1)]

    def whole(self) -> list[Vec3]:
        return self.quad(0.0, self.s_len, 0.0, self.t_len)


@dataclass(frozen=True)
class Box:
    """An axis-aligned box standing in the world (metres)."""

    x0: float
    x1: float
    y0: float
    y1: float
    z0: float
    z1: float

    def visible_faces(self, camera: Camera) -> dict[str, Face]:
        """The faces the camera can see: 'front' (towards the camera), 'side', 'top'."""
        faces: dict[str, Face] = {}
        w, h, d = self.x1 - self.x0, self.y1 - self.y0, self.z1 - self.z0
        if camera.z < self.z0:
            faces["front"] = Face((0, 0, -1), (self.x0, self.y0, self.z0), (1, 0, 0), (0, 1, 0), w, h)
        if camera.x < self.x0:
            faces["side"] = Face((-1, 0, 0), (self.x0, self.y0, self.z0), (0, 0, 1), (0, 1, 0), d, h)
        elif camera.x > self.x1:
            faces["side"] = Face((1, 0, 0), (self.x1, self.y0, self.z0), (0, 0, 1), (0, 1, 0), d, h)
        if camera.height_m > self.y1:
            faces["top"] = Face((0, 1, 0), (self.x0, self.y1, self.z0), (1, 0, 0), (0, 0, 1), w, d)
        return faces


@dataclass(frozen=True)
class Lighting:
    """Directional sun plus ambient light; also the direction cast shadows fall."""

    sun: Vec3
    ambient: float = 0.62
    strength: float = 0.45

    def factor(self, normal: Vec3) -> float:
        """Brightness multiplier of a face with this outward normal."""
        dot = sum(n * s for n, s in zip(normal, self.sun))
        return self.ambient + self.strength * max(0.0, dot)

    @property
    def shadow_offset_per_m(self) -> tuple[float, float]:
        """(dx, dz) on the ground of the shadow of a point one metre up."""
        elevation = max(self.sun[1], 0.25)
        return (-self.sun[0] / elevation, -self.sun[2] / elevation)

    @staticmethod
    def random(rng: np.random.Generator) -> "Lighting":
        elevation = rng.uniform(0.35, 1.1)
        azimuth = rng.uniform(-2.4, 2.4)  # 0: sun behind the camera
        sun = (np.sin(azimuth) * np.cos(elevation), np.sin(elevation), -np.cos(azimuth) * np.cos(elevation))
        return Lighting(tuple(float(c) for c in sun), rng.uniform(0.55, 0.7), rng.uniform(0.3, 0.5))


class Sprite:
    """Maps metres in a camera-facing plane at (x, z) to pixels: dx right, dy up from the ground."""

    def __init__(self, camera: Camera, x: float, z: float, y: float = 0.0) -> None:
        self.scale = camera.scale_at(z)
        self.u0, self.v0 = camera.project(x, y, z)

    def p(self, dx: float, dy: float) -> Point:
        return (self.u0 + self.scale * dx, self.v0 - self.scale * dy)

    def poly(self, points: Sequence[tuple[float, float]]) -> list[Point]:
        return [self.p(dx, dy) for dx, dy in points]

    def rect(self, dx0: float, dy0: float, dx1: float, dy1: float) -> list[Point]:
        return self.poly([(dx0, dy0), (dx1, dy0), (dx1, dy1), (dx0, dy1)])

    def oval(self, dx: float, dy: float, rx: float, ry: float) -> tuple[float, float, float, float]:
        u, v = self.p(dx, dy)
        return (u - rx * self.scale, v - ry * self.scale, u + rx * self.scale, v + ry * self.scale)

    def px(self, metres: float) -> float:
        return metres * self.scale
