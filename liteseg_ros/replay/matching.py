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
from liteseg_ros.stamps import NS_PER_S, Decision, StampJoin

GT_ENCODINGS = ("labelids", "trainids")


class StampMatcher:
    """Scores masks against the ground truths of their header stamps, joined as they come, in either order
    (:class:`~liteseg_ros.stamps.StampJoin`, exact stamps; at most ``max_pending`` of each side wait).

    Ground truth holds ids of the model's class set ``classes`` (``trainids``) or Cityscapes labelIds (``labelids``,
    Cityscapes models); with ``class_map`` it is merged like the predictions."""

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
        self.join = StampJoin(matches=max_pending, waiting_frames=max_pending)
        self.matched = 0

    def add_mask(self, stamp: int, mask: np.ndarray) -> None:
        """A predicted trainId mask for the frame with this header stamp."""
        self._score(self.join.add_frame(stamp, mask.copy()))

    def add_ground_truth(self, stamp: int, label: np.ndarray) -> None:
        """A mono8 ground-truth image (labelIds or trainIds) for this header stamp."""
        truth = ID_TO_TRAIN_ID[label] if self.gt_encoding == "labelids" else np.array(label, dtype=np.uint8)
        if self.class_map is not None:
            truth = self.class_map.mask(torch.from_numpy(truth)).numpy()
        self._score(self.join.add_match(stamp, truth))

    def _score(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            mask, truth = decision.frame, decision.match
            if truth is None:  # a frame without ground truth
                continue
            if mask.shape != truth.shape:
                raise BagError(
                    f"ground truth for stamp {decision.frame_stamp_ns / NS_PER_S:.9f} is {format_size(truth.shape)} "
                    f"but the image is {format_size(mask.shape)} (HxW): ground truth must have the image's size"
                )
            self.confusion.update(truth, mask)
            self.matched += 1
