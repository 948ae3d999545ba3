"""Procedural street scenes with Cityscapes labels: single frames and smooth drives.

``render_scene(seed, height, width)`` gives one random frame. :class:`Drive` gives consecutive
frames of a camera moving down one random street (traffic moves too). Both return
``(rgb uint8 HxWx3, label_ids uint8 HxW, instance_ids int32 HxW)`` where ``instance_ids`` follows
Cityscapes' encoding: ``labelId * 1000 + k`` for instances of person/rider/vehicle classes, the
labelId elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from liteseg_ros.errors import ConfigError
from liteseg_ros.tools.synthetic import palette as pal
from liteseg_ros.tools.synthetic.canvas import Camera, Canvas, Color
from liteseg_ros.tools.synthetic.finish import Look, finish, texture_fields
from liteseg_ros.tools.synthetic.geometry import Box, Lighting
from liteseg_ros.tools.synthetic.layout import VIEW_DISTANCE_M, Layout, random_layout
from liteseg_ros.tools.synthetic.objects import Barrier, Building, WorldObject
from liteseg_ros.tools.synthetic.street import Span, populate, skyline

Frame = tuple[np.ndarray, np.ndarray, np.ndarray]
#: smallest image the renderer accepts (rows, columns)
MIN_SIZE = (16, 32)


@dataclass(frozen=True)
class World:
    """Everything needed to render a street at any time: layout, objects, light and camera style."""

    layout: Layout
    objects: tuple[WorldObject, ...]
    skyline: tuple[WorldObject, ...]  # depths relative to the camera
    lighting: Lighting
    look: Look
    sky: tuple[Color, Color]  # zenith, horizon
    clouds: tuple[tuple[float, float, float, float], ...]  # centre u, v, radii (image fractions)
    hood: tuple[float, Color] | None  # ego-vehicle bonnet: height (image fraction), colour
    texture_seed: int
    camera_speed: float = 0.0
    sway_m: float = 0.0
    sway_period_s: float = 10.0


def random_world(rng: np.random.Generator, span: Span) -> World:
    """A random street populated over ``span`` with random lighting, sky and camera look."""
    layout = random_layout(rng)
    objects = tuple(populate(rng, layout, span))
    sky = pal.SKY_CLEAR, pal.SKY_HAZY, pal.SKY_OVERCAST
    zenith, horizon = sky[int(rng.choice(3, p=[0.5, 0.3, 0.2]))]
    clouds = tuple((rng.uniform(0, 1), rng.uniform(0, 0.3), rng.uniform(0.05, 0.2), rng.uniform(0.02, 0.05))
                   for _ in range(int(rng.integers(0, 6))))
    hood = (rng.uniform(0.05, 0.1), pal.pick(rng, pal.EGO, 8.0)) if rng.random() < 0.75 else None
    return World(
        layout=layout, objects=objects, skyline=tuple(skyline(rng, VIEW_DISTANCE_M)),
        lighting=Lighting.random(rng), look=Look.random(rng),
        sky=(pal.pick(rng, (zenith,), 10.0), pal.pick(rng, (horizon,), 8.0)), clouds=clouds, hood=hood,
        texture_seed=int(rng.integers(2**31)), camera_speed=span.camera_speed,
        sway_m=rng.uniform(0.0, 0.35), sway_period_s=rng.uniform(6.0, 20.0),
    )


def camera_at(world: World, height: int, width: int, t: float) -> Camera:
    """The camera ``t`` seconds into the drive (a still is t = 0)."""
    lay = world.layout
    phase = 2.0 * math.pi * t / world.sway_period_s
    focal = lay.focal_ratio * width
    pitch = (height / 2.0 - lay.horizon_ratio * height) / focal
    return Camera(width=width, height=height, focal=focal, height_m=lay.camera_height,
                  x=world.sway_m * math.sin(phase), z=world.camera_speed * t,
                  yaw=lay.yaw + 0.01 * math.sin(phase + 1.0), pitch=pitch)


def render_world(world: World, height: int, width: int, t: float = 0.0,
                 noise_rng: np.random.Generator | None = None,
                 fields: np.ndarray | None = None) -> Frame:
    """Render ``world`` at time ``t``. ``fields``: cached :func:`texture_fields` for this size."""
    check_size(height, width)
    camera = camera_at(world, height, width, t)
    canvas = Canvas(camera)
    _draw_sky(canvas, world)
    for obj in _visible_in_order(world, camera, t):
        obj.draw(canvas, world.lighting)
    if world.hood is not None:
        _draw_hood(canvas, *world.hood)
    rgb, values, shade = canvas.arrays()
    label_ids = np.where(values >= 1000, values // 1000, values).astype(np.uint8)
    if fields is None:
        fields = texture_fields(np.random.default_rng(world.texture_seed), height, width)
    noise_rng = noise_rng if noise_rng is not None else np.random.default_rng(world.texture_seed + 1)
    image = finish(rgb, label_ids, shade, world.look, fields, noise_rng)
    return image, label_ids, compact_instances(values)


def render_scene(rng_or_seed: np.random.Generator | int, height: int, width: int) -> Frame:
    """One random street scene: ``(rgb uint8 HxWx3, label_ids uint8 HxW, instance_ids int32 HxW)``.

    Deterministic for an integer seed (or a generator in a given state).
    """
    rng = rng_or_seed if isinstance(rng_or_seed, np.random.Generator) else np.random.default_rng(rng_or_seed)
    world = random_world(rng, Span(-10.0, VIEW_DISTANCE_M + 10.0))
    return render_world(world, height, width, 0.0, rng)


class Drive:
    """A camera moving down one random street at ``speed`` m/s; ``frame(t)`` renders time ``t``."""

    def __init__(self, seed: int, height: int, width: int, duration_s: float, speed: float | None = None) -> None:
        check_size(height, width)
        check_seed(seed)
        rng = np.random.default_rng(seed)
        speed = rng.uniform(6.0, 11.0) if speed is None else speed
        span = Span(-15.0, speed * duration_s + VIEW_DISTANCE_M + 15.0, speed)
        self.world = random_world(rng, span)
        self.height, self.width, self.seed = height, width, seed
        self._fields = texture_fields(np.random.default_rng(self.world.texture_seed), height, width)

    def camera(self, t: float) -> Camera:
        return camera_at(self.world, self.height, self.width, t)

    def frame(self, t: float, index: int = 0) -> Frame:
        """The frame at time ``t``; ``index`` seeds its sensor noise."""
        noise = np.random.default_rng([self.seed, index])
        return render_world(self.world, self.height, self.width, t, noise, self._fields)


def check_size(height: int, width: int) -> None:
    """ConfigError unless the renderer can draw a ``height`` x ``width`` image."""
    if height < MIN_SIZE[0] or width < MIN_SIZE[1]:
        raise ConfigError(f"image size {height}x{width} is too small: use at least {MIN_SIZE[0]}x{MIN_SIZE[1]}")


def check_seed(seed: int) -> None:
    """ConfigError unless ``seed`` is a non-negative integer (numpy seeds cannot be negative)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"the seed must be an integer >= 0, got {seed!r}")


def compact_instances(values: np.ndarray) -> np.ndarray:
    """Renumber instances so each class counts 0, 1, 2... in drawing order (hidden ones dropped)."""
    out = values.copy()
    mask = values >= 1000
    if not mask.any():
        return out
    uniq, inverse = np.unique(values[mask], return_inverse=True)
    classes = uniq // 1000
    first = np.searchsorted(classes, classes)  # index of each class's first instance in uniq
    out[mask] = (classes * 1000 + (np.arange(len(uniq)) - first))[inverse]
    return out


def _visible_in_order(world: World, camera: Camera, t: float) -> list[WorldObject]:
    lo, hi = camera.near_z(), camera.z + VIEW_DISTANCE_M
    moved = (obj.at_time(t) for obj in world.objects)
    visible = [obj for obj in moved if obj.far >= lo and obj.near <= hi]
    visible += [_shifted(obj, camera.z) for obj in world.skyline]
    ground = [obj for obj in visible if obj.layer == 0]
    rest = sorted((obj for obj in visible if obj.layer > 0), key=lambda o: (o.layer, -o.near))
    return ground + rest


def _shifted(obj: WorldObject, dz: float) -> WorldObject:
    assert isinstance(obj, (Building, Barrier))
    b = obj.box
    return replace(obj, box=Box(b.x0, b.x1, b.y0, b.y1, b.z0 + dz, b.z1 + dz))


def _draw_sky(canvas: Canvas, world: World) -> None:
    cam = canvas.camera
    horizon = cam.horizon_v
    rows = np.arange(cam.height, dtype=np.float64)
    t = np.clip(rows / max(horizon, 1.0), 0.0, 1.0)[:, None]
    zenith, low = np.asarray(world.sky[0], np.float64), np.asarray(world.sky[1], np.float64)
    colors = np.clip(zenith * (1 - t) + low * t, 0, 255).astype(np.uint8)
    canvas.fill_rows(0, cam.height, colors, pal.ID["sky"])
    cloud = pal.mix(world.sky[1], (240, 240, 240), 0.6)
    for u, v, rx, ry in world.clouds:
        cu, cv = u * cam.width, v * horizon
        canvas.paint_ellipse((cu - rx * cam.width, cv - ry * cam.height, cu + rx * cam.width, cv + ry * cam.height),
                             cloud)


def _draw_hood(canvas: Canvas, height_ratio: float, color: Color) -> None:
    w, h = canvas.camera.width, canvas.camera.height
    top = height_ratio * h
    us = np.linspace(-0.02 * w, 1.02 * w, 24)
    curve = [(float(u), float(h - top * (1.0 - 0.7 * ((u - w / 2) / (w / 2)) ** 2))) for u in us]
    canvas.polygon([(-0.02 * w, h + 1.0)] + curve + [(1.02 * w, h + 1.0)], color, pal.ID["ego vehicle"])
    shine = [(u, v + 0.15 * top) for u, v in curve[6:18]]
    canvas.paint_line(shine, pal.shade(color, 1.6), max(1.0, 0.04 * top))
