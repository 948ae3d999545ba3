"""Live replay: play a bag over ROS 2 into a running segmentation_node and measure what comes back.

This is the ``ros2 bag play`` + node path: images are published at the recorded rate (times ``rate``),
the node's outputs are recorded into the output bag, end-to-end latency is publish-to-mask-receipt, and frames
the node never answered count as dropped. The node's class set comes from its ``~/label_info`` (where
vision_msgs is installed); without one, the masks are scored as Cityscapes trainIds. With ``clock`` it publishes the
bag's time on ``/clock`` (at :data:`CLOCK_HZ`, scaled by ``rate``), as ``ros2 bag play --clock`` does: a node with
``use_sim_time:=true`` then measures its own end-to-end latency against the recorded stamps.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

from liteseg_ros.classes import ClassSet
from liteseg_ros.errors import BagError
from liteseg_ros.labels import CITYSCAPES
from liteseg_ros.logs import get_logger
from liteseg_ros.outputs import LABEL_INFO_TOPIC, OUTPUT_TABLE
from liteseg_ros.replay.bag_io import BagSink, BagSource, ground_truth_array
from liteseg_ros.replay.matching import StampMatcher
from liteseg_ros.replay.offline import ReplayOptions, open_bag, write_overlay_png
from liteseg_ros.replay.report import ReplayReport, percentiles_ms
from liteseg_ros.stamps import NS_PER_S, serialized_stamp_ns, stamp_ns, stamp_parts

LOG = get_logger(__name__)
DISCOVERY_TIMEOUT_S = 60.0
DRAIN_IDLE_S = 3.0
LABEL_INFO_TIMEOUT_S = 5.0  # after the node was found: a transient-local message arrives at once if there is one
DEPTH_SUBSCRIBER_TIMEOUT_S = 5.0  # the node subscribes its depth within a second of a ~/points subscriber
CLOCK_HZ = 40.0  # how often /clock is published, as rosbag2's player does by default


@dataclass
class _LiveState:
    published: dict[int, float] = field(default_factory=dict)  # header stamp -> publish time
    received: dict[int, float] = field(default_factory=dict)  # header stamp -> mask receipt time
    overlays: int = 0
    last_receipt: float = 0.0
    # (output name, receipt time, serialised Image) from the executor thread; the bag writer (sqlite3 objects
    # are bound to their thread) and the bookkeeping stay in the main thread.
    inbox: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    class_names: list[str] | None = None  # from the node's ~/label_info


class LivePlayer:
    """Owns the rclpy context, the publisher of the bag's images and the subscribers of the node's outputs."""

    def __init__(self, options: ReplayOptions, source: BagSource, sink: BagSink, matcher: StampMatcher | None):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

        self.options, self.source, self.sink, self.matcher = options, source, sink, matcher
        self.state = _LiveState()
        self.context = rclpy.Context()
        rclpy.init(context=self.context, signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
        self.node = rclpy.create_node("liteseg_replay", context=self.context)
        qos = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
        self.msg_class = _message_class(source.image_msgtype)
        self.publisher = self.node.create_publisher(self.msg_class, source.image_topic, qos)

        namespace = options.node_namespace.rstrip("/")
        recorded = [o for o in OUTPUT_TABLE if o.kind == "image" or source.depth_topic]  # clouds when it has depth
        self.subscriptions = [
            self.node.create_subscription(_message_class(output.message_type), f"{namespace}/{output.topic}",
                                          self._callback(output.name), qos, raw=True)
            for output in recorded
        ]
        self.depth_publishers = {
            topic: self.node.create_publisher(_message_class(source.topics[topic]), topic, qos)
            for topic in (source.depth_topic, source.depth_info_topic) if topic
        }
        self.label_info = _subscribe_label_info(self.node, f"{namespace}/{LABEL_INFO_TOPIC}", self.state)
        self.clock = BagClock(self.node, source.first_timestamp_ns(), options.rate) if options.clock else None
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass

    def _callback(self, name: str):
        def on_output(rawdata: bytes) -> None:
            self.state.inbox.put((name, time.monotonic(), rawdata))

        return on_output

    def flush(self) -> None:
        """Record the outputs received so far: into the bag, the latency table, the matcher and overlay PNGs."""
        from rclpy.serialization import deserialize_message
        from sensor_msgs.msg import Image

        from liteseg_ros.images.conversions import image_msg_to_array

        while True:
            try:
                name, receipt, rawdata = self.state.inbox.get_nowait()
            except queue.Empty:
                return
            if name not in ("mask", "overlay"):
                self.sink.write_raw(name, serialized_stamp_ns(rawdata), rawdata)
                continue
            msg = deserialize_message(rawdata, Image)
            stamp = stamp_ns(msg.header)
            self.sink.write_raw(name, stamp, rawdata)
            if name == "mask":
                self.state.received.setdefault(stamp, receipt)
                self.state.last_receipt = max(self.state.last_receipt, receipt)
                if self.matcher:
                    self.matcher.add_mask(stamp, image_msg_to_array(msg))
            elif name == "overlay":
                write_overlay_png(self.options, self.state.overlays, image_msg_to_array(msg))
                self.state.overlays += 1

    def wait_for_node(self, timeout: float = DISCOVERY_TIMEOUT_S, node_alive=None) -> None:
        """Block until a node subscribes to the image topic and publishes masks, else BagError.

        ``node_alive``, when given, is polled: a node process that died stops the wait at once.
        """
        deadline = time.monotonic() + timeout
        mask_topic = self.subscriptions[0].topic_name
        LOG.info("waiting up to %.0f s for a segmentation_node subscribing to %s and publishing %s", timeout,
                 self.source.image_topic, mask_topic)
        while time.monotonic() < deadline:
            if node_alive is not None and not node_alive():
                raise BagError("the segmentation_node process exited before it was ready (see its log)")
            if self.clock:
                self.clock.tick()
            if self.publisher.get_subscription_count() > 0 and self.node.count_publishers(mask_topic) > 0:
                self._wait_for_depth_subscribers()
                time.sleep(0.5)  # let both sides finish matching their endpoints
                return
            time.sleep(0.1)
        raise BagError(
            f"no segmentation_node answered within {timeout:.0f} s: nothing subscribes to {self.source.image_topic} "
            f"and publishes {mask_topic}; start one with image remapped to {self.source.image_topic}"
        )

    def _wait_for_depth_subscribers(self, timeout: float = DEPTH_SUBSCRIBER_TIMEOUT_S) -> None:
        """Wait until the node subscribes to the bag's depth topics (it does once our ~/points subscription is
        seen), else say why no cloud will come."""
        deadline = time.monotonic() + timeout
        for topic, publisher in self.depth_publishers.items():
            while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            if publisher.get_subscription_count() == 0:
                LOG.warning("the node does not subscribe to %s: no clouds will be recorded (start it with depth/image "
                            "and depth/camera_info remapped to the bag's depth topics)", topic)

    def node_classes(self, timeout: float = LABEL_INFO_TIMEOUT_S) -> ClassSet:
        """The class set the node publishes (its ``~/label_info``; colours are not in it), or Cityscapes' with a
        log line saying why."""
        if self.label_info is None:
            LOG.info("vision_msgs is not installed here: the node's masks are scored as Cityscapes trainIds")
            return CITYSCAPES
        deadline = time.monotonic() + timeout
        while self.state.class_names is None and time.monotonic() < deadline:
            time.sleep(0.05)
        names = self.state.class_names
        if names is None:
            LOG.warning("no %s from the node within %.0f s: its masks are scored as Cityscapes trainIds",
                        self.label_info.topic_name, timeout)
            return CITYSCAPES
        return CITYSCAPES if tuple(names) == CITYSCAPES.names else ClassSet.from_names(names)

    def play(self) -> None:
        """Publish the bag's images (and depth) at the recorded rate (times options.rate); feed ground truth to the
        matcher."""
        from rclpy.serialization import deserialize_message

        first_bag_ns, start = None, time.monotonic()
        if self.clock:
            self.clock.start(start)
        for message in self.source.messages():
            publisher = self.publisher if message.topic == self.source.image_topic else \
                self.depth_publishers.get(message.topic)
            if publisher is None:
                self.sink.write_copy(message)  # ground truth and other camera_infos, as recorded
                if self.matcher and message.topic == self.source.gt_topic:
                    self.matcher.add_ground_truth(stamp_ns(message.msg.header), ground_truth_array(message))
                continue
            first_bag_ns = message.timestamp_ns if first_bag_ns is None else first_bag_ns
            due = start + (message.timestamp_ns - first_bag_ns) / NS_PER_S / self.options.rate
            self._wait_until(due)
            if self.clock:  # the bag's time has reached this message's: the node's clock is not behind its stamp
                self.clock.tick(force=True)
            self.sink.write_copy(message)
            if publisher is self.publisher:
                self.state.published[stamp_ns(message.msg.header)] = time.monotonic()
            publisher.publish(deserialize_message(message.rawdata, _message_class(message.msgtype)))

    def _wait_until(self, due: float) -> None:
        """Sleep until ``due`` (monotonic), recording the node's outputs meanwhile."""
        while True:
            self.flush()
            if self.clock:
                self.clock.tick()
            remaining = due - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(remaining, 0.01))

    def drain(self) -> None:
        """Wait until every published frame was answered, or no answer came for DRAIN_IDLE_S."""
        while True:
            self.flush()
            done = set(self.state.received) >= set(self.state.published)
            idle = time.monotonic() - max(self.state.last_receipt, max(self.state.published.values(), default=0))
            if done or idle > DRAIN_IDLE_S:
                self._wait_until(time.monotonic() + 0.3)  # colour / overlay of the last frame follow its mask
                return
            time.sleep(0.02)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.flush()
        self.node.destroy_node()
        self.context.try_shutdown()
        self.thread.join(timeout=2.0)


class BagClock:
    """``/clock`` at the bag's time: its first message's receive time at :meth:`start`, then advancing with the wall
    clock times ``rate``, published at most every 1 / CLOCK_HZ s by :meth:`tick` (before the start: that first
    time, so a node with use_sim_time has a clock while it waits)."""

    def __init__(self, node, first_ns: int, rate: float):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock

        self.message_class, self.first_ns, self.rate = Clock, first_ns, rate
        self.publisher = node.create_publisher(Clock, "/clock", QoSProfile(depth=1,
                                                                           reliability=ReliabilityPolicy.RELIABLE))
        self.started: float | None = None
        self.last = -float("inf")

    def start(self, started: float) -> None:
        self.started = started
        self.tick(force=True)

    def now_ns(self) -> int:
        if self.started is None:
            return self.first_ns
        return self.first_ns + int((time.monotonic() - self.started) * self.rate * NS_PER_S)

    def tick(self, force: bool = False) -> None:
        if force or time.monotonic() - self.last >= 1.0 / CLOCK_HZ:
            self.last = time.monotonic()
            sec, nanosec = stamp_parts(self.now_ns())
            message = self.message_class()
            message.clock.sec, message.clock.nanosec = sec, nanosec
            self.publisher.publish(message)


def _subscribe_label_info(node, topic: str, state: _LiveState):
    """A transient-local subscription to the node's LabelInfo that stores its class names (ids in order), or None
    where vision_msgs is not installed."""
    from liteseg_ros.ros.label_info import LABEL_INFO_QOS, label_info_types

    types = label_info_types()
    if types is None:
        return None

    def store(message) -> None:
        entries = sorted(message.class_map, key=lambda entry: entry.class_id)
        if [entry.class_id for entry in entries] == list(range(len(entries))):  # ids 0..N-1, as the node sends
            state.class_names = [entry.class_name for entry in entries]

    return node.create_subscription(types[0], topic, store, LABEL_INFO_QOS)




def _message_class(msgtype: str):
    """The rclpy class of a sensor_msgs type named as bags name it (``sensor_msgs/msg/Image``)."""
    from sensor_msgs import msg

    return getattr(msg, msgtype.rsplit("/", 1)[-1])


def _fill_report(report: ReplayReport, player: LivePlayer) -> None:
    state = player.state
    latencies = [state.received[s] - state.published[s] for s in state.received if s in state.published]
    report.frames = len(state.received)
    report.published_frames = len(state.published)
    report.dropped_frames = len(set(state.published) - set(state.received))
    report.latency_ms = percentiles_ms(latencies)
    if state.received and state.published:
        span = max(state.received.values()) - min(state.published.values())
        report.fps = round(report.frames / span, 3) if span > 0 else None
    if player.matcher and player.matcher.matched:
        report.add_scores(player.matcher.confusion, player.matcher.matched)


def run_live(options: ReplayOptions, model_description: str = "the running segmentation_node",
             node_alive=None) -> ReplayReport:
    """Play ``options.bag`` into a running node; write OUT/bag and the report; return it.

    ``node_alive``: optional callable, False once the node's process has died (see LivePlayer.wait_for_node).
    """
    source = open_bag(options)
    sink = BagSink(options.out_bag, source, options.storage, options.compression)
    report = ReplayReport(bag=str(options.bag), image_topic=source.image_topic, mode="live", model=model_description,
                          latency_definition="end to end: publish to mask receipt, through DDS and the node")
    player = None
    try:
        player = LivePlayer(options, source, sink, None)
        player.wait_for_node(node_alive=node_alive)
        classes = player.node_classes()
        report.classes = classes.to_dict()
        if source.gt_topic:  # ground truth is read while playing, after this
            player.matcher = StampMatcher(options.gt_encoding, classes=classes)
        player.play()
        player.drain()
    except KeyboardInterrupt:
        report.interrupted = True
        LOG.warning("interrupted: closing the output bag")
    finally:
        if player is not None:
            player.close()
            _fill_report(report, player)
        report.output_bag = str(sink.close())
        source.close()
    report.write(options.out)
    return report
