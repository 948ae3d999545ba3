"""Camera-facing figures: people, cyclists and motorcyclists, poles with lights and signs, trees,
street furniture. Shapes are given in metres (dx right, dy up from the ground) and scaled with
distance by :class:`~liteseg_ros.tools.synthetic.geometry.Sprite`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from liteseg_ros.tools.synthetic import palette as pal
from liteseg_ros.tools.synthetic.canvas import Canvas, Color
from liteseg_ros.tools.synthetic.geometry import Lighting, Sprite
from liteseg_ros.tools.synthetic.objects import WorldObject

#: figures closer than this (metres) are not drawn: they would fill the frame
MIN_SPRITE_DEPTH_M = 1.5
#: figures farther than this are not drawn: a few pixels, too small to learn from
MAX_SPRITE_DEPTH_M = 50.0
#: people, riders and their bikes are thinner: they stop being drawn sooner; tree crowns later
PERSON_MAX_DEPTH_M = 42.0
CYCLIST_MAX_DEPTH_M = 36.0
TREE_MAX_DEPTH_M = 90.0


@dataclass(frozen=True)
class Figure(WorldObject):
    """Base of sprites standing at (x, z), possibly walking with (vx, vz) m/s."""

    x: float
    z: float
    vx: float = 0.0
    vz: float = 0.0

    @property
    def near(self) -> float:
        return self.z

    @property
    def far(self) -> float:
        return self.z

    def at_time(self, t: float) -> "Figure":
        if not (self.vx or self.vz):
            return self
        return replace(self, x=self.x + self.vx * t, z=self.z + self.vz * t)

    max_depth = MAX_SPRITE_DEPTH_M

    def sprite(self, canvas: Canvas) -> Sprite | None:
        if not MIN_SPRITE_DEPTH_M <= self.z - canvas.camera.z <= self.max_depth:
            return None
        return Sprite(canvas.camera, self.x, self.z)


@dataclass(frozen=True)
class Person(Figure):
    """A pedestrian, ``stride`` in [-1, 1] spreads the legs."""

    height: float = 1.75
    skin: Color = pal.SKIN[0]
    shirt: Color = pal.CLOTHES[0]
    trousers: Color = pal.TROUSERS[0]
    hair: Color = (40, 30, 24)
    stride: float = 0.0
    max_depth = PERSON_MAX_DEPTH_M

    def draw(self, canvas: Canvas, light: Lighting) -> None:
        sp = self.sprite(canvas)
        if sp is None:
            return
        value = canvas.instance_value(pal.ID["person"])
        draw_body(canvas, sp, value, self.height, self.skin, self.shirt, self.trousers, self.hair, self.stride)


def draw_body(canvas: Canvas, sp: Sprite, value: int, h: float, skin: Color, shirt: Color,
              trousers: Color, hair: Color, stride: float) -> None:
    """A standing human figure of height ``h`` (metres) in a sprite frame."""
    hip, leg_w = 0.48 * h, 0.085 * h
    for side in (-1.0, 1.0):
        foot = side * (0.05 * h + stride * 0.1 * h)
        hx = side * 0.055 * h
        canvas.polygon(sp.poly([(hx - leg_w / 2, hip), (hx + leg_w / 2, hip), (foot + leg_w / 2, 0.0),
                                (foot - leg_w / 2, 0.0)]), trousers, value)
    canvas.polygon(sp.poly([(-0.11 * h, hip - 0.03 * h), (0.11 * h, hip - 0.03 * h), (0.135 * h, 0.81 * h),
                            (-0.135 * h, 0.81 * h)]), shirt, value)
    sleeve = pal.shade(shirt, 0.85)
    for side in (-1.0, 1.0):
        sx, hx = side * 0.125 * h, side * (0.15 + 0.03 * abs(stride)) * h
        canvas.polygon(sp.poly([(sx - 0.03 * h, 0.8 * h), (sx + 0.03 * h, 0.8 * h), (hx + 0.025 * h, 0.47 * h),
                                (hx - 0.025 * h, 0.47 * h)]), sleeve, value)
        canvas.ellipse(sp.oval(hx, 0.46 * h, 0.028 * h, 0.03 * h), skin, value)
    canvas.polygon(sp.rect(-0.03 * h, 0.8 * h, 0.03 * h, 0.86 * h), skin, value)
    canvas.ellipse(sp.oval(0.0, 0.915 * h, 0.062 * h, 0.078 * h), skin, value)
    canvas.paint_ellipse(sp.oval(0.0, 0.95 * h, 0.064 * h, 0.05 * h), hair)


@dataclass(frozen=True)
class Cyclist(Figure):
    """A bicycle or motorcycle seen from the side, with or without its rider."""

    kind: str = "bicycle"  # or "motorcycle"
    facing: float = 1.0  # +1: heading right in the image
    frame: Color = pal.BICYCLE[0]
    jacket: Color | None = pal.RIDER_JACKETS[0]  # None: parked, no rider
    helmet: Color = pal.HELMETS[0]
    trousers: Color = pal.TROUSERS[0]
    max_depth = CYCLIST_MAX_DEPTH_M

    def draw(self, canvas: Canvas, light: Lighting) -> None:
        sp = self.sprite(canvas)
        if sp is None:
            return
        bike_value = canvas.instance_value(pal.ID[self.kind])
        if self.kind == "bicycle":
            seat, bar = self._draw_bicycle(canvas, sp, bike_value)
        else:
            seat, bar = self._draw_motorcycle(canvas, sp, bike_value)
        if self.jacket is not None:
            self._draw_rider(canvas, sp, canvas.instance_value(pal.ID["rider"]), seat, bar)

    @staticmethod
    def _spoked_wheel(canvas: Canvas, sp: Sprite, dx: float, r: float, value: int) -> None:
        """A thin tyre around light spokes (the wheel's disc is labelled, as in Cityscapes)."""
        canvas.ellipse(sp.oval(dx, r, r, r), pal.TYRE, value)
        canvas.paint_ellipse(sp.oval(dx, r, r * 0.86, r * 0.86), (150, 150, 156))
        for a in (0.0, math.pi / 3, 2 * math.pi / 3):
            cx, cy = r * 0.86 * math.cos(a), r * 0.86 * math.sin(a)
            canvas.paint_line([sp.p(dx - cx, r - cy), sp.p(dx + cx, r + cy)], (70, 70, 74), sp.px(0.02))
        canvas.paint_ellipse(sp.oval(dx, r, r * 0.12, r * 0.12), pal.TYRE)

    @staticmethod
    def _solid_wheel(canvas: Canvas, sp: Sprite, dx: float, r: float, value: int) -> None:
        """A fat tyre on a dark rim with a chrome hub."""
        canvas.ellipse(sp.oval(dx, r, r, r), pal.TYRE, value)
        canvas.paint_ellipse(sp.oval(dx, r, r * 0.6, r * 0.6), (62, 62, 66))
        canvas.paint_ellipse(sp.oval(dx, r, r * 0.25, r * 0.25), (190, 190, 196))

    def _draw_bicycle(self, canvas: Canvas, sp: Sprite, value: int) -> tuple[tuple, tuple]:
        f, r = self.facing, 0.34
        for dx in (-0.53, 0.53):
            self._spoked_wheel(canvas, sp, f * dx, r, value)
        hub_r, hub_f, bb = (-0.53 * f, r), (0.53 * f, r), (0.0, 0.3)
        seat, top = (-0.2 * f, 0.92), (0.38 * f, 0.95)
        bar = (0.45 * f, 1.08)
        width = max(sp.px(0.08), canvas.min_px * 2)
        canvas.line([sp.p(*hub_r), sp.p(*seat), sp.p(*top), sp.p(*hub_f)], self.frame, value, width)
        canvas.line([sp.p(*hub_r), sp.p(*bb), sp.p(*top)], self.frame, value, width)
        canvas.line([sp.p(*bb), sp.p(*seat)], self.frame, value, width)
        canvas.line([sp.p(*top), sp.p(*bar)], (30, 30, 30), value, width)
        canvas.polygon(sp.rect(seat[0] - 0.12, 0.92, seat[0] + 0.12, 0.99), (25, 25, 25), value)
        return (seat[0], 0.98), bar

    def _draw_motorcycle(self, canvas: Canvas, sp: Sprite, value: int) -> tuple[tuple, tuple]:
        f, r = self.facing, 0.34
        for dx in (-0.72, 0.72):
            self._solid_wheel(canvas, sp, f * dx, r, value)
        body = [(-0.8, 0.5), (-0.3, 0.88), (0.45, 1.0), (0.78, 0.8), (0.6, 0.3), (-0.3, 0.28)]
        canvas.polygon(sp.poly([(f * dx, dy) for dx, dy in body]), self.frame, value)
        canvas.polygon(sp.poly([(f * dx, dy) for dx, dy in [(-0.15, 0.3), (0.35, 0.3), (0.3, 0.6), (-0.1, 0.6)]]),
                       (150, 150, 156), value)
        canvas.polygon(sp.poly([(f * dx, dy) for dx, dy in [(-0.7, 0.82), (-0.05, 0.9), (-0.05, 0.98), (-0.65, 0.92)]]),
                       (24, 24, 24), value)
        canvas.ellipse(sp.oval(f * 0.72, 0.95, 0.09, 0.09), (236, 232, 200), value)
        bar = (0.55 * f, 1.12)
        canvas.line([sp.p(0.6 * f, 0.7), sp.p(*bar)], (60, 60, 64), value, max(sp.px(0.07), canvas.min_px * 2))
        return (-0.35 * f, 0.95), bar

    def _draw_rider(self, canvas: Canvas, sp: Sprite, value: int, seat: tuple, bar: tuple) -> None:
        f = self.facing
        hip = seat
        shoulder = (hip[0] + 0.28 * f, hip[1] + 0.55)
        knee = (hip[0] + 0.38 * f, hip[1] - 0.22)
        foot = (0.05 * f, 0.3)
        leg = max(sp.px(0.2), canvas.min_px * 2)
        canvas.line([sp.p(*hip), sp.p(*knee), sp.p(*foot)], self.trousers, value, leg)
        canvas.polygon(sp.poly([(hip[0] - 0.16 * f, hip[1]), (hip[0] + 0.15 * f, hip[1] - 0.02),
                                (shoulder[0] + 0.12 * f, shoulder[1]), (shoulder[0] - 0.17 * f, shoulder[1] + 0.02)]),
                       self.jacket, value)
        arm_width = max(sp.px(0.13), canvas.min_px * 2)
        canvas.line([sp.p(*shoulder), sp.p(*bar)], pal.shade(self.jacket, 0.85), value, arm_width)
        head = (shoulder[0] + 0.08 * f, shoulder[1] + 0.2)
        canvas.ellipse(sp.oval(head[0], head[1], 0.13, 0.14), self.helmet, value)


@dataclass(frozen=True)
class Pole(Figure):
    """A pole, optionally with a traffic light, a sign and/or a street-lamp arm towards the road."""

    height: float = 5.0
    width: float = 0.22
    color: Color = pal.POLE[0]
    road_side: float = 1.0  # +1: the road is to the right of the pole
    lamp_arm: bool = False
    light_y: float | None = None
    light_housing: Color = pal.LIGHT_HOUSING[0]
    light_backplate: Color | None = None
    lit: int = 0  # 0 red, 1 amber, 2 green
    sign_y: float | None = None
    sign_shape: str = "circle"  # circle | triangle | square | diamond
    sign_colors: tuple[Color, Color] = pal.SIGN_FACES[0]
    sign_size: float = 0.75

    def draw(self, canvas: Canvas, light: Lighting) -> None:
        sp = self.sprite(canvas)
        if sp is None:
            return
        half = max(self.width * sp.scale, canvas.min_px * 1.5) / (2 * sp.scale)
        value = canvas.instance_value(pal.ID["pole"])
        color = pal.shade(self.color, light.factor((-self.road_side, 0.0, -0.5)))
        canvas.polygon(sp.rect(-half, 0.0, half, self.height), color, value)
        s = self.road_side
        if self.lamp_arm:
            canvas.line(
                [sp.p(0.0, self.height - 0.2), sp.p(1.0 * s, self.height + 0.25), sp.p(1.8 * s, self.height + 0.2)],
                color,
                value,
                max(sp.px(0.1), canvas.min_px),
            )
            canvas.polygon(sp.rect(1.5 * s, self.height, 2.1 * s, self.height + 0.25), pal.shade(color, 0.7), value)
        if self.sign_y is not None:
            self._draw_sign(canvas, sp)
        if self.light_y is not None:
            self._draw_light(canvas, sp, half)

    def _draw_light(self, canvas: Canvas, sp: Sprite, half: float) -> None:
        cx, y0 = self.road_side * (half + 0.34), self.light_y
        value = canvas.instance_value(pal.ID["traffic light"])
        if self.light_backplate is not None:
            canvas.polygon(sp.rect(cx - 0.34, y0 - 0.1, cx + 0.34, y0 + 1.3), self.light_backplate, value)
        canvas.polygon(sp.rect(cx - 0.24, y0, cx + 0.24, y0 + 1.2), self.light_housing, value)
        for i, lamp in enumerate(pal.LAMPS):
            color = lamp if i == self.lit else pal.shade(lamp, 0.28)
            canvas.paint_ellipse(sp.oval(cx, y0 + 0.98 - 0.38 * i, 0.14, 0.14), color)

    def _draw_sign(self, canvas: Canvas, sp: Sprite) -> None:
        value = canvas.instance_value(pal.ID["traffic sign"])
        face, symbol = self.sign_colors
        r, y = self.sign_size / 2, self.sign_y + self.sign_size / 2
        if self.sign_shape == "circle":
            canvas.ellipse(sp.oval(0.0, y, r, r), face, value)
            canvas.paint_ellipse(sp.oval(0.0, y, r * 0.68, r * 0.68), symbol)
            canvas.paint_polygon(sp.rect(-r * 0.5, y - r * 0.12, r * 0.5, y + r * 0.12), face)
            return
        if self.sign_shape == "triangle":
            outer = [(-r, y - r * 0.8), (r, y - r * 0.8), (0.0, y + r * 0.95)]
            inner = [(-r * 0.6, y - r * 0.55), (r * 0.6, y - r * 0.55), (0.0, y + r * 0.5)]
        elif self.sign_shape == "diamond":
            outer = [(0.0, y - r), (r, y), (0.0, y + r), (-r, y)]
            inner = [(0.0, y - r * 0.6), (r * 0.6, y), (0.0, y + r * 0.6), (-r * 0.6, y)]
        else:
            outer = [(-r, y - r), (r, y - r), (r, y + r), (-r, y + r)]
            inner = [(-r * 0.2, y - r * 0.6), (r * 0.2, y - r * 0.6), (r * 0.2, y + r * 0.6), (-r * 0.2, y + r * 0.6)]
        canvas.polygon(sp.poly(outer), face, value)
        canvas.paint_polygon(sp.poly(inner), symbol)


@dataclass(frozen=True)
class Tree(Figure):
    """A trunk and a crown of overlapping ellipses (all vegetation)."""

    trunk_h: float = 2.5
    trunk_w: float = 0.3
    crown: tuple[tuple[float, float, float, float, Color], ...] = ()  # (dx, dy, rx, ry, colour)
    trunk_color: Color = pal.TRUNK[0]
    max_depth = TREE_MAX_DEPTH_M

    def draw(self, canvas: Canvas, light: Lighting) -> None:
        sp = self.sprite(canvas)
        if sp is None:
            return
        value = canvas.instance_value(pal.ID["vegetation"])
        half = max(self.trunk_w * sp.scale, canvas.min_px * 1.5) / (2 * sp.scale)
        canvas.polygon(sp.rect(-half, 0.0, half, self.trunk_h + 0.5), self.trunk_color, value)
        for dx, dy, rx, ry, color in self.crown:
            canvas.ellipse(sp.oval(dx, self.trunk_h + dy, rx, ry), color, value)


@dataclass(frozen=True)
class Furniture(Figure):
    """Street furniture labelled 'static' (bin, bench, box) or unlabeled clutter (an advert board)."""

    kind: str = "bin"  # bin | bench | box | board
    color: Color = pal.STATIC[0]
    size: float = 1.0

    def draw(self, canvas: Canvas, light: Lighting) -> None:
        sp = self.sprite(canvas)
        if sp is None:
            return
        label = pal.ID["unlabeled"] if self.kind == "board" else pal.ID["static"]
        value = canvas.instance_value(label)
        s = self.size
        dark = pal.shade(self.color, 0.6)
        if self.kind == "bin":
            canvas.polygon(sp.rect(-0.3 * s, 0.0, 0.3 * s, 0.95 * s), self.color, value)
            canvas.polygon(sp.rect(-0.34 * s, 0.95 * s, 0.34 * s, 1.05 * s), dark, value)
        elif self.kind == "bench":
            canvas.polygon(sp.rect(-0.9 * s, 0.42 * s, 0.9 * s, 0.52 * s), self.color, value)
            canvas.polygon(sp.rect(-0.9 * s, 0.62 * s, 0.9 * s, 0.9 * s), self.color, value)
            for dx in (-0.75, 0.75):
                canvas.polygon(sp.rect((dx - 0.05) * s, 0.0, (dx + 0.05) * s, 0.9 * s), dark, value)
        elif self.kind == "box":
            canvas.polygon(sp.rect(-0.45 * s, 0.0, 0.45 * s, 1.3 * s), self.color, value)
            canvas.paint_polygon(sp.rect(-0.35 * s, 0.9 * s, 0.35 * s, 1.15 * s), dark)
        else:
            canvas.polygon(sp.rect(-0.6 * s, 0.0, 0.6 * s, 2.0 * s), self.color, value)
            canvas.paint_polygon(sp.rect(-0.45 * s, 0.7 * s, 0.45 * s, 1.8 * s), pal.shade(self.color, 1.3))


def crown_blobs(rng: np.random.Generator, radius: float, greens: tuple[Color, ...]) -> tuple:
    """Random overlapping ellipses forming a tree crown of about ``radius`` metres."""
    count = int(rng.integers(4, 8))
    blobs = []
    for i in range(count):
        angle = 2 * math.pi * i / count + rng.uniform(-0.4, 0.4)
        dist = radius * rng.uniform(0.25, 0.55)
        r = radius * rng.uniform(0.45, 0.7)
        blobs.append(
            (
                dist * math.cos(angle),
                radius + dist * math.sin(angle) * 0.8,
                r,
                r * rng.uniform(0.8, 1.1),
                pal.pick(rng, greens, 8.0),
            )
        )
    blobs.append((0.0, radius, radius * 0.7, radius * 0.75, pal.pick(rng, greens, 8.0)))
    return tuple(blobs)


def random_person(rng: np.random.Generator, x: float, z: float, vx: float = 0.0, vz: float = 0.0) -> Person:
    """A pedestrian of random height and clothing at (x, z), walking with (vx, vz) m/s."""
    return Person(
        x=x,
        z=z,
        vx=vx,
        vz=vz,
        height=rng.uniform(1.55, 1.95),
        skin=pal.pick(rng, pal.SKIN, 6.0),
        shirt=pal.pick(rng, pal.CLOTHES, 14.0),
        trousers=pal.pick(rng, pal.TROUSERS, 8.0),
        hair=pal.pick(rng, ((40, 30, 24), (90, 64, 40), (20, 20, 20), (160, 130, 80)), 6.0),
        stride=rng.uniform(-1.0, 1.0),
    )
