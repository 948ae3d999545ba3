"""The replay report: frames, throughput, latency percentiles and accuracy, as JSON and markdown."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liteseg_ros.files import write_text


def percentiles_ms(seconds: list[float]) -> dict[str, float | None]:
    """p50 / p95 / max of a list of durations in seconds, in milliseconds (None when empty)."""
    if not seconds:
        return {"p50": None, "p95": None, "max": None}
    values = np.asarray(seconds) * 1000.0
    return {"p50": round(float(np.percentile(values, 50)), 3), "p95": round(float(np.percentile(values, 95)), 3),
            "max": round(float(values.max()), 3)}


@dataclass
class ReplayReport:
    """What one replay measured. ``miou`` / ``category_miou`` are None without ground truth."""

    bag: str
    image_topic: str
    mode: str  # "offline" (Segmenter called directly) or "live" (through a running segmentation_node)
    model: str
    frames: int = 0
    fps: float | None = None
    latency_ms: dict[str, float | None] = field(default_factory=lambda: percentiles_ms([]))
    miou: float | None = None
    category_miou: float | None = None
    gt_frames: int = 0
    rejected_frames: int = 0
    dropped_frames: int | None = None  # live mode: published but never answered by the node
    published_frames: int | None = None
    interrupted: bool = False
    output_bag: str | None = None
    latency_definition: str = ""
    per_class: dict[str, float | None] = field(default_factory=dict)
    per_category: dict[str, float | None] = field(default_factory=dict)
    classes: dict[str, Any] = field(default_factory=dict)  # the published class set: names, colours
    class_map: dict[str, Any] | None = None  # the class map that made it from the model's, if any
    depth: dict[str, Any] | None = None  # the depth topic and its counts (clouds, unpaired, unusable), if any
    confusion: list[list[int]] | None = None  # the pixel counts the scores come from (rows: truth), to sum bags

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_markdown(self) -> str:
        lat = self.latency_ms
        fmt = lambda v: "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
        lines = [
            f"# liteseg replay report ({self.mode})",
            "",
            f"- bag: `{self.bag}`, image topic `{self.image_topic}`",
            f"- model: {self.model}",
            f"- frames: {self.frames} (rejected {self.rejected_frames}"
            + (f", published {self.published_frames}, dropped {self.dropped_frames}" if self.mode == "live" else "")
            + ")"
            + (" - INTERRUPTED" if self.interrupted else ""),
            f"- throughput: {fmt(self.fps)} FPS",
            f"- latency ({self.latency_definition}): p50 {fmt(lat['p50'])} ms, p95 {fmt(lat['p95'])} ms, "
            f"max {fmt(lat['max'])} ms",
            f"- class mIoU: {fmt(self.miou)}, category mIoU: {fmt(self.category_miou)} over {self.gt_frames} frames",
        ]
        if self.depth:
            lines.append(f"- depth `{self.depth['topic']}`: {self.depth['clouds']} clouds on /liteseg/points "
                         f"({self.depth['unpaired_frames']} frames without a depth image, "
                         f"{self.depth['unusable_depth']} depth images unusable)")
        if self.classes:
            lines.append(f"- classes: {', '.join(self.classes['names'])}"
                         + (f" (class map {self.class_map['path']})" if self.class_map else ""))
        if self.per_class:
            lines += ["", "| class | IoU |", "|---|---|"] + [f"| {k} | {fmt(v)} |" for k, v in self.per_class.items()]
        if self.per_category:
            lines += ["", "| category | IoU |", "|---|---|"] + [
                f"| {k} | {fmt(v)} |" for k, v in self.per_category.items()
            ]
        return "\n".join(lines) + "\n"

    def write(self, directory: Path) -> tuple[Path, Path]:
        """Write report.json and report.md into ``directory`` (each atomically)."""
        paths = directory / "report.json", directory / "report.md"
        for path, text in zip(paths, (json.dumps(self.to_dict(), indent=2) + "\n", self.to_markdown())):
            write_text(path, text)
        return paths

    def add_depth(self, topic: str, counts: Any) -> None:
        """What the bag's depth gave (a :class:`liteseg_ros.depth.pairing.DepthCounts`)."""
        counters, _ = counts.snapshot()
        self.depth = {"topic": topic, "clouds": counters["clouds"], "unpaired_frames": counters["unpaired"],
                      "unusable_depth": counters["unusable"], "problems": list(counts.problems.values())}

    def add_scores(self, confusion: Any, gt_frames: int) -> None:
        """The scores of a :class:`~liteseg_ros.metrics.ConfusionMatrix` over ``gt_frames`` frames, and its
        counts."""
        scores = confusion.scores().to_dict()
        self.confusion = confusion.matrix.tolist()
        self.miou, self.category_miou = scores["miou"], scores["category_miou"]
        self.per_class, self.per_category = scores["per_class"], scores["per_category"]
        self.gt_frames = gt_frames
