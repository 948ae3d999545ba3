"""The labelled clouds of an offline replay: a bag's registered depth image and its camera_info, paired with the
segmented frames by header stamp as the node pairs them (:mod:`liteseg_ros.depth`), written to the output bag under
``/liteseg/points`` with the depth image's header."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from liteseg_ros.depth.camera import Intrinsics
from liteseg_ros.depth.cloud import Cloud, CloudMaker
from liteseg_ros.depth.images import depth_image_from_msg
from liteseg_ros.depth.pairing import Decision, StampPairing
from liteseg_ros.errors import ImageError
from liteseg_ros.logs import get_logger

LOG = get_logger(__name__)


@dataclass
class DepthCounts:
    """What the depth of a replay gave: clouds written, frames without a depth image, depth images without a cloud
    (unusable image or camera_info), and the last problem."""

    clouds: int = 0
    unpaired: int = 0
    unusable: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, counter: str, text: str) -> None:
        setattr(self, counter, getattr(self, counter) + 1)
        if text not in self.problems:
            LOG.warning("no cloud: %s", text)
            self.problems.append(text)


class DepthReplay:
    """Pairs a replay's segmented frames with the bag's depth images and writes their clouds with ``write(timestamp,
    header, cloud)``."""

    def __init__(self, palette: np.ndarray, slop_s: float, write: Any):
        self.maker, self.write = CloudMaker(palette), write
        self.pairing = StampPairing(round(slop_s * 1e9), waiting_frames=16)
        self.intrinsics: Intrinsics | None = None
        self.shape: tuple[int, int] | None = None
        self.counts = DepthCounts()

    def label_shape(self) -> tuple[int, int] | None:
        """The size a frame's labels are computed at: the last depth image's, else its camera_info's."""
        if self.shape is None and self.intrinsics is not None:
            return self.intrinsics.height, self.intrinsics.width
        return self.shape

    def on_camera_info(self, msg: Any) -> None:
        try:
            self.intrinsics = Intrinsics.from_camera_info(msg)
        except ImageError as error:
            self.intrinsics = None
            self.counts.problem("unusable", str(error))

    def on_depth(self, timestamp_ns: int, stamp_ns: int, msg: Any) -> None:
        try:
            depth = depth_image_from_msg(msg, stamp_ns)
        except ImageError as error:
            self.counts.problem("unusable", f"depth image: {error}")
            return
        self.shape = depth.shape
        self._decided(self.pairing.add_depth(stamp_ns, (timestamp_ns, msg.header, depth)))

    def on_frame(self, stamp_ns: int, labels: np.ndarray, confidence: np.ndarray | None) -> None:
        self._decided(self.pairing.add_frame(stamp_ns, (labels, confidence)))

    def finish(self) -> DepthCounts:
        """Decide the frames still waiting (no depth image came for them)."""
        self._decided(self.pairing.clear())
        return self.counts

    def _decided(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            if decision.depth is None:
                self.counts.problem("unpaired", "a frame has no depth image of its stamp (or within --depth-slop)")
                continue
            timestamp, header, depth = decision.depth
            if self.intrinsics is None:
                self.counts.problem("unusable", "no usable camera_info of the depth image before it")
                continue
            try:
                cloud: Cloud = self.maker.make(depth, self.intrinsics, *decision.frame)
            except ImageError as error:
                self.counts.problem("unusable", str(error))
                continue
            self.write(timestamp, header, cloud)
            self.counts.clouds += 1
