"""Measure several cameras on one model: per-camera mask rates and latency at 10 Hz per camera, and resident
memory of one process serving N cameras against N single-camera processes. Prints a Markdown table.

    .venv/bin/python docs/measure_cameras.py [--seconds 20] [--cameras 1 2 3]

Runs segmentation_node with the bundled model on the CPU (360x640 input and street frames), in an isolated ROS
graph (its own domain, localhost discovery), with the shipped Fast DDS profile on both sides.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from liteseg_ros.ros.environment import isolated_ros_environment, node_command, use_large_frames_dds_profile
from liteseg_ros.tools.synthetic import Drive

PRECISION = ["auto"]  # the node's precision parameter (--precision)
RATE_HZ = 10.0


def start_node(namespace: str, cameras: list[str]) -> subprocess.Popen:
    parameters = {"device": "cpu", "summary_period": 0.0, "precision": PRECISION[0],
                  **({"cameras": cameras} if cameras else {})}
    return subprocess.Popen(node_command(parameters, namespace=namespace), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def drive(node, topics: dict[str, tuple[str, str]], seconds: float) -> dict[str, list[float]]:
    """Publish street frames at RATE_HZ on each input; return each camera's end-to-end latencies (s)."""
    frames = [Drive(seed=5, height=360, width=640, duration_s=2.0).frame(t)[0] for t in np.arange(0, 2, 0.1)]
    reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    latencies: dict[str, list[float]] = {camera: [] for camera in topics}
    publishers = {camera: node.create_publisher(Image, topic_in, reliable) for camera, (topic_in, _) in topics.items()}
    for camera, (_, topic_out) in topics.items():
        def on_mask(msg, camera=camera):
            sent = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            latencies[camera].append(time.time() - sent)
        node.create_subscription(Image, topic_out, on_mask, reliable)
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    time.sleep(3.0)  # discovery
    for camera in latencies:
        latencies[camera].clear()
    start, index = time.monotonic(), 0
    while time.monotonic() - start < seconds:
        for camera, publisher in publishers.items():
            rgb = frames[index % len(frames)]
            msg = Image(height=360, width=640, encoding="rgb8", step=640 * 3, data=rgb.tobytes())
            now = time.time()
            msg.header.stamp.sec, msg.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
            msg.header.frame_id = camera or "camera"
            publisher.publish(msg)
        index += 1
        time.sleep(max(0.0, start + index / RATE_HZ - time.monotonic()))
    time.sleep(1.0)
    executor.shutdown()
    return latencies


def measure(count: int, seconds: float, domain_node) -> list[str]:
    """One process serving ``count`` cameras, then ``count`` single-camera processes, each driven at RATE_HZ."""
    cameras = [f"cam{i}" for i in range(count)] if count > 1 else []
    shared = start_node(f"/meas{count}", cameras)
    topics = ({c: (f"/meas{count}/{c}/image", f"/meas{count}/liteseg/{c}/mask") for c in cameras} if cameras
              else {"": (f"/meas{count}/image", f"/meas{count}/liteseg/mask")})
    time.sleep(8.0)  # model loading
    latencies = drive(domain_node, topics, seconds)
    shared_mb = resident_mb(shared.pid)
    shared.send_signal(signal.SIGINT)
    shared.wait(timeout=30)
    singles = [start_node(f"/single{count}_{i}", []) for i in range(count)]
    time.sleep(10.0)
    drive(domain_node, {str(i): (f"/single{count}_{i}/image", f"/single{count}_{i}/liteseg/mask")
                        for i in range(count)}, min(seconds, 5.0))
    separate_mb = sum(resident_mb(p.pid) for p in singles)
    for p in singles:
        p.send_signal(signal.SIGINT)
        p.wait(timeout=30)
    rows = []
    for camera, values in latencies.items():
        ms = np.array(values) * 1e3
        rows.append(f"| {count} | {camera or 'image'} | {len(values) / seconds:.1f} | {np.median(ms):.0f} | "
                    f"{np.percentile(ms, 95):.0f} | {shared_mb:.0f} | {separate_mb:.0f} |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--precision", default="auto", help="the node's precision parameter (default auto)")
    args = parser.parse_args()
    PRECISION[0] = args.precision
    isolated_ros_environment()
    use_large_frames_dds_profile()  # this process and the nodes it starts, as the README's road sets it
    rclpy.init()
    node = rclpy.create_node("measure_cameras")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; bundled mobilenetv2, "
          f"CPU, precision {args.precision}, 360x640 network input, 640x360 frames at {RATE_HZ:.0f} Hz per camera, "
          f"{args.seconds:.0f} s\n")
    print("| cameras | camera | masks/s | end-to-end p50 (ms) | p95 (ms) | RSS one process (MB) "
          "| RSS N processes (MB) |")
    print("|---|---|---|---|---|---|---|")
    for count in args.cameras:
        for row in measure(count, args.seconds, node):
            print(row, flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
