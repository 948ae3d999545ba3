"""The cross-section of a synthetic street: road, lanes, strips beside it, building lines, camera."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liteseg_ros.tools.synthetic import palette as pal

#: how far ahead of the camera the street is drawn; a skyline stands there.
VIEW_DISTANCE_M = 140.0
#: how far the ground extends to each side.
SIDE_EXTENT_M = 250.0


@dataclass(frozen=True)
class Strip:
    """A band of ground beside the road between lateral offsets ``inner`` and ``outer`` (metres,
    measured outward from the road edge)."""

    label: str  # palette.ID key: sidewalk | terrain | parking | ground
    inner: float
    outer: float


@dataclass(frozen=True)
class Side:
    """One side of the street. ``sign`` is -1 for the left side, +1 for the right side."""

    sign: int
    strips: tuple[Strip, ...]
    park: bool  # True: lawn and trees, buildings set far back
    building_setback: float  # from the road edge to the building line

    def sidewalk(self) -> Strip:
        return next(s for s in self.strips if s.label == "sidewalk")

    def x_at(self, road_edge: float, offset: float) -> float:
        """World X of a lateral ``offset`` outward from this side's road edge."""
        return road_edge + self.sign * offset


@dataclass(frozen=True)
class Layout:
    """Road edges, lanes (centre X and direction of travel), both sides and the camera rig."""

    road_left: float
    road_right: float
    lanes: tuple[tuple[float, int], ...]  # (centre x, +1 with the camera / -1 oncoming)
    left: Side
    right: Side
    camera_height: float
    focal_ratio: float  # focal length / image width
    horizon_ratio: float  # horizon row / image height
    yaw: float

    def edge(self, side: Side) -> float:
        return self.road_left if side.sign < 0 else self.road_right

    @property
    def sides(self) -> tuple[Side, Side]:
        return (self.left, self.right)


def random_layout(rng: np.random.Generator) -> Layout:
    """A random street cross-section with the camera in one of the lanes."""
    lane_count = int(rng.choice([2, 2, 3, 4]))
    lane_w = rng.uniform(3.0, 3.6)
    oncoming = lane_count // 2
    camera_lane = int(rng.integers(oncoming, lane_count))
    road_left = -(camera_lane + 0.5) * lane_w + rng.uniform(-0.4, 0.4)
    road_right = road_left + lane_count * lane_w
    lanes = tuple((road_left + (i + 0.5) * lane_w, -1 if i < oncoming else 1) for i in range(lane_count))
    return Layout(
        road_left=road_left,
        road_right=road_right,
        lanes=lanes,
        left=_random_side(rng, -1),
        right=_random_side(rng, 1),
        camera_height=rng.uniform(1.25, 1.6),
        focal_ratio=rng.uniform(0.75, 1.0),
        horizon_ratio=rng.uniform(0.36, 0.47),
        yaw=rng.uniform(-0.06, 0.06),
    )


def _random_side(rng: np.random.Generator, sign: int) -> Side:
    strips: list[Strip] = []
    offset = 0.0
    if rng.random() < 0.3:
        width = rng.uniform(2.0, 2.5)
        strips.append(Strip("parking", offset, offset + width))
        offset += width
    if rng.random() < 0.5:
        width = rng.uniform(1.0, 2.5)
        strips.append(Strip("terrain", offset, offset + width))
        offset += width
    width = rng.uniform(2.2, 5.0)
    strips.append(Strip("sidewalk", offset, offset + width))
    offset += width
    park = bool(rng.random() < 0.25)
    if park:
        width = rng.uniform(12.0, 30.0)
        strips.append(Strip("terrain", offset, offset + width))
    elif rng.random() < 0.7:
        width = rng.uniform(1.5, 4.5)
        strips.append(Strip("terrain" if rng.random() < 0.8 else "ground", offset, offset + width))
    else:
        width = 0.0
    offset += width
    return Side(sign=sign, strips=tuple(strips), park=park, building_setback=offset)


def ground_color(rng: np.random.Generator, label: str) -> tuple[int, int, int]:
    """Base colour of a ground strip of the given palette.ID name."""
    choices = {"road": pal.ROAD, "sidewalk": pal.SIDEWALK, "parking": pal.PARKING,
               "terrain": pal.TERRAIN, "ground": pal.GROUND}[label]
    return pal.pick(rng, choices, 6.0)
