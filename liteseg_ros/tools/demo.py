"""The end-to-end demo (``make demo``): a synthetic drive, replayed live into segmentation_node.

1. generate a drive (about 60 frames at 640x360, 10 Hz) as a rosbag2 bag with ground truth;
2. start ``segmentation_node`` with the bundled demo model in its own process (this process and the node use
   ``config/fastdds_large_images.xml`` as their Fast DDS profile unless the environment names one);
3. replay the drive into it live at the recorded rate, recording the node's outputs;
4. print the report (FPS, end-to-end latency, mIoU) and leave overlays and the output bag in OUT.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from liteseg_ros.errors import EXIT_INTERRUPTED, LiteSegError
from liteseg_ros.logs import get_logger
from liteseg_ros.model.bundled import DEFAULT_INPUT_SIZE, bundled_model_path
from liteseg_ros.ros.environment import isolated_ros_environment, node_command, use_large_frames_dds_profile
from liteseg_ros.tools.cli.conventions import OneLineArgumentParser, format_size, parse_size, run_cli
from liteseg_ros.tools.synthetic.bag_writer import DEFAULT_GT_TOPIC, DEFAULT_IMAGE_TOPIC

LOG = get_logger("liteseg_ros.tools.demo")
DEMO_SEED = 2024  # not among the seeds the demo model was trained on (see models/README.md)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(prog="liteseg-demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output directory (recreated)")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--size", type=parse_size, default=DEFAULT_INPUT_SIZE,
                        help=f"camera HEIGHTxWIDTH (default {format_size(DEFAULT_INPUT_SIZE)}, the model's)")
    parser.add_argument("--rate", type=float, default=10.0, help="camera rate in Hz (default 10)")
    parser.add_argument("--weights", type=Path, help="weights (default: the bundled demo model)")
    parser.add_argument("--overlays", type=int, default=10, metavar="N", help="save every Nth overlay as PNG")
    parser.add_argument("--seed", type=int, default=DEMO_SEED)
    return parser


def _start_node(weights: Path, size: tuple[int, int], log_dir: Path) -> subprocess.Popen:
    args = node_command({"weights": weights, "input_height": size[0], "input_width": size[1], "publish_mask": "always",
                         "publish_color": "always", "publish_overlay": "always", "use_sim_time": True},
                        remappings={"image": DEFAULT_IMAGE_TOPIC})
    log_dir.mkdir(parents=True, exist_ok=True)
    LOG.info("starting segmentation_node (log: %s)", log_dir / "node.log")
    with open(log_dir / "node.log", "wb") as log:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)


def _stop_node(node: subprocess.Popen, log_path: Path) -> None:
    if node.poll() is None:
        node.send_signal(signal.SIGINT)
        try:
            node.wait(timeout=20)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()
    if node.returncode != 0:
        raise LiteSegError(f"segmentation_node exited with {node.returncode}; see {log_path}")


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    from liteseg_ros.replay.offline import ReplayOptions
    from liteseg_ros.ros.live_replay import run_live
    from liteseg_ros.tools.synthetic import write_drive_bag

    weights = args.weights or bundled_model_path()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    env = {**isolated_ros_environment(), **use_large_frames_dds_profile()}
    LOG.info("ROS graph isolated: %s", env)
    drive = args.out / "drive"
    started = time.monotonic()
    write_drive_bag(drive, frames=args.frames, height=args.size[0], width=args.size[1], seed=args.seed,
                    rate_hz=args.rate, image_topic=DEFAULT_IMAGE_TOPIC, gt_topic=DEFAULT_GT_TOPIC)
    LOG.info("wrote a %d-frame synthetic drive to %s in %.1f s", args.frames, drive, time.monotonic() - started)
    node = _start_node(weights, args.size, args.out)
    try:
        options = ReplayOptions(bag=drive, out=args.out / "replay", weights=weights, image_topic=DEFAULT_IMAGE_TOPIC,
                                gt_topic=DEFAULT_GT_TOPIC, overlay_every=args.overlays, rate=1.0, clock=True)
        report = run_live(options, model_description=f"segmentation_node with {weights.name}",
                          node_alive=lambda: node.poll() is None)
    finally:
        _stop_node(node, args.out / "node.log")
    print(report.to_markdown())
    print(f"Output bag: {report.output_bag}\nOverlays: {options.out / 'overlays'}\nReport: {options.out / 'report.md'}")
    return EXIT_INTERRUPTED if report.interrupted else 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, "liteseg-demo")


if __name__ == "__main__":
    sys.exit(main())
