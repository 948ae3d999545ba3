"""Offline replay: every frame of a bag through the same Segmenter the node uses, as fast as possible."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liteseg_ros.depth.cloud import CloudMaker
from liteseg_ros.depth.pairing import DepthPairing
from liteseg_ros.errors import BagError, ImageError
from liteseg_ros.files import atomic_file
from liteseg_ros.logs import get_logger
from liteseg_ros.outputs import NODE_NAMESPACE, OUTPUTS
from liteseg_ros.replay.bag_io import BagSink, BagSource, decode_image, ground_truth_array
from liteseg_ros.replay.matching import StampMatcher
from liteseg_ros.replay.report import ReplayReport, percentiles_ms
from liteseg_ros.stamps import stamp_ns, stamp_seconds

LOG = get_logger(__name__)


@dataclass(frozen=True)
class ReplayOptions:
    """Validated options of one replay (offline or live)."""

    bag: Path
    out: Path
    weights: Path
    image_topic: str | None = None
    gt_topic: str | None = None
    gt_encoding: str = "labelids"
    input_size: tuple[int, int] | None = None  # None: the size the weights were trained at, as the node
    device: str = "auto"
    precision: str = "auto"
    storage: str = "sqlite3"
    compression: str = "none"  # of the output bag: none or zstd
    overlay_every: int = 0  # write every Nth overlay as PNG into OUT/overlays (0 = none)
    rate: float = 1.0  # live: multiple of the recorded rate
    clock: bool = False  # live: publish the bag's time on /clock (for a node with use_sim_time)
    node_namespace: str = NODE_NAMESPACE  # live: where the node publishes its outputs
    class_map: Path | None = None  # offline: merge the model's classes (liteseg_ros.class_map)
    depth_topic: str | None = None  # a registered depth image (None: the bag's one depth Image topic, if any)
    depth_info_topic: str | None = None  # its camera_info (None: the one beside it)
    depth_slop: float = 0.0  # seconds between colour and depth stamps to pair them (0: equal)

    @property
    def out_bag(self) -> Path:
        return self.out / "bag"


def open_bag(options: ReplayOptions) -> BagSource:
    source = BagSource(options.bag, options.image_topic, options.gt_topic, options.depth_topic,
                       options.depth_info_topic)
    if source.image_count == 0:
        source.close()
        raise BagError(f"image topic {source.image_topic} of bag {options.bag} has no messages")
    return source


def write_overlay_png(options: ReplayOptions, index: int, overlay: np.ndarray | None) -> None:
    if overlay is None or not options.overlay_every or index % options.overlay_every:
        return
    from PIL import Image

    with atomic_file(options.out / "overlays" / f"overlay_{index:06d}.png") as temporary:
        Image.fromarray(overlay).save(temporary, format="PNG")


class _Replayer:
    """State of one offline replay; ``run`` fills the report even when interrupted."""

    def __init__(self, options: ReplayOptions, segmenter, source: BagSource, sink: BagSink):
        self.options, self.segmenter, self.source, self.sink = options, segmenter, source, sink
        self.matcher = StampMatcher(options.gt_encoding, classes=segmenter.model_classes,
                                    class_map=segmenter.class_map) if source.gt_topic else None
        self.depth = DepthPairing(
            CloudMaker(segmenter.classes.palette()), options.depth_slop,
            lambda cloud, recorded: sink.write_cloud(*recorded, cloud), depth_topic=source.depth_topic,
            info_topic=source.depth_info_topic, slop_name="--depth-slop",
            warn=lambda text: LOG.warning("no cloud: %s", text)) if source.depth_topic else None
        self.latencies: list[float] = []
        self.report = ReplayReport(bag=str(options.bag), image_topic=source.image_topic, mode="offline",
                                   model=segmenter.description, classes=segmenter.classes.to_dict(),
                                   class_map=segmenter.class_map.to_dict() if segmenter.class_map else None,
                                   latency_definition="decode + segment per frame (Segmenter, every output)")

    def _on_image(self, message) -> None:
        self.sink.write_copy(message)
        start = time.perf_counter()
        try:
            image, encoding = decode_image(message)
            label_size = self.depth.depth_shape() if self.depth else None
            result = self.segmenter.segment(image, encoding=encoding, outputs=OUTPUTS, label_size=label_size)
        except ImageError as error:
            self.report.rejected_frames += 1
            LOG.warning("frame at %.3f s rejected: %s", stamp_seconds(message.msg.header), error)
            return
        self.latencies.append(time.perf_counter() - start)
        outputs = {name: getattr(result, name) for name in OUTPUTS}
        self.sink.write_outputs(message.timestamp_ns, message.msg.header, outputs)
        write_overlay_png(self.options, self.report.frames, result.overlay)
        self.report.frames += 1
        if self.matcher:
            self.matcher.add_mask(stamp_ns(message.msg.header), result.mask)
        if result.labels is not None:
            self.depth.on_frame(stamp_ns(message.msg.header), result.labels, result.label_confidence)

    def _on_other(self, message) -> None:
        """Ground truth, depth and camera_info: copied as recorded; scored or paired."""
        self.sink.write_copy(message)
        if self.matcher and message.topic == self.source.gt_topic:
            self.matcher.add_ground_truth(stamp_ns(message.msg.header), ground_truth_array(message))
        elif self.depth and message.topic == self.source.depth_topic:
            self.depth.on_depth(message.msg, stamp_ns(message.msg.header), (message.timestamp_ns, message.msg.header))
        elif self.depth and message.topic == self.source.depth_info_topic:
            self.depth.on_camera_info(message.msg)

    def run(self) -> ReplayReport:
        start = time.perf_counter()
        try:
            for message in self.source.messages():
                if message.topic == self.source.image_topic:
                    self._on_image(message)
                else:
                    self._on_other(message)
        except KeyboardInterrupt:
            self.report.interrupted = True
            LOG.warning("interrupted: closing the output bag after %d frames", self.report.frames)
        finally:
            elapsed = time.perf_counter() - start
            if self.depth:
                self.depth.clear()  # the frames still waiting: no depth image came for them
                self.report.add_depth(self.source.depth_topic, self.depth.counts)
            self.report.output_bag = str(self.sink.close())
            self.source.close()
        self.report.fps = round(self.report.frames / elapsed, 3) if elapsed > 0 and self.report.frames else None
        self.report.latency_ms = percentiles_ms(self.latencies)
        if self.matcher and self.matcher.matched:
            self.report.add_scores(self.matcher.confusion, self.matcher.matched)
        return self.report


def run_offline(options: ReplayOptions, segmenter) -> ReplayReport:
    """Replay ``options.bag`` through ``segmenter``; write OUT/bag, OUT/report.json and OUT/report.md."""
    source = open_bag(options)
    try:
        sink = BagSink(options.out_bag, source, options.storage, options.compression)
    except BaseException:
        source.close()
        raise
    report = _Replayer(options, segmenter, source, sink).run()
    report.write(options.out)
    return report


