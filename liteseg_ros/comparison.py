"""Old model or new: several models scored on the same frames, one table (per-class IoU, a column per model, the
difference of the last from the first), on the classes the ground truth and every model share by name.

Each model is scored on the shared classes only: ground truth of a class some model lacks is left out (for every
model alike), and a prediction of a class that is not shared counts as wrong. When every model has the ground
truth's classes, that is each model's plain class IoU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from liteseg_ros.classes import IGNORE_INDEX, ClassSet
from liteseg_ros.errors import DatasetError
from liteseg_ros.metrics import ConfusionMatrix, SegmentationScores


@dataclass(frozen=True)
class SharedClasses:
    """The classes compared (in the ground truth's order) and what each side has that is not compared."""

    names: tuple[str, ...]
    truth: ClassSet
    left_out: dict[str, list[str]] = field(default_factory=dict)  # "ground truth" / a model's name -> class names

    @classmethod
    def of(cls, truth: ClassSet, models: dict[str, ClassSet]) -> "SharedClasses":
        """The classes of ``truth`` every model of ``models`` (name -> published class set) has; DatasetError for
        none."""
        shared = tuple(name for name in truth.names if all(name in classes.names for classes in models.values()))
        if not shared:
            raise DatasetError(f"the ground truth ({', '.join(truth.names)}) and the models share no class name: give "
                               "a model a class map into the ground truth's classes (--class-map)")
        left_out = {"ground truth": [n for n in truth.names if n not in shared]}
        left_out.update({name: [n for n in classes.names if n not in shared] for name, classes in models.items()})
        return cls(shared, truth, {side: names for side, names in left_out.items() if names})

    @property
    def complete(self) -> bool:
        """Whether every class of every side is compared."""
        return not self.left_out


class SharedConfusion:
    """One model's pixel counts over the shared classes (ground truth and predictions mapped by name)."""

    def __init__(self, shared: SharedClasses, model: ClassSet):
        colors = tuple(shared.truth.colors[shared.truth.names.index(name)] for name in shared.names)
        self.matrix = ConfusionMatrix(ClassSet(shared.names, colors))
        self.truth_lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
        self.model_lut = np.full(256, len(shared.names), dtype=np.uint8)  # outside the classes: "other"
        for index, name in enumerate(shared.names):
            self.truth_lut[shared.truth.names.index(name)] = index
            self.model_lut[model.names.index(name)] = index

    def update(self, truth: np.ndarray, prediction: np.ndarray) -> None:
        """Count one frame: ground truth ids of the truth's class set, prediction ids of the model's."""
        self.matrix.update(self.truth_lut[truth], self.model_lut[prediction])

    def scores(self) -> SegmentationScores:
        return self.matrix.scores()


@dataclass(frozen=True)
class ModelScores:
    """One model's scores in a comparison: per-class IoU of the compared classes, their mean, the frames."""

    weights: str
    per_class: dict[str, float | None]
    frames: int
    note: str = ""  # how it ran, e.g. "class map class_map_robot.yaml, input 360x640"

    @classmethod
    def of(cls, weights: str, scores: SegmentationScores, names: Sequence[str], note: str = "") -> "ModelScores":
        """The scores of the classes ``names`` (the shared ones) of one evaluation."""
        return cls(weights, {name: scores.per_class.get(name) for name in names}, scores.frames, note)

    @property
    def miou(self) -> float | None:
        """The mean IoU of the compared classes (those with a defined IoU)."""
        values = [value for value in self.per_class.values() if value is not None]
        return float(np.mean(values)) if values else None

    def to_dict(self) -> dict[str, Any]:
        return {"weights": self.weights, "miou": self.miou, "per_class": dict(self.per_class), "frames": self.frames,
                "note": self.note}


def comparison_dict(models: Sequence[ModelScores], shared: SharedClasses) -> dict[str, Any]:
    """The JSON form: ``{"models": [{"weights", "miou", "per_class", ...}], "classes": [...], "left_out": {...}}``."""
    return {"models": [model.to_dict() for model in models], "classes": list(shared.names),
            "left_out": dict(shared.left_out)}


def comparison_table(models: Sequence[ModelScores], shared: SharedClasses) -> str:
    """Per-class IoU, a column per model, and the difference of the last model from the first."""
    def cell(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    def difference(first: float | None, last: float | None) -> str:
        return "n/a" if first is None or last is None else f"{last - first:+.3f}"

    header = ["class"] + [f"{index}: {model.weights}" for index, model in enumerate(models, 1)] + ["difference"]
    rows = [[name] + [cell(m.per_class[name]) for m in models]
            + [difference(models[0].per_class[name], models[-1].per_class[name])] for name in shared.names]
    rows.append(["mIoU"] + [cell(m.miou) for m in models] + [difference(models[0].miou, models[-1].miou)])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]
    notes = [f"{index}: {model.note}" for index, model in enumerate(models, 1) if model.note]
    frames = models[0].frames
    lines += ["", f"{frames} frames; the difference is model {len(models)} minus model 1."]
    if not shared.complete:
        lines.append("Compared on the classes all share; left out: " + "; ".join(
            f"{side}: {', '.join(names)}" for side, names in shared.left_out.items()) + ".")
    return "\n".join(lines + notes) + "\n"
