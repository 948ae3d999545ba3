"""Header stamps: their arithmetic, and the one join of two streams by stamp.

The join pairs each *frame* (a segmented colour frame, a predicted mask, a camera image) with the *match* of the same
stamp (``slop_ns`` 0: a depth image, a ground-truth label image), or the nearest one within ``slop_ns``, in
whichever order they arrive, in bounded memory. A frame is decided once no nearer match can come: matches of one
stream arrive in stamp order, so once one at or after the frame's stamp is here the nearest is known. Until then the
frame waits, at most ``waiting_frames`` of them (the oldest is decided with what is here). The matches kept are the
``matches`` newest not older than the last decided frame's stamp minus the slop. A match stamp far behind the newest
(a bag played again, a restarted driver) starts afresh. Imports nothing beyond the standard library.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from typing import Any

NS_PER_S = 1_000_000_000
RESTART_NS = NS_PER_S  # a match stamp this far behind the newest one starts the join afresh


def stamp_ns(header: Any) -> int:
    """A message header's stamp in nanoseconds (ROS 2 ``sec`` / ``nanosec``)."""
    return int(header.stamp.sec) * NS_PER_S + int(header.stamp.nanosec)


def stamp_seconds(header: Any) -> float:
    """A message header's stamp in seconds."""
    return stamp_ns(header) / NS_PER_S


def stamp_parts(nanoseconds: int) -> tuple[int, int]:
    """(sec, nanosec) of a stamp in nanoseconds, as a header holds it."""
    return divmod(int(nanoseconds), NS_PER_S)


def serialized_stamp_ns(rawdata: bytes) -> int:
    """The header stamp of a serialised (little-endian CDR) message that starts with a std_msgs/Header."""
    sec, nanosec = struct.unpack_from("<iI", rawdata, 4)  # after the 4-byte encapsulation header
    return sec * NS_PER_S + nanosec


@dataclass(frozen=True)
class Decision:
    """A frame decided: joined with ``match`` (None: no match of its stamp, or within the slop)."""

    frame: Any
    frame_stamp_ns: int
    match: Any | None


class StampJoin:
    """Joins frames and matches by stamp (see the module docstring); thread-safe (a subscription and the node's
    output stage may feed one). :meth:`add_frame` and :meth:`add_match` return the frames they decided."""

    def __init__(self, slop_ns: int = 0, matches: int = 10, waiting_frames: int = 3):
        self.slop_ns = int(slop_ns)
        self._capacity, self._waiting_capacity = matches, waiting_frames
        self._matches: list[tuple[int, Any]] = []  # (stamp, match), in arrival (= stamp) order
        self._waiting: list[tuple[int, Any]] = []  # (stamp, frame) in stamp order
        self._newest: int | None = None
        self._lock = threading.Lock()

    def add_match(self, stamp_ns: int, match: Any) -> list[Decision]:
        """A match arrived; returns the waiting frames it decided."""
        with self._lock:
            if self._newest is not None and stamp_ns < self._newest - RESTART_NS:
                self._matches, self._newest = [], None
            self._newest = stamp_ns if self._newest is None else max(stamp_ns, self._newest)
            self._matches.append((stamp_ns, match))
            if len(self._matches) > self._capacity:
                self._matches.pop(0)
            return self._decide_ready()

    def add_frame(self, stamp_ns: int, frame: Any) -> list[Decision]:
        """A frame is ready; returns the frames decided (this one, when its match is known)."""
        with self._lock:
            self._waiting.append((stamp_ns, frame))
            self._waiting.sort(key=lambda item: item[0])
            decided = []
            while len(self._waiting) > self._waiting_capacity:
                decided.append(self._decide(*self._waiting.pop(0)))
            return decided + self._decide_ready()

    def clear(self) -> list[Decision]:
        """Forget the matches; returns the waiting frames, undecided until now, without a match."""
        with self._lock:
            waiting, self._waiting, self._matches, self._newest = self._waiting, [], [], None
            return [Decision(frame, stamp, None) for stamp, frame in waiting]

    def _decide_ready(self) -> list[Decision]:
        decided = []
        while self._waiting and self._newest is not None and self._newest >= self._waiting[0][0]:
            decided.append(self._decide(*self._waiting.pop(0)))
        return decided

    def _decide(self, stamp: int, frame: Any) -> Decision:
        """Join a frame with the nearest match within the slop (ties: the earlier); forget older ones."""
        near = [(abs(match_stamp - stamp), index) for index, (match_stamp, _) in enumerate(self._matches)
                if abs(match_stamp - stamp) <= self.slop_ns]
        match = self._matches[min(near)[1]][1] if near else None
        self._matches = [item for item in self._matches if item[0] >= stamp - self.slop_ns]
        return Decision(frame, stamp, match)
