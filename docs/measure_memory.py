"""Where the node's memory goes: resident memory (VmRSS) after each start-up step, in a fresh process, as the node
takes them (its module, the Segmenter built from the node's defaults with the network cache, frames segmented), and
the start's times; ``--cold`` empties a private cache first (the first start on a robot).

    .venv/bin/python docs/measure_memory.py [--cold] [--frames 300]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

STARTED = time.monotonic()


def resident_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold", action="store_true", help="start with an empty network cache")
    parser.add_argument("--frames", type=int, default=300)
    args = parser.parse_args()
    if args.cold:
        os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="liteseg_cold_")
    rows = [("interpreter", resident_mib(), time.monotonic() - STARTED)]

    def step(name: str) -> None:
        rows.append((name, resident_mib(), time.monotonic() - STARTED))

    import liteseg_ros.ros.node  # noqa: F401  (rclpy, the messages, the parameters)
    step("the node's module (rclpy, messages)")
    from liteseg_ros.inference.segmenter import Segmenter  # torch and the inference package

    step("the Segmenter's module (torch)")
    from liteseg_ros.ros.parameters import NodeConfig

    config = NodeConfig().validated()
    segmenter = Segmenter(config.weights_file(), config.segmenter_config())
    step(f"the Segmenter built ({segmenter.description})")
    from liteseg_ros.tools.synthetic.scenes import scene_frames

    frames = scene_frames("street", 20, 360, 640)
    segmenter.segment(frames[0], outputs=("mask", "color", "overlay"))
    step("the first frame segmented")
    for index in range(args.frames):
        segmenter.segment(frames[index % len(frames)], outputs=("mask", "color", "overlay"))
    step(f"{args.frames} frames segmented (640x360, mask + colour + overlay)")
    segmenter.close()
    from liteseg_ros.inference.cpu_features import cpu_model

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; {'cold' if args.cold else 'warm'} network cache\n")
    print("| step | RSS MiB | added MiB | seconds since start |\n|---|---|---|---|")
    previous = 0.0
    for name, rss, seconds in rows:
        print(f"| {name} | {rss:.0f} | {rss - previous:+.0f} | {seconds:.2f} |")
        previous = rss
    return 0


if __name__ == "__main__":
    sys.exit(main())
