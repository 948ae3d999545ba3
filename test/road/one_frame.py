"""The user's road, step "does the installed node answer": publish a synthetic street frame, check the mask.

Run with the Python of a runtime-only install (``pip install .[ros]``), while a ``segmentation_node`` started
with its defaults is running in the same isolated ROS graph. Checks, with plain rclpy:
- a mono8 mask arrives on /liteseg/mask with the frame's header and size;
- it equals the installed Segmenter's own mask for that frame (same weights, same defaults) on >= 99.9 % of pixels;
- against the frame's ground truth, the bundled model's class mIoU is at least MIN_MIOU.
Exit 0 when all hold; otherwise one line saying which failed, exit 1.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from liteseg_ros.inference.segmenter import Segmenter
from liteseg_ros.labels import label_ids_to_train_ids
from liteseg_ros.metrics import ConfusionMatrix
from liteseg_ros.model.bundled import bundled_model_path
from liteseg_ros.tools.synthetic import render_scene

HEIGHT, WIDTH, SEED = 360, 640, 11
MIN_AGREEMENT, MIN_MIOU = 0.999, 0.6
TIMEOUT_S = 90.0


def frame_message(rgb: np.ndarray, stamp) -> Image:
    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", step=rgb.shape[1] * 3, data=rgb.tobytes())
    msg.header.frame_id = "road_camera"
    msg.header.stamp = stamp
    return msg


def wait_for_mask(node, publisher, rgb: np.ndarray) -> Image:
    masks: list[Image] = []
    node.create_subscription(Image, "/liteseg/mask", masks.append,
                             QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    deadline = time.monotonic() + TIMEOUT_S
    stamps = []
    while time.monotonic() < deadline:
        if publisher.get_subscription_count():  # stamped now: the node's end-to-end latency stays true
            sent = frame_message(rgb, node.get_clock().now().to_msg())
            stamps.append(sent.header.stamp)
            publisher.publish(sent)
        end = time.monotonic() + 1.0
        while time.monotonic() < end and not masks:
            rclpy.spin_once(node, timeout_sec=0.1)
        for mask in masks:
            if mask.header.stamp in stamps:
                return mask
    raise SystemExit(f"road: no mask on /liteseg/mask within {TIMEOUT_S:.0f} s")


def main() -> int:
    rgb, label_ids, _ = render_scene(SEED, HEIGHT, WIDTH)
    rclpy.init()
    node = rclpy.create_node("road_camera")
    publisher = node.create_publisher(Image, "/image", QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
    try:
        mask_msg = wait_for_mask(node, publisher, rgb)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    if (mask_msg.height, mask_msg.width, mask_msg.encoding) != (HEIGHT, WIDTH, "mono8"):
        return fail(f"mask is {mask_msg.width}x{mask_msg.height} {mask_msg.encoding}, expected {WIDTH}x{HEIGHT} mono8")
    if mask_msg.header.frame_id != "road_camera":
        return fail(f"mask frame_id {mask_msg.header.frame_id!r}, expected the frame's 'road_camera'")
    mask = np.frombuffer(bytes(mask_msg.data), dtype=np.uint8).reshape(HEIGHT, mask_msg.step)[:, :WIDTH]
    expected = Segmenter(bundled_model_path(), device="cpu").segment(rgb, outputs=("mask",)).mask
    agreement = float(np.mean(mask == expected))
    scores = ConfusionMatrix()
    scores.update(label_ids_to_train_ids(label_ids), mask)
    miou = scores.scores().miou
    print(f"road: mask {WIDTH}x{HEIGHT} with the frame's header; {agreement:.4%} of pixels equal to the "
          f"installed Segmenter's; class mIoU against the frame's ground truth {miou:.3f}")
    if agreement < MIN_AGREEMENT:
        return fail(f"only {agreement:.4%} of the node's mask equals the Segmenter's (want >= {MIN_AGREEMENT:.1%})")
    if miou < MIN_MIOU:
        return fail(f"class mIoU {miou:.3f} < {MIN_MIOU}: the node is not running the bundled model correctly")
    return 0


def fail(text: str) -> int:
    print(f"road: FAILED: {text}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
