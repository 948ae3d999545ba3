"""What ``liteseg-mine`` writes into its output folder (staged beside it and renamed into place when complete):

- ``images/<bag>_<stamp>.png``: the chosen frames, lossless, as a labelling tool uploads them;
- ``selection.csv``: ``image, bag, topic, stamp_ns, score, uncertainty, distance, reason`` per frame;
- ``cvat_annotations.zip``: CVAT's "Segmentation mask 1.1" with the model's masks (:mod:`liteseg_ros.labelling
  .voc`), for "Upload annotations" on a task made from ``images/``;
- ``label_studio_tasks.json`` and ``label_studio_config.xml``: Label Studio tasks with the masks as predictions,
  and the labelling interface to paste into the project;
- ``report.md`` with ``thumbnails/``: what was chosen and why.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from liteseg_ros.classes import ClassSet
from liteseg_ros.files import atomic_folder
from liteseg_ros.labelling import label_studio
from liteseg_ros.labelling.voc import LABELMAP, Labelmap, mask_images, split_list
from liteseg_ros.mining.recordings import Frame
from liteseg_ros.mining.selection import Choice

CSV_COLUMNS = ("image", "bag", "topic", "stamp_ns", "score", "uncertainty", "distance", "reason")
THUMBNAIL_WIDTH = 240
CVAT_SUBSET = "default"


@dataclass(frozen=True)
class MinedFrame:
    """A chosen frame, its file stem and the model's mask of it (class ids at the frame's size)."""

    name: str
    frame: Frame
    mask: np.ndarray
    choice: Choice


@dataclass(frozen=True)
class MiningRun:
    """What the report tells about the run: the model, its classes, the rule's knobs and the counts."""

    model: str
    classes: ClassSet
    rule: str
    counts: dict[str, Any]
    image_url: str


def rgb_image(frame: Frame) -> Image.Image:
    """The frame as a PIL image (RGB, or L for a mono8 camera)."""
    if frame.encoding == "mono8":
        return Image.fromarray(np.ascontiguousarray(frame.image[..., 0] if frame.image.ndim == 3 else frame.image))
    pixels = frame.image[..., ::-1] if frame.encoding == "bgr8" else frame.image
    return Image.fromarray(np.ascontiguousarray(pixels), "RGB")


def write_outputs(out: Path, mined: list[MinedFrame], run: MiningRun, replace: bool) -> Path:
    """Write every file of the module docstring into ``out`` at once."""
    with atomic_folder(out, replace=replace) as root:
        (root / "images").mkdir()
        (root / "thumbnails").mkdir()
        for item in mined:
            image = rgb_image(item.frame)
            image.save(root / "images" / f"{item.name}.png")
            image.thumbnail((THUMBNAIL_WIDTH, THUMBNAIL_WIDTH))
            image.convert("RGB").save(root / "thumbnails" / f"{item.name}.jpg", quality=85)
        _write_csv(root / "selection.csv", mined)
        (root / "cvat_annotations.zip").write_bytes(cvat_archive(mined, run.classes))
        tasks = [label_studio.task(run.image_url + f"{item.name}.png", item.mask, run.classes, run.model,
                                   item.choice.value, {"bag": str(item.frame.bag), "stamp_ns": item.frame.stamp_ns})
                 for item in mined]
        (root / "label_studio_tasks.json").write_text(json.dumps(tasks) + "\n", encoding="utf-8")
        (root / "label_studio_config.xml").write_text(label_studio.labelling_config(run.classes), encoding="utf-8")
        (root / "report.md").write_text(report(mined, run), encoding="utf-8")
    return out


def _write_csv(path: Path, mined: list[MinedFrame]) -> None:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(CSV_COLUMNS)
        for item in mined:
            choice = item.choice
            writer.writerow([f"{item.name}.png", str(item.frame.bag), item.frame.topic, item.frame.stamp_ns,
                             f"{choice.value:.6f}", f"{choice.uncertainty:.6f}",
                             "" if choice.distance is None else f"{choice.distance:.6f}", choice.reason])


def cvat_archive(mined: list[MinedFrame], classes: ClassSet) -> bytes:
    """CVAT's "Segmentation mask 1.1" archive of the masks (zip bytes)."""
    labelmap = Labelmap.of(classes)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        _add(archive, LABELMAP, labelmap.text().encode())
        _add(archive, split_list(CVAT_SUBSET), "".join(f"{m.name}\n" for m in mined).encode())
        for item in mined:
            for member, rgb in mask_images(labelmap, item.name, item.mask).items():
                _add(archive, member, _png(rgb))
    return buffer.getvalue()


def _add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    """A member dated 1980-01-01 (zip's epoch): the same masks give the same archive, byte for byte."""
    member = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    member.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(member, data)


def _png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def _thinning(every: float) -> str:
    return f"the first of each {every:g} s slot of the recording" if every else "every frame"


def report(mined: list[MinedFrame], run: MiningRun) -> str:
    """``report.md``: the run, the rule, and each chosen frame with its thumbnail and reason."""
    counts = run.counts
    lines = ["# Frames to label", "",
             f"- model: {run.model}; pre-labels in {len(run.classes)} classes: {', '.join(run.classes.names)}",
             f"- read {counts['messages']} messages of {counts['topic']} in {counts['bags']} recording(s); kept "
             f"{counts['kept']} ({_thinning(counts['every'])}), {counts['unreadable']} did not decode; "
             f"chose {len(mined)} of {counts['requested']} asked for" +
             (" (every other frame is of a chosen view)" if len(mined) < counts["requested"] else ""),
             f"- rule: {run.rule}",
             *([f"- not read: {'; '.join(counts['problems'])}"] if counts.get("problems") else []), "",
             "| # | frame | image | uncertainty | distance | why |", "|---|---|---|---|---|---|"]
    for number, item in enumerate(mined, 1):
        choice = item.choice
        distance = "-" if choice.distance is None else f"{choice.distance:.3f}"
        lines.append(f"| {number} | ![{item.name}](thumbnails/{item.name}.jpg) | `{item.name}.png` "
                     f"| {choice.uncertainty:.3f} | {distance} | {choice.reason} |")
    return "\n".join(lines) + "\n"
