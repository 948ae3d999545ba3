"""Pairing predicted masks with ground-truth label images by header stamp, and scoring them."""

from __future__ import annotations

import numpy as np
import torch

from liteseg_ros.class_map import ClassMap
from liteseg_ros.classes import ClassSet
from liteseg_ros.errors import BagError
from liteseg_ros.labels import CITYSCAPES, ID_TO_TRAIN_ID
from liteseg_ros.metrics import ConfusionMatrix
from liteseg_ros.sizes import format_size

GT_ENCODINGS = ("labelids", "trainids")


class StampMatcher:
    """Joins masks and ground truths that may arrive in either order.

    Unmatched ones wait, at most ``max_pending`` of them. Ground truth holds ids of the model's class set
    ``classes`` (``trainids``) or Cityscapes labelIds (``labelids``, Cityscapes models); with ``class_map`` it is
    merged like the predictions."""

    def __init__(self, gt_encoding: str = "labelids", max_pending: int = 256, classes: ClassSet = CITYSCAPES,
                 class_map: ClassMap | None = None):
        if gt_encoding not in GT_ENCODINGS:
            raise BagError(f"unknown ground-truth encoding {gt_encoding!r}: use one of {', '.join(GT_ENCODINGS)}")
        if gt_encoding == "labelids" and classes != CITYSCAPES:
            raise BagError("labelIds ground truth is Cityscapes'; this model has its own classes: record ground truth "
                           "as its class ids and pass --gt-encoding trainids")
        self.gt_encoding = gt_encoding
        self.class_map = class_map
        self.confusion = ConfusionMatrix(class_map.classes if class_map else classes)
        self.max_pending = max_pending
        self._masks: dict[int, np.ndarray] = {}
        self._truths: dict[int, np.ndarray] = {}
        self.matched = 0

    def add_mask(self, stamp: int, mask: np.ndarray) -> None:
        """A predicted trainId mask for the frame with this header stamp."""
        truth = self._truths.pop(stamp, None)
        if truth is None:
            self._remember(self._masks, stamp, mask.copy())
        else:
            self._score(stamp, mask, truth)

    def add_ground_truth(self, stamp: int, label: np.ndarray) -> None:
        """A mono8 ground-truth image (labelIds or trainIds) for this header stamp."""
        truth = ID_TO_TRAIN_ID[label] if self.gt_encoding == "labelids" else np.array(label, dtype=np.uint8)
        if self.class_map is not None:
            truth = self.class_map.mask(torch.from_numpy(truth)).numpy()
        mask = self._masks.pop(stamp, None)
        if mask is None:
            self._remember(self._truths, stamp, truth)
        else:
            self._score(stamp, mask, truth)

    def _remember(self, pending: dict[int, np.ndarray], stamp: int, array: np.ndarray) -> None:
        pending[stamp] = array
        while len(pending) > self.max_pending:
            pending.pop(next(iter(pending)))

    def _score(self, stamp: int, mask: np.ndarray, truth: np.ndarray) -> None:
        if mask.shape != truth.shape:
            raise BagError(
                f"ground truth for stamp {stamp / 1e9:.9f} is {format_size(truth.shape)} but the image is "
                f"{format_size(mask.shape)} (HxW): ground truth must have the image's size"
            )
        self.confusion.update(truth, mask)
        self.matched += 1
