"""liteseg-replay: replay bags (ROS 1 or rosbag2) through LiteSeg; write segmented bags and reports.

One bag: OUT/bag and OUT/report.{json,md}. Several bags: OUT/<bag>/ for each and the fleet's OUT/report.{json,md}
(per-bag rows, the fleet's per-class IoU and mIoU from the bags' confusion matrices summed). --engine ray evaluates
the bags piece by piece on a Ray cluster (reports, no output bags). Several --weights replay each model into
OUT/<n>-<name>/ and compare them in one table. Every model and option is checked before the first frame, and OUT is
written beside its place and renamed when complete.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from liteseg_ros.errors import EXIT_INTERRUPTED, BagError, ConfigError
from liteseg_ros.outputs import NODE_NAMESPACE
from liteseg_ros.replay.bag_io import COMPRESSIONS
from liteseg_ros.replay.matching import GT_ENCODINGS
from liteseg_ros.replay.offline import ReplayOptions
from liteseg_ros.tools.cli.conventions import (
    OneLineArgumentParser,
    add_engine_arguments,
    add_run_arguments,
    engine_options,
    parse_size,
    run_cli,
)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(prog="liteseg-replay", description=__doc__)
    parser.add_argument("bags", nargs="+", type=Path, help="ROS 1 .bag files, rosbag2 bag directories (sqlite3 or "
                                                          "mcap, zstd-compressed or not), or folders of them")
    parser.add_argument("--out", type=Path, required=True,
                        help="output directory (must not exist, unless --force): bag/, report.json, report.md; with "
                             "several bags one folder per bag and the fleet's report.json, report.md")
    parser.add_argument("--force", action="store_true", help="replace an existing output directory")
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
    add_engine_arguments(parser)
    return parser


def _check(args: argparse.Namespace) -> None:
    if args.live and (len(args.bags) > 1 or (args.weights and len(args.weights) > 1)):
        raise BagError("a live replay measures the one model the node runs on one bag: replay several offline")
    if args.live and args.class_map is not None:
        raise BagError("--class-map merges classes in an offline replay; in a live replay set the node's class_map "
                       "parameter")
    if args.live and args.engine != "local":
        raise ConfigError("--live plays the bag to a node from this process: leave --engine local")
    if args.rate <= 0:
        raise BagError(f"--rate must be positive, got {args.rate}")
    if not 0 <= args.depth_slop <= 1:
        raise BagError(f"--depth-slop must be in [0, 1] seconds, got {args.depth_slop}")
    if args.weights and len(args.weights) > 1 and not args.gt_topic:
        raise BagError("comparing models needs the bag's ground truth: give --gt-topic")
    if args.out.exists() and not args.force:
        raise ConfigError(f"{args.out} exists: choose a new --out, or --force to replace it")


def options_from_args(args: argparse.Namespace, bag: Path, weights: Path | None, out: Path) -> ReplayOptions:
    """One bag's replay of one model into ``out``."""
    return ReplayOptions(
        bag=bag, out=out, weights=weights, image_topic=args.image_topic, gt_topic=args.gt_topic,
        gt_encoding=args.gt_encoding, input_size=args.input_size, device=args.device, precision=args.precision,
        storage=args.storage, compression=args.compression, overlay_every=args.overlays, rate=args.rate,
        clock=args.clock, node_namespace=args.node_namespace, class_map=args.class_map, depth_topic=args.depth_topic,
        depth_info_topic=args.depth_info_topic, depth_slop=args.depth_slop)


def _main(argv: list[str] | None) -> int:
    from liteseg_ros.files import atomic_folder
    from liteseg_ros.mining.recordings import recordings

    args = build_parser().parse_args(argv)
    _check(args)
    engine = engine_options(args)
    bags = recordings(args.bags, strict=False)
    if args.live:
        return _live(args, bags[0])
    if len(bags) == 1 and engine.engine == "local":
        from liteseg_ros.replay.offline import open_bag

        open_bag(options_from_args(args, bags[0], None, args.out)).close()  # a bad bag fails before the models load
    models = _models(args)
    with atomic_folder(args.out, replace=args.force) as out:
        results = [(weights, _replay_model(args, bags, weights, segmenter, engine,
                                           out / f"{index}-{weights.stem}" if len(models) > 1 else out))
                   for index, (weights, segmenter) in enumerate(models, 1)]
        if len(models) > 1:
            text = _comparison(results, out, args.json)
        else:
            text = _shown(results[0][1], args.json)
    print(text, end="" if text.endswith("\n") else "\n")
    return EXIT_INTERRUPTED if any(_interrupted(result) for _, result in results) else 0


def _live(args: argparse.Namespace, bag: Path) -> int:
    from liteseg_ros.files import atomic_folder
    from liteseg_ros.model.published import resolve_weights
    from liteseg_ros.ros.live_replay import run_live

    weights = resolve_weights(args.weights[0]) if args.weights else None
    with atomic_folder(args.out, replace=args.force) as out:
        report = run_live(options_from_args(args, bag, weights, out))
    print(_shown(report, args.json), end="")
    return EXIT_INTERRUPTED if report.interrupted else 0


def _models(args: argparse.Namespace) -> list:
    """(weights, Segmenter) of every --weights, each checked before the first frame: the class map applied to the
    models it was written for (to the only one: it must fit), the ground truth's encoding to their classes."""
    from liteseg_ros.class_map import load_class_map
    from liteseg_ros.errors import ClassSetError
    from liteseg_ros.inference.config import SegmenterConfig
    from liteseg_ros.inference.segmenter import Segmenter
    from liteseg_ros.inference.sources import read_source
    from liteseg_ros.labels import CITYSCAPES
    from liteseg_ros.model.published import resolve_weights
    from liteseg_ros.replay.matching import StampMatcher

    paths = [resolve_weights(name) for name in args.weights or [None]]
    fits = dict.fromkeys(paths, False)
    for path in paths if args.class_map is not None else ():
        try:
            load_class_map(args.class_map, read_source(path).classes or CITYSCAPES)
            fits[path] = True
        except ClassSetError:
            if len(paths) == 1:
                raise
    if args.class_map is not None and not any(fits.values()):
        raise ConfigError(f"--class-map {args.class_map} fits none of the models' class sets")
    models = []
    for path in paths:
        config = SegmenterConfig(device=args.device, precision=args.precision, input_size=args.input_size,
                                 class_map=args.class_map if fits[path] else None)
        segmenter = Segmenter(path, config)
        if args.gt_topic:
            StampMatcher(args.gt_encoding, classes=segmenter.model_classes, class_map=segmenter.class_map)
        models.append((path, segmenter))
    return models


def _replay_model(args: argparse.Namespace, bags: list[Path], weights: Path, segmenter, engine, out: Path):
    """One model over the bags into ``out``: a ReplayReport (one bag, here) or a FleetReport."""
    from liteseg_ros.replay.fleet import FleetReport
    from liteseg_ros.replay.offline import run_offline

    if engine.engine == "ray":
        return _replay_on_ray(args, bags, weights, segmenter, engine, out)
    if len(bags) == 1:
        return run_offline(options_from_args(args, bags[0], weights, out), segmenter)
    fleet = FleetReport(segmenter.description, segmenter.classes, "local")
    for bag, folder in zip(bags, bag_folders(bags)):
        try:
            report = run_offline(options_from_args(args, bag, weights, out / folder), segmenter)
        except BagError as error:
            fleet.problems.append(f"{bag}: {error}")
            print(f"liteseg-replay: warning: {bag}: {error}; the other bags are replayed", file=sys.stderr)
            continue
        fleet.bags.append(report)
        if report.interrupted:
            break
    if not fleet.bags:
        raise BagError("no bag could be replayed: " + "; ".join(fleet.problems))
    fleet.write(out)
    return fleet


def _replay_on_ray(args: argparse.Namespace, bags: list[Path], weights: Path, segmenter, engine, out: Path):
    """The bags evaluated piece by piece on Ray: each bag's report in OUT/<bag>/, the fleet's in OUT."""
    from liteseg_ros.fleet.engine import WorkerSpec
    from liteseg_ros.fleet.jobs import EvaluationWorker, evaluate_bags
    from liteseg_ros.mining.pieces import plan_pieces
    from liteseg_ros.tools.cli.conventions import Progress

    pieces, problems = plan_pieces(bags, (args.image_topic,) if args.image_topic else (), 0.0, args.piece_frames)
    if not pieces:
        raise BagError("no bag could be replayed: " + "; ".join(f"{p.bag}: {p.reason}" for p in problems))
    spec = WorkerSpec(EvaluationWorker, {"weights": str(weights), "config": segmenter.config,
                                         "gt_topic": args.gt_topic, "gt_encoding": args.gt_encoding})
    progress = Progress("evaluating pieces", total=len(pieces), engine=engine)
    fleet = evaluate_bags(pieces, problems, spec, engine, segmenter,
                          lambda result: progress.step(result.piece.name, frames=result.frames))
    progress.close()
    for report, folder in zip(fleet.bags, bag_folders([Path(report.bag) for report in fleet.bags])):
        report.write(out / folder)
    for problem in fleet.problems:
        print(f"liteseg-replay: warning: {problem}", file=sys.stderr)
    fleet.write(out)
    return fleet


def bag_folders(bags: list[Path]) -> list[str]:
    """A folder name per bag, unique among them (its name; then _2, _3, ...)."""
    taken: dict[str, int] = {}
    names = []
    for bag in bags:
        base = bag.stem if bag.is_file() else bag.name
        taken[base] = taken.get(base, 0) + 1
        names.append(base if taken[base] == 1 else f"{base}_{taken[base]}")
    return names


def _interrupted(result) -> bool:
    return result.to_dict().get("interrupted", False)


def _shown(result, as_json: bool) -> str:
    return json.dumps(result.to_dict(), indent=2) + "\n" if as_json else result.to_markdown()


def _comparison(results: list, out: Path, as_json: bool) -> str:
    """With ground truth, one table of the models (OUT/comparison.md, .json), on the classes they share."""
    from liteseg_ros.classes import ClassSet
    from liteseg_ros.comparison import ModelScores, SharedClasses, comparison_dict, comparison_table
    from liteseg_ros.files import write_text

    documents = {str(weights): result.to_dict() for weights, result in results}
    classes = {name: ClassSet.from_dict(document["classes"], "replay") for name, document in documents.items()}
    shared = SharedClasses.of(next(iter(classes.values())), classes)
    models = [ModelScores(name, {cls: document["per_class"].get(cls) for cls in shared.names}, document["gt_frames"],
                          document["model"]) for name, document in documents.items()]
    document, table = json.dumps(comparison_dict(models, shared), indent=2) + "\n", comparison_table(models, shared)
    write_text(out / "comparison.json", document)
    write_text(out / "comparison.md", table)
    return document if as_json else table


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, "liteseg-replay")


if __name__ == "__main__":
    sys.exit(main())
