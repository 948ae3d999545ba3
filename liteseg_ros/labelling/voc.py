"""The PASCAL VOC segmentation layout, read and written in one place: as CVAT exports and imports it ("Segmentation
mask 1.1", through datumaro; Label Studio and others write it too)::

    labelmap.txt                          # label:color_rgb:parts:actions, then name:r,g,b:: per class
    JPEGImages/<stem>.jpg                 # (or .png)
    SegmentationClass/<stem>.png          # RGB, coloured by the labelmap; or VOC's indexed PNGs (255 = void)
    SegmentationObject/<stem>.png         # instances (written for CVAT; not read)
    ImageSets/Segmentation/<split>.txt    # one stem per line

Reading: class ids follow the labelmap's order (``background`` is a class, usually 0). Without ``labelmap.txt`` the
layout is PASCAL VOC's own: its 21 classes and palette. A mask pixel whose colour is not in the labelmap is an
error at the start (:func:`liteseg_ros.datasets.folders.check_split`), never a silent ignore.

Writing follows datumaro's VOC rules: ``background:0,0,0::`` first (datumaro takes the black label as the
background; exactly four ``:``-separated fields per line); each SegmentationClass pixel its label's colour; in
SegmentationObject instance ``i`` is colour ``i`` of the VOC colour map (black = no instance): datumaro gives each
instance the label its pixels have in the class mask, and a pixel outside every instance gets no label, so every
labelled pixel belongs to an instance here. Each class's connected regions of at least ``MIN_OBJECT_SHARE`` of the
image are objects of their own (largest first, at most ``MAX_INSTANCES`` in all), and the rest of each class is one
more instance, so that a labeller corrects objects, not fragments.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liteseg_ros.classes import IGNORE_INDEX, ClassSet
from liteseg_ros.errors import ClassSetError, DatasetError

LABELMAP = "labelmap.txt"
IMAGE_DIR = "JPEGImages"
MASK_DIR = "SegmentationClass"
OBJECT_DIR = "SegmentationObject"
SPLIT_DIR = Path("ImageSets") / "Segmentation"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
VOC_NAMES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
             "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
             "tvmonitor")


def is_voc_layout(root: Path) -> bool:
    return (root / MASK_DIR).is_dir() and (root / SPLIT_DIR).is_dir()


def voc_palette_color(index: int) -> tuple[int, int, int]:
    """PASCAL VOC's colour of class ``index`` (the bit-interleaved palette of its devkit)."""
    r = g = b = 0
    for shift in range(8):
        r |= ((index >> 0) & 1) << (7 - shift)
        g |= ((index >> 1) & 1) << (7 - shift)
        b |= ((index >> 2) & 1) << (7 - shift)
        index >>= 3
    return r, g, b


def read_labelmap(root: Path) -> ClassSet:
    """The class set of ``labelmap.txt`` (or VOC's 21 classes without one); DatasetError for a malformed line,
    a class set without ``background``, duplicate names or colours."""
    path = root / LABELMAP
    if not path.is_file():
        return ClassSet(VOC_NAMES, tuple(voc_palette_color(i) for i in range(len(VOC_NAMES))))
    names, colors = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="strict").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split(":")
        try:
            if len(fields) < 2:
                raise ValueError("no ':'")
            color = tuple(int(value) for value in fields[1].split(","))
            if len(color) != 3 or not all(0 <= value <= 255 for value in color) or not fields[0].strip():
                raise ValueError("bad colour")
        except ValueError:
            raise DatasetError(f"{path}:{number}: {line.strip()!r} is not 'name:r,g,b::' (e.g. 'road:128,64,128::')")\
                from None
        names.append(fields[0].strip())
        colors.append(color)
    if "background" not in names:
        raise DatasetError(f"{path} has no 'background' class; CVAT writes 'background:0,0,0::' first. Add it (pixels "
                           "of no other class are background)")
    try:
        return ClassSet(tuple(names), tuple(colors))
    except ClassSetError as error:
        raise DatasetError(f"{path}: {error}") from None


def voc_split_stems(root: Path, split: str) -> list[str]:
    path = root / SPLIT_DIR / f"{split}.txt"
    if not path.is_file():
        have = sorted(p.stem for p in (root / SPLIT_DIR).glob("*.txt"))
        raise DatasetError(f"{path} does not exist: the data set's splits are {', '.join(have) or 'none'}")
    return [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def voc_image_path(root: Path, stem: str) -> Path | None:
    return next((root / IMAGE_DIR / f"{stem}{suffix}" for suffix in IMAGE_SUFFIXES
                 if (root / IMAGE_DIR / f"{stem}{suffix}").is_file()), None)


def voc_mask_path(root: Path, stem: str) -> Path:
    return root / MASK_DIR / f"{stem}.png"


def colors_to_ids(rgb: np.ndarray, classes: ClassSet) -> tuple[np.ndarray, dict[tuple[int, int, int], int]]:
    """H x W x 3 colours -> H x W uint8 class ids, and {unknown colour: pixel count} (those pixels get 255)."""
    code = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    known = np.array([(r << 16) | (g << 8) | b for r, g, b in classes.colors], dtype=np.int32)
    order = np.argsort(known)
    position = np.clip(np.searchsorted(known[order], code), 0, len(known) - 1)
    found = known[order][position] == code
    ids = np.where(found, order[position], IGNORE_INDEX).astype(np.uint8)
    unknown: dict[tuple[int, int, int], int] = {}
    if not found.all():
        values, counts = np.unique(code[~found], return_counts=True)
        unknown = {(int(v >> 16) & 255, int(v >> 8) & 255, int(v) & 255): int(c) for v, c in zip(values, counts)}
    return ids, unknown


# ---------------------------------------------------------------------------------------------- writing
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


def mask_images(labelmap: Labelmap, stem: str, mask: np.ndarray) -> dict[str, np.ndarray]:
    """The SegmentationClass and SegmentationObject images (H x W x 3) of one class mask, by their paths in the
    layout."""
    return {f"{MASK_DIR}/{stem}.png": labelmap.class_image(mask),
            f"{OBJECT_DIR}/{stem}.png": instance_image(instance_ids(mask))}


def split_list(split: str) -> str:
    """The path in the layout of a split's (CVAT: a subset's) list of stems."""
    return f"{SPLIT_DIR.as_posix()}/{split}.txt"
