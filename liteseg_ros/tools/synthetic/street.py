"""Populates a street layout with objects between two world depths (a single frame or a drive)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liteseg_ros.tools.synthetic import palette as pal
from liteseg_ros.tools.synthetic.figures import Cyclist, Furniture, Pole, Tree, crown_blobs, random_person
from liteseg_ros.tools.synthetic.geometry import Box
from liteseg_ros.tools.synthetic.layout import SIDE_EXTENT_M, Layout, Side, ground_color
from liteseg_ros.tools.synthetic.objects import Barrier, Building, GroundStrip, Marking, Windows, WorldObject
from liteseg_ros.tools.synthetic.traffic import place_traffic


@dataclass(frozen=True)
class Span:
    """The world depths [z0, z1] to populate and the camera speed (m/s) of a drive (0: a still)."""

    z0: float
    z1: float
    camera_speed: float = 0.0


def populate(rng: np.random.Generator, layout: Layout, span: Span) -> list[WorldObject]:
    """Every object of the street between ``span.z0`` and ``span.z1``."""
    objects: list[WorldObject] = ground(rng, layout, span)
    for side in layout.sides:
        objects += buildings(rng, layout, side, span)
        objects += barriers(rng, layout, side, span)
        objects += street_side(rng, layout, side, span)
    objects += place_traffic(rng, layout, span.z0, span.z1, span.camera_speed)
    return objects


def ground(rng: np.random.Generator, layout: Layout, span: Span) -> list[WorldObject]:
    """Road, strips beside it, the ground behind the building lines and the lane markings."""
    z0, z1 = span.z0, span.z1
    out: list[WorldObject] = [GroundStrip(layout.road_left, layout.road_right, z0, z1, pal.ID["road"],
                                          ground_color(rng, "road"))]
    for side in layout.sides:
        edge = layout.edge(side)
        back = "terrain" if side.park else ("ground" if rng.random() < 0.6 else "terrain")
        far = side.x_at(edge, SIDE_EXTENT_M)
        near = side.x_at(edge, side.building_setback)
        out.append(GroundStrip(min(near, far), max(near, far), z0, z1, pal.ID[back], ground_color(rng, back)))
        for strip in side.strips:
            xa, xb = side.x_at(edge, strip.inner), side.x_at(edge, strip.outer)
            tile = rng.uniform(0.8, 1.6) if strip.label == "sidewalk" and rng.random() < 0.7 else 0.0
            out.append(GroundStrip(min(xa, xb), max(xa, xb), z0, z1, pal.ID[strip.label],
                                   ground_color(rng, strip.label), tile))
    out += lane_markings(rng, layout, span)
    return out


def lane_markings(rng: np.random.Generator, layout: Layout, span: Span) -> list[WorldObject]:
    paint = pal.pick(rng, ((222, 222, 214), (206, 204, 196)), 6.0)
    out: list[WorldObject] = []
    for (xa, da), (xb, db) in zip(layout.lanes, layout.lanes[1:]):
        x = 0.5 * (xa + xb)
        if da != db:
            color = paint if rng.random() < 0.6 else (214, 176, 40)
            out.append(Marking(x, 0.15, span.z0, span.z1, color))
        else:
            out.append(Marking(x, 0.13, span.z0, span.z1, paint, dash_m=3.0, gap_m=rng.uniform(5.0, 9.0)))
    if rng.random() < 0.6:
        for edge, inward in ((layout.road_left, 0.3), (layout.road_right, -0.3)):
            out.append(Marking(edge + inward, 0.12, span.z0, span.z1, paint))
    return out


def buildings(rng: np.random.Generator, layout: Layout, side: Side, span: Span) -> list[WorldObject]:
    """A row of facade blocks along the building line (set far back on a park side)."""
    edge = layout.edge(side)
    line = side.building_setback + (rng.uniform(10.0, 30.0) if side.park else 0.0)
    out: list[WorldObject] = []
    z = span.z0 - rng.uniform(0.0, 15.0)
    while z < span.z1:
        length = rng.uniform(8.0, 35.0)
        if rng.random() < 0.12:
            z += rng.uniform(3.0, 12.0)
            continue
        inner = line + (rng.uniform(0.3, 1.5) if rng.random() < 0.35 else 0.0)
        depth = rng.uniform(12.0, 22.0)
        xa, xb = side.x_at(edge, inner), side.x_at(edge, inner + depth)
        box = Box(min(xa, xb), max(xa, xb), 0.0, rng.uniform(6.0, 28.0), z, z + length)
        out.append(Building(box, pal.pick(rng, pal.BUILDING, 12.0), random_windows(rng)))
        z += length
    return out


def random_windows(rng: np.random.Generator) -> Windows:
    width = rng.uniform(0.9, 1.8)
    return Windows(
        floor_m=rng.uniform(2.8, 3.6),
        width_m=width,
        height_m=rng.uniform(1.2, 1.8),
        spacing_m=width + rng.uniform(0.8, 2.4),
        color=pal.pick(rng, pal.WINDOW, 8.0),
        ground_floor_m=rng.uniform(3.0, 4.5),
    )


def skyline(rng: np.random.Generator, distance: float) -> list[WorldObject]:
    """Distant blocks and tree lines across the view at ``distance`` metres (no windows)."""
    out: list[WorldObject] = []
    x = -3.0 * distance
    while x < 3.0 * distance:
        width = rng.uniform(10.0, 40.0)
        box = Box(x, x + width, 0.0, rng.uniform(4.0, 30.0), distance + rng.uniform(0.0, 8.0), distance + 30.0)
        if rng.random() < 0.25:
            box = Box(box.x0, box.x1, 0.0, rng.uniform(5.0, 14.0), box.z0, box.z1)
            out.append(Barrier(box, "hedge", pal.pick(rng, pal.VEGETATION, 8.0)))
        else:
            out.append(Building(box, pal.pick(rng, pal.BUILDING, 14.0)))
        x += width
    return out


def barriers(rng: np.random.Generator, layout: Layout, side: Side, span: Span) -> list[WorldObject]:
    """Walls, fences and hedges along the outer edge of the sidewalk."""
    edge = layout.edge(side)
    base = side.sidewalk().outer + 0.05
    out: list[WorldObject] = []
    z = span.z0 - rng.uniform(0.0, 10.0)
    while z < span.z1:
        length = rng.uniform(6.0, 30.0)
        kind = str(rng.choice(["wall", "fence", "hedge", "none"], p=[0.38, 0.38, 0.14, 0.10]))
        if kind != "none":
            out.append(_barrier(rng, side, edge, base, z, length, kind))
        z += length + (rng.uniform(1.0, 8.0) if rng.random() < 0.4 else 0.0)
    return out


def _barrier(rng: np.random.Generator, side: Side, edge: float, base: float, z: float, length: float,
             kind: str) -> Barrier:
    thickness, height, colors, pattern = {
        "wall": (rng.uniform(0.25, 0.45), rng.uniform(0.9, 2.4), pal.WALL, rng.uniform(0.25, 0.45)),
        "fence": (0.08, rng.uniform(1.0, 2.0), pal.FENCE, rng.uniform(0.12, 0.25)),
        "hedge": (rng.uniform(0.6, 1.1), rng.uniform(0.8, 1.7), pal.VEGETATION, 0.0),
    }[kind]
    xa, xb = side.x_at(edge, base), side.x_at(edge, base + thickness)
    box = Box(min(xa, xb), max(xa, xb), 0.0, height, z, z + length)
    return Barrier(box, kind, pal.pick(rng, colors, 8.0), pattern)


def street_side(rng: np.random.Generator, layout: Layout, side: Side, span: Span) -> list[WorldObject]:
    """Poles (with lights, signs, lamps), trees, pedestrians, parked bikes and furniture on one side."""
    out: list[WorldObject] = []
    out += poles(rng, layout, side, span)
    out += trees(rng, layout, side, span)
    out += pedestrians(rng, layout, side, span)
    out += furniture(rng, layout, side, span)
    return out


def poles(rng: np.random.Generator, layout: Layout, side: Side, span: Span) -> list[WorldObject]:
    edge = layout.edge(side)
    x = side.x_at(edge, side.sidewalk().inner + 0.45)
    road_side = -float(side.sign)
    out: list[WorldObject] = []
    z = span.z0 + rng.uniform(3.0, 14.0)
    while z < span.z1:
        light_y = rng.uniform(2.3, 3.4) if rng.random() < 0.45 else None
        sign_y = rng.uniform(1.9, 2.6) if rng.random() < 0.55 else None
        if light_y is not None and sign_y is not None:
            sign_y = min(sign_y, light_y - 1.0)
        shape = str(rng.choice(["circle", "triangle", "square", "diamond"]))
        out.append(
            Pole(
                x=x + rng.uniform(-0.2, 0.2),
                z=z,
                height=rng.uniform(3.0, 8.0) if light_y is None else rng.uniform(4.0, 7.0),
                width=rng.uniform(0.3, 0.45),
                color=pal.pick(rng, pal.POLE, 8.0),
                road_side=road_side,
                lamp_arm=bool(rng.random() < 0.35),
                light_y=light_y,
                light_housing=pal.pick(rng, pal.LIGHT_HOUSING, 4.0),
                light_backplate=pal.pick(rng, pal.LIGHT_BACKPLATES, 4.0) if rng.random() < 0.6 else None,
                lit=int(rng.integers(3)),
                sign_y=sign_y,
                sign_shape=shape,
                sign_colors=pal.SIGN_FACES[int(rng.integers(len(pal.SIGN_FACES)))],
                sign_size=rng.uniform(0.75, 1.1),
            )
        )
        z += rng.uniform(6.0, 16.0)
    return out


def trees(rng: np.random.Generator, layout: Layout, side: Side, span: Span) -> list[WorldObject]:
    edge = layout.edge(side)
    lawn = next((s for s in side.strips if s.label == "terrain" and s.inner < side.sidewalk().inner), None)
    if lawn is not None:
        offset = 0.5 * (lawn.inner + lawn.outer)
    elif side.park or rng.random() < 0.65:
        offset = side.sidewalk().outer - 0.8
    else:
        return []
    out: list[WorldObject] = []
    z = span.z0 + rng.uniform(0.0, 10.0)
    spacing = rng.uniform(7.0, 15.0)
    while z < span.z1:
        extra = rng.uniform(1.0, 10.0) if side.park and rng.random() < 0.5 else 0.0
        out.append(_tree(rng, side.x_at(edge, offset + extra), z))
        z += spacing * rng.uniform(0.8, 1.25)
    return out


def _tree(rng: np.random.Generator, x: float, z: float) -> Tree:
    radius = rng.uniform(1.4, 3.2)
    return Tree(
        x=x,
        z=z,
        trunk_h=rng.uniform(1.8, 3.5),
        trunk_w=rng.uniform(0.22, 0.4),
        crown=crown_blobs(rng, radius, pal.VEGETATION),
        trunk_color=pal.pick(rng, pal.TRUNK, 6.0),
    )


def pedestrians(rng: np.random.Generator, layout: Layout, side: Side, span: Span) -> list[WorldObject]:
    edge = layout.edge(side)
    walk = side.sidewalk()
    out: list[WorldObject] = []
    z = span.z0 + rng.uniform(2.0, 12.0)
    while z < span.z1:
        x = side.x_at(edge, rng.uniform(walk.inner + 0.6, walk.outer - 0.4))
        walk_speed = rng.choice([-1.0, 1.0]) * rng.uniform(0.8, 1.6)
        for _ in range(1 if rng.random() < 0.7 else int(rng.integers(2, 4))):  # alone or in a small group
            out.append(random_person(rng, x + rng.uniform(-0.5, 0.5), z + rng.uniform(0.0, 1.5), vz=walk_speed))
        if rng.random() < 0.25:  # a parked bicycle next to the walker
            out.append(
                Cyclist(
                    x=side.x_at(edge, walk.inner + 0.7),
                    z=z + rng.uniform(1.0, 4.0),
                    kind="bicycle",
                    facing=float(rng.choice([-1.0, 1.0])),
                    frame=pal.pick(rng, pal.BICYCLE, 10.0),
                    jacket=None,
                )
            )
        z += rng.uniform(3.0, 12.0)
    return out


def furniture(rng: np.random.Generator, layout: Layout, side: Side, span: Span) -> list[WorldObject]:
    edge = layout.edge(side)
    walk = side.sidewalk()
    out: list[WorldObject] = []
    z = span.z0 + rng.uniform(4.0, 20.0)
    while z < span.z1:
        kind = str(rng.choice(["bin", "bench", "box", "board"], p=[0.4, 0.25, 0.2, 0.15]))
        colors = pal.CLUTTER if kind == "board" else pal.STATIC
        x = side.x_at(edge, walk.outer - 0.6)
        out.append(Furniture(x=x, z=z, kind=kind, color=pal.pick(rng, colors, 8.0), size=rng.uniform(0.85, 1.15)))
        z += rng.uniform(10.0, 30.0)
    return out
