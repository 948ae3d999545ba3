"""Labelled data sets in the layouts users have, detected from the folder: CVAT / PASCAL VOC
(:mod:`liteseg_ros.labelling.voc`, where it is written too), a plain layout, and Cityscapes
(:mod:`liteseg_ros.datasets.cityscapes`).

The plain layout::

    classes.yaml                    # classes: [{name: floor, color: [128, 64, 128]}, ...] (ids in this order)
    images/<split>/<stem>.jpg|png
    masks/<split>/<stem>.png        # single-channel class ids, 255 = ignore

:func:`open_split` returns a torch Dataset of (H x W x 3 uint8 RGB, H x W uint8 class ids) with the data set's
class set as ``.classes``, after :func:`check_split` has read every pair once: an image without its mask (and the
reverse), an unreadable or truncated file, a mask colour or id outside the class set (the first files, with
pixel counts), a mask of another size than its image, an empty split. Each is one DatasetError that says what is
wrong and where, raised before anything is trained or written.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from liteseg_ros.classes import IGNORE_INDEX, ClassSet
from liteseg_ros.datasets.archives import dataset_folder
from liteseg_ros.datasets.cityscapes import CityscapesDataset, read_rgb
from liteseg_ros.errors import ClassSetError, DatasetError, first_line
from liteseg_ros.labelling import voc
from liteseg_ros.labels import CITYSCAPES
from liteseg_ros.logs import get_logger
from liteseg_ros.sizes import format_size

CLASSES_FILE = "classes.yaml"
HELD_OUT = 0.2  # of a one-split data set's frames validate (val) when train and val are asked for
MAX_LISTED = 5
LOG = get_logger(__name__)
LAYOUTS = ("cityscapes", "voc", "plain")


@dataclass(frozen=True)
class Pair:
    """One labelled image: its stem, image file and mask file."""

    stem: str
    image: Path
    mask: Path


def detect_layout(root: str | os.PathLike) -> str:
    """``cityscapes``, ``voc`` (CVAT "Segmentation mask 1.1") or ``plain``; DatasetError when none fits. ``root`` may
    be a zip archive of the tree (:mod:`liteseg_ros.datasets.archives`)."""
    return _layout_of(Path(root), dataset_folder(root))


def _layout_of(given: Path, root: Path) -> str:
    """The layout of ``root``, the folder of the data set the user gave as ``given`` (the name errors use)."""
    if not root.exists():
        raise DatasetError(f"data set {given} does not exist: give a data set folder, its zip (a CVAT export) or a "
                           "Label Studio JSON export")
    if not root.is_dir():
        raise DatasetError(f"{given} is neither a data set folder, a zip archive nor a Label Studio JSON export")
    if (root / "leftImg8bit").is_dir():
        return "cityscapes"
    if voc.is_voc_layout(root):
        return "voc"
    if (root / CLASSES_FILE).is_file() and (root / "masks").is_dir():
        return "plain"
    raise DatasetError(f"{given} is not a data set this package reads: expected a CVAT / PASCAL VOC export "
                       f"(SegmentationClass/, ImageSets/Segmentation/; or its zip), the plain layout ({CLASSES_FILE}, "
                       "images/, masks/), Cityscapes (leftImg8bit/, gtFine/) or a Label Studio JSON export beside "
                       "liteseg-mine's label_studio_config.xml")


def available_splits(root: str | os.PathLike) -> list[str]:
    """The labelled splits the data set at ``root`` (a folder or a zip archive) has, in name order (Cityscapes: those
    with fine labels)."""
    root = dataset_folder(root)
    layout = detect_layout(root)
    if layout == "cityscapes":
        found = [p.name for p in (root / "leftImg8bit").iterdir() if (root / "gtFine" / p.name).is_dir()]
    elif layout == "voc":
        found = [p.stem for p in (root / voc.SPLIT_DIR).glob("*.txt")]
    else:
        found = [p.name for p in (root / "masks").iterdir() if p.is_dir()]
    if not found:
        raise DatasetError(f"{root} has no labelled split")
    return sorted(found)


def read_classes_yaml(path: Path) -> ClassSet:
    """The class set of a plain layout's ``classes.yaml``."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        entries = data["classes"] if isinstance(data, dict) else None
        if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
            raise DatasetError(f"{path} needs 'classes:', a list of {{name: ..., color: [r, g, b]}}")
        return ClassSet(tuple(entry.get("name") for entry in entries), tuple(entry.get("color") for entry in entries))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise DatasetError(f"{path} cannot be read: {first_line(error)}") from None
    except ClassSetError as error:
        raise DatasetError(f"{path}: {error}") from None


def held_out(pairs: list[Pair], split: str) -> list[Pair]:
    """``train`` or ``val`` of a data set's one split: a frame is ``val`` when a hash of its name falls in the first
    HELD_OUT of the hash range (so it stays on its side as frames are added), and at least one frame is."""
    def position(pair: Pair) -> float:
        return int(hashlib.sha1(pair.stem.encode()).hexdigest()[:12], 16) / float(1 << 48)

    validation = {pair.stem for pair in pairs if position(pair) < HELD_OUT}
    if not validation and len(pairs) > 1:
        validation = {min(pairs, key=position).stem}
    return [pair for pair in pairs if (pair.stem in validation) == (split == "val")]


def _split_pairs(root: Path, layout: str, split: str) -> list[Pair]:
    pairs_of = _voc_pairs if layout == "voc" else _plain_pairs
    present = available_splits(root)
    if split in present or split not in ("train", "val") or len(present) != 1:
        return pairs_of(root, split)
    pairs = pairs_of(root, present[0])
    chosen = held_out(pairs, split)
    LOG.info("%s has one split, %s: %s takes %d of its %d frames (val: those whose names hash into the first %d %%)",
             root, present[0], split, len(chosen), len(pairs), round(100 * HELD_OUT))
    return chosen


def _plain_pairs(root: Path, split: str) -> list[Pair]:
    image_dir, mask_dir = root / "images" / split, root / "masks" / split
    if not image_dir.is_dir() and not mask_dir.is_dir():
        have = sorted(p.name for p in (root / "masks").iterdir() if p.is_dir())
        raise DatasetError(f"{root} has no split {split!r} (images/{split}, masks/{split}); it has "
                           f"{', '.join(have) or 'none'}")
    images = {p.stem: p for p in sorted(image_dir.glob("*")) if p.suffix.lower() in voc.IMAGE_SUFFIXES}
    masks = {p.stem: p for p in sorted(mask_dir.glob("*.png"))}
    _check_matched(sorted(set(images) - set(masks)), f"images in {image_dir} without a mask in {mask_dir}")
    _check_matched(sorted(set(masks) - set(images)), f"masks in {mask_dir} without an image in {image_dir}")
    return [Pair(stem, images[stem], masks[stem]) for stem in sorted(images)]


def _voc_pairs(root: Path, split: str) -> list[Pair]:
    stems = voc.voc_split_stems(root, split)
    _check_matched([s for s in stems if voc.voc_image_path(root, s) is None],
                   f"stems of {voc.SPLIT_DIR / (split + '.txt')} without an image in {root / voc.IMAGE_DIR}")
    _check_matched([s for s in stems if not voc.voc_mask_path(root, s).is_file()],
                   f"stems of {voc.SPLIT_DIR / (split + '.txt')} without a mask in {root / voc.MASK_DIR}")
    return [Pair(s, voc.voc_image_path(root, s), voc.voc_mask_path(root, s)) for s in stems]


def _check_matched(unmatched: list[str], what: str) -> None:
    if unmatched:
        more = f" and {len(unmatched) - MAX_LISTED} more" if len(unmatched) > MAX_LISTED else ""
        raise DatasetError(f"{len(unmatched)} {what}: {', '.join(unmatched[:MAX_LISTED])}{more}")


def read_mask(path: Path, classes: ClassSet) -> tuple[np.ndarray, dict]:
    """A mask file -> (H x W uint8 class ids, {unknown value: pixel count}). RGB masks are mapped by colour;
    indexed and single-channel ones hold ids (255 = ignore)."""
    try:
        with Image.open(path) as image:
            mode = image.mode
            array = np.asarray(image.convert("RGB") if mode in ("RGBA", "RGB") else image)
    except (OSError, SyntaxError, ValueError) as error:
        raise DatasetError(f"cannot read mask {path}: {error}") from None
    if mode in ("RGB", "RGBA"):
        return voc.colors_to_ids(array, classes)
    if array.ndim != 2 or array.dtype.kind not in "ui":
        raise DatasetError(f"mask {path} is a {mode} image: expected RGB colours or single-channel class ids")
    bad = (array != IGNORE_INDEX) & ((array < 0) | (array >= len(classes)))
    unknown = dict(zip(*(v.tolist() for v in np.unique(array[bad], return_counts=True)))) if bad.any() else {}
    return np.where(bad, IGNORE_INDEX, array).astype(np.uint8), unknown


def check_split(pairs: list[Pair], classes: ClassSet, where: str) -> None:
    """Read every pair once; DatasetError for an empty split, unreadable files, size mismatches and mask values
    outside the class set (listing the first files with their values and pixel counts)."""
    if not pairs:
        raise DatasetError(f"{where} is empty: no labelled images")
    strangers = []
    for pair in pairs:
        image = read_rgb(pair.image)
        mask, unknown = read_mask(pair.mask, classes)
        if image.shape[:2] != mask.shape:
            raise DatasetError(f"mask {pair.mask} is {format_size(mask.shape)} but its image {pair.image} is "
                               f"{format_size(image.shape)} (HxW)")
        if unknown:
            listed = ", ".join(f"{value} ({count} px)" for value, count in list(unknown.items())[:MAX_LISTED])
            strangers.append(f"{pair.mask.name}: {listed}")
    if strangers:
        raise DatasetError(f"{len(strangers)} mask(s) of {where} hold values that are not classes of the data set "
                           f"({', '.join(classes.names)}): " + "; ".join(strangers[:MAX_LISTED]))


class FolderDataset(Dataset):
    """A checked split of a VOC / CVAT or plain data set: ``dataset[i]`` = (RGB uint8, class ids uint8)."""

    def __init__(self, pairs: list[Pair], classes: ClassSet, transform: Callable | None = None):
        self.pairs, self.classes, self.transform = pairs, classes, transform

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Any:
        pair = self.pairs[index]
        image, (mask, _) = read_rgb(pair.image), read_mask(pair.mask, self.classes)
        return self.transform(image, mask) if self.transform is not None else (image, mask)


def open_split(root: str | os.PathLike, split: str | list[str], annotation: str = "gtFine",
               transform: Callable | None = None) -> Dataset:
    """The split(s) ``split`` of the data set at ``root`` (a folder or a zip archive), in whichever layout it is,
    checked; its class set is ``.classes``. ``annotation`` (gtFine / gtCoarse) only matters for Cityscapes. A CVAT /
    VOC or plain data set of one split (CVAT exports one, ``default``) gives ``train`` and ``val`` from it
    (:func:`held_out`)."""
    given, root = Path(root), dataset_folder(root)
    layout = _layout_of(given, root)
    if layout == "cityscapes":
        dataset = CityscapesDataset(root, split, annotation=annotation, transform=transform)
        dataset.classes = CITYSCAPES
        return dataset
    splits = [split] if isinstance(split, str) else list(split)
    if layout == "voc" and not (root / voc.IMAGE_DIR).is_dir():
        raise DatasetError(f"{given} holds masks but no images ({voc.IMAGE_DIR}/): CVAT annotations alone, such as "
                           "liteseg-mine's cvat_annotations.zip. Export the task from CVAT (Export task dataset -> "
                           "Segmentation mask 1.1) with 'Save images' and give that zip")
    classes = voc.read_labelmap(root) if layout == "voc" else read_classes_yaml(root / CLASSES_FILE)
    pairs = [p for name in splits for p in _split_pairs(root, layout, name)]
    check_split(pairs, classes, f"split {'+'.join(splits)} of {root}")
    return FolderDataset(pairs, classes, transform)
