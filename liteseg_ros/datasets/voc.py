"""The PASCAL VOC segmentation layout, as CVAT exports it ("Segmentation mask 1.1"; Label Studio and others
write it too)::

    labelmap.txt                          # label:color_rgb:parts:actions, then name:r,g,b:: per class
    JPEGImages/<stem>.jpg                 # (or .png)
    SegmentationClass/<stem>.png          # RGB, coloured by the labelmap; or VOC's indexed PNGs (255 = void)
    SegmentationObject/<stem>.png         # instances: not read
    ImageSets/Segmentation/<split>.txt    # one stem per line

Class ids follow the labelmap's order (``background`` is a class, usually 0). Without ``labelmap.txt`` the
layout is PASCAL VOC's own: its 21 classes and palette. A mask pixel whose colour is not in the labelmap is an
error at the start (:func:`liteseg_ros.datasets.folders.check_split`), never a silent ignore.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from liteseg_ros.classes import IGNORE_INDEX, ClassSet
from liteseg_ros.errors import ClassSetError, DatasetError

LABELMAP = "labelmap.txt"
IMAGE_DIR = "JPEGImages"
MASK_DIR = "SegmentationClass"
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
