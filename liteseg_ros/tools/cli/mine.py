"""liteseg-mine: choose the frames of a robot's recordings worth labelling and pre-label them for CVAT and Label Studio.

    liteseg-mine BAG [BAG ...] --topic TOPIC --count N --out DIR [--weights W] [--class-map M] [--every S]

Runs the model as the node does (its plan; the input size the weights were trained at) over every frame of TOPIC
(one every S seconds with --every), chooses N frames the model is unsure of and that differ from each other, one per
view (liteseg_ros.mining.selection), and writes them with the model's masks as pre-annotations
(liteseg_ros.mining.output). The same input gives the same choice.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from liteseg_ros.errors import ConfigError
from liteseg_ros.mining import recordings as rec
from liteseg_ros.mining.output import MinedFrame, MiningRun, write_outputs
from liteseg_ros.mining.scores import score_frame
from liteseg_ros.mining.selection import SAME_VIEW, choose
from liteseg_ros.tools.cli.conventions import OneLineArgumentParser, Progress, add_run_arguments, parse_size, run_cli

DEFAULT_IMAGE_URL = "/data/local-files/?d=images/"  # Label Studio's local file serving, document root = --out


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(prog="liteseg-mine", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bags", nargs="+", type=Path, help="rosbag2 folders, ROS 1 .bag files, or folders of them")
    parser.add_argument("--topic", required=True, help="the camera topic (sensor_msgs/Image or CompressedImage)")
    parser.add_argument("--count", type=int, required=True, help="how many frames to choose")
    parser.add_argument("--out", type=Path, required=True, help="output folder (must not exist, unless --force)")
    parser.add_argument("--force", action="store_true", help="replace an existing output folder")
    parser.add_argument("--weights", help="the model, as the node's weights: a file or a published name "
                                             "(default: the node's, the bundled one)")
    parser.add_argument("--class-map", type=Path, help="pre-label in a class map's classes (liteseg_ros.class_map)")
    parser.add_argument("--every", type=float, default=0.0, metavar="SECONDS",
                        help="score one frame every SECONDS of header stamps (default 0: every frame)")
    parser.add_argument("--same-view", type=float, default=SAME_VIEW, metavar="T",
                        help=f"frames whose thumbnails differ by less than T are one view (default {SAME_VIEW})")
    parser.add_argument("--input-size", type=parse_size, metavar="HxW",
                        help="network input (default: the size the weights were trained at, as the node)")
    parser.add_argument("--image-url", default=DEFAULT_IMAGE_URL,
                        help=f"Label Studio URL prefix of images/ (default {DEFAULT_IMAGE_URL}: local file serving "
                             "with the output folder as document root)")
    add_run_arguments(parser)
    return parser


def _check(args: argparse.Namespace) -> None:
    if args.count < 1:
        raise ConfigError(f"--count must be at least 1, got {args.count}")
    if args.every < 0 or args.same_view < 0:
        raise ConfigError("--every and --same-view must not be negative")
    if args.out.exists() and not args.force:
        raise ConfigError(f"{args.out} exists: choose a new --out, or --force to replace it")


def _segmenter(args: argparse.Namespace):
    from liteseg_ros.inference.config import SegmenterConfig
    from liteseg_ros.inference.segmenter import Segmenter
    from liteseg_ros.model.published import resolve_weights

    return Segmenter(resolve_weights(args.weights), SegmenterConfig(device=args.device, precision=args.precision,
                                                                    input_size=args.input_size,
                                                                    class_map=args.class_map))


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    _check(args)
    bags = rec.recordings(args.bags)
    rec.BagSource(bags[0], image_topic=args.topic, depth_topic="").close()  # a wrong topic fails before the model
    segmenter = _segmenter(args)
    classes = len(segmenter.classes)
    counts = rec.ReadCounts()
    progress = Progress("scoring frames")
    scores = []
    for frame in rec.frames(bags, args.topic, args.every, counts):
        scores.append(score_frame(segmenter, frame, classes))
        progress.step(f"{frame.bag.name}")
    seconds = progress.close()
    choices = choose(scores, args.count, args.same_view)
    mined = _prelabel(segmenter, bags, args.topic, scores, choices)
    run = MiningRun(segmenter.description, segmenter.classes, _rule(args),
                    {"messages": counts.messages, "kept": counts.kept, "unreadable": counts.unreadable,
                     "topic": args.topic, "bags": len(bags), "every": args.every, "requested": args.count},
                    args.image_url)
    write_outputs(args.out, mined, run, replace=args.force)
    for problem in counts.problems:
        print(f"liteseg-mine: skipped {problem}", file=sys.stderr)
    print(f"liteseg-mine: scored {len(scores)} frames of {args.topic} in {len(bags)} recording(s) in {seconds:.1f} s "
          f"({len(scores) / max(seconds, 1e-9):.1f} frames/s, {counts.unreadable} unreadable), chose {len(mined)}: "
          f"{args.out}")
    return 0


def _prelabel(segmenter, bags, topic, scores, choices) -> list[MinedFrame]:
    """The chosen frames read again, with the model's masks at their own size, in the order they were chosen."""
    by_key = {scores[choice.index].key: choice for choice in choices}
    found: dict[tuple[str, int], MinedFrame] = {}
    taken: set[str] = set()
    progress = Progress("pre-labelling", total=len(choices))
    for frame in rec.frames(bags, topic, 0.0, rec.ReadCounts(), wanted=set(by_key)):
        mask = segmenter.segment(frame.image, encoding=frame.encoding, outputs=("mask",)).mask
        found[frame.key] = MinedFrame(rec.image_name(frame.bag, frame.stamp_ns, taken), frame, mask,
                                      by_key[frame.key])
        progress.step()
    progress.close()
    return [found[scores[choice.index].key] for choice in choices if scores[choice.index].key in found]


def _rule(args: argparse.Namespace) -> str:
    return ("the least sure frame first, then each next frame maximising uncertainty (mean 1 - p) x distance to "
            f"the nearest chosen frame (class layout and thumbnail), never a frame of a chosen view (thumbnails "
            f"closer than {args.same_view:g})")


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, "liteseg-mine")


if __name__ == "__main__":
    sys.exit(main())
