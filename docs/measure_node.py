"""Measure the segmentation node as a robot runs it: the node in its own process, frames published at a fixed rate
by this (separate) rclpy process, which also subscribes to the outputs; both with the shipped Fast DDS profile
(``config/fastdds_large_images.xml``) unless ``--dds-profile none``. Prints one Markdown table row per camera and
run: frames sent, outputs received per topic, end-to-end latency p50/p95 (header stamp = send time), the node
process's CPU per frame (/proc), this process's (the camera and the consumers) per frame sent, the Segmenter's own
CPU per frame, end-to-end and post-processing time in this
process on the same frames after the node stopped (built as the node builds it), the time from the node process's
start to its first output, and the node's resident memory at the end.

    .venv/bin/python docs/measure_node.py --image 720x1280 --rate 15 --scene street [--outputs mask color overlay]
        [--cameras 2] [--seconds 20] [--runs 3] [--node-param output_size:=network ...] [--dds-profile none]
        [--depth 16UC1 --outputs mask color overlay points]

With ``--depth`` each frame also goes out with a registered depth image of its size and stamp (16UC1 millimetres or
32FC1 metres, 10 % invalid) and its camera_info, the node runs with ``publish_points:=always``, and ``points``
(~/points, the labelled cloud) may be subscribed like the images.

The node runs the bundled model on the CPU with its defaults (precision auto, input: the model's 360x640, threads =
cores, the network cache of this user), in an isolated ROS graph (its own domain, localhost discovery). Reliable QoS
both ways, depth 5. Sizes are HEIGHTxWIDTH.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from liteseg_ros.inference.cpu_features import cpu_model
from liteseg_ros.outputs import DEFAULT_OUTPUTS, NODE_NAME, OUTPUT_TOPICS, OUTPUTS, OUTPUTS_BY_NAME
from liteseg_ros.ros.environment import isolated_ros_environment, large_frames_dds_profile, node_command
from liteseg_ros.sizes import format_size
from liteseg_ros.tools.cli.conventions import parse_size
from liteseg_ros.tools.synthetic.scenes import SCENE_KINDS, scene_frames

FRAMES = 20  # distinct frames, sent in a loop
READY_TIMEOUT_S = 120.0


@dataclass
class CameraRecord:
    """What one camera's outputs brought back during the measured window."""

    sent: int = 0
    received: dict[str, set[int]] = field(default_factory=dict)  # output -> frame numbers received
    latencies: list[float] = field(default_factory=list)  # seconds, of the first output subscribed
    node_cpu_per_frame: float = float("nan")  # seconds of the node process's CPU per frame it segmented
    driver_cpu_per_frame: float = float("nan")  # this process's (camera and consumer) CPU per frame sent
    first_output_s: float = float("nan")  # from the node process's start to the first output received
    resident_mib: float = float("nan")  # the node's resident memory at the end of the measured window


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_node(namespace: str, cameras: list[str], params: list[str], depth: bool) -> subprocess.Popen:
    parameters = {"device": "cpu", "summary_period": 0.0, **({"cameras": cameras} if cameras else {}),
                  **({"publish_points": "always"} if depth else {}), **dict(param.split(":=", 1) for param in params)}
    return subprocess.Popen(node_command(parameters, namespace=namespace), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def resident_mib(pid: int) -> float:
    """The process's resident memory (VmRSS), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Driver:
    """Publishes frames to each camera's input and records what comes back (this process's rclpy node)."""

    def __init__(self, node, namespace: str, cameras: list[str], outputs: list[str], depth: str | None):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        self.Image, self.node, self.outputs, self.depth = Image, node, outputs, depth
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.records = {camera: CameraRecord(received={o: set() for o in outputs}) for camera in cameras or [""]}
        self.publishers, self.subscriptions, self.counting, self.first_output = {}, [], False, None
        self.depth_publishers: dict[str, tuple] = {}
        for camera in self.records:
            prefix = f"{camera}/" if camera else ""
            self.publishers[camera] = node.create_publisher(Image, f"{namespace}/{prefix}image", qos)
            if depth:
                self.depth_publishers[camera] = (
                    node.create_publisher(Image, f"{namespace}/{prefix}depth/image", qos),
                    node.create_publisher(CameraInfo, f"{namespace}/{prefix}depth/camera_info", qos))
            for output in outputs:
                topic = f"{namespace}/{NODE_NAME}/{prefix}{OUTPUT_TOPICS[output]}"
                if OUTPUTS_BY_NAME[output].kind == "cloud":  # as a C++ consumer would: not turned into Python
                    self.subscriptions.append(node.create_subscription(
                        PointCloud2, topic, lambda raw, c=camera, o=output: self._on_output(c, o, cloud_header(raw)),
                        qos, raw=True))
                    continue
                self.subscriptions.append(node.create_subscription(
                    Image, topic, lambda msg, c=camera, o=output: self._on_output(c, o, msg), qos))

    def _on_output(self, camera: str, output: str, msg) -> None:
        """An output arrived: a message, or a cloud's header (:func:`cloud_header`)."""
        if not self.counting or not msg.header.frame_id.isdigit():
            return
        record = self.records[camera]
        record.received[output].add(int(msg.header.frame_id))
        if output == self.outputs[0]:
            record.latencies.append(time.time() - (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9))
        if self.first_output is None:
            self.first_output = time.monotonic()

    def publish(self, camera: str, rgb: np.ndarray, number: int) -> None:
        height, width = rgb.shape[:2]
        msg = self.Image(height=height, width=width, encoding="rgb8", step=width * 3, data=rgb.tobytes())
        now = time.time()
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
        msg.header.frame_id = str(number)
        if self.depth:
            self._publish_depth(camera, msg.header, height, width, number)
        self.publishers[camera].publish(msg)
        if self.counting:
            self.records[camera].sent += 1

    def _publish_depth(self, camera: str, header, height: int, width: int, number: int) -> None:
        """The registered depth image of a frame (its size and stamp) and its camera_info, before the frame."""
        from sensor_msgs.msg import CameraInfo

        values = depth_values(height, width, self.depth, number % FRAMES)
        depth = self.Image(header=header, height=height, width=width, encoding=self.depth, step=width * values.itemsize,
                           data=values.tobytes())
        focal = 0.8 * width
        info = CameraInfo(header=header, height=height, width=width, distortion_model="plumb_bob",
                          k=[focal, 0.0, (width - 1) / 2, 0.0, focal, (height - 1) / 2, 0.0, 0.0, 1.0],
                          p=[focal, 0.0, (width - 1) / 2, 0.0, 0.0, focal, (height - 1) / 2, 0.0, 0.0, 0.0, 1.0, 0.0])
        image_publisher, info_publisher = self.depth_publishers[camera]
        info_publisher.publish(info)
        image_publisher.publish(depth)

    def connected(self) -> bool:
        return all(p.get_subscription_count() > 0 for p in self.publishers.values()) and all(
            s.get_publisher_count() > 0 for s in self.subscriptions)


def cloud_header(rawdata: bytes) -> SimpleNamespace:
    """The header (stamp, frame_id) of a serialised message that starts with one (little-endian CDR)."""
    sec, nanosec, length = struct.unpack_from("<iII", rawdata, 4)
    frame_id = rawdata[16:16 + length - 1].decode()
    return SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=nanosec), frame_id=frame_id))


@functools.lru_cache(maxsize=FRAMES)
def depth_values(height: int, width: int, encoding: str, seed: int) -> np.ndarray:
    """A depth image: 0.5..6.5 m, 10 % of it invalid (0 mm, or NaN metres)."""
    rng = np.random.default_rng(seed)
    metres = 0.5 + 6.0 * rng.random((height, width), dtype=np.float32)
    invalid = rng.random((height, width)) < 0.1
    if encoding == "16UC1":
        return np.where(invalid, 0, np.round(metres * 1000)).astype(np.uint16)
    return np.where(invalid, np.nan, metres).astype(np.float32)


def drive(driver: Driver, frames: list[np.ndarray], rate: float, seconds: float, until=None) -> None:
    """Publish ``frames`` in a loop at ``rate`` Hz per camera for ``seconds`` (or until ``until()``)."""
    start, index = time.monotonic(), 0
    while time.monotonic() - start < seconds and not (until and until()):
        for camera in driver.records:
            driver.publish(camera, frames[index % len(frames)], index)
        index += 1
        time.sleep(max(0.0, start + index / rate - time.monotonic()))


def measure_run(args: argparse.Namespace, run: int, frames: list[np.ndarray], rclpy_node) -> dict[str, CameraRecord]:
    """One node process, warmed up until every output arrived, then ``args.seconds`` measured."""
    from rclpy.executors import SingleThreadedExecutor

    cameras = [f"cam{i}" for i in range(args.cameras)] if args.cameras > 1 else []
    namespace = f"/measure{os.getpid()}_{run}"
    driver = Driver(rclpy_node, namespace, cameras, args.outputs, args.depth)
    started = time.monotonic()
    process = start_node(namespace, cameras, args.node_param, bool(args.depth))
    executor = SingleThreadedExecutor()
    executor.add_node(rclpy_node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not driver.connected():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the node did not come up: {process.stderr.read()[-2000:]}")
            time.sleep(0.1)
        driver.counting = True  # warm-up: until every output of every camera arrived once
        drive(driver, frames, args.rate, READY_TIMEOUT_S,
              until=lambda: all(all(r.received.values()) for r in driver.records.values()))
        driver.records = {camera: CameraRecord(received={o: set() for o in args.outputs}) for camera in driver.records}
        cpu_before, driver_before = process_cpu_seconds(process.pid), process_cpu_seconds(os.getpid())
        drive(driver, frames, args.rate, args.seconds)
        cpu, resident = process_cpu_seconds(process.pid) - cpu_before, resident_mib(process.pid)
        driver_cpu = process_cpu_seconds(os.getpid()) - driver_before
        time.sleep(1.0)  # the last frames' outputs
        driver.counting = False
    finally:
        executor.shutdown()
        for subscription in driver.subscriptions:
            rclpy_node.destroy_subscription(subscription)
        for publisher in driver.publishers.values():
            rclpy_node.destroy_publisher(publisher)
        stop(process)
    processed = sum(len(r.received[args.outputs[0]]) for r in driver.records.values())
    for record in driver.records.values():
        record.node_cpu_per_frame, record.resident_mib = cpu / max(processed, 1), resident
        record.driver_cpu_per_frame = driver_cpu / max(sum(r.sent for r in driver.records.values()), 1)
        record.first_output_s = driver.first_output - started
    return driver.records


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def segmenter_cost(frames: list[np.ndarray], outputs: list[str], params: list[str],
                   rounds: int = 3) -> tuple[float, float, float]:
    """(CPU seconds per frame, median end-to-end seconds, median post-processing seconds) of a Segmenter built as
    the node builds it (its defaults and ``params``), in this process on the same frames."""
    from dataclasses import replace

    from liteseg_ros.inference.segmenter import Segmenter
    from liteseg_ros.ros.parameters import NodeConfig

    values = {"device": "cpu", **dict(param.split(":=", 1) for param in params)}
    config = NodeConfig(**{name: type(getattr(NodeConfig(), name))(value) for name, value in values.items()})
    segmenter = Segmenter(config.weights_file(), replace(config.validated().segmenter_config(), calibrate=False))
    images = [o for o in outputs if o in OUTPUTS] or ["mask"]
    label_size = frames[0].shape[:2] if "points" in outputs else None  # the labels a cloud is made of
    for frame in frames[:3]:
        segmenter.segment(frame, outputs=images, label_size=label_size)
    total, post, cpu_before = [], [], time.process_time()
    for _ in range(rounds):
        for frame in frames:
            timings = segmenter.segment(frame, outputs=images, label_size=label_size).timings
            total.append(timings["total"])
            post.append(timings["postprocess"])
    return (time.process_time() - cpu_before) / len(post), float(np.median(total)), float(np.median(post))


def row(args: argparse.Namespace, camera: str, record: CameraRecord, segmenter: tuple[float, float, float]) -> str:
    sent = max(record.sent, 1)
    received = " | ".join(f"{len(record.received[o])} ({len(record.received[o]) / sent:.1%})" if o in record.received
                          else "-" for o in OUTPUT_TOPICS)
    ms = np.array(record.latencies or [float("nan")]) * 1e3
    return (f"| {format_size(args.image)} | {args.scene} | {args.rate:g} | {camera or 'image'} | "
            f"{'+'.join(args.outputs)} | {record.sent} | {received} | {np.median(ms):.0f} / "
            f"{np.percentile(ms, 95):.0f} | {record.node_cpu_per_frame * 1e3:.0f} | "
            f"{record.driver_cpu_per_frame * 1e3:.0f} | {segmenter[0] * 1e3:.0f} | "
            f"{segmenter[1] * 1e3:.1f} | {segmenter[2] * 1e3:.1f} | {record.first_output_s:.1f} | "
            f"{record.resident_mib:.0f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=parse_size, default=(360, 640), help="frame size HxW (default 360x640)")
    parser.add_argument("--rate", type=float, default=30.0, help="frames per second per camera (default 30)")
    parser.add_argument("--scene", choices=SCENE_KINDS, default="street")
    parser.add_argument("--outputs", nargs="+", choices=list(OUTPUT_TOPICS), default=list(DEFAULT_OUTPUTS),
                        help="outputs subscribed (default: the three images)")
    parser.add_argument("--cameras", type=int, default=1, help="cameras served by the one node (default 1)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per run (default 20)")
    parser.add_argument("--runs", type=int, default=1, help="runs, each with a fresh node process (default 1)")
    parser.add_argument("--node-param", nargs="*", default=[], help="extra node parameters, e.g. output_size:=network")
    parser.add_argument("--dds-profile", default=str(large_frames_dds_profile()),
                        help="Fast DDS profile for this process and the node (default: the shipped one; none: the DDS "
                        "defaults)")
    parser.add_argument("--depth", choices=("16UC1", "32FC1"), help="also publish a registered depth image of each "
                        "frame and its camera_info (the node publishes ~/points: --outputs ... points subscribes it)")
    parser.add_argument("--no-header", action="store_true", help="print the rows only")
    args = parser.parse_args()
    import rclpy

    isolated_ros_environment()
    if args.dds_profile and args.dds_profile != "none":
        os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(Path(args.dds_profile).resolve())
    frames = scene_frames(args.scene, FRAMES, *args.image)
    rclpy.init()
    rclpy_node = rclpy.create_node("measure_node")
    records = [measure_run(args, run, frames, rclpy_node) for run in range(args.runs)]
    rclpy_node.destroy_node()
    rclpy.shutdown()
    segmenter = segmenter_cost(frames, args.outputs, args.node_param)
    if not args.no_header:
        print(f"machine: {cpu_model()}, {os.cpu_count()} cores; node: bundled model, device cpu, defaults"
              f"{', ' + ', '.join(args.node_param) if args.node_param else ''}; DDS profile: "
              f"{args.dds_profile or 'none'}; {args.seconds:g} s per run"
              f"{f'; depth {args.depth} at the frame size' if args.depth else ''}\n")
        print(f"| frame | scene | Hz | camera | subscribed | sent | {' | '.join(OUTPUT_TOPICS.values())} | e2e p50 "
              "/ p95 ms | node CPU ms/frame | driver CPU ms/frame | Segmenter CPU ms/frame | Segmenter e2e ms | "
              "Segmenter post ms | first output s | node RSS MiB |")
        print("|" + "---|" * (14 + len(OUTPUT_TOPICS)))
    for run_records in records:
        for camera, record in run_records.items():
            print(row(args, camera, record, segmenter), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
