"""Drawing of cars, trucks, buses and trams as a few boxes with windows, lights and wheels."""

from __future__ import annotations

from dataclasses import dataclass, replace

from liteseg_ros.tools.synthetic import palette as pal
from liteseg_ros.tools.synthetic.canvas import Canvas, Color
from liteseg_ros.tools.synthetic.geometry import Box, Face, Lighting, project_polygon
from liteseg_ros.tools.synthetic.objects import WorldObject, cast_shadow, fill_face, paint_quad

TAIL_LIGHT = (214, 30, 28)
HEAD_LIGHT = (246, 240, 210)
PLATE = (232, 232, 226)
GLASS = (44, 52, 66)


@dataclass(frozen=True)
class Vehicle(WorldObject):
    """A car, truck, bus or tram: boxes for wheels, body and cabin, seen from any side."""

    kind: str  # "car" | "truck" | "bus" | "train"
    x: float  # centre
    z: float  # near end
    length: float
    width: float
    height: float
    color: Color
    towards: bool = False  # True: oncoming (we see its front)
    accent: Color = (30, 30, 34)
    speed: float = 0.0  # m/s along +z (negative for oncoming)

    @property
    def near(self) -> float:
        return self.z

    @property
    def far(self) -> float:
        return self.z + self.length

    def at_time(self, t: float) -> "Vehicle":
        return replace(self, z=self.z + self.speed * t) if self.speed else self

    def draw(self, canvas: Canvas, light: Lighting) -> None:
        draw_vehicle(self, canvas, light)


def draw_vehicle(v: Vehicle, canvas: Canvas, light: Lighting) -> None:
    """Draw ``v`` (all parts share one instance value) with its shadow on the ground."""
    value = canvas.instance_value(pal.ID[v.kind])
    x0, x1, z0, z1 = v.x - v.width / 2, v.x + v.width / 2, v.z, v.z + v.length
    footprint = Box(x0 - 0.15, x1 + 0.15, 0.0, v.height * 0.5, z0 - 0.15, z1 + 0.15)
    cast_shadow(canvas, footprint, light, darkness=70)
    _contact_shadow(canvas, x0, x1, z0, z1)
    if v.kind == "car":
        _draw_car(v, canvas, light, value)
    elif v.kind == "truck":
        _draw_truck(v, canvas, light, value)
    else:
        _draw_long(v, canvas, light, value)


def _contact_shadow(canvas: Canvas, x0: float, x1: float, z0: float, z1: float) -> None:
    quad = [(x0 - 0.1, 0.0, z0 - 0.2), (x1 + 0.1, 0.0, z0 - 0.2), (x1 + 0.1, 0.0, z1), (x0 - 0.1, 0.0, z1)]
    points = project_polygon(canvas.camera, quad)
    if points:
        canvas.shadow_polygon(points, 120)


def _wheels(v: Vehicle, canvas: Canvas, light: Lighting, value: int, radius: float, inset: float) -> None:
    x0, x1 = v.x - v.width / 2, v.x + v.width / 2
    for za in (v.z + inset, v.z + v.length - inset - 2 * radius):
        for xa, xb in ((x0 + 0.02, x0 + 0.3), (x1 - 0.3, x1 - 0.02)):
            _solid(canvas, Box(xa, xb, 0.0, 2 * radius, za, za + 2 * radius), pal.TYRE, light, value)


def _solid(canvas: Canvas, box: Box, color: Color, light: Lighting, value: int) -> dict[str, Face]:
    faces = box.visible_faces(canvas.camera)
    for face in faces.values():
        fill_face(canvas, face, pal.shade(color, light.factor(face.normal)), value)
    return faces


def _lights(canvas: Canvas, face: Face, towards: bool, t0: float, t1: float) -> None:
    color = HEAD_LIGHT if towards else TAIL_LIGHT
    w = face.s_len
    size = min(0.35, w * 0.18)
    paint_quad(canvas, face.quad(0.06, 0.06 + size, t0, t1), color, 1.0)
    paint_quad(canvas, face.quad(w - 0.06 - size, w - 0.06, t0, t1), color, 1.0)


def _draw_car(v: Vehicle, canvas: Canvas, light: Lighting, value: int) -> None:
    x0, x1, z0, z1 = v.x - v.width / 2, v.x + v.width / 2, v.z, v.z + v.length
    r = 0.32
    waist = v.height * 0.6
    _wheels(v, canvas, light, value, r, 0.55)
    body = _solid(canvas, Box(x0, x1, r * 0.8, waist, z0, z1), v.color, light, value)
    near_overhang, far_overhang = (0.2, 0.28) if v.towards else (0.28, 0.2)
    cabin_box = Box(x0 + 0.1, x1 - 0.1, waist, v.height, z0 + v.length * near_overhang, z1 - v.length * far_overhang)
    cabin = _solid(canvas, cabin_box, v.color, light, value)
    glass = pal.shade(GLASS, light.factor((0.0, 0.3, -1.0)) / 0.7)
    if "front" in body:
        face = body["front"]
        _lights(canvas, face, v.towards, face.t_len - 0.26, face.t_len - 0.08)
        paint_quad(canvas, face.quad(face.s_len / 2 - 0.26, face.s_len / 2 + 0.26, 0.12, 0.24), PLATE, 1.0)
    if "front" in cabin:
        face = cabin["front"]
        paint_quad(canvas, face.quad(0.1, face.s_len - 0.1, 0.04, face.t_len - 0.07), glass)
    if "side" in cabin:
        face = cabin["side"]
        paint_quad(canvas, face.quad(0.12, face.s_len - 0.12, 0.05, face.t_len - 0.07), glass)


def _draw_truck(v: Vehicle, canvas: Canvas, light: Lighting, value: int) -> None:
    x0, x1, z0, z1 = v.x - v.width / 2, v.x + v.width / 2, v.z, v.z + v.length
    cab_len = 2.2
    _wheels(v, canvas, light, value, 0.5, 0.9)
    if v.towards:
        cargo = Box(x0, x1, 0.55, v.height, z0 + cab_len + 0.3, z1)
        cab = Box(x0 + 0.05, x1 - 0.05, 0.5, min(2.9, v.height - 0.2), z0, z0 + cab_len)
        _solid(canvas, cargo, v.color, light, value)
        faces = _solid(canvas, cab, v.accent, light, value)
        if "front" in faces:
            face = faces["front"]
            paint_quad(canvas, face.quad(0.12, face.s_len - 0.12, 1.15, face.t_len - 0.2), GLASS)
            _lights(canvas, face, True, 0.2, 0.45)
        return
    cab = Box(x0 + 0.05, x1 - 0.05, 0.5, min(2.9, v.height - 0.2), z1 - cab_len, z1)
    cargo = Box(x0, x1, 0.55, v.height, z0, z1 - cab_len - 0.3)
    _solid(canvas, cab, v.accent, light, value)
    faces = _solid(canvas, cargo, v.color, light, value)
    if "front" in faces:
        face = faces["front"]
        paint_quad(canvas, face.quad(face.s_len / 2 - 0.03, face.s_len / 2 + 0.03, 0.1, face.t_len - 0.1),
                    pal.shade(v.color, 0.55), 1.0)
        _lights(canvas, face, False, 0.05, 0.3)
    if "side" in faces:
        face = faces["side"]
        paint_quad(canvas, face.quad(0.0, face.s_len, 0.0, 0.25), pal.shade(v.accent, 0.8))


def _draw_long(v: Vehicle, canvas: Canvas, light: Lighting, value: int) -> None:
    """Bus or tram: one long box, a window band with pillars, a colour band and big end windows."""
    x0, x1, z0, z1 = v.x - v.width / 2, v.x + v.width / 2, v.z, v.z + v.length
    is_bus = v.kind == "bus"
    if is_bus:
        _wheels(v, canvas, light, value, 0.5, 1.6)
    else:
        _solid(canvas, Box(x0 + 0.2, x1 - 0.2, 0.0, 0.4, z0 + 0.5, z1 - 0.5), (40, 40, 44), light, value)
    faces = _solid(canvas, Box(x0, x1, 0.3 if is_bus else 0.35, v.height, z0, z1), v.color, light, value)
    glass = pal.shade(GLASS, 1.05)
    band_t = (0.55, 0.85) if is_bus else (0.45, 0.95)
    window_t = (1.25, v.height - 0.6) if is_bus else (1.1, v.height - 0.8)
    if "side" in faces:
        face = faces["side"]
        paint_quad(canvas, face.quad(0.0, face.s_len, band_t[0] - 0.3, band_t[1] - 0.3), v.accent)
        pitch = 1.45 if is_bus else 1.8
        for i in range(int(face.s_len / pitch)):
            s = 0.3 + i * pitch
            paint_quad(canvas, face.quad(s, s + pitch - 0.22, window_t[0], window_t[1]), glass)
    if "front" in faces:
        face = faces["front"]
        top = face.t_len - (0.45 if v.towards else 0.7)
        bottom = 1.0 if v.towards else window_t[0] + 0.5
        paint_quad(canvas, face.quad(0.12, face.s_len - 0.12, bottom, top), glass)
        paint_quad(canvas, face.quad(0.0, face.s_len, band_t[0], band_t[1]), v.accent)
        _lights(canvas, face, v.towards, 0.35, 0.55)
        if v.towards:
            paint_quad(canvas, face.quad(0.4, face.s_len - 0.4, top + 0.08, face.t_len - 0.08), (240, 150, 30), 1.0)
    if not is_bus:
        _pantograph(v, canvas, value)


def _pantograph(v: Vehicle, canvas: Canvas, value: int) -> None:
    cam = canvas.camera
    zc = v.z + v.length * 0.35
    if zc < cam.near_z():
        return
    top = v.height + 0.9
    arm = [cam.project(v.x - 0.6, v.height, zc - 0.6), cam.project(v.x, top, zc),
           cam.project(v.x + 0.6, v.height, zc + 0.6)]
    bar = [cam.project(v.x - 0.9, top, zc), cam.project(v.x + 0.9, top, zc)]
    width = 0.07 * cam.scale_at(zc)
    canvas.line(arm, (50, 50, 54), value, width)
    canvas.line(bar, (50, 50, 54), value, width)
