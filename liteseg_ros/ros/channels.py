"""One camera of the segmentation node: its drop-oldest slot in the shared :class:`FrameMailbox`, its subscription
(QoS following the publishers), its image outputs and their reusable message buffers, its depth input and
``~/points`` (:mod:`liteseg_ros.ros.depth`), and its statistics."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from rclpy.clock import Clock, ClockType
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from liteseg_ros.outputs import LABEL_INFO_TOPIC, OUTPUT_TOPICS, OUTPUTS
from liteseg_ros.ros.label_info import LabelInfoPublisher
from liteseg_ros.ros.messages import OutputBuffers
from liteseg_ros.ros.parameters import NodeConfig
from liteseg_ros.ros.stats import NodeStats, SequenceGaps
from liteseg_ros.sizes import format_size

WARN_THROTTLE_S = 5.0


def steady_timer(node: Any, period_s: float, callback: Callable[[], None]) -> Any:
    """A timer of the node's housekeeping (diagnostics, publisher polling, summaries) on the steady clock: it ticks
    with ``use_sim_time`` too, while a bag is paused or before its first /clock."""
    return node.create_timer(period_s, callback, clock=Clock(clock_type=ClockType.STEADY_TIME))


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


class FollowingSubscription:
    """A subscription whose reliability follows its topic's publishers (``qos_reliability`` auto: best-effort when
    any publisher is, else reliable), re-checked at each :meth:`poll`."""

    def __init__(self, node: Any, msg_type: Any, topic: str, choice: str, depth: int) -> None:
        self.node, self.msg_type, self.topic, self.choice, self.depth = node, msg_type, topic, choice, depth
        self.subscription: Any = None
        self.reliability: ReliabilityPolicy | None = None
        self.publisher_count = 0

    def poll(self, callback: Callable[..., None]) -> bool:
        """Note the topic's publishers and (re)subscribe when the reliability to use changed; True when the number
        of publishers changed."""
        publishers = self.node.get_publishers_info_by_topic(self.topic)
        changed = len(publishers) != self.publisher_count
        self.publisher_count = len(publishers)
        reliability = self._wanted_reliability(publishers)
        if reliability == self.reliability and self.subscription is not None:
            return changed
        self.unsubscribe()
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self.depth, reliability=reliability,
                         durability=DurabilityPolicy.VOLATILE)
        self.subscription = self.node.create_subscription(self.msg_type, self.topic, callback, qos)
        self.reliability = reliability
        self.node.get_logger().info(f"subscribed to {self.topic} ({reliability.name.lower()}, depth {qos.depth})")
        return changed

    def unsubscribe(self) -> None:
        if self.subscription is not None:
            self.node.destroy_subscription(self.subscription)
            self.subscription = None

    def _wanted_reliability(self, publishers: list[Any]) -> ReliabilityPolicy:
        if self.choice != "auto":
            return ReliabilityPolicy.RELIABLE if self.choice == "reliable" else ReliabilityPolicy.BEST_EFFORT
        if not publishers:
            return self.reliability or ReliabilityPolicy.RELIABLE
        if any(info.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for info in publishers):
            return ReliabilityPolicy.BEST_EFFORT  # a reliable subscriber cannot hear a best-effort publisher
        return ReliabilityPolicy.RELIABLE  # best-effort would lose fragments of large frames


def output_qos(config: NodeConfig) -> QoSProfile:
    """The outputs' QoS: reliable, keep-last ``output_qos_depth``, volatile (best-effort subscribers, such as Nav2's
    layer, hear it too)."""
    return QoSProfile(depth=config.output_qos_depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


class CameraChannel:
    """One camera's input, outputs and statistics."""

    def __init__(self, node: Any, name: str, config: NodeConfig, make_publisher: Callable[..., Any],
                 label_info_types: tuple[Any, Any] | None = None) -> None:
        prefix = f"{name}/" if name else ""
        compressed = config.input_transport == "compressed"
        self.name, self.node, self.config = name, node, config
        self.input_type = CompressedImage if compressed else Image
        self.input_topic = node.resolve_topic_name(prefix + ("image/compressed" if compressed else "image"))
        self.publishers = {
            output: make_publisher(Image, f"~/{prefix}{OUTPUT_TOPICS[output]}", output_qos(config))
            for output in OUTPUTS if config.output_modes[output] != "never"
        }
        self.label_info = (LabelInfoPublisher(node, f"~/{prefix}{LABEL_INFO_TOPIC}", label_info_types)
                           if label_info_types else None)
        self.buffers = OutputBuffers()  # written by the post-processing, published without another copy
        self.stats = NodeStats()
        self.sequence = SequenceGaps()
        self.subscription = FollowingSubscription(node, self.input_type, self.input_topic, config.qos_reliability,
                                                  config.qos_depth)
        self.depth: Any = None  # the camera's DepthChannel (liteseg_ros.ros.depth), when it has one
        self.last_shape: tuple[int, ...] | None = None

    @property
    def label(self) -> str:
        return self.name or "image"

    def output_topic(self, output: str) -> str:
        prefix = f"{self.name}/" if self.name else ""
        return self.node.resolve_topic_name(f"~/{prefix}{OUTPUT_TOPICS[output]}")

    @property
    def publisher_count(self) -> int:
        return self.subscription.publisher_count

    def poll(self, callback: Callable[[Any, dict], None]) -> None:
        """Note the camera's publishers; (re)subscribe when the reliability to use changed."""
        if self.subscription.poll(callback):
            self.sequence.reset()

    def unsubscribe(self) -> None:
        self.subscription.unsubscribe()
        if self.depth is not None:
            self.depth.unsubscribe()

    def wanted_outputs(self) -> tuple[str, ...]:
        return tuple(output for output, publisher in self.publishers.items()
                     if self.config.output_modes[output] == "always" or publisher.get_subscription_count() > 0)

    def note_resolution(self, shape: tuple[int, ...]) -> None:
        if self.last_shape is not None and shape != self.last_shape:
            self.stats.on_resolution_change()
            self.node.get_logger().warning(
                f"input resolution changed from {format_size(self.last_shape)} to {format_size(shape)} (HxW) "
                f"on {self.input_topic}; outputs follow the new resolution", throttle_duration_sec=WARN_THROTTLE_S)
        self.last_shape = shape

    def destroy(self) -> None:
        self.unsubscribe()
        if self.depth is not None:
            self.depth.destroy()
        # a managed node's lifecycle publishers are also removed from its managed entities
        destroy = getattr(self.node, "destroy_lifecycle_publisher", self.node.destroy_publisher)
        for publisher in self.publishers.values():
            destroy(publisher)
        self.publishers = {}
        if self.label_info is not None:
            self.label_info.destroy()
            self.label_info = None
