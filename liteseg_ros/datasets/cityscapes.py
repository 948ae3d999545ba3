"""Reader of the official Cityscapes layout.

One root holds::

    leftImg8bit/{train,val,test,train_extra}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png
    gtCoarse/{train,val,train_extra}/<city>/<city>_<seq>_<frame>_gtCoarse_labelIds.png

:func:`scan_split` pairs every image of a split with its label and checks the tree at start-up,
so that a wrong path fails at once with a message that says what is missing, not hours into a
training run. :class:`CityscapesDataset` reads the pairs as (RGB uint8 image, trainId label).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from liteseg_ros.errors import DatasetError
from liteseg_ros.labels import ID_TO_TRAIN_ID
from liteseg_ros.sizes import format_size

IMAGE_DIR = "leftImg8bit"
IMAGE_SUFFIX = "_leftImg8bit.png"
ANNOTATIONS = ("gtFine", "gtCoarse")
#: The splits each annotation has in the official release.
ANNOTATION_SPLITS = {
    "gtFine": ("train", "val", "test"),
    "gtCoarse": ("train", "val", "train_extra"),
}
#: How many missing files an error message names before it only counts the rest.
MAX_LISTED = 10


@dataclass(frozen=True)
class Sample:
    """One image of the dataset and its label file."""

    frame: str  # <city>_<seq>_<frame>
    image: Path
    label: Path


def label_file_name(frame: str, annotation: str = "gtFine") -> str:
    """The file name of a frame's labelId image, e.g. ``aachen_000000_000019_gtFine_labelIds.png``."""
    return f"{frame}_{annotation}_labelIds.png"


def _listing(paths: Sequence[Path], root: Path) -> str:
    shown = [str(p.relative_to(root)) for p in paths[:MAX_LISTED]]
    more = len(paths) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _check_root(root: Path, annotation: str) -> None:
    if annotation not in ANNOTATIONS:
        raise DatasetError(f"unknown annotation {annotation!r}; use one of {', '.join(ANNOTATIONS)}")
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} does not exist; pass the folder that holds leftImg8bit/ and gtFine/")
    if not (root / IMAGE_DIR).is_dir():
        raise DatasetError(
            f"{root} is not a Cityscapes root: it has no {IMAGE_DIR}/ folder; pass the folder that holds "
            f"{IMAGE_DIR}/ and gtFine/ (not {IMAGE_DIR}/ itself or a split folder)"
        )


def _scan_one(root: Path, split: str, annotation: str) -> list[Sample]:
    split_dir = root / IMAGE_DIR / split
    if not split_dir.is_dir():
        present = sorted(p.name for p in (root / IMAGE_DIR).iterdir() if p.is_dir())
        raise DatasetError(
            f"split {split!r} not found: {split_dir} does not exist (present: {', '.join(present) or 'none'})"
        )
    images = sorted(split_dir.glob(f"*/*{IMAGE_SUFFIX}"))
    if not images:
        raise DatasetError(f"split {split!r} is empty: no */*{IMAGE_SUFFIX} under {split_dir}")
    label_dir = root / annotation / split
    samples, missing = [], []
    for image in images:
        frame = image.name[: -len(IMAGE_SUFFIX)]
        label = label_dir / image.parent.name / label_file_name(frame, annotation)
        if label.is_file():
            samples.append(Sample(frame, image, label))
        else:
            missing.append(label)
    if missing:
        hint = ""
        if split not in ANNOTATION_SPLITS[annotation]:
            hint = f" ({annotation} has no {split!r} split; it has {', '.join(ANNOTATION_SPLITS[annotation])})"
        elif not label_dir.is_dir():
            hint = f" ({label_dir} does not exist: download and unpack {annotation} next to {IMAGE_DIR})"
        raise DatasetError(
            f"{len(missing)} of {len(images)} images of split {split!r} have no {annotation} label{hint}; "
            f"missing: {_listing(missing, root)}"
        )
    return samples


def scan_split(root: str | os.PathLike, split: str | Sequence[str], annotation: str = "gtFine") -> list[Sample]:
    """Pair every image of one split (or several, in order) with its labelId file.

    Raises DatasetError when the root has no leftImg8bit/, a split is missing or empty, or some
    image lacks its label (the message names up to 10 of them and counts the rest).
    """
    root = Path(root)
    _check_root(root, annotation)
    splits = [split] if isinstance(split, str) else list(split)
    if not splits:
        raise DatasetError("no split given; name at least one of train, val, test, train_extra")
    samples: list[Sample] = []
    for name in splits:
        samples.extend(_scan_one(root, name, annotation))
    return samples


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """An image file as H x W x 3 uint8 RGB."""
    try:
        with Image.open(path) as img:
            if img.mode != "RGB":
                img = img.convert("RGB")
            return np.asarray(img)
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"cannot read image {path}: {exc}") from exc


def read_label_ids(path: str | os.PathLike) -> np.ndarray:
    """A single-channel label PNG as an H x W integer array (labelIds as stored)."""
    try:
        with Image.open(path) as img:
            label = np.asarray(img)
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"cannot read label image {path}: {exc}") from exc
    if label.ndim != 2:
        raise DatasetError(f"label image {path} has {label.shape[2]} channels; expected a single-channel labelId PNG")
    return label


def read_train_ids(path: str | os.PathLike) -> np.ndarray:
    """A labelId PNG mapped to H x W uint8 trainIds (ignored labelIds -> 255)."""
    label = read_label_ids(path)
    if label.dtype != np.uint8:
        if label.size and (label.min() < 0 or label.max() > 255):
            raise DatasetError(f"label image {path} holds values outside 0..255; expected Cityscapes labelIds")
        label = label.astype(np.uint8)
    return ID_TO_TRAIN_ID[label]


class CityscapesDataset(Dataset):
    """Cityscapes images with trainId labels, as a torch Dataset.

    ``dataset[i]`` is ``(image, label)``: H x W x 3 uint8 RGB and H x W uint8 trainIds (0..18,
    255 = ignore), or ``transform(image, label)`` when a transform is given. ``split`` may be a
    list, e.g. ``["train", "train_extra"]`` with ``annotation="gtCoarse"``.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | Sequence[str],
        annotation: str = "gtFine",
        transform: Callable[[np.ndarray, np.ndarray], Any] | None = None,
    ):
        self.root = Path(root)
        self.annotation = annotation
        self.samples = scan_split(self.root, split, annotation)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Any:
        sample = self.samples[index]
        image = read_rgb(sample.image)
        label = read_train_ids(sample.label)
        if image.shape[:2] != label.shape:
            raise DatasetError(
                f"{sample.image} is {format_size(image.shape)} but its label {sample.label} is "
                f"{format_size(label.shape)} (HxW)"
            )
        if self.transform is not None:
            return self.transform(image, label)
        return image, label
