"""liteseg-replay: replay a bag (ROS 1 or rosbag2) through LiteSeg; write a segmented bag and a report."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from liteseg_ros.errors import EXIT_INTERRUPTED, BagError
from liteseg_ros.outputs import NODE_NAMESPACE
from liteseg_ros.replay.bag_io import COMPRESSIONS
from liteseg_ros.replay.matching import GT_ENCODINGS
from liteseg_ros.replay.offline import ReplayOptions
from liteseg_ros.tools.cli.conventions import OneLineArgumentParser, add_run_arguments, parse_size, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(prog="liteseg-replay", description=__doc__)
    parser.add_argument("bag", type=Path, help="a ROS 1 .bag file or a rosbag2 bag directory (sqlite3 or mcap, "
                                              "zstd-compressed or not)")
    parser.add_argument("--out", type=Path, required=True, help="output directory: bag/, report.json, report.md")
    parser.add_argument("--weights", action="append",
                        help="weights file or a fetched published name such as cityscapes-mobilenetv2 (default: the "
                             "bundled demo model); give it twice or more (OLD first) to replay each and compare them "
                             "on the bag's ground truth in one table (OUT/<n>-<name>/ per model, OUT/comparison.md)")
    parser.add_argument("--image-topic", help="camera topic (found automatically when the bag has one)")
    parser.add_argument("--gt-topic", help="ground-truth mono8 label topic, matched to images by header stamp")
    parser.add_argument(
        "--gt-encoding", choices=GT_ENCODINGS, default="labelids", help="ground-truth values (default labelids)"
    )
    parser.add_argument("--depth-topic", help="registered depth image (16UC1 / 32FC1) for ~/points clouds (default: "
                                              "the bag's one Image topic named *depth* with a camera_info beside it)")
    parser.add_argument("--depth-info-topic", help="the depth image's camera_info (default: the one beside it)")
    parser.add_argument("--depth-slop", type=float, default=0.0, metavar="SECONDS",
                        help="pair a frame with the nearest depth image within this (default 0: equal stamps)")
    parser.add_argument("--input-size", type=parse_size,
                        help="network input HxW (default: the size the weights were trained at, as the node)")
    add_run_arguments(parser)
    parser.add_argument("--class-map", type=Path, help="a class map YAML merging the model's classes (offline)")
    parser.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3", help="output bag storage")
    parser.add_argument("--compression", choices=COMPRESSIONS, default="none",
                        help="output bag compression (zstd: per message, as ros2 bag record's message mode)")
    parser.add_argument("--overlays", type=int, default=0, metavar="N", help="write every Nth overlay as PNG (0: none)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    live = parser.add_argument_group("live replay through a running segmentation_node")
    live.add_argument(
        "--live", action="store_true", help="publish the bag to a running node instead of segmenting here"
    )
    live.add_argument("--rate", type=float, default=1.0, help="multiple of the recorded rate (default 1.0)")
    live.add_argument("--clock", action="store_true",
                      help="publish the bag's time on /clock, as ros2 bag play --clock (start the node with "
                           "use_sim_time:=true: it then reports its end-to-end latency against the recorded stamps)")
    live.add_argument(
        "--node-namespace", default=NODE_NAMESPACE,
        help=f"where the node publishes its outputs (default {NODE_NAMESPACE})"
    )
    return parser


def options_from_args(args: argparse.Namespace) -> ReplayOptions:
    from liteseg_ros.model.published import resolve_weights

    if not args.live or args.weights:
        args.weights = [resolve_weights(name) for name in args.weights or [None]]
    if args.live and args.weights and len(args.weights) > 1:
        raise BagError("a live replay measures the one model the node runs: compare models offline")
    if args.live and args.class_map is not None:
        raise BagError("--class-map merges classes in an offline replay; in a live replay set the node's class_map "
                       "parameter")
    if args.rate <= 0:
        raise BagError(f"--rate must be positive, got {args.rate}")
    if not 0 <= args.depth_slop <= 1:
        raise BagError(f"--depth-slop must be in [0, 1] seconds, got {args.depth_slop}")
    if (args.out / "bag").exists():
        raise BagError(f"{args.out / 'bag'} already exists: remove it or choose another --out")
    return ReplayOptions(
        bag=args.bag,
        out=args.out,
        weights=args.weights[0] if args.weights else None,
        image_topic=args.image_topic,
        gt_topic=args.gt_topic,
        gt_encoding=args.gt_encoding,
        input_size=args.input_size,
        device=args.device,
        precision=args.precision,
        storage=args.storage,
        compression=args.compression,
        overlay_every=args.overlays,
        rate=args.rate,
        clock=args.clock,
        node_namespace=args.node_namespace,
        class_map=args.class_map,
        depth_topic=args.depth_topic,
        depth_info_topic=args.depth_info_topic,
        depth_slop=args.depth_slop,
    )


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    options = options_from_args(args)
    if args.live:
        from liteseg_ros.ros.live_replay import run_live

        report = run_live(options)
    elif len(args.weights) > 1:
        return _compare(options, args.weights, args.json)
    else:
        report = _replay_offline(options)
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        print()
    else:
        print(report.to_markdown())
    return EXIT_INTERRUPTED if report.interrupted else 0


def _replay_offline(options: ReplayOptions):
    from liteseg_ros.inference.config import SegmenterConfig
    from liteseg_ros.inference.segmenter import Segmenter
    from liteseg_ros.replay.offline import open_bag, run_offline

    open_bag(options).close()  # a bad bag fails before the model is loaded
    segmenter = Segmenter(options.weights, SegmenterConfig(device=options.device, precision=options.precision,
                                                           input_size=options.input_size, class_map=options.class_map))
    return run_offline(options, segmenter)


def _compare(options: ReplayOptions, weights: list[Path], as_json: bool) -> int:
    """Replay each model into OUT/<n>-<name>; with ground truth, one table of them (OUT/comparison.md, .json)."""
    from liteseg_ros.classes import ClassSet
    from liteseg_ros.comparison import ModelScores, SharedClasses, comparison_dict, comparison_table
    from liteseg_ros.files import write_text

    if not options.gt_topic:
        raise BagError("comparing models needs the bag's ground truth: give --gt-topic")
    reports = [_replay_offline(replace(options, weights=path, out=options.out / f"{index}-{Path(path).stem}"))
               for index, path in enumerate(weights, 1)]
    if any(report.interrupted for report in reports):
        return EXIT_INTERRUPTED
    classes = {str(path): ClassSet.from_dict(report.classes, "replay") for path, report in zip(weights, reports)}
    shared = SharedClasses.of(next(iter(classes.values())), classes)
    models = [ModelScores(str(path), {name: report.per_class.get(name) for name in shared.names}, report.gt_frames,
                          report.model) for path, report in zip(weights, reports)]
    document, table = json.dumps(comparison_dict(models, shared), indent=2) + "\n", comparison_table(models, shared)
    write_text(options.out / "comparison.json", document)
    write_text(options.out / "comparison.md", table)
    print(document if as_json else table, end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, "liteseg-replay")


if __name__ == "__main__":
    sys.exit(main())
