"""The user's road, step "a model of your own classes, merged by a class map": in a runtime-only install.

  own_classes.py make DIR    writes DIR/robot.pt (a LiteSeg of 3 own classes) and DIR/class_map.yaml (2 classes)
  own_classes.py check DIR   with a segmentation_node running on them: one frame in, then checks with plain rclpy
                             that /liteseg/mask holds only the class map's ids, /liteseg/color_mask its colours,
                             and /liteseg/confidence is a mono8 image with the frame's header.
Exit 0 when all hold; otherwise one line saying which failed, exit 1.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

CLASSES = (("floor", (128, 64, 128)), ("pallet", (250, 170, 30)), ("wall", (70, 70, 70)))
CLASS_MAP = """classes:
  - {name: free, color: [0, 255, 0], from: [pallet]}
  - {name: obstacle, color: [255, 0, 0], from: [floor, wall]}
"""
COLORS = np.array([(0, 255, 0), (255, 0, 0)], np.uint8)
TOPICS = ("mask", "color_mask", "confidence")
TIMEOUT_S = 90.0


def make(directory: Path) -> None:
    import torch

    from liteseg_ros.classes import ClassSet
    from liteseg_ros.model import CheckpointMeta, build_liteseg, save_checkpoint
    from liteseg_ros.tools.synthetic.batchnorm_statistics import with_random_batchnorm

    torch.manual_seed(0)
    model = with_random_batchnorm(build_liteseg("mobilenetv2", num_classes=len(CLASSES)))  # classes follow the image
    classes = ClassSet(tuple(name for name, _ in CLASSES), tuple(color for _, color in CLASSES))
    save_checkpoint(directory / "robot.pt", model, CheckpointMeta.for_model(model, classes=classes))
    (directory / "class_map.yaml").write_text(CLASS_MAP, encoding="utf-8")


def check() -> int:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("road_camera")
    reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    publisher = node.create_publisher(Image, "/image", reliable)
    received: dict[str, list] = {topic: [] for topic in TOPICS}
    for topic in TOPICS:
        node.create_subscription(Image, f"/liteseg/{topic}", received[topic].append, reliable)
    rgb = np.random.default_rng(3).integers(0, 255, (90, 160, 3), dtype=np.uint8)
    sent = Image(height=90, width=160, encoding="rgb8", step=480, data=rgb.tobytes())
    sent.header.frame_id, sent.header.stamp = "road_camera", node.get_clock().now().to_msg()
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline and not all(received.values()):
            publisher.publish(sent)
            end = time.monotonic() + 1.0
            while time.monotonic() < end and not all(received.values()):
                rclpy.spin_once(node, timeout_sec=0.1)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    if not all(received.values()):
        return fail(f"no {', '.join(t for t in TOPICS if not received[t])} within {TIMEOUT_S:.0f} s")
    mask, color, confidence = (received[topic][0] for topic in TOPICS)
    ids = np.frombuffer(bytes(mask.data), np.uint8).reshape(90, 160)
    rgb_mask = np.frombuffer(bytes(color.data), np.uint8).reshape(90, 160, 3)
    if not set(np.unique(ids)) <= {0, 1}:
        return fail(f"the mask holds ids {sorted(int(v) for v in np.unique(ids))}, not only the class map's 0 and 1")
    if not np.array_equal(rgb_mask, COLORS[ids]):
        return fail("the colour mask is not in the class map's colours")
    if confidence.encoding != "mono8" or confidence.header.frame_id != "road_camera":
        return fail(f"confidence is {confidence.encoding} with frame {confidence.header.frame_id!r}")
    counts = dict(zip(*(v.tolist() for v in np.unique(ids, return_counts=True))))
    print(f"road: own classes merged by the class map: pixels per id {counts}, colours and "
          f"confidence (median {int(np.median(np.frombuffer(bytes(confidence.data), np.uint8)))}) as asked")
    return 0


def fail(reason: str) -> int:
    print(f"road: {reason}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make":
        make(Path(sys.argv[2]))
        sys.exit(0)
    sys.exit(check())
