"""Pixel-level scores of any class set: class IoU, and for Cityscapes category IoU, and their means.

For Cityscapes the numbers equal cityscapesscripts' ``evaluation/evalPixelLevelSemanticLabeling.py`` exactly:

- only pixels whose ground truth is one of the 19 evaluated classes count; ground truth of an
  ignored labelId (trainId 255) is left out entirely, whatever was predicted there;
- a prediction that is not one of the 19 classes (an ignored labelId such as 0 "unlabeled", or
  trainId 255) on an evaluated pixel is a false negative of the true class and a false positive of
  nothing: the matrix keeps such predictions in an extra last column, "other";
- IoU = TP / (TP + FP + FN); a class (category) whose denominator is 0 scores None and is left out
  of the mean;
- category IoU collapses rows and columns to the 7 categories (a prediction of another class of
  the same category counts as a hit).

``ConfusionMatrix.update`` takes trainIds as numpy arrays or torch tensors (any device, any batch
shape); ``update_label_ids`` takes labelId images as in the official evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from liteseg_ros.classes import ClassSet
from liteseg_ros.errors import ImageError
from liteseg_ros.labels import (
    CATEGORY_NAMES,
    CITYSCAPES,
    ID_TO_TRAIN_ID,
    LABELS,
    NUM_CLASSES,
    TRAIN_ID_TO_CATEGORY,
    TRAIN_ID_TO_ID,
    default_class_set,
)

#: The largest labelId of the Cityscapes label table (33, "bicycle").
MAX_LABEL_ID = max(lb.id for lb in LABELS)


@dataclass
class SegmentationScores:
    """Scores of one evaluation. IoUs are fractions in [0, 1]; None where undefined."""

    miou: float | None
    category_miou: float | None
    per_class: dict[str, float | None]
    per_category: dict[str, float | None]
    frames: int
    #: The num_classes x (num_classes + 1) pixel counts (rows: ground truth, last column: "other").
    matrix: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"miou", "category_miou", "per_class", "per_category", "frames"}``."""
        return {
            "miou": self.miou,
            "category_miou": self.category_miou,
            "per_class": dict(self.per_class),
            "per_category": dict(self.per_category),
            "frames": self.frames,
        }


def _iou_from_matrix(matrix: np.ndarray) -> list[float | None]:
    """IoU of each row class of a (K, K + 1) matrix whose last column holds "other" predictions."""
    k = matrix.shape[0]
    ious: list[float | None] = []
    for c in range(k):
        tp = int(matrix[c, c])
        fn = int(matrix[c, :].sum()) - tp
        fp = int(matrix[:, c].sum()) - tp
        denom = tp + fp + fn
        ious.append(float(tp) / denom if denom else None)
    return ious


def _mean(values: Sequence[float | None]) -> float | None:
    """Mean over the defined values, summed in order as cityscapesscripts does; None if none."""
    valid = [v for v in values if v is not None]
    if not valid:
        return None
    total = 0.0
    for v in valid:
        total += v
    return total / len(valid)


def _is_torch_tensor(x: object) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


class ConfusionMatrix:
    """Pixel counts of ground-truth trainId (rows) against predicted class (columns).

    ``matrix[g, p]`` counts pixels of true class ``g`` predicted as ``p``; column ``num_classes``
    ("other") counts predictions outside ``0..num_classes-1``. Ground truth outside
    ``0..num_classes-1`` (255 = ignore) is not counted. Matrices of several workers add up with
    :meth:`merge`.
    """

    def __init__(self, classes: ClassSet | int = CITYSCAPES):
        """``classes``: the class set scored (its names key the tables), or a class count (its default set)."""
        if isinstance(classes, int):
            if classes < 1:
                raise ValueError(f"num_classes must be >= 1, got {classes}")
            classes = default_class_set(classes)
        self.classes = classes
        self.num_classes = len(classes)
        self.class_names = classes.names
        self.matrix = np.zeros((self.num_classes, self.num_classes + 1), dtype=np.int64)
        self.frames = 0

    def reset(self) -> None:
        """Forget every counted pixel and frame."""
        self.matrix[:] = 0
        self.frames = 0

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add the counts of ``other`` (same class count) to this one; returns self."""
        if other.matrix.shape != self.matrix.shape:
            raise ValueError(f"cannot merge a {other.num_classes}-class matrix into a {self.num_classes}-class one")
        self.matrix += other.matrix
        self.frames += other.frames
        return self

    def update(self, gt_train_ids: Any, pred_train_ids: Any) -> None:
        """Count one label image (H x W) or a batch (N x H x W) of trainIds.

        Accepts numpy arrays or torch tensors (counted on the tensor's device, one transfer of
        the small count vector). Ground truth 255 (or any value outside the classes) is ignored;
        a prediction outside the classes counts as "other".
        """
        if tuple(gt_train_ids.shape) != tuple(pred_train_ids.shape):
            raise ImageError(
                f"ground truth {tuple(gt_train_ids.shape)} and prediction {tuple(pred_train_ids.shape)} "
                "differ in shape; predict at the label's resolution"
            )
        n = self.num_classes
        if _is_torch_tensor(gt_train_ids) or _is_torch_tensor(pred_train_ids):
            counts = self._count_torch(gt_train_ids, pred_train_ids)
        else:
            counts = self._count_numpy(np.asarray(gt_train_ids), np.asarray(pred_train_ids))
        self.matrix += counts.reshape(n, n + 1)
        self.frames += int(gt_train_ids.shape[0]) if len(gt_train_ids.shape) == 3 else 1

    def _count_numpy(self, gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
        n = self.num_classes
        if gt.dtype == np.uint8 and pred.dtype == np.uint8 and n < 256:
            full = _pair_counts_uint8(gt, pred)[:n]
            return np.concatenate([full[:, :n], full[:, n:].sum(axis=1, keepdims=True)], axis=1)
        gt = gt.reshape(-1)
        pred = pred.reshape(-1)
        valid = (gt < n) if gt.dtype.kind == "u" else (gt >= 0) & (gt < n)
        g = gt[valid].astype(np.int64)
        p = pred[valid].astype(np.int64)
        p[(p < 0) | (p >= n)] = n
        return np.bincount(g * (n + 1) + p, minlength=n * (n + 1))

    def _count_torch(self, gt: Any, pred: Any) -> np.ndarray:
        n = self.num_classes
        if not _is_torch_tensor(gt) or not _is_torch_tensor(pred):
            raise TypeError("pass ground truth and prediction both as torch tensors or both as numpy arrays")
        g = gt.detach().reshape(-1).long()
        p = pred.detach().reshape(-1).to(g.device).long()
        valid = (g >= 0) & (g < n)
        g = g[valid]
        p = p[valid]
        p = p.masked_fill((p < 0) | (p >= n), n)
        counts = (g * (n + 1) + p).bincount(minlength=n * (n + 1))
        return counts.cpu().numpy().astype(np.int64)

    def update_label_ids(self, gt_label_ids: Any, pred_label_ids: Any) -> None:
        """Count labelId images (H x W or N x H x W), as the official evaluation reads them.

        Both must hold Cityscapes labelIds 0..33 (cityscapesscripts stops on any other value);
        predictions of ignored ids (e.g. 0) count as false negatives of the true class.
        Needs the Cityscapes class set.
        """
        if self.classes != CITYSCAPES:
            raise ValueError("labelIds map to the Cityscapes classes; this matrix scores another class set")
        gt = _as_numpy(gt_label_ids)
        pred = _as_numpy(pred_label_ids)
        if gt.shape != pred.shape:
            raise ImageError(f"ground truth {gt.shape} and prediction {pred.shape} differ in shape; "
                             "predict at the label's resolution")
        _check_label_ids(gt, "ground truth")
        _check_label_ids(pred, "prediction")
        # count (labelId, labelId) pairs, then map rows and columns to trainIds / "other"
        full = _pair_counts_uint8(gt.astype(np.uint8, copy=False), pred.astype(np.uint8, copy=False))
        self.matrix += full[_EVALUATED_LABEL_IDS] @ _LABEL_ID_TO_COLUMN
        self.frames += int(gt.shape[0]) if gt.ndim == 3 else 1

    def class_iou(self) -> list[float | None]:
        """IoU of each class in trainId order; None where TP + FP + FN = 0."""
        return _iou_from_matrix(self.matrix)

    def category_matrix(self) -> np.ndarray:
        """The 7 x 8 matrix of the Cityscapes categories (last column: "other")."""
        if self.classes != CITYSCAPES:
            raise ValueError("categories are defined for the Cityscapes class set only")
        k = len(CATEGORY_NAMES)
        column_of = np.append(TRAIN_ID_TO_CATEGORY, k)  # "other" stays "other"
        collapsed = np.zeros((k, k + 1), dtype=np.int64)
        np.add.at(collapsed, (TRAIN_ID_TO_CATEGORY[:, None], column_of[None, :]), self.matrix)
        return collapsed

    def category_iou(self) -> list[float | None]:
        """IoU of each category in CATEGORY_NAMES order; None where TP + FP + FN = 0."""
        return _iou_from_matrix(self.category_matrix())

    def scores(self) -> SegmentationScores:
        """All scores of the counted pixels."""
        class_ious = self.class_iou()
        if self.classes == CITYSCAPES:
            category_ious = self.category_iou()
            per_category = dict(zip(CATEGORY_NAMES, category_ious))
            category_miou = _mean(category_ious)
        else:
            per_category, category_miou = {}, None
        return SegmentationScores(
            miou=_mean(class_ious),
            category_miou=category_miou,
            per_class=dict(zip(self.class_names, class_ious)),
            per_category=per_category,
            frames=self.frames,
            matrix=self.matrix.copy(),
        )


def _pair_counts_uint8(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """256 x 256 counts of (gt, pred) value pairs: one bincount, no masking, no int64 copies."""
    pairs = gt.astype(np.uint16).reshape(-1) << 8
    pairs |= pred.reshape(-1)
    return np.bincount(pairs, minlength=256 * 256).reshape(256, 256)


def _label_id_to_column() -> np.ndarray:
    """256 x 20 one-hot: the confusion-matrix column (trainId, or 19 = "other") of each labelId."""
    columns = np.where(ID_TO_TRAIN_ID < NUM_CLASSES, ID_TO_TRAIN_ID, NUM_CLASSES)
    return np.eye(NUM_CLASSES + 1, dtype=np.int64)[columns]


#: labelId of each trainId 0..18 (the matrix rows), and the column of each labelId.
_EVALUATED_LABEL_IDS = TRAIN_ID_TO_ID[:NUM_CLASSES].astype(np.int64)
_LABEL_ID_TO_COLUMN = _label_id_to_column()


def _as_numpy(x: Any) -> np.ndarray:
    if _is_torch_tensor(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _check_label_ids(ids: np.ndarray, what: str) -> None:
    if ids.dtype.kind not in "iu":
        raise ImageError(f"{what} labelIds must be an integer image, got dtype {ids.dtype}")
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) > MAX_LABEL_ID):
        unknown = np.unique(ids[(ids < 0) | (ids > MAX_LABEL_ID)])[:10].tolist()
        raise ImageError(
            f"{what} holds values {unknown} that are not Cityscapes labelIds (0..{MAX_LABEL_ID}); "
            "write labelIds, not trainIds or colours"
        )
