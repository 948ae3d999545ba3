"""Colour distributions of the synthetic classes.

Each class draws its colours from its own distribution (a few base hues, jittered per object), so
that colour is a strong but not a perfect cue: road and sidewalk are both grey, cars come in many
colours, vegetation and terrain are both green. Texture and shading are added later
(:mod:`liteseg_ros.tools.synthetic.finish`).
"""

from __future__ import annotations

import numpy as np

from liteseg_ros.labels import LABEL_BY_NAME

Color = tuple[int, int, int]

#: labelIds used by the renderer, by Cityscapes name.
ID = {name: LABEL_BY_NAME[name].id for name in (
    "unlabeled", "ego vehicle", "static", "dynamic", "ground", "road", "sidewalk", "parking",
    "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation", "terrain",
    "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)}

ROAD = ((92, 88, 98), (78, 76, 84), (104, 100, 106))
SIDEWALK = ((168, 158, 152), (182, 170, 160), (150, 140, 140), (170, 140, 128))
PARKING = ((124, 112, 120), (132, 126, 116))
GROUND = ((132, 116, 96), (120, 110, 100))
BUILDING = (
    (196, 178, 150), (160, 92, 70), (136, 134, 140), (214, 204, 184), (190, 168, 112),
    (150, 160, 172), (122, 102, 92), (176, 150, 140),
)
WINDOW = ((42, 52, 70), (58, 70, 92), (80, 96, 118), (30, 34, 40))
WALL = ((178, 178, 166), (150, 142, 122), (168, 160, 150), (132, 138, 130))
FENCE = ((136, 98, 62), (112, 84, 58), (96, 104, 112), (70, 84, 78))
POLE = ((124, 126, 130), (96, 98, 104), (148, 148, 146), (70, 76, 86))
LIGHT_HOUSING = ((34, 34, 36), (46, 46, 40), (28, 32, 30))
LIGHT_BACKPLATES = ((232, 196, 30), (236, 236, 232), (24, 24, 26))
LAMPS = ((235, 40, 30), (250, 190, 30), (40, 220, 110))
SIGN_FACES = (
    ((20, 74, 176), (236, 236, 236)),   # blue disc / square, white symbol
    ((206, 28, 32), (240, 240, 236)),   # red ring, white inside
    ((244, 204, 24), (40, 40, 40)),     # yellow diamond, black symbol
    ((236, 236, 232), (206, 28, 32)),   # white triangle, red rim
)
VEGETATION = ((52, 104, 38), (40, 86, 34), (74, 118, 46), (58, 96, 30), (36, 72, 40))
TRUNK = ((86, 64, 46), (72, 58, 48))
TERRAIN = ((142, 164, 84), (156, 170, 96), (128, 152, 76), (168, 160, 104))
SKY_CLEAR = ((74, 124, 196), (168, 198, 232))     # zenith, horizon
SKY_HAZY = ((132, 156, 190), (206, 214, 224))
SKY_OVERCAST = ((168, 174, 186), (214, 218, 222))
SKIN = ((226, 176, 142), (198, 136, 102), (142, 88, 58), (240, 204, 174))
CLOTHES = (
    (30, 34, 52), (40, 40, 42), (150, 30, 40), (230, 228, 222), (60, 90, 150), (110, 80, 60),
    (70, 110, 70), (190, 150, 60), (120, 60, 120), (90, 94, 100),
)
TROUSERS = ((34, 40, 64), (28, 28, 30), (70, 66, 60), (110, 100, 80))
#: riders wear high-visibility colours that pedestrians' CLOTHES never have
RIDER_JACKETS = ((250, 120, 20), (216, 238, 40), (246, 70, 150), (40, 200, 230))
HELMETS = ((240, 240, 240), (220, 30, 30), (20, 20, 20), (250, 200, 20))
CAR = (
    (176, 178, 182), (226, 226, 226), (34, 34, 38), (30, 44, 92), (162, 26, 30), (100, 102, 108),
    (32, 62, 46), (196, 184, 150), (56, 96, 150),
)
TRUCK = ((222, 222, 216), (222, 180, 40), (212, 112, 30), (42, 72, 140), (180, 186, 190))
BUS = ((196, 32, 30), (232, 192, 32), (40, 130, 72), (226, 228, 232))
BUS_BANDS = ((30, 60, 150), (200, 30, 30), (30, 30, 34))
TRAIN = ((236, 230, 214), (30, 124, 150), (200, 46, 40))
TRAIN_BANDS = ((20, 120, 130), (236, 230, 214), (60, 60, 64))
MOTORCYCLE = ((20, 20, 24), (180, 30, 30), (30, 60, 160), (200, 200, 204))
BICYCLE = ((200, 30, 30), (30, 60, 180), (20, 20, 20), (40, 150, 70), (236, 236, 236), (240, 160, 20))
TYRE = (26, 26, 28)
STATIC = ((40, 76, 56), (90, 92, 96), (150, 110, 60), (60, 60, 64))
CLUTTER = ((210, 200, 120), (120, 180, 200), (200, 120, 160))
EGO = ((22, 24, 28), (190, 190, 196), (40, 44, 60))


def pick(rng: np.random.Generator, choices: tuple[Color, ...], jitter: float = 10.0) -> Color:
    """One colour of ``choices``, jittered per channel by about ``jitter`` grey levels."""
    base = np.asarray(choices[int(rng.integers(len(choices)))], dtype=np.float64)
    shift = rng.normal(0.0, jitter) + rng.normal(0.0, jitter * 0.4, size=3)
    return to_color(base + shift)


def shade(color: Color, factor: float) -> Color:
    """``color`` multiplied by ``factor`` (lit or shadowed face)."""
    return to_color(np.asarray(color, dtype=np.float64) * factor)


def mix(a: Color, b: Color, t: float) -> Color:
    """Linear blend of two colours, ``t`` = 0 gives ``a``."""
    return to_color(np.asarray(a, np.float64) * (1.0 - t) + np.asarray(b, np.float64) * t)


def to_color(values: np.ndarray) -> Color:
    r, g, b = np.clip(np.rint(values), 0, 255).astype(int)
    return (int(r), int(g), int(b))
