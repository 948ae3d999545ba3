"""Pairing segmented colour frames with depth images by header stamp, in whichever order they arrive, in bounded
memory.

A frame pairs with the depth image of the same stamp (``slop_ns`` 0), or with the nearest one within ``slop_ns``.
A frame is decided once no nearer depth image can come: depth images of one camera arrive in stamp order, so once
one at or after the frame's stamp is here the nearest is known. Until then the frame waits, at most
``WAITING_FRAMES`` of them (the oldest is decided with what is here). The depth images kept are the
``DEPTH_IMAGES`` newest not older than the last decided frame's stamp minus the slop. A depth stamp far behind the
newest (a bag played again, a restarted driver) starts afresh.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

DEPTH_IMAGES = 10  # a third of a second at 30 Hz: depth arriving before its frame is segmented waits here
WAITING_FRAMES = 3  # segmented frames waiting for a depth image that is late
RESTART_NS = 1_000_000_000  # a depth stamp this far behind the newest one starts the pairing afresh


@dataclass(frozen=True)
class Decision:
    """A frame decided: paired with ``depth`` (None: no depth image of its stamp, or within the slop)."""

    frame: Any
    frame_stamp_ns: int
    depth: Any | None


class StampPairing:
    """Pairs frames and depth images of one camera (thread-safe: the depth subscription and the node's output
    stage feed it). :meth:`add_frame` and :meth:`add_depth` return the frames they decided."""

    def __init__(self, slop_ns: int = 0, depth_images: int = DEPTH_IMAGES, waiting_frames: int = WAITING_FRAMES):
        self.slop_ns = int(slop_ns)
        self._capacity, self._waiting_capacity = depth_images, waiting_frames
        self._depth: list[tuple[int, Any]] = []  # (stamp, depth image), in arrival (= stamp) order
        self._waiting: list[tuple[int, Any]] = []  # (stamp, frame) in stamp order
        self._newest: int | None = None
        self._lock = threading.Lock()

    def add_depth(self, stamp_ns: int, depth: Any) -> list[Decision]:
        """A depth image arrived; returns the waiting frames it decided."""
        with self._lock:
            if self._newest is not None and stamp_ns < self._newest - RESTART_NS:
                self._depth, self._newest = [], None
            self._newest = stamp_ns if self._newest is None else max(stamp_ns, self._newest)
            self._depth.append((stamp_ns, depth))
            if len(self._depth) > self._capacity:
                self._depth.pop(0)
            return self._decide_ready()

    def add_frame(self, stamp_ns: int, frame: Any) -> list[Decision]:
        """A segmented frame is ready; returns the frames decided (this one, when its depth is known)."""
        with self._lock:
            self._waiting.append((stamp_ns, frame))
            self._waiting.sort(key=lambda item: item[0])
            decided = []
            while len(self._waiting) > self._waiting_capacity:
                decided.append(self._decide(*self._waiting.pop(0)))
            return decided + self._decide_ready()

    def clear(self) -> list[Decision]:
        """Forget the depth images; returns the waiting frames, undecided until now, without depth."""
        with self._lock:
            waiting, self._waiting, self._depth, self._newest = self._waiting, [], [], None
            return [Decision(frame, stamp, None) for stamp, frame in waiting]

    def _decide_ready(self) -> list[Decision]:
        decided = []
        while self._waiting and self._newest is not None and self._newest >= self._waiting[0][0]:
            decided.append(self._decide(*self._waiting.pop(0)))
        return decided

    def _decide(self, stamp: int, frame: Any) -> Decision:
        """Pair a frame with the nearest depth image within the slop (ties: the earlier); forget older ones."""
        near = [(abs(depth_stamp - stamp), index) for index, (depth_stamp, _) in enumerate(self._depth)
                if abs(depth_stamp - stamp) <= self.slop_ns]
        depth = self._depth[min(near)[1]][1] if near else None
        self._depth = [item for item in self._depth if item[0] >= stamp - self.slop_ns]
        return Decision(frame, stamp, depth)
