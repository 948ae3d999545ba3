"""Road users: cars, trucks, buses and trams in the lanes, parked cars, riders, crossing walkers.

Every lane moves at one speed (vehicles in a lane never run into each other); the camera's own lane
moves slightly faster than the camera, so a drive never runs into the vehicle ahead.
"""

from __future__ import annotations

import numpy as np

from liteseg_ros.tools.synthetic import palette as pal
from liteseg_ros.tools.synthetic.figures import Cyclist, random_person
from liteseg_ros.tools.synthetic.layout import Layout, Side
from liteseg_ros.tools.synthetic.objects import Marking, WorldObject
from liteseg_ros.tools.synthetic.vehicles import Vehicle

#: (length, width, height) ranges in metres, body colours, accent colours
VEHICLE_SPECS = {
    "car": (((3.9, 4.9), (1.7, 1.95), (1.4, 1.65)), pal.CAR, pal.CAR),
    "truck": (((6.5, 9.5), (2.3, 2.5), (3.0, 3.8)), pal.TRUCK, pal.CAR),
    "bus": (((10.5, 13.0), (2.45, 2.55), (3.0, 3.3)), pal.BUS, pal.BUS_BANDS),
    "train": (((18.0, 32.0), (2.55, 2.65), (3.3, 3.6)), pal.TRAIN, pal.TRAIN_BANDS),
}
LANE_KINDS = (("car", 0.52), ("truck", 0.2), ("bus", 0.28))
#: trucks, buses and trams start at least this far ahead of the camera
BIG_VEHICLE_MIN_Z_M = 15.0


def place_traffic(rng: np.random.Generator, layout: Layout, z0: float, z1: float,
                  camera_speed: float) -> list[WorldObject]:
    """All road users between depths ``z0`` and ``z1``."""
    out: list[WorldObject] = []
    tram_lane = int(rng.integers(len(layout.lanes))) if rng.random() < 0.8 else None
    for index, (x, direction) in enumerate(layout.lanes):
        own_lane = abs(x) < 1.6
        speed = _lane_speed(rng, direction, own_lane, camera_speed)
        out += _lane(rng, x, speed, direction < 0, own_lane, index == tram_lane, z0, z1)
        if index == tram_lane:
            out += [Marking(x + dx, 0.08, z0, z1, (70, 70, 76)) for dx in (-0.72, 0.72)]
    for side in layout.sides:
        out += _parked(rng, layout, side, z0, z1)
        out += _riders(rng, layout, side, z0, z1)
    out += _crossings(rng, layout, z0, z1)
    return out


def _lane_speed(rng: np.random.Generator, direction: int, own_lane: bool, camera_speed: float) -> float:
    if camera_speed <= 0:
        return 0.0
    if direction < 0:
        return -rng.uniform(7.0, 12.0)
    if own_lane:
        return camera_speed + rng.uniform(0.0, 0.6)
    return max(0.0, camera_speed + rng.uniform(-4.0, 4.0))


def _lane(rng: np.random.Generator, x: float, speed: float, towards: bool, own_lane: bool, tram: bool,
          z0: float, z1: float) -> list[WorldObject]:
    out: list[WorldObject] = []
    # the camera starts at z = 0: its own lane is free for the first metres, and nothing big
    # stands right beside it (a bus side would fill half the frame)
    z = max(z0, 0.0) + (rng.uniform(9.0, 25.0) if own_lane else rng.uniform(3.0, 30.0))
    while z < z1:
        if tram and (not out or rng.random() < 0.5):
            kind = "train"
        else:
            kinds, weights = zip(*LANE_KINDS)
            kind = str(rng.choice(kinds, p=weights))
        if kind != "car" and z < BIG_VEHICLE_MIN_Z_M:
            kind = "car"
        vehicle = random_vehicle(rng, kind, x + rng.uniform(-0.25, 0.25), z, towards, speed)
        out.append(vehicle)
        z += vehicle.length + rng.uniform(5.0, 35.0)
    return out


def random_vehicle(rng: np.random.Generator, kind: str, x: float, z: float, towards: bool = False,
                   speed: float = 0.0) -> Vehicle:
    """A vehicle of ``kind`` with random size and colours, its near end at depth ``z``."""
    (length, width, height), bodies, accents = VEHICLE_SPECS[kind]
    color = pal.pick(rng, bodies, 10.0)
    accent = pal.pick(rng, accents, 8.0)
    if sum(abs(a - b) for a, b in zip(color, accent)) < 90:
        accent = pal.shade(color, 0.45)
    return Vehicle(kind=kind, x=x, z=z, length=rng.uniform(*length), width=rng.uniform(*width),
                   height=rng.uniform(*height), color=color, towards=towards, accent=accent, speed=speed)


def _parked(rng: np.random.Generator, layout: Layout, side: Side, z0: float, z1: float) -> list[WorldObject]:
    """Parked cars on the parking strip, or at the kerb where that is not the camera's lane."""
    edge = layout.edge(side)
    parking = next((s for s in side.strips if s.label == "parking"), None)
    if parking is not None:
        x = side.x_at(edge, 0.5 * (parking.inner + parking.outer))
    else:
        x = edge - side.sign * 1.1
        if abs(x) < 2.4 or rng.random() < 0.4:
            return []
    out: list[WorldObject] = []
    z = z0 + rng.uniform(0.0, 8.0)
    while z < z1:
        kind = "car" if rng.random() < 0.9 else "truck"
        vehicle = random_vehicle(rng, kind, x + rng.uniform(-0.15, 0.15), z, bool(rng.random() < 0.3))
        if rng.random() < 0.6:
            out.append(vehicle)
        z += vehicle.length + rng.uniform(0.8, 3.0)
    return out


def _riders(rng: np.random.Generator, layout: Layout, side: Side, z0: float, z1: float) -> list[WorldObject]:
    """Cyclists and motorcyclists near the kerb, and parked motorcycles on the sidewalk."""
    edge = layout.edge(side)
    kerb_x = edge - side.sign * 0.8
    if abs(kerb_x) < 1.8:
        kerb_x = side.x_at(edge, side.sidewalk().inner + 1.0)
    out: list[WorldObject] = []
    z = z0 + rng.uniform(5.0, 25.0)
    while z < z1:
        kind = "bicycle" if rng.random() < 0.5 else "motorcycle"
        parked = rng.random() < 0.25
        x = side.x_at(edge, side.sidewalk().inner + 0.8) if parked else kerb_x
        speed = 0.0 if parked else (rng.uniform(3.0, 5.0) if kind == "bicycle" else rng.uniform(5.0, 9.0))
        out.append(Cyclist(
            x=x, z=z, vz=speed, kind=kind, facing=float(rng.choice([-1.0, 1.0])),
            frame=pal.pick(rng, pal.BICYCLE if kind == "bicycle" else pal.MOTORCYCLE, 10.0),
            jacket=None if parked else pal.pick(rng, pal.RIDER_JACKETS, 12.0),
            helmet=pal.pick(rng, pal.HELMETS, 8.0), trousers=pal.pick(rng, pal.TROUSERS, 8.0),
        ))
        z += rng.uniform(6.0, 20.0)
    return out


def _crossings(rng: np.random.Generator, layout: Layout, z0: float, z1: float) -> list[WorldObject]:
    """Zebra crossings with people walking across."""
    out: list[WorldObject] = []
    z = z0 + rng.uniform(12.0, 45.0)
    while z < z1:
        x = layout.road_left + 0.5
        while x < layout.road_right - 0.5:
            out.append(Marking(x, 0.5, z, z + 3.0, (220, 220, 214)))
            x += 1.0
        for _ in range(int(rng.integers(0, 4))):
            px = rng.uniform(layout.road_left + 0.5, layout.road_right - 0.5)
            out.append(random_person(rng, px, z + rng.uniform(0.5, 2.5), vx=rng.choice([-1.0, 1.0]) * 1.2))
        z += rng.uniform(60.0, 140.0)
    return out
