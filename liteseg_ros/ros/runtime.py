"""What the segmentation nodes run once configured: one model, one channel per camera, and a frame's two stages.

Each camera (``cameras`` parameter; none = the single ``image`` input) has its own subscription, drop-oldest
slot, outputs (``~/<camera>/mask``, ...), statistics and diagnostics (:mod:`liteseg_ros.ros.channels`). The
subscription callbacks only store the newest frame of their camera. The *network stage* takes the cameras with a
frame waiting in round-robin order (a fast camera cannot starve a slow one), converts the message and runs the
network (:meth:`Segmenter.infer`); the *output stage* post-processes it into the messages' own buffers and
publishes (:meth:`Segmenter.finish`). By default one thread runs both, frame after frame: the network and the
post-processing each use every core already. With ``overlap`` a second thread runs the output stage, so the
network of a frame runs while the previous one is post-processed and published; one frame at most waits between
the stages, outputs keep their frames' order, and the newest frame is the next one taken. On 2 cores it gained no
frames and cost latency (docs/benchmarks.md); robots with more cores may differ.
Used by :mod:`liteseg_ros.ros.node` (plain) and :mod:`liteseg_ros.ros.lifecycle_node` (managed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sensor_msgs.msg import CompressedImage

from liteseg_ros.errors import ImageError
from liteseg_ros.images import conversions
from liteseg_ros.outputs import OUTPUT_ENCODINGS
from liteseg_ros.ros.channels import WARN_THROTTLE_S, CameraChannel, FrameMailbox, steady_timer
from liteseg_ros.ros.depth import DepthChannel, depth_remapped, has_depth
from liteseg_ros.ros.label_info import label_info_types, missing_text
from liteseg_ros.ros.parameters import NodeConfig
from liteseg_ros.ros.stats import diagnostic_status, summary_line
from liteseg_ros.stamps import NS_PER_S, stamp_ns

PUBLISHER_POLL_PERIOD_S = 1.0


@dataclass
class Job:
    """A frame between the stages: its camera, message, the time it arrived, what the network made of it and the
    image outputs to publish."""

    channel: CameraChannel
    msg: Any
    received_at: float
    inference: Any
    published: tuple[str, ...]


class Handoff:
    """One frame's place between the network stage and the output stage."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._job: Job | None = None
        self._closed = False

    def wait_free(self) -> bool:
        """Wait until the output stage took the frame waiting here; False once closed."""
        with self._condition:
            while self._job is not None and not self._closed:
                self._condition.wait()
            return not self._closed

    def put(self, job: Job) -> None:
        with self._condition:
            self._job = job
            self._condition.notify_all()

    def take(self) -> Job | None:
        """Wait for a frame; None once closed (a frame still waiting is dropped)."""
        with self._condition:
            while self._job is None and not self._closed:
                self._condition.wait()
            job, self._job = (None, None) if self._closed else (self._job, None)
            self._condition.notify_all()
            return job

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()


class SegmentationRuntime:
    """The cameras, the two stages and the model of a configured node."""

    def __init__(self, node: Any, config: NodeConfig, segmenter: Any, make_publisher: Callable[..., Any]) -> None:
        self.node, self.config, self.segmenter = node, config, segmenter
        names = config.cameras or ("",)
        types = label_info_types()
        if types is None:
            node.get_logger().info(missing_text())
        self.channels = {name: CameraChannel(node, name, config, make_publisher, types) for name in names}
        for name, channel in self.channels.items():
            if has_depth(config, depth_remapped(node, f"{name}/" if name else "")):
                channel.depth = DepthChannel(node, name, config, make_publisher, segmenter.classes)
        self.publish_label_info()
        self._mailbox, self._handoff = FrameMailbox(names), Handoff()
        self._workers: list[threading.Thread] = []
        self.active = False
        self._timers = [steady_timer(node, PUBLISHER_POLL_PERIOD_S, self._poll)]
        if config.summary_period > 0:
            self._timers.append(steady_timer(node, config.summary_period, self._log_summary))

    # -- life cycle ------------------------------------------------------------------------------
    def activate(self) -> None:
        """Subscribe to every camera and start the stages' thread(s)."""
        self._mailbox, self._handoff = FrameMailbox(list(self.channels)), Handoff()
        self.active = True
        self._poll()
        self._workers = [threading.Thread(target=self._network_stage, name="liteseg-network", daemon=True)]
        if self.config.overlap:
            self._workers.append(threading.Thread(target=self._output_stage, name="liteseg-outputs", daemon=True))
        for worker in self._workers:
            worker.start()

    def deactivate(self) -> None:
        """Unsubscribe and stop the stages (after the frames in progress); the model stays loaded."""
        self.active = False
        for channel in self.channels.values():
            channel.unsubscribe()
        self._mailbox.close()
        self._handoff.close()
        for worker in self._workers:
            worker.join(timeout=10.0)
        self._workers = []

    def destroy(self) -> None:
        """Deactivate and remove every timer, subscription and publisher of this runtime; release the model."""
        self.deactivate()
        for timer in self._timers:
            self.node.destroy_timer(timer)
        for channel in self.channels.values():
            channel.destroy()
        self.segmenter.close()

    def publish_label_info(self) -> None:
        """Send each camera's ``~/label_info`` (the Segmenter's published class set), where vision_msgs is."""
        for channel in self.channels.values():
            if channel.label_info is not None:
                channel.label_info.publish(self.segmenter.classes)

    def describe_outputs(self) -> str:
        stages = "; the network and the outputs on two threads (overlap)" if self.config.overlap else ""
        described = []
        for channel in self.channels.values():
            described += [f"{channel.output_topic(output)} ({mode})" for output, mode in
                          self.config.output_modes.items() if output in channel.publishers]
            if channel.depth is not None and channel.depth.publisher is not None:
                described.append(f"{channel.depth.points_topic} ({channel.depth.mode}, from "
                                 f"{channel.depth.image_topic} and {channel.depth.info_topic})")
        return ", ".join(described) + stages

    # -- input -----------------------------------------------------------------------------------
    def _poll(self) -> None:
        if not self.active:
            return
        for channel in self.channels.values():
            channel.poll(lambda msg, info, camera=channel.name: self._on_image(camera, msg, info))
            if channel.depth is not None:
                channel.depth.poll()

    def _on_image(self, camera: str, msg: Any, info: dict[str, Any]) -> None:
        now = time.monotonic()
        channel = self.channels[camera]
        # Sequence gaps of a single publisher are frames the DDS reader queue (keep-last) overwrote.
        lost = channel.sequence.gap(info.get("publication_sequence_number")) if channel.publisher_count == 1 else 0
        channel.stats.on_received(now, dropped_previous=self._mailbox.put(camera, (msg, now)), lost_before=lost)

    # -- the two stages --------------------------------------------------------------------------
    def _network_stage(self) -> None:
        mailbox, handoff = self._mailbox, self._handoff
        while handoff.wait_free() and (taken := mailbox.take()) is not None:
            channel = self.channels[taken[0]]
            job = self._guarded(channel, lambda: self._infer(channel, *taken[1]))
            if job is not None and self.config.overlap:
                handoff.put(job)
            elif job is not None:
                self._guarded(channel, lambda: self._publish(job))

    def _output_stage(self) -> None:
        handoff = self._handoff
        while (job := handoff.take()) is not None:
            self._guarded(job.channel, lambda: self._publish(job))

    def _guarded(self, channel: CameraChannel, step: Callable[[], Any]) -> Any:
        """``step()``; a failure is counted and logged, never the end of the node."""
        try:
            return step()
        except ImageError as error:
            channel.stats.on_rejected(str(error))
            self.node.get_logger().warning(f"rejected a frame on {channel.input_topic}: {error}",
                                           throttle_duration_sec=WARN_THROTTLE_S)
        except Exception as error:  # never let one frame stop the node
            channel.stats.on_error(f"{type(error).__name__}: {error}")
            self.node.get_logger().error(f"segmentation failed on {channel.input_topic}: {type(error).__name__}: "
                                         f"{error}", throttle_duration_sec=WARN_THROTTLE_S)
        return None

    def _infer(self, channel: CameraChannel, msg: Any, received_at: float) -> Job | None:
        published = channel.wanted_outputs()
        depth = channel.depth
        label_shape = depth.label_shape() if depth is not None else None
        if not published and label_shape is None:
            channel.stats.on_idle()
            return None
        if isinstance(msg, CompressedImage):
            image, encoding = conversions.compressed_msg_to_segmenter_input(msg)
        else:
            image, encoding = conversions.image_msg_to_segmenter_input(msg)
        channel.note_resolution(image.shape[:2])
        output_size = depth.depth_shape() if depth is not None and self.config.output_size == "depth" else None
        inference = self.segmenter.infer(image, encoding=encoding, outputs=published or ("mask",),
                                         output_size=output_size, label_size=label_shape)
        return Job(channel, msg, received_at, inference, published)

    def _publish(self, job: Job) -> None:
        channel, inference = job.channel, job.inference
        self.segmenter.overlay_alpha = self.config.overlay_alpha  # set here: the output stage blends
        shape = self.segmenter.output_shape(*inference.image.shape[:2], inference.output_shape)
        views = {output: channel.buffers.view(output, shape + ((3,) if OUTPUT_ENCODINGS[output] == "rgb8" else ()))
                 for output in job.published}
        result = self.segmenter.finish(inference, out=views)
        for output in job.published:
            channel.publishers[output].publish(channel.buffers.image_msg(output, OUTPUT_ENCODINGS[output],
                                                                          job.msg.header))
        if result.labels is not None:
            channel.depth.on_frame(job.msg.header, result.labels, result.label_confidence)
        self._count(channel, job.msg, job.received_at)

    def _count(self, channel: CameraChannel, msg: Any, received_at: float) -> None:
        now = time.monotonic()
        stamp = stamp_ns(msg.header)
        end_to_end = (self.node.get_clock().now().nanoseconds - stamp) / NS_PER_S if stamp > 0 else None
        if not channel.stats.on_processed(now, now - received_at, end_to_end):
            self.node.get_logger().warning(
                f"header stamps on {channel.input_topic} are {end_to_end:.3f} s from this node's clock, so end-to-end "
                "latency is not reported for them (counted as stamps off this clock); playing a bag? give the player "
                "--clock ('ros2 bag play --clock', 'liteseg-replay --live --clock') and the node use_sim_time:=true",
                throttle_duration_sec=60.0)

    # -- reporting -------------------------------------------------------------------------------
    def camera_statuses(self, node_name: str) -> list[Any]:
        """One diagnostic_msgs/DiagnosticStatus per camera."""
        now = time.monotonic()
        return [diagnostic_status(channel.stats.snapshot(now, mark_reported=True),
                                  name=f"{node_name}: segmentation" + (f" {channel.name}" if channel.name else ""),
                                  hardware_id=self.segmenter.device, device=self.segmenter.device,
                                  model=self.segmenter.description, input_topic=channel.input_topic,
                                  extra=channel.depth.diagnostic_values() if channel.depth is not None else ())
                for channel in self.channels.values()]

    def _log_summary(self) -> None:
        now = time.monotonic()
        for channel in self.channels.values():
            prefix = f"{channel.name}: " if channel.name else ""
            self.node.get_logger().info(prefix + summary_line(channel.stats.snapshot(now)))
