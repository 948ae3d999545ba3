"""Recordings cut into pieces: the unit of work of ``liteseg-mine`` and ``liteseg-replay``, in one process or on a Ray
cluster, and the unit the score store keeps.

A piece is a time range of one topic of one bag (receive times, as the bag's index holds them, so that a reader
seeks to it). The ranges are cut from the bag's first receive time in steps of ``PIECE_FRAMES`` frames at the
topic's mean rate, rounded up to whole thinning slots: ``--every S`` keeps the first frame of each S-second slot of
the recording from the bag's start, so a slot never spans two pieces and each piece is decided alone. The same bag
and options give the same pieces, whatever engine or how many workers read them.

A bag that cannot be read (missing, not a bag, without the topic) gives no piece and a :class:`BagProblem`; one
that breaks while a piece is read keeps the frames read before, and its piece says why.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from liteseg_ros.errors import BagError, ImageError
from liteseg_ros.mining.recordings import Frame, ReadCounts
from liteseg_ros.replay.bag_io import IMAGE_TYPES, BagSource, decode_image, looks_like_label_topic
from liteseg_ros.stamps import NS_PER_S, stamp_ns

PIECE_FRAMES = 256  # frames of a piece, at the topic's mean rate


@dataclass(frozen=True)
class Piece:
    """A time range ``[start_ns, stop_ns)`` of ``topic`` in ``bag``, thinned to one frame per ``every_ns`` slot
    (0: every frame) counted from ``origin_ns``, the bag's first receive time; ``index`` orders the pieces of a
    run."""

    index: int
    bag: str
    topic: str
    start_ns: int
    stop_ns: int
    origin_ns: int
    every_ns: int

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def name(self) -> str:
        """``<bag name> <topic> <start>-<stop> s`` (relative to the bag's start), for messages."""
        start, stop = ((t - self.origin_ns) / NS_PER_S for t in (self.start_ns, self.stop_ns))
        return f"{Path(self.bag).name} {self.topic} {start:.1f}-{stop:.1f} s"


@dataclass(frozen=True)
class BagProblem:
    """A recording that gave no piece (or broke while read), and why."""

    bag: str
    reason: str


def bag_identity(bag: str | Path) -> dict:
    """What identifies a recording's content cheaply: its resolved path and each file's name, size and mtime."""
    path = Path(bag).resolve()
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    return {"path": str(path), "files": [[item.name, item.stat().st_size, item.stat().st_mtime_ns]
                                         for item in files if item.is_file()]}


def identity_digest(value: dict) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def bag_topics(source: BagSource, topics: tuple[str, ...]) -> list[str]:
    """The camera topics to read in one bag: those of ``topics`` it has (BagError when none), or without
    ``topics`` its one camera topic (BagError when it has several or none)."""
    images = sorted(topic for topic, kind in source.topics.items() if kind in IMAGE_TYPES)
    if topics:
        present = [topic for topic in topics if topic in source.topics]
        wrong = [topic for topic in present if source.topics[topic] not in IMAGE_TYPES]
        if wrong:
            raise BagError(f"topic {wrong[0]} carries {source.topics[wrong[0]]}, not an Image or CompressedImage")
        if not present:
            raise BagError(f"has no topic {' or '.join(topics)}; image topics: {', '.join(images) or 'none'}")
        return present
    cameras = [topic for topic in images if not looks_like_label_topic(topic)]
    if len(cameras) != 1:
        raise BagError(f"has {'no' if not cameras else 'several'} camera topics ({', '.join(images) or 'none'}): "
                       "give --topic (more than once for several)")
    return cameras


def plan_pieces(bags: list[Path], topics: tuple[str, ...], every_s: float,
                frames_per_piece: int = PIECE_FRAMES) -> tuple[list[Piece], list[BagProblem]]:
    """The pieces of every bag's camera topics (see the module docstring), and the bags that gave none."""
    pieces: list[Piece] = []
    problems: list[BagProblem] = []
    every_ns = round(every_s * NS_PER_S)
    for bag in bags:
        try:
            source = BagSource(bag, depth_topic="", choose_image=False)
        except BagError as error:
            problems.append(BagProblem(str(bag), _reason(error, bag)))
            continue
        try:
            for topic in bag_topics(source, topics):
                pieces += _topic_pieces(source, bag, topic, every_ns, frames_per_piece, len(pieces))
        except BagError as error:
            problems.append(BagProblem(str(bag), _reason(error, bag)))
        finally:
            source.close()
    return pieces, problems


def _reason(error: Exception, bag: Path) -> str:
    text = str(error)
    for prefix in (f"bag {bag} ", f"{bag} "):
        text = text[len(prefix):] if text.startswith(prefix) else text
    return text


def _topic_pieces(source: BagSource, bag: Path, topic: str, every_ns: int, frames_per_piece: int,
                  first_index: int) -> list[Piece]:
    start, stop = source.time_span_ns()
    stop = max(stop, start + 1)
    count = max(source.message_count(topic), 1)
    length = max(1, math.ceil((stop - start) * frames_per_piece / count))
    if every_ns:
        length = math.ceil(length / every_ns) * every_ns
    edges = list(range(start, stop, length)) + [stop + 1]
    return [Piece(first_index + number, str(bag), topic, low, high, start, every_ns)
            for number, (low, high) in enumerate(zip(edges, edges[1:]))]


def read_piece(piece: Piece, counts: ReadCounts, wanted: set[tuple] | None = None) -> Iterator[Frame]:
    """The frames of ``piece``: the first of each thinning slot (all with ``every_ns`` 0), decoded; with ``wanted``
    only those keys. A frame that does not decode is counted and skipped; a bag that breaks raises BagError."""
    source = BagSource(piece.bag, image_topic=piece.topic, depth_topic="")
    try:
        last_slot, last_time, ordinal = None, None, 0
        for message in source.messages(only=(piece.topic,), start_ns=piece.start_ns, stop_ns=piece.stop_ns):
            counts.messages += 1
            ordinal = ordinal + 1 if message.timestamp_ns == last_time else 0
            last_time = message.timestamp_ns
            key = (piece.bag, piece.topic, message.timestamp_ns, ordinal)
            slot = (message.timestamp_ns - piece.origin_ns) // piece.every_ns if piece.every_ns else None
            if wanted is not None and key not in wanted or wanted is None and slot is not None and slot == last_slot:
                continue
            try:
                image, encoding = decode_image(message)
            except ImageError as error:
                counts.unreadable += 1
                if len(counts.problems) < 5:
                    counts.problems.append(f"{Path(piece.bag).name} frame at {message.timestamp_ns}: {error}")
                continue
            last_slot = slot
            counts.kept += 1
            yield Frame(Path(piece.bag), piece.topic, stamp_ns(message.msg.header), key, image, encoding)
    finally:
        source.close()
