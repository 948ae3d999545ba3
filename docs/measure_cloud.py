"""Measure what ~/points costs per frame: the labelled cloud of a registered depth image (liteseg_ros.depth.cloud, the
node's code, into its reusable message buffer, then the PointCloud2 message) for depth images of 640x480 and
1280x720 (HEIGHTxWIDTH: 480x640, 720x1280), 16UC1 and 32FC1, without and with the confidence field. The baseline, in
the same run on the same frames, is the glue users write today: a float64 meshgrid projection and a structured
array filled field by field, then its bytes.

    .venv/bin/python docs/measure_cloud.py [--sizes 480x640 720x1280] [--repeats 50]

One thread (numpy's operations here are single-threaded); 10 % of the depth pixels invalid.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from liteseg_ros.depth.camera import Intrinsics
from liteseg_ros.depth.cloud import CloudMaker, PointLayout, packed_colours
from liteseg_ros.depth.images import DepthImage
from liteseg_ros.inference.cpu_features import cpu_model
from liteseg_ros.labels import CITYSCAPES
from liteseg_ros.ros.messages import CloudBuffer, point_cloud_msg
from liteseg_ros.sizes import format_size
from liteseg_ros.tools.cli.conventions import parse_size


def depth_image(height: int, width: int, encoding: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    metres = 0.5 + 6.0 * rng.random((height, width), dtype=np.float32)
    invalid = rng.random((height, width)) < 0.1
    if encoding == "16UC1":
        return np.where(invalid, 0, np.round(metres * 1000)).astype(np.uint16)
    return np.where(invalid, np.nan, metres).astype(np.float32)


def glue_cloud(values: np.ndarray, encoding: str, intrinsics: Intrinsics, labels: np.ndarray,
               confidence: np.ndarray | None, colours: np.ndarray) -> bytes:
    """The baseline: what a hand-written node does with numpy."""
    z = values.astype(np.float64) * (0.001 if encoding == "16UC1" else 1.0)
    z[(values == 0) if encoding == "16UC1" else ~(np.isfinite(z) & (z > 0))] = np.nan
    u, v = np.meshgrid(np.arange(values.shape[1]), np.arange(values.shape[0]))
    layout = PointLayout(confidence is not None)
    points = np.zeros(values.size, dtype=layout.dtype)
    points["x"] = ((u - intrinsics.cx) * z / intrinsics.fx).ravel()
    points["y"] = ((v - intrinsics.cy) * z / intrinsics.fy).ravel()
    points["z"] = z.ravel()
    points["rgb"] = colours[labels].ravel()
    points["label"] = labels.ravel()
    if confidence is not None:
        points["confidence"] = (confidence / 255.0).ravel()
    return points.tobytes()


def timed(function, repeats: int) -> np.ndarray:
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return np.array(times) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=parse_size, default=[(480, 640), (720, 1280)])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    from std_msgs.msg import Header

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; one thread; {args.repeats} repeats\n")
    print("| depth | encoding | confidence | ~/points (make + message) p50 / p95 ms | glue p50 / p95 ms | MB |")
    print("|---|---|---|---|---|---|")
    for height, width in args.sizes:
        intrinsics = Intrinsics(0.8 * width, 0.8 * width, (width - 1) / 2, (height - 1) / 2, height, width)
        labels = np.random.default_rng(1).integers(0, 19, (height, width)).astype(np.uint8)
        for encoding in ("16UC1", "32FC1"):
            depth = DepthImage(depth_image(height, width, encoding), encoding, 0, "depth")
            for confidence in (None, labels * 13):
                maker, buffer = CloudMaker(CITYSCAPES.palette()), CloudBuffer()

                def ours() -> None:
                    cloud = maker.make(depth, intrinsics, labels, confidence, out=buffer.view)
                    point_cloud_msg(cloud, Header(), buffer.data_of(cloud.points))

                colours = packed_colours(CITYSCAPES.palette())
                ours_ms = timed(ours, args.repeats)
                glue_ms = timed(lambda: glue_cloud(depth.values, encoding, intrinsics, labels, confidence, colours),
                                args.repeats)
                size = height * width * PointLayout(confidence is not None).point_step / 1e6
                print(f"| {format_size((height, width))} | {encoding} | {'yes' if confidence is not None else 'no'} "
                      f"| {np.median(ours_ms):.1f} / {np.percentile(ours_ms, 95):.1f} "
                      f"| {np.median(glue_ms):.1f} / {np.percentile(glue_ms, 95):.1f} | {size:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
