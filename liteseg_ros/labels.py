"""The one Cityscapes label table of the project.

It agrees entry for entry with cityscapesscripts' ``helpers/labels.py`` (a test checks this) and
serves training (labelId -> trainId), evaluation (categories, ignoreInEval), colouring (palette)
and the node.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liteseg_ros.classes import IGNORE_INDEX, ClassSet

NUM_CLASSES = 19


@dataclass(frozen=True)
class Label:
    """One row of the Cityscapes label table."""

    name: str
    id: int
    train_id: int
    category: str
    category_id: int
    has_instances: bool
    ignore_in_eval: bool
    color: tuple[int, int, int]


# fmt: off
LABELS: tuple[Label, ...] = (
    Label("unlabeled",             0, 255, "void",         0, False, True,  (0, 0, 0)),
    Label("ego vehicle",           1, 255, "void",         0, False, True,  (0, 0, 0)),
    Label("rectification border",  2, 255, "void",         0, False, True,  (0, 0, 0)),
    Label("out of roi",            3, 255, "void",         0, False, True,  (0, 0, 0)),
    Label("static",                4, 255, "void",         0, False, True,  (0, 0, 0)),
    Label("dynamic",               5, 255, "void",         0, False, True,  (111, 74, 0)),
    Label("ground",                6, 255, "void",         0, False, True,  (81, 0, 81)),
    Label("road",                  7,   0, "flat",         1, False, False, (128, 64, 128)),
    Label("sidewalk",              8,   1, "flat",         1, False, False, (244, 35, 232)),
    Label("parking",               9, 255, "flat",         1, False, True,  (250, 170, 160)),
    Label("rail track",           10, 255, "flat",         1, False, True,  (230, 150, 140)),
    Label("building",             11,   2, "construction", 2, False, False, (70, 70, 70)),
    Label("wall",                 12,   3, "construction", 2, False, False, (102, 102, 156)),
    Label("fence",                13,   4, "construction", 2, False, False, (190, 153, 153)),
    Label("guard rail",           14, 255, "construction", 2, False, True,  (180, 165, 180)),
    Label("bridge",               15, 255, "construction", 2, False, True,  (150, 100, 100)),
    Label("tunnel",               16, 255, "construction", 2, False, True,  (150, 120, 90)),
    Label("pole",                 17,   5, "object",       3, False, False, (153, 153, 153)),
    Label("polegroup",            18, 255, "object",       3, False, True,  (153, 153, 153)),
    Label("traffic light",        19,   6, "object",       3, False, False, (250, 170, 30)),
    Label("traffic sign",         20,   7, "object",       3, False, False, (220, 220, 0)),
    Label("vegetation",           21,   8, "nature",       4, False, False, (107, 142, 35)),
    Label("terrain",              22,   9, "nature",       4, False, False, (152, 251, 152)),
    Label("sky",                  23,  10, "sky",          5, False, False, (70, 130, 180)),
    Label("person",               24,  11, "human",        6, True,  False, (220, 20, 60)),
    Label("rider",                25,  12, "human",        6, True,  False, (255, 0, 0)),
    Label("car",                  26,  13, "vehicle",      7, True,  False, (0, 0, 142)),
    Label("truck",                27,  14, "vehicle",      7, True,  False, (0, 0, 70)),
    Label("bus",                  28,  15, "vehicle",      7, True,  False, (0, 60, 100)),
    Label("caravan",              29, 255, "vehicle",      7, True,  True,  (0, 0, 90)),
    Label("trailer",              30, 255, "vehicle",      7, True,  True,  (0, 0, 110)),
    Label("train",                31,  16, "vehicle",      7, True,  False, (0, 80, 100)),
    Label("motorcycle",           32,  17, "vehicle",      7, True,  False, (0, 0, 230)),
    Label("bicycle",              33,  18, "vehicle",      7, True,  False, (119, 11, 32)),
    Label("license plate",        -1,  -1, "vehicle",      7, False, True,  (0, 0, 142)),
)
# fmt: on

#: The 19 evaluated classes, indexed by trainId.
TRAIN_LABELS: tuple[Label, ...] = tuple(
    sorted((lb for lb in LABELS if 0 <= lb.train_id < IGNORE_INDEX), key=lambda lb: lb.train_id)
)
CLASS_NAMES: tuple[str, ...] = tuple(lb.name for lb in TRAIN_LABELS)
#: The Cityscapes class set (trainIds 0..18), as models trained on Cityscapes carry it.
CITYSCAPES = ClassSet(CLASS_NAMES, tuple(lb.color for lb in TRAIN_LABELS))


def default_class_set(num_classes: int) -> ClassSet:
    """The class set of a model that does not name its classes: Cityscapes for 19 (the authors' checkpoints,
    bare networks), ``class_0``, ``class_1``, ... otherwise."""
    if num_classes == NUM_CLASSES:
        return CITYSCAPES
    return ClassSet.from_names([f"class_{i}" for i in range(num_classes)])

#: The 7 evaluated categories, in cityscapesscripts' order (categoryId 1..7).
CATEGORY_NAMES: tuple[str, ...] = ("flat", "construction", "object", "nature", "sky", "human", "vehicle")
#: category index (0..6) of each trainId.
TRAIN_ID_TO_CATEGORY: np.ndarray = np.array(
    [CATEGORY_NAMES.index(lb.category) for lb in TRAIN_LABELS], dtype=np.int64
)


def _build_id_to_train_id() -> np.ndarray:
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for lb in LABELS:
        if lb.id >= 0:
            lut[lb.id] = lb.train_id if 0 <= lb.train_id < IGNORE_INDEX else IGNORE_INDEX
    return lut


def _build_train_id_to_id() -> np.ndarray:
    lut = np.zeros(256, dtype=np.uint8)  # trainId 255 -> id 0 ("unlabeled")
    for lb in TRAIN_LABELS:
        lut[lb.train_id] = lb.id
    return lut


def _build_id_palette() -> np.ndarray:
    palette = np.zeros((256, 3), dtype=np.uint8)
    for lb in LABELS:
        if lb.id >= 0:
            palette[lb.id] = lb.color
    return palette


#: uint8 lookup table labelId -> trainId (255 for ignored ids).
ID_TO_TRAIN_ID: np.ndarray = _build_id_to_train_id()
#: uint8 lookup table trainId -> labelId (255 maps to 0, "unlabeled").
TRAIN_ID_TO_ID: np.ndarray = _build_train_id_to_id()
#: 256 x 3 uint8 RGB palette indexed by trainId (255 = black).
TRAIN_ID_PALETTE: np.ndarray = CITYSCAPES.palette()
#: 256 x 3 uint8 RGB palette indexed by labelId (Cityscapes ``*_color.png``).
ID_PALETTE: np.ndarray = _build_id_palette()

LABEL_BY_NAME: dict[str, Label] = {lb.name: lb for lb in LABELS}


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map a uint8 labelId image to trainIds (ignored ids -> 255)."""
    return ID_TO_TRAIN_ID[label_ids]


def train_ids_to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """Map a uint8 trainId image to labelIds (255 -> 0, 'unlabeled')."""
    return TRAIN_ID_TO_ID[train_ids]


def colorize(train_ids: np.ndarray) -> np.ndarray:
    """H x W trainIds -> H x W x 3 uint8 RGB in the Cityscapes palette."""
    return TRAIN_ID_PALETTE[train_ids]
