"""The recordings named (rosbag2 folders, sqlite3 / mcap, zstd or not; ROS 1 ``.bag`` files; folders holding them)
and their camera frames, as liteseg-replay reads them (:class:`liteseg_ros.replay.bag_io.BagSource`), piece by piece
(:mod:`liteseg_ros.mining.pieces`). Frames that do not decode are counted and skipped."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from liteseg_ros.errors import BagError


@dataclass(frozen=True)
class Frame:
    """One camera frame: its recording, topic, header stamp, its key (bag, topic, receive time, and its number among
    the messages of that receive time: 0 but for ties), and pixels."""

    bag: Path
    topic: str
    stamp_ns: int
    key: tuple[str, str, int, int]
    image: np.ndarray
    encoding: str


@dataclass
class ReadCounts:
    """What reading gave: messages on the topic, frames kept after thinning, messages that did not decode."""

    messages: int = 0
    kept: int = 0
    unreadable: int = 0
    problems: list[str] = field(default_factory=list)

    def add(self, other: "ReadCounts") -> "ReadCounts":
        """Add ``other``'s counts (and its problems, up to five in all); returns self."""
        self.messages, self.kept, self.unreadable = (self.messages + other.messages, self.kept + other.kept,
                                                     self.unreadable + other.unreadable)
        self.problems = (self.problems + other.problems)[:5]
        return self


def recordings(paths: list[str | os.PathLike], strict: bool = True) -> list[Path]:
    """The recordings named: bags, and the bags in a folder that is not one itself (sorted); BagError for a path
    that does not exist or a folder without a recording (with ``strict`` False such a folder is kept as it is,
    for the bag reader to say what it is)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.exists() and strict:
            raise BagError(f"{path} does not exist: give rosbag2 folders, ROS 1 .bag files or folders holding them")
        if not path.is_dir() or (path / "metadata.yaml").is_file():
            found.append(path)
            continue
        inside = sorted(p for p in path.iterdir() if p.suffix == ".bag" or (p / "metadata.yaml").is_file())
        if not inside and strict:
            raise BagError(f"{path} holds no recording (rosbag2 folders with metadata.yaml, or .bag files)")
        found += inside or [path]
    return found


def image_name(bag: Path, stamp: int, taken: set[str]) -> str:
    """A file stem unique across the recordings: the bag's name and the frame's stamp (then _2, _3, ...)."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", bag.stem if bag.is_file() else bag.name).strip("._") or "bag"
    name, number = f"{base}_{stamp}", 1
    while name in taken:
        number += 1
        name = f"{base}_{stamp}_{number}"
    taken.add(name)
    return name
