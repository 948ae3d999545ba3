"""Writes synthetic frames in the exact Cityscapes layout and naming.

::

    leftImg8bit/{train,val,test,train_extra}/<city>/<city>_<seq:06d>_000019_leftImg8bit.png
    gtFine/{train,val,test}/<city>/<stem>_gtFine_{labelIds,color,instanceIds}.png
    gtCoarse/{train,val,train_extra}/<city>/<stem>_gtCoarse_{labelIds,color,instanceIds}.png

labelIds are 8-bit Cityscapes labelIds, color is RGBA in the labelId palette (as cityscapesscripts
writes it), instanceIds are 16-bit (``labelId * 1000 + k`` for instances, else the labelId).
gtCoarse is a degraded copy of gtFine: every region eroded, with unlabeled (0) borders, and some
objects left out, as a coarse annotator would. gtFine/test holds only the ego vehicle, like the
withheld Cityscapes test labels. The tree is written next to ``out`` and renamed into place at the
end, so an interrupted run leaves no half-written tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from liteseg_ros.errors import ConfigError
from liteseg_ros.files import atomic_folder
from liteseg_ros.labels import ID_PALETTE
from liteseg_ros.logs import get_logger
from liteseg_ros.tools.synthetic.scene import check_seed, check_size, render_scene

LOG = get_logger(__name__)

#: cities of each split (frames go round-robin over them)
CITIES = {
    "train": ("synthburg", "pixelstadt", "rendermund"),
    "val": ("valtown", "polygonia"),
    "test": ("testheim",),
    "train_extra": ("extrafurt", "coarsenau"),
}
#: fixed index of each split in the per-frame seed, so splits never share a frame
SPLIT_SEED_INDEX = {"train": 0, "val": 1, "test": 2, "train_extra": 3}
#: Cityscapes names the annotated frame of each 30-frame snippet 000019
FRAME_NUMBER = 19
#: labelIds kept in the withheld test labels (ego vehicle, rectification border, out of roi)
TEST_KEPT_IDS = (1, 2, 3)
#: coarse erosion radius as a fraction of the image height, and the share of objects left out
COARSE_BORDER = 0.016
COARSE_DROP = 0.15


@dataclass(frozen=True)
class TreeSummary:
    """What :func:`write_cityscapes_tree` wrote."""

    root: Path
    height: int
    width: int
    seed: int
    frames: dict[str, int]  # per split
    annotations: dict[str, tuple[str, ...]]  # per annotation: its splits
    files: int
    cities: dict[str, tuple[str, ...]] = field(default_factory=dict)


def frame_stem(split: str, index: int) -> tuple[str, str]:
    """(city, '<city>_<seq:06d>_<frame:06d>') of the ``index``-th frame of ``split``."""
    cities = CITIES[split]
    city = cities[index % len(cities)]
    return city, f"{city}_{index // len(cities):06d}_{FRAME_NUMBER:06d}"


def write_cityscapes_tree(out: str | Path, *, train: int, val: int, height: int, width: int, seed: int,
                          test: int = 0, coarse: bool = True, extra: int = 0) -> TreeSummary:
    """Render ``train``/``val``/``test``/``extra`` frames into a Cityscapes tree at ``out``.

    ``out`` must not exist or be an empty directory. The same arguments give byte-identical files.
    ``extra`` (train_extra) frames have only gtCoarse, so they need ``coarse=True``.
    """
    out = Path(out)
    _check_arguments(out, train, val, test, extra, coarse, height, width)
    check_seed(seed)
    counts = {"train": train, "val": val, "test": test, "train_extra": extra}
    files = 0
    with atomic_folder(out) as staging:
        for split, count in counts.items():
            for index in range(count):
                files += _write_frame(staging, split, index, height, width, seed, coarse)
            if count:
                LOG.info("wrote %d %s frames", count, split)
    annotations = {"gtFine": tuple(s for s in ("train", "val", "test") if counts[s])}
    if coarse:
        annotations["gtCoarse"] = tuple(s for s in ("train", "val", "train_extra") if counts[s])
    return TreeSummary(root=out, height=height, width=width, seed=seed, frames=counts, annotations=annotations,
                       files=files, cities={s: CITIES[s][: max(0, min(n, len(CITIES[s])))] for s, n in counts.items()})


def _check_arguments(out: Path, train: int, val: int, test: int, extra: int, coarse: bool,
                     height: int, width: int) -> None:
    check_size(height, width)
    if min(train, val, test, extra) < 0:
        raise ConfigError("frame counts must be >= 0")
    if train + val + test + extra == 0:
        raise ConfigError("nothing to write: ask for at least one train, val, test or extra frame")
    if extra and not coarse:
        raise ConfigError("train_extra frames only have coarse labels: drop --extra or keep coarse labels")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} exists and is not an empty directory: choose a new output path")


def frame_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random generator of the ``index``-th frame of ``split`` in a tree of ``seed``: render_scene with it
    gives that frame's image and labels without writing the tree."""
    return np.random.default_rng([seed, SPLIT_SEED_INDEX[split], index])


def _write_frame(root: Path, split: str, index: int, height: int, width: int, seed: int, coarse: bool) -> int:
    rng = frame_rng(seed, split, index)
    rgb, label_ids, instance_ids = render_scene(rng, height, width)
    city, stem = frame_stem(split, index)
    _save(Image.fromarray(rgb, "RGB"), root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
    written = 1
    if split != "train_extra":
        fine_labels, fine_instances = label_ids, instance_ids
        if split == "test":
            fine_labels = np.where(np.isin(label_ids, TEST_KEPT_IDS), label_ids, 0).astype(np.uint8)
            fine_instances = fine_labels.astype(np.int32)
        written += _write_labels(root / "gtFine" / split / city, f"{stem}_gtFine", fine_labels, fine_instances)
    if coarse and split != "test":
        coarse_labels, coarse_instances = coarsen(label_ids, instance_ids, rng)
        written += _write_labels(root / "gtCoarse" / split / city, f"{stem}_gtCoarse", coarse_labels,
                                 coarse_instances)
    return written


def _write_labels(directory: Path, prefix: str, label_ids: np.ndarray, instance_ids: np.ndarray) -> int:
    _save(Image.fromarray(label_ids, "L"), directory / f"{prefix}_labelIds.png")
    color = np.concatenate([ID_PALETTE[label_ids], np.full(label_ids.shape + (1,), 255, np.uint8)], axis=2)
    _save(Image.fromarray(color, "RGBA"), directory / f"{prefix}_color.png")
    _save(Image.fromarray(instance_ids.astype(np.uint16)), directory / f"{prefix}_instanceIds.png")
    return 3


def _save(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")


def coarsen(label_ids: np.ndarray, instance_ids: np.ndarray,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A coarse annotation of a fine one: regions eroded (borders become 0), some objects dropped.

    Every non-zero coarse pixel keeps its fine value.
    """
    radius = max(1, int(round(COARSE_BORDER * label_ids.shape[0])))
    keep = eroded_regions(instance_ids, radius)
    objects = np.unique(instance_ids[instance_ids >= 1000])
    dropped = objects[rng.random(len(objects)) < COARSE_DROP]
    keep &= ~np.isin(instance_ids, dropped)
    coarse_labels = np.where(keep, label_ids, 0).astype(np.uint8)
    coarse_instances = np.where(keep, instance_ids, 0).astype(np.int32)
    return coarse_labels, coarse_instances


def eroded_regions(values: np.ndarray, radius: int) -> np.ndarray:
    """True where every pixel within a (2 radius + 1)^2 square has the same value (image edges
    count as the same value)."""
    same_row = np.ones(values.shape, dtype=bool)
    for d in range(1, radius + 1):
        equal = values[:, d:] == values[:, :-d]
        same_row[:, d:] &= equal
        same_row[:, :-d] &= equal
    keep = same_row.copy()
    for d in range(1, radius + 1):
        equal = values[d:, :] == values[:-d, :]
        keep[d:, :] &= equal & same_row[:-d, :]
        keep[:-d, :] &= equal & same_row[d:, :]
    return keep
