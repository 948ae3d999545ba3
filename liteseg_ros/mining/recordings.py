"""The camera frames of one or more recordings: rosbag2 folders (sqlite3 / mcap, zstd or not), ROS 1 ``.bag`` files
and folders holding them, read as liteseg-replay reads them (:class:`liteseg_ros.replay.bag_io.BagSource`), thinned
to one frame every ``every_s`` seconds of header stamps. Frames that do not decode are counted and skipped."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from liteseg_ros.errors import BagError, ImageError
from liteseg_ros.replay.bag_io import BagSource, decode_image
from liteseg_ros.stamps import NS_PER_S, stamp_ns


@dataclass(frozen=True)
class Frame:
    """One camera frame: its recording, topic, header stamp, position among the topic's messages, and pixels."""

    bag: Path
    topic: str
    stamp_ns: int
    position: int
    image: np.ndarray
    encoding: str

    @property
    def key(self) -> tuple[str, int]:
        return str(self.bag), self.position


@dataclass
class ReadCounts:
    """What reading gave: messages on the topic, frames kept after thinning, messages that did not decode."""

    messages: int = 0
    kept: int = 0
    unreadable: int = 0
    problems: list[str] = field(default_factory=list)


def recordings(paths: list[str | os.PathLike]) -> list[Path]:
    """The recordings named: bags, and the bags in a folder that is not one itself (sorted); BagError for none."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise BagError(f"{path} does not exist: give rosbag2 folders, ROS 1 .bag files or folders holding them")
        if path.is_file() or (path / "metadata.yaml").is_file():
            found.append(path)
            continue
        inside = sorted(p for p in path.iterdir() if p.suffix == ".bag" or (p / "metadata.yaml").is_file())
        if not inside:
            raise BagError(f"{path} holds no recording (rosbag2 folders with metadata.yaml, or .bag files)")
        found += inside
    return found


def frames(bags: list[Path], topic: str, every_s: float, counts: ReadCounts,
           wanted: set[tuple[str, int]] | None = None) -> Iterator[Frame]:
    """The frames of ``topic`` in each bag in turn, at least ``every_s`` seconds apart (0: all); with ``wanted``
    only those keys. BagError for a bag without the topic (listing its image topics)."""
    for bag in bags:
        source = BagSource(bag, image_topic=topic, depth_topic="")
        try:
            yield from _bag_frames(source, every_s, counts, wanted)
        finally:
            source.close()


def _bag_frames(source: BagSource, every_s: float, counts: ReadCounts,
                wanted: set[tuple[str, int]] | None) -> Iterator[Frame]:
    last_kept: int | None = None
    for position, message in enumerate(source.messages(only=(source.image_topic,))):
        counts.messages += 1
        if wanted is not None and (str(source.path), position) not in wanted:
            continue
        stamp = stamp_ns(message.msg.header)
        if wanted is None and last_kept is not None and 0 <= stamp - last_kept < every_s * NS_PER_S:
            continue
        try:
            image, encoding = decode_image(message)
        except ImageError as error:
            counts.unreadable += 1
            if len(counts.problems) < 5:
                counts.problems.append(f"{source.path.name} frame {position}: {error}")
            continue
        last_kept = stamp
        counts.kept += 1
        yield Frame(source.path, source.image_topic, stamp, position, image, encoding)


def image_name(bag: Path, stamp: int, taken: set[str]) -> str:
    """A file stem unique across the recordings: the bag's name and the frame's stamp (then _2, _3, ...)."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", bag.stem if bag.is_file() else bag.name).strip("._") or "bag"
    name, number = f"{base}_{stamp}", 1
    while name in taken:
        number += 1
        name = f"{base}_{stamp}_{number}"
    taken.add(name)
    return name
