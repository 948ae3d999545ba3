"""Writes synthetic frames as CVAT exports them in "Segmentation mask 1.1" (the PASCAL VOC layout), with a
robot's own class set instead of Cityscapes': the street scenes' labels merged into :data:`ROBOT_CLASSES`.

::

    labelmap.txt                        # label:color_rgb:parts:actions, then name:r,g,b:: per class
    JPEGImages/<stem>.jpg
    SegmentationClass/<stem>.png        # RGB in the labelmap's colours
    SegmentationObject/<stem>.png       # RGB instances in the VOC colour map, as datumaro (CVAT) reads them
    ImageSets/Segmentation/{train,val}.txt

The masks follow :mod:`liteseg_ros.labelling.voc`, the rules liteseg-mine's archives follow too.

The tree is written next to ``out`` and renamed into place at the end (no half-written export).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from liteseg_ros.classes import ClassSet
from liteseg_ros.errors import ConfigError
from liteseg_ros.files import atomic_folder
from liteseg_ros.labelling.voc import (
    IMAGE_DIR,
    LABELMAP,
    MASK_DIR,
    OBJECT_DIR,
    SPLIT_DIR,
    Labelmap,
    mask_images,
    split_list,
)
from liteseg_ros.labels import LABEL_BY_NAME
from liteseg_ros.tools.synthetic.cityscapes_writer import frame_rng
from liteseg_ros.tools.synthetic.scene import check_seed, check_size, render_scene

#: A delivery robot's classes and the Cityscapes labels each takes; every other label is background (id 0).
ROBOT_CLASSES: tuple[tuple[str, tuple[int, int, int], tuple[str, ...]], ...] = (
    ("background", (0, 0, 0), ()),
    ("drivable", (128, 64, 128), ("road", "sidewalk", "parking")),
    ("building", (70, 70, 70), ("building", "wall", "fence", "guard rail", "bridge", "tunnel")),
    ("vegetation", (107, 142, 35), ("vegetation", "terrain")),
    ("obstacle", (220, 20, 60), ("person", "rider", "car", "truck", "bus", "caravan", "trailer", "train",
                                 "motorcycle", "bicycle")),
)
ROBOT_CLASS_SET = ClassSet(tuple(name for name, _, _ in ROBOT_CLASSES), tuple(color for _, color, _ in ROBOT_CLASSES))
JPEG_QUALITY = 95


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`write_cvat_export` wrote."""

    root: Path
    height: int
    width: int
    seed: int
    frames: dict[str, int]
    classes: tuple[str, ...]


def label_id_to_robot_class() -> np.ndarray:
    """uint8 lookup table Cityscapes labelId -> robot class id (background for unlisted labels)."""
    lut = np.zeros(256, dtype=np.uint8)
    for class_id, (_, _, members) in enumerate(ROBOT_CLASSES):
        for member in members:
            lut[LABEL_BY_NAME[member].id] = class_id
    return lut


def write_cvat_export(out: str | Path, *, train: int, val: int, height: int, width: int, seed: int) -> ExportSummary:
    """Render ``train`` and ``val`` frames into a CVAT "Segmentation mask 1.1" export at ``out`` (which must not
    exist or be empty; missing parent folders are created). The same arguments give the same files."""
    out = Path(out)
    check_size(height, width)
    check_seed(seed)
    if min(train, val) < 0 or train + val == 0:
        raise ConfigError("ask for at least one train or val frame (counts >= 0)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} exists and is not an empty directory: choose a new output path")
    with atomic_folder(out) as staging:
        _write_tree(staging, {"train": train, "val": val}, height, width, seed)
    return ExportSummary(out, height, width, seed, {"train": train, "val": val}, ROBOT_CLASS_SET.names)


def _write_tree(root: Path, counts: dict[str, int], height: int, width: int, seed: int) -> None:
    for folder in (IMAGE_DIR, MASK_DIR, OBJECT_DIR, SPLIT_DIR):
        (root / folder).mkdir(parents=True)
    labelmap = Labelmap.of(ROBOT_CLASS_SET)
    (root / LABELMAP).write_text(labelmap.text(), encoding="utf-8")
    lut = label_id_to_robot_class()
    for split, count in counts.items():
        stems = []
        for index in range(count):
            stem = f"{split}_{index:05d}"
            rgb, label_ids, _ = render_scene(frame_rng(seed, split, index), height, width)
            Image.fromarray(rgb, "RGB").save(root / IMAGE_DIR / f"{stem}.jpg", quality=JPEG_QUALITY)
            for member, image in mask_images(labelmap, stem, lut[label_ids]).items():
                Image.fromarray(image, "RGB").save(root / member)
            stems.append(stem)
        if count:
            (root / split_list(split)).write_text("\n".join(stems) + "\n")
