"""Class masks as CVAT's "Segmentation mask 1.1" holds them, following datumaro's VOC rules (CVAT imports and
exports this format through datumaro):

- ``labelmap.txt``: ``# label:color_rgb:parts:actions``, then ``name:r,g,b::`` per label, ``background:0,0,0::``
  first (datumaro takes the black label as the background; exactly four ``:``-separated fields per line);
- ``SegmentationClass/<stem>.png``: RGB, each pixel its label's colour;
- ``SegmentationObject/<stem>.png``: RGB, instance ``i`` painted with colour ``i`` of the VOC colour map (black = no
  instance); datumaro gives each instance the label its pixels have in the class mask, and a pixel outside every
  instance gets no label, so every labelled pixel belongs to an instance here;
- ``ImageSets/Segmentation/<subset>.txt``: one stem (the image's file name without extension) per line.

Instances: each class's connected regions of at least ``MIN_OBJECT_SHARE`` of the image are objects of their own
(largest first, at most ``MAX_INSTANCES`` in all), and the rest of each class is one more instance, so that a labeller
corrects objects, not fragments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liteseg_ros.classes import ClassSet
from liteseg_ros.datasets.voc import voc_palette_color
from liteseg_ros.errors import ClassSetError

BACKGROUND = "background"
LABELMAP_HEADER = "# label:color_rgb:parts:actions"
MAX_INSTANCES = 255  # the VOC colour map's non-black colours
MIN_OBJECT_SHARE = 0.002  # of the image's pixels: a region this large is an object of its own
INSTANCE_COLORS = np.array([voc_palette_color(i) for i in range(256)], dtype=np.uint8)


@dataclass(frozen=True)
class Labelmap:
    """The archive's labels: ``background`` first, then the model's classes in order (a model class named
    background is that first label); ``label_of_class`` maps a class id to its label id."""

    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    label_of_class: np.ndarray

    @classmethod
    def of(cls, classes: ClassSet) -> "Labelmap":
        """The labels of a class set; ClassSetError for a class (other than background) coloured black."""
        names, colors = [BACKGROUND], [(0, 0, 0)]
        label_of_class = np.zeros(256, dtype=np.uint8)
        for class_id, (name, color) in enumerate(zip(classes.names, classes.colors)):
            if name == BACKGROUND:
                continue
            if tuple(color) == (0, 0, 0):
                raise ClassSetError(f"class {name!r} is black, the colour CVAT gives the background: give it another "
                                    "colour (a class map can)")
            label_of_class[class_id] = len(names)
            names.append(name)
            colors.append(tuple(int(v) for v in color))
        return cls(tuple(names), tuple(colors), label_of_class)

    def text(self) -> str:
        """``labelmap.txt``."""
        lines = [LABELMAP_HEADER] + [f"{name}:{r},{g},{b}::" for name, (r, g, b) in zip(self.names, self.colors)]
        return "\n".join(lines) + "\n"

    def class_image(self, mask: np.ndarray) -> np.ndarray:
        """H x W class ids -> the H x W x 3 SegmentationClass image."""
        return np.asarray(self.colors, dtype=np.uint8)[self.label_of_class[mask]]


def instance_ids(mask: np.ndarray, min_share: float = MIN_OBJECT_SHARE) -> np.ndarray:
    """H x W instance ids (1..255, every pixel in one) of a class mask: see the module docstring."""
    import cv2

    minimum = max(1, int(min_share * mask.size))
    regions = []  # (area, class, component map, component label); the rest of each class follows
    present = [int(c) for c in np.unique(mask)]
    for class_id in present:
        count, components, stats, _ = cv2.connectedComponentsWithStats((mask == class_id).astype(np.uint8), 8)
        regions += [(int(stats[label, cv2.CC_STAT_AREA]), class_id, components, label)
                    for label in range(1, count) if stats[label, cv2.CC_STAT_AREA] >= minimum]
    regions.sort(key=lambda region: (-region[0], region[1], region[3]))
    budget = MAX_INSTANCES - len(present)  # one instance per class is kept for the rest of it
    ids = np.zeros(mask.shape, dtype=np.uint8)
    for number, (_, _, components, label) in enumerate(regions[:budget], start=1):
        ids[components == label] = number
    next_id = min(len(regions), budget) + 1
    for class_id in present:
        rest = (mask == class_id) & (ids == 0)
        if rest.any():
            ids[rest] = next_id
            next_id += 1
    return ids


def instance_image(ids: np.ndarray) -> np.ndarray:
    """H x W instance ids -> the H x W x 3 SegmentationObject image (VOC colour map)."""
    return INSTANCE_COLORS[ids]


def instance_ids_of_image(rgb: np.ndarray) -> np.ndarray:
    """The inverse of :func:`instance_image` (ValueError for a colour outside the VOC colour map)."""
    code = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    table = {(r << 16) | (g << 8) | b: i for i, (r, g, b) in enumerate(INSTANCE_COLORS.astype(np.int32))}
    values, inverse = np.unique(code, return_inverse=True)
    if any(int(v) not in table for v in values):
        raise ValueError("an instance colour is not in the VOC colour map")
    return np.array([table[int(v)] for v in values], dtype=np.uint8)[inverse.reshape(code.shape)]
