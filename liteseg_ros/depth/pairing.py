"""One camera's depth input, as the node and replay both run it: its camera_info (validated), its registered depth
images, and the segmented colour frames, joined by header stamp (:class:`~liteseg_ros.stamps.StampJoin`: exact, or
nearest within the slop, in either order, bounded), each pair made into a labelled cloud (:mod:`.cloud`).

What cannot give a cloud (a depth image or camera_info that is unusable, a frame without a depth image) is counted
(:class:`DepthCounts`) with a warning per kind of problem at most every ``warn_every_s`` seconds, saying what to fix;
the next good pair gives a cloud. Whichever of a frame and its depth image comes second completes the pair, so a
cloud may be made on either caller's thread: a lock keeps them apart. No ROS: the messages are read by their fields.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from liteseg_ros.depth.camera import Intrinsics
from liteseg_ros.depth.cloud import Cloud, CloudMaker
from liteseg_ros.depth.images import depth_image_from_msg
from liteseg_ros.errors import ImageError
from liteseg_ros.stamps import NS_PER_S, Decision, StampJoin

DEPTH_IMAGES = 10  # a third of a second at 30 Hz: depth arriving before its frame is segmented waits here
WAITING_FRAMES = 3  # segmented frames waiting for a depth image that is late
WARN_EVERY_S = 10.0
COUNTERS = ("depth_images", "clouds", "unpaired", "unusable")


@dataclass
class DepthCounts:
    """Depth images received, clouds made, frames without a depth image (unpaired), depth images or camera_infos
    without a cloud (unusable), and the last problem of each kind; every method may be called from any thread."""

    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    problems: dict[str, str] = field(default_factory=dict)  # kind -> its last text
    last_problem: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, counter: str, kind: str = "", problem: str = "") -> None:
        """One more of ``counter``; ``problem`` (of ``kind``) says why there is no cloud."""
        with self._lock:
            self.counters[counter] += 1
            if problem:
                self.problems[kind] = self.last_problem = problem

    def snapshot(self) -> tuple[dict[str, int], str]:
        """(the counters, the last problem)."""
        with self._lock:
            return dict(self.counters), self.last_problem


@dataclass(frozen=True)
class SegmentedFrame:
    """What a cloud needs of a segmented colour frame: the mask (and confidence) at the depth image's size."""

    labels: np.ndarray
    confidence: np.ndarray | None


class DepthPairing:
    """One camera's depth state: feed it :meth:`on_camera_info`, :meth:`on_depth` and :meth:`on_frame`; each pair's
    cloud goes to ``emit(cloud, tag)`` (``tag``: what :meth:`on_depth` was given with the depth image, e.g. its
    header). ``depth_topic`` / ``info_topic`` and ``slop_name`` (the setting that sets the slop) name things in the
    warnings, ``warn(text)`` logs them; ``cloud_out`` is the maker's ``out`` (a reusable buffer)."""

    def __init__(self, maker: CloudMaker, slop_s: float, emit: Callable[[Cloud, Any], None], *,
                 depth_topic: str, info_topic: str, slop_name: str, warn: Callable[[str], None],
                 cloud_out: Callable[..., np.ndarray] | None = None, warn_every_s: float = WARN_EVERY_S):
        self.maker, self.slop_s, self.emit, self.cloud_out = maker, float(slop_s), emit, cloud_out
        self.depth_topic, self.slop_name, self.warn, self.warn_every_s = depth_topic, slop_name, warn, warn_every_s
        self.join = StampJoin(round(self.slop_s * NS_PER_S), matches=DEPTH_IMAGES, waiting_frames=WAITING_FRAMES)
        self.intrinsics: Intrinsics | str = f"no camera_info received on {info_topic} yet"
        self.shape: tuple[int, int] | None = None  # of the last depth image
        self.counts = DepthCounts()
        self._lock = threading.Lock()
        self._warned: dict[str, float] = {}  # kind of problem -> when it was last logged

    def depth_shape(self) -> tuple[int, int] | None:
        """The size to compute a frame's labels at for its cloud: the last depth image's, else its camera_info's,
        else None (no depth size known yet)."""
        if self.shape is not None:
            return self.shape
        return (self.intrinsics.height, self.intrinsics.width) if isinstance(self.intrinsics, Intrinsics) else None

    def on_camera_info(self, msg: Any) -> None:
        """The depth image's camera_info: its intrinsics, or why they cannot be used (counted)."""
        try:
            self.intrinsics = Intrinsics.from_camera_info(msg)
        except ImageError as error:
            self.intrinsics = str(error)
            self._problem("unusable", "camera_info", str(error))

    def on_depth(self, msg: Any, stamp_ns: int, tag: Any) -> None:
        """A depth image (a sensor_msgs/Image) of header stamp ``stamp_ns``; ``tag`` goes with its cloud."""
        self.counts.count("depth_images")
        try:
            depth = depth_image_from_msg(msg, stamp_ns)
        except ImageError as error:
            self._problem("unusable", "depth image", f"depth image on {self.depth_topic}: {error}")
            return
        self.shape = depth.shape
        self._decided(self.join.add_match(stamp_ns, (tag, depth)))

    def on_frame(self, stamp_ns: int, labels: np.ndarray, confidence: np.ndarray | None) -> None:
        """A segmented colour frame's labels (and confidence) at the depth size: its cloud now, or when its depth
        image comes."""
        self._decided(self.join.add_frame(stamp_ns, SegmentedFrame(labels, confidence)))

    def clear(self) -> None:
        """Forget the depth images; the frames still waiting are decided without one."""
        self._decided(self.join.clear())

    def _decided(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            if decision.match is None:
                within = f"within {self.slop_name} {self.slop_s:g} s" if self.slop_s else \
                    f"with its stamp ({self.slop_name} 0: equal stamps)"
                self._problem("unpaired", "unpaired", f"no depth image on {self.depth_topic} {within} for the frame "
                                                      f"at {decision.frame_stamp_ns / NS_PER_S:.6f} s; is the depth "
                                                      f"registered to this camera and stamped like it? (raise "
                                                      f"{self.slop_name} for a nearest match)")
            else:
                self._make(decision.frame, *decision.match)

    def _make(self, frame: SegmentedFrame, tag: Any, depth: Any) -> None:
        intrinsics = self.intrinsics
        if not isinstance(intrinsics, Intrinsics):
            self._problem("unusable", "camera_info", intrinsics)
            return
        with self._lock:
            try:
                cloud = self.maker.make(depth, intrinsics, frame.labels, frame.confidence, out=self.cloud_out)
            except ImageError as error:
                self._problem("unusable", "sizes", str(error))
                return
            self.emit(cloud, tag)
        self.counts.count("clouds")

    def _problem(self, counter: str, kind: str, text: str) -> None:
        """Count a problem; warn about each kind of problem at most every ``warn_every_s`` seconds."""
        self.counts.count(counter, kind, text)
        now = time.monotonic()
        if now - self._warned.get(kind, -self.warn_every_s) >= self.warn_every_s:
            self._warned[kind] = now
            self.warn(text)
