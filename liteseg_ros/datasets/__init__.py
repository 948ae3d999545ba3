"""Data set readers: Cityscapes (:mod:`.cityscapes`), CVAT / PASCAL VOC and the plain layout (:mod:`.folders`,
:mod:`.voc`); :func:`~liteseg_ros.datasets.folders.open_split` detects which."""

from liteseg_ros.datasets.cityscapes import (
    CityscapesDataset,
    Sample,
    label_file_name,
    read_label_ids,
    read_rgb,
    read_train_ids,
    scan_split,
)

__all__ = [
    "CityscapesDataset", "Sample", "label_file_name", "read_label_ids", "read_rgb", "read_train_ids", "scan_split",
]
