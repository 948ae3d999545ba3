from __future__ import annotations

from typing import Any, Callable

from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from liteseg_ros.classes import ClassSet
from liteseg_ros.depth.cloud import CloudMaker, CloudOptions
from liteseg_ros.depth.pairing import DepthPairing
from liteseg_ros.errors import ConfigError
from liteseg_ros.outputs import OUTPUT_TOPICS
from liteseg_ros.ros.channels import WARN_THROTTLE_S, FollowingSubscription, output_qos
from liteseg_ros.ros.messages import CloudBuffer, point_cloud_msg
from liteseg_ros.ros.parameters import NodeConfig
from liteseg_ros.ros.stats import depth_diagnostic_values
from liteseg_ros.stamps import stamp_ns


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
    """One camera's depth subscriptions and ``~/points`` publisher around its :class:`DepthPairing` (camera_info,
    pairing, clouds, counters)."""

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
        self.buffer = CloudBuffer()
        self.pairing = DepthPairing(
            CloudMaker(classes.palette(), options), config.depth_slop, self._publish, depth_topic=self.image_topic,
            info_topic=self.info_topic, slop_name="depth_slop", cloud_out=self.buffer.view,
            warn=lambda text: node.get_logger().warning(f"no cloud on {self.points_topic}: {text}"),
            warn_every_s=WARN_THROTTLE_S)
        self.images = FollowingSubscription(node, Image, self.image_topic, config.qos_reliability, config.qos_depth)
        self.infos = FollowingSubscription(node, CameraInfo, self.info_topic, config.qos_reliability, 1)

    # -- subscriptions -------------------------------------------------------------------------------
    def poll(self) -> None:
        """Subscribe while depth is wanted, else unsubscribe (and forget what waits for a pair)."""
        if self.config.output_size == "depth" or self.wants_cloud():
            self.images.poll(lambda msg: self.pairing.on_depth(msg, stamp_ns(msg.header), msg.header))
            self.infos.poll(self.pairing.on_camera_info)
        elif self.images.subscription is not None:
            self.unsubscribe()

    def unsubscribe(self) -> None:
        self.images.unsubscribe()
        self.infos.unsubscribe()
        self.pairing.clear()

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
        """The size to compute a frame's labels at for its cloud (the pairing's depth size); None when no cloud is
        wanted or no depth size is known yet."""
        return self.pairing.depth_shape() if self.wants_cloud() else None

    def depth_shape(self) -> tuple[int, int] | None:
        """The last depth image's size, else its camera_info's, else None."""
        return self.pairing.depth_shape()

    def on_frame(self, header: Any, labels: Any, confidence: Any) -> None:
        """A segmented colour frame's labels at the depth size: its cloud now, or when its depth image comes."""
        self.pairing.on_frame(stamp_ns(header), labels, confidence)

    def _publish(self, cloud: Any, header: Any) -> None:
        if self.publisher is not None:
            self.publisher.publish(point_cloud_msg(cloud, header, self.buffer.data_of(cloud.points)))

    def diagnostic_values(self) -> list[tuple[str, str]]:
        """The key/value pairs this camera's diagnostics status adds."""
        return depth_diagnostic_values(self.pairing.counts, self.image_topic, self.points_topic)
