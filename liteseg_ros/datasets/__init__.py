"""Dataset readers (Cityscapes layout)."""

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
