"""A ROS client in its own process, as Nav2's semantic_segmentation_layer subscribes: reliable, transient local,
depth 1, to a vision_msgs/LabelInfo topic. Prints one JSON line with what arrived and the topic's type hash as the
graph reports it, then exits (0; 1 after the timeout).

Usage: python label_info_listener.py TOPIC TIMEOUT_S
"""

from __future__ import annotations

import json
import sys
import time

import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from vision_msgs.msg import LabelInfo


def main() -> int:
    topic, timeout = sys.argv[1], float(sys.argv[2])
    rclpy.init()
    node = rclpy.create_node("label_info_listener")
    received = []
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(LabelInfo, topic, received.append, qos)
    deadline = time.monotonic() + timeout
    while not received and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    publishers = node.get_publishers_info_by_topic(topic)
    result = {
        "received": len(received),
        "ids": [c.class_id for c in received[0].class_map] if received else [],
        "names": [c.class_name for c in received[0].class_map] if received else [],
        "threshold": received[0].threshold if received else None,
        "type_hashes": [str(info.topic_type_hash) for info in publishers],
        "durability": [info.qos_profile.durability.name for info in publishers],
    }
    print(json.dumps(result, ensure_ascii=False), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0 if received else 1


if __name__ == "__main__":
    sys.exit(main())
