"""What the segmentation nodes run once configured: one model, one worker thread, one channel per camera.

Each camera (``cameras`` parameter; none = the single ``image`` input) has its own subscription, drop-oldest
slot, outputs (``~/<camera>/mask``, ...), statistics and diagnostics. The subscription callbacks only store
the newest frame of their camera; the worker takes the cameras with a frame waiting in round-robin order, so
a fast camera cannot starve a slow one, and segments one frame at a time with the one Segmenter.
Used by :mod:`liteseg_ros.ros.node` (plain) and :mod:`liteseg_ros.ros.lifecycle_node` (managed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from liteseg_ros.errors import ImageError
from liteseg_ros.images import conversions
from liteseg_ros.outputs import LABEL_INFO_TOPIC, OUTPUT_ENCODINGS, OUTPUT_TOPICS
from liteseg_ros.ros import messages
from liteseg_ros.ros.label_info import MISSING_TEXT, LabelInfoPublisher, label_info_types
from liteseg_ros.ros.parameters import NodeConfig
from liteseg_ros.ros.stats import NodeStats, SequenceGaps, diagnostic_status, summary_line

WARN_THROTTLE_S = 5.0
PUBLISHER_POLL_PERIOD_S = 1.0


class FrameMailbox:
    """One drop-oldest slot per camera. ``put`` overwrites the camera's waiting frame; ``take`` blocks until a
    frame waits and returns the next camera's in round-robin order."""

    def __init__(self, cameras: Sequence[str]) -> None:
        self._condition = threading.Condition()
        self._order = list(cameras)
        self._slots: dict[str, Any] = dict.fromkeys(self._order)
        self._next = 0
        self._closed = False

    def put(self, camera: str, item: Any) -> bool:
        """Store ``item`` for ``camera``; return True when it overwrote a frame that was never taken."""
        with self._condition:
            overwritten = self._slots[camera] is not None
            self._slots[camera] = item
            self._condition.notify()
            return overwritten

    def take(self) -> tuple[str, Any] | None:
        """Wait for a frame; return (camera, item), or None once the mailbox is closed."""
        with self._condition:
            while not self._closed and all(item is None for item in self._slots.values()):
                self._condition.wait()
            if self._closed:
                return None
            for offset in range(len(self._order)):
                camera = self._order[(self._next + offset) % len(self._order)]
                if self._slots[camera] is not None:
                    self._next = (self._order.index(camera) + 1) % len(self._order)
                    item, self._slots[camera] = self._slots[camera], None
                    return camera, item
            return None  # unreachable: a slot was full

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()


class CameraChannel:
    """One camera's input, outputs and statistics."""

    def __init__(self, node: Any, name: str, config: NodeConfig, make_publisher: Callable[..., Any],
                 label_info_types: tuple[Any, Any] | None = None) -> None:
        prefix = f"{name}/" if name else ""
        compressed = config.input_transport == "compressed"
        self.name, self.node, self.config = name, node, config
        self.input_type = CompressedImage if compressed else Image
        self.input_topic = node.resolve_topic_name(prefix + ("image/compressed" if compressed else "image"))
        output_qos = QoSProfile(depth=config.output_qos_depth, reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.VOLATILE)
        self.publishers = {
            output: make_publisher(Image, f"~/{prefix}{suffix}", output_qos)
            for output, suffix in OUTPUT_TOPICS.items() if config.output_modes[output] != "never"
        }
        self.label_info = (LabelInfoPublisher(node, f"~/{prefix}{LABEL_INFO_TOPIC}", label_info_types)
                           if label_info_types else None)
        self.stats = NodeStats()
        self.sequence = SequenceGaps()
        self.subscription: Any = None
        self.reliability: ReliabilityPolicy | None = None
        self.publisher_count = 0
        self.last_shape: tuple[int, ...] | None = None

    @property
    def label(self) -> str:
        return self.name or "image"

    def output_topic(self, output: str) -> str:
        prefix = f"{self.name}/" if self.name else ""
        return self.node.resolve_topic_name(f"~/{prefix}{OUTPUT_TOPICS[output]}")

    def poll(self, callback: Callable[[Any, dict], None]) -> None:
        """Note the camera's publishers; (re)subscribe when the reliability to use changed."""
        publishers = self.node.get_publishers_info_by_topic(self.input_topic)
        if len(publishers) != self.publisher_count:
            self.publisher_count = len(publishers)
            self.sequence.reset()
        reliability = self._wanted_reliability(publishers)
        if reliability == self.reliability and self.subscription is not None:
            return
        self.unsubscribe()
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self.config.qos_depth, reliability=reliability,
                         durability=DurabilityPolicy.VOLATILE)
        self.subscription = self.node.create_subscription(self.input_type, self.input_topic, callback, qos)
        self.reliability = reliability
        self.node.get_logger().info(f"subscribed to {self.input_topic} ({reliability.name.lower()}, depth {qos.depth})")

    def unsubscribe(self) -> None:
        if self.subscription is not None:
            self.node.destroy_subscription(self.subscription)
            self.subscription = None

    def _wanted_reliability(self, publishers: list[Any]) -> ReliabilityPolicy:
        choice = self.config.qos_reliability
        if choice != "auto":
            return ReliabilityPolicy.RELIABLE if choice == "reliable" else ReliabilityPolicy.BEST_EFFORT
        if not publishers:
            return self.reliability or ReliabilityPolicy.RELIABLE
        if any(info.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for info in publishers):
            return ReliabilityPolicy.BEST_EFFORT  # a reliable subscriber cannot hear a best-effort publisher
        return ReliabilityPolicy.RELIABLE  # best-effort would lose fragments of large frames

    def wanted_outputs(self) -> tuple[str, ...]:
        return tuple(output for output, publisher in self.publishers.items()
                     if self.config.output_modes[output] == "always" or publisher.get_subscription_count() > 0)

    def note_resolution(self, shape: tuple[int, ...]) -> None:
        if self.last_shape is not None and shape != self.last_shape:
            self.stats.on_resolution_change()
            self.node.get_logger().warning(
                f"input resolution changed from {self.last_shape[1]}x{self.last_shape[0]} to {shape[1]}x{shape[0]} "
                f"on {self.input_topic}; outputs follow the new resolution", throttle_duration_sec=WARN_THROTTLE_S)
        self.last_shape = shape

    def destroy(self) -> None:
        self.unsubscribe()
        # a managed node's lifecycle publishers are also removed from its managed entities
        destroy = getattr(self.node, "destroy_lifecycle_publisher", self.node.destroy_publisher)
        for publisher in self.publishers.values():
            destroy(publisher)
        self.publishers = {}
        if self.label_info is not None:
            self.label_info.destroy()
            self.label_info = None


class SegmentationRuntime:
    """The cameras, the worker thread and the model of a configured node."""

    def __init__(self, node: Any, config: NodeConfig, segmenter: Any, make_publisher: Callable[..., Any]) -> None:
        self.node, self.config, self.segmenter = node, config, segmenter
        names = config.cameras or ("",)
        types = label_info_types()
        if types is None:
            node.get_logger().info(MISSING_TEXT)
        self.channels = {name: CameraChannel(node, name, config, make_publisher, types) for name in names}
        self.publish_label_info()
        self._mailbox = FrameMailbox(names)
        self._worker: threading.Thread | None = None
        self.active = False
        self._timers = [node.create_timer(PUBLISHER_POLL_PERIOD_S, self._poll)]
        if config.summary_period > 0:
            self._timers.append(node.create_timer(config.summary_period, self._log_summary))

    # -- life cycle ------------------------------------------------------------------------------
    def activate(self) -> None:
        """Subscribe to every camera and start the worker."""
        self._mailbox = FrameMailbox(list(self.channels))
        self.active = True
        self._poll()
        self._worker = threading.Thread(target=self._work, name="liteseg-worker", daemon=True)
        self._worker.start()

    def deactivate(self) -> None:
        """Unsubscribe and stop the worker (after the frame in progress); the model stays loaded."""
        self.active = False
        for channel in self.channels.values():
            channel.unsubscribe()
        self._mailbox.close()
        if self._worker is not None:
            self._worker.join(timeout=10.0)
            self._worker = None

    def destroy(self) -> None:
        """Deactivate and remove every timer, subscription and publisher of this runtime."""
        self.deactivate()
        for timer in self._timers:
            self.node.destroy_timer(timer)
        for channel in self.channels.values():
            channel.destroy()

    def publish_label_info(self) -> None:
        """Send each camera's ``~/label_info`` (the Segmenter's published class set), where vision_msgs is."""
        for channel in self.channels.values():
            if channel.label_info is not None:
                channel.label_info.publish(self.segmenter.classes)

    def describe_outputs(self) -> str:
        return ", ".join(f"{channel.output_topic(output)} ({mode})" for channel in self.channels.values()
                         for output, mode in self.config.output_modes.items())

    # -- input -----------------------------------------------------------------------------------
    def _poll(self) -> None:
        if not self.active:
            return
        for channel in self.channels.values():
            channel.poll(lambda msg, info, camera=channel.name: self._on_image(camera, msg, info))

    def _on_image(self, camera: str, msg: Any, info: dict[str, Any]) -> None:
        now = time.monotonic()
        channel = self.channels[camera]
        # Sequence gaps of a single publisher are frames the DDS reader queue (keep-last) overwrote.
        lost = channel.sequence.gap(info.get("publication_sequence_number")) if channel.publisher_count == 1 else 0
        channel.stats.on_received(now, dropped_previous=self._mailbox.put(camera, (msg, now)), lost_before=lost)

    # -- processing ------------------------------------------------------------------------------
    def _work(self) -> None:
        mailbox = self._mailbox
        while (taken := mailbox.take()) is not None:
            channel = self.channels[taken[0]]
            try:
                self._process(channel, *taken[1])
            except Exception as error:  # never let one frame stop the node
                channel.stats.on_error(f"{type(error).__name__}: {error}")
                self.node.get_logger().error(f"segmentation failed on {channel.input_topic}: {type(error).__name__}: "
                                             f"{error}", throttle_duration_sec=WARN_THROTTLE_S)

    def _process(self, channel: CameraChannel, msg: Any, received_at: float) -> None:
        outputs = channel.wanted_outputs()
        if not outputs:
            channel.stats.on_idle()
            return
        self.segmenter.overlay_alpha = self.config.overlay_alpha  # the Segmenter is used from this thread only
        try:
            if isinstance(msg, CompressedImage):
                image, encoding = conversions.compressed_msg_to_segmenter_input(msg)
            else:
                image, encoding = conversions.image_msg_to_segmenter_input(msg)
            channel.note_resolution(image.shape[:2])
            result = self.segmenter.segment(image, encoding=encoding, outputs=outputs)
        except ImageError as error:
            channel.stats.on_rejected(str(error))
            self.node.get_logger().warning(f"rejected a frame on {channel.input_topic}: {error}",
                                           throttle_duration_sec=WARN_THROTTLE_S)
            return
        for output in outputs:
            encoding = OUTPUT_ENCODINGS[output]
            channel.publishers[output].publish(messages.array_to_image_msg(getattr(result, output), encoding,
                                                                              msg.header))
        self._count(channel, msg, received_at)

    def _count(self, channel: CameraChannel, msg: Any, received_at: float) -> None:
        now = time.monotonic()
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        end_to_end = self.node.get_clock().now().nanoseconds * 1e-9 - stamp if stamp > 0 else None
        if not channel.stats.on_processed(now, now - received_at, end_to_end):
            self.node.get_logger().warning(
                f"header stamps on {channel.input_topic} are {end_to_end:.3f} s from this node's clock, so end-to-end "
                "latency is not reported for them; replaying a bag? use 'ros2 bag play --clock' and use_sim_time:=true",
                throttle_duration_sec=60.0)

    # -- reporting -------------------------------------------------------------------------------
    def camera_statuses(self, node_name: str) -> list[Any]:
        """One diagnostic_msgs/DiagnosticStatus per camera."""
        now = time.monotonic()
        return [diagnostic_status(channel.stats.snapshot(now, mark_reported=True),
                                  name=f"{node_name}: segmentation" + (f" {channel.name}" if channel.name else ""),
                                  hardware_id=self.segmenter.device, device=self.segmenter.device,
                                  model=self.segmenter.description, input_topic=channel.input_topic)
                for channel in self.channels.values()]

    def _log_summary(self) -> None:
        now = time.monotonic()
        for channel in self.channels.values():
            prefix = f"{channel.name}: " if channel.name else ""
            self.node.get_logger().info(prefix + summary_line(channel.stats.snapshot(now)))
