"""The report of one model replayed over several recordings: a row per bag (frames, frames with ground truth, its
mIoU), and the fleet's per-class IoU and mIoU from the bags' confusion matrices summed pixel for pixel (not an
average of their mIoUs). Written as ``OUT/report.json`` and ``OUT/report.md`` beside one folder per bag."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liteseg_ros.classes import ClassSet
from liteseg_ros.files import write_text
from liteseg_ros.metrics import ConfusionMatrix
from liteseg_ros.replay.report import ReplayReport


@dataclass
class FleetReport:
    """One model over several bags; ``problems`` names the bags that could not be replayed, and why."""

    model: str
    classes: ClassSet
    engine: str
    bags: list[ReplayReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def confusion(self) -> ConfusionMatrix | None:
        """The bags' confusion matrices summed (None when no bag had ground truth)."""
        matrices = [report for report in self.bags if report.confusion is not None]
        if not matrices:
            return None
        total = ConfusionMatrix(self.classes)
        for report in matrices:
            total.matrix += np.asarray(report.confusion, dtype=np.int64)
            total.frames += report.gt_frames
        return total

    def to_dict(self) -> dict[str, Any]:
        confusion = self.confusion()
        scores = confusion.scores().to_dict() if confusion is not None else {}
        return {"model": self.model, "engine": self.engine, "miou": scores.get("miou"),
                "category_miou": scores.get("category_miou"), "per_class": scores.get("per_class", {}),
                "frames": sum(report.frames for report in self.bags),
                "gt_frames": sum(report.gt_frames for report in self.bags), "classes": self.classes.to_dict(),
                "bags": [{"bag": report.bag, "image_topic": report.image_topic, "frames": report.frames,
                          "gt_frames": report.gt_frames, "rejected_frames": report.rejected_frames,
                          "miou": report.miou, "interrupted": report.interrupted} for report in self.bags],
                "problems": list(self.problems),
                "interrupted": any(report.interrupted for report in self.bags)}

    def to_markdown(self) -> str:
        document = self.to_dict()
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        lines = [f"# liteseg replay report: {len(self.bags)} recordings ({self.engine})", "",
                 f"- model: {self.model}",
                 f"- frames: {document['frames']}, with ground truth {document['gt_frames']}",
                 f"- class mIoU over every bag's pixels: {fmt(document['miou'])}"]
        lines += [f"- not replayed: {problem}" for problem in self.problems]
        lines += ["", "| bag | topic | frames | with ground truth | class mIoU |", "|---|---|---|---|---|"]
        lines += [f"| `{Path(row['bag']).name}` | `{row['image_topic']}` | {row['frames']} | {row['gt_frames']} | "
                  f"{fmt(row['miou'])} |" for row in document["bags"]]
        if document["per_class"]:
            lines += ["", "| class | IoU (every bag) |", "|---|---|"]
            lines += [f"| {name} | {fmt(iou)} |" for name, iou in document["per_class"].items()]
        return "\n".join(lines) + "\n"

    def write(self, directory: Path) -> None:
        write_text(directory / "report.json", json.dumps(self.to_dict(), indent=2) + "\n")
        write_text(directory / "report.md", self.to_markdown())
