"""Frames for calibrating and checking a quantized model: from a folder of images, a data set (Cityscapes, a CVAT /
VOC export, the plain layout: :mod:`liteseg_ros.datasets.folders`) or a bag (ROS 1 or rosbag2), with ground-truth
class ids where the source has them."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from liteseg_ros.errors import DatasetError
from liteseg_ros.labels import label_ids_to_train_ids
from liteseg_ros.stamps import StampJoin, stamp_ns

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


@dataclass
class Frame:
    """One frame: an image for the Segmenter and, where known, its trainIds (255 = ignore)."""

    image: np.ndarray
    encoding: str = "rgb8"
    train_ids: np.ndarray | None = None


def source_kind(source: Path) -> str:
    """``bag``, ``dataset`` (a layout :func:`~liteseg_ros.datasets.folders.detect_layout` reads: Cityscapes, a CVAT /
    VOC export, the plain layout) or ``images``; DatasetError for a path that is none of them."""
    from liteseg_ros.datasets.folders import detect_layout

    if source.is_file() and source.suffix == ".bag" or (source / "metadata.yaml").is_file():
        return "bag"
    try:
        detect_layout(source)
        return "dataset"
    except DatasetError:
        pass
    if source.is_dir():
        return "images"
    raise DatasetError(f"{source} is neither a folder of images, a data set (Cityscapes, a CVAT / VOC export, the "
                       "plain layout) nor a bag")


def read_frames(source: str | Path, count: int, *, image_topic: str | None = None, gt_topic: str | None = None,
                gt_encoding: str = "labelids") -> Iterator[Frame]:
    """Up to ``count`` frames of ``source`` in a fixed order (a bag: its image messages in bag order; with
    ``gt_topic`` only those whose ground truth, matched by header stamp, is in the bag; a data set: its splits in
    name order, with their labels as ground truth)."""
    source = Path(source)
    readers = {"bag": lambda: _bag_frames(source, image_topic, gt_topic, gt_encoding),
               "dataset": lambda: _dataset_frames(source), "images": lambda: _folder_frames(source)}
    return itertools.islice(readers[source_kind(source)](), count)


def _folder_frames(folder: Path) -> Iterator[Frame]:
    from liteseg_ros.datasets.cityscapes import read_rgb

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    for path in files:
        yield Frame(read_rgb(path))


def _dataset_frames(root: Path) -> Iterator[Frame]:
    from liteseg_ros.datasets.folders import available_splits, open_split

    dataset = open_split(root, available_splits(root))
    for index in range(len(dataset)):
        image, label = dataset[index]
        yield Frame(image, train_ids=label)


MAX_PENDING = 64  # unmatched images or labels kept while joining a bag's frames


def _bag_frames(path: Path, image_topic: str | None, gt_topic: str | None, gt_encoding: str) -> Iterator[Frame]:
    from liteseg_ros.replay.bag_io import BagSource, decode_image, ground_truth_array

    source = BagSource(path, image_topic, gt_topic)
    join = StampJoin(matches=MAX_PENDING, waiting_frames=MAX_PENDING)
    try:
        for message in source.messages():
            decisions = []
            if message.topic == source.image_topic:
                image, encoding = decode_image(message)
                if source.gt_topic is None:
                    yield Frame(np.array(image), encoding)
                    continue
                decisions = join.add_frame(stamp_ns(message.msg.header), (np.array(image), encoding))
            elif message.topic == source.gt_topic:
                label = np.array(ground_truth_array(message))
                decisions = join.add_match(stamp_ns(message.msg.header), label_ids_to_train_ids(label)
                                           if gt_encoding == "labelids" else label)
            for decision in decisions:
                if decision.match is not None:  # frames without ground truth are left out
                    yield Frame(*decision.frame, decision.match)
    finally:
        source.close()
