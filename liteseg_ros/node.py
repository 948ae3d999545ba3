"""The ``liteseg`` ROS 2 node: camera images in, segmentation masks out.

Subscribes ``image`` (sensor_msgs/Image) or ``image/compressed`` (sensor_msgs/CompressedImage) and
publishes ``~/mask`` (mono8 trainIds), ``~/color_mask`` and ``~/overlay`` (rgb8) at the input's
resolution with the input's header, plus ``/diagnostics`` at 1 Hz. The subscription callback only
stores the newest frame; a worker thread segments it, so latency never piles up.

Run: ``ros2 run liteseg_ros segmentation_node --ros-args --params-file config/liteseg.yaml``.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image

from liteseg_ros import conversions
from liteseg_ros.errors import ImageError, LiteSegError
from liteseg_ros.node_config import NODE_NAME, NodeConfig, declare_parameters, resolve_weights
from liteseg_ros.node_stats import NodeStats, SequenceGaps, diagnostic_status, summary_line

OUTPUT_TOPICS = {"mask": ("~/mask", "mono8"), "color": ("~/color_mask", "rgb8"), "overlay": ("~/overlay", "rgb8")}
WARN_THROTTLE_S = 5.0
PUBLISHER_POLL_PERIOD_S = 1.0
DIAGNOSTICS_PERIOD_S = 1.0


class FrameSlot:
    """A one-frame mailbox: ``put`` overwrites (drop-oldest), ``take`` blocks for the newest."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._item: Any = None
        self._closed = False

    def put(self, item: Any) -> bool:
        """Store ``item``; return True when it overwrote a frame that was never taken."""
        with self._condition:
            overwritten = self._item is not None
            self._item = item
            self._condition.notify()
            return overwritten

    def take(self) -> Any:
        """Wait for a frame and return it, or return None once the slot is closed."""
        with self._condition:
            while self._item is None and not self._closed:
                self._condition.wait()
            item, self._item = self._item, None
            return None if self._closed else item

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()


class RosLogHandler(logging.Handler):
    """Forwards the core's ``logging`` records (liteseg_ros.*) to the node's ROS logger."""

    def __init__(self, ros_logger: Any) -> None:
        super().__init__()
        self.ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        if record.levelno >= logging.ERROR:
            self.ros_logger.error(text)
        elif record.levelno >= logging.WARNING:
            self.ros_logger.warning(text)
        else:
            self.ros_logger.info(text)


def build_segmenter(config: NodeConfig, weights: Path) -> Any:
    """Build the Segmenter from ``weights`` (with its metadata: mean/std); raises LiteSegError with clear text."""
    from liteseg_ros.segmenter import Segmenter

    return Segmenter(
        weights, backbone=config.backbone, device=config.device, precision=config.precision,
        input_size=config.input_size, overlay_alpha=config.overlay_alpha, upsample=config.upsample,
        optimize=config.optimize,
    )


def _stamp_seconds(stamp: Any) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class SegmentationNode(Node):
    """ROS adapter around the Segmenter: converts messages, calls it, publishes, reports."""

    def __init__(self, **node_kwargs: Any) -> None:
        """Create the (named, still idle) node; :meth:`start` configures it, loads the model and subscribes."""
        super().__init__(NODE_NAME, **node_kwargs)
        self.segmenter: Any = None
        self._worker: threading.Thread | None = None

    def start(self) -> None:
        """Declare and validate the parameters, build the Segmenter, subscribe and advertise.

        Raises LiteSegError or rclpy's ParameterException with a one-line reason.
        """
        core_logger = logging.getLogger("liteseg_ros")
        core_logger.addHandler(RosLogHandler(self.get_logger()))
        core_logger.setLevel(logging.INFO)
        core_logger.propagate = False
        self.config = NodeConfig.from_parameters(declare_parameters(self))
        self.segmenter = build_segmenter(self.config, resolve_weights(self.config))
        self.stats = NodeStats()
        self._slot = FrameSlot()
        self._last_shape: tuple[int, ...] | None = None
        compressed = self.config.input_transport == "compressed"
        self._input_type = CompressedImage if compressed else Image
        self.input_topic = self.resolve_topic_name("image/compressed" if compressed else "image")
        self._input_subscription = None
        self._reliability: ReliabilityPolicy | None = None
        self._publisher_count = 0
        self._sequence = SequenceGaps()
        self._poll_publishers()
        self.create_timer(PUBLISHER_POLL_PERIOD_S, self._poll_publishers)
        output_qos = QoSProfile(depth=self.config.output_qos_depth, reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.VOLATILE)
        self._output_publishers = {
            name: self.create_publisher(Image, topic, output_qos)
            for name, (topic, _) in OUTPUT_TOPICS.items() if self.config.output_modes[name] != "never"
        }
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        if self.config.summary_period > 0:
            self.create_timer(self.config.summary_period, self._log_summary)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._worker = threading.Thread(target=self._work, name="liteseg-worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"segmenting {self.input_topic} with {self.segmenter.description}; outputs "
            + ", ".join(
                f"{self.resolve_topic_name(OUTPUT_TOPICS[n][0])} ({m})" for n, m in self.config.output_modes.items()
            )
        )

    # -- input -------------------------------------------------------------------------------
    def _poll_publishers(self) -> None:
        """Every second: note how many cameras publish, and (qos_reliability auto) match their reliability."""
        publishers = self.get_publishers_info_by_topic(self.input_topic)
        if len(publishers) != self._publisher_count:
            self._publisher_count = len(publishers)
            self._sequence.reset()
        reliability = self._wanted_reliability(publishers)
        if reliability == self._reliability:
            return
        if self._input_subscription is not None:
            self.destroy_subscription(self._input_subscription)
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=self.config.qos_depth,
            reliability=reliability,
            durability=DurabilityPolicy.VOLATILE,
        )
        self._input_subscription = self.create_subscription(self._input_type, self.input_topic, self._on_image, qos)
        self._reliability = reliability
        self.get_logger().info(f"subscribed to {self.input_topic} ({reliability.name.lower()}, depth {qos.depth})")

    def _wanted_reliability(self, publishers: list[Any]) -> ReliabilityPolicy:
        choice = self.config.qos_reliability
        if choice != "auto":
            return ReliabilityPolicy.RELIABLE if choice == "reliable" else ReliabilityPolicy.BEST_EFFORT
        if not publishers:
            return self._reliability or ReliabilityPolicy.RELIABLE
        if any(info.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for info in publishers):
            return ReliabilityPolicy.BEST_EFFORT  # a reliable subscriber cannot hear a best-effort publisher
        return ReliabilityPolicy.RELIABLE  # best-effort would lose fragments of large frames

    def _on_image(self, msg: Any, info: dict[str, Any]) -> None:
        now = time.monotonic()
        # Sequence gaps of a single publisher are frames the DDS reader queue (keep-last) overwrote.
        lost = self._sequence.gap(info.get("publication_sequence_number")) if self._publisher_count == 1 else 0
        self.stats.on_received(now, dropped_previous=self._slot.put((msg, now)), lost_before=lost)

    # -- processing ----------------------------------------------------------------------------
    def _wanted_outputs(self) -> tuple[str, ...]:
        return tuple(
            name
            for name, publisher in self._output_publishers.items()
            if self.config.output_modes[name] == "always" or publisher.get_subscription_count() > 0
        )

    def _work(self) -> None:
        while True:
            item = self._slot.take()
            if item is None:
                return
            try:
                self._process(*item)
            except Exception as error:  # never let one frame stop the node
                self.stats.on_error(f"{type(error).__name__}: {error}")
                self.get_logger().error(
                    f"segmentation failed: {type(error).__name__}: {error}", throttle_duration_sec=WARN_THROTTLE_S
                )

    def _decode(self, msg: Any) -> tuple[Any, str]:
        if isinstance(msg, CompressedImage):
            return conversions.compressed_msg_to_segmenter_input(msg)
        return conversions.image_msg_to_segmenter_input(msg)

    def _process(self, msg: Any, received_at: float) -> None:
        outputs = self._wanted_outputs()
        if not outputs:
            self.stats.on_idle()
            return
        self.segmenter.overlay_alpha = self.config.overlay_alpha  # the Segmenter is used from this thread only
        try:
            image, encoding = self._decode(msg)
            self._note_resolution(image.shape[:2])
            result = self.segmenter.segment(image, encoding=encoding, outputs=outputs)
        except ImageError as error:
            self.stats.on_rejected(str(error))
            self.get_logger().warning(
                f"rejected a frame on {self.input_topic}: {error}", throttle_duration_sec=WARN_THROTTLE_S
            )
            return
        for name in outputs:
            array = getattr(result, name)
            self._output_publishers[name].publish(
                conversions.array_to_image_msg(array, OUTPUT_TOPICS[name][1], msg.header)
            )
        now = time.monotonic()
        stamp = _stamp_seconds(msg.header.stamp)
        end_to_end = self.get_clock().now().nanoseconds * 1e-9 - stamp if stamp > 0 else None
        if not self.stats.on_processed(now, now - received_at, end_to_end):
            self.get_logger().warning(
                f"header stamps on {self.input_topic} are {end_to_end:.3f} s from this node's clock, so end-to-end "
                "latency is not reported for them; replaying a bag? use 'ros2 bag play --clock' and use_sim_time:=true",
                throttle_duration_sec=60.0,
            )

    def _note_resolution(self, shape: tuple[int, ...]) -> None:
        if self._last_shape is not None and shape != self._last_shape:
            self.stats.on_resolution_change()
            self.get_logger().warning(
                f"input resolution changed from {self._last_shape[1]}x{self._last_shape[0]} to "
                f"{shape[1]}x{shape[0]} on {self.input_topic}; outputs follow the new resolution",
                throttle_duration_sec=WARN_THROTTLE_S,
            )
        self._last_shape = shape

    # -- reporting and parameters ------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        snapshot = self.stats.snapshot(time.monotonic(), mark_reported=True)
        status = diagnostic_status(
            snapshot,
            name=f"{self.get_fully_qualified_name()}: segmentation",
            hardware_id=self.segmenter.device,
            device=self.segmenter.device,
            model=self.segmenter.description,
            input_topic=self.input_topic,
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics.publish(array)

    def _log_summary(self) -> None:
        self.get_logger().info(summary_line(self.stats.snapshot(time.monotonic())))

    def _on_set_parameters(self, parameters: list[Any]) -> SetParametersResult:
        """Accept a valid overlay_alpha (applied by the worker before its next frame); reject anything else."""
        for parameter in parameters:
            if parameter.name != "overlay_alpha":
                return SetParametersResult(successful=False, reason=f"{parameter.name} cannot change at run time")
            try:
                self.config = replace(self.config, overlay_alpha=parameter.value).validated()
            except LiteSegError as error:
                return SetParametersResult(successful=False, reason=str(error))
            self.get_logger().info(f"overlay_alpha set to {self.config.overlay_alpha}")
        return SetParametersResult(successful=True)

    def close(self) -> None:
        """Stop the worker thread (waits for the frame in progress); a no-op before :meth:`start` finished."""
        if self._worker is not None:
            self._slot.close()
            self._worker.join(timeout=10.0)


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    """Console script ``segmentation_node``: exit 0 on SIGINT/SIGTERM, 1 on a start-up error.

    SIGINT and SIGTERM interrupt the start-up too (loading a large model can take seconds, and launch escalates
    to SIGKILL after a few), ending the process with 0 at once.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    stop = threading.Event()
    node: SegmentationNode | None = None
    try:
        rclpy.init(args=sys.argv if argv is None else argv, signal_handler_options=SignalHandlerOptions.NO)
        node = SegmentationNode()
        node.start()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
    except KeyboardInterrupt as interrupt:
        _log(node, "info", f"interrupted by {interrupt} while starting; stopped")
        _shut_down(node)
        return 0
    except (LiteSegError, ParameterException) as error:
        _log(node, "error", f"cannot start: {error}")
        _shut_down(node)
        return 1
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.1)
    finally:
        node.get_logger().info("stopped")
        executor.shutdown()
        _shut_down(node)
    return 0


def _log(node: Node | None, level: str, text: str) -> None:
    """Log with the node's own (namespaced) logger, or the plain node name before the node exists."""
    logger = node.get_logger() if node is not None else rclpy.logging.get_logger(NODE_NAME)
    getattr(logger, level)(text)


def _shut_down(node: SegmentationNode | None) -> None:
    if node is not None:
        node.close()
        node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
