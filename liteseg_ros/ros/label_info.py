"""``~/label_info``: the published class set as vision_msgs/msg/LabelInfo, for consumers such as Nav2's
semantic_segmentation_layer, which drops masks until it has one.

Reliable, transient local, depth 1, published when a camera's outputs are set up (start-up; a managed node's
*configure*), so a subscriber that starts later still gets it. A plain publisher, also in the managed node: a
lifecycle publisher would drop the message published at *configure*. ``vision_msgs`` is optional: without it,
one info line and no ``~/label_info``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from liteseg_ros.classes import ClassSet

ROS_ROOT = Path("/opt/ros")
LABEL_INFO_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.TRANSIENT_LOCAL)


def missing_text() -> str:
    """What to do without vision_msgs: with a ROS install (``ROS_DISTRO`` and its ``/opt/ros`` folder), its apt
    package; on the pip road (the ROS 2 wheels from PyPI, where vision_msgs is not), build it from its messages."""
    distro = os.environ.get("ROS_DISTRO", "")
    if distro and (ROS_ROOT / distro).is_dir():
        how = f"install it with: sudo apt install ros-{distro}-vision-msgs"
    else:
        how = ("vision_msgs is not on PyPI: with a ROS install, apt install ros-jazzy-vision-msgs; without one, "
               "generate it from its .msg files (docs/ros.md, \"vision_msgs without a ROS install\")")
    return f"vision_msgs is not installed, so ~/label_info (vision_msgs/LabelInfo) is not published; {how}"


def label_info_types() -> tuple[Any, Any] | None:
    """(LabelInfo, VisionClass) from vision_msgs, or None where it is not installed."""
    try:
        from vision_msgs.msg import LabelInfo, VisionClass
    except ImportError:
        return None
    return LabelInfo, VisionClass


def label_info_message(classes: ClassSet, stamp: Any, types: tuple[Any, Any]) -> Any:
    """A LabelInfo listing ``classes`` (ids 0..N-1 and names), threshold 0.0."""
    label_info, vision_class = types
    message = label_info()
    message.header.stamp = stamp
    message.class_map = [vision_class(class_id=i, class_name=name) for i, name in enumerate(classes.names)]
    message.threshold = 0.0
    return message


class LabelInfoPublisher:
    """One topic's LabelInfo publisher; :meth:`publish` sends the class set (again when it changed)."""

    def __init__(self, node: Any, topic: str, types: tuple[Any, Any]) -> None:
        self.node, self.types = node, types
        self.publisher = node.create_publisher(types[0], topic, LABEL_INFO_QOS)

    def publish(self, classes: ClassSet) -> None:
        self.publisher.publish(label_info_message(classes, self.node.get_clock().now().to_msg(), self.types))

    def destroy(self) -> None:
        self.node.destroy_publisher(self.publisher)
