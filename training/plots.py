"""Evaluation charts: per-class IoU bars and the row-normalised confusion matrix (PNG).

matplotlib is a ``train`` extra: it is imported only when a chart is drawn, and drawn through
``matplotlib.figure.Figure`` (Agg canvas), so no GUI backend or pyplot state is involved.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from liteseg_ros.errors import ConfigError
from liteseg_ros.files import atomic_file
from liteseg_ros.metrics import SegmentationScores

CLASS_IOU_FILE = "class_iou.png"
CONFUSION_FILE = "confusion_matrix.png"


def _new_figure(width: float, height: float):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError(
            "--plots needs matplotlib: pip install 'liteseg_ros[train]' (or pip install matplotlib)"
        ) from None
    return Figure(figsize=(width, height), dpi=120, layout="constrained")


def _save_atomically(figure, path: Path) -> Path:
    """Render the figure as a PNG put in place atomically (:func:`liteseg_ros.files.atomic_file`)."""
    with atomic_file(path) as temporary:
        figure.savefig(temporary, format="png")
    return path


def plot_class_iou(scores: SegmentationScores, path: str | os.PathLike) -> Path:
    """Horizontal bars of each class IoU (classes without pixels are marked n/a), mean as a line."""
    names = list(scores.per_class)
    values = [scores.per_class[n] for n in names]
    figure = _new_figure(7.0, 0.3 * len(names) + 1.5)
    axes = figure.add_subplot()
    y = np.arange(len(names))
    axes.barh(y, [0.0 if v is None else v for v in values], color="#4c72b0")
    for row, value in zip(y, values):
        text = "n/a" if value is None else f"{value:.3f}"
        axes.text(0.01 if value is None else min(value, 0.88) + 0.01, row, text, va="center", fontsize=7)
    if scores.miou is not None:
        axes.axvline(scores.miou, color="#c44e52", linestyle="--", label=f"mIoU {scores.miou:.3f}")
        axes.legend(loc="lower right", fontsize=8)
    axes.set_yticks(y, names, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0.0, 1.0)
    axes.set_xlabel("IoU")
    axes.set_title(f"Class IoU ({scores.frames} frames)")
    return _save_atomically(figure, Path(path))


def row_normalised(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the share of a true class predicted as each column); NaN for empty rows."""
    totals = matrix.sum(axis=1, keepdims=True).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, matrix / totals, np.nan)


def plot_confusion_matrix(scores: SegmentationScores, path: str | os.PathLike) -> Path:
    """Row-normalised confusion matrix: rows true class, columns predicted class plus "other"."""
    names = list(scores.per_class)
    shares = row_normalised(scores.matrix)
    figure = _new_figure(9.0, 8.0)
    axes = figure.add_subplot()
    image = axes.imshow(np.ma.masked_invalid(shares), cmap="Blues", vmin=0.0, vmax=1.0)
    for (row, col), share in np.ndenumerate(shares):
        if np.isfinite(share) and share >= 0.01:
            axes.text(
                col,
                row,
                f"{share:.2f}",
                ha="center",
                va="center",
                fontsize=5,
                color="white" if share > 0.5 else "black",
            )
    axes.set_xticks(np.arange(len(names) + 1), names + ["other"], rotation=90, fontsize=7)
    axes.set_yticks(np.arange(len(names)), names, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("ground truth")
    axes.set_title("Confusion matrix (rows normalised)")
    figure.colorbar(image, ax=axes, shrink=0.8)
    return _save_atomically(figure, Path(path))


def write_plots(scores: SegmentationScores, out_dir: str | os.PathLike) -> list[Path]:
    """Both charts into ``out_dir`` (created if needed); returns their paths."""
    out = Path(out_dir)
    return [plot_class_iou(scores, out / CLASS_IOU_FILE), plot_confusion_matrix(scores, out / CONFUSION_FILE)]
