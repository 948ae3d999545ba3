"""One camera's depth input and ``~/points``: the registered depth image (``depth/image``) and its camera_info
(``depth/camera_info``), paired with the segmented colour frames by header stamp (:mod:`liteseg_ros.depth.pairing`),
and the labelled cloud made of each pair (:mod:`liteseg_ros.depth.cloud`) with the depth image's header.

A camera has a depth input when ``publish_points`` is ``always``, or ``auto`` and its ``depth/image`` is remapped,
or ``output_size`` is ``depth``; it subscribes while the cloud is wanted (``always``, or ``~/points`` has
subscribers; with ``output_size: depth`` all the time). A depth image or camera_info that cannot give a cloud, and
a frame without a depth image, are counted (``/diagnostics``) with one throttled warning saying what to fix; the
masks keep flowing, and the next good pair gives a cloud. Whichever of a frame and its depth image comes second
completes the pair, so the cloud is built on the node's output stage or in the depth subscription's callback (a
lock keeps them apart).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from liteseg_ros.classes import ClassSet
from liteseg_ros.depth.camera import Intrinsics
from liteseg_ros.depth.cloud import CloudMaker, CloudOptions
from liteseg_ros.depth.images import DepthImage, depth_image_from_msg
from liteseg_ros.depth.pairing import Decision, StampPairing
from liteseg_ros.errors import ConfigError, ImageError
from liteseg_ros.outputs import OUTPUT_TOPICS
from liteseg_ros.replay.bag_io import stamp_ns
from liteseg_ros.ros.channels import WARN_THROTTLE_S, FollowingSubscription, output_qos
from liteseg_ros.ros.messages import CloudBuffer, point_cloud_msg
from liteseg_ros.ros.parameters import NodeConfig
from liteseg_ros.ros.stats import DepthStats


@dataclass(frozen=True)
class SegmentedFrame:
    """What a cloud needs of a segmented colour frame: the mask (and confidence) at the depth image's size."""

    labels: np.ndarray
    confidence: np.ndarray | None


def kept_class_ids(names: tuple[str, ...], classes: ClassSet) -> frozenset[int] | None:
    """The ids of ``points_classes`` in the published class set (None: every class); ConfigError for a name it
    does not have."""
    if not names:
        return None
    unknown = [name for name in names if name not in classes.names]
    if unknown:
        raise ConfigError(f"parameter points_classes names {', '.join(unknown)}, not in the published classes "
                          f"({', '.join(classes.names)})")
    return frozenset(classes.names.index(name) for name in names)


def depth_remapped(node: Any, prefix: str) -> bool:
    """Whether ``<prefix>depth/image`` is remapped (the launch file's ``depth_topic``, or ``-r``)."""
    topic = prefix + "depth/image"
    return node.resolve_topic_name(topic) != node.resolve_topic_name(topic, only_expand=True)


def has_depth(config: NodeConfig, remapped: bool) -> bool:
    """Whether a camera has a depth input (see the module docstring)."""
    mode = config.output_modes["points"]
    return mode == "always" or (mode == "auto" and remapped) or config.output_size == "depth"


class DepthChannel:
    """One camera's depth subscriptions, pairing, cloud maker, ``~/points`` publisher and depth statistics."""

    def __init__(self, node: Any, camera: str, config: NodeConfig, make_publisher: Callable[..., Any],
                 classes: ClassSet) -> None:
        prefix = f"{camera}/" if camera else ""
        self.node, self.config = node, config
        self.image_topic = node.resolve_topic_name(prefix + "depth/image")
        self.info_topic = node.resolve_topic_name(prefix + "depth/camera_info")
        self.points_topic = node.resolve_topic_name(f"~/{prefix}{OUTPUT_TOPICS['points']}")
        self.mode = config.output_modes["points"]
        self.publisher = (make_publisher(PointCloud2, f"~/{prefix}{OUTPUT_TOPICS['points']}", output_qos(config))
                          if self.mode != "never" else None)
        options = CloudOptions(config.points_stride, config.points_max_range,
                               kept_class_ids(config.points_classes, classes))
        self.maker = CloudMaker(classes.palette(), options)
        self.pairing = StampPairing(round(config.depth_slop * 1e9))
        self.images = FollowingSubscription(node, Image, self.image_topic, config.qos_reliability, config.qos_depth)
        self.infos = FollowingSubscription(node, CameraInfo, self.info_topic, config.qos_reliability, 1)
        self.intrinsics: Intrinsics | str = f"no camera_info received on {self.info_topic} yet"
        self.shape: tuple[int, int] | None = None  # of the last depth image
        self.stats = DepthStats()
        self.buffer = CloudBuffer()
        self._lock = threading.Lock()
        self._warned: dict[str, float] = {}  # kind of problem -> when it was last logged

    # -- subscriptions -------------------------------------------------------------------------------
    def poll(self) -> None:
        """Subscribe while depth is wanted, else unsubscribe (and forget what waits for a pair)."""
        if self.config.output_size == "depth" or self.wants_cloud():
            self.images.poll(self._on_image)
            self.infos.poll(self._on_camera_info)
        elif self.images.subscription is not None:
            self.unsubscribe()

    def unsubscribe(self) -> None:
        self.images.unsubscribe()
        self.infos.unsubscribe()
        self._decided(self.pairing.clear())

    def destroy(self) -> None:
        self.unsubscribe()
        if self.publisher is not None:
            destroy = getattr(self.node, "destroy_lifecycle_publisher", self.node.destroy_publisher)
            destroy(self.publisher)
            self.publisher = None

    def wants_cloud(self) -> bool:
        """``always``, or ``auto`` with subscribers to ``~/points``."""
        return self.publisher is not None and (self.mode == "always" or self.publisher.get_subscription_count() > 0)

    def label_shape(self) -> tuple[int, int] | None:
        """The size to compute a frame's labels at for its cloud: the last depth image's (else its camera_info's);
        None when no cloud is wanted or no depth size is known yet."""
        if not self.wants_cloud():
            return None
        return self.depth_shape()

    def depth_shape(self) -> tuple[int, int] | None:
        """The last depth image's size, else its camera_info's, else None."""
        if self.shape is not None:
            return self.shape
        return (self.intrinsics.height, self.intrinsics.width) if isinstance(self.intrinsics, Intrinsics) else None

    # -- input ---------------------------------------------------------------------------------------
    def _on_camera_info(self, msg: Any) -> None:
        try:
            self.intrinsics = Intrinsics.from_camera_info(msg)
        except ImageError as error:
            self.intrinsics = str(error)
            self._problem("unusable", str(error), "camera_info")

    def _on_image(self, msg: Any) -> None:
        self.stats.count("depth_images")
        stamp = stamp_ns(msg.header)
        try:
            depth = depth_image_from_msg(msg, stamp)
        except ImageError as error:
            self._problem("unusable", f"depth image on {self.image_topic}: {error}", "depth image")
            return
        self.shape = depth.shape
        self._decided(self.pairing.add_depth(stamp, (msg.header, depth)))

    def on_frame(self, header: Any, labels: np.ndarray, confidence: np.ndarray | None) -> None:
        """A segmented colour frame's labels at the depth size: its cloud now, or when its depth image comes."""
        self._decided(self.pairing.add_frame(stamp_ns(header), SegmentedFrame(labels, confidence)))

    # -- output --------------------------------------------------------------------------------------
    def _decided(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            if decision.depth is None:
                within = f"within depth_slop {self.config.depth_slop:g} s" if self.config.depth_slop else \
                    "with its stamp (depth_slop 0: equal stamps)"
                self._problem("unpaired", f"no depth image on {self.image_topic} {within} for the frame at "
                                          f"{decision.frame_stamp_ns / 1e9:.6f} s; is the depth registered to this "
                                          "camera and stamped like it? (raise depth_slop for a nearest match)",
                              "unpaired")
            else:
                self._publish(decision.frame, *decision.depth)

    def _publish(self, frame: SegmentedFrame, header: Any, depth: DepthImage) -> None:
        intrinsics = self.intrinsics
        if not isinstance(intrinsics, Intrinsics):
            self._problem("unusable", intrinsics, "camera_info")
            return
        with self._lock:
            try:
                cloud = self.maker.make(depth, intrinsics, frame.labels, frame.confidence, out=self.buffer.view)
            except ImageError as error:
                self._problem("unusable", str(error), "sizes")
                return
            if self.publisher is not None:
                self.publisher.publish(point_cloud_msg(cloud, header, self.buffer.data_of(cloud.points)))
        self.stats.count("clouds")

    def diagnostic_values(self) -> list[tuple[str, str]]:
        """The key/value pairs this camera's diagnostics status adds."""
        return self.stats.values(self.image_topic, self.points_topic)

    def _problem(self, counter: str, text: str, kind: str) -> None:
        """Count a problem; warn about each kind of problem at most every WARN_THROTTLE_S seconds."""
        self.stats.count(counter, text)
        now = time.monotonic()
        if now - self._warned.get(kind, -WARN_THROTTLE_S) >= WARN_THROTTLE_S:
            self._warned[kind] = now
            self.node.get_logger().warning(f"no cloud on {self.points_topic}: {text}")
