"""Box-shaped world objects: ground strips, lane markings, buildings, walls/fences/hedges, vehicles.

Every object knows its draw layer (ground 0, buildings 1, boundary structures 2, depth-sorted
things 3), the world depth range it covers (for culling and far-to-near ordering), how to draw
itself, and where it is ``t`` seconds later (only vehicles move).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from liteseg_ros.tools.synthetic import palette as pal
from liteseg_ros.tools.synthetic.canvas import Canvas, Color
from liteseg_ros.tools.synthetic.geometry import Box, Face, Lighting, Vec3, polygon_extent, project_polygon

#: how far ahead (metres) fine ground patterns are drawn; beyond they would alias to noise.
PATTERN_RANGE_M = 35.0


class WorldObject:
    """Base of every drawable object (``layer``, ``near``, ``far``, ``draw``, ``at_time``)."""

    layer = 3

    @property
    def near(self) -> float:
        raise NotImplementedError

    @property
    def far(self) -> float:
        raise NotImplementedError

    def draw(self, canvas: Canvas, light: Lighting) -> None:
        raise NotImplementedError

    def at_time(self, t: float) -> "WorldObject":
        """This object ``t`` seconds after the world's start (static objects stay put)."""
        return self


class FlatSpan(WorldObject):
    """A flat object lying on the ground between depths ``z0`` (near) and ``z1`` (far)."""

    z0: float
    z1: float

    @property
    def near(self) -> float:
        return self.z0

    @property
    def far(self) -> float:
        return self.z1


@dataclass(frozen=True)
class GroundStrip(FlatSpan):
    """A flat rectangle of ground [x0, x1] x [z0, z1] (road, sidewalk, terrain, parking...)."""

    x0: float
    x1: float
    z0: float
    z1: float
    label_id: int
    color: Color
    tile_m: float = 0.0  # > 0: paving joints every tile_m metres
    layer = 0

    def draw(self, canvas: Canvas, light: Lighting) -> None:
        corners = [(self.x0, 0.0, self.z0), (self.x1, 0.0, self.z0), (self.x1, 0.0, self.z1), (self.x0, 0.0, self.z1)]
        points = project_polygon(canvas.camera, corners)
        if not points:
            return
        color = pal.shade(self.color, light.factor((0.0, 1.0, 0.0)) / 0.9)
        canvas.polygon(points, color, self.label_id)
        if self.tile_m > 0:
            self._draw_joints(canvas, pal.shade(color, 0.78))

    def _draw_joints(self, canvas: Canvas, color: Color) -> None:
        cam = canvas.camera
        start = max(self.z0, cam.near_z())
        stop = min(self.z1, cam.z + PATTERN_RANGE_M)
        z = math.ceil(start / self.tile_m) * self.tile_m
        while z < stop:
            canvas.paint_line([cam.project(self.x0, 0.0, z), cam.project(self.x1, 0.0, z)], color, 1)
            z += self.tile_m
        if stop > start:
            mid = 0.5 * (self.x0 + self.x1)
            canvas.paint_line([cam.project(mid, 0.0, start), cam.project(mid, 0.0, stop)], color, 1)


@dataclass(frozen=True)
class Marking(FlatSpan):
    """Painted road lines (lane dashes, rails): appearance only, they stay labelled as road."""

    x: float
    width: float
    z0: float
    z1: float
    color: Color
    dash_m: float = 3.0
    gap_m: float = 0.0  # 0: a continuous line
    layer = 0

    def draw(self, canvas: Canvas, light: Lighting) -> None:
        cam = canvas.camera
        x0, x1 = self.x - self.width / 2, self.x + self.width / 2
        start, stop = max(self.z0, cam.near_z()), min(self.z1, cam.z + 150.0)
        period = self.dash_m + self.gap_m
        segments = [(start, stop)]
        if self.gap_m > 0:
            first = math.floor(start / period) * period
            segments = [(z, z + self.dash_m) for z in _frange(first, stop, period)]
        for z0, z1 in segments:
            quad = [(x0, 0.0, z0), (x1, 0.0, z0), (x1, 0.0, z1), (x0, 0.0, z1)]
            points = project_polygon(cam, quad)
            if points:
                canvas.paint_polygon(points, self.color)


@dataclass(frozen=True)
class Windows:
    """A facade's window grid (metres)."""

    floor_m: float
    width_m: float
    height_m: float
    spacing_m: float
    color: Color
    ground_floor_m: float = 3.5


@dataclass(frozen=True)
class Building(WorldObject):
    """A facade block; ``windows`` None for distant silhouettes."""

    box: Box
    color: Color
    windows: Windows | None = None
    label_id: int = pal.ID["building"]
    layer = 1

    @property
    def near(self) -> float:
        return self.box.z0

    @property
    def far(self) -> float:
        return self.box.z1

    def draw(self, canvas: Canvas, light: Lighting) -> None:
        faces = self.box.visible_faces(canvas.camera)
        value = canvas.instance_value(self.label_id)
        for face in faces.values():
            fill_face(canvas, face, pal.shade(self.color, light.factor(face.normal)), value)
        if self.windows is not None:
            for name in ("front", "side"):
                if name in faces:
                    self._draw_windows(canvas, faces[name], light)
        cast_shadow(canvas, self.box, light, darkness=80)

    def _draw_windows(self, canvas: Canvas, face: Face, light: Lighting) -> None:
        spec = self.windows
        assert spec is not None
        color = pal.shade(spec.color, light.factor(face.normal) / 0.8)
        shop = pal.shade(color, 0.8)
        for s in _frange(0.6, face.s_len - spec.width_m - 0.3, spec.spacing_m):
            paint_quad(canvas, face.quad(s, s + spec.width_m * 1.4, 0.4, spec.ground_floor_m - 0.6), shop)
            for t in _frange(spec.ground_floor_m + 0.6, face.t_len - spec.height_m - 0.4, spec.floor_m):
                paint_quad(canvas, face.quad(s, s + spec.width_m, t, t + spec.height_m), color)


@dataclass(frozen=True)
class Barrier(WorldObject):
    """A wall, fence or hedge along the street: a thin box with a surface pattern."""

    box: Box
    kind: str  # "wall" | "fence" | "hedge"
    color: Color
    pattern_m: float = 0.3  # wall courses / fence boards
    layer = 2

    @property
    def near(self) -> float:
        return self.box.z0

    @property
    def far(self) -> float:
        return self.box.z1

    def draw(self, canvas: Canvas, light: Lighting) -> None:
        label_id = pal.ID["vegetation"] if self.kind == "hedge" else pal.ID[self.kind]
        value = canvas.instance_value(label_id)
        faces = self.box.visible_faces(canvas.camera)
        for name, face in faces.items():
            color = pal.shade(self.color, light.factor(face.normal))
            fill_face(canvas, face, color, value)
            if name != "top" and self.kind == "wall":
                self._courses(canvas, face, pal.shade(color, 0.75), pal.shade(color, 1.2))
            elif name != "top" and self.kind == "fence":
                self._boards(canvas, face, pal.shade(color, 0.6))
        cast_shadow(canvas, self.box, light, darkness=60)

    def _courses(self, canvas: Canvas, face: Face, joint: Color, coping: Color) -> None:
        for t in _frange(self.pattern_m, face.t_len - 0.1, self.pattern_m):
            paint_line(canvas, face.point(0.0, t), face.point(face.s_len, t), joint)
        paint_quad(canvas, face.quad(0.0, face.s_len, face.t_len - 0.12, face.t_len), coping)

    def _boards(self, canvas: Canvas, face: Face, gap: Color) -> None:
        cam = canvas.camera
        for s in _frange(self.pattern_m, face.s_len, self.pattern_m):
            top = face.point(s, face.t_len)
            if cam.near_z() <= top[2] <= cam.z + PATTERN_RANGE_M:
                paint_line(canvas, face.point(s, 0.0), top, gap)
        for t in (0.25, face.t_len - 0.2):
            paint_quad(canvas, face.quad(0.0, face.s_len, t - 0.05, t + 0.05), gap)


def fill_face(canvas: Canvas, face: Face, color: Color, value: int) -> None:
    points = project_polygon(canvas.camera, face.whole())
    if points:
        canvas.polygon(points, color, value)


def paint_quad(canvas: Canvas, quad: Sequence[Vec3], color: Color, min_px: float = 1.5) -> None:
    points = project_polygon(canvas.camera, quad)
    if points and polygon_extent(points) >= min_px:
        canvas.paint_polygon(points, color)


def paint_line(canvas: Canvas, a: Vec3, b: Vec3, color: Color) -> None:
    cam = canvas.camera
    near = cam.near_z()
    if a[2] < near and b[2] < near:
        return
    if a[2] < near or b[2] < near:
        (a, b) = (a, b) if a[2] >= near else (b, a)
        t = (near - a[2]) / (b[2] - a[2])
        b = (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]), near)
    canvas.paint_line([cam.project(*a), cam.project(*b)], color, 1)


def cast_shadow(canvas: Canvas, box: Box, light: Lighting, darkness: int) -> None:
    """The ground shadow of a box: hull of its footprint and the footprint shifted by the sun."""
    dx, dz = light.shadow_offset_per_m
    h = box.y1
    footprint = [(box.x0, box.z0), (box.x1, box.z0), (box.x1, box.z1), (box.x0, box.z1)]
    shifted = [(x + dx * h, z + dz * h) for x, z in footprint]
    hull = convex_hull(footprint + shifted)
    points = project_polygon(canvas.camera, [(x, 0.0, z) for x, z in hull])
    if points:
        canvas.shadow_polygon(points, darkness)


def convex_hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Andrew's monotone chain; counter-clockwise, no repeated end point."""
    pts = sorted(set(points))
    if len(pts) < 3:
        return pts

    def cross(o, a, b) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[float, float]] = []
    upper: list[tuple[float, float]] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


def _frange(start: float, stop: float, step: float) -> list[float]:
    if step <= 0 or stop <= start:
        return []
    count = int(math.floor((stop - start) / step)) + 1
    return [start + i * step for i in range(count) if start + i * step <= stop]
